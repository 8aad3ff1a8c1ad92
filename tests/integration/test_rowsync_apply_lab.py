"""Rows whose key is not one integer are found through their key's index (issue 13: at scale l the window's
apply hashed every row of such tables on both sides, `md5(ROW(key)) IN (...)`, to move a few): on the
lab's two servers (PostgreSQL 13 and 15), the locators that the listings of changed rows carry select and
delete exactly the rows they name, awkward key values included, and the plans use the key's index; the
commit's count of a table from its rows before, the rows its delete took and the rows copied is the
table's count; a key of integer, text and uuid columns falls into the same buckets on both majors by its
types' own hash functions.

The tables live in a database of this test (bmitest-locators), removed from both hosts at the end.
"""

import json
import sys

import pytest

DATABASE = "bmitest-locators"
ROWS = 20000
# Keys a JSON or COPY round trip could get wrong: quotes, backslashes, commas, tabs, new lines, braces,
# non-ASCII letters and a character outside the BMP, plus a timestamp with a time zone.
AWKWARD = ["it's", 'say "hi"', "back\\slash", "a,b", "tab\there", "new\nline", "{brace}", "(paren)",
           "\u00e9t\u00e9", "\U0001F600", ""]
SETUP = (
    "CREATE TABLE t_loc (name text NOT NULL, at timestamptz NOT NULL, n int NOT NULL, body text, "
    "PRIMARY KEY (name, at, n));\n"
    "INSERT INTO t_loc SELECT 'item' || g, timestamptz '2026-01-01 00:00:00+00' + g * interval '1 minute', g %% 97, "
    "md5(g::text) FROM generate_series(1, %d) g;\n" % ROWS)


def literal(text):
    return "'%s'" % text.replace("'", "''")


def psql(host, sql, db=DATABASE):
    """Output of ``sql``, values written in UTC (as a pass's sessions write them, pgsync.ROW_TEXT_OPTIONS)."""
    return host.run("su postgres -c 'PGOPTIONS=-cTimeZone=UTC psql -X -At -v ON_ERROR_STOP=1 -d %s'" % db,
                    input=sql).stdout


@pytest.fixture(scope="module")
def pgsync(collections_path):
    sys.path.insert(0, collections_path)
    from ansible_collections.bluemind.migration.plugins.module_utils import pgsync
    return pgsync


@pytest.fixture(scope="module")
def database(lab):
    drop = 'DROP DATABASE IF EXISTS "%s";\n' % DATABASE
    awkward = "".join("INSERT INTO t_loc VALUES (%s, '2026-02-03 04:05:06.789+02', 7, 'odd');\n" % literal(name)
                      for name in AWKWARD)
    for host in (lab.origin, lab.target):
        psql(host, drop + "CREATE DATABASE \"%s\" ENCODING 'UTF8' TEMPLATE template0;\n" % DATABASE, db="postgres")
        psql(host, SETUP + awkward + "ANALYZE t_loc;\n")
    yield
    for host in (lab.origin, lab.target):
        psql(host, drop, db="postgres")


def listed(host, pgsync, table):
    """The key hashes and locators of the rows written since transaction 0 (all of them), as a pass reads
    them (COPY's text output of :meth:`Table.changed_keys_sql`)."""
    locators = {}
    out = psql(host, table.changed_keys_sql(0) + ";\n")
    keys = [key for key, _row in pgsync.sorted_listing(out.splitlines(True), "origin", False, locators)]
    return keys, locators


