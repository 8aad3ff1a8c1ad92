"""After a whole 5.x migration: the origin's files and rows on the target, logins through Keycloak,
the firewall regenerated through the internal API, mail delivered after the cutover."""
import json
import smtplib
import sys
import time
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))
from compare import counts_unexplained, host, rows_lost, table_counts, table_rows, tree_listing  # noqa: E402

ORIGIN, TARGET = host("mol-origin"), host("mol-target")
# The 5.x trees (plugins/module_utils/profile.py), those the seeded origin has.
TREES_5X = ["/var/spool/cyrus", "/var/spool/bm-hsm", "/var/spool/bm-elasticsearch", "/var/spool/bm-docs",
            "/var/spool/bm-filehosting", "/var/spool/bm-hollowed"]
USER_PASSWORD = "bluemind"  # every lab user's (lab/CONTRACT.md)


def psql(h, db, sql):
    return h.check_output("runuser -u postgres -- psql -X -At -d %s -c %s", db, sql)


def serving_since(h):
    """The cutover's serving time on the target's clock (the state file), as epoch seconds."""
    state = json.loads(h.file("/var/lib/bluemind-migration/state.json").content_string)
    stamp = state["cutover"]["serving"]
    return float(h.check_output("date -d %s +%%s.%%N", stamp.replace("T", " ").rstrip("Z") + " UTC"))


def test_the_lab_is_5x_without_cyrus():
    for h in (ORIGIN, TARGET):
        assert h.check_output("dpkg-query -W -f='${Version}' bm-core").startswith("5.")
        assert not h.file("/var/lib/cyrus").exists


@pytest.mark.parametrize("tree", TREES_5X)
def test_every_file_of_the_origin_is_on_the_target(tree):
    """Entries equal (type, mode, owners by name, size, links, digest). The target may hold more only
    below the by-hash spool: bodies of mail delivered since it serves (the smoke check's)."""
    origin, target = tree_listing(ORIGIN, tree), tree_listing(TARGET, tree)
    assert set(origin) - set(target) == set()
    extra = sorted(set(target) - set(origin))
    if tree == "/var/spool/cyrus":
        since = serving_since(TARGET)
        for line in extra:
            path = tree + "/" + line.split("\t", 1)[0]
            if line.split("\t")[1] == "d":
                continue
            assert path.startswith("/var/spool/cyrus/data/by_hash/") and path.endswith(".zst"), line
            assert float(TARGET.check_output("stat -c %%Y %s", path)) >= since - 1, line
    else:
        assert extra == []


@pytest.mark.parametrize("db", ["bj", "bj-data"])
def test_every_row_of_the_origin_is_on_the_target(db):
    origin_counts, target_counts = table_counts(ORIGIN, db), table_counts(TARGET, db)
    assert origin_counts.keys() == target_counts.keys()
    assert counts_unexplained(origin_counts, target_counts, messages=1) == {}
    lost = rows_lost(db, table_rows(ORIGIN, db), table_rows(TARGET, db), messages=1)
    if db == "bj":
        # The domain.keycloak repair rebuilds a realm whose client does not match bj and writes the new
        # client's secret into the domain's properties (KeycloakRealmRepairSupport, KeycloakHelper
        # initForDomain): t_domain differs by that property alone, checked below.
        lost.pop("public.t_domain", None)
    assert lost == {}


def test_domains_differ_by_their_keycloak_client_secret_alone():
    sql = "SELECT name, properties - 'OPENID_CLIENT_SECRET'::text FROM t_domain ORDER BY name"
    assert psql(TARGET, "bj", sql) == psql(ORIGIN, "bj", sql)
    assert psql(TARGET, "bj", "SELECT count(*) FROM t_domain WHERE properties ? 'OPENID_CLIENT_SECRET'") \
        == psql(ORIGIN, "bj", "SELECT count(*) FROM t_domain")


def test_users_log_in_through_keycloak_on_the_target():
    for address in ("admin@lab.test", "admin0@global.virt"):
        out = TARGET.run("bm-sim keycloak login %s %s" % (address, USER_PASSWORD))
        assert out.rc == 0, (address, out.stdout, out.stderr)
        assert json.loads(out.stdout)["token"] is True
    # the client secret Keycloak holds is the one bj keeps (what the domain.keycloak repair ensures)
    for domain in ("lab.test", "global.virt"):
        assert TARGET.run("bm-sim keycloak check %s" % domain).rc == 0, domain


def test_the_firewall_was_regenerated_through_the_internal_api_on_the_target():
    calls = [json.loads(line) for line in TARGET.file("/var/log/bm-sim/api.jsonl").content_string.splitlines()]
    fw = [c for c in calls if c.get("path") == "/internal-api/system/firewall/_updatefirewallrules"]
    assert fw and all(c.get("status") in (200, None) for c in fw), fw[-3:]
    assert not [c for c in calls if "firewall" in str(c.get("path")) and str(c.get("path")).startswith("/api/")]


def test_mail_is_delivered_after_the_cutover():
    subject = "after the 5.x cutover %s" % uuid.uuid4()
    address = [a for a in TARGET.interface("eth0").addresses if ":" not in a][0]
    message = "From: probe@lab.test\r\nTo: admin@lab.test\r\nSubject: %s\r\n\r\nhello\r\n" % subject
    with smtplib.SMTP(address, 25, timeout=30) as smtp:
        smtp.sendmail("probe@lab.test", ["admin@lab.test"], message)
    deadline = time.monotonic() + 60
    guid = ""
    while not guid and time.monotonic() < deadline:
        guid = psql(TARGET, "bj-data", "SELECT guid FROM t_message_body WHERE subject = '%s'" % subject)
        time.sleep(0.5)
    assert guid, "the message did not reach bj-data on the target within 60 s"
    body = "/var/spool/cyrus/data/by_hash/%s/%s/%s.zst" % (guid[0], guid[1], guid)
    assert subject in TARGET.check_output("zstd -q -dc %s", body)
