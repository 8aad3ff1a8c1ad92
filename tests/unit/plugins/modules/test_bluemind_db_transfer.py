import fcntl
import json
import os
import threading
from unittest import mock

import pytest

from ansible_collections.bluemind.migration.plugins.module_utils import state as migration_state
from ansible_collections.bluemind.migration.plugins.module_utils.progress import format_line
from ansible_collections.bluemind.migration.plugins.module_utils.pgsignature import UNCOUNTED_READS
from ansible_collections.bluemind.migration.plugins.module_utils.ssh import SshError
from ansible_collections.bluemind.migration.plugins.modules import bluemind_db_transfer

from ...conftest import assert_no_secret

ORIGIN_PW, TARGET_PW = "0rigin-pw-123", "t4rget-pw-456"
TUNNEL_PORT = 15432
MODULE = "ansible_collections.bluemind.migration.plugins.modules.bluemind_db_transfer."
NO_LARGE_OBJECT = "d41d8cd98f00b204e9800998ecf8427e"  # md5 of nothing
UDP_LINES = ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n"
             "13766: 0100007F:CBD9 0100007F:CBD9 01 00000000:00000000 00:00000000 00000000   106        0 9229346 2 "
             "00000000782f117f 0\n")


class FakeTunnel(object):
    def __init__(self, origin, local_port, remote_port):
        self.port = TUNNEL_PORT
        self.remote_port = remote_port

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class FakeSnapshot(object):
    """The snapshot's session: its ``before`` query (the origin's mark) answered by the servers' fake."""
    servers = None  # set by the servers fixture

    def __init__(self, server, database, before=None):
        self.id = "snap-1"
        self.database = database
        self.before = before
        self.before_result = None

    def __enter__(self):
        if self.before:
            rc, out, _err = self.servers.answer("origin", self.before, self.database)
            self.before_result = out.rstrip("\0") if rc == 0 else None
        return self

    def __exit__(self, *exc):
        return False


class Servers(object):
    """Answers psql for both servers: the origin on the tunnel's port, the target on 5432."""

    def __init__(self):
        self.counts = {"origin": "public.t_a\x1f10\0public.t_b\x1f5\0", "target": "public.t_a\x1f10\0public.t_b\x1f5\0"}
        self.target_settings = {}  # database -> setconfig entries, from the ALTER DATABASE run
        self.scripts = []
        self.origin_databases = {"bj": "8000000", "bj-data": "90000000"}
        self.pipelines = []
        self.snapshot_queries = []
        self.sequences = {"origin": "public.seq\x1f15\0", "target": "public.seq\x1f15\0"}
        # LARGE_OBJECTS_SQL's [count, digest]: none, as in BlueMind's databases; the origin's (the same
        # in every database) and the target's, per database, from the dump
        self.origin_large_objects = [0, NO_LARGE_OBJECT]
        self.target_large_objects = {}
        # BlueMind's extensions: four in pg_catalog (with plpgsql), pg_stat_statements in public
        self.origin_extensions = [("btree_gin", "pg_catalog"), ("hstore", "pg_catalog"), ("ltree", "pg_catalog"),
                                  ("pg_stat_statements", "public"), ("plpgsql", "pg_catalog"),
                                  ("unaccent", "pg_catalog")]
        self.target_extensions = {}  # database -> {name: schema}, from the CREATE EXTENSION run and the dump
        self.origin_locale = ("en_US.UTF-8", "en_US.UTF-8")
        self.target_locales = {}  # database -> [collate, ctype], from the CREATE DATABASE run
        self.available = ["btree_gin", "hstore", "ltree", "pg_stat_statements", "plpgsql", "unaccent"]
        self.loadable_locales = {"en_US.UTF-8", "C"}
        self.probes = []
        self.renamed = []
        self.script_answer = None  # script -> (rc, out, err) for a script that fails, or None
        self.identity_error = None  # psql's words when the target's ids cannot be read
        self.existing = {}  # on the target: database -> "t" when invalid (an interrupted DROP DATABASE)
        # what signature_sql reads on each side: quiet, the statistics socket of 13 read, t_a and t_b
        self.signatures = {
            "origin": dict(quiet_at=100.0, stats_at=100.6, epoch=["start", None, "reset", "130016", "on"],
                           udp=UDP_LINES, tables={"public.t_a": [1, 1, 10, 0, 0], "public.t_b": [2, 2, 5, 0, 0]}),
            "target": dict(quiet_at=100.0, stats_at=None, epoch=["start", None, "reset", "150008", "on"],
                           udp=None, tables={"public.t_a": [5, 5, 10, 0, 0], "public.t_b": [6, 6, 5, 0, 0]})}
        self.signature_reads = []  # (side, database, whether it waited for a quiet database)
        self.session_options = []
        self.superuser = {"origin": "on", "target": "on"}  # current_setting('is_superuser') of the module's user
        # the readdress's statements (side, database, first words, target ids recorded by then); its failure
        self.readdress = []
        self.readdress_error = None
        self.catalogs = {"origin": None, "target": None}  # CATALOGS_SQL's digest of each side (None: unreadable)
        self.column_reads = []  # (side, database) of each TABLE_COLUMNS_SQL read
        self.fact_reads = []  # (side, database) of each FACTS_SQL read
        self.target_xmax = 705  # the target's next transaction id, as IDENTITY_SQL reads it

    def __call__(self, args, kwargs):
        side = "origin" if args[args.index("-p") + 1] == str(TUNNEL_PORT) else "target"
        database = args[args.index("-d") + 1]
        data = kwargs.get("data") or ""
        # the session settings of each psql: (side, what it read, PGOPTIONS)
        sql = data or args[-1]
        signatures = "pg_stat_get_tuples_inserted" in sql
        self.session_options.append((side, ("check" if sql.startswith("DO $bm$ DECLARE quiet timestamptz; BEGIN FOR")
                                            else "mark") if signatures else "version" if "is_superuser" in sql else "other",
                                     (kwargs.get("environ_update") or {}).get("PGOPTIONS")))
        if "SET TRANSACTION SNAPSHOT 'snap-1';" in data:  # a query in the exported snapshot
            self.snapshot_queries.append((side, database))
            return self.answer(side, data.splitlines()[2].rstrip(";"), database)
        if "CREATE COLLATION pg_temp." in data:  # the locale probe
            locale = data.split("LC_COLLATE = '")[1].split("'")[0]
            self.probes.append((side, database, locale))
            if locale not in self.loadable_locales:
                return 1, "", 'ERROR:  could not create locale "%s": No such file or directory' % locale
            return 0, "", ""
        if "-c" not in args:
            self.scripts.append((side, database, kwargs["data"]))
            failed = self.script_answer and self.script_answer(kwargs["data"])
            if failed:
                return failed
            for line in kwargs["data"].splitlines():
                if line.startswith("CREATE DATABASE"):  # ... LC_COLLATE 'x' LC_CTYPE 'y';
                    self.target_locales[line.split('"')[1]] = [line.split("'")[3], line.split("'")[5]]
                    self.target_extensions[line.split('"')[1]] = {"plpgsql": "pg_catalog"}  # template0's
                    self.target_settings[line.split('"')[1]] = []  # a new database
                if line.startswith("CREATE EXTENSION IF NOT EXISTS"):  # "name" WITH SCHEMA "schema";
                    self.target_extensions.setdefault(database, {})[line.split('"')[1]] = line.split('"')[3]
                if line.startswith("ALTER DATABASE") and " RENAME TO " in line:  # the complete copy's name
                    old, new = line.split('"')[1], line.split('"')[3]
                    for held in (self.target_locales, self.target_extensions, self.target_settings,
                                 self.target_large_objects):
                        if old in held:
                            held[new] = held.pop(old)
                    self.renamed.append((old, new))
                elif line.startswith("ALTER DATABASE"):  # ALTER DATABASE "db" SET "name" TO 'value';
                    _alter, _database, name, _set, key, _to, value = line.split(" ")
                    self.target_settings.setdefault(name.strip('"'), []).append(
                        "%s=%s" % (key.strip('"'), value.strip("';")))
            return 0, "", ""
        return self.answer(side, args[args.index("-c") + 1], database)

    def answer(self, side, sql, database):
        if "t_server" in sql or "rc_users" in sql:  # module_utils/readdress's statements
            self.readdress.append((side, database, " ".join(sql.split()[:3]),
                                   len([read for read in self.signature_reads if read[0] == "target" and read[2]])))
            if self.readdress_error:
                return 2, "", self.readdress_error
            for marker, rows in (("UPDATE t_server", "1\x1f1\0"), ("FROM t_server", "1\x1f2\0"),
                                 ("UPDATE rc_users", "u1\0u2\0"), ("count(*) FILTER", "2\x1f1\0"),
                                 ("tablename = 'rc_users'", "1\0")):
                if marker in sql:
                    return 0, rows, ""
        if "pg_stat_get_tuples_inserted" in sql:  # the tables' signatures (pgsignature.signature_sql)
            self.signature_reads.append((side, database, sql.startswith("DO $bm$ DECLARE quiet timestamptz; BEGIN FOR")))
            return 0, json.dumps(self.signatures[side]) + "\0", ""
        if "json_build_object" in sql:  # FACTS_SQL
            self.fact_reads.append((side, database))
            counts = dict((t, int(n)) for t, n in (r.split("\x1f") for r in self.counts[side].split("\0") if r))
            sequences = [[s, int(v), True] for s, v in (r.split("\x1f") for r in self.sequences[side].split("\0") if r)]
            settings = ["TimeZone=GMT"] if side == "origin" else self.target_settings.get(database, [])
            if side == "origin":
                locale, extensions = list(self.origin_locale), [list(e) for e in self.origin_extensions]
            else:
                locale = self.target_locales.get(database, ["C.UTF-8", "C.UTF-8"])
                extensions = sorted([n, s] for n, s in self.target_extensions.get(database, {}).items())
            return 0, json.dumps(dict(ident="%s-cluster/1/16384" % side, xmin=700, xmax=705, settings=settings,
                                      locale=locale, extensions=extensions, counts=counts,
                                      sequences=sequences, large_objects=self.origin_large_objects if side == "origin"
                                      else self.target_large_objects.get(database, [0, NO_LARGE_OBJECT]),
                                      catalogs=self.catalogs[side])) + "\0", ""
        if sql.startswith("SELECT 1 FROM pg_database WHERE datname = "):  # a copy on the target?
            return 0, "1\0" if sql.split("'")[1] in self.target_locales else "", ""
        if "pg_table_size" in sql:  # TABLE_DATA_SIZE_SQL: what a whole copy's progress measures against
            assert side == "origin"
            return 0, "8192\0", ""
        if "attgenerated" in sql:  # TABLE_COLUMNS_SQL: name, columns, key
            self.column_reads.append((side, database))
            return 0, "public.t_a\x1fid,a\x1fid\0public.t_b\x1fid,b\x1fid\0", ""
        if "pg_control_system" in sql:
            if self.identity_error and side == "target":
                return 2, "", self.identity_error
            return 0, "%s-cluster/1/16384\x1f700\x1f%d\0" % (side, 705 if side == "origin" else self.target_xmax), ""
        if sql == "SHOW data_directory":
            return 0, "/var/lib/postgresql/15/main\n", ""
        if "datconnlimit = -2" in sql:  # which of the database and its incomplete copy the target has
            found = dict((name, "f") for name in self.target_locales)  # made by this run's copies
            found.update(self.existing)
            return 0, "".join("%s\x1f%s\0" % (name, invalid) for name, invalid in sorted(found.items())
                              if "'%s'" % name in sql), ""
        if sql == "SHOW server_version":
            return 0, {"origin": "13.16\0", "target": "15.8\0"}[side], ""
        if "server_version_num" in sql:
            return 0, {"origin": "13.16\x1f130016", "target": "15.8\x1f150008"}[side] + "\x1f%s\0" % self.superuser[side], ""
        if "pg_database_size" in sql:
            name = sql.split("'")[1]
            row = "\x1f".join((self.origin_databases.get(name, ""),) + self.origin_locale) + "\0"
            return 0, row if name in self.origin_databases else "", ""
        if "pg_db_role_setting" in sql:
            if side == "origin":
                return 0, "TimeZone=GMT\0", ""
            return 0, "".join(e + "\0" for e in self.target_settings.get(sql.split("'")[1], [])), ""
        if "FROM pg_extension e" in sql:  # EXTENSIONS_SQL
            assert side == "origin"
            return 0, "".join("%s\x1f%s\x1f1.0\0" % e for e in self.origin_extensions), ""
        if "pg_available_extensions" in sql:
            assert side == "target"
            return 0, "".join(name + "\0" for name in self.available), ""
        if "UNION ALL" in sql:
            return 0, self.counts[side], ""
        if "pg_sequences" in sql:
            return 0, self.sequences[side], ""
        if "pg_class" in sql:
            return 0, "public.t_a\0public.t_b\0", ""
        raise AssertionError(sql)

    def pipeline(self, producer, producer_env, consumer, consumer_env, on_bytes=None):
        self.pipelines.append((producer, producer_env, consumer, consumer_env))
        self.progress_seen = []
        if on_bytes is not None:  # the dump's bytes as they flow: half of the tables' 8 KiB, then all of the dump
            for moved in (2048, 4096):
                on_bytes(moved)
                self.progress_seen.append(moved)
        # the dump creates the extensions that are not there yet, in the origin's schemas
        created = self.target_extensions.setdefault(consumer[consumer.index("-d") + 1], {})
        for name, schema in self.origin_extensions:
            created.setdefault(name, schema)
        # and the large objects, as a dump of a whole database does
        self.target_large_objects[consumer[consumer.index("-d") + 1]] = list(self.origin_large_objects)
        return 4096, 0, 0, "", ""