@pytest.mark.parametrize("side", ["origin", "target"])
def test_locators_find_exactly_the_rows_through_the_key_index(lab, database, pgsync, side):
    host = getattr(lab, side)
    table = pgsync.Table("public.t_loc", "name,at,n,body", "name,at,n")
    keys, locators = listed(host, pgsync, table)
    assert len(keys) == ROWS + len(AWKWARD) and set(locators) == set(keys)
    # the awkward rows and a few ordinary ones, by their hashes (what a pass's plan holds)
    chosen = sorted(psql(host, "SELECT md5(ROW(name,at,n)::text) FROM t_loc "
                               "WHERE body = 'odd' OR n = 5 AND at < '2026-01-02';\n").split())
    assert len(chosen) == len(AWKWARD) + 15

    select = table.select_sql(chosen, locators)
    assert "json_populate_recordset" in select and "md5" not in select
    inner = select[len("COPY ("):-len(") TO STDOUT")]
    plan = psql(host, "EXPLAIN (FORMAT JSON) " + inner + ";\n")
    assert_no_sequential_scan(plan)
    rows = psql(host, "SELECT md5(ROW(name,at,n)::text) FROM (%s) t;\n" % inner).split()
    assert sorted(rows) == chosen
    names = psql(host, "SELECT json_agg(name) FROM (%s) t WHERE body = 'odd';\n" % inner)
    assert sorted(json.loads(names)) == sorted(AWKWARD)

    delete = table.delete_sql(chosen, locators)
    plan = psql(host, "EXPLAIN (FORMAT JSON) " + delete.rstrip(";") + ";\n")
    assert_no_sequential_scan(plan)
    out = psql(host, "BEGIN;\n%s\nSELECT count(*) FROM t_loc;\nSELECT count(*) FROM t_loc WHERE md5(ROW(name,at,n)::text) "
                     "= ANY(%s);\nROLLBACK;\n" % (delete, literal("{%s}" % ",".join(chosen)))).split("\n")
    assert out[1:4] == ["DELETE %d" % len(chosen), str(ROWS + len(AWKWARD) - len(chosen)), "0"], out


def test_the_commit_counts_a_table_from_its_rows_before_those_deleted_and_those_copied(lab, database, pgsync):
    """The transaction of an apply (RowSync.apply) on the target: a delete that keeps how many rows it
    took, a COPY, then the check; it passes with the count the table then has and fails naming the plan
    with any other."""
    host = lab.target
    table = pgsync.Table("public.t_loc", "name,at,n,body", "name,at,n")
    keys, locators = listed(host, pgsync, table)
    before = int(psql(host, "SELECT count(*) FROM t_loc;\n"))
    delete = pgsync.counted_delete_sql(table.delete_sql(keys[:5], locators), 3)
    copy = ("COPY public.t_loc (name,at,n,body) FROM STDIN;\nnew1\t2027-01-01 00:00:00+00\t1\tx\n"
            "new2\t2027-01-01 00:00:00+00\t2\tx\n\\.\n")

    def apply(expect):  # then the count the transaction sees, rolled back: the table stays for the other tests
        script = "BEGIN;\n%s\n%s%s\nSELECT count(*) FROM t_loc;\nROLLBACK;\n" % (
            delete, copy, pgsync.recount_sql([(3, "public.t_loc", expect, before, 2)]))
        return host.run("su postgres -c 'psql -X -q -At -v ON_ERROR_STOP=1 -d %s'" % DATABASE, input=script, check=False)

    wrong = apply(before - 5 + 2 + 1)
    assert wrong.returncode != 0 and pgsync.recounted(wrong.stderr) == [3], wrong.stderr
    right = apply(before - 5 + 2)
    assert right.returncode == 0 and right.stdout.split()[-1] == str(before - 5 + 2), right.stderr


HASHED = (
    "CREATE TABLE t_hash (n int NOT NULL, name varchar(40) NOT NULL, id uuid NOT NULL, v text, PRIMARY KEY (n, name, id));\n"
    "INSERT INTO t_hash SELECT g %% 13, 'item' || g, md5(g::text)::uuid, 'v' FROM generate_series(1, %d) g;\n"
    "INSERT INTO t_hash VALUES %s;\n"
    "CREATE COLLATION IF NOT EXISTS t_ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);\n"
    "CREATE TABLE t_ci (name text COLLATE t_ci PRIMARY KEY, v text);\n" % (ROWS, ", ".join(
        "(%d, %s, '00000000-0000-0000-0000-%012d', 'odd')" % (i, literal(name), i) for i, name in enumerate(AWKWARD))))


