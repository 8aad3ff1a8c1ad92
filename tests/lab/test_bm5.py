"""The BlueMind 5.x flavour of the lab (`make lab BLUEMIND=5`, lab/CONTRACT.md, lab/FIDELITY.md rows 5x-*):
Debian 12 -> 13, no Cyrus, zstd bodies by hash written by the LMTP delivery of bm-core, the firewall
regeneration only at the internal API on the core's port, bm-cli's maintenance commands, and a
Keycloak whose client secrets must match bj's domain properties for anyone to log in."""
import json
import smtplib
import ssl
import time
import urllib.error
import urllib.request
import uuid

import pytest

INTERNAL_FW = "/internal-api/system/firewall/_updatefirewallrules"
NO_CYRUS = ("/var/lib/cyrus", "/var/spool/sieve", "/etc/bm-hps", "/etc/imapd.conf", "/etc/cyrus.conf")
USER_PASSWORD = "bluemind"  # lab/sim/bmsim/seed.py USER_PASSWORD


@pytest.fixture(scope="module")
def lab5(lab):
    if lab.bluemind != 5:
        pytest.skip("the running lab is BlueMind %d: these tests need `make lab BLUEMIND=5` "
                    "(BMLAB_BLUEMIND=5 lab/lab.sh up)" % lab.bluemind)
    return lab


def psql(host, db, sql):
    out = host.run("PGPASSWORD=bj psql -X -h 127.0.0.1 -U bj -d %s -tA -F ' ' -v ON_ERROR_STOP=1 -c \"%s\""
                   % (db, sql.replace('"', '\\"')))
    return out.stdout.strip()