@pytest.fixture
def servers(commands, tmp_path):
    for tool in ("pg_dump", "psql"):
        (tmp_path / tool).write_text("#!/bin/sh\n")
        (tmp_path / tool).chmod(0o755)
    commands.add(lambda a: a[0].endswith("/pg_dump") and a[1:] == ["--version"], (0, "pg_dump (PostgreSQL) 15.8\n", ""))
    # pg_dump --schema-only: the same schema on both sides
    commands.add(lambda a: a[0].endswith("/pg_dump") and "--schema-only" in a,
                 (0, "-- dump\nCREATE TABLE public.t_a (id integer PRIMARY KEY, a text);\n", ""))
    (tmp_path / "key").write_text("KEY")
    (tmp_path / "known_hosts").write_text("origin ssh-ed25519 AAAA\n")
    fake = Servers()
    commands.add(lambda a: a[0].endswith("/psql"), fake)
    fake.args = dict(origin_host="192.0.2.10", ssh_key=str(tmp_path / "key"), known_hosts=str(tmp_path / "known_hosts"),
                     origin_db_password=ORIGIN_PW, target_db_password=TARGET_PW, pg_bin_dir=str(tmp_path),
                     mode="full", state_file=str(tmp_path / "state" / "db-sync.json"))
    fake.row_syncs = []
    FakeSnapshot.servers = fake
    with mock.patch(MODULE + "Tunnel", FakeTunnel), mock.patch(MODULE + "stream_pipeline", fake.pipeline), \
            mock.patch(MODULE + "Snapshot", FakeSnapshot), \
            mock.patch(MODULE + "RowSync", lambda *a, **k: FakeRowSync(fake.row_syncs, *a, **k)):
        yield fake


class FakeRowSync(object):
    """The row sync of tables: no row differs; records that it ran and what it applied."""

    def __init__(self, log, origin, target, database, snapshot, ahead=None):
        self.log = log
        self.database = database
        self.ahead_used = 0

    @staticmethod
    def read_ahead(statements, into, started):
        into.update((sql, [b"read ahead\n"]) for sql in statements)

    def plan_tables(self, tables, since=None, by_changes=(), rows=None, by_buckets=(), buckets_from_rows=0, fine=()):
        self.by_changes = set(by_changes)
        return [dict(table=table, fetch=[], delete=[], replace=False, counts=dict(origin=1, target=1)) for table in tables]

    def apply(self, plans, sequences):
        self.log.append((self.database, len(plans), len(sequences)))
        return 0


def test_transfer_recreates_restores_and_verifies(run_module, servers, commands):
    before = migration_state.stamp()
    result = run_module(bluemind_db_transfer, servers.args)
    assert result["changed"] is True and not result.get("failed")
    # the pass's span on the target's clock, in the state's format (the report's timeline draws it)
    assert before <= result["started_at"] <= result["ended_at"] <= migration_state.stamp()
    assert (result["origin_version"], result["target_version"]) == ("13.16", "15.8")
    assert [d["name"] for d in result["databases"]] == ["bj", "bj-data"]
    assert result["databases"][1]["settings"] == ["TimeZone=GMT"]
    assert (result["bytes"], result["tables"], result["rows"]) == (8192, 4, 30)
    # a whole copy: its verification timed, no row sync step
    assert all(entry["verify_seconds"] >= 0 and "apply_seconds" not in entry and "prepare_seconds" not in entry
               for entry in result["databases"])
    recreate = servers.scripts[0]
    assert recreate[:2] == ("target", "postgres")
    # the copy is made under a name of its own, and named bj once restored
    assert recreate[2].splitlines() == [
        'DROP DATABASE IF EXISTS "bj";',
        'DROP DATABASE IF EXISTS "bj.incomplete";',
        """CREATE DATABASE "bj.incomplete" OWNER "bj" ENCODING 'UTF8' TEMPLATE template0 LC_COLLATE 'en_US.UTF-8' """
        """LC_CTYPE 'en_US.UTF-8';""",
        """ALTER DATABASE "bj.incomplete" SET "TimeZone" TO 'GMT';"""]
    assert ("target", "postgres", 'ALTER DATABASE "bj.incomplete" RENAME TO "bj";') in servers.scripts
    assert sorted(servers.renamed) == [("bj-data.incomplete", "bj-data"), ("bj.incomplete", "bj")]
    # every extension of the origin's database, in the schema it has there, before the restore
    assert servers.scripts[1][:2] == ("target", "bj.incomplete")
    assert servers.scripts[1][2].splitlines() == [
        'CREATE EXTENSION IF NOT EXISTS "btree_gin" WITH SCHEMA "pg_catalog";',
        'CREATE EXTENSION IF NOT EXISTS "hstore" WITH SCHEMA "pg_catalog";',
        'CREATE EXTENSION IF NOT EXISTS "ltree" WITH SCHEMA "pg_catalog";',
        'CREATE EXTENSION IF NOT EXISTS "pg_stat_statements" WITH SCHEMA "public";',
        'CREATE EXTENSION IF NOT EXISTS "plpgsql" WITH SCHEMA "pg_catalog";',
        'CREATE EXTENSION IF NOT EXISTS "unaccent" WITH SCHEMA "pg_catalog";']
    assert result["databases"][0]["locale"] == {"collate": "en_US.UTF-8", "ctype": "en_US.UTF-8"}
    assert {"name": "hstore", "schema": "pg_catalog"} in result["databases"][0]["extensions"]
    # the target was probed for the origin's locale before anything changed
    assert servers.probes == [("target", "postgres", "en_US.UTF-8")]
    producer, producer_env, consumer, consumer_env = servers.pipelines[0]
    assert producer[0].endswith("/pg_dump") and str(TUNNEL_PORT) in producer
    assert {"-v", "ON_ERROR_STOP=1"} <= set(consumer) and consumer[-2:] == ["-f", "-"]
    assert producer_env["PGPASSWORD"] == ORIGIN_PW and consumer_env["PGPASSWORD"] == TARGET_PW
    # passwords only in the environment, never in argv nor in the result
    for call in commands.calls:
        assert ORIGIN_PW not in json.dumps(call["args"]) and TARGET_PW not in json.dumps(call["args"])
    assert ORIGIN_PW not in json.dumps(servers.pipelines[0][0] + servers.pipelines[0][2])
    assert_no_secret(result, ORIGIN_PW, TARGET_PW)
    # the dump and the verification read the origin in one snapshot
    assert "--snapshot=snap-1" in producer and consumer[consumer.index("-d") + 1] == "bj.incomplete"
    assert ("origin", "bj-data") in servers.snapshot_queries
    # both sides' ids are kept for the next pass, which then compares transaction ids
    state = json.loads(open(servers.args["state_file"]).read())
    kept = state["bj-data"].pop("signatures")
    assert state["bj-data"] == {"origin": ["origin-cluster/1/16384", 700], "target": ["target-cluster/1/16384", 700]}
    # with the tables' signatures: the origin's read before its snapshot (no wait), the target's once quiet
    assert kept["origin"]["tables"] == servers.signatures["origin"]["tables"]
    assert kept["origin"]["drops"] == [["9229346", "0"]] and kept["target"]["proof"] is None
    assert sorted(servers.signature_reads) == [("origin", "bj", False), ("origin", "bj-data", False),
                                               ("target", "bj", True), ("target", "bj-data", True)]


def test_state_decides_how_the_next_pass_compares(servers):
    module = mock.Mock(params=dict(maintenance_db="postgres", db_user="bj"))
    transfer = bluemind_db_transfer.Transfer(module, mock.Mock(), mock.Mock())
    origin = dict(ident="origin-cluster/1/16384", xmin=800, xmax=805)
    target = dict(ident="target-cluster/1/16384", xmin=720, xmax=725)
    assert transfer.since("bj", origin, target) is None  # no earlier pass
    transfer.state = {"bj": {"origin": ["origin-cluster/1/16384", 700], "target": ["target-cluster/1/16384", 710]}}
    assert transfer.since("bj", origin, target) == (700, 710)
    # another cluster, timeline or database (restored, recreated) on either side: contents are compared
    assert transfer.since("bj", dict(origin, ident="origin-cluster/2/16384"), target) is None
    assert transfer.since("bj", origin, dict(target, ident="target-cluster/1/99999")) is None
    # ids from the future (the origin went back in time): contents are compared
    transfer.state["bj"]["origin"][1] = 900
    assert transfer.since("bj", origin, target) is None


def test_state_file_round_trip_and_garbage(tmp_path):
    path = str(tmp_path / "sub" / "db-sync.json")
    assert bluemind_db_transfer.load_state(path) == {}
    bluemind_db_transfer.save_state(path, {"bj": {"origin": ["a", 1], "target": ["b", 2]}})
    assert bluemind_db_transfer.load_state(path) == {"bj": {"origin": ["a", 1], "target": ["b", 2]}}
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    open(path, "w").write("not json")
    assert bluemind_db_transfer.load_state(path) == {}


def test_row_count_difference_fails(run_module, servers):
    servers.counts["target"] = "public.t_a\x1f9\0public.t_b\x1f5\0"
    result = run_module(bluemind_db_transfer, servers.args)
    assert result["failed"] is True
    assert "database bj differs after the copy (1 difference(s)): public.t_a: 10 rows on the origin, 9 on the target" \
        in result["msg"]
    assert_no_secret(result, ORIGIN_PW, TARGET_PW)


def test_restore_error_fails_with_psql_message(run_module, servers):
    servers.pipeline = None
    with mock.patch(MODULE + "stream_pipeline", lambda *a, **k: (100, -15, 3, "", "ERROR:  relation exists")):
        result = run_module(bluemind_db_transfer, servers.args)
    assert result["failed"] is True
    assert "copy of database bj failed (pg_dump exit -15, psql exit 3): ERROR:  relation exists" in result["msg"]


