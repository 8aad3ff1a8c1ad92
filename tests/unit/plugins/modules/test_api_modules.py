"""bluemind_firewall, bluemind_mail_repair and bluemind_sysconf driven through main()."""

import os

import pytest

from ansible.module_utils import basic

from ansible_collections.bluemind.migration.plugins.modules import (
    bluemind_firewall,
    bluemind_mail_repair,
    bluemind_sysconf,
)

from ...conftest import assert_no_secret

PASSWORD = "Adm1n-s3cret"
AUTH = dict(api_url="https://192.0.2.20", api_password=PASSWORD, ca_path="/etc/lab-ca.pem")
FW4 = "/system/security/_updatefirewallrules"
FW5 = "/system/firewall/_updatefirewallrules"
REPAIR = "/system/maildelivery/mgmt/_repair"


def task(api, path, state="Success", effect=None):
    """``path`` answers a TaskRef; the task reports ``state``; ``effect`` runs when it is started."""
    def start(_request):
        if effect:
            effect()
        return 200, {"id": "42"}
    api.routes[("POST", path)] = start
    api.routes[("GET", "/tasks/42")] = (200, {"state": state, "progress": 1, "steps": 1, "lastLogEntry": "done"})


# -- bluemind_firewall ----------------------------------------------------------------------

def test_firewall_4x_calls_the_public_api_at_api_url(run_module, api):
    task(api, FW4)
    result = run_module(bluemind_firewall, AUTH)
    assert result["changed"] is True and result["api_path"] == FW4 and result["api_root"] == "/api"
    assert result["task"]["state"] == "Success"
    (call,) = api.calls("POST", FW4)
    assert call["url"] == "https://192.0.2.20/api" + FW4
    assert_no_secret(result, PASSWORD)


def test_firewall_5x_calls_the_internal_api_on_the_core_port(run_module, api):
    # IInternalFirewallMgmt is @BMApi(internal = true): /internal-api, port 8090 only, same session key.
    api.routes[("GET", "/system/installation/version")] = (200, {"softwareVersion": "5.7.3268"})
    task(api, "/internal-api" + FW5)
    result = run_module(bluemind_firewall, AUTH)
    assert result["changed"] is True and result["api_root"] == "/internal-api" and result["api_path"] == FW5
    assert result["api_url"] == "http://127.0.0.1:8090" and result["task"]["state"] == "Success"
    (call,) = api.calls("POST", "/internal-api" + FW5)
    assert call["url"] == "http://127.0.0.1:8090/internal-api" + FW5
    assert call["headers"]["X-BM-ApiKey"] == "session-key"
    # neither /api firewall path (both 404 on 5.x) is sent
    assert api.calls("POST", FW5) == [] and api.calls("POST", FW4) == []
    # the version is read at api_url; the internal call logs in again at the core's port, then out
    logins = [r["url"] for r in api.calls("POST", "/auth/login")]
    assert logins[0].startswith("https://192.0.2.20/api/auth/login")
    assert logins[1].startswith("http://127.0.0.1:8090/api/auth/login")
    assert len(api.calls("POST", "/auth/logout")) == 2
    assert_no_secret(result, PASSWORD)


def test_firewall_5x_reuses_the_session_when_api_url_is_the_core(run_module, api):
    task(api, "/internal-api" + FW5)
    args = dict(AUTH, api_url="http://127.0.0.1:8090", version="5")
    result = run_module(bluemind_firewall, args)
    assert result["task"]["state"] == "Success" and len(api.calls("POST", "/auth/login")) == 1


def test_firewall_5x_error_names_the_internal_call(run_module, api):
    api.routes[("POST", "/internal-api" + FW5)] = (404, {"errorCode": "NOT_FOUND", "message": "no route"})
    result = run_module(bluemind_firewall, dict(AUTH, version="5.7.3268"))
    assert result["failed"] is True and "/internal-api" + FW5 in result["msg"] and "404" in result["msg"]


def test_firewall_rules_file_decides_changed(run_module, api, tmp_path):
    rules = tmp_path / "rules.v4"
    rules.write_text("old\n")
    task(api, FW4, effect=lambda: rules.write_text("new\n"))
    assert run_module(bluemind_firewall, dict(AUTH, rules_file=str(rules)))["changed"] is True
    task(api, FW4, effect=lambda: rules.write_text("new\n"))
    assert run_module(bluemind_firewall, dict(AUTH, rules_file=str(rules)))["changed"] is False