def call(lab, host, method, url, key=None):
    """(status, body) of an API call from the controller; `url` is the whole URL."""
    req = urllib.request.Request(url, method=method, data=b"" if method in ("POST", "PUT") else None,
                                 headers={"X-BM-ApiKey": key} if key else {})
    ctx = ssl.create_default_context(cafile=lab.ca_file)
    try:
        with urllib.request.urlopen(req, timeout=20, context=ctx if url.startswith("https") else None) as r:
            return r.status, json.loads(r.read().decode() or "null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read().decode() or "null")


def token(host):
    return host.run("cat /etc/bm/bm-core.tok").stdout.strip()


def kc_login(host, address, password):
    out = host.run("bm-sim keycloak login %s '%s'" % (address, password), check=False)
    return out.returncode, json.loads(out.stdout)


def secret(host, domain):
    return psql(host, "bj", "SELECT properties -> 'OPENID_CLIENT_SECRET' FROM t_domain WHERE name = '%s'" % domain)


def test_distributions_and_a_5x_core(lab5):
    for host, codename in ((lab5.origin, "bookworm"), (lab5.target, "trixie")):
        assert host.run(". /etc/os-release; echo $VERSION_CODENAME").stdout.strip() == codename
        package = host.run("dpkg-query -W -f='${Version}' bm-core").stdout.strip()
        assert package == "5.0.4859-" + codename
        status, version = call(lab5, host, "GET", "%s/api/system/installation/version" % host.api_url, token(host))
        assert status == 200 and version["softwareVersion"] == "5.0.4859"


def test_no_cyrus_no_lmtpd_no_hps_and_keycloak_in_the_target(lab5):
    for host in (lab5.origin, lab5.target):
        present = host.run("for p in %s; do test -e $p && echo $p; done; true" % " ".join(NO_CYRUS)).stdout.split()
        assert present == []
        wants = host.run("systemctl list-dependencies --plain bluemind.target").stdout
        assert "bm-keycloak.service" in wants and "bm-lmtpd" not in wants and "bm-hps" not in wants
        assert host.run("systemctl cat bm-lmtpd.service bm-hps.service", check=False).returncode != 0
        assert host.run("stat -c %G /etc/bm/bm-core.tok").stdout.strip() == "bluemind"
        # LMTP is bm-core's: port 2400 belongs to the core's process
        core_pid = host.run("systemctl show -p MainPID --value bm-core").stdout.strip()
        assert 'pid=%s,' % core_pid in host.run("ss -ltnpH 'sport = :2400'").stdout


def test_seeded_origin_has_bodies_by_hash_for_every_message_body_row(lab5):
    o = lab5.origin
    for top in ("/var/spool/cyrus/data/by_hash", "/var/spool/bm-hsm/data/by_hash"):
        assert o.run("find %s -mindepth 2 -maxdepth 2 -type d | wc -l" % top).stdout.strip() == "256"
    files = o.run("find /var/spool/cyrus/data/by_hash /var/spool/bm-hsm/data/by_hash -name '*.zst' "
                  "-printf '%f\\n' | sed 's/.zst$//' | sort").stdout.split()
    guids = psql(o, "bj-data", "SELECT guid FROM t_message_body ORDER BY guid").split()
    assert files and sorted(files) == guids
    archived = o.run("find /var/spool/bm-hsm/data/by_hash -name '*.zst' | wc -l").stdout.strip()
    assert int(archived) > 0
    # one body: its path is <g0>/<g1>/<guid>.zst and it is the zstd of the message whose SHA-1 is the guid
    path = o.run("find /var/spool/cyrus/data/by_hash -name '*.zst' | head -n 1").stdout.strip()
    guid = path.rsplit("/", 1)[1][:-4]
    assert path == "/var/spool/cyrus/data/by_hash/%s/%s/%s.zst" % (guid[0], guid[1], guid)
    assert o.run("zstd -q -dc %s | sha1sum" % path).stdout.split()[0] == guid
    assert o.run("ls /var/spool/bm-mail/bodies | wc -l").stdout.strip() != "0"
    assert o.run("ls /var/spool/bm-hollowed").stdout.split() == ["directory", "tokens"]
    assert o.run("test -e /etc/cyrus-replication", check=False).returncode == 1


def test_delivery_writes_a_zstd_body_by_hash_and_the_rows(lab5):
    t = lab5.target  # a fresh install: the admin's mailbox only
    subject = "bm5 delivery %s" % uuid.uuid4()
    message = "From: probe@lab.test\r\nTo: admin@lab.test\r\nSubject: %s\r\n\r\nfive\r\n" % subject
    with smtplib.SMTP(t.ip, 25, timeout=20) as smtp:
        smtp.sendmail("probe@lab.test", ["admin@lab.test"], message)
    deadline = time.monotonic() + 30
    while True:
        guid = psql(t, "bj-data", "SELECT guid FROM t_message_body WHERE subject = '%s'" % subject)
        if guid or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert guid, "the message did not reach bj-data within 30 s"
    path = "/var/spool/cyrus/data/by_hash/%s/%s/%s.zst" % (guid[0], guid[1], guid)
    assert t.run("zstd -q -dc %s | sha1sum" % path).stdout.split()[0] == guid
    assert subject in t.run("zstd -q -dc %s" % path).stdout
    # a zstd frame (magic 28 b5 2f fd); a short message at level -3 may still show its text in clear
    assert t.run("head -c 4 %s | od -An -tx1" % path).stdout.split() == ["28", "b5", "2f", "fd"]
    assert psql(t, "bj-data", "SELECT count(*) FROM t_mailbox_record WHERE message_body_guid = '%s'" % guid) == "1"
    assert t.run("test -e /var/lib/cyrus", check=False).returncode == 1


def test_firewall_only_at_the_internal_api_on_the_core_port(lab5):
    o = lab5.origin
    key = token(o)
    for url in ("%s/api/system/firewall/_updatefirewallrules" % o.api_url,
                "%s/api/system/security/_updatefirewallrules" % o.api_url,
                "http://%s:8090/api/system/firewall/_updatefirewallrules" % o.ip,
                "http://%s:8090/api/system/security/_updatefirewallrules" % o.ip,
                o.api_url + INTERNAL_FW):
        status, body = call(lab5, o, "POST", url, key)
        assert (status, body["errorCode"]) == (404, "NOT_FOUND"), url
    assert call(lab5, o, "POST", "http://%s:8090%s" % (o.ip, INTERNAL_FW))[0] == 403
    assert call(lab5, o, "POST", "http://%s:8090%s" % (o.ip, INTERNAL_FW), "not-a-key")[0] == 401
    o.run("rm -f /etc/init.d/bm-iptables")
    status, task = call(lab5, o, "POST", "http://%s:8090%s" % (o.ip, INTERNAL_FW), key)
    assert status == 200 and set(task) == {"id"}  # a TaskRef
    deadline = time.monotonic() + 20
    while call(lab5, o, "GET", "%s/api/tasks/%s" % (o.api_url, task["id"]), key)[1]["state"] != "Success":
        assert time.monotonic() < deadline, "the firewall task did not succeed"
        time.sleep(0.3)
    assert "bmHosts=\"%s/32\"" % o.ip in o.run("cat /etc/init.d/bm-iptables").stdout


def test_bm_cli_maintenance_update_fw(lab5):
    o = lab5.origin
    o.run("rm -f /etc/init.d/bm-iptables")
    out = o.run("bm-cli maintenance update-fw")
    assert out.stdout.strip() == "Firewall rules updated"
    assert o.run("test -x /etc/init.d/bm-iptables", check=False).returncode == 0
    calls = [json.loads(x) for x in o.run("tail -n 50 /var/log/bm-sim/api.jsonl").stdout.splitlines()]
    assert any(c.get("path") == INTERNAL_FW and c.get("port") == 8090 and c.get("status") == 200 for c in calls)
    missing_scope = o.run("bm-cli maintenance repair --ops domain.keycloak", check=False)
    assert missing_scope.returncode == 2 and "exactly one of" in missing_scope.stderr
    unknown = o.run("bm-cli maintenance frobnicate", check=False)
    assert unknown.returncode == 2 and "Unknown command" in unknown.stderr


def test_keycloak_database_realms_and_secrets_match_bj(lab5):
    for host in (lab5.origin, lab5.target):
        owner = host.run("runuser -u postgres -- psql -XtA -c \"SELECT pg_get_userbyid(datdba) FROM pg_database "
                         "WHERE datname = 'keycloak'\"").stdout.strip()
        assert owner == "keycloak"
        domains = psql(host, "bj", "SELECT name FROM t_domain ORDER BY name").split()
        assert "global.virt" in domains
        kc = host.run("PGPASSWORD=keycloak psql -X -h 127.0.0.1 -U keycloak -d keycloak -tA -F ' ' -c "
                      "\"SELECT r.id, c.client_id, c.secret FROM realm r JOIN client c ON c.realm_id = r.id "
                      "ORDER BY r.id\"").stdout.split("\n")
        rows = [line.split(" ") for line in kc if line]
        assert [r[0] for r in rows] == domains
        for realm, client, client_secret in rows:
            assert client == realm + "-cli" and client_secret == secret(host, realm)
        assert "db-url=jdbc:postgresql://127.0.0.1:5432/keycloak" in host.run("cat /etc/bm-keycloak/keycloak.conf").stdout
        assert host.run("ss -ltnH 'sport = :8099' | wc -l").stdout.strip() == "1"
    # secrets are made per installation
    assert secret(lab5.origin, "lab.test") != secret(lab5.target, "lab.test")


def test_login_needs_the_password_and_the_client_secret_of_bj(lab5):
    o = lab5.origin
    assert kc_login(o, "admin@lab.test", USER_PASSWORD) == (0, {"status": 200, "error": None, "token": True})
    assert kc_login(o, "admin0@global.virt", USER_PASSWORD)[0] == 0
    assert kc_login(o, "admin@lab.test", "wrong")[1]["error"] == "invalid_grant"


def test_bj_from_another_server_breaks_logins_until_the_keycloak_repair(lab5):
    """What a migration that moves bj but not Keycloak's database leaves: the target's Keycloak has its
    own secrets, bj the origin's; nobody logs in until `bm-cli maintenance repair <domain> --ops
    domain.keycloak` (and global.virt's, which --all-domains does not reach) re-creates realm and client."""
    t = lab5.target
    before = secret(t, "lab.test")
    origin_secret = secret(lab5.origin, "lab.test")
    try:
        psql(t, "bj", "UPDATE t_domain SET properties = properties || hstore('OPENID_CLIENT_SECRET', '%s') "
                      "WHERE name = 'lab.test'" % origin_secret)
        rc, body = kc_login(t, "admin@lab.test", USER_PASSWORD)
        assert (rc, body["error"]) == (1, "invalid_client")
        assert t.run("bm-sim keycloak check lab.test", check=False).returncode == 1
        out = t.run("bm-cli maintenance repair lab.test --ops domain.keycloak").stdout
        assert "Reset keycloak configuration for domain: lab.test" in out
        after = secret(t, "lab.test")
        assert after not in (before, origin_secret)  # a new client, a new secret, written to bj
        assert kc_login(t, "admin@lab.test", USER_PASSWORD)[0] == 0
        again = t.run("bm-cli maintenance repair lab.test --ops domain.keycloak").stdout
        assert "don't need repair" in again and secret(t, "lab.test") == after
        every = t.run("bm-cli maintenance repair --all-domains --ops domain.keycloak --dry").stdout
        assert "global.virt" not in every
    finally:
        t.run("bm-cli maintenance repair lab.test --ops domain.keycloak", check=False)


def test_activity_changes_rows_and_drops_orphan_bodies_without_cyrus_files(lab5):
    o = lab5.origin
    out = json.loads(o.run("bm-sim activity --flags 2 --delete 3").stdout)
    assert (out["flags"], out["deleted"]) == (2, 3) and out["changed"] == []
    assert len(out["removed"]) == out["bodies_deleted"]
    for path in out["removed"]:  # the body of a message no mailbox keeps is gone with its row
        guid = path.rsplit("/", 1)[1][:-4]
        assert o.run("test -e %s" % path, check=False).returncode == 1
        assert psql(o, "bj-data", "SELECT count(*) FROM t_message_body WHERE guid = '%s'" % guid) == "0"
    assert o.run("test -e /var/lib/cyrus", check=False).returncode == 1


def test_keycloak_admin_is_an_internal_api_of_the_core(lab5):
    """IKeycloakAdmin (internal): realms listed on 8090 only; DELETE then POST (initForDomain) makes a
    new client whose secret goes to bj, so logins work again."""
    t = lab5.target
    key, base = token(t), "http://%s:8090/internal-api/keycloak" % t.ip
    status, realms = call(lab5, t, "GET", base, key)
    assert status == 200 and sorted(r["realm"] for r in realms) == psql(t, "bj", "SELECT name FROM t_domain ORDER BY name").split()
    assert call(lab5, t, "GET", "%s/internal-api/keycloak" % t.api_url, key)[0] == 404
    before = secret(t, "lab.test")
    try:
        assert call(lab5, t, "DELETE", base + "/lab.test", key)[0] == 200
        assert call(lab5, t, "GET", base + "/lab.test", key) == (200, None)
        assert kc_login(t, "admin@lab.test", USER_PASSWORD)[1]["status"] == 404  # no realm, no login
        status, task = call(lab5, t, "POST", base + "/lab.test", key)
        assert status == 200
        deadline = time.monotonic() + 20
        while call(lab5, t, "GET", "%s/api/tasks/%s" % (t.api_url, task["id"]), key)[1]["state"] != "Success":
            assert time.monotonic() < deadline, "initForDomain did not succeed"
            time.sleep(0.3)
        assert secret(t, "lab.test") != before
        assert kc_login(t, "admin@lab.test", USER_PASSWORD)[0] == 0
    finally:
        t.run("bm-cli maintenance repair lab.test --ops domain.keycloak", check=False)


def repair_task(lab, host, domain, dry, verbose=True):
    """IDirEntryMaintenance repair of `domain`'s own entry with domain.keycloak; returns the task's log lines."""
    key = token(host)
    body = json.dumps({"opIdentifiers": ["domain.keycloak"], "dry": dry, "logToCoreLog": not dry,
                       "verbose": verbose}).encode()
    req = urllib.request.Request("%s/api/directory/%s/%s/mgmt/_maintenance/repair" % (host.api_url, domain, domain),
                                 method="POST", data=body, headers={"X-BM-ApiKey": key})
    with urllib.request.urlopen(req, timeout=20, context=ssl.create_default_context(cafile=lab.ca_file)) as r:
        task = json.loads(r.read().decode())
    deadline = time.monotonic() + 20
    while call(lab, host, "GET", "%s/api/tasks/%s" % (host.api_url, task["id"]), key)[1]["state"] != "Success":
        assert time.monotonic() < deadline, "the repair task did not succeed"
        time.sleep(0.3)
    return call(lab, host, "GET", "%s/api/tasks/%s/_currentLogs" % (host.api_url, task["id"]), key)[1]


def test_domain_keycloak_through_the_directory_maintenance_api(lab5):
    """What the collection sends (IDomains.all, then IDirEntryMaintenance repair with a RepairConfig):
    the check says ko while bj holds another server's secret, the repair says it reset it, a check
    after says ok; without verbose the task log has no progress line."""
    t = lab5.target
    status, domains = call(lab5, t, "GET", "%s/api/domains" % t.api_url, token(t))
    assert status == 200 and sorted(d["uid"] for d in domains) == ["global.virt", "lab.test"]
    try:
        psql(t, "bj", "UPDATE t_domain SET properties = properties || hstore('OPENID_CLIENT_SECRET', '%s') "
                      "WHERE name = 'global.virt'" % secret(lab5.origin, "global.virt"))
        assert repair_task(lab5, t, "global.virt", dry=True)[-1] == "Keycloak configuration is ko"
        assert repair_task(lab5, t, "global.virt", dry=True, verbose=False) == []
        assert repair_task(lab5, t, "global.virt", dry=False)[1:] == [
            "Keycloak configuration need repair for domain: global.virt",
            "Reset keycloak configuration for domain: global.virt"]
        assert repair_task(lab5, t, "global.virt", dry=True)[-1] == "Keycloak configuration is ok"
        assert kc_login(t, "admin0@global.virt", USER_PASSWORD)[0] == 0
    finally:
        t.run("bm-cli maintenance repair global.virt --ops domain.keycloak", check=False)