def test_check_mode_reads_the_origin_only(run_module, servers):
    result = run_module(bluemind_db_transfer, servers.args, check_mode=True)
    assert result["changed"] is True
    assert servers.scripts == [] and servers.pipelines == []
    entry = dict(result["databases"][1], extensions=len(result["databases"][1]["extensions"]))
    assert entry.pop("seconds") < 5  # a wall-clock time: its exact value depends on the machine's load
    assert entry == dict(name="bj-data", origin_size=90000000, settings=["TimeZone=GMT"], extensions=6,
                         locale=dict(collate="en_US.UTF-8", ctype="en_US.UTF-8"),
                         method="full", reason="mode=full")
    assert not os.path.exists(servers.args["state_file"])


def test_missing_origin_database(run_module, servers):
    result = run_module(bluemind_db_transfer, dict(servers.args, databases=["bj", "nope"]))
    assert result["failed"] is True and "database nope does not exist on the origin" in result["msg"]
    assert servers.scripts == []


def test_tunnel_failure(run_module, servers):
    def broken(*_args):
        raise SshError("the tunnel to root@192.0.2.10 port 5432 failed (ssh exit 255: Permission denied)")
    with mock.patch(MODULE + "Tunnel", broken):
        result = run_module(bluemind_db_transfer, servers.args)
    assert result["failed"] is True and result["changed"] is False
    assert result["msg"].startswith("the tunnel to root@192.0.2.10")


def test_missing_tools(run_module, servers, tmp_path):
    result = run_module(bluemind_db_transfer, dict(servers.args, pg_bin_dir=str(tmp_path / "nowhere")))
    assert result["failed"] is True and "pg_dump and psql not found" in result["msg"]


def test_sequences_may_be_ahead_on_a_serving_origin_only(run_module, servers):
    servers.sequences = {"origin": "public.seq\x1f20\0", "target": "public.seq\x1f15\0"}
    serving = run_module(bluemind_db_transfer, dict(servers.args, origin_serving=True))
    assert not serving.get("failed"), serving.get("msg")
    stopped = run_module(bluemind_db_transfer, servers.args)
    assert stopped["failed"] is True and "sequence public.seq: 20 on the origin, 15 on the target" in stopped["msg"]
    servers.sequences = {"origin": "public.seq\x1f15\0", "target": "public.seq\x1f20\0"}
    behind = run_module(bluemind_db_transfer, dict(servers.args, origin_serving=True))
    assert behind["failed"] is True and "sequence public.seq: 15 on the origin, 20 on the target" in behind["msg"]


def test_sequence_behind():
    assert bluemind_db_transfer.sequence_behind("never used", "3")
    assert bluemind_db_transfer.sequence_behind("3", "4") and not bluemind_db_transfer.sequence_behind("5", "4")


def test_in_parallel_keeps_the_order_and_raises_the_first_error():
    import threading
    seen = []

    def call(n):
        seen.append(threading.get_ident())
        return n * 2
    assert bluemind_db_transfer.in_parallel([lambda n=n: call(n) for n in range(4)]) == [0, 2, 4, 6]

    def boom():
        raise bluemind_db_transfer.PgError("listing failed")
    with pytest.raises(bluemind_db_transfer.PgError, match="listing failed"):
        bluemind_db_transfer.in_parallel([lambda: 1, boom])


def test_missing_extension_or_locale_fails_before_any_change(run_module, servers):
    servers.available = ["hstore", "plpgsql", "pg_stat_statements"]
    servers.origin_extensions.append(("pg_repack", "public"))
    servers.origin_locale = ("en_US.UTF-8", "fr_FR.UTF-8")
    result = run_module(bluemind_db_transfer, servers.args)
    assert result["failed"] is True and result["changed"] is False
    assert servers.scripts == [] and servers.pipelines == []  # nothing dropped, nothing restored
    msg = result["msg"]
    assert msg.startswith("the target cannot hold a copy of bj, bj-data: PostgreSQL extension(s) btree_gin, "
                          "ltree, pg_repack, unaccent used on the origin are not available on the target server")
    assert "btree_gin comes with PostgreSQL's contrib modules (Debian: postgresql-15 or postgresql-contrib)" in msg
    assert "pg_repack for PostgreSQL 15 (Debian: postgresql-15-repack)" in msg
    assert "cannot use the locale fr_FR.UTF-8" in msg and "enable 'fr_FR.UTF-8 UTF-8' in /etc/locale.gen" in msg
    assert "en_US.UTF-8 that" not in msg
    assert msg.endswith("Nothing was changed on the target")


def test_extension_in_another_schema_on_the_target_fails(run_module, servers):
    real = servers.pipeline

    def dump_then_move(*args, **_options):
        answer = real(*args)
        servers.target_extensions["bj.incomplete"]["hstore"] = "public"  # the copy is named bj afterwards
        return answer
    servers.pipeline = dump_then_move
    with mock.patch(MODULE + "stream_pipeline", dump_then_move):
        result = run_module(bluemind_db_transfer, servers.args)
    assert result["failed"] is True
    assert "database bj differs after the copy (1 difference(s)): extension hstore in schema pg_catalog on " \
           "the origin, in schema public on the target" in result["msg"]


def test_row_sync_needs_the_same_locale_extensions_and_large_objects(servers):
    module = mock.Mock(params=dict(maintenance_db="postgres", db_user="bj"))
    transfer = bluemind_db_transfer.Transfer(module, mock.Mock(), mock.Mock())
    transfer.target.query.return_value = [("bj", "f")]
    entry = dict(name="bj", settings=["TimeZone=GMT"], locale=dict(collate="en_US.UTF-8", ctype="en_US.UTF-8"),
                 extensions=[dict(name="hstore", schema="pg_catalog")])
    origin = dict(large_objects=[2, "digest-1"])
    target = dict(settings=["TimeZone=GMT"], locale=["en_US.UTF-8", "en_US.UTF-8"], extensions=[["hstore", "pg_catalog"]],
                  large_objects=[2, "digest-1"])
    with mock.patch.object(transfer, "schema", return_value=["same"]), \
            mock.patch.object(transfer, "facts", side_effect=lambda *a, **k: dict(target)):
        assert transfer.row_sync_blocker(entry, "snap", origin)[0] is None
        target["locale"] = ["C.UTF-8", "C.UTF-8"]
        assert transfer.row_sync_blocker(entry, "snap", origin)[0] == \
            "the locales differ (origin en_US.UTF-8/en_US.UTF-8, target C.UTF-8/C.UTF-8)"
        target.update(locale=["en_US.UTF-8", "en_US.UTF-8"], extensions=[["hstore", "public"]])
        assert transfer.row_sync_blocker(entry, "snap", origin)[0] == "the extensions differ"
        # a large object changed (same number, another digest), or created, since the last pass
        target["extensions"] = [["hstore", "pg_catalog"]]
        target["large_objects"] = [2, "digest-0"]
        assert transfer.row_sync_blocker(entry, "snap", origin)[0] == (
            "the large objects differ (2 on both sides, but their contents, owners, ACLs or comments differ; "
            "the row sync moves table rows only)")
        target["large_objects"] = [1, "digest-0"]
        assert transfer.row_sync_blocker(entry, "snap", origin)[0].startswith(
            "the large objects differ (2 on the origin, 1 on the target;")


def test_large_objects_that_differ_make_the_pass_a_whole_copy(run_module, servers):
    """A large object changed on the origin since the last pass: the row sync cannot carry it, the
    database is copied whole (pg_dump carries it) and verified; without one, the rows move."""
    first = run_module(bluemind_db_transfer, servers.args)  # mode=full: the target's copies
    assert not first.get("failed"), first.get("msg")
    assert [d["large_objects"] for d in first["databases"]] == [0, 0]
    sync = dict(servers.args, mode="sync")
    quiet = run_module(bluemind_db_transfer, sync)
    assert not quiet.get("failed"), quiet.get("msg")
    assert [d["method"] for d in quiet["databases"]] == ["rows", "rows"] and quiet["changed"] is False
    assert len(servers.pipelines) == 2 and len(servers.row_syncs) == 2
    servers.origin_large_objects = [1, "a new object"]  # in both databases
    again = run_module(bluemind_db_transfer, sync)
    assert not again.get("failed"), again.get("msg")
    assert again["changed"] is True
    for entry in again["databases"]:
        assert (entry["method"], entry["large_objects"]) == ("full", 1)
        assert entry["reason"] == ("the large objects differ (1 on the origin, 0 on the target; "
                                   "the row sync moves table rows only)")
    assert len(servers.pipelines) == 4 and len(servers.row_syncs) == 2  # copied whole, no row sync applied
    # a dump of the whole database (no -n/-t, no -B): pg_dump then carries the large objects
    dump = servers.pipelines[-1][0]
    assert [a for a in dump if a.startswith("-")] == ["--format=plain", "--snapshot=snap-1", "-h", "-p", "-U", "-w", "-d"]
    # the same in check mode: the reason, nothing copied
    servers.origin_large_objects = [1, "changed since"]
    planned = run_module(bluemind_db_transfer, sync, check_mode=True)
    assert [d["method"] for d in planned["databases"]] == ["full", "full"] and planned["changed"] is True
    assert planned["databases"][0]["reason"].startswith("the large objects differ (1 on both sides, but their contents")
    assert len(servers.pipelines) == 4


def test_a_copy_without_the_large_objects_fails(run_module, servers):
    """A pass that misses large objects (a dump that left them out) fails instead of reporting success."""
    real = servers.pipeline

    def dump_without_large_objects(*args, **_options):
        kept = dict(servers.target_large_objects)
        answer = real(*args)
        servers.target_large_objects = kept
        return answer
    servers.origin_large_objects = [3, "three objects"]
    with mock.patch(MODULE + "stream_pipeline", dump_without_large_objects):
        result = run_module(bluemind_db_transfer, servers.args)
    assert result["failed"] is True
    assert "database bj differs after the copy (1 difference(s)): large objects: 3 on the origin, 0 on the target" \
        in result["msg"]
    servers.target_large_objects = {"bj": [3, "other contents"], "bj-data": [3, "other contents"]}
    with mock.patch(MODULE + "stream_pipeline", dump_without_large_objects):
        result = run_module(bluemind_db_transfer, servers.args)
    assert result["failed"] is True
    assert "large objects: 3 on both sides, but their contents, owners, ACLs or comments differ" in result["msg"]


def test_a_pass_left_running_holds_the_rerun_back_before_anything_is_read(run_module, servers, tmp_path):
    """Another holder of the database lock (a pass whose controller died): the rerun waits, then fails
    naming it, and neither server was touched."""
    import fcntl
    path = tmp_path / "locks" / "bluemind-migration-db.lock"  # lock_dir is replaced per test (conftest)
    path.parent.mkdir(exist_ok=True)
    fd = os.open(str(path), os.O_RDWR | os.O_CREAT)
    os.write(fd, b"pid 777 since earlier")
    other = os.open(str(path), os.O_RDWR)
    fcntl.flock(other, fcntl.LOCK_EX)
    try:
        result = run_module(bluemind_db_transfer, dict(servers.args, lock_timeout=1))
    finally:
        os.close(other)
        os.close(fd)
    assert result["failed"] is True and "a database pass is still running on the target" in result["msg"]
    assert "pid 777" in result["msg"] and servers.scripts == [] and servers.pipelines == []


def test_the_pass_reports_how_long_it_waited_for_the_lock(run_module, servers):
    result = run_module(bluemind_db_transfer, servers.args)
    assert result["waited_for_lock"] == 0.0