def test_a_key_of_integers_text_and_uuid_is_bucketed_alike_on_both_majors_by_its_types_hashes(lab, database, pgsync):
    """Both servers (13 and 15) give HASH64_PROBE's values (their facts say ``hash64``), the target names the
    key of integer, text (varchar) and uuid columns by their hash functions but not a text under a
    nondeterministic collation, and the same rows fall into the same buckets on both sides, awkward text
    included: a bucket counted on each side compares like with like."""
    for host in (lab.origin, lab.target):
        psql(host, HASHED)
        assert json.loads(psql(host, pgsync.FACTS_SQL + ";\n"))["hash64"] is True
    columns = [line.split("|") for line in psql(lab.target, pgsync.TABLE_COLUMNS_SQL + ";\n").splitlines()]
    tables = dict((table.name, table) for table in pgsync.tables_of(columns))
    hashed = tables["public.t_hash"]
    assert hashed.hash64 == "hashint4extended(n, 0) # hashtextextended(name, 1) # uuid_hash_extended(id, 2)"
    assert tables["public.t_ci"].hash64 == "" and tables["public.t_loc"].hash64 == ""  # a time stamp in its key
    counts = [sorted(psql(host, hashed.bucket_counts_sql(64) + ";\n").splitlines()) for host in (lab.origin, lab.target)]
    assert counts[0] == counts[1] and len(counts[0]) == 64, counts
    assert sum(int(line.split("\t")[1]) for line in counts[0]) == ROWS + len(AWKWARD)
    listed_rows = [psql(host, hashed.listing_sql(0, within=(64, [0, 17, 63])) + ";\n") for host in (lab.origin, lab.target)]
    assert listed_rows[0] == listed_rows[1] and listed_rows[0].count("\n") > ROWS * 3 // 64 // 2


KEYLESS = (
    "CREATE COLLATION IF NOT EXISTS t_ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);\n"
    "CREATE TABLE t_keyless (box text, uid int, at timestamptz, tag text COLLATE t_ci, note varchar(20));\n"
    "INSERT INTO t_keyless SELECT 'box' || (g %% 50), g, timestamptz '2026-01-01 00:00:00+00' + g * interval '1 s', "
    "'t', CASE WHEN g %% 7 = 0 THEN NULL ELSE 'n' || g END FROM generate_series(1, %d) g;\n"
    "INSERT INTO t_keyless SELECT box, uid, at, tag, note FROM t_keyless WHERE uid %% 1000 = 0;\n"
    "INSERT INTO t_keyless VALUES %s;\n" % (ROWS, ", ".join(
        "(%s, NULL, NULL, 'odd', %s)" % (literal(name), literal(name[:20])) for name in AWKWARD)))


def test_a_table_without_a_key_is_bucketed_alike_on_both_majors_by_its_columns_hashes(lab, database, pgsync):
    """A table without a key is bucketed by the hashes of its integer and text columns (not the time stamp,
    not a text under a nondeterministic collation; NULLs as 0): the same rows, duplicates and awkward text
    included, fall into the same buckets on 13 and 15, and a bucket listed gives the same contents and counts."""
    for host in (lab.origin, lab.target):
        psql(host, "DROP TABLE IF EXISTS t_keyless;\n" + KEYLESS)
    columns = [line.split("|") for line in psql(lab.target, pgsync.TABLE_COLUMNS_SQL + ";\n").splitlines()]
    keyless = dict((table.name, table) for table in pgsync.tables_of(columns))["public.t_keyless"]
    assert keyless.hash64 == ("COALESCE(hashtextextended(box, 0), 0) # COALESCE(hashint4extended(uid, 1), 0) # "
                              "COALESCE(hashtextextended(note, 4), 0)")
    counts = [sorted(psql(host, keyless.bucket_counts_sql(256) + ";\n").splitlines()) for host in (lab.origin, lab.target)]
    assert counts[0] == counts[1] and len(counts[0]) == 256, counts
    assert sum(int(line.split("\t")[1]) for line in counts[0]) == ROWS + ROWS // 1000 + len(AWKWARD)
    listed_rows = [psql(host, keyless.listing_sql(0, within=(256, [0, 17, 255])) + ";\n") for host in (lab.origin, lab.target)]
    assert listed_rows[0] == listed_rows[1] and listed_rows[0].count("\n") > ROWS * 3 // 256 // 2
    # the contents listed are those of the chosen buckets, each counted (the duplicates twice)
    chosen = sum(int(line.split("\t")[1]) for line in counts[0] if line.split("\t")[0] in ("0", "17", "255"))
    assert sum(int(line.split("\t")[1]) for line in listed_rows[0].splitlines()) == chosen
    # each content's locator (its columns' hash) finds exactly its rows, on both sides, awkward text included
    locators = {}
    contents = list(pgsync.sorted_listing(listed_rows[0].splitlines(True), "origin", False, locators))
    awkward = psql(lab.origin, keyless.changed_keys_sql(0).replace("FROM public.t_keyless t WHERE ",
                                                                   "FROM public.t_keyless t WHERE uid IS NULL AND ") + ";\n")
    contents += list(pgsync.sorted_listing(awkward.splitlines(True), "origin", False, locators))
    assert len(locators) == len(contents) > len(AWKWARD)
    for host in (lab.origin, lab.target):
        selected = psql(host, keyless.select_sql([key for key, _count in contents], locators) + ";\n")
        assert selected.count("\n") == chosen + len(AWKWARD), host


