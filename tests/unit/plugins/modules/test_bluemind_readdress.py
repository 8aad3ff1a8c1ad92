"""bluemind_readdress driven through main(): psql answered by a fake bj (t_server, t_systemconf,
rc_users), real files in tmp_path. The SQL itself runs on the lab's PostgreSQL in
tests/integration/test_modules_lab.py::test_readdress_moves_every_record_of_the_address_then_changes_nothing."""

import pytest

from ansible_collections.bluemind.migration.plugins.modules import bluemind_readdress

from ...conftest import assert_no_secret

PASSWORD = "bj-s3cret-456"
OLD, NEW = "192.0.2.10", "192.0.2.20"


class Webmail(object):
    """psql on a database whose rc_users holds (username, mail_host) rows."""

    def __init__(self, rows, table=True):
        self.rows = list(rows)
        self.table = table
        self.statements = []
        self.servers = [OLD, "192.0.2.99"]
        self.conf = {"host": OLD, "hz-member-address": OLD, "external_url": "mail.lab.test"}

    def __call__(self, args, kwargs):
        assert kwargs["environ_update"]["PGPASSWORD"] == PASSWORD and PASSWORD not in " ".join(args)
        sql = args[args.index("-c") + 1]
        self.statements.append(sql)
        taken = set((u, h) for u, h in self.rows)
        if "pg_tables" in sql:
            return 0, "%d\0" % int(self.table), ""
        old = [o for o in (OLD, "198.51.100.7") if "'%s'" % o in sql]
        if sql.startswith("SELECT (SELECT count(*) FROM t_server"):
            return 0, "%d\x1f%d\0" % (sum(ip in old for ip in self.servers), sum(v in old for v in self.conf.values())), ""
        if sql.startswith("WITH s AS (UPDATE t_server"):
            rows = sum(ip in old for ip in self.servers)
            self.servers = [NEW if ip in old else ip for ip in self.servers]
            keys = [k for k in ("host", "hz-member-address") if self.conf[k] in old]
            self.conf.update((k, NEW) for k in keys)
            return 0, "%d\x1f%d\0" % (rows, int(bool(keys))), ""
        if sql.startswith("SELECT count(*) FILTER"):
            on_old = [u for u, h in self.rows if h in old]
            blocked = sum(1 for u in on_old if (u, NEW) in taken)
            return 0, "%d\x1f%d\0" % (len(on_old) - blocked, blocked), ""
        if sql.startswith("UPDATE rc_users"):
            moved = []
            for i, (u, h) in enumerate(self.rows):
                if h in old and (u, NEW) not in taken:
                    self.rows[i] = (u, NEW)
                    moved.append(u)
            return 0, "".join(m + "\0" for m in moved), ""
        raise AssertionError(sql)


@pytest.fixture
def host(tmp_path, commands, monkeypatch):
    monkeypatch.setattr(bluemind_readdress.AnsibleModule, "get_bin_path", lambda self, name, *a, **k: "/usr/bin/" + name)
    replication = tmp_path / "cyrus-replication"
    replication.write_text("core_sync_host: %s\nother: 1\n" % OLD)
    replication.chmod(0o640)
    ini = tmp_path / "bm.ini"
    ini.write_text('[global]\nhost = %s\nhz-member-address = "%s"\nexternal-url = mail.lab.test\n' % (OLD, OLD))
    spool = tmp_path / "rsync"
    (spool / OLD / "bm" / "core").mkdir(parents=True)
    webmail = Webmail([("a@lab.test", OLD), ("b@lab.test", OLD), ("c@lab.test", "192.0.2.99")])
    commands.add(lambda a: a[0] == "/usr/bin/psql", webmail)
    args = dict(old_addresses=[OLD, "198.51.100.7", NEW], new_address=NEW, db_password=PASSWORD,
                cyrus_replication_path=str(replication), backup_spool=str(spool), bm_ini_path=str(ini))
    return dict(args=args, replication=replication, spool=spool, webmail=webmail, commands=commands, ini=ini)