def test_row_sync_lists_no_table_that_is_empty_on_both_sides():
    module = mock.Mock(params=dict(maintenance_db="postgres", db_user="bj"))
    transfer = bluemind_db_transfer.Transfer(module, mock.Mock(), mock.Mock())
    transfer.target.query.return_value = [("public.t_a", "id,x", "id"), ("public.t_b", "id", "id"), ("public.t_c", "id", "")]
    origin = dict(counts={"public.t_a": 0, "public.t_b": 3, "public.t_c": 0}, sequences=[])
    target = dict(counts={"public.t_a": 0, "public.t_b": 3, "public.t_c": 1})
    listed = []

    def plan(tables, since=None, by_changes=(), rows=None, by_buckets=(), buckets_from_rows=0, fine=()):
        listed.extend(table.name for table in tables)
        return [dict(table=table, fetch=[], delete=["k"] if table.name == "public.t_c" else [], replace=False,
                     counts=dict(origin=origin["counts"][table.name], target=target["counts"][table.name]))
                for table in tables]

    entry = dict(name="bj-data")
    with mock.patch(MODULE + "RowSync") as row_sync:
        row_sync.return_value.plan_tables.side_effect = plan
        transfer.sync_rows(entry, "snap", False, None, origin, target)
    assert sorted(listed) == ["public.t_b", "public.t_c"]  # t_a: empty on both sides, t_c: a row to delete
    assert entry["tables_changed"] == 1 and entry["rows_deleted"] == 1


def test_undeleted_tables_are_listed_by_their_changes_and_listed_whole_when_a_count_differs():
    """A table that deleted nothing on the origin (statistics) is planned from its changed rows; when its
    count differs at the apply (a key changed by an update), the transaction is rolled back, that
    table is listed whole and the changes applied again. A dry run lists every table whole."""
    module = mock.Mock(params=dict(maintenance_db="postgres", db_user="bj"))
    transfer = bluemind_db_transfer.Transfer(module, mock.Mock(), mock.Mock())
    transfer.target.query.return_value = [("public.t_a", "id,x", "id", "t"), ("public.t_b", "k", "k"), ("public.t_c", "x", "")]
    origin = dict(counts={"public.t_a": 5, "public.t_b": 3, "public.t_c": 2}, sequences=[])
    target = dict(counts={"public.t_a": 4, "public.t_b": 3, "public.t_c": 2})
    calls, applied = [], []

    def plan(tables, since=None, by_changes=(), rows=None, by_buckets=(), buckets_from_rows=0, fine=()):
        calls.append(([t.name for t in tables], sorted(by_changes), rows, sorted(by_buckets)))
        return [dict(table=t, fetch=[9], delete=[9], replace=False, counts=dict(origin=1, target=1),
                     **(dict(expect=rows[t.name][0]) if t.name in set(by_changes) | set(by_buckets) else {}))
                for t in tables]

    def apply(plans, sequences):
        applied.append([p["table"].name for p in plans if "expect" in p])
        if len(applied) == 1:
            raise bluemind_db_transfer.Recount([0], "a count differs", "target", "bm-rowsync-recount 0")
        return 10

    undeleted = {"public.t_a", "public.t_b", "public.t_c"}  # t_c has no key: listed whole anyway
    with mock.patch.object(transfer, "unchanged", return_value=(set(), undeleted, undeleted, None)), \
            mock.patch(MODULE + "RowSync") as row_sync:
        row_sync.return_value.plan_tables.side_effect = plan
        row_sync.return_value.apply.side_effect = apply
        entry = dict(name="bj-data")
        counted = transfer.sync_rows(entry, "snap", True, (100, 200), origin, target)
    # what the committed transaction counted: t_b (t_a, listed whole at the retry, was not counted there)
    assert counted == {"public.t_b"}
    assert all(c[1] == ["public.t_a", "public.t_b"] for c in calls[:-1]) and calls[0][2]["public.t_a"] == (5, 4)
    # the retry lists the table the count named, whole (no by_changes), and applies everything again
    assert calls[-1][:2] == (["public.t_a"], []) and calls[-1][3] == [] and applied == [["public.t_a", "public.t_b"], ["public.t_b"]]
    assert (entry["tables_by_changes"], entry["tables_recounted"], entry["bytes"]) == (2, 1, 10)
    calls[:] = []
    with mock.patch.object(transfer, "unchanged", return_value=(set(), undeleted, undeleted, None)), \
            mock.patch(MODULE + "RowSync") as row_sync:
        row_sync.return_value.plan_tables.side_effect = plan
        entry = dict(name="bj-data")
        counted = transfer.sync_rows(entry, "snap", False, (100, 200), origin, target)
    assert all(c[1] == c[3] == [] for c in calls) and entry["tables_by_changes"] == 0 and not row_sync.return_value.apply.called
    assert counted == set()  # a dry run commits nothing


def test_tables_untouched_on_the_target_are_listed_by_buckets_when_the_origin_may_have_deleted():
    """A table with a key the target did not change (its statistics), but which the origin may have
    deleted rows from (or whose origin statistics prove nothing), is planned by buckets; one that
    deleted nothing stays planned by its changes; a table without a key is planned by buckets even when
    the origin deleted nothing (an update there is a content gone); one changed on the target is listed
    whole; a dry run plans none by buckets."""
    module = mock.Mock(params=dict(maintenance_db="postgres", db_user="bj", buckets_from_rows=3))
    transfer = bluemind_db_transfer.Transfer(module, mock.Mock(), mock.Mock())
    transfer.target.query.return_value = [("public.t_a", "id,x", "id", "t"), ("public.t_b", "k", "k"),
                                          ("public.t_c", "x", ""), ("public.t_d", "k", "k")]
    origin = dict(counts={"public.t_a": 5, "public.t_b": 3, "public.t_c": 3, "public.t_d": 7}, sequences=[])
    target = dict(counts={"public.t_a": 4, "public.t_b": 3, "public.t_c": 3, "public.t_d": 8})
    calls = []

    def plan(tables, since=None, by_changes=(), rows=None, by_buckets=(), buckets_from_rows=0, fine=()):
        calls.append((sorted(by_changes), sorted(by_buckets)))
        return [dict(table=t, fetch=[], delete=[], replace=False, counts=dict(origin=1, target=1)) for t in tables]

    for apply_changes, origin_proof in ((True, None), (True, "the origin's statistics could not be read"), (False, None)):
        undeleted = {"public.t_a", "public.t_c"} if origin_proof is None else set()
        untouched = {"public.t_a", "public.t_b", "public.t_c"}  # t_d changed on the target
        calls[:] = []
        with mock.patch.object(transfer, "unchanged", return_value=(set(), undeleted, untouched, origin_proof)), \
                mock.patch(MODULE + "RowSync") as row_sync:
            row_sync.return_value.plan_tables.side_effect = plan
            row_sync.return_value.apply.return_value = 0
            entry = dict(name="bj-data")
            transfer.sync_rows(entry, "snap", apply_changes, (100, 200), origin, target)
        by_changes = set(name for call in calls for name in call[0])
        by_buckets = set(name for call in calls for name in call[1])
        if not apply_changes:
            assert (by_changes, by_buckets) == (set(), set())
        elif origin_proof is None:
            assert (by_changes, by_buckets) == ({"public.t_a"}, {"public.t_b", "public.t_c"})
        else:
            assert (by_changes, by_buckets) == (set(), {"public.t_a", "public.t_b", "public.t_c"})
            assert entry["skip_blocker"] == origin_proof
        assert (entry["tables_by_changes"], entry["tables_by_buckets"]) == (len(by_changes), len(by_buckets))
    # below buckets_from_rows rows on the origin, a table the origin proves it deleted rows from is listed
    # whole (cheaper than its buckets); when the origin proves nothing it is one bucket (the threshold
    # goes to plan_tables, which counts it so)
    transfer.buckets_from_rows = 4
    for proof, expected in ((None, {"public.t_a"}), ("no proof", {"public.t_a", "public.t_b"})):
        calls[:] = []
        with mock.patch.object(transfer, "unchanged", return_value=(set(), set(), {"public.t_a", "public.t_b"}, proof)), \
                mock.patch(MODULE + "RowSync") as row_sync:
            row_sync.return_value.plan_tables.side_effect = plan
            row_sync.return_value.apply.return_value = 0
            transfer.sync_rows(dict(name="bj-data"), "snap", True, (100, 200), origin, target)
        assert set(name for call in calls for name in call[1]) == expected  # t_a: 5 rows; t_b: 3
        assert all(call.args[-2] == 4 for call in row_sync.return_value.plan_tables.call_args_list)


def test_the_tables_a_listing_by_buckets_counts_are_not_counted_before_it():
    """The window's pass leaves out of the origin's facts the tables that the target's side read before the
    gate would have listed by buckets (many rows, or a key of integers and enough rows for fine buckets):
    t_big, listed by buckets, takes its count from its listing (1000, not the target's 900 that chose its
    buckets); t_chg, listed by its changes, is counted apart in the snapshot before it is listed (its plan
    expects that count); t_same, proven unchanged on both sides, takes the target's count; t_small was
    counted by the facts. No reading ahead, or an origin that serves: every table counted by the facts."""
    module = mock.Mock(params=dict(maintenance_db="postgres", db_user="bj", buckets_from_rows=100))
    transfer = bluemind_db_transfer.Transfer(module, mock.Mock(), mock.Mock())
    columns = [("public.t_big", "id,x", "id", "t", "(id::bigint << 0)"), ("public.t_chg", "id,x", "id", "t", "(id::bigint << 0)"),
               ("public.t_mix", "a,b", "a,b", "f", "(a::bigint << 0) # (b::bigint << 21)"),
               ("public.t_same", "id", "id", "t", "(id::bigint << 0)"), ("public.t_small", "k", "k", "f", "")]
    target = dict(counts={"public.t_big": 900, "public.t_chg": 500, "public.t_mix": 70, "public.t_same": 300,
                          "public.t_small": 64})
    transfer.state["bj-data"] = dict(signatures=dict(origin={}, target={}))
    transfer.ahead["bj-data"] = (dict(target, hash64=True), {}, columns)
    uncounted = transfer.listed_apart("bj-data")
    assert uncounted == {"public.t_big", "public.t_chg", "public.t_mix", "public.t_same"}  # t_small: 64 rows, no mix
    origin = dict(counts={"public.t_small": 64}, sequences=[])
    transfer.target.query.return_value = columns
    transfer.origin.query.return_value = [('{"public.t_chg": 501}',)]
    calls = []

    def plan(tables, since=None, by_changes=(), rows=None, by_buckets=(), buckets_from_rows=0, fine=()):
        calls.append(dict(rows))
        return [dict(table=t, fetch=[], delete=[], replace=False, expect=1000 if t.name == "public.t_big" else rows[t.name][0],
                     counts=dict(origin=1000 if t.name == "public.t_big" else rows[t.name][0], target=rows[t.name][1]))
                for t in tables]

    untouched = {"public.t_big", "public.t_chg", "public.t_mix", "public.t_small"}
    with mock.patch.object(transfer, "unchanged", return_value=({"public.t_same"}, {"public.t_chg"}, untouched, None)), \
            mock.patch(MODULE + "RowSync") as row_sync:
        row_sync.return_value.plan_tables.side_effect = plan
        row_sync.return_value.apply.return_value = 0
        entry = dict(name="bj-data")
        transfer.sync_rows(entry, "snap", True, (100, 200), origin, target, columns, uncounted)
    # counted apart before the listing, in the pass's snapshot: t_chg alone (t_mix by fine buckets counts itself)
    (counting,) = transfer.origin.query.call_args_list
    _run, _name, sql, _what, snapshot = counting.args
    assert "'public.t_chg'" in sql and "t_big" not in sql and "t_mix" not in sql and snapshot == "snap"
    assert all(call["public.t_big"] == (900, 900) and call.get("public.t_chg", (501,))[0] == 501 for call in calls)
    assert origin["counts"] == {"public.t_big": 1000, "public.t_chg": 501, "public.t_mix": 70, "public.t_same": 300,
                                "public.t_small": 64}
    assert entry["tables_counted_by_buckets"] == 2 and entry["tables_skipped"] == 1
    transfer.origin_serving = True
    assert transfer.listed_apart("bj-data") == set()
    transfer.origin_serving = False
    transfer.ahead.clear()
    assert transfer.listed_apart("bj-data") == set()