def test_firewall_check_mode_logs_in_but_starts_nothing(run_module, api):
    task(api, FW4)
    result = run_module(bluemind_firewall, dict(AUTH, version="5.1"), check_mode=True)
    assert result["changed"] is True and result["api_path"] == FW5 and result["api_root"] == "/internal-api"
    assert api.calls("POST", "/internal-api" + FW5) == [] and len(api.calls("POST", "/auth/login")) == 1


def test_firewall_task_error(run_module, api):
    task(api, FW4, state="InError")
    result = run_module(bluemind_firewall, AUTH)
    assert result["failed"] is True and "firewall regeneration: the task 42" in result["msg"]
    assert_no_secret(result, PASSWORD)


def test_wrong_password_is_refused_by_name_never_echoed(run_module, api):
    api.routes[("POST", "/auth/login")] = (200, {"status": "Bad", "message": "Invalid credentials"})
    for module in (bluemind_firewall, bluemind_mail_repair, bluemind_sysconf):
        result = run_module(module, AUTH)
        assert result["failed"] is True
        assert "login refused for admin0@global.virt" in result["msg"]
        assert_no_secret(result, PASSWORD)


def test_auth_options_are_exclusive(run_module, api):
    result = run_module(bluemind_firewall, dict(AUTH, api_token="token-value"))
    assert result["failed"] is True and "mutually exclusive" in result["msg"]
    assert api.requests == []


# -- bluemind_mail_repair -------------------------------------------------------------------

@pytest.fixture
def maps(tmp_path):
    paths = [tmp_path / name for name in ("transport.db", "virtual_domains.db")]
    for path in paths:
        path.write_text("old")
    return [str(p) for p in paths]


def rebuild(paths):
    def effect():
        for path in paths:  # like postmap + rename: a new inode
            with open(path + ".new", "w") as handle:
                handle.write("new")
            os.rename(path + ".new", path)
    return effect


def test_repair_waits_for_the_maps(run_module, api, maps, no_sleep):
    task(api, REPAIR, effect=rebuild(maps))
    result = run_module(bluemind_mail_repair, dict(AUTH, maps=maps))
    assert result["changed"] is True and not result.get("failed")
    assert result["maps"] == [dict(path=p, rebuilt=True) for p in maps]


def test_repair_fails_when_a_map_is_not_rewritten(run_module, api, maps, no_sleep):
    task(api, REPAIR, effect=rebuild(maps[:1]))
    result = run_module(bluemind_mail_repair, dict(AUTH, maps=maps, maps_timeout=30))
    assert result["failed"] is True
    assert "%s was not rewritten within 30 s" % maps[1] in result["msg"]
    assert no_sleep[0] >= 1030


def test_repair_without_waiting_reports_what_it_saw(run_module, api, maps):
    task(api, REPAIR)
    result = run_module(bluemind_mail_repair, dict(AUTH, maps=maps, maps_timeout=0))
    assert not result.get("failed") and [m["rebuilt"] for m in result["maps"]] == [False, False]


def test_repair_check_mode(run_module, api, maps):
    task(api, REPAIR)
    result = run_module(bluemind_mail_repair, dict(AUTH, maps=maps), check_mode=True)
    assert result["changed"] is True and api.calls("POST", REPAIR) == []


# -- bluemind_sysconf -----------------------------------------------------------------------

class ServerConf(object):
    """The configuration as the server keeps it (bm.ini's host merged in), normalising mynetworks
    like BlueMind: loopback and the server's addresses added, sorted."""

    def __init__(self, api, own=("192.0.2.20/32",), **values):
        self.values = dict(values, host="192.0.2.20")
        self.own = set(own)
        self.posted = []
        api.routes[("GET", "/configuration")] = lambda _r: (200, {"values": dict(self.values)})
        api.routes[("POST", "/configuration")] = self.post

    def post(self, request):
        self.posted.append(request["body"])
        for key, value in request["body"].items():
            if key == "mynetworks":
                nets = set(value.replace(",", " ").split()) | {"127.0.0.0/8"} | self.own
                value = ", ".join(sorted(nets))
            self.values[key] = value
        return 200, b""


