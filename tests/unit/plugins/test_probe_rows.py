"""The probe's comparison: what a real origin and target show against lab/FIDELITY.md."""
import json
import re
from pathlib import Path

import pytest

from ansible_collections.bluemind.migration.plugins.filter.probe_rows import ROWS, probe_rows
from ansible_collections.bluemind.migration.plugins.filter.probe_table import probe_table

TOP = Path(__file__).resolve().parents[3]
TREES = ["/var/spool/cyrus", "/var/lib/cyrus"]
CONFIG = ["/etc/bm", "/etc/postfix/main.cf"]
EXPECT = {"trees": TREES, "config_paths": CONFIG}
UNITS = ["bm-core.service", "bm-lmtpd.service", "bm-node.service"]


def _ext(name, schema):
    return {"name": name, "schema": schema, "version": "1.0"}


def _db(name):
    exts = [_ext(e, "pg_catalog") for e in ("btree_gin", "hstore", "ltree", "unaccent")]
    exts.append(_ext("pg_stat_statements", "public"))
    return {"name": name, "exists": True, "encoding": "UTF8", "collate": "en_US.UTF-8", "ctype": "en_US.UTF-8",
            "extensions": exts}


def _api(status, body):
    return {"status": status, "json": body}


SCHEMA = {
    "bj": json.dumps({"changeset_kind": None, "changeset_partitions": 0, "changelog_trigger": False,
                      "account_type_labels": 3, "mailbox_record": False, "mailbox_record_key": False}),
    "bj-data": json.dumps({"changeset_kind": "p", "changeset_partitions": 256, "changeset_unique": 256, "changelog_trigger": True,
                           "account_type_labels": 0, "mailbox_record": True, "mailbox_record_key": False,
                           "bj_superuser": True}),
}


def _schema_change(database, **changes):
    def change(observed):
        observed["origin"]["schema"][database] = json.dumps(dict(json.loads(observed["origin"]["schema"][database]),
                                                                 **changes))
    return change


def _host(codename, key_result=None):
    paths = TREES + CONFIG + ["/var/spool/bm-hollowed", "/etc/init.d/bm-iptables", "/etc/cyrus-replication",
                              "/usr/bin/bm-cli"]
    return {
        "bmctl": {"rc": 0, "stdout": "\n".join(["bm-nginx is running."] + ["%s is running." % u for u in UNITS])},
        "target_units": "bluemind.target\n" + "\n".join("  " + u for u in UNITS),
        "target_active": True,
        "nginx_loaded": True,
        "core_unit": "Type=notify\nTimeoutStartUSec=5min\nLoadState=loaded",
        "packages": "bm-core 4.9.3884-%s ii \nbm-plugin-x 4.9.3884-%s ii \nbm-old 1 rc \n" % (codename, codename),
        "follow": "ok\n@@\n192530\n@@\n16420\n",
        "locales": "C\nC.utf8\nen_US.utf8\nPOSIX",
        "paths": "\n".join("present " + p for p in paths),
        "webmail_columns": "mail_host,username",
        "nginx_vhosts": "/etc/nginx/bluemind/bluemind-vhosts.conf\n/etc/nginx/bluemind/two.test/bluemind-vhosts.conf",
        # lab.test is served by the default vhost (same URL); two.test has its own
        "external_url": "bluemind.lab.test",
        "domains_settings": "lab.test:bluemind.lab.test:x\ntwo.test:mail.two.test:y\n",
        "pg": {"version": "15.8 (Debian 15.8-0+deb12u1)" if codename == "bookworm" else "13.16 (Debian 13.16-0+deb11u1)",
               "databases": [_db("bj"), _db("bj-data")]},
        "schema": dict(SCHEMA),
        "systemconf": "host,hz-member-address,external_url,default_domain|lab.test",
        "api": [
            dict(_api(200, "CORE_STATE_RUNNING"), item={"name": "state"}),
            dict(_api(200, {"softwareVersion": "4.9.3884", "databaseVersion": "4.9.3884", "versionName": "x",
                            "needsUpgrade": False}), item={"name": "version"}),
            dict(_api(200, {"defaultDomain": "lab.test", "softwareVersion": "4.9.3884", "releaseName": "x"}),
                 item={"name": "infos"}),
            dict(_api(200, {"values": {"host": "10.0.0.1", "hz-member-address": "10.0.0.1",
                                       "external_url": "bm.test"}}), item={"name": "configuration"}),
            dict(_api(401, {"errorCode": "AUTHENTICATION_FAIL"}), item={"name": "bad_key"}),
            dict(_api(403, {"errorCode": "PERMISSION_DENIED"}), item={"name": "no_key"}),
        ],
    }