def test_a_pass_while_the_origin_serves_vacuums_the_tables_it_wrote_on_the_target():
    """Out of the window, the tables a row sync wrote are vacuumed on the target (the window's first reads
    would set every new row's hint bits); the window's pass (the origin stopped) and a dry run do not; a
    VACUUM that fails is said in the entry and fails nothing."""
    module = mock.Mock(params=dict(maintenance_db="postgres", db_user="bj", origin_serving=True))
    transfer = bluemind_db_transfer.Transfer(module, mock.Mock(), mock.Mock())
    transfer.target.query.return_value = [("public.t_a", "id,x", "id", "t"), ("public.t_b", "k", "k")]
    origin = dict(counts={"public.t_a": 5, "public.t_b": 3}, sequences=[])
    target = dict(counts={"public.t_a": 4, "public.t_b": 3})

    def plan(tables, *args):
        return [dict(table=t, fetch=[9] if t.name == "public.t_a" else [], delete=[], replace=False,
                     counts=dict(origin=1, target=1)) for t in tables]

    def one_pass(serving, apply_changes=True):
        transfer.origin_serving = serving
        transfer.target.execute.reset_mock()
        with mock.patch.object(transfer, "unchanged", return_value=(set(), set(), set(), None)), \
                mock.patch(MODULE + "RowSync") as row_sync:
            row_sync.return_value.plan_tables.side_effect = plan
            row_sync.return_value.apply.return_value = 10
            entry = dict(name="bj-data")
            transfer.sync_rows(entry, "snap", apply_changes, (100, 200), origin, target)
        return entry

    entry = one_pass(True)
    assert [call.args[1:3] for call in transfer.target.execute.call_args_list] == [("bj-data", "VACUUM (ANALYZE) public.t_a;\n")]
    assert entry["vacuum_seconds"] >= 0 and "vacuum_error" not in entry
    for serving, apply_changes in ((False, True), (True, False)):
        entry = one_pass(serving, apply_changes)
        assert not transfer.target.execute.called and "vacuum_seconds" not in entry
    transfer.target.execute.side_effect = bluemind_db_transfer.PgError("vacuuming: permission denied")
    entry = one_pass(True)
    assert entry["vacuum_error"] == "vacuuming: permission denied" and entry["method"] == "rows"


def test_small_tables_keyed_by_integers_that_lost_rows_are_cut_into_fine_buckets():
    """Below buckets_from_rows, a table that the origin's statistics prove lost rows is cut into fine
    buckets when its key is made of integers (TABLE_COLUMNS_SQL's mix: a change-set partition) and it
    holds at least FINE_BUCKETS_FROM_ROWS rows; without such a key, or smaller, it is listed whole; when
    the origin proves nothing, the small ones are one bucket each, none fine, but while the origin serves:
    then the tables its mark, read before the pass's snapshot, says lost rows since the last pass's mark
    (a guess, not a proof) are cut into fine buckets."""
    module = mock.Mock(params=dict(maintenance_db="postgres", db_user="bj", buckets_from_rows=1000))
    transfer = bluemind_db_transfer.Transfer(module, mock.Mock(), mock.Mock())
    kept = dict(tables={"public.cs_1": [1, 1, 64, 0, 3], "public.cs_2": [2, 2, 70, 0, 6], "public.big": [3, 3, 5000, 0, 0]})
    transfer.state["bj-data"] = dict(signatures=dict(origin=kept, target=kept))
    mix = "(item_id::bigint << 0) # (version::bigint << 21)"
    transfer.target.query.return_value = [("public.cs_1", "item_id,version,x", "item_id,version", "f", mix),
                                          ("public.cs_2", "item_id,version,x", "item_id,version", "f", mix),
                                          ("public.t_text", "k,x", "k", "f", ""), ("public.big", "id", "id", "t", "(id::bigint << 0)")]
    origin = dict(counts={"public.cs_1": 64, "public.cs_2": 63, "public.t_text": 500, "public.big": 5000}, sequences=[])
    target = dict(counts={"public.cs_1": 66, "public.cs_2": 64, "public.t_text": 501, "public.big": 5001})
    untouched = set(origin["counts"])
    # the origin's mark now: cs_1 and cs_2 deleted rows since (cs_2 is too small to be cut), big did not
    mark = dict(tables={"public.cs_1": [1, 1, 66, 0, 5], "public.cs_2": [2, 2, 71, 0, 7], "public.big": [3, 3, 5001, 0, 0]})
    for proof, serving, fine, by_buckets in ((None, False, {"public.cs_1"}, {"public.cs_1", "public.big"}),
                                             ("no proof", False, set(), untouched),
                                             ("the origin still serves", True, {"public.cs_1"}, untouched)):
        transfer.origin_serving, transfer.marks["bj-data"] = serving, mark
        with mock.patch.object(transfer, "unchanged", return_value=(set(), set(), untouched, proof)), \
                mock.patch(MODULE + "RowSync") as row_sync:
            row_sync.return_value.plan_tables.side_effect = lambda tables, *args: [
                dict(table=t, fetch=[], delete=[], replace=False, counts=dict(origin=1, target=1)) for t in tables]
            row_sync.return_value.apply.return_value = 0
            entry = dict(name="bj-data")  # each pass given its own counts (a pass fills in those it counted)
            transfer.sync_rows(entry, "snap", True, (100, 200), dict(origin, counts=dict(origin["counts"])), target)
        calls = row_sync.return_value.plan_tables.call_args_list
        assert set(name for call in calls for name in call.args[4]) == by_buckets
        assert all(set(call.args[-1]) == fine for call in calls)
        assert (entry["tables_by_buckets"], entry["tables_by_fine_buckets"]) == (len(by_buckets), len(fine))
    # while the origin serves, a table its mark says lost no row is one bucket; without the last pass's mark, all
    assert transfer.guessed_losing("bj-data") == {"public.cs_1", "public.cs_2"}
    transfer.marks["bj-data"] = dict(tables=dict(mark["tables"], **{"public.cs_1": [1, 1, 66, 0, 3]}))
    assert transfer.guessed_losing("bj-data") == {"public.cs_2"}
    transfer.marks["bj-data"] = dict(tables=dict(mark["tables"], **{"public.cs_1": [1, 9, 0, 0, 0]}))  # truncated
    assert transfer.guessed_losing("bj-data") == {"public.cs_1", "public.cs_2"}
    transfer.state.clear()
    assert transfer.guessed_losing("bj-data") == set()


ENOSPC = ('psql:<stdin>:150103: ERROR:  could not extend file "base/24580/24590": No space left on device\n'
          'HINT:  Check free disk space.\nCONTEXT:  COPY t_big, line 57273')
LOST = ("psql:<stdin>:9: FATAL:  terminating connection due to administrator command\n"
        "psql:<stdin>:9: error: connection to server was lost")


def test_a_whole_copy_that_fills_the_disk_drops_its_incomplete_copy_and_says_what_to_do(run_module, servers):
    """The restore stops on a full disk: the half copy never had the database's name, it is dropped (its
    space given back), the state forgets the database's ids, and the message says where and what to do."""
    bluemind_db_transfer.save_state(servers.args["state_file"], {
        "bj": {"origin": ["o/1/1", 1], "target": ["t/1/1", 1]}, "bj-data": {"origin": ["o/1/2", 1], "target": ["t/1/2", 1]}})
    with mock.patch(MODULE + "stream_pipeline", lambda *a, **k: (100, -15, 3, "", ENOSPC)):
        result = run_module(bluemind_db_transfer, dict(servers.args, databases=["bj"]))
    assert result["failed"] is True
    assert result["msg"] == (
        "copy of database bj failed (pg_dump exit -15, psql exit 3): %s; the target's PostgreSQL has no space left "
        "on device (writing /var/lib/postgresql/15/main/base/24580/24590): free space there and run the task "
        "again. The target holds no copy of bj now (the incomplete copy was dropped); the next run copies it "
        "whole" % ENOSPC)
    assert servers.scripts[-1] == ("target", "postgres", 'DROP DATABASE IF EXISTS "bj.incomplete";')
    assert servers.renamed == []
    state = bluemind_db_transfer.load_state(servers.args["state_file"])
    assert sorted(state) == ["bj-data"]  # bj's ids named the copy that was dropped


def test_a_whole_copy_whose_server_went_away_leaves_the_incomplete_copy_to_the_next_run(run_module, servers):
    servers.script_answer = lambda script: (2, "", "psql: error: connection to server at \"127.0.0.1\", port 5432 "
                                                   "failed: Connection refused") if "incomplete\";" in script \
        and not script.startswith("DROP DATABASE IF EXISTS \"bj\"") else None
    with mock.patch(MODULE + "stream_pipeline", lambda *a, **k: (100, -15, 2, "", LOST)):
        result = run_module(bluemind_db_transfer, dict(servers.args, databases=["bj"]))
    assert result["failed"] is True
    assert result["msg"].endswith(
        "; the target's PostgreSQL (127.0.0.1:5432) stopped answering: it was stopped, killed or is restarting; "
        "start it (systemctl start postgresql), see its log, and run the task again. The target holds no copy of "
        "bj now (the incomplete copy (database bj.incomplete) is dropped by the next run); the next run copies it "
        "whole")


def test_a_failed_pass_keeps_its_error_when_the_ids_cannot_be_read_either(run_module, servers):
    """bj is copied and verified, bj-data's copy loses the target's server: the new ids of bj cannot be read
    any more. The task says what happened to bj-data, not that reading ids failed, and the state file is
    still written: it no longer names the copies that were dropped (the next pass compares contents)."""
    bluemind_db_transfer.save_state(servers.args["state_file"], {
        "bj": {"origin": ["o/1/1", 1], "target": ["t/1/1", 1]}, "bj-data": {"origin": ["o/1/2", 1], "target": ["t/1/2", 1]}})
    servers.identity_error = "server closed the connection unexpectedly"
    real = servers.pipeline

    def copy(producer, producer_env, consumer, consumer_env, on_bytes=None):
        if "bj-data.incomplete" in consumer:
            return 100, -15, 2, "", LOST
        return real(producer, producer_env, consumer, consumer_env)
    with mock.patch(MODULE + "stream_pipeline", copy):
        result = run_module(bluemind_db_transfer, servers.args)
    assert result["failed"] is True
    assert result["msg"].startswith("copy of database bj-data failed (pg_dump exit -15, psql exit 2): ")
    assert "stopped answering" in result["msg"]
    assert bluemind_db_transfer.load_state(servers.args["state_file"]) == {}


def test_ids_that_cannot_be_recorded_after_a_good_pass_fail_the_task(run_module, servers):
    servers.identity_error = "server closed the connection unexpectedly"
    result = run_module(bluemind_db_transfer, servers.args)
    assert result["failed"] is True
    assert result["msg"].startswith("the databases were moved and verified, but recording their ids in %s failed: "
                                    "reading transaction ids on the target server" % servers.args["state_file"])


def test_the_pass_of_the_window_gives_the_target_its_own_address_before_it_records_its_ids(run_module, servers):
    args = dict(servers.args, readdress_to="192.0.2.20", readdress_from=["192.0.2.10", "", "192.0.2.20"])
    result = run_module(bluemind_db_transfer, args)
    assert not result.get("failed") and result["changed"] is True
    assert result["readdress"] == {"server": {"t_server": 1, "t_systemconf": 2},
                                   "webmail": {"moved": 2, "blocked": 1, "table": True}}
    # in bj on the target, once both databases were copied and verified, before the target's ids were read
    assert sorted(servers.renamed) == [("bj-data.incomplete", "bj-data"), ("bj.incomplete", "bj")]
    assert [(side, db, ids) for side, db, _sql, ids in servers.readdress] == [("target", "bj", 0)] * 5
    assert [sql for _side, _db, sql, _ids in servers.readdress] == [
        "SELECT (SELECT count(*)", "WITH s AS", "SELECT count(*) FROM", "SELECT count(*) FILTER", "UPDATE rc_users AS"]
    assert any("where 192.0.2.10" in command for command in result["executed_commands"])
    # the profile that could not move is said, with what to do
    assert any("1 webmail profiles stay on 192.0.2.10" in json.dumps(warning) for warning in result["warnings"])
    assert set(json.loads(open(servers.args["state_file"]).read())) == {"bj", "bj-data"}


