"""After the whole migration: the target holds exactly the origin's data, configured and serving."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))
from compare import (  # noqa: E402
    TREES, counts_unexplained, hardlink_groups, host, queued_deliveries, rows_lost, table_counts, table_rows, tree_listing)

ORIGIN, TARGET = host("mol-origin"), host("mol-target")
# The smoke check's message and its mailbox (admin@lab.test) changed on the target after the cutover, and
# so did the mailboxes of the load's messages that the origin still had in its queues at the stop (the
# load runs until then), moved to the target and delivered there (test_queued_mail_moved_not_lost).
QUEUED_MAILBOXES, QUEUED_DELIVERED, QUEUED_LOST = queued_deliveries(ORIGIN, TARGET)
SMOKE = ("lab.test/admin",) + QUEUED_MAILBOXES
MESSAGES = 1 + QUEUED_DELIVERED


def test_queued_mail_moved_not_lost():
    """Every load message left in the origin's queues is on the target, delivered or still queued."""
    assert QUEUED_LOST == []


@pytest.mark.parametrize("tree", TREES)
def test_tree_identical(tree):
    assert tree_listing(TARGET, tree, SMOKE) == tree_listing(ORIGIN, tree, SMOKE)


def test_hard_links_kept():
    origin = hardlink_groups(ORIGIN, "/var/spool/cyrus")
    assert origin, "the seeded spool has multi-recipient messages"
    target = hardlink_groups(TARGET, "/var/spool/cyrus")
    assert [g for g in origin if "admin" not in " ".join(g)] == [g for g in target if "admin" not in " ".join(g)]


def test_owners_resolved_by_name_across_uids():
    assert ORIGIN.user("cyrus").uid != TARGET.user("cyrus").uid
    spool = TARGET.file("/var/spool/cyrus/data")
    assert spool.user == "cyrus" and spool.group == "mail"


@pytest.mark.parametrize("db", ["bj", "bj-data"])
def test_every_table_has_the_same_rows(db):
    origin, target = table_counts(ORIGIN, db), table_counts(TARGET, db)
    assert origin.keys() == target.keys()
    # The smoke message's rows on the target (lab/delivery_rows.py); everything else is identical.
    assert counts_unexplained(origin, target, messages=MESSAGES) == {}


@pytest.mark.parametrize("db", ["bj", "bj-data"])
def test_every_row_of_the_origin_is_on_the_target_as_is(db):
    """Contents, not only counts: the databases moved ahead of the window and then row by row, and
    no row of the origin is missing on the target or different there."""
    assert rows_lost(db, table_rows(ORIGIN, db), table_rows(TARGET, db), messages=MESSAGES) == {}
    # Rows the target adds once it serves (the smoke message, what its own BlueMind writes) are not
    # the origin's: the row counts are checked by test_every_table_has_the_same_rows.


def test_database_settings_carried_over():
    q = "runuser -u postgres -- psql -X -At -d postgres -c %s"
    sql = ("SELECT d.datname, s.setconfig FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase "
           "ORDER BY 1")
    assert TARGET.check_output(q, sql) == ORIGIN.check_output(q, sql)


@pytest.mark.parametrize("path", ["/etc/bm/mcast.id", "/etc/ssl/certs/bm_cert.pem",
                                  "/usr/share/bm-elasticsearch/config/elasticsearch.yml", "/etc/imapd.conf",
                                  "/etc/cyrus.conf", "/etc/postfix/master.cf", "/etc/bm-hps/hps.properties",
                                  "/etc/bm-webmail/bm-webmail.ini"])
def test_config_file_copied(path):
    assert TARGET.file(path).md5sum == ORIGIN.file(path).md5sum


def test_bm_ini_copied_but_for_the_address():
    def settings(host):
        return [line for line in host.file("/etc/bm/bm.ini").content_string.splitlines()
                if not line.replace(" ", "").startswith(("host=", "hz-member-address="))]
    assert settings(TARGET) == settings(ORIGIN)


def test_core_token_keeps_owner_and_mode():
    tok = TARGET.file("/etc/bm/bm-core.tok")
    assert (tok.mode, tok.user, tok.group) == (0o440, "root", "www-data")
    assert tok.content_string == ORIGIN.file("/etc/bm/bm-core.tok").content_string


def test_postfix_maps_answer_the_same():
    for address in ORIGIN.check_output("cut -f1 -d' ' /etc/postfix/virtual_mailbox-flat | head -n 20").split():
        q = "postmap -q %s hash:/etc/postfix/virtual_mailbox"
        assert TARGET.check_output(q, address) == ORIGIN.check_output(q, address)