def test_sysconf_sets_mynetworks_then_is_idempotent(run_module, api):
    conf = ServerConf(api, mynetworks="127.0.0.0/8, 192.0.2.20/32", password="dbpass")
    first = run_module(bluemind_sysconf, dict(AUTH, values=dict(mynetworks="10.0.0.0/24,10.1.0.0/16")), diff=True)
    assert first["changed"] is True and first["updated"] == ["mynetworks"]
    assert conf.posted == [{"mynetworks": "10.0.0.0/24,10.1.0.0/16"}]
    assert first["diff"] == dict(before=dict(mynetworks="127.0.0.0/8, 192.0.2.20/32"),
                                 after=dict(mynetworks="10.0.0.0/24, 10.1.0.0/16, 127.0.0.0/8, 192.0.2.20/32"))
    assert "password" not in first["values"]
    second = run_module(bluemind_sysconf, dict(AUTH, values=dict(mynetworks="10.1.0.0/16 10.0.0.0/24")))
    assert second["changed"] is False and len(conf.posted) == 1
    assert_no_secret(second, PASSWORD, "dbpass")


def test_sysconf_removes_networks_not_given(run_module, api):
    conf = ServerConf(api, mynetworks="10.9.0.0/16, 127.0.0.0/8, 192.0.2.20/32")
    result = run_module(bluemind_sysconf, dict(AUTH, values=dict(mynetworks="10.0.0.0/24")))
    assert result["changed"] is True and conf.posted == [{"mynetworks": "10.0.0.0/24"}]
    assert conf.values["mynetworks"] == "10.0.0.0/24, 127.0.0.0/8, 192.0.2.20/32"


def test_sysconf_changed_is_what_the_server_shows(run_module, api):
    # a server that adds an address the module cannot know: the value is sent, nothing changes
    conf = ServerConf(api, own=("192.0.2.20/32", "192.0.2.21/32"),
                      mynetworks="10.0.0.0/24, 127.0.0.0/8, 192.0.2.20/32, 192.0.2.21/32")
    result = run_module(bluemind_sysconf, dict(AUTH, values=dict(mynetworks="10.0.0.0/24")))
    assert len(conf.posted) == 1 and result["changed"] is False and not result.get("failed")


def test_sysconf_check_mode_predicts_without_posting(run_module, api):
    conf = ServerConf(api, fwAdditionalIPs="")
    result = run_module(bluemind_sysconf, dict(AUTH, values=dict(fwAdditionalIPs="192.0.2.0/24")),
                        check_mode=True, diff=True)
    assert result["changed"] is True and conf.posted == []
    assert result["diff"] == dict(before=dict(fwAdditionalIPs=""), after=dict(fwAdditionalIPs="192.0.2.0/24"))


def test_sysconf_values_as_text(run_module, api):
    conf = ServerConf(api, imap_idle="false", maxSize="10")
    result = run_module(bluemind_sysconf, dict(AUTH, values=dict(imap_idle=False, maxSize=20)))
    assert conf.posted == [{"maxSize": "20"}] and result["updated"] == ["maxSize"]


def test_sysconf_read_only(run_module, api):
    conf = ServerConf(api, mynetworks="127.0.0.0/8", sw_password="x")
    result = run_module(bluemind_sysconf, dict(AUTH))
    assert result["changed"] is False and conf.posted == []
    assert result["values"] == {"mynetworks": "127.0.0.0/8", "host": "192.0.2.20"}


def test_sysconf_value_refused_by_the_server(run_module, api):
    conf = ServerConf(api, relayhost="")
    api.routes[("POST", "/configuration")] = lambda r: (conf.posted.append(r["body"]) or (200, b""))
    result = run_module(bluemind_sysconf, dict(AUTH, values=dict(relayhost="smtp.example.test")))
    assert result["failed"] is True and "the server did not keep relayhost" in result["msg"]


class SanitizingServer(ServerConf):
    """A server normalising like MyNetworksValidator/Sanitizor: entries as written, "!" stripped,
    an invalid entry refused with 500 INVALID_PARAMETER, loopback and ``own`` always added."""

    def post(self, request):
        value = request["body"].get("mynetworks")
        if value is not None:
            parts = set(p.strip().lstrip("!") for p in value.replace(",", " ").split(" ") if p.strip())
            if any(not p[0].isdigit() for p in parts):
                self.posted.append(request["body"])
                return 500, {"errorCode": "INVALID_PARAMETER", "errorType": "ServerFault",
                             "message": "Invalid mynetworks: " + value}
            request["body"]["mynetworks"] = ", ".join(sorted(parts | {"127.0.0.0/8"} | self.own))
        self.posted.append(request["body"])
        self.values.update(request["body"])
        return 200, b""