def test_a_readdress_that_fails_fails_the_pass_and_keeps_its_ids(run_module, servers):
    servers.readdress_error = "ERROR:  relation \"t_server\" does not exist"
    result = run_module(bluemind_db_transfer, dict(servers.args, readdress_to="192.0.2.20", readdress_from=["192.0.2.10"]))
    assert result["failed"] is True
    assert result["msg"].startswith("the databases were moved and verified, but giving the target its own address "
                                    "failed: server directory and system configuration: ")
    assert "Run the task again" in result["msg"]
    # the pass's ids are kept: the rerun moves no row again
    assert set(bluemind_db_transfer.load_state(servers.args["state_file"])) == {"bj", "bj-data"}


def test_no_readdress_while_the_origin_serves_nor_without_old_addresses(run_module, servers):
    result = run_module(bluemind_db_transfer, dict(servers.args, readdress_to="192.0.2.20", origin_serving=True))
    assert result["failed"] is True and "origin_serving" in result["msg"] and servers.pipelines == []
    result = run_module(bluemind_db_transfer, dict(servers.args, readdress_to="192.0.2.20", readdress_from=["192.0.2.20"]))
    assert not result.get("failed") and servers.readdress == []
    assert result["readdress"] == {"server": {"t_server": 0, "t_systemconf": 0},
                                   "webmail": {"moved": 0, "blocked": 0, "table": False}}
    # check mode sets nothing
    result = run_module(bluemind_db_transfer, dict(servers.args, mode="sync", readdress_to="192.0.2.20",
                                                   readdress_from=["192.0.2.10"]), check_mode=True)
    assert not result.get("failed") and "readdress" not in result and servers.readdress == []


def transfer_with(copy_side_effect=None):
    module = mock.Mock(params=dict(maintenance_db="postgres", db_user="bj"))
    origin = bluemind_db_transfer.PgServer("origin", "/b", "127.0.0.1", 40001, "bj")
    target = bluemind_db_transfer.PgServer("target", "/b", "127.0.0.1", 5432, "bj")
    transfer = bluemind_db_transfer.Transfer(module, origin, target)
    transfer.copy = mock.Mock(side_effect=copy_side_effect)
    return transfer


@pytest.mark.parametrize("side, messages, said", [
    ("target", LOST, "the target's PostgreSQL (127.0.0.1:5432) stopped answering"),
    ("target", 'ERROR:  could not extend file "/x/base/1/2": No space left on device',
     "the target's PostgreSQL has no space left on device (writing /x/base/1/2"),
    ("origin", "server closed the connection unexpectedly", "the origin's PostgreSQL (127.0.0.1:40001) stopped answering"),
])
def test_a_row_sync_that_loses_a_server_or_fills_the_disk_fails_without_a_whole_copy(side, messages, said):
    """A whole copy would fail the same way, after dropping a copy that the rerun brings up to date."""
    transfer = transfer_with()
    error = bluemind_db_transfer.RowSyncError("applying the changes to bj on the %s failed (psql exit 2), nothing "
                                              "was changed there: %s" % (side, messages), side, messages)
    entry = dict(name="bj")
    with mock.patch(MODULE + "Snapshot", FakeSnapshot), \
            mock.patch.object(transfer, "facts", return_value=dict(ident="o", xmin=1, xmax=2)), \
            mock.patch.object(transfer, "row_sync_blocker", return_value=(None, dict(ident="t", xmin=1, xmax=2))), \
            mock.patch.object(transfer, "target_copies", return_value={"bj": "f"}), \
            mock.patch.object(transfer, "target_columns", return_value=None), \
            mock.patch.object(transfer, "sync_rows", side_effect=error):
        with pytest.raises(bluemind_db_transfer.PgError) as err:
            transfer.sync(entry, "sync", True)
    assert str(err.value).startswith("row sync of bj failed: applying the changes")
    assert said in str(err.value)
    assert str(err.value).endswith("run the task again. The target's copy of bj is unchanged (the changes apply in "
                                   "one transaction)")
    transfer.copy.assert_not_called()


def test_the_comparison_after_the_commit_does_not_count_again_the_tables_the_commit_counted():
    """The row counts that the row sync's transaction checked before it committed are the origin's: the
    target's state read after it leaves those tables out of its counts (a count scans the table) and the
    comparison takes the origin's for them; every other table is counted and compared. Nor does it read
    the catalogs' digest, which the comparison does not look at."""
    transfer = transfer_with()
    origin = dict(ident="o", xmin=1, xmax=2, sequences=[], counts={"public.big": 900, "public.small": 3})
    reads, digests = [], []

    def facts(server, name, snapshot=None, counted_apart=(), catalogs=True):
        reads.append(sorted(counted_apart))
        digests.append((server.label, catalogs))
        if server is transfer.origin:
            return dict(origin)
        return dict(origin, counts={"public.small": 3})  # what a read without public.big's count gives

    entry = dict(name="bj-data", settings=[], locale={}, extensions=[])
    with mock.patch(MODULE + "Snapshot", FakeSnapshot), \
            mock.patch.object(transfer, "facts", side_effect=facts), \
            mock.patch.object(transfer, "row_sync_blocker", return_value=(None, dict(ident="t", xmin=1, xmax=2))), \
            mock.patch.object(transfer, "target_copies", return_value={"bj": "f"}), \
            mock.patch.object(transfer, "target_columns", return_value=None), \
            mock.patch.object(transfer, "sync_rows", return_value={"public.big"}), \
            mock.patch.object(transfer, "compare", return_value={}) as compare:
        transfer.sync(entry, "sync", True)
    assert reads[-1] == ["public.big"] and compare.call_args[0][2]["counts"] == origin["counts"]
    assert entry["tables_counted_at_commit"] == 1
    # the origin's facts in the snapshot hold the digest (kept for the next pass); the check after the commit not
    assert digests[0] == ("origin", True) and digests[-1] == ("target", False)
    # a whole copy (the row sync could not run) is counted whole after it
    reads[:] = []
    with mock.patch(MODULE + "Snapshot", FakeSnapshot), \
            mock.patch.object(transfer, "facts", side_effect=facts), \
            mock.patch.object(transfer, "row_sync_blocker", return_value=("no copy on the target yet", None)), \
            mock.patch.object(transfer, "target_copies", return_value={"bj": "f"}), \
            mock.patch.object(transfer, "target_columns", return_value=None), \
            mock.patch.object(transfer, "compare", return_value={}):
        transfer.sync(dict(entry), "sync", True)
    assert reads[-1] == []


def test_a_row_sync_that_fails_otherwise_copies_the_database_whole():
    transfer = transfer_with()
    error = bluemind_db_transfer.RowSyncError("listing public.t: the origin's listing is not sorted by key at ab")
    entry = dict(name="bj", settings=[], locale={}, extensions=[])
    with mock.patch(MODULE + "Snapshot", FakeSnapshot), \
            mock.patch.object(transfer, "facts", return_value=dict(ident="o", xmin=1, xmax=2, sequences=[])), \
            mock.patch.object(transfer, "row_sync_blocker", return_value=(None, dict(ident="t", xmin=1, xmax=2))), \
            mock.patch.object(transfer, "target_copies", return_value={"bj": "f"}), \
            mock.patch.object(transfer, "target_columns", return_value=None), \
            mock.patch.object(transfer, "sync_rows", side_effect=error), \
            mock.patch.object(transfer, "compare", return_value={}):
        transfer.sync(entry, "sync", True)
    assert entry["method"] == "full" and entry["reason"].startswith("row sync failed: listing public.t")
    transfer.copy.assert_called_once()


def test_an_incomplete_or_invalid_copy_is_copied_whole(servers):
    module = mock.Mock(params=dict(maintenance_db="postgres", db_user="bj"), run_command=servers and (
        lambda args, **kwargs: servers(args, kwargs)))
    target = bluemind_db_transfer.PgServer("target", "/b", "127.0.0.1", 5432, "bj")
    transfer = bluemind_db_transfer.Transfer(module, mock.Mock(), target)
    entry = dict(name="bj")
    assert transfer.row_sync_blocker(entry, "snap", {}) == ("no copy on the target yet", None)
    servers.existing = {"bj.incomplete": "t"}
    assert transfer.row_sync_blocker(entry, "snap", {}) == (
        "no copy on the target yet (the last whole copy did not finish)", None)
    servers.existing = {"bj": "t"}
    assert transfer.row_sync_blocker(entry, "snap", {}) == (
        "the target's copy is invalid (a DROP DATABASE of it was interrupted)", None)


def test_incomplete_name_fits_postgresql_names():
    assert bluemind_db_transfer.incomplete_name("bj-data") == "bj-data.incomplete"
    long_name = "d" * 60
    partial = bluemind_db_transfer.incomplete_name(long_name)
    assert len(partial) <= 63 and partial.endswith(".incomplete")
    assert partial != bluemind_db_transfer.incomplete_name("d" * 61)


def test_a_state_file_that_cannot_be_written_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "db-sync.json"
    with pytest.raises(TypeError):
        bluemind_db_transfer.save_state(str(path), {"bj": object()})
    assert list(tmp_path.iterdir()) == []


def second_pass(run_module, servers, events=None, between=None):
    """A first pass (whole copies, the signatures kept), ``between()``, then a row sync pass: its result and
    the tables it listed."""
    assert not run_module(bluemind_db_transfer, servers.args).get("failed")
    if between:
        between()
    servers.signature_reads[:] = []
    listed, by_changes_seen = [], []

    class Listing(FakeRowSync):
        def plan_tables(self, tables, since=None, by_changes=(), rows=None, by_buckets=(), buckets_from_rows=0, fine=()):
            listed.extend((self.database, table.name) for table in tables)
            by_changes_seen.extend((self.database, name) for name in by_changes)
            return FakeRowSync.plan_tables(self, tables, since, by_changes, rows, by_buckets)

    class Snap(FakeSnapshot):
        def __enter__(self):
            FakeSnapshot.__enter__(self)  # the mark, in the session, before the export
            if events is not None and self.database == "bj":
                events.append("snapshot exported")
            return self

    def record(side, database, check):
        if events is not None:
            events.append("%s %s" % ("check" if check else "mark", side))

    answer = servers.answer

    def answer_and_log(side, sql, database):
        if "pg_stat_get_tuples_inserted" in sql and database == "bj":
            record(side, database, sql.startswith("DO $bm$ DECLARE quiet timestamptz; BEGIN FOR"))
        return answer(side, sql, database)

    with mock.patch(MODULE + "RowSync", lambda *a, **k: Listing(servers.row_syncs, *a, **k)), \
            mock.patch(MODULE + "Snapshot", Snap), mock.patch.object(servers, "answer", answer_and_log):
        result = run_module(bluemind_db_transfer, dict(servers.args, mode="sync"))
    assert not result.get("failed"), result.get("msg")
    return result, sorted(listed)


def test_a_second_pass_lists_only_the_tables_whose_statistics_moved(run_module, servers):
    def write():  # on the origin, after the first pass's mark
        servers.signatures["origin"]["tables"]["public.t_b"] = [2, 2, 5, 1, 0]
        servers.column_reads[:] = []

    result, listed = second_pass(run_module, servers, between=write)
    assert listed == [("bj", "public.t_b"), ("bj-data", "public.t_b")]
    entry = result["databases"][1]
    assert (entry["compared_by"], entry["tables_skipped"], entry["tables_listed"]) == ("transaction ids", 1, 1)
    assert "skip_blocker" not in entry
    # where the pass's time went, each step measured on its own (the report and the bench read them)
    steps = [entry[key] for key in ("prepare_seconds", "check_seconds", "listing_seconds", "apply_seconds", "verify_seconds")]
    assert all(isinstance(step, float) and step >= 0 for step in steps)
    assert sum(steps) <= entry["seconds"] + 0.005  # each rounded to the millisecond
    # the target's tables read once a database, beside the facts (before the listing, not after them)
    assert sorted(servers.column_reads) == [("target", "bj"), ("target", "bj-data")]


