"""module_utils/keycloak.py and module_utils/delivery.py."""
import pytest

from ansible_collections.bluemind.migration.plugins.module_utils import bmini, delivery, keycloak


def test_every_domain_and_global_virt_once():
    assert keycloak.domains_to_repair(["bm.lan", "ex.org", "global.virt"]) == ["bm.lan", "ex.org", "global.virt"]
    assert keycloak.domains_to_repair(["bm.lan"]) == ["bm.lan", "global.virt"]
    assert keycloak.domains_to_repair(["bm.lan"], ["ex.org"]) == ["ex.org"]  # the operator's list as given


@pytest.mark.parametrize("logs, outcome", [
    (["Check Keycloak configuration for domain: bm.lan", "Keycloak configuration is ok"], "ok"),
    (["Keycloak configuration is ko"], "ko"),
    ([], "unknown"),
])
def test_check_outcome(logs, outcome):
    assert keycloak.check_outcome(logs) == outcome


@pytest.mark.parametrize("logs, outcome", [
    (["Keycloak configuration need repair for domain: bm.lan", "Reset keycloak configuration for domain: bm.lan"],
     "repaired"),
    (["Keycloak configuration don't need repair for domain: bm.lan"], "ok"),
    (["something else"], "unknown"),
])
def test_repair_outcome(logs, outcome):
    assert keycloak.repair_outcome(logs) == outcome


def test_discovery_names_the_realm():
    assert keycloak.discovery_url("http://127.0.0.1:8099/", "bm.lan") == \
        "http://127.0.0.1:8099/realms/bm.lan/.well-known/openid-configuration"
    assert keycloak.discovery_matches({"issuer": "https://mail.bm.lan/keycloak/realms/bm.lan"}, "bm.lan")
    assert not keycloak.discovery_matches({"issuer": "https://mail.bm.lan/keycloak/realms/other.org"}, "bm.lan")
    assert not keycloak.discovery_matches(None, "bm.lan")


def test_delivery_query_matches_body_and_record_by_subject():
    sql = delivery.delivery_sql("smoke it's 1")
    assert "FROM t_message_body b JOIN t_mailbox_record r ON r.message_body_guid = b.guid" in sql
    assert sql.endswith("WHERE b.subject = 'smoke it''s 1'")
    assert delivery.parse_counts([("1", "2")]) == (1, 2) and delivery.parse_counts([]) == (0, 0)


def test_delivery_waits_until_a_record_appears():
    answers = iter([(0, 0), (1, 0), (1, 1)])
    now = [0.0]
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    assert delivery.wait_for_delivery(lambda: next(answers), 60, sleep=sleep, clock=lambda: now[0]) == (1, 1, 4.0, 3)
    assert slept == [2.0, 2.0]


def test_delivery_gives_up_at_the_timeout():
    now = [0.0]

    def sleep(seconds):
        now[0] += seconds

    bodies, records, waited, attempts = delivery.wait_for_delivery(lambda: (0, 0), 5, sleep=sleep, clock=lambda: now[0])
    assert (bodies, records, waited) == (0, 0, 5.0) and attempts == 4  # 0, 2, 4, 5: never sleeps past the end


def test_bm_ini_password():
    text = '[global]\nexternal-url = mail.bm.lan\npassword = "s3cret"\n[other]\npassword = no\n'
    assert bmini.global_settings(text).get("password") == "s3cret"
    assert bmini.global_settings("[other]\npassword = x\n").get("password") is None