def test_sysconf_replaces_the_old_server_address_then_changes_nothing(run_module, api):
    # as the origin's copy leaves it on a target that kept its own address (192.0.2.20)
    conf = SanitizingServer(api, mynetworks="10.0.0.0/24, 127.0.0.0/8, 192.0.2.10/32")
    args = dict(AUTH, replace_addresses=["192.0.2.10"], replace_with="192.0.2.20")
    first = run_module(bluemind_sysconf, args, diff=True)
    assert first["changed"] is True and first["server_addresses"] == ["192.0.2.20"]
    assert conf.values["mynetworks"] == "10.0.0.0/24, 127.0.0.0/8, 192.0.2.20/32"
    assert first["diff"]["after"]["mynetworks"] == conf.values["mynetworks"]
    second = run_module(bluemind_sysconf, args, check_mode=True, diff=True)
    assert second["changed"] is False and second["diff"]["before"] == second["diff"]["after"]
    third = run_module(bluemind_sysconf, args)
    assert third["changed"] is False and len(conf.posted) == 1


def test_sysconf_check_mode_diff_shows_what_the_server_will_hold(run_module, api):
    conf = SanitizingServer(api, mynetworks="127.0.0.0/8, 192.0.2.20/32")
    result = run_module(bluemind_sysconf, dict(AUTH, values=dict(mynetworks="!10.0.0.0/24 10.1.0.0/16")),
                        check_mode=True, diff=True)
    assert result["changed"] is True and conf.posted == []
    assert result["diff"]["after"]["mynetworks"] == "10.0.0.0/24, 10.1.0.0/16, 127.0.0.0/8, 192.0.2.20/32"
    run_module(bluemind_sysconf, dict(AUTH, values=dict(mynetworks="!10.0.0.0/24 10.1.0.0/16")))
    assert conf.values["mynetworks"] == result["diff"]["after"]["mynetworks"]


def test_sysconf_given_server_addresses_predict_a_second_server(run_module, api):
    conf = SanitizingServer(api, own=("192.0.2.20/32", "192.0.2.21/32"),
                            mynetworks="10.0.0.0/24, 127.0.0.0/8, 192.0.2.20/32, 192.0.2.21/32")
    args = dict(AUTH, values=dict(mynetworks="10.0.0.0/24"), server_addresses=["192.0.2.20", "192.0.2.21"])
    result = run_module(bluemind_sysconf, args, check_mode=True)
    assert result["changed"] is False and conf.posted == []


def test_sysconf_invalid_mynetworks_fails_before_sending(run_module, api):
    conf = SanitizingServer(api, mynetworks="127.0.0.0/8")
    for check_mode in (True, False):
        result = run_module(bluemind_sysconf, dict(AUTH, values=dict(mynetworks="10.0.0.0/24 relay.example.test")),
                            check_mode=check_mode)
        assert result["failed"] is True and "relay.example.test" in result["msg"] and "HTTP 500" in result["msg"]
    assert conf.posted == []


def test_sysconf_reads_the_local_addresses_when_it_calls_its_own_api(run_module, api, commands, monkeypatch):
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda self, name, *a, **k: "/usr/sbin/" + name)
    conf = SanitizingServer(api, own=("192.0.2.20/32", "10.9.8.7/32"),
                            mynetworks="10.9.8.7/32, 127.0.0.0/8, 192.0.2.20/32")
    commands.add(lambda a: a[-4:] == ["-o", "-4", "addr", "show"], (0, (
        "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever\n"
        "2: eth0    inet 192.0.2.20/24 brd 192.0.2.255 scope global eth0\\       valid_lft forever\n"
        "3: eth1    inet 10.9.8.7/16 brd 10.9.255.255 scope global eth1\\       valid_lft forever\n"
        "4: tun0    inet 172.16.0.1 peer 172.16.0.2/32 scope global tun0\n"), ""))
    result = run_module(bluemind_sysconf, dict(AUTH, api_url="http://127.0.0.1:8090",
                                               values=dict(mynetworks="127.0.0.0/8")), check_mode=True)
    assert result["server_addresses"] == ["10.9.8.7", "192.0.2.20"]
    assert result["changed"] is False and conf.posted == []