def test_the_origin_is_marked_before_its_snapshot_and_checked_after(run_module, servers):
    events = []
    second_pass(run_module, servers, events)
    # the mark before the export (nothing the snapshot misses is counted in it); both checks after
    assert events[:2] == ["mark origin", "snapshot exported"]
    assert sorted(events[2:4]) == ["check origin", "check target"]
    assert events[4:] == ["check target"]  # the target's record, once this pass's writes are counted


def test_the_origin_is_read_without_counting_its_reads_but_for_the_signatures(run_module, servers):
    """A superuser's reads of the origin set track_counts off (their ends, all at once, overflowed the
    statistics socket of PostgreSQL 13); the signatures are read with the server's own settings, and the
    target, whose writes its record must count, gets no such setting."""
    second_pass(run_module, servers)
    origin = [(read, options) for side, read, options in servers.session_options if side == "origin"]
    # the version's read says whether the user may; every other one but the signatures' check sets it;
    # the mark is no session of its own (the snapshot's session reads it first)
    assert set(origin) == {("version", None), ("other", UNCOUNTED_READS), ("check", None)}
    assert set(options for side, _read, options in servers.session_options if side == "target") == {None}
    # a whole copy's dump too
    servers.pipelines[:] = []
    run_module(bluemind_db_transfer, servers.args)
    assert [producer_env.get("PGOPTIONS") for _dump, producer_env, _restore, _env in servers.pipelines] == [UNCOUNTED_READS] * 2
    assert all("PGOPTIONS" not in consumer_env for _dump, _env, _restore, consumer_env in servers.pipelines)


def test_the_origin_is_read_with_its_own_settings_by_a_user_that_may_not_change_them(run_module, servers):
    servers.superuser["origin"] = "off"  # SET track_counts would be refused: nothing is set
    second_pass(run_module, servers)
    assert set(options for _side, _read, options in servers.session_options) == {None}


def test_a_restarted_origin_makes_every_table_listed(run_module, servers):
    def restart():
        servers.signatures["origin"] = dict(servers.signatures["origin"], epoch=["restarted", None, "reset", "130016", "on"])

    result, listed = second_pass(run_module, servers, between=restart)
    assert listed == [("bj", "public.t_a"), ("bj", "public.t_b"), ("bj-data", "public.t_a"), ("bj-data", "public.t_b")]
    assert result["databases"][0]["skip_blocker"] == "on the origin, the server was restarted since the last pass"
    assert result["databases"][0]["tables_skipped"] == 0


@pytest.mark.parametrize("target_written", [False, True])
def test_a_serving_origin_skips_nothing_but_the_untouched_target_tables_are_counted_by_buckets(
        run_module, servers, target_written):
    """While the origin serves its statistics prove nothing, so every table is listed; the target's still
    prove its side, and the tables it left untouched since the last pass are listed by buckets (a whole
    listing of each key on both sides made a catch-up at scale l last 51 s). A table written on the target
    since is listed whole."""
    def write_target():
        if target_written:
            servers.signatures["target"] = dict(servers.signatures["target"], tables=dict(
                servers.signatures["target"]["tables"], **{"public.t_a": [5, 5, 11, 0, 0]}))

    servers.args["origin_serving"] = True
    result, listed = second_pass(run_module, servers, between=write_target)
    assert len(listed) == 4
    for entry in result["databases"]:
        assert entry["skip_blocker"] == "the origin still serves" and entry["tables_skipped"] == 0
        assert (entry["tables_by_changes"], entry["tables_by_fine_buckets"]) == (0, 0)
        assert entry["tables_by_buckets"] == (1 if target_written else 2)
    # the target's check read once a database (its proof), the origin's never (only its mark, in the snapshot)
    checks = sorted((side, database) for side, database, check in servers.signature_reads if check)
    assert checks == [("target", "bj"), ("target", "bj"), ("target", "bj-data"), ("target", "bj-data")]


def test_a_serving_origin_without_the_target_proof_lists_every_table_whole(run_module, servers):
    def garbage():
        servers.signatures["target"] = dict(servers.signatures["target"], quiet_at=None)

    servers.args["origin_serving"] = True
    result, listed = second_pass(run_module, servers, between=garbage)
    assert len(listed) == 4
    assert [entry["tables_by_buckets"] for entry in result["databases"]] == [0, 0]


def test_statistics_that_cannot_be_read_skip_nothing_and_fail_nothing(run_module, servers):
    def garbage():
        servers.signatures["target"] = dict(servers.signatures["target"], tables=None)

    result, listed = second_pass(run_module, servers, between=garbage)
    assert len(listed) == 4 and result["databases"][0]["skip_blocker"] == "the tables' statistics could not be read"
    # and a pass whose record could not be read keeps no statistics: the next one lists every table too
    state = json.loads(open(servers.args["state_file"]).read())
    assert "signatures" not in state["bj"] and state["bj"]["origin"] == ["origin-cluster/1/16384", 700]


def test_a_whole_copy_reports_its_progress_against_the_tables_data(run_module, servers, tmp_path):
    """The dump's bytes as they flow, against the origin's table data (heap and TOAST): written to the
    progress file while the pass runs and returned at the end, one entry a database, no file count."""
    path = tmp_path / "run" / "db-progress.json"
    result = run_module(bluemind_db_transfer, dict(servers.args, progress_path=str(path)))
    assert result.get("failed") is not True, result
    assert servers.progress_seen == [2048, 4096]
    progress = result["progress"]
    assert progress["job"] == "databases" and progress["finished"] is True
    assert [(d["path"], d["state"], d["bytes"], d["files"], d["size_bytes"], d["percent"])
            for d in progress["trees"]] == [("bj", "done", 4096, None, 8192, 100.0),
                                            ("bj-data", "done", 4096, None, 8192, 100.0)]
    assert json.loads(path.read_text()) == progress
    assert format_line(progress["trees"][0]).startswith("bj: done: 4.0 KiB moved, 100% of 8.0 KiB, ")


def test_a_failed_copy_is_failed_in_the_progress_and_no_progress_without_an_interval(
        run_module, servers, commands, tmp_path):
    path = tmp_path / "db-progress.json"
    with mock.patch(MODULE + "stream_pipeline", lambda *a, **k: (100, -15, 3, "", ENOSPC)):
        failed = run_module(bluemind_db_transfer, dict(servers.args, databases=["bj"], progress_path=str(path)))
    assert failed["failed"] is True and [d["state"] for d in failed["progress"]["trees"]] == ["failed"]
    assert any("pg_table_size" in json.dumps(call["args"]) for call in commands.calls)
    del commands.calls[:]
    quiet = run_module(bluemind_db_transfer, dict(servers.args, progress_interval=0, progress_path=str(tmp_path / "q")))
    assert "progress" not in quiet and not (tmp_path / "q").exists()
    assert commands.calls and all("pg_table_size" not in json.dumps(call["args"]) for call in commands.calls)


def test_rows_moved_by_a_plan_count_only_the_rows_that_were_there_as_deleted():
    rows_moved = bluemind_db_transfer.rows_moved
    # by its changes: 3 keys written since, 2 of them new (the origin has 2 more rows than the target)
    assert rows_moved(dict(replace=False, fetch=[1, 2, 3], delete=[1, 2, 3], expect=12, counts=dict(origin=12, target=10))) == (3, 1)
    assert rows_moved(dict(replace=False, fetch=["a"], delete=["a", "b"], counts=dict(origin=5, target=6))) == (1, 2)
    assert rows_moved(dict(replace=True, fetch=None, delete=None, counts=dict(origin=5, target=6))) == (5, 6)


def schema_dumps(commands):
    return [call["args"] for call in commands.calls if call["args"][0].endswith("/pg_dump") and "--schema-only" in call["args"]]


def test_catalogs_as_the_last_pass_left_them_on_both_sides_spare_the_schema_dumps(run_module, servers, commands):
    servers.catalogs = {"origin": "o-1", "target": "t-1"}
    first, _listed = second_pass(run_module, servers)  # a whole copy, then a pass that dumps both schemas
    assert [entry["schemas_compared_by"] for entry in first["databases"]] == ["dumps", "dumps"]
    kept = json.loads(open(servers.args["state_file"]).read())["bj"]["catalogs"]
    assert kept == {"origin": "o-1", "target": "t-1", "versions": [130016, 150008, "pg_dump (PostgreSQL) 15.8"]}
    dumped = len(schema_dumps(commands))

    def again():
        return run_module(bluemind_db_transfer, dict(servers.args, mode="sync"))
    result = again()
    assert not result.get("failed") and [e["schemas_compared_by"] for e in result["databases"]] == ["catalogs"] * 2
    assert len(schema_dumps(commands)) == dumped  # no schema dumped
    # any DDL on either side since (its digest changed), or another pg_dump: both schemas dumped again
    for change in (lambda: servers.catalogs.update(target="t-2"), lambda: servers.catalogs.update(origin="o-2"),
                   lambda: commands.rules.insert(0, (lambda a: a[1:] == ["--version"], (0, "pg_dump (PostgreSQL) 16.4\n", "")))):
        change()
        result = again()
        assert not result.get("failed") and [e["schemas_compared_by"] for e in result["databases"]] == ["dumps"] * 2
        assert len(schema_dumps(commands)) == dumped + 4
        dumped += 4
        # which the next pass finds as this one left them
        result = again()
        assert [e["schemas_compared_by"] for e in result["databases"]] == ["catalogs"] * 2


def test_catalogs_that_cannot_be_read_prove_nothing(run_module, servers, commands):
    second_pass(run_module, servers)
    assert "catalogs" not in json.loads(open(servers.args["state_file"]).read())["bj"]
    result = run_module(bluemind_db_transfer, dict(servers.args, mode="sync"))
    assert [e["schemas_compared_by"] for e in result["databases"]] == ["dumps"] * 2


def test_a_schema_that_differs_is_found_whatever_the_catalogs_say(run_module, servers, commands):
    servers.catalogs = {"origin": "o-1", "target": "t-1"}
    second_pass(run_module, servers)
    servers.catalogs["origin"] = "o-2"  # a column added on the origin
    commands.rules.insert(0, (lambda a: a[0].endswith("/pg_dump") and "--schema-only" in a and str(TUNNEL_PORT) in a,
                              (0, "CREATE TABLE public.t_a (id integer PRIMARY KEY, a text, b text);\n", "")))
    result = run_module(bluemind_db_transfer, dict(servers.args, mode="sync"))
    assert not result.get("failed")
    assert all(entry["method"] == "full" and entry["reason"].startswith("the schemas differ") for entry in result["databases"])
    # the whole copy's catalogs are not the ones compared: none kept
    assert all("catalogs" not in entry for entry in json.loads(open(servers.args["state_file"]).read()).values())


def test_a_pass_started_ahead_of_the_stop_reads_no_row_before_its_gate_opens(run_module, servers, tmp_path):
    """A gate never opened with this run's token (an earlier run's is there): the pass fails after its
    timeout, having read no row of the origin (only what its service does not change: each database's
    locale, extensions and settings; the target's side was read, its BlueMind stopped) and taken no lock."""
    (tmp_path / "db.gate").write_text("earlier-run")
    result = run_module(bluemind_db_transfer, dict(servers.args, gate_path=str(tmp_path / "db.gate"),
                                                   gate_token="this-run", gate_timeout=0))
    assert result["failed"] is True
    assert result["msg"].startswith("the origin's stop did not happen within 0 s")
    assert servers.scripts == [] and servers.pipelines == [] and servers.snapshot_queries == []
    assert not [read for read in servers.fact_reads + servers.signature_reads if read[0] == "origin"]
    assert [entry["name"] for entry in result["databases"]] == ["bj", "bj-data"]
    assert all(set(entry) == {"name", "origin_size", "settings", "locale", "extensions"} for entry in result["databases"])
    assert not (tmp_path / "state" / "db-sync.json").exists()
    assert not (tmp_path / "locks" / "bluemind-migration-db.lock").exists()


