"""The database pass skips the tables that changed on neither side (issue 13, "the window must not scan
every row of every table"), on the lab (PostgreSQL 13 -> 15): a pass after a few changes lists exactly
the changed tables and moves exactly their changes; a restart of the origin's PostgreSQL, or a session
still connected to the database, makes the next pass list every table.

The tables live in a database of this test (bmitest-skip, made as BlueMind makes its databases),
removed from both hosts at the end, so the lab's bj and bj-data are left alone.
"""

import contextlib
import json
import subprocess
import time

import pytest

DATABASE = "bmitest-skip"
STATE = "/tmp/bmitest-skip-sync.json"
PGPASS = "/tmp/bmitest-skip.pgpass"  # the lab's password "bj" as an option would be masked in every word
TABLES = 12  # t_00 .. t_11, 50 rows each, with a key
ROWS = 50
# t_nokey: a table without a key (listed by content); t_part: a partitioned table (two partitions)
SETUP = "".join(
    "CREATE TABLE t_%02d (id int PRIMARY KEY, body text); INSERT INTO t_%02d SELECT g, md5(g::text) "
    "FROM generate_series(1, %d) g; ALTER TABLE t_%02d OWNER TO bj;\n" % (i, i, ROWS, i) for i in range(TABLES)) + (
    "CREATE TABLE t_nokey (a int, b text); INSERT INTO t_nokey SELECT g % 7, 'x' FROM generate_series(1, 30) g;\n"
    "CREATE TABLE t_part (id int, day date, PRIMARY KEY (id, day)) PARTITION BY RANGE (day);\n"
    "CREATE TABLE t_part_1 PARTITION OF t_part FOR VALUES FROM ('2026-01-01') TO ('2026-07-01');\n"
    "CREATE TABLE t_part_2 PARTITION OF t_part FOR VALUES FROM ('2026-07-01') TO ('2027-01-01');\n"
    "INSERT INTO t_part SELECT g, date '2026-01-01' + g FROM generate_series(1, 300) g;\n"
    "CREATE TABLE t_empty (id int PRIMARY KEY);\n")
NON_EMPTY = TABLES + 3  # t_00..t_11, t_nokey, t_part_1, t_part_2 (t_empty is empty on both sides: never listed)


def psql(host, sql, db=DATABASE):
    return host.run("su postgres -c 'psql -X -At -v ON_ERROR_STOP=1 -d %s'" % db, input=sql).stdout.strip()


def non_empty(host):
    """The tables a pass lists or skips (those empty on both sides are neither, a partitioned parent moves
    through its partitions): the non-empty ordinary tables."""
    tables = psql(host, "SELECT relname FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace").split()
    return sum(1 for table in tables if psql(host, "SELECT count(*) FROM %s" % table) != "0")