def test_admin_actions_reached_the_target_api():
    calls = [json.loads(l) for l in TARGET.file("/var/log/bm-sim/api.jsonl").content_string.splitlines()]
    paths = {c.get("path") for c in calls if c.get("status") == 200}
    assert any(p.endswith("/_updatefirewallrules") for p in paths)
    assert any(p.endswith("/maildelivery/mgmt/_repair") for p in paths)
    assert any(c.get("path") == "/api/configuration" and c.get("method") == "POST" for c in calls)


def test_mynetworks_holds_the_target():
    target_ip = TARGET.interface.default().addresses[0]
    assert f"{target_ip}/32" in TARGET.check_output("postconf -h mynetworks")


def test_origin_is_stopped_for_good_and_target_serves():
    assert not ORIGIN.service("postfix").is_running and not ORIGIN.service("postfix").is_enabled
    assert ORIGIN.check_output("systemctl is-enabled bluemind.target || true") == "disabled"
    assert TARGET.service("postfix").is_running
    state = "import urllib.request as u; print(u.urlopen('http://127.0.0.1:8090/api/system/installation/state').read().decode())"
    assert TARGET.check_output("python3 -c %s", state) == '"CORE_STATE_RUNNING"'


def test_ssh_trust_removed():
    assert "bluemind-migration" not in ORIGIN.file("/root/.ssh/authorized_keys").content_string
    assert not TARGET.file("/root/.ssh/bluemind_migration_ed25519").exists


def test_queued_mail_moved_to_the_target():
    """The message held on the origin (with mail-load messages deferred at the same time) is queued on the target."""
    held = TARGET.check_output("find /var/spool/postfix/hold -type f -printf '%f\\n'").split()
    assert held, "the origin's held messages are not in the target's queue"
    contents = "".join(TARGET.check_output("postcat -q %s", queue_id) for queue_id in held)
    assert "X-Lab-Queued: yes" in contents


def test_target_knows_its_own_address():
    """DNS switch (ip mode none): bm.ini, t_server, t_systemconf and so the API's configuration name the
    target, not the origin it was copied from; so do the webmail profiles (rc_users), Cyrus
    replication's core_sync_host, the backup spool folder and My Networks, and the monitoring was
    reconfigured (bm-cli tick reconfigure)."""
    target_ip = TARGET.interface.default().addresses[0]
    origin_ip = ORIGIN.interface.default().addresses[0]
    ini = TARGET.file("/etc/bm/bm.ini").content_string
    assert f"host = {target_ip}" in ini and origin_ip not in ini
    ips = TARGET.check_output("runuser -u postgres -- psql -X -At -d bj -c %s", "SELECT ip FROM t_server")
    assert ips.split() == [target_ip]
    conf = TARGET.check_output("runuser -u postgres -- psql -X -At -d bj -c %s",
                               "SELECT e.key || '=' || e.value FROM t_systemconf, LATERAL each(configuration) e "
                               "WHERE e.key IN ('host', 'hz-member-address') ORDER BY 1")
    assert conf.split() == [f"host={target_ip}", f"hz-member-address={target_ip}"]
    api = json.loads(TARGET.check_output("python3 -c %s", (
        "import urllib.request; key = open('/etc/bm/bm-core.tok').read().strip(); "
        "req = urllib.request.Request('http://127.0.0.1:8090/api/configuration', headers={'X-BM-ApiKey': key}); "
        "print(urllib.request.urlopen(req).read().decode())")))
    assert api["values"]["host"] == target_ip and api["values"]["hz-member-address"] == target_ip
    assert f"{origin_ip}/32" not in TARGET.check_output("postconf -h mynetworks")
    mynetworks = set(api["values"]["mynetworks"].split(", "))
    assert f"{target_ip}/32" in mynetworks and "127.0.0.0/8" in mynetworks and f"{origin_ip}/32" not in mynetworks
    hosts = TARGET.check_output("runuser -u postgres -- psql -X -At -d bj -c %s",
                                "SELECT DISTINCT mail_host FROM rc_users")
    assert hosts.split() == [target_ip]
    replication = TARGET.file("/etc/cyrus-replication").content_string
    assert f"core_sync_host: {target_ip}" in replication and origin_ip not in replication
    assert TARGET.check_output("ls /var/backups/bluemind/dp_spool/rsync").split() == [target_ip]
    calls = [json.loads(line) for line in TARGET.file("/var/log/bm-sim/bm-cli.jsonl").content_string.splitlines()]
    assert {"argv": ["tick", "reconfigure"], "known": True} in [dict(argv=c["argv"], known=c["known"]) for c in calls]


def test_the_migration_ran_from_the_installed_tarball():
    """molecule.yml's collections path holds only the copy installed from the built tarball (its
    dependency step): the converge could not have used this checkout."""
    installed = Path(__file__).resolve().parents[3] / ".cache/installed/collections/ansible_collections/bluemind/migration"
    assert (installed / "MANIFEST.json").is_file() and not installed.is_symlink()
    assert not (installed / "tests").exists() and (installed / "roles" / "cutover").is_dir()