@pytest.fixture
def observed():
    return {"origin": _host("bullseye"), "target": _host("bookworm")}


def _by_id(rows):
    return dict((r["id"], r) for r in rows)


def test_a_server_as_the_collection_assumes_confirms_every_row_but_the_stop(observed):
    rows = _by_id(probe_rows(observed, EXPECT))
    assert [r["id"] for r in probe_rows(observed, EXPECT)] == [row[1] for row in ROWS]
    statuses = dict((i, r["status"]) for i, r in rows.items())
    # seen only on a stopped host, on a write, or where a backup ran
    for row in ("bmctl-stop", "mynetworks-normalised", "backup-spool"):
        assert statuses.pop(row) == "not observable", row
    assert set(statuses.values()) == {"confirmed"}, rows
    assert "needs `bmctl stop`" in rows["bmctl-stop"]["found"]
    assert rows["bm-packages"]["found"] == "origin: 2 bm-* packages, target: 2"  # "rc" (removed) not counted


def _api_item(host, name):
    return next(r for r in host["api"] if r["item"]["name"] == name)


def _set_schema(host, db, ext, schema):
    db = next(d for d in host["pg"]["databases"] if d["name"] == db)
    for e in db["extensions"]:
        if e["name"] == ext:
            e["schema"] = schema


