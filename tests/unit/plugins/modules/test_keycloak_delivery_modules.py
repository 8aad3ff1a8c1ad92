"""bluemind_keycloak and bluemind_delivery_info driven through main()."""
import io
import json
from unittest import mock

import pytest

from ansible_collections.bluemind.migration.plugins.modules import bluemind_delivery_info, bluemind_keycloak

from ...conftest import assert_no_secret

PASSWORD = "Adm1n-s3cret"
AUTH = dict(api_url="https://192.0.2.20", api_password=PASSWORD, keycloak_url="")
REPAIR = "/directory/%s/%s/mgmt/_maintenance/repair"


class Keycloak(object):
    """A BlueMind 5.x whose Keycloak matches bj for the domains in ``good`` (repair fixes the others)."""

    def __init__(self, api, domains, good=(), fixable=True):
        self.api, self.good, self.fixable, self.tasks = api, set(good), fixable, {}
        api.routes[("GET", "/domains")] = (200, [{"uid": d, "value": {}} for d in domains])
        for domain in list(domains) + ["global.virt"]:
            api.routes[("POST", REPAIR % (domain, domain))] = self.repair(domain)

    def repair(self, domain):
        def answer(request):
            body = request["body"]
            assert body["opIdentifiers"] == ["domain.keycloak"] and body["verbose"] is True
            if body["dry"]:
                logs = ["Keycloak configuration is %s" % ("ok" if domain in self.good else "ko")]
            elif domain in self.good:
                logs = ["Keycloak configuration don't need repair for domain: %s" % domain]
            else:
                logs = ["Keycloak configuration need repair for domain: %s" % domain,
                        "Reset keycloak configuration for domain: %s" % domain]
                if self.fixable:
                    self.good.add(domain)
            task_id = "t%d" % (len(self.tasks) + 1)
            self.tasks[task_id] = logs
            self.api.routes[("GET", "/tasks/%s" % task_id)] = (200, {"state": "Success"})
            self.api.routes[("GET", "/tasks/%s/_currentLogs" % task_id)] = (200, logs)
            return 200, {"id": task_id}
        return answer

    def calls(self, domain, dry):
        return [r for r in self.api.calls("POST", REPAIR % (domain, domain)) if r["body"]["dry"] is dry]


def test_repairs_every_domain_and_global_virt_then_checks(run_module, api):
    kc = Keycloak(api, ["bm.lan", "ex.org"], good=["ex.org"])
    result = run_module(bluemind_keycloak, AUTH)
    assert not result.get("failed") and result["changed"] is True
    assert [(d["domain"], d["repair"], d["check"]) for d in result["domains"]] == [
        ("bm.lan", "repaired", "ok"), ("ex.org", "ok", "ok"), ("global.virt", "repaired", "ok")]
    for domain in ("bm.lan", "ex.org", "global.virt"):
        assert len(kc.calls(domain, dry=False)) == 1 and len(kc.calls(domain, dry=True)) == 1
    assert_no_secret(result, PASSWORD)


def test_nothing_to_repair_is_no_change(run_module, api):
    Keycloak(api, ["bm.lan"], good=["bm.lan", "global.virt"])
    result = run_module(bluemind_keycloak, AUTH)
    assert result["changed"] is False and {d["repair"] for d in result["domains"]} == {"ok"}


def test_check_mode_only_checks(run_module, api):
    kc = Keycloak(api, ["bm.lan"], good=["global.virt"])
    result = run_module(bluemind_keycloak, AUTH, check_mode=True)
    assert result["changed"] is True and kc.calls("bm.lan", dry=False) == [] and kc.calls("global.virt", dry=False) == []
    assert [(d["domain"], d["repair"], d["check"]) for d in result["domains"]] == [
        ("bm.lan", "skipped", "ko"), ("global.virt", "skipped", "ok")]


def test_a_realm_still_wrong_after_the_repair_fails_and_says_why(run_module, api):
    Keycloak(api, ["bm.lan"], good=["global.virt"], fixable=False)
    result = run_module(bluemind_keycloak, AUTH)
    assert result["failed"] is True and "still does not match BlueMind for bm.lan" in result["msg"]
    assert "bm-core.tok" in result["msg"]
    assert_no_secret(result, PASSWORD)