def row_hashes(host):
    tables = psql(host, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1").split()
    return dict((table, psql(host, "SELECT count(*), md5(string_agg(h, '' ORDER BY h)) FROM "
                                   "(SELECT md5(t::text) AS h FROM %s t) s" % table)) for table in tables)


@pytest.fixture(scope="module")
def database(lab):
    drop = 'DROP DATABASE IF EXISTS "%s";\n' % DATABASE
    psql(lab.origin, drop + (
        "CREATE DATABASE \"%s\" OWNER bj ENCODING 'UTF8' TEMPLATE template0 LC_COLLATE 'en_US.UTF-8' "
        "LC_CTYPE 'en_US.UTF-8';\n" % DATABASE), db="postgres")
    psql(lab.origin, SETUP)
    lab.target.run("rm -f {s} && install -m 600 /dev/null {p} && echo '127.0.0.1:*:*:bj:bj' > {p}".format(s=STATE, p=PGPASS))
    yield
    for host in (lab.origin, lab.target):
        psql(host, drop, db="postgres")
    lab.target.run("rm -f %s %s" % (STATE, PGPASS))


def transfer(run_task, ssh_trust, **extra):
    # every table counted by buckets where it may be: this database's tables are small
    args = dict(ssh_trust, databases=[DATABASE], pgpass_file=PGPASS, pg_bin_dir="/usr/lib/postgresql/15/bin",
                state_file=STATE, buckets_from_rows=1)
    args.update(extra)
    result = run_task("target", "bluemind_db_transfer", args)
    assert not result.get("failed"), result.get("msg")
    return result["databases"][0]


def kept(lab):
    return json.loads(lab.target.run("cat %s" % STATE).stdout)[DATABASE].get("signatures")


def test_a_pass_lists_only_the_tables_that_changed_on_either_side(lab, run_task, ssh_trust, database):
    whole = transfer(run_task, ssh_trust)
    assert whole["method"] == "full"
    signatures = kept(lab)
    assert signatures and signatures["origin"]["proof"] is None and signatures["target"]["proof"] is None
    # PostgreSQL 13 on the origin: its statistics socket was read (lost datagrams are known)
    assert signatures["origin"]["drops"] is not None and signatures["target"]["drops"] is None

    # nothing written since: nothing listed at all (the whole copy's record is good)
    quiet = transfer(run_task, ssh_trust)
    assert (quiet["method"], quiet["compared_by"]) == ("rows", "transaction ids")
    assert (quiet["tables_listed"], quiet["tables_skipped"], quiet.get("skip_blocker")) == (0, NON_EMPTY, None)
    assert quiet["rows_copied"] == quiet["rows_deleted"] == 0

    # an insert, an update, a delete, a TRUNCATE (no counter moves: a new relfilenode), a row in one
    # partition, a change of a table without a key, and a row changed on the target behind our back
    psql(lab.origin, "INSERT INTO t_01 VALUES (1000, 'new');\n"
                     "UPDATE t_02 SET body = 'changed' WHERE id = 7;\n"
                     "DELETE FROM t_03 WHERE id IN (1, 2);\n"
                     "TRUNCATE t_04;\n"
                     "INSERT INTO t_part VALUES (1000, '2026-12-24');\n"
                     "UPDATE t_nokey SET b = 'y' WHERE a = 3;\n")
    psql(lab.target, "UPDATE t_05 SET body = 'target only' WHERE id = 9;\n")
    moved = transfer(run_task, ssh_trust)
    assert moved.get("skip_blocker") is None, moved["skip_blocker"]
    # t_01, t_02, t_03, t_04, t_05, t_part_2, t_nokey: listed; the other eight skipped
    assert (moved["tables_listed"], moved["tables_skipped"]) == (7, NON_EMPTY - 7)
    # rows: 1 new + 1 changed + 1 new partition row + t_05's row (copied back) + t_nokey's rows with a=3
    # (4 rows of one content, counted once); t_04: replaced whole (50 gone); 2 deleted in t_03
    assert moved["tables_changed"] == 7
    # t_01, t_02, t_part_2 deleted nothing on the origin: only their rows written since were listed
    # (t_03 deleted, t_04 was truncated, t_05 changed on the target, t_nokey has no key)
    assert (moved["tables_by_changes"], moved.get("tables_recounted")) == (3, None)
    # t_03 lost rows on the origin, the target left it as it was: counted by buckets, and the bucket
    # that lost rows listed key by key (t_04, emptied on the origin, has no bucket there: listed whole);
    # t_nokey too, by its contents' hashes: the buckets of the contents its update left, by content
    assert moved["tables_by_buckets"] == 2
    assert row_hashes(lab.target) == row_hashes(lab.origin)

    # and the pass after that skips everything again
    again = transfer(run_task, ssh_trust)
    assert (again["tables_listed"], again["tables_skipped"], again["rows_copied"]) == (0, NON_EMPTY - 1, 0)  # t_04 empty


def test_a_key_changed_by_an_update_is_found_by_the_count_and_the_table_listed_whole(lab, run_task, ssh_trust, database):
    """An UPDATE that changes a primary key removes the old key without a deletion counted: the table is
    planned from its changed rows, the target's transaction finds one row too many and is rolled back,
    and the table is listed whole: the target ends equal to the origin."""
    transfer(run_task, ssh_trust)
    psql(lab.origin, "UPDATE t_06 SET id = 5000 WHERE id = 1;\nINSERT INTO t_07 VALUES (2000, 'new');\n")
    moved = transfer(run_task, ssh_trust)
    assert (moved["tables_listed"], moved["tables_by_changes"], moved["tables_recounted"]) == (2, 2, 1)
    assert (moved["rows_copied"], moved["rows_deleted"]) == (2, 1)  # t_06: 5000 in, 1 out; t_07: 2000 in
    assert row_hashes(lab.target) == row_hashes(lab.origin)


def test_a_new_table_copies_the_database_whole_and_the_next_pass_skips_again(lab, run_task, ssh_trust, database):
    transfer(run_task, ssh_trust)
    psql(lab.origin, "CREATE TABLE t_new (id int PRIMARY KEY); INSERT INTO t_new VALUES (1); ALTER TABLE t_new OWNER TO bj;\n")
    whole = transfer(run_task, ssh_trust)
    assert whole["method"] == "full" and whole["reason"].startswith("the schemas differ")
    after = transfer(run_task, ssh_trust)
    assert (after["tables_listed"], after["tables_skipped"]) == (0, non_empty(lab.origin))
    assert row_hashes(lab.target) == row_hashes(lab.origin)


@contextlib.contextmanager
def someone_connected(lab):
    """A session of someone else on the origin's database for the block (BlueMind not quite stopped, or serving)."""
    sleeper = subprocess.Popen(["docker", "exec", lab.origin.name, "su", "postgres", "-c",
                                "psql -X -d %s -c 'SELECT pg_sleep(20)'" % DATABASE],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        lab.origin.run("for i in $(seq 50); do su postgres -c \"psql -X -At -d postgres -c \\\"SELECT count(*) FROM "
                       "pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(20)'\\\"\" | grep -qx 1 && exit 0; "
                       "sleep 0.1; done; exit 1")
        yield
    finally:
        sleeper.kill()
        sleeper.wait()
        lab.origin.run("su postgres -c \"psql -X -At -d postgres -c \\\"SELECT pg_terminate_backend(pid) FROM "
                       "pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(20)'\\\"\"", check=False)


def test_a_session_still_connected_makes_the_pass_list_every_table(lab, run_task, ssh_trust, database):
    transfer(run_task, ssh_trust)
    with someone_connected(lab):
        busy = transfer(run_task, ssh_trust)
    assert busy["tables_skipped"] == 0 and busy["tables_listed"] == non_empty(lab.origin)
    assert busy["skip_blocker"] == ("the origin's statistics prove nothing now (other sessions were connected "
                                    "to the database)")


def test_a_restart_of_the_origins_postgresql_makes_the_next_pass_list_every_table(lab, run_task, ssh_trust, database):
    transfer(run_task, ssh_trust)
    lab.origin.run("systemctl restart postgresql && for i in $(seq 60); do pg_isready -q -h 127.0.0.1 && exit 0; "
                   "sleep 0.5; done; exit 1")
    # after the restart: a row deleted, a key changed by an update, a row inserted (no statistic says which)
    psql(lab.origin, "DELETE FROM t_08 WHERE id = 3;\nUPDATE t_09 SET id = 7000 WHERE id = 4;\n"
                     "INSERT INTO t_10 VALUES (3000, 'new');\n")
    # at the default threshold: these small tables are one bucket each, counted by the facts read anyway
    restarted = transfer(run_task, ssh_trust, buckets_from_rows=8192)
    assert restarted["method"] == "rows"
    assert (restarted["tables_listed"], restarted["tables_skipped"]) == (non_empty(lab.origin), 0)
    assert restarted["skip_blocker"] == "on the origin, the server was restarted since the last pass"
    # the target's statistics still prove its tables untouched: every table is counted by buckets
    # (t_nokey by its contents' hashes), and only the rows that moved move
    assert (restarted["tables_by_buckets"], restarted["tables_by_changes"]) == (non_empty(lab.origin), 0)
    assert (restarted["rows_copied"], restarted["rows_deleted"], restarted.get("tables_recounted")) == (2, 2, None)
    assert row_hashes(lab.target) == row_hashes(lab.origin)
    # the restart's pass kept new signatures: the next pass skips again
    after = transfer(run_task, ssh_trust)
    assert (after["tables_listed"], after["tables_skipped"]) == (0, non_empty(lab.origin))


def test_a_crash_of_the_origins_postgresql_makes_the_next_pass_list_every_table(lab, run_task, ssh_trust, database):
    transfer(run_task, ssh_trust)
    # a backend killed: the postmaster (not restarted itself) restarts every process and throws the
    # statistics away, so the counters start again from zero and could come back to the kept values
    sleeper = subprocess.Popen(["docker", "exec", lab.origin.name, "su", "postgres", "-c",
                                "psql -X -d postgres -c 'SELECT pg_sleep(30)'"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        lab.origin.run("for i in $(seq 50); do pid=$(su postgres -c \"psql -X -At -d postgres -c \\\"SELECT pid FROM "
                       "pg_stat_activity WHERE query = 'SELECT pg_sleep(30)'\\\"\"); [ -n \"$pid\" ] && kill -9 $pid "
                       "&& exit 0; sleep 0.1; done; exit 1")
    finally:
        sleeper.wait()
    lab.origin.run("sleep 1; for i in $(seq 60); do su postgres -c \"psql -X -At -d postgres -c 'SELECT 1'\" "
                   ">/dev/null 2>&1 && exit 0; sleep 0.5; done; exit 1")
    crashed = transfer(run_task, ssh_trust)
    assert (crashed["tables_listed"], crashed["tables_skipped"]) == (non_empty(lab.origin), 0)
    assert crashed["skip_blocker"].startswith("on the origin, the "), crashed["skip_blocker"]
    assert "restarted" not in crashed["skip_blocker"]  # the postmaster kept running: the reset shows it
    assert row_hashes(lab.target) == row_hashes(lab.origin)


def test_the_schemas_are_dumped_again_only_after_ddl_on_either_side(lab, run_task, ssh_trust, database):
    """The catalogs' digest (CATALOGS_SQL) on PostgreSQL 13 and 15: VACUUM, ANALYZE and rows written leave it
    as it was, so a pass whose catalogs are as the last pass left them dumps no schema; any DDL, on either
    side, changes it, and the schemas are dumped and compared again."""
    transfer(run_task, ssh_trust)
    transfer(run_task, ssh_trust)  # a row sync that compared the dumps: both sides' digests kept
    for host in (lab.origin, lab.target):
        psql(host, "VACUUM ANALYZE;\n")
    psql(lab.origin, "INSERT INTO t_08 VALUES (3000, 'rows only');\n")
    quiet = transfer(run_task, ssh_trust)
    assert (quiet["method"], quiet["schemas_compared_by"], quiet["rows_copied"]) == ("rows", "catalogs", 1)

    # DDL on the target only: found, and the origin's schema copied back whole
    psql(lab.target, "ALTER TABLE t_08 ADD COLUMN extra text;\n")
    found = transfer(run_task, ssh_trust)
    assert (found["schemas_compared_by"], found["method"]) == ("dumps", "full")
    assert found["reason"].startswith("the schemas differ")
    transfer(run_task, ssh_trust)  # compares the dumps again and keeps the new copy's digests

    # a GRANT on the origin (an ACL the dump prints): dumped again
    psql(lab.origin, "GRANT SELECT ON t_09 TO PUBLIC;\n")
    granted = transfer(run_task, ssh_trust)
    assert granted["schemas_compared_by"] == "dumps" and granted["method"] == "full"
    assert row_hashes(lab.target) == row_hashes(lab.origin)


# Tables whose key is a unique index or nothing (pgsync.IDENTITY_INDEX): BlueMind 4.x's change-set partitions
# as the pg_repack maintenance leaves them (a unique index on each, NOT NULL columns), and the unique indexes
# that cannot stand for a primary key.
IDENTITY_SETUP = "".join(sql + "\n" for sql in (
    "CREATE TABLE k_changeset (version int NOT NULL, container_id int NOT NULL, item_uid text NOT NULL, "
    "item_id bigint NOT NULL, type smallint NOT NULL) PARTITION BY HASH (container_id);",
    "CREATE TABLE k_changeset_0 PARTITION OF k_changeset FOR VALUES WITH (MODULUS 2, REMAINDER 0);",
    "CREATE TABLE k_changeset_1 PARTITION OF k_changeset FOR VALUES WITH (MODULUS 2, REMAINDER 1);",
    "CREATE UNIQUE INDEX k_changeset_0_unique_idx ON k_changeset_0 (item_id, version, container_id);",
    "CREATE UNIQUE INDEX k_changeset_1_unique_idx ON k_changeset_1 (item_id, version, container_id);",
    "INSERT INTO k_changeset SELECT 1, g % 10, 'item' || g, g, 0 FROM generate_series(1, 60) g;",
    "CREATE TABLE k_one (id int NOT NULL, v text, other int); CREATE UNIQUE INDEX ON k_one (id) INCLUDE (other);",
    "CREATE TABLE k_fewest (a int NOT NULL, b text NOT NULL, c int NOT NULL, UNIQUE (a, b, c), UNIQUE (b, c));",
    "CREATE TABLE k_nullable (a int UNIQUE, v text);",
    "CREATE TABLE k_partial (a int NOT NULL, v text); CREATE UNIQUE INDEX ON k_partial (a) WHERE a > 0;",
    "CREATE TABLE k_expression (a text NOT NULL); CREATE UNIQUE INDEX ON k_expression (lower(a));",
    "CREATE TABLE k_deferred (a int NOT NULL, UNIQUE (a) DEFERRABLE);",
    "INSERT INTO k_one SELECT g, 'v', g FROM generate_series(1, 30) g;",
    "INSERT INTO k_fewest SELECT g, 'b' || g, g FROM generate_series(1, 30) g;",
    "INSERT INTO k_nullable SELECT g, 'v' FROM generate_series(1, 30) g;",
    "INSERT INTO k_partial SELECT g, 'v' FROM generate_series(1, 30) g;",
    "INSERT INTO k_expression SELECT 'a' || g FROM generate_series(1, 30) g;",
    "INSERT INTO k_deferred SELECT g FROM generate_series(1, 30) g;",
    "DO $$ DECLARE t text; BEGIN FOR t IN SELECT relname FROM pg_class WHERE relname LIKE 'k\\_%' AND relkind IN ('r', 'p') "
    "LOOP EXECUTE format('ALTER TABLE %I OWNER TO bj', t); END LOOP; END $$;"))


def test_a_unique_index_on_not_null_columns_is_a_tables_key(lab, run_task, ssh_trust, collections_path, database):
    """A table without a primary key is keyed by a unique index that PostgreSQL would take as a replica
    identity (the fewest columns first), so BlueMind's indexed change-set partitions are listed by their
    changed rows; a nullable, partial, expression or deferrable unique index is no key (listed by content)."""
    import sys
    sys.path.insert(0, collections_path)
    from ansible_collections.bluemind.migration.plugins.module_utils.pgsync import TABLE_COLUMNS_SQL

    psql(lab.origin, IDENTITY_SETUP)
    transfer(run_task, ssh_trust)  # a new schema: copied whole
    keys = dict((name, (key, int_key, mix, hash64)) for name, _columns, key, int_key, mix, hash64 in (
        line.split("|") for line in psql(lab.target, TABLE_COLUMNS_SQL + ";\n").splitlines()) if name.startswith("public.k_"))
    # a key of integers only: its columns mixed in one bigint (the buckets' cheap hash); of text and integers:
    # their types' hash functions
    mix = "(item_id::bigint << 0) # (version::bigint << 21) # (container_id::bigint << 42)"
    av = "COALESCE(hashint4extended(a, 0), 0) # COALESCE(hashtextextended(v, 1), 0)"
    assert keys == {"public.k_changeset_0": ("item_id,version,container_id", "f", mix, ""),
                    "public.k_changeset_1": ("item_id,version,container_id", "f", mix, ""),
                    "public.k_one": ("id", "t", "(id::bigint << 0)", ""),
                    "public.k_fewest": ("b,c", "f", "", "hashtextextended(b, 0) # hashint4extended(c, 1)"),
                    # no key: their buckets by the hashes of their columns of such types (a NULL as 0)
                    "public.k_nullable": ("", "f", "", av), "public.k_partial": ("", "f", "", av),
                    "public.k_expression": ("", "f", "", "COALESCE(hashtextextended(a, 0), 0)"),
                    "public.k_deferred": ("", "f", "", "COALESCE(hashint4extended(a, 0), 0)")}
    transfer(run_task, ssh_trust)  # a row sync: both sides' statistics kept

    # new change-set rows (no deletion: listed by their changed rows), an update in k_one (the same), a
    # deletion in k_fewest (listed whole by key), an update in k_nullable (by content)
    psql(lab.origin, "INSERT INTO k_changeset SELECT 2, g % 10, 'item' || g, g, 1 FROM generate_series(1, 60, 7) g;\n"
                     "UPDATE k_one SET v = 'changed' WHERE id = 3;\n"
                     "DELETE FROM k_fewest WHERE a = 4;\n"
                     "UPDATE k_nullable SET v = 'changed' WHERE a = 5;\n")
    partitions = int(psql(lab.origin, "SELECT count(DISTINCT tableoid) FROM k_changeset WHERE version = 2;\n"))
    moved = transfer(run_task, ssh_trust)
    assert moved.get("skip_blocker") is None, moved["skip_blocker"]
    assert (moved["tables_listed"], moved["tables_by_changes"], moved.get("tables_recounted")) == (
        partitions + 3, partitions + 1, None)
    assert moved["method"] == "rows", moved.get("reason")  # k_fewest's column c: no alias of the listing's
    assert (moved["rows_copied"], moved["rows_deleted"]) == (9 + 1 + 1, 1 + 1 + 1)
    assert row_hashes(lab.target) == row_hashes(lab.origin)


def test_small_partitions_keyed_by_integers_that_lost_rows_are_counted_by_fine_buckets(lab, run_task, ssh_trust, database):
    """Change-set partitions of some 130 rows (fewer than buckets_from_rows) that lost rows on the origin,
    which its statistics prove: counted by buckets of about 8 rows on both sides (their key is made of
    integers), and only the buckets that lost rows listed; the target ends with every row of the origin."""
    psql(lab.origin, "INSERT INTO k_changeset SELECT 3, g % 10, 'item' || g, 1000 + g, 0 FROM generate_series(1, 200) g;\n")
    transfer(run_task, ssh_trust)  # rows written since, none deleted: by their changes
    gone = "item_id IN (1005, 1017, 1100)"
    lost = int(psql(lab.origin, "SELECT count(DISTINCT tableoid) FROM k_changeset WHERE %s;\n" % gone))
    psql(lab.origin, "DELETE FROM k_changeset WHERE " + gone + ";\n"
                     "INSERT INTO k_changeset SELECT 4, g % 10, 'item' || g, 2000 + g, 0 FROM generate_series(1, 5) g;\n"
                     "UPDATE k_changeset SET type = 2 WHERE item_id = 1050;\n")
    moved = transfer(run_task, ssh_trust, buckets_from_rows=1000)
    assert moved.get("skip_blocker") is None, moved["skip_blocker"]
    assert moved["method"] == "rows" and moved.get("tables_recounted") is None, moved.get("reason")
    assert moved["tables_by_fine_buckets"] == lost >= 1
    assert (moved["rows_copied"], moved["rows_deleted"]) == (5 + 1, 3 + 1)
    assert row_hashes(lab.target) == row_hashes(lab.origin)


def test_the_window_counts_the_tables_its_listing_counts_by_buckets_there_alone(lab, run_task, ssh_trust, database):
    """The window's pass (a gate, so the target's side is read before it) leaves out of the origin's facts the
    tables that reading would list by buckets: t_part_1, which lost rows, and t_nokey, updated, take their
    counts from their listing by buckets; t_01, listed by its changes, is counted apart; the tables that
    changed on neither side take the target's counts. The pass still compares every table's count, and
    the target ends with every row of the origin."""
    transfer(run_task, ssh_trust)  # the last pass's record: ids and statistics on both sides
    psql(lab.origin, "DELETE FROM t_part WHERE id IN (3, 4);\nUPDATE t_nokey SET b = 'z' WHERE a = 5;\n"
                     "INSERT INTO t_01 VALUES (3000, 'new');\n")
    gate = "/tmp/bmitest-skip.gate"
    lab.target.run("printf 'skip-window\\n' > %s" % gate)
    try:
        moved = transfer(run_task, ssh_trust, gate_path=gate, gate_token="skip-window", gate_timeout=60)
    finally:
        lab.target.run("rm -f %s" % gate)
    assert moved.get("skip_blocker") is None and moved["target_read_ahead"] is True, moved
    assert moved["method"] == "rows" and moved.get("tables_recounted") is None, moved.get("reason")
    assert (moved["tables_listed"], moved["tables_by_changes"], moved["tables_counted_by_buckets"]) == (3, 1, 2)
    total = sum(int(psql(lab.origin, "SELECT count(*) FROM %s" % table)) for table in psql(
        lab.origin, "SELECT relname FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace").split())
    assert moved["rows"] == total
    assert row_hashes(lab.target) == row_hashes(lab.origin)


def test_a_pass_while_the_origin_serves_counts_by_buckets_the_tables_the_target_left_untouched(
        lab, run_task, ssh_trust, database):
    """While the origin serves (a session of its own still connected, as BlueMind's are), its statistics
    prove nothing: every table is listed, but the target's prove its side, and the tables it left untouched
    since the last pass are counted by buckets (a partition that lost rows by fine buckets, guessed from the
    origin's mark), only the buckets that differ listed. The table written on the target is listed whole.
    The target ends with every row of the origin, every count checked at the commit."""
    psql(lab.origin, "INSERT INTO t_08 SELECT g, 'more' FROM generate_series(100, 149) g ON CONFLICT DO NOTHING;\n")
    transfer(run_task, ssh_trust)  # the last pass's record
    psql(lab.origin, "DELETE FROM t_part WHERE id IN (10, 11);\nUPDATE t_07 SET body = 'served' WHERE id = 3;\n"
                     "DELETE FROM t_09 WHERE id = 4;\nINSERT INTO t_10 VALUES (6000, 'new');\n"
                     "UPDATE t_nokey SET b = 'w' WHERE a = 2;\nDELETE FROM t_08 WHERE id IN (120, 121);\n")
    psql(lab.target, "UPDATE t_11 SET body = 'target only' WHERE id = 2;\n")
    # the origin's mark guesses which tables lost rows from statistics that PostgreSQL 13's collector writes
    # some 0.5 s after the writer's session ended: a mark read sooner is only a wrong guess (t_08 one bucket)
    time.sleep(1.5)
    with someone_connected(lab):
        moved = transfer(run_task, ssh_trust, origin_serving=True, buckets_from_rows=200)
    listed = non_empty(lab.origin)
    assert (moved["skip_blocker"], moved["tables_listed"], moved["tables_skipped"]) == ("the origin still serves", listed, 0)
    assert moved["method"] == "rows" and moved.get("tables_recounted") is None, moved.get("reason")
    # every table but t_11; t_08, some 100 rows keyed by an integer, lost rows: cut finely (t_09, 50 rows,
    # and t_part_1, keyed by a date too, are one bucket each, listed whole since their counts differ)
    assert (moved["tables_by_buckets"], moved["tables_by_fine_buckets"], moved["tables_by_changes"]) == (listed - 1, 1, 0)
    assert row_hashes(lab.target) == row_hashes(lab.origin)


def job_ready(lab, job):
    """Whether the job file ``job`` got its ready file within a minute."""
    return lab.target.run("for i in $(seq 600); do [ -e %s.ready ] && exit 0; sleep 0.1; done; exit 1" % job,
                          check=False).returncode == 0


def result_after_gate(lab, play, gate, token, jobs):
    """Open ``gate`` with ``token``, then the result of ``play``; the gate and the folder ``jobs`` removed."""
    lab.target.run("printf '%s\\n' > %s.new && mv -f %s.new %s" % (token, gate, gate, gate))  # as the role does
    try:
        return play.result()
    finally:
        lab.target.run("rm -rf %s %s" % (gate, jobs))


def test_the_windows_pass_catches_up_before_its_gate_and_then_moves_only_what_came_after(
        lab, start_task, run_task, ssh_trust, database):
    """With catch_up, the window's pass started before the origin's stop first moves, as the hot phase's pass
    does, the rows written since the last pass, records its ids and signatures, gives the lock back and says
    it is ready at its gate. A row written after that, before the gate opens, is all the window's pass lists
    (the tables the catch-up left equal are skipped), and the target ends with every row of the origin."""
    transfer(run_task, ssh_trust)  # the last pass's record
    psql(lab.origin, "INSERT INTO t_05 VALUES (4000, 'early');\nDELETE FROM t_06 WHERE id = 7;\n")
    gate, jobs = "/tmp/bmitest-skip-catch-up.gate", "/tmp/bmitest-skip-jobs"
    job = jobs + "/db.json"
    lab.target.run("rm -rf %s %s" % (gate, jobs))
    args = dict(ssh_trust, databases=[DATABASE], pgpass_file=PGPASS, pg_bin_dir="/usr/lib/postgresql/15/bin",
                state_file=STATE, buckets_from_rows=1, gate_path=gate, gate_token="catch-up", gate_timeout=120,
                job_file=job, catch_up=True)
    play = start_task("target", "bluemind_db_transfer", args)
    try:
        assert job_ready(lab, job), "no ready file within 60 s"
        assert play.running()  # at its gate
        # caught up while the origin serves, and the lock given back before the gate
        assert row_hashes(lab.target) == row_hashes(lab.origin)
        assert lab.target.run("flock -n /run/lock/bluemind-migration-db.lock true", check=False).returncode == 0
        psql(lab.origin, "INSERT INTO t_08 VALUES (5000, 'late');\n")  # after the catch-up, before the stop
    finally:
        result = result_after_gate(lab, play, gate, "catch-up", jobs)
    assert not result.get("failed"), result.get("msg")
    early = result["catch_up"]["databases"][0]
    assert "error" not in result["catch_up"] and early["method"] == "rows"
    assert (early["rows_copied"], early["rows_deleted"]) == (1, 1)
    window = result["databases"][0]
    assert window.get("skip_blocker") is None and window["target_read_ahead"] is True, window
    assert (window["tables_listed"], window["rows_copied"], window["rows_deleted"]) == (1, 1, 0)
    assert row_hashes(lab.target) == row_hashes(lab.origin)
    # the window's record follows the catch-up's: the next pass finds nothing to list
    assert transfer(run_task, ssh_trust)["tables_listed"] == 0


def test_catch_up_passes_go_on_until_the_pulls_work_ended_then_the_window_lists_only_what_came_after(
        lab, start_task, run_task, ssh_trust, database):
    """With catch_up_until (the final pull's ready file), the catch-up does not end with its first pass: a
    row written while the pull's work before the stop still runs moves in a later catch-up pass, the pass
    that begins once the file exists is the last, and the window's pass lists only the row written after
    it; the target ends with every row of the origin."""
    transfer(run_task, ssh_trust)  # the last pass's record
    gate, jobs = "/tmp/bmitest-skip-until.gate", "/tmp/bmitest-skip-until-jobs"
    job, until = jobs + "/db.json", jobs + "/pull.json.ready"
    lab.target.run("rm -rf %s %s && mkdir -p %s" % (gate, jobs, jobs))
    args = dict(ssh_trust, databases=[DATABASE], pgpass_file=PGPASS, pg_bin_dir="/usr/lib/postgresql/15/bin",
                state_file=STATE, buckets_from_rows=1, gate_path=gate, gate_token="until", gate_timeout=120,
                job_file=job, catch_up=True, catch_up_until=until)
    play = start_task("target", "bluemind_db_transfer", args)
    try:
        # the first pass runs while the pull's work goes on (no ready file of the pull yet): not ready after it
        locked = ("for i in $(seq 300); do flock -n /run/lock/bluemind-migration-db.lock true || exit 0; sleep 0.05; "
                  "done; exit 1")
        assert lab.target.run(locked, check=False).returncode == 0, "no catch-up pass within 15 s"
        psql(lab.origin, "INSERT INTO t_09 VALUES (6000, 'during');\n")  # while the pull's work still runs
        lab.target.run("sleep 3")
        assert play.running() and lab.target.run("test -e %s.ready" % job, check=False).returncode != 0
        lab.target.run("echo '{}' > %s" % until)  # the pull's work before the stop ended
        assert job_ready(lab, job), "no ready file within 60 s of the pull's"
        assert row_hashes(lab.target) == row_hashes(lab.origin)  # 'during' moved before the gate
        psql(lab.origin, "INSERT INTO t_10 VALUES (6001, 'late');\n")  # after the last pass, before the stop
    finally:
        result = result_after_gate(lab, play, gate, "until", jobs)
    assert not result.get("failed"), result.get("msg")
    assert "error" not in result["catch_up"] and result["catch_up"]["passes"] >= 2, result["catch_up"]
    window = result["databases"][0]
    assert (window["tables_listed"], window["rows_copied"], window["rows_deleted"]) == (1, 1, 0), window
    assert row_hashes(lab.target) == row_hashes(lab.origin)


def look(run_task, ssh_trust, **extra):
    args = dict(ssh_trust, databases=[DATABASE], pgpass_file=PGPASS, pg_bin_dir="/usr/lib/postgresql/15/bin",
                state_file=STATE)
    args.update(extra)
    result = run_task("target", "bluemind_db_look", args)
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is False
    return result["databases"][0]


def test_the_last_look_sees_the_tables_written_since_the_pass_and_while_it_looks(lab, run_task, ssh_trust, database):
    """The prediction's last look (issue 13) on PostgreSQL 13: the tables written since the last pass's mark,
    then those a writer keeps writing between its two readings; it moves nothing."""
    transfer(run_task, ssh_trust)  # the last pass's mark
    before = row_hashes(lab.target)
    psql(lab.origin, "INSERT INTO t_01 VALUES (2000, 'since');\nDELETE FROM t_02 WHERE id = 30;\n")
    # PostgreSQL 13's collector writes the ended session's counts some 0.5 s later: looked at until they show
    for _attempt in range(20):
        seen = look(run_task, ssh_trust, sample_seconds=0)
        if seen["written_since_pass"] == 2:
            break
        time.sleep(0.5)
    assert (seen["written_since_pass"], seen["rows_since_pass"], seen["written_in_sample"]) == (2, 2, None)
    assert seen["tables"] >= NON_EMPTY + 1  # every ordinary table (earlier tests of this module may add some)
    # a writer of t_06 in a new session every 0.3 s, for longer than the look's two readings 2 s apart: one
    # row each time, whatever earlier tests of this module left in t_06 (an upsert of a key of its own)
    done = "/tmp/bmitest-look-writer.done"
    lab.origin.run("rm -f %s; nohup sh -c 'for i in $(seq 1 20); do su postgres -c \"psql -X -q -d %s -c \\\"INSERT "
                   "INTO t_06 VALUES (9999, md5(random()::text)) ON CONFLICT (id) DO UPDATE SET body = excluded.body"
                   "\\\"\"; sleep 0.3; done; touch %s' >/dev/null 2>&1 &" % (done, DATABASE, done))
    time.sleep(1.0)
    busy = look(run_task, ssh_trust, sample_seconds=2)
    lab.origin.run("for i in $(seq 1 100); do [ -e %s ] && break; sleep 0.2; done; rm -f %s" % (done, done))
    assert busy["written_in_sample"] == 1 and busy["written_since_pass"] == 3, busy
    assert busy["rows_in_sample"] >= 1 and busy["rows_since_pass"] >= 3, busy  # one row each update
    assert row_hashes(lab.target) == before  # the look moved nothing to the target