CHANGES = [
    ("ext-pg-catalog", lambda o: _set_schema(o["origin"], "bj", "hstore", "public"), "origin bj: hstore in public"),
    ("ext-every-db", lambda o: o["target"]["pg"]["databases"].pop(1), "target: no database bj-data"),
    ("ext-public", lambda o: _set_schema(o["target"], "bj", "pg_stat_statements", "pg_catalog"),
     "pg_stat_statements in pg_catalog"),
    ("locale-en-us", lambda o: o["origin"]["pg"]["databases"][0].update(collate="C.UTF-8"), "bj C.UTF-8/en_US.UTF-8"),
    ("locale-en-us", lambda o: o["target"].update(locales="C\nPOSIX"), "target: locale -a has no en_US.UTF-8"),
    ("bmctl-units", lambda o: o["origin"].update(nginx_loaded=False), "bluemind.target wants"),
    ("bmctl-lines", lambda o: o["origin"]["bmctl"].update(rc=1), "origin: exit 1 while lines are running"),
    ("bmctl-lines", lambda o: o["target"]["bmctl"].update(stdout=o["target"]["bmctl"]["stdout"].replace(
        "bm-node.service is running.", "bm-node.service fail - check systemctl status bm-node.service and "
        "journalctl -xe -u bm-node.service")), "target: exit 0 while lines are fail, running"),
    ("core-notify", lambda o: o["target"].update(core_unit="Type=simple\nTimeoutStartUSec=1min 30s"), "Type=simple"),
    ("api-bad-key", lambda o: _api_item(o["origin"], "bad_key").update(status=403), "unknown key 403"),
    ("api-infos", lambda o: o["origin"].update(
        systemconf="host,hz-member-address,external_url|other.test"), "t_systemconf other.test"),
    ("systemconf-keys", lambda o: o["target"].update(systemconf="external_url,default_domain|lab.test"),
     "t_systemconf lacks host, hz-member-address"),
    ("version-per-distro", lambda o: _api_item(o["target"], "version")["json"].update(softwareVersion="4.9.4000"),
     "softwareVersion 4.9.4000"),
    ("api-paths", lambda o: _api_item(o["origin"], "state").update(json="running"), "state 'running'"),
    ("trees-config", lambda o: o["origin"].update(paths="absent /var/spool/cyrus"), "origin: missing /var/spool/cyrus"),
    ("bm-packages", lambda o: o["target"].update(packages="bm-core 4.9.3884-bookworm ii \n"),
     "target lacks bm-plugin-x"),
    ("hollowed", lambda o: o["target"].update(paths=o["target"]["paths"].replace(
        "present /var/spool/bm-hollowed", "absent /var/spool/bm-hollowed")), "target: absent"),
    ("nginx-vhosts", lambda o: o["target"].update(nginx_vhosts="/etc/nginx/bluemind/bluemind-vhosts.conf"),
     "target: missing /etc/nginx/bluemind/two.test/bluemind-vhosts.conf"),
    ("firewall-script", lambda o: o["origin"].update(paths=o["origin"]["paths"].replace(
        "present /etc/init.d/bm-iptables", "absent /etc/init.d/bm-iptables")), "origin: absent"),
    ("cyrus-replication", lambda o: o["target"].update(paths=o["target"]["paths"].replace(
        "present /etc/cyrus-replication", "absent /etc/cyrus-replication")), "target: absent"),
    ("webmail-mail-host", lambda o: o["target"].update(webmail_columns=""), "target: rc_users columns found: none"),
    ("tick-reconfigure", lambda o: o["target"].update(paths=o["target"]["paths"].replace(
        "present /usr/bin/bm-cli", "absent /usr/bin/bm-cli")), "target: absent"),
    ("changeset-partitions", _schema_change("bj-data", changeset_kind="r", changeset_partitions=0),
     "t_container_changeset of kind 'r' (not partitioned), 0 partition(s)"),
    ("changeset-partitions", _schema_change("bj-data", changeset_kind=None), "no table t_container_changeset"),
    ("changeset-trigger", _schema_change("bj-data", changelog_trigger=False),
     "changelog_insert on t_container_changelog absent"),
    ("enum-keyless", _schema_change("bj-data", mailbox_record_key=True), "t_mailbox_record has a primary key"),
    ("enum-keyless", _schema_change("bj", account_type_labels=0), "t_directory_entry_account_type absent"),
    ("pg-majors", lambda o: o["origin"]["pg"].update(version="16.2"), "origin 16.2, target 15.8"),
    ("pg-superuser", _schema_change("bj-data", bj_superuser=False), "bj is not a superuser"),
    ("inotify-follow", lambda o: o["origin"].update(follow="no python3\n@@\n192530\n@@\n16420\n"),
     "origin: python3 inotify: no python3; 16420 directories in the trees, watch limit 192530; bm-cyrus-imapd not installed"),
    ("inotify-follow", lambda o: o["origin"].update(follow="ok\n@@\n8192\n@@\n16420\n"),
     "the final pull's follower would give up: the window walks the trees (raise fs.inotify.max_user_watches, or install python3)"),
]


@pytest.mark.parametrize("row_id,change,found", CHANGES, ids=["%s-%d" % (c[0], i) for i, c in enumerate(CHANGES)])
def test_one_point_changed_names_its_row_and_only_it(observed, row_id, change, found):
    change(observed)
    rows = _by_id(probe_rows(observed, EXPECT))
    assert rows[row_id]["status"] == "differs"
    assert found in rows[row_id]["found"]
    others = [i for i, r in rows.items() if r["status"] == "differs" and i != row_id]
    # the same observation feeds a few rows on purpose (version: api-paths sees the key set only)
    assert others == [], others