def test_moves_everything_then_changes_nothing(run_module, host):
    first = run_module(bluemind_readdress, host["args"], diff=True)
    assert first["changed"] is True and first["webmail"] == dict(moved=2, blocked=0, table=True)
    assert host["webmail"].rows == [("a@lab.test", NEW), ("b@lab.test", NEW), ("c@lab.test", "192.0.2.99")]
    assert host["replication"].read_text() == "core_sync_host: %s\nother: 1\n" % NEW
    assert host["replication"].stat().st_mode & 0o777 == 0o640
    assert (host["spool"] / NEW / "bm" / "core").is_dir() and not (host["spool"] / OLD).exists()
    assert first["cyrus_replication"] == [OLD] and first["backup_spool"]["to"].endswith(NEW)
    assert host["ini"].read_text() == '[global]\nhost = %s\nhz-member-address = "%s"\nexternal-url = mail.lab.test\n' % (NEW, NEW)
    assert first["bm_ini"] == [OLD, OLD] and first["server"] == dict(t_server=1, t_systemconf=2)
    assert host["webmail"].servers == [NEW, "192.0.2.99"]
    assert host["webmail"].conf == {"host": NEW, "hz-member-address": NEW, "external_url": "mail.lab.test"}
    assert first["diff"]["after"][str(host["ini"])].startswith("[global]\nhost = %s\n" % NEW)
    assert_no_secret(first, PASSWORD)
    second = run_module(bluemind_readdress, host["args"])
    assert second["changed"] is False and second["webmail"]["moved"] == 0
    assert second["bm_ini"] == [] and second["server"] == dict(t_server=0, t_systemconf=0)
    assert not [s for s in host["webmail"].statements[-2:] if s.startswith("UPDATE")]


def test_check_mode_counts_and_changes_nothing(run_module, host):
    result = run_module(bluemind_readdress, host["args"], check_mode=True, diff=True)
    assert result["changed"] is True and result["webmail"]["moved"] == 2
    assert not [s for s in host["webmail"].statements if s.startswith(("UPDATE", "WITH"))]
    assert result["server"] == dict(t_server=1, t_systemconf=2) and result["bm_ini"] == [OLD, OLD]
    assert host["ini"].read_text().startswith("[global]\nhost = %s\n" % OLD)
    assert host["replication"].read_text().startswith("core_sync_host: %s\n" % OLD)
    assert (host["spool"] / OLD).is_dir() and not (host["spool"] / NEW).exists()
    assert result["diff"]["after"][str(host["replication"])].startswith("core_sync_host: %s\n" % NEW)


def test_a_user_with_a_profile_on_the_new_host_keeps_it_and_is_reported(run_module, host):
    host["webmail"].rows.append(("a@lab.test", NEW))
    (host["spool"] / NEW).mkdir()
    result = run_module(bluemind_readdress, host["args"])
    assert result["webmail"] == dict(moved=1, blocked=1, table=True)
    assert ("a@lab.test", OLD) in host["webmail"].rows
    assert any("1 webmail profiles stay" in w for w in result["left_as_is"])
    assert any("merge them by hand" in w for w in result["left_as_is"]) and (host["spool"] / OLD).is_dir()
    assert result["warnings"]


def test_no_webmail_table_no_replication_file(run_module, host):
    host["webmail"].table = False
    host["replication"].unlink()
    result = run_module(bluemind_readdress, host["args"])
    assert result["webmail"] == dict(moved=0, blocked=0, table=False) and result["cyrus_replication"] == []
    assert result["changed"] is True  # the spool is still renamed
    assert [s for s in host["webmail"].statements if "rc_users" in s and "pg_tables" not in s] == []


def test_address_unchanged_does_nothing(run_module, host):
    result = run_module(bluemind_readdress, dict(host["args"], old_addresses=[NEW]))
    assert result["changed"] is False and host["commands"].calls == []


def test_the_files_part_alone_leaves_the_database_and_needs_no_password(run_module, host):
    args = dict(host["args"], parts=["files"])
    del args["db_password"]
    result = run_module(bluemind_readdress, args)
    assert result["changed"] is True and result["bm_ini"] == [OLD, OLD] and result["cyrus_replication"] == [OLD]
    assert host["webmail"].statements == [] and result["server"] == dict(t_server=0, t_systemconf=0)
    assert host["webmail"].servers == [OLD, "192.0.2.99"]


def test_the_database_part_alone_leaves_the_files(run_module, host):
    result = run_module(bluemind_readdress, dict(host["args"], parts=["database"]))
    assert result["server"] == dict(t_server=1, t_systemconf=2) and result["webmail"]["moved"] == 2
    assert result["bm_ini"] == [] and result["cyrus_replication"] == [] and result["backup_spool"] == {}
    assert host["ini"].read_text().startswith("[global]\nhost = %s\n" % OLD) and (host["spool"] / OLD).is_dir()
