import pytest

from ansible_collections.bluemind.migration.plugins.module_utils import api as bmapi

PASSWORD = "s3cret-Passw0rd"


def params(**extra):
    base = dict(api_url="https://bm.example.test/", validate_certs=True, ca_path="/etc/ca.pem", api_timeout=7,
                api_login="admin0@global.virt", api_password=PASSWORD, api_token=None, api_token_file=None)
    return dict(base, **extra)


def test_login_sends_the_password_as_a_json_string_then_uses_the_key(api):
    api.routes[("GET", "/configuration")] = (200, {"values": {"mynetworks": "127.0.0.0/8"}})
    with bmapi.BlueMindClient(params()) as client:
        assert client.get_configuration() == {"mynetworks": "127.0.0.0/8"}
    login = api.calls("POST", "/auth/login")[0]
    assert login["body"] == PASSWORD
    assert "login=admin0%40global.virt" in login["query"]
    assert "X-BM-ApiKey" not in login["headers"]
    conf = api.calls("GET", "/configuration")[0]
    assert conf["headers"]["X-BM-ApiKey"] == "session-key"
    assert conf["headers"]["X-BM-ClientVersion"] == "4.9.3884"
    assert conf["options"]["validate_certs"] is True and conf["options"]["ca_path"] == "/etc/ca.pem"
    assert conf["url"].startswith("https://bm.example.test/api/")
    assert len(api.calls("POST", "/auth/logout")) == 1


def test_bad_password_is_refused_without_echoing_it(api):
    api.routes[("POST", "/auth/login")] = (200, {"status": "Bad", "message": "bad pass"})
    with pytest.raises(bmapi.LoginRefusedError) as err:
        with bmapi.BlueMindClient(params()) as client:
            client.get_configuration()
    assert "login refused for admin0@global.virt" in str(err.value)
    assert PASSWORD not in str(err.value)
    assert api.calls("POST", "/auth/logout") == []


def test_token_is_used_directly_and_never_logged_out(api):
    api.routes[("GET", "/configuration")] = (200, {"values": {}})
    with bmapi.BlueMindClient(params(api_password=None, api_token="tok-123")) as client:
        client.get_configuration()
    assert api.calls("POST", "/auth/login") == [] and api.calls("POST", "/auth/logout") == []
    assert api.calls("GET", "/configuration")[0]["headers"]["X-BM-ApiKey"] == "tok-123"


def test_token_file(api, tmp_path):
    token = tmp_path / "bm-core.tok"
    token.write_text("file-token\n")
    with bmapi.BlueMindClient(params(api_password=None, api_token_file=str(token))) as client:
        client.authenticate()
    assert api.calls("GET", "/system/installation/version")[0]["headers"]["X-BM-ApiKey"] == "file-token"


def test_missing_token_file_says_what_to_do(api, tmp_path):
    with pytest.raises(bmapi.BlueMindApiError, match="cannot read the API token file .*nope.tok"):
        bmapi.BlueMindClient(params(api_password=None, api_token_file=str(tmp_path / "nope.tok"))).authenticate()


def test_http_error_carries_the_server_fault(api):
    api.routes[("POST", "/system/maildelivery/mgmt/_repair")] = (
        403, {"errorCode": "PERMISSION_DENIED", "errorType": "ServerFault", "message": "not admin"})
    with pytest.raises(bmapi.BlueMindApiError) as err:
        bmapi.BlueMindClient(params(api_password=None, api_token="t")).run_task(bmapi.MAIL_REPAIR_PATH, 10)
    assert "HTTP 403: PERMISSION_DENIED not admin" in str(err.value)
    assert "/api/system/maildelivery/mgmt/_repair" in str(err.value)


def test_refused_key_is_a_401_and_never_echoed(api):
    # BlueMind's RestServiceMethodHandler: 401, AUTHENTICATION_FAIL, "session id <key> is not valid".
    api.routes[("GET", "/system/installation/version")] = (
        401, {"errorCode": "AUTHENTICATION_FAIL", "errorType": "ServerFault",
              "message": "session id other-servers-token is not valid"})
    with pytest.raises(bmapi.BlueMindApiError) as err:
        bmapi.BlueMindClient(params(api_password=None, api_token="other-servers-token")).server_version()
    assert "HTTP 401: AUTHENTICATION_FAIL session id <hidden> is not valid" in str(err.value)
    assert "not this server's /etc/bm/bm-core.tok" in str(err.value)
    assert "other-servers-token" not in str(err.value)


def test_unreachable_server(api):
    def refuse(_request):
        raise bmapi.URLError("Connection refused")
    api.routes[("GET", "/system/installation/_infos")] = refuse
    with pytest.raises(bmapi.BlueMindApiError, match="cannot reach the BlueMind API .Connection refused"):
        bmapi.BlueMindClient(params()).public_infos()


def test_a_connection_dropped_by_a_stopping_core_says_to_check_the_core(api):
    def reset(_request):
        raise ConnectionResetError(104, "Connection reset by peer")
    api.routes[("POST", "/auth/login")] = reset
    with pytest.raises(bmapi.BlueMindApiError) as err:
        bmapi.BlueMindClient(params()).authenticate()
    assert str(err.value).startswith("POST https://") and "/api/auth/login: cannot reach the BlueMind API (the connection was " \
        "closed: [Errno 104] Connection reset by peer); check that bm-core runs (it may be stopping or starting)" in str(err.value)