def test_what_could_not_be_read_is_not_observable_with_the_reason(observed):
    observed["target"] = {"unreachable": True}
    observed["origin"]["api"] = [dict(status=-1, msg="Connection refused", item={"name": n})
                                 for n in ("state", "version", "infos", "configuration", "bad_key", "no_key")]
    rows = _by_id(probe_rows(observed, EXPECT))
    assert rows["api-paths"] == dict(rows["api-paths"], status="not observable",
                                     found="origin: state did not answer (Connection refused)")
    assert rows["ext-pg-catalog"]["found"] == "target not reached"
    # the schema features are read on the origin alone (what the pass must carry)
    origin_only = ("changeset-partitions", "changeset-trigger", "enum-keyless", "pg-superuser", "inotify-follow")
    assert set(rows[r]["status"] for r in origin_only) == {"confirmed"}
    assert set(r["status"] for i, r in rows.items() if i not in origin_only) == {"not observable"}


def test_a_stopped_bluemind_shows_the_stop_row(observed):
    target = observed["target"]
    target["target_active"] = False
    target["bmctl"] = {"rc": 1, "stdout": "\n".join(
        ["bm-nginx started while BlueMind is stopped - please restart bluemind: systemctl restart bluemind.target"]
        + ["%s is stopped." % u for u in UNITS])}
    rows = _by_id(probe_rows(observed, EXPECT))
    assert rows["bmctl-stop"]["status"] == "confirmed"
    assert rows["bmctl-lines"]["status"] == "confirmed"
    target["bmctl"]["rc"] = 0
    rows = _by_id(probe_rows(observed, EXPECT))
    assert rows["bmctl-stop"]["status"] == "differs" and "exit 0" in rows["bmctl-stop"]["found"]


def test_the_table_has_one_line_per_row_and_counts(observed):
    _set_schema(observed["origin"], "bj", "hstore", "public")
    lines = probe_table(probe_rows(observed, EXPECT))
    assert lines[0].split(" | ")[:3] == ["# ", "id                   ", "status        "]
    assert len(lines) == 2 + len(ROWS) + 1
    assert re.match(r"^1 +\| ext-pg-catalog +\| differs +\| origin bj: hstore in public", lines[2])
    assert lines[-1] == "25 confirmed, 1 differ, 3 not observable"


def test_fidelity_md_names_every_row_id_the_probe_uses():
    text = (TOP / "lab" / "FIDELITY.md").read_text()
    behaviours, heading, probe_section = text.partition("## Rows the probe checks")
    assert heading
    numbers = [int(m) for m in re.findall(r"^\| (\d+) \|", behaviours, re.M)]
    assert numbers == list(range(1, len(ROWS) + 1))
    ids = re.findall(r"^\| (\d+) \| `([a-z0-9-]+)` \|", probe_section, re.M)
    assert [(int(n), i) for n, i in ids] == [row[:2] for row in ROWS]


def test_the_schema_rows_are_not_observable_when_psql_failed(observed):
    observed["origin"]["schema"] = {"bj": "", "bj-data": ""}
    rows = _by_id(probe_rows(observed, EXPECT))
    for row in ("changeset-partitions", "changeset-trigger", "enum-keyless", "pg-superuser"):
        assert rows[row]["status"] == "not observable", row
        assert "the schema of" in rows[row]["found"]
    assert rows["pg-majors"]["status"] == "confirmed"


def test_the_change_set_row_says_how_many_partitions_have_a_unique_index(observed):
    """The row sync keys a partition by its unique index (the pg_repack maintenance's); without one it is
    listed by content: the row stays confirmed, and says which a real server has."""
    assert "256 partition(s) with a unique index" in _by_id(probe_rows(observed, EXPECT))["changeset-partitions"]["found"]
    _schema_change("bj-data", changeset_unique=0)(observed)
    row = _by_id(probe_rows(observed, EXPECT))["changeset-partitions"]
    assert row["status"] == "confirmed" and "0 partition(s) with a unique index" in row["found"]