def test_a_pass_whose_gate_opens_runs_and_counts_its_time_from_there(run_module, servers, tmp_path):
    """The gate opened by the play a moment after the pass started: the pass waits, then runs; its start
    (for the report's timeline) and its seconds are those after the gate."""
    gate_file = tmp_path / "db.gate"
    opened = []

    def open_gate():  # when the gate opens, on this clock (the module's start-up time plays no part)
        opened.append(migration_state.stamp())
        gate_file.write_text("this-run\n")

    opener = threading.Timer(0.3, open_gate)
    opener.start()
    try:
        result = run_module(bluemind_db_transfer, dict(servers.args, gate_path=str(gate_file), gate_token="this-run",
                                                       gate_timeout=30))
    finally:
        opener.cancel()
    assert not result.get("failed"), result.get("msg")
    assert 0 < result["waited_for_gate"] < 30 and opened
    assert [entry["name"] for entry in result["databases"]] == ["bj", "bj-data"]
    assert (tmp_path / "locks" / "bluemind-migration-db.lock").exists()  # taken once the gate is passed
    # counted from the gate
    assert migration_state.parse_stamp(result["started_at"]) >= migration_state.parse_stamp(opened[0])


@pytest.mark.parametrize("target_moved", [None, "analyzed", "written"])
def test_the_target_side_read_before_the_gate_is_taken_unless_the_target_was_written_since(
        run_module, servers, tmp_path, target_moved):
    """The target's facts and columns are read while the pass waits at its gate (out of the window); once
    the gate opens they are taken as read when the target's transaction ids did not move, else read again.
    The first listings read then are kept for every table whose signature on the target did not move
    between a reading before them and the window's check (an ANALYZE by autovacuum moves the ids, not a
    table's signature); a table written meanwhile is listed again."""
    assert not run_module(bluemind_db_transfer, servers.args).get("failed")  # the copies the row syncs start from
    servers.fact_reads, servers.column_reads = [], []
    gate_file, job = tmp_path / "db.gate", tmp_path / "jobs" / "db-pass.json"
    before_gate, ready = [], []  # the job says it is ready once its listings read ahead ended (the play waits)

    def open_gate():
        before_gate.extend(servers.fact_reads)
        ready.append(os.path.exists(str(job) + ".ready"))
        if target_moved:
            servers.target_xmax = 709  # something wrote to the target meanwhile
        if target_moved == "written":  # to a table: t_a has a row more
            servers.signatures["target"] = dict(servers.signatures["target"], tables=dict(
                servers.signatures["target"]["tables"], **{"public.t_a": [5, 5, 11, 0, 0]}))
        gate_file.write_text("this-run\n")

    opener = threading.Timer(0.3, open_gate)
    opener.start()
    made = []  # what each row sync was given of the target's listings read before the gate

    def row_sync(*args, **kwargs):
        made.append((args[2], args[3], kwargs.get("ahead")))
        return FakeRowSync(servers.row_syncs, *args, **kwargs)

    try:
        with mock.patch(MODULE + "RowSync", row_sync):
            result = run_module(bluemind_db_transfer, dict(servers.args, mode="sync", gate_path=str(gate_file),
                                                           gate_token="this-run", gate_timeout=30, job_file=str(job)))
    finally:
        opener.cancel()
    assert not result.get("failed"), result.get("msg")
    assert ready == [True]
    # the target's first listings too (their reader made without a snapshot): taken when it did not move
    window = dict((name, ahead) for name, snapshot, ahead in made if snapshot is not None)
    assert sorted(name for name, snapshot, _ahead in made if snapshot is None) == ["bj", "bj-data"]
    for name in ("bj", "bj-data"):
        assert window[name] and all(lines == [b"read ahead\n"] and "COPY" in sql for sql, lines in window[name].items())
        # t_a's listings are those of the statements naming it, kept unless t_a was written
        assert any("public.t_b" in sql for sql in window[name])
        assert any("public.t_a" in sql for sql in window[name]) is (target_moved != "written")
    entries = dict((entry["name"], entry) for entry in result["databases"])
    if target_moved:
        assert all(entries[name]["listings_kept_by_signature"] == len(window[name]) for name in entries)
    else:
        assert not any("listings_kept_by_signature" in entry for entry in entries.values())
    assert sorted(before_gate) == [("target", "bj"), ("target", "bj-data")]
    assert [entry["target_read_ahead"] for entry in result["databases"]] == [not target_moved] * 2
    reads = 2 if target_moved else 1
    assert sorted(servers.column_reads) == [("target", "bj")] * reads + [("target", "bj-data")] * reads
    # the facts read before the apply (again when written) and the check after it
    for name in ("bj", "bj-data"):
        assert servers.fact_reads.count(("target", name)) == reads + 1
    assert all(entry["method"] == "rows" for entry in result["databases"])


@pytest.mark.parametrize("fails", [False, True])
def test_a_catch_up_runs_before_the_gate_records_its_ids_and_gives_the_lock_back(run_module, servers, tmp_path, fails):
    """With catch_up the job first runs a pass as the hot phase's (origin_serving), records its ids, gives the
    lock back and says it is ready at its gate; the window's pass then runs from that record. A catch-up
    that fails is a warning and its error, and the window's pass runs all the same."""
    assert not run_module(bluemind_db_transfer, servers.args).get("failed")  # the copies the row syncs start from
    state_path = tmp_path / "state" / "db-sync.json"
    state_before = state_path.read_text()
    written_before = (state_path.stat().st_ino, state_path.stat().st_mtime_ns)
    gate_file, job = tmp_path / "db.gate", tmp_path / "jobs" / "db-pass.json"
    lock_path = tmp_path / "locks-2" / "bluemind-migration-db.lock"  # the catch-up's (conftest's private_locks)
    at_gate = {}
    passes = []  # (origin_serving, database) of each pass, in order
    sync = bluemind_db_transfer.Transfer.sync

    def each_pass(transfer, entry, mode, apply_changes):
        passes.append((transfer.origin_serving, entry["name"]))
        if fails and transfer.origin_serving:
            raise bluemind_db_transfer.PgError("the origin went away")
        return sync(transfer, entry, mode, apply_changes)

    def open_gate_once_ready():
        for _attempt in range(300):
            if os.path.exists(str(job) + ".ready"):
                break
            threading.Event().wait(0.02)
        at_gate["passes"] = list(passes)
        at_gate["state"] = state_path.read_text()
        at_gate["written"] = (state_path.stat().st_ino, state_path.stat().st_mtime_ns)
        handle = os.open(str(lock_path), os.O_RDWR)
        try:  # free: the catch-up gave it back
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(handle, fcntl.LOCK_UN)
            at_gate["lock_free"] = True
        except BlockingIOError:
            at_gate["lock_free"] = False
        finally:
            os.close(handle)
        gate_file.write_text("this-run\n")

    opener = threading.Thread(target=open_gate_once_ready, daemon=True)
    opener.start()
    with mock.patch.object(bluemind_db_transfer.Transfer, "sync", each_pass):
        result = run_module(bluemind_db_transfer, dict(servers.args, mode="sync", gate_path=str(gate_file),
                                                       gate_token="this-run", gate_timeout=30, job_file=str(job),
                                                       catch_up=True))
    opener.join()
    assert not result.get("failed"), result.get("msg")
    assert sorted(at_gate["passes"]) == [(True, "bj"), (True, "bj-data")] and at_gate["lock_free"] is True
    assert sorted(passes[2:]) == [(False, "bj"), (False, "bj-data")]  # the window's, after the gate
    early = result["catch_up"]
    assert [entry["name"] for entry in early["databases"]] == ["bj", "bj-data"] and early["seconds"] >= 0
    if fails:
        assert "the origin went away" in early["error"] and at_gate["state"] == state_before
        assert any("(catch_up) failed: the origin went away" in json.dumps(warning) for warning in result["warnings"])
    else:
        assert "error" not in early and all(entry["method"] == "rows" for entry in early["databases"])
        assert at_gate["written"] != written_before  # recorded before the gate (the fake's ids do not move)
    assert all(entry["method"] == "rows" for entry in result["databases"])


def test_a_gate_without_a_token_is_refused_before_anything(run_module, servers, tmp_path):
    result = run_module(bluemind_db_transfer, dict(servers.args, gate_path=str(tmp_path / "db.gate")))
    assert result["failed"] is True and result["msg"].startswith("gate_path needs gate_token")
    assert servers.scripts == [] and servers.pipelines == []


class CatchUpClock(object):
    """The clock of :func:`catch_up_passes`: each pass lasts ``pass_seconds`` and runs ``during(number)``."""

    def __init__(self, pass_seconds, during=lambda number: None):
        self.now, self.pass_seconds, self.during = 0.0, pass_seconds, during
        self.starts = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now = round(self.now + seconds, 6)

    def catch_up(self, transfer, databases, params):
        assert transfer.origin_serving is True
        self.starts.append(self.now)
        self.during(len(self.starts))
        self.now += self.pass_seconds
        outcome = dict(databases=[dict(entry) for entry in databases], seconds=self.pass_seconds, number=len(self.starts))
        if transfer.fail_at == len(self.starts):
            outcome["error"] = "the origin went away"
        return outcome


class PassTransfer(object):
    def __init__(self, fail_at=None):
        self.origin_serving, self.fail_at = False, fail_at

    def for_next_pass(self):
        return PassTransfer(self.fail_at)


@pytest.mark.parametrize("case", ["until-file", "no-until", "file-there-first", "failed-pass", "gate-open", "timeout"])
def test_catch_up_passes_follow_each_other_until_one_began_after_the_pulls_work_ended(tmp_path, case):
    """With catch_up_until (the final pull's ready file), catch-up passes follow each other, two seconds
    apart at least, and the one that begins once the file exists is the last; without it, one pass. A
    failed pass, the gate already open, or the timeout (the file never comes) ends them."""
    until, gate_file = tmp_path / "pull.json.ready", tmp_path / "db.gate"
    if case == "file-there-first":
        until.write_text("{}")

    def during(number):
        if number == 3 and case not in ("no-until", "timeout"):
            until.write_text("{}")  # the pull's work before the stop ended during the third pass
        if number == 2 and case == "gate-open":
            gate_file.write_text("this-run\n")

    clock = CatchUpClock(0.5, during)
    params = dict(catch_up_until=None if case == "no-until" else str(until), gate_path=str(gate_file),
                  gate_token="this-run", catch_up_until_timeout=7.0)
    with mock.patch.object(bluemind_db_transfer, "catch_up", clock.catch_up):
        outcome, following = bluemind_db_transfer.catch_up_passes(
            PassTransfer(fail_at=2 if case == "failed-pass" else None), [dict(name="bj")], params,
            sleep=clock.sleep, clock=clock)
    # the timeout: the passes at 0, 2, 4 and 6 s; the one at 8 s, 7 s after the first began, is the last
    expected = {"until-file": 4, "no-until": 1, "file-there-first": 1, "failed-pass": 2, "gate-open": 2, "timeout": 5}[case]
    assert outcome["passes"] == expected == len(clock.starts) and outcome["number"] == expected
    assert outcome["first_seconds"] == 0.5 and following.origin_serving is False
    # two seconds apart at least while the file is missing; at once once it is there
    gaps = [round(b - a, 1) for a, b in zip(clock.starts, clock.starts[1:])]
    assert gaps == {"until-file": [2.0, 2.0, 0.5]}.get(case, [2.0] * (expected - 1))
    assert ("error" in outcome) is (case == "failed-pass")