def test_a_timeout_still_says_to_check_the_timeout(api):
    def slow(_request):
        raise TimeoutError("timed out")
    api.routes[("GET", "/system/installation/_infos")] = slow
    with pytest.raises(bmapi.BlueMindApiError, match="connection failed .timed out.; check api_url and api_timeout"):
        bmapi.BlueMindClient(params()).public_infos()


def test_public_infos_needs_no_login(api):
    api.routes[("GET", "/system/installation/_infos")] = (200, {"softwareVersion": "5.7.3268"})
    assert bmapi.BlueMindClient(params()).public_infos()["softwareVersion"] == "5.7.3268"
    assert api.calls("POST", "/auth/login") == []


def task_client(api, states):
    api.routes[("POST", "/system/security/_updatefirewallrules")] = (200, {"id": "task/1"})
    answers = [{"state": s, "progress": 0, "steps": 1, "lastLogEntry": "log %s" % s} for s in states]
    api.routes[("GET", "/tasks/task%2F1")] = lambda _r: (200, answers.pop(0) if len(answers) > 1 else answers[0])
    clock = [0.0]
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        clock[0] += seconds

    client = bmapi.BlueMindClient(params(api_password=None, api_token="t"), sleep=sleep, clock=lambda: clock[0])
    return client, slept


def test_task_polled_until_success(api):
    client, slept = task_client(api, ["NotStarted", "InProgress", "Success"])
    assert client.run_task("/system/security/_updatefirewallrules", 60)["state"] == "Success"
    assert len(slept) == 2


def test_task_in_error(api):
    client, _slept = task_client(api, ["InProgress", "InError"])
    with pytest.raises(bmapi.TaskFailedError, match="ended in error: log InError"):
        client.run_task("/system/security/_updatefirewallrules", 60)


def test_task_timeout(api):
    client, slept = task_client(api, ["InProgress"])
    with pytest.raises(bmapi.TaskFailedError, match="still InProgress after 5 s"):
        client.run_task("/system/security/_updatefirewallrules", 5)
    assert sum(slept) >= 5 and max(slept) <= 2.0


@pytest.mark.parametrize("version, path", [
    ("4.9.3884", "/system/security/_updatefirewallrules"),
    ("4.3.1", "/system/security/_updatefirewallrules"),
    ("5.7.3268-1", "/system/firewall/_updatefirewallrules"),
])
def test_firewall_path_by_version(version, path):
    assert bmapi.firewall_path(version) == path


@pytest.mark.parametrize("version, message", [("3.5.14", "not supported"), ("latest", "cannot read a BlueMind major")])
def test_firewall_path_rejects_unknown_versions(version, message):
    with pytest.raises(bmapi.BlueMindApiError, match=message):
        bmapi.firewall_path(version)


def test_internal_calls_use_their_root_and_the_same_session(api, no_sleep):
    api.routes[("POST", "/internal-api/system/firewall/_updatefirewallrules")] = (200, {"id": "7"})
    api.routes[("GET", "/tasks/7")] = (200, {"state": "Success"})
    client = bmapi.BlueMindClient(params(api_url="http://127.0.0.1:8090"))
    status = client.run_task("/system/firewall/_updatefirewallrules", 60, root="/internal-api")
    assert status == {"state": "Success", "id": "7"}
    (call,) = api.calls("POST", "/internal-api/system/firewall/_updatefirewallrules")
    assert call["url"] == "http://127.0.0.1:8090/internal-api/system/firewall/_updatefirewallrules"
    assert call["headers"]["X-BM-ApiKey"] == "session-key"


def test_directory_repair_sends_the_repair_config_and_reads_the_logs(api, no_sleep):
    api.routes[("POST", "/directory/bm.lan/bm.lan/mgmt/_maintenance/repair")] = (200, {"id": "9"})
    api.routes[("GET", "/tasks/9")] = (200, {"state": "Success"})
    api.routes[("GET", "/tasks/9/_currentLogs")] = (200, ["Keycloak configuration is ok"])
    api.routes[("GET", "/domains")] = (200, [{"uid": "bm.lan"}, {"uid": "global.virt"}])
    client = bmapi.BlueMindClient(params())
    assert client.domains() == ["bm.lan", "global.virt"]
    status = client.repair_entry("bm.lan", "bm.lan", ["domain.keycloak"], 60, dry=True)
    assert status["logs"] == ["Keycloak configuration is ok"]
    (call,) = api.calls("POST", "/directory/bm.lan/bm.lan/mgmt/_maintenance/repair")
    assert call["body"] == {"opIdentifiers": ["domain.keycloak"], "dry": True, "logToCoreLog": False, "verbose": True}
    assert api.calls("GET", "/tasks/9/_currentLogs")[0]["query"] == "offset=0"


def test_firewall_root_by_version():
    assert bmapi.firewall_root("4.9.3884") == "/api" and bmapi.firewall_root("5.7.3268") == "/internal-api"