def assert_no_sequential_scan(plan):
    """The plan (EXPLAIN's JSON) reads t_loc through its key's index and the rows' addresses, never whole."""
    scans = [node["Node Type"] for node in nodes(json.loads(plan)[0]["Plan"]) if node.get("Relation Name") == "t_loc"]
    assert "Index Scan" in scans and "Seq Scan" not in scans and "Tid Scan" in scans, plan


def nodes(plan):
    yield plan
    for child in plan.get("Plans", ()):
        yield from nodes(child)


def test_rows_written_since_a_transaction_are_told_by_their_age_as_by_their_64_bit_ids(lab, database, pgsync):
    """On both majors, :func:`written_since` picks exactly the rows that XID64 picks, frozen rows included:
    by ``age()`` for a recent id (age_exact_sql true), by XID64 for an id too old for it or ahead of the
    snapshot. Rows are written in three transactions and a tenth of them updated; each boundary, the first
    normal id, the frozen one and an id ahead select what their 64-bit ids say."""
    for host in (lab.origin, lab.target):
        script = "DROP TABLE IF EXISTS t_age;\nCREATE TABLE t_age (id int PRIMARY KEY, batch int NOT NULL);\n"
        for batch in range(3):
            script += "SELECT txid_current();\nINSERT INTO t_age SELECT g, %d FROM generate_series(%d, %d) g;\n" % (
                batch, batch * 100 + 1, batch * 100 + 100)
        script += "UPDATE t_age SET batch = 3 WHERE id % 10 = 0;\nVACUUM (FREEZE) t_age;\nSELECT txid_current();\n"
        boundaries = [int(line) for line in psql(host, script).splitlines() if line.isdigit()]  # not the command tags
        first, latest = boundaries[0], boundaries[-1]
        # the id of the transaction that wrote the second batch (not updated: 101 % 10): at it, the batch counts
        written = int(psql(host, "SELECT xmin::text FROM t_age WHERE id = 101;\n"))
        assert first < written < latest
        for since in boundaries + [written, written + 1, first - 1, 3, 2, latest + 1000]:
            fast = psql(host, "SELECT string_agg(id::text, ',' ORDER BY id) FROM t_age t WHERE %s;\n" % pgsync.written_since(since))
            exact = psql(host, "SELECT string_agg(id::text, ',' ORDER BY id) FROM t_age t WHERE %s >= %d;\n" % (
                pgsync.XID64, since))
            assert fast == exact, (host, since)
            by_age = psql(host, "SELECT %s;\n" % pgsync.age_exact_sql(since)).strip()
            # 2 is FrozenTransactionId (age() says 2**31 - 1 of it); the last one is ahead of the snapshot
            assert by_age == ("f" if since in (2, latest + 1000) else "t"), (host, since, by_age)
        ids = [psql(host, "SELECT count(*) FROM t_age t WHERE %s;\n" % pgsync.written_since(since)).strip()
               for since in boundaries + [written, written + 1]]
        # from each boundary: the batches written after it and the rows updated after them all (a tenth of each
        # batch), then none; from the second batch's own id that batch still, from the next one no more
        assert ids == ["300", "210", "120", "0", "210", "120"], (host, ids)
