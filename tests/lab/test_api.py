"""The simulated BlueMind admin API (lab/sim/bmsim/api.py), driven by BlueMind's own generated clients.

netbluemind4 (4.9.3884) and netbluemind5 (5.7.3268) both install the top-level package `netbluemind`,
so the venv holds each in its own folder (`pip install --no-deps --target .venv/netbluemind4|5`, see
scripts/bootstrap.sh) and every client call runs in a subprocess whose PYTHONPATH is that folder.
The effects are checked inside the hosts: postfix maps and `mynetworks`, the firewall rules file.
"""
import json
import os
import shlex
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
import requests

TOP = Path(__file__).resolve().parents[2]
CLIENTS = {4: TOP / ".venv" / "netbluemind4", 5: TOP / ".venv" / "netbluemind5"}
CLIENT_VERSIONS = {4: "4.9.3884", 5: "5.7.3268"}
RULES = "/etc/init.d/bm-iptables"  # IptablesPath.IPTABLES_SCRIPT_PATH
PUBLIC_PORTS = (25, 80, 110, 143, 443, 465, 587, 993, 995)
LMTP = "lmtp:inet:127.0.0.1:2400"

# Runs before each snippet in the client subprocess: the snippet fills `out`, printed as JSON.
PRELUDE = """
import json, os, warnings
warnings.filterwarnings("ignore")  # the generated clients call requests with verify=False
from netbluemind.python.client import BMClient, ServerFault
URL, LOGIN, PASSWORD = os.environ["BM_URL"], os.environ["BM_LOGIN"], os.environ["BM_PASSWORD"]
out = {}

def fault(call):
    '''The ServerFault args (errorCode, errorType, message) a call raises, or None.'''
    try:
        call()
    except ServerFault as exc:
        return list(exc.args)
    return None
"""


def nb(major, host, lab, code, password=None):
    """Run `code` with BlueMind's netbluemind<major> client against `host`; returns its `out` dict."""
    if not (CLIENTS[major] / "netbluemind").is_dir():
        pytest.fail(f"{CLIENTS[major]} is missing: make venv (pip install --no-deps --target "
                    f"{CLIENTS[major]} netbluemind{major}=={CLIENT_VERSIONS[major]})")
    env = dict(os.environ, PYTHONPATH=str(CLIENTS[major]), BM_URL=host.api_url + "/api",
               BM_LOGIN=lab.admin_login, BM_PASSWORD=password or lab.admin_password)
    script = PRELUDE + textwrap.dedent(code) + "\nprint(json.dumps(out))\n"
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, f"netbluemind{major} snippet failed:\n{proc.stderr}"
    return json.loads(proc.stdout.splitlines()[-1])


def api(lab, host, method, path, body=None, key=None, port=None):
    """A raw call (TLS checked against the lab CA), for what the clients hide: status codes, bodies."""
    base = f"http://{host.ip}:{port}" if port else host.api_url
    headers = {"X-BM-ApiKey": key} if key else {}
    data = None if body is None else json.dumps(body)
    return requests.request(method, base + path, data=data, headers=headers, verify=lab.ca_file, timeout=30)


def token(host):
    return host.run("cat /etc/bm/bm-core.tok").stdout.strip()


def package(host):
    return host.run("dpkg-query -W -f='${Version}' bm-core").stdout.strip()


def installed(host):
    """The BlueMind version installed: the package version without its per-distribution revision."""
    return package(host).rsplit("-", 1)[0]