def test_the_realm_discovery_check(run_module, api):
    Keycloak(api, ["bm.lan"], good=["bm.lan", "global.virt"])
    served = {"bm.lan"}

    def discovery(url, **kwargs):
        realm = url.split("/realms/")[1].split("/")[0]
        assert url.startswith("http://127.0.0.1:8099/realms/") and kwargs["method"] == "GET"
        if realm not in served:
            raise IOError("404")
        return io.BytesIO(json.dumps({"issuer": "https://mail.bm.lan/keycloak/realms/%s" % realm}).encode())

    with mock.patch.object(bluemind_keycloak, "open_url", discovery):
        result = run_module(bluemind_keycloak, dict(AUTH, keycloak_url="http://127.0.0.1:8099"))
    assert result["failed"] is True and "for global.virt" in result["msg"]
    assert [d["realm"] for d in result["domains"]] == [True, False]


def test_given_domains_skip_the_listing(run_module, api):
    kc = Keycloak(api, ["bm.lan"], good=["bm.lan"])
    result = run_module(bluemind_keycloak, dict(AUTH, domains=["bm.lan"]))
    assert [d["domain"] for d in result["domains"]] == ["bm.lan"] and api.calls("GET", "/domains") == []
    assert kc.calls("global.virt", dry=True) == []


# -- bluemind_delivery_info ------------------------------------------------------------------

DBPW = "bj-s3cret-42"


@pytest.fixture
def psql(commands, tmp_path):
    (tmp_path / "psql").write_text("#!/bin/sh\n")
    (tmp_path / "psql").chmod(0o755)
    answers = []

    def answer(args, kwargs):
        sql = args[args.index("-c") + 1]
        assert "t_message_body" in sql and "t_mailbox_record" in sql and args[args.index("-d") + 1] == "bj-data"
        return 0, "\x1f".join(answers.pop(0) if len(answers) > 1 else answers[0]) + "\0", ""

    commands.add(lambda a: a[0].endswith("/psql"), answer)
    return answers, dict(pg_bin_dir=str(tmp_path), subject="smoke 1")


def test_delivered_when_a_mailbox_record_exists(run_module, psql, commands):
    answers, args = psql
    answers.append(("1", "1"))
    result = run_module(bluemind_delivery_info, dict(args, db_password=DBPW), check_mode=True)
    assert result["delivered"] is True and result["records"] == 1 and result["changed"] is False
    assert commands.calls[0]["environ_update"]["PGPASSWORD"] == DBPW
    assert_no_secret(result, DBPW)


def test_not_delivered_fails_with_where_to_look(run_module, psql):
    answers, args = psql
    answers.append(("1", "0"))  # a body row but no mailbox record: not delivered
    with mock.patch("ansible_collections.bluemind.migration.plugins.module_utils.delivery.time.sleep"):
        result = run_module(bluemind_delivery_info, dict(args, db_password=DBPW, timeout=0))
    assert not result.get("failed") and result["delivered"] is False  # timeout 0: one look, no failure
    clock = iter([0.0, 0.5, 3.0])
    with mock.patch("ansible_collections.bluemind.migration.plugins.module_utils.delivery.time.monotonic",
                    lambda: next(clock)), \
            mock.patch("ansible_collections.bluemind.migration.plugins.module_utils.delivery.time.sleep"):
        result = run_module(bluemind_delivery_info, dict(args, db_password=DBPW, timeout=2))
    assert result["failed"] is True and "did not deliver it" in result["msg"] and "mail.log" in result["msg"]


def test_the_password_comes_from_bm_ini_by_default(run_module, psql, commands, tmp_path):
    answers, args = psql
    answers.append(("1", "2"))
    ini = tmp_path / "bm.ini"
    ini.write_text('[global]\npassword = "%s"\n' % DBPW)
    result = run_module(bluemind_delivery_info, dict(args, bm_ini=str(ini)))
    assert result["delivered"] is True and commands.calls[0]["environ_update"]["PGPASSWORD"] == DBPW
    missing = run_module(bluemind_delivery_info, dict(args, bm_ini=str(tmp_path / "nope.ini")))
    assert missing["failed"] is True and "give db_password" in missing["msg"]