def wait_version(lab, host, version, timeout=60):
    """Poll until bm-core answers with `version` (it restarts after bm-sim-set-version or lab-sync)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            resp = api(lab, host, "GET", "/api/system/installation/version", key=token(host))
            if resp.status_code == 200 and resp.json()["softwareVersion"] == version:
                return
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, f"{host.role}: bm-core does not answer with version {version}"
        time.sleep(0.5)


def poll(host, cmd, timeout=20):
    """Run `cmd` in the host until it succeeds; returns its stdout (fails after `timeout` seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        proc = host.run(cmd, check=False)
        if proc.returncode == 0:
            return proc.stdout
        assert time.monotonic() < deadline, f"{host.role}: `{cmd}` still fails after {timeout}s: {proc.stderr}"
        time.sleep(0.3)


def psql(host, sql):
    return host.run("PGPASSWORD=bj psql -h 127.0.0.1 -U bj -d bj -v ON_ERROR_STOP=1 -qAt", input=sql).stdout


def sysconf(lab, host, **values):
    """Set system configuration values through the API with the host's token (setup and cleanup)."""
    resp = api(lab, host, "POST", "/api/configuration", values, key=token(host))
    assert resp.status_code == 200, resp.text


@pytest.fixture(scope="module", autouse=True)
def api_up(lab):
    for host in (lab.origin, lab.target):
        wait_version(lab, host, installed(host))


@pytest.fixture
def origin_conf(lab):
    """The origin's mynetworks and fwAdditionalIPs, put back after the test."""
    values = api(lab, lab.origin, "GET", "/api/configuration", key=token(lab.origin)).json()["values"]
    yield values
    sysconf(lab, lab.origin, mynetworks=values.get("mynetworks", "127.0.0.0/8"),
            fwAdditionalIPs=values.get("fwAdditionalIPs"))


def keep_rules(host):
    """Give back the host's firewall rules file (or its absence) after a test that regenerates it."""
    before = host.run(f"cat {RULES}", check=False)
    yield
    if before.returncode == 0:
        host.run(f"cat >{RULES}", input=before.stdout)
    else:
        host.run(f"rm -f {RULES}")


@pytest.fixture
def origin_rules(lab):
    yield from keep_rules(lab.origin)


@pytest.fixture
def bm5_target(lab):
    """The target switched to BlueMind 5.7.3268 (bm-sim-set-version), switched back afterwards."""
    before = installed(lab.target)
    lab.target.run("bm-sim-set-version 5.7.3268")
    wait_version(lab, lab.target, "5.7.3268")
    yield from keep_rules(lab.target)
    lab.target.run(f"bm-sim-set-version {shlex.quote(before)}")
    wait_version(lab, lab.target, before)


def test_https_with_lab_certificate_and_core_port(lab):
    for host in (lab.origin, lab.target):
        for port in (None, 8090):
            resp = api(lab, host, "GET", "/api/system/installation/state", port=port)
            assert (resp.status_code, resp.json()) == (200, "CORE_STATE_RUNNING")


@pytest.mark.parametrize("major", [4, 5])
def test_login_version_and_infos(lab, major):
    out = nb(major, lab.origin, lab, """
        from netbluemind.system.api.IInstallation import IInstallation_VERSION
        out["client"] = IInstallation_VERSION
        c = BMClient(URL)
        out["state"] = c.installation().getSystemState().name
        c.login(LOGIN, PASSWORD)
        v = c.installation().getVersion()
        out["version"] = [v.softwareVersion, v.databaseVersion, v.versionName, v.needsUpgrade]
        i = c.installation().getInfos()
        out["infos"] = [i.softwareVersion, i.releaseName, i.defaultDomain]
    """)
    version = installed(lab.origin)
    name = ".".join(version.split(".")[:2])
    assert out["client"] == CLIENT_VERSIONS[major]  # the subprocess really used netbluemind<major>
    assert out["state"] == "CORE_STATE_RUNNING"
    assert out["version"] == [version, version, name, False]
    assert out["infos"] == [version, name, "lab.test"]  # defaultDomain: t_systemconf default_domain


@pytest.mark.bluemind(4, reason='bullseye and bookworm packages')
def test_package_versions_differ_per_distribution_but_the_software_version_does_not(lab):
    assert (package(lab.origin), package(lab.target)) == ("4.9.3884-bullseye", "4.9.3884-bookworm")
    versions = [api(lab, h, "GET", "/api/system/installation/version", key=token(h)).json()["softwareVersion"]
                for h in (lab.origin, lab.target)]
    assert versions == ["4.9.3884", "4.9.3884"]


def test_system_configuration_holds_sysconfkeys(lab):
    for host in (lab.origin, lab.target):
        values = api(lab, host, "GET", "/api/configuration", key=token(host)).json()["values"]
        assert values["external_url"] == "bluemind.lab.test" and values["default_domain"] == "lab.test"
        assert values["host"] == host.ip and values["hz-member-address"] == host.ip


@pytest.mark.parametrize("major", [4, 5])
def test_wrong_password_or_login_is_status_bad(lab, major):
    out = nb(major, lab.origin, lab, """
        from netbluemind.authentication.api.IAuthentication import IAuthentication
        auth = IAuthentication(None, URL)
        bad = auth.login(LOGIN, "not-" + PASSWORD, "pytest")
        out["bad"] = [bad.status.name, bad.authKey]
        other = auth.login("nobody@global.virt", PASSWORD, "pytest")
        out["other"] = [other.status.name, other.authKey]
        out["client_login"] = fault(lambda: BMClient(URL).login(LOGIN, "not-" + PASSWORD))
    """)
    assert out["bad"] == ["Bad", None]
    assert out["other"] == ["Bad", None]
    assert out["client_login"][2] == "Bad login/pass"  # what BMClient.login raises on "Bad"


@pytest.mark.parametrize("major", [4, 5])
def test_calls_need_a_valid_key(lab, major):
    out = nb(major, lab.origin, lab, """
        from netbluemind.authentication.api.IAuthentication import IAuthentication
        from netbluemind.system.api.ISystemConfiguration import ISystemConfiguration
        from netbluemind.core.task.api.ITask import ITask
        out["none"] = fault(lambda: ISystemConfiguration(None, URL).getValues())
        out["bogus"] = fault(lambda: ISystemConfiguration("bogus", URL).getValues())
        c = BMClient(URL)
        c.login(LOGIN, PASSWORD)
        out["task"] = fault(lambda: ITask(c.apiKey, URL, "no-such-task").status())
        IAuthentication(c.apiKey, URL).logout()
        out["after_logout"] = fault(lambda: ISystemConfiguration(c.apiKey, URL).getValues())
    """)
    assert out["none"][:2] == ["PERMISSION_DENIED", "ServerFault"]
    # BlueMind's RestServiceMethodHandler: an unknown key is a 401 AUTHENTICATION_FAIL naming the key.
    assert out["bogus"] == ["AUTHENTICATION_FAIL", "ServerFault", "session id bogus is not valid"]
    assert out["after_logout"][:2] == ["AUTHENTICATION_FAIL", "ServerFault"]
    assert out["task"][:2] == ["NOT_FOUND", "ServerFault"]


def test_status_codes_and_fault_bodies(lab):
    host = lab.origin
    resp = api(lab, host, "GET", "/api/configuration")
    assert resp.status_code == 403 and resp.json()["errorType"] == "ServerFault"
    resp = api(lab, host, "GET", "/api/configuration", key="bogus-" + uuid.uuid4().hex)
    assert resp.status_code == 401 and resp.json()["errorCode"] == "AUTHENTICATION_FAIL"
    resp = api(lab, host, "GET", "/api/no/such/call", key=token(host))
    assert resp.status_code == 404
    assert resp.json()["errorCode"] == "NOT_FOUND" and resp.json()["errorType"] == "ServerFault"
    resp = api(lab, host, "GET", "/api/tasks/no-such-task", key=token(host))
    assert resp.status_code == 404 and resp.json()["errorType"] == "ServerFault"
    resp = api(lab, host, "POST", "/api/auth/login?login=admin0@global.virt&origin=pytest", "wrong")
    assert resp.status_code == 200 and resp.json()["status"] == "Bad" and resp.json()["authKey"] is None
    # A body the call does not take: 500, never 400 (the generated clients take <= 400 as a success).
    resp = api(lab, host, "POST", "/api/configuration", ["not", "a", "map"], key=token(host))
    assert resp.status_code == 500 and resp.json()["errorCode"] == "INVALID_PARAMETER"


def test_token_is_an_api_key_and_a_password(lab):
    host = lab.origin
    tok = token(host)
    resp = api(lab, host, "GET", "/api/configuration", key=tok)
    assert resp.status_code == 200 and "values" in resp.json()
    out = nb(4, host, lab, """
        c = BMClient(URL)
        c.login(LOGIN, PASSWORD)
        out["key_is_token"] = c.apiKey == PASSWORD
        out["version"] = c.installation().getVersion().softwareVersion
    """, password=tok)
    assert out == {"key_is_token": False, "version": installed(host)}


@pytest.mark.parametrize("major", [4, 5])
def test_mynetworks_is_normalised_and_reaches_postfix(lab, major, origin_conf):
    host = lab.origin
    net = f"10.99.{major}.0/24"
    out = nb(major, host, lab, f"""
        from netbluemind.system.api.ISystemConfiguration import ISystemConfiguration
        c = BMClient(URL)
        c.login(LOGIN, PASSWORD)
        conf = ISystemConfiguration(c.apiKey, URL)
        conf.updateMutableValues({{"mynetworks": "127.0.0.0/8, {net} {net}"}})
        out["values"] = conf.getValues().values
    """)
    expected = {"127.0.0.0/8", net, f"{host.ip}/32"}
    values = out["values"]
    assert set(values["mynetworks"].split(", ")) == expected
    assert values["external-url"] == "bluemind.lab.test"  # bm.ini merged in
    assert "password" not in values
    postfix = host.run("postconf -h mynetworks").stdout.strip()
    assert set(postfix.split(", ")) == expected


@pytest.mark.bluemind(4, reason='a 4.x core, then the 5.x client against it')
def test_firewall_bm4(lab, origin_conf, origin_rules):
    host = lab.origin
    host.run(f"rm -f {RULES}")
    out = nb(4, host, lab, """
        from netbluemind.system.api.ISystemConfiguration import ISystemConfiguration
        from netbluemind.system.api.ISecurityMgmt import ISecurityMgmt
        from netbluemind.core.task.api.ITask import ITask
        c = BMClient(URL)
        c.login(LOGIN, PASSWORD)
        ISystemConfiguration(c.apiKey, URL).updateMutableValues({"fwAdditionalIPs": "10.98.0.7 10.98.1.0/24"})
        ref = ISecurityMgmt(c.apiKey, URL).updateFirewallRules()
        out["waited"] = c.waitTask(ref).state.name
        s = ITask(c.apiKey, URL, ref.id).status()
        out["status"] = [s.state.name, s.progress, s.steps]
    """)
    assert out["waited"] == "Success"
    assert out["status"] == ["Success", 1.0, 1.0]
    # The 5.x call does not exist on a 4.x core.
    out5 = nb(5, host, lab, """
        from netbluemind.system.api.IInternalFirewallMgmt import IInternalFirewallMgmt
        c = BMClient(URL)
        c.login(LOGIN, PASSWORD)
        out["fault"] = fault(lambda: IInternalFirewallMgmt(c.apiKey, URL).updateFirewallRules())
    """)
    assert out5["fault"][0] == "NOT_FOUND"
    rules = host.run(f"cat {RULES}").stdout.splitlines()
    assert rules[0] == "#!/bin/bash" and "*filter" in rules and rules[-3:] == ["COMMIT", "RULES", "exit 0"]
    for src in ["10.98.0.7/32", "10.98.1.0/24"] + [f"{ip}/32" for ip in psql(host, "SELECT ip FROM t_server").split()]:
        assert f"-A BM-INPUT -s {src} -j ACCEPT" in rules
    for port in PUBLIC_PORTS:
        assert f"-A BM-INPUT -p tcp -m tcp --dport {port} -j ACCEPT" in rules
    assert host.run("ls -A /etc/init.d | grep bm-iptables").stdout.split() == ["bm-iptables"]  # no temp file left
    assert host.run("stat -c %a " + RULES).stdout.strip() == "755"


@pytest.mark.bluemind(4, reason="a 4.x lab's target switched to 5.7.3268; the 5.x lab has test_bm5.py")
def test_firewall_bm5(lab, bm5_target):
    """On 5.x the regeneration is IInternalFirewallMgmt, @BMApi(internal = true): served at
    /internal-api/system/firewall/_updatefirewallrules on the core's port only (lab/FIDELITY.md row
    5x-firewall). The generated netbluemind5 client sends it to /api/system/firewall/... (404) and
    the 4.x call is gone."""
    host = lab.target
    host.run(f"rm -f {RULES}")
    out = nb(5, host, lab, """
        from netbluemind.system.api.IInternalFirewallMgmt import IInternalFirewallMgmt
        c = BMClient(URL)
        c.login(LOGIN, PASSWORD)
        v = c.installation().getVersion()
        out["version"] = [v.softwareVersion, v.versionName]
        out["fault"] = fault(lambda: IInternalFirewallMgmt(c.apiKey, URL).updateFirewallRules())
        out["key"] = c.apiKey
    """)
    assert out["version"] == ["5.7.3268", "5.7"]
    assert out["fault"][0] == "NOT_FOUND"  # the client's /api path does not exist on a 5.x core
    out4 = nb(4, host, lab, """
        from netbluemind.system.api.ISecurityMgmt import ISecurityMgmt
        c = BMClient(URL)
        c.login(LOGIN, PASSWORD)
        out["fault"] = fault(lambda: ISecurityMgmt(c.apiKey, URL).updateFirewallRules())
    """)
    assert out4["fault"][0] == "NOT_FOUND"  # the 4.x call is gone from a 5.x core
    internal = "/internal-api/system/firewall/_updatefirewallrules"
    assert api(lab, host, "POST", internal, key=out["key"]).status_code == 404  # not on 443
    resp = api(lab, host, "POST", internal, key=out["key"], port=8090)
    assert resp.status_code == 200 and set(resp.json()) == {"id"}
    poll(host, f"test -s {RULES}")
    rules = host.run(f"cat {RULES}").stdout.splitlines()
    for port in PUBLIC_PORTS:
        assert f"-A BM-INPUT -p tcp -m tcp --dport {port} -j ACCEPT" in rules


@pytest.fixture
def mail_domain(lab):
    """A domain of its own in the origin's bj (an alias domain, a user, an archived user, an alias)."""
    host = lab.origin
    tag = uuid.uuid4().hex[:8]
    dom, alias_dom = f"api-{tag}.test", f"api-{tag}-alias.test"
    psql(host, f"""
        INSERT INTO t_domain (name, label, aliases) VALUES ('{dom}', 'api test', ARRAY['{alias_dom}']);
        INSERT INTO t_directory_entry (uid, domain_uid, login, display_name)
            VALUES ('api-{tag}-1', '{dom}', 'alice', 'Alice');
        INSERT INTO t_directory_entry (uid, domain_uid, login, display_name, archived)
            VALUES ('api-{tag}-2', '{dom}', 'gone', 'Gone', true);
        INSERT INTO t_mailbox_alias (domain_uid, alias, target_uid) VALUES ('{dom}', 'al', 'api-{tag}-1');
    """)
    yield dom, alias_dom
    psql(host, f"""
        DELETE FROM t_mailbox_alias WHERE domain_uid = '{dom}';
        DELETE FROM t_directory_entry WHERE domain_uid = '{dom}';
        DELETE FROM t_domain WHERE name = '{dom}';
    """)
    resp = api(lab, host, "POST", "/api/system/maildelivery/mgmt/_repair", key=token(host))
    assert resp.status_code == 200, resp.text
    poll(host, f"! postmap -q alice@{dom} hash:/etc/postfix/virtual_mailbox")


@pytest.mark.parametrize("major", [4, 5])
def test_mail_repair_rebuilds_postfix_maps(lab, major, mail_domain):
    host = lab.origin
    dom, alias_dom = mail_domain
    out = nb(major, host, lab, """
        from netbluemind.system.api.IMailDeliveryMgmt import IMailDeliveryMgmt
        from netbluemind.core.task.api.ITask import ITask
        c = BMClient(URL)
        c.login(LOGIN, PASSWORD)
        ref = IMailDeliveryMgmt(c.apiKey, URL).repair()
        out["task"] = ref.id
        out["state"] = ITask(c.apiKey, URL, ref.id).status().state.name
    """)
    assert out["state"] == "Success"  # at once; the maps follow about a second later
    assert poll(host, f"postmap -q alice@{dom} hash:/etc/postfix/virtual_mailbox").strip() == "OK"

    def query(key, table):
        proc = host.run(f"postmap -q {key} hash:/etc/postfix/{table}", check=False)
        return proc.stdout.strip() if proc.returncode == 0 else None

    assert query(f"gone@{dom}", "virtual_mailbox") is None  # archived
    assert query(f"al@{alias_dom}", "virtual_alias") == f"alice@{dom}"
    assert query(f"alice@{alias_dom}", "virtual_alias") == f"alice@{dom}"
    assert query(alias_dom, "virtual_domains") == "OK"
    assert query(dom, "transport") == LMTP
    log = poll(host, f"grep -F '\"repair_done\"' /var/log/bm-sim/api.jsonl | grep -F {out['task']}")
    assert json.loads(log.splitlines()[-1])["mailboxes"] >= 1


def test_api_log_records_calls_without_secrets(lab):
    host = lab.origin
    wrong = f"wrong-{uuid.uuid4().hex}"
    resp = api(lab, host, "POST", "/api/auth/login?login=admin0@global.virt&origin=pytest", wrong)
    assert resp.json()["status"] == "Bad"
    out = nb(5, host, lab, """
        c = BMClient(URL)
        c.login(LOGIN, PASSWORD)
        c.installation().getVersion()
        out["key"] = c.apiKey
    """)
    log = host.run("cat /var/log/bm-sim/api.jsonl").stdout
    for secret in (wrong, out["key"], token(host)):
        assert secret not in log
    records = [json.loads(line) for line in log.splitlines()]
    calls = [r for r in records if "method" in r]
    assert all({"method", "path", "status"} <= set(r) for r in calls)
    assert any(r["path"] == "/api/system/installation/version" and r.get("client_version") == "5.7.3268"
               and r.get("auth") == "session" for r in calls)
    assert any(r.get("event") == "login" and r.get("result") == "Bad" for r in calls)


def test_mynetworks_as_the_sanitizor_keeps_it_and_refuses_invalid_entries(lab, origin_conf):
    """MyNetworksValidator/MyNetworksSanitizor: split on spaces and commas, "!" stripped, entries
    kept as written, t_server addresses and the host's IPv4 always added; invalid = 500."""
    host = lab.origin
    extra = "198.51.100.77"  # a second server of the directory: its address is added too
    psql(host, f"INSERT INTO t_server (ip, fqdn, name, tags) VALUES ('{extra}', 'edge.lab.test', 'edge', 'mail/smtp')")
    try:
        sysconf(lab, host, mynetworks="!10.98.0.1/24,10.97.0.0/16  10.97.0.0/16")
        values = api(lab, host, "GET", "/api/configuration", key=token(host)).json()["values"]
        assert set(values["mynetworks"].split(", ")) == {
            "10.98.0.1/24", "10.97.0.0/16", "127.0.0.0/8", f"{host.ip}/32", f"{extra}/32"}
        for bad in ("10.0.0.0/24 relay.example.test", "10.0.0.0/33", ""):
            resp = api(lab, host, "POST", "/api/configuration", {"mynetworks": bad}, key=token(host))
            assert resp.status_code == 500 and resp.json()["errorCode"] == "INVALID_PARAMETER", bad
        again = api(lab, host, "GET", "/api/configuration", key=token(host)).json()["values"]
        assert again["mynetworks"] == values["mynetworks"]  # a refused value changes nothing
    finally:
        psql(host, f"DELETE FROM t_server WHERE ip = '{extra}'")


def test_bm_cli_records_tick_reconfigure(lab):
    host = lab.target
    mark = str(uuid.uuid4())
    host.run(f"echo '{{\"mark\": \"{mark}\"}}' >> /var/log/bm-sim/bm-cli.jsonl")
    assert host.run("bm-cli tick reconfigure").returncode == 0
    unknown = host.run("bm-cli tick frobnicate", check=False)
    assert unknown.returncode == 2 and "Unknown command" in unknown.stderr
    lines = host.run("cat /var/log/bm-sim/bm-cli.jsonl").stdout.splitlines()
    after = [json.loads(x) for x in lines[[i for i, x in enumerate(lines) if mark in x][-1] + 1:]]
    assert [(e["argv"], e["known"]) for e in after] == [(["tick", "reconfigure"], True), (["tick", "frobnicate"], False)]


def test_the_fault_file_stops_the_core_or_changes_the_password_with_the_answer_to_its_last_event(lab):
    """The lab's fault hook (bmsim-fault.json, used by molecule faults_window): the events before the
    last only leave the list; the answer to the last is given (or not, for "drop"), and the next call
    finds the core gone (nothing listens, systemd stopped it and does not restart it) or the admin
    password changed."""
    host, fault_file, pw_file = lab.target, "/etc/bm/bmsim-fault.json", "/etc/bm/bmsim-admin.pw"

    def login():
        return api(lab, host, "POST", "/api/auth/login?login=admin0@global.virt&origin=pytest", lab.admin_password)

    def arm(then, after=("login", "logout")):
        host.run(f"cat > {fault_file}", input=json.dumps({"after": list(after), "then": then}))

    def stopped_for_good():
        poll(host, "systemctl show bm-core -p ActiveState | grep -qx ActiveState=inactive && ! test -e " + fault_file)
        time.sleep(3)  # past RestartSec=2: a core that systemd would restart is activating again by now
        shown = host.run("systemctl show bm-core -p ActiveState -p NRestarts").stdout.split()
        assert sorted(shown) == ["ActiveState=inactive", "NRestarts=0"], shown
        with pytest.raises(requests.ConnectionError):
            api(lab, host, "GET", "/api/system/installation/state")

    try:
        arm("stop")
        key = login().json()["authKey"]
        assert json.loads(host.run(f"cat {fault_file}").stdout)["after"] == ["logout"]
        assert api(lab, host, "GET", "/api/system/installation/state").status_code == 200  # not next: kept
        assert api(lab, host, "POST", "/api/auth/logout", key=key).status_code == 200
        stopped_for_good()
        host.run("systemctl start bm-core")
        arm("drop", after=("installation_state",))
        with pytest.raises(requests.ConnectionError):  # closed without an answer
            api(lab, host, "GET", "/api/system/installation/state")
        stopped_for_good()
        host.run("systemctl start bm-core")
        arm("bad-password")
        key = login().json()["authKey"]
        assert api(lab, host, "POST", "/api/auth/logout", key=key).status_code == 200
        assert login().json()["status"] == "Bad"
    finally:
        # the core started again, and systemd's count of its starts reset (its start limit: 5 in 10 s)
        host.run(f"rm -f {fault_file}; echo {shlex.quote(lab.admin_password)} > {pw_file}; systemctl start bm-core; "
                 "systemctl reset-failed bm-core")
    assert login().json()["status"] == "Ok"
