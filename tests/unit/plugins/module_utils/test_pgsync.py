import json
import io
from unittest import mock

import pytest

from ansible_collections.bluemind.migration.plugins.module_utils.pgsync import (
    ReadAhead,
    ahead_statements,
    CATALOGS_SQL,
    FINE_BUCKET_ROWS,
    TABLE_COLUMNS_SQL,
    table_counts_sql,
    IDENTITY_INDEX,
    FACTS_SQL,
    facts_sql,
    LARGE_OBJECTS_SQL,
    Recount,
    RowSync,
    RowSyncError,
    Segments,
    Snapshot,
    balanced_groups,
    batch_script,
    bucket_count,
    bucket_rows,
    changed_keys,
    differing_buckets,
    identifiers,
    recounted,
    Table,
    tables_of,
    HASH64_FUNCTIONS,
    HASH64_PROBE,
    HASH64_PROBE_VALUES,
    written_since,
    merge_listings,
    normalize_schema,
    sorted_listing,
    text_array,
)


def lines(*rows):
    return ["%s\t%s\n" % row for row in rows]


def test_merge_by_content_finds_new_changed_and_gone_rows():
    origin = lines(("a1", "h1"), ("b2", "h2"), ("c3", "NEW"), ("e5", "h5"))
    target = lines(("a1", "h1"), ("b2", "OLD"), ("d4", "h4"), ("e5", "h5"))
    fetch, delete, counts = merge_listings(origin, target)
    assert fetch == ["b2", "c3"]
    assert delete == ["b2", "d4"]
    assert counts == dict(origin=4, target=4, same=2, changed=1, new=1, gone=1)


def test_merge_by_flags_moves_rows_written_since_on_either_side():
    origin = lines(("a1", "0"), ("b2", "1"), ("c3", "0"), ("f6", "0"))
    target = lines(("a1", "0"), ("b2", "0"), ("c3", "1"), ("e5", "0"))
    fetch, delete, counts = merge_listings(origin, target, by_flags=True)
    assert fetch == ["b2", "c3", "f6"]
    assert delete == ["b2", "c3", "e5"]
    assert (counts["same"], counts["changed"], counts["new"], counts["gone"]) == (1, 2, 1, 1)


def test_merge_of_empty_target_fetches_everything():
    fetch, delete, counts = merge_listings(lines(("a", "1"), ("b", "2")), [])
    assert (fetch, delete, counts["target"]) == (["a", "b"], [], 0)


def test_merge_refuses_an_unsorted_listing():
    with pytest.raises(ValueError, match="origin's listing is not sorted"):
        merge_listings(lines(("b", "1"), ("a", "1")), lines(("a", "1")))


def test_table_sql_by_content_and_by_transaction_ids():
    table = Table("public.t_mailbox_record", "mailbox_uid,imap_uid,flags", "mailbox_uid,imap_uid")
    content = table.listing_sql()
    assert content.startswith("COPY (SELECT md5(ROW(mailbox_uid,imap_uid)::text), md5(ROW(mailbox_uid,imap_uid,flags)::text)")
    assert content.endswith('ORDER BY md5(ROW(mailbox_uid,imap_uid)::text) COLLATE "C") TO STDOUT')
    flags = table.listing_sql(since=4294967396)
    assert "CASE WHEN " + written_since(4294967396) + " THEN '1' ELSE '0' END" in flags
    # by age() from the low 32 bits of the id, XID64 beside it when age() is not exact
    assert "age('100'::xid)" in flags and ">= 4294967396 END" in flags and "t.xmin::text::bigint" in flags
    assert table.select_sql(["ab", "cd"]) == (
        "COPY (SELECT mailbox_uid,imap_uid,flags FROM public.t_mailbox_record WHERE "
        "md5(ROW(mailbox_uid,imap_uid)::text) IN (SELECT unnest('{ab,cd}'::text[]))) TO STDOUT")
    assert table.select_sql() == "COPY (SELECT mailbox_uid,imap_uid,flags FROM public.t_mailbox_record) TO STDOUT"
    assert table.delete_sql(["ab"]) == (
        "DELETE FROM public.t_mailbox_record WHERE md5(ROW(mailbox_uid,imap_uid)::text) IN "
        "(SELECT unnest('{ab}'::text[]));")
    assert table.delete_sql() == "DELETE FROM public.t_mailbox_record;"


def test_an_integer_key_is_listed_in_its_order_and_finds_rows_by_itself():
    table = Table("public.t_changeset", "id,uid,version", "id", "t")
    assert table.listing_sql(since=4294967396).startswith("COPY (SELECT id, CASE WHEN ")
    assert table.listing_sql(since=4294967396).endswith(" ORDER BY id) TO STDOUT")  # the index's order: no hash, no sort
    content = table.listing_sql()
    assert content.startswith("COPY (SELECT id, md5(ROW(id,uid,version)::text) FROM public.t_changeset t ")
    assert content.endswith(" ORDER BY id) TO STDOUT")
    assert table.select_sql([7, 12]) == (
        "COPY (SELECT id,uid,version FROM public.t_changeset WHERE id IN (SELECT unnest('{7,12}'::bigint[]))) TO STDOUT")
    assert table.delete_sql([7]) == "DELETE FROM public.t_changeset WHERE id IN (SELECT unnest('{7}'::bigint[]));"
    # psql prints a boolean as t or f; a composite or text key keeps its hash
    assert not Table("public.t", "a,b", "a,b", "f").int_key and not Table("public.t", "a", "", "t").int_key


def test_identifiers_read_quote_idents_list():
    assert identifiers('item_id,"Version","a,b","say ""hi"""') == ["item_id", "Version", "a,b", 'say "hi"']
    assert identifiers("id") == ["id"]


def locator(**key):
    return json.dumps(key).encode().hex()


def test_a_key_that_is_not_one_integer_carries_its_locator_in_the_listings_of_the_rows_a_pass_moves():
    table = Table("public.t_container_changelog", "version,container_id,item_uid,type",
                  "version,container_id,item_uid")
    located = ("encode(convert_to(json_build_object('version', t.\"version\", 'container_id', t.\"container_id\", "
               "'item_uid', t.\"item_uid\")::text, 'UTF8'), 'hex')")
    assert table.changed_keys_sql(100).startswith(
        "COPY (SELECT md5(ROW(version,container_id,item_uid)::text), '', %s FROM public.t_container_changelog t " % located)
    assert table.listing_sql(100, within=(8, [3])).startswith(
        "COPY (SELECT md5(ROW(version,container_id,item_uid)::text), CASE WHEN ")
    assert (", %s FROM public.t_container_changelog t WHERE" % located) in table.listing_sql(100, within=(8, [3]))
    # a whole listing (every row) does not carry them, nor does a table keyed by one integer or without a key
    assert "json_build_object" not in table.listing_sql(100) + table.listing_sql()
    assert "json_build_object" not in Table("public.a", "id,v", "id", int_key=True).changed_keys_sql(100)
    assert "json_build_object" not in Table("public.n", "a,b", "").changed_keys_sql(100)


def test_rows_with_every_locator_are_found_through_the_key_and_their_address_else_by_hash():
    table = Table("public.t", 'k,"N",v', 'k,"N"')
    locators = {"h1": locator(k="it's", N=1), "h2": locator(k="b", N=2)}
    found = ("t.ctid = ANY(ARRAY(SELECT (SELECT x.ctid FROM public.t x WHERE x.\"k\" = r.\"k\" AND x.\"N\" = r.\"N\" "
             "LIMIT 1) FROM json_populate_recordset(NULL::public.t, "
             "'[{\"k\": \"it''s\", \"N\": 1},{\"k\": \"b\", \"N\": 2}]') r))")
    assert table.select_sql(["h1", "h2"], locators) == 'COPY (SELECT k,"N",v FROM public.t t WHERE %s) TO STDOUT' % found
    assert table.delete_sql(["h1", "h2"], locators) == "DELETE FROM public.t t WHERE %s;" % found
    # a key without its locator: every row's hash, as before
    assert table.select_sql(["h1", "h3"], locators) == (
        'COPY (SELECT k,"N",v FROM public.t WHERE md5(ROW(k,"N")::text) IN (SELECT unnest(\'{h1,h3}\'::text[]))) TO STDOUT')
    assert table.delete_sql(["h3"], locators).startswith('DELETE FROM public.t WHERE md5(ROW(k,"N")::text) IN')
    assert table.select_sql() == 'COPY (SELECT k,"N",v FROM public.t) TO STDOUT'


def test_listings_give_their_locators_by_key_and_keep_their_rows():
    found = {}
    listing = ["a1\t\t%s\n" % locator(k="a"), "b2\t\n", "c3\t1\t%s\n" % locator(k="c")]
    assert list(sorted_listing(listing, "origin", locators=found)) == [("a1", ""), ("b2", ""), ("c3", "1")]
    assert found == {"a1": locator(k="a"), "c3": locator(k="c")}
    found = {}
    fetch, delete, _counts = merge_listings(["a1\t0\t61\n", "c3\t1\t63\n"], ["a1\t0\t61\n", "b2\t0\t62\n"],
                                            by_flags=True, locators=found)
    assert (fetch, delete, found) == (["c3"], ["b2"], {"a1": "61", "b2": "62", "c3": "63"})


def test_a_plan_by_changes_or_buckets_finds_its_rows_by_their_locators():
    """The keys written since on both sides and those of the buckets listed come with their locators; the
    apply deletes and selects those rows through the key (no hash of every row on either side)."""
    one, two, three = locator(k="one"), locator(k="two"), locator(k="three")
    popen, started = sessions([batch("0\t300\n1\t298\n", "h7\t\t%s\n" % one),
                               batch("0\t300\n1\t301\n", "h9\t\t%s\n" % two),
                               batch("h5\t0\t%s\n" % three), batch("h5\t0\t%s\nh6\t0\t%s\n" % (three, locator(k="six")))])
    rows = RowSync(FakeServer("origin", ""), FakeServer("target", ""), "bj-data", "00000003-1", popen=popen)
    table = Table("public.b", "k,v", "k")
    plan = rows.plan_tables([table], since=(100, 200), by_buckets={"public.b"}, rows={"public.b": (150, 151)})[0]
    assert (plan["fetch"], plan["delete"]) == (["h7", "h9"], ["h6", "h7", "h9"])
    assert set(plan["locators"]) == {"h5", "h6", "h7", "h9"}
    popen, started = sessions(["", batch("")])
    rows = RowSync(FakeServer("origin", ""), FakeServer("target", ""), "bj-data", "s", popen=popen)
    rows.apply([plan], [])
    applied = started[0]["proc"].stdin.getvalue().decode()
    assert "DELETE FROM public.b t WHERE t.ctid = ANY(" in applied and '"k": "six"' in applied and "md5" not in applied
    assert "json_populate_recordset" in started[1]["script"] and '"k": "one"' in started[1]["script"]


def test_numeric_keys_merge_as_numbers():
    # 9 < 10 < 100 as numbers (as strings 10 < 100 < 9: the listing would look unsorted)
    origin = lines(("9", "0"), ("10", "1"), ("100", "0"))
    target = lines(("9", "0"), ("10", "0"), ("11", "0"), ("100", "0"))
    fetch, delete, counts = merge_listings(origin, target, by_flags=True, numeric=True)
    assert (fetch, delete) == ([10], [10, 11]) and counts["same"] == 2
    with pytest.raises(ValueError, match="not sorted"):
        merge_listings(lines(("10", "0"), ("9", "0")), [], numeric=True)


def test_table_without_key_is_listed_by_content_as_a_multiset():
    table = Table("public.t_container_acl", "container_id,subject", "")
    listing = table.listing_sql()
    assert listing == ('COPY (SELECT h, count(*) FROM (SELECT md5(ROW(container_id,subject)::text) AS h '
                       'FROM public.t_container_acl t) s GROUP BY h ORDER BY h COLLATE "C") TO STDOUT')
    # transaction ids cannot find a row without a key: the content is listed whatever `since` says
    assert table.listing_sql(since=10) == listing
    assert table.select_sql(["ab"]) == (
        "COPY (SELECT container_id,subject FROM public.t_container_acl WHERE "
        "md5(ROW(container_id,subject)::text) IN (SELECT unnest('{ab}'::text[]))) TO STDOUT")
    assert table.delete_sql(["ab"]) == (
        "DELETE FROM public.t_container_acl WHERE md5(ROW(container_id,subject)::text) IN "
        "(SELECT unnest('{ab}'::text[]));")


class FakeServer(object):
    env = {}

    def tool_env(self, own_options=True, options=""):
        return dict(PGOPTIONS=options) if options else {}

    def __init__(self, side, listing):
        self.side = side
        self.listing = listing

    def psql_args(self, database):
        return ["psql", self.side, database]


class FakeProc(object):
    def __init__(self, output, rc=0):
        self.stdin = io.BytesIO()
        self.stdin.close = lambda: None  # keep what was written readable
        self.stdout = io.BytesIO(output.encode())
        self.rc = rc

    def wait(self, timeout=None):
        return self.rc

    def poll(self):
        return self.rc

    def kill(self):
        pass


def plan(origin_listing, target_listing, key="", since=None):
    servers = dict(origin=FakeServer("origin", origin_listing), target=FakeServer("target", target_listing))

    def popen(args, **kwargs):
        return FakeProc("\\.bm-statement 0\n" + servers[args[1]].listing)

    rows = RowSync(servers["origin"], servers["target"], "bj-data", "00000003-1", popen=popen)
    return rows.plan_table(Table("public.t", "a,b", key), since)


def test_table_without_key_moves_only_the_rows_that_differ():
    # h2 is there twice on the origin, once on the target; h3 is gone from the origin
    result = plan("h1\t1\nh2\t2\nh4\t1\n", "h1\t1\nh2\t1\nh3\t1\nh4\t1\n")
    assert result["replace"] is False
    assert (result["fetch"], result["delete"]) == (["h2"], ["h2", "h3"])


def test_table_without_key_is_compared_by_content_even_by_transaction_ids():
    same = "h1\t1\nh2\t1\nh3\t1\n"
    result = plan(same, same, since=(100, 200))
    assert (result["replace"], result["fetch"], result["delete"]) == (False, [], [])


def test_an_empty_table_on_both_sides_moves_nothing():
    for key in ("", "a"):
        result = plan("", "", key=key)
        assert (result["replace"], result["fetch"], result["delete"]) == (False, [], []), key
    filled = plan("k1\th1\n", "", key="a")
    assert filled["replace"] is True and filled["fetch"] is None


def test_text_array_quotes_the_literal():
    assert text_array(["0a", "ff"]) == "'{0a,ff}'"


def test_normalize_schema_keeps_only_statements():
    origin = ("--\n-- PostgreSQL database dump\n--\n\\restrict abc\nSET statement_timeout = 0;\n"
              "SELECT pg_catalog.set_config('search_path', '', false);\n\n"
              "CREATE EXTENSION IF NOT EXISTS hstore WITH SCHEMA pg_catalog;\n"
              "COMMENT ON EXTENSION hstore IS 'data type for storing sets of (key, value) pairs';\n"
              "CREATE TABLE public.t (\n    a integer\n);\n\\unrestrict abc\n")
    target = ("-- Dumped from database version 15.8\n\\restrict xyz\n"
              "CREATE EXTENSION IF NOT EXISTS hstore WITH SCHEMA pg_catalog;\n"
              "COMMENT ON EXTENSION hstore IS 'data type';\n"
              "CREATE TABLE public.t (\n    a integer\n);\n")
    assert normalize_schema(origin) == normalize_schema(target) == [
        "CREATE EXTENSION IF NOT EXISTS hstore WITH SCHEMA pg_catalog;", "CREATE TABLE public.t (", "    a integer", ");"]
    assert normalize_schema(target.replace("integer", "bigint")) != normalize_schema(origin)
    # an extension in another schema is another schema: the row sync does not apply
    assert normalize_schema(target.replace("SCHEMA pg_catalog", "SCHEMA public")) != normalize_schema(origin)


def test_facts_leave_out_the_counts_of_the_tables_counted_apart():
    """After a row sync's commit, the tables whose count it checked are not counted again (on a real
    PostgreSQL 13: tests/integration, every pass that plans a table from its changes); their names are
    SQL literals, in the counts' subquery only."""
    assert facts_sql() == FACTS_SQL and facts_sql(()) == FACTS_SQL
    sql = facts_sql({'public."it\'s"', "public.t_b"})
    counts = sql[sql.index("'counts'"):sql.index("'sequences'")]
    assert counts.endswith("AND NOT (quote_ident(n.nspname) || '.' || quote_ident(c.relname)) = "
                           "ANY(ARRAY['public.\"it''s\"', 'public.t_b']::text[])) q), ")
    assert sql.replace(counts, "") == FACTS_SQL.replace(FACTS_SQL[FACTS_SQL.index("'counts'"):FACTS_SQL.index("'sequences'")], "")


def test_facts_read_the_catalogs_digest_that_any_ddl_changes():
    """What a pass keeps to dump no schema next time (lab test: test_db_skip_lab.py, DDL on either side):
    every catalog of pg_catalog but the statistics and the large objects, with the roles and tablespaces
    of the shared ones; each catalog's row count and its rows' xmin."""
    assert "'catalogs', " + CATALOGS_SQL + ", 'hash64', " in FACTS_SQL
    for part in ("has_table_privilege('pg_catalog.pg_authid', 'SELECT')", "count(*)", "string_agg(xmin::text",
                 "c.relnamespace = 'pg_catalog'::regnamespace", "NOT c.relisshared OR c.relname IN ('pg_authid', "
                 "'pg_auth_members', 'pg_tablespace')", "NOT IN ('pg_statistic', 'pg_statistic_ext_data', 'pg_largeobject', "
                 "'pg_largeobject_metadata')"):
        assert part in CATALOGS_SQL, part


def test_facts_without_the_catalogs_digest_read_it_as_null_and_nothing_else_changes():
    """The check after a pass's commit compares no catalogs: its facts leave the digest out (it reads
    every catalog of the database)."""
    sql = facts_sql(catalogs=False)
    assert CATALOGS_SQL not in sql and "'catalogs', NULL, 'hash64', " in sql
    assert sql.replace("'catalogs', NULL", "") == FACTS_SQL.replace("'catalogs', " + CATALOGS_SQL, "")


def test_facts_read_every_large_object_as_a_dump_carries_it():
    """The row sync moves tables only: the facts of a pass hold what a dump carries of large objects
    (oid, owner, ACL, comment, content), to compare both sides (lab test: test_large_objects_lab.py)."""
    assert "'large_objects', " + LARGE_OBJECTS_SQL + ", " in FACTS_SQL
    for part in ("FROM pg_largeobject_metadata m", "pg_get_userbyid(m.lomowner)", "acldefault('L', m.lomowner)",
                 "obj_description(m.oid, 'pg_largeobject')", "ORDER BY m.oid",
                 # the content in parts of 1 MiB until a short one: lo_get of a whole object stops at 1 GB
                 "lo_get(m.oid, part.o + 1048576, 1048576) FROM part WHERE length(part.b) = 1048576"):
        assert part in LARGE_OBJECTS_SQL, part


def batch(*segments):
    return "".join("\\.bm-statement %d\n%s" % (i, s) for i, s in enumerate(segments))


def test_a_batch_marks_each_statement_and_its_output_splits_back():
    script = batch_script(["COPY (SELECT 1) TO STDOUT;", "COPY (SELECT 2) TO STDOUT"])
    assert script == ("\\echo '\\\\.bm-statement 0'\nCOPY (SELECT 1) TO STDOUT;\n"
                      "\\echo '\\\\.bm-statement 1'\nCOPY (SELECT 2) TO STDOUT;\n")
    # a data line that begins with a backslash is written doubled by COPY: it is data, not a marker
    segments = Segments(io.BytesIO(batch("a\t1\n\\\\.bm-statement 9\n", "", "z\n").encode()))
    assert list(segments()) == [b"a\t1\n", b"\\\\.bm-statement 9\n"]
    assert list(segments()) == []
    assert list(segments()) == [b"z\n"]
    with pytest.raises(ValueError, match="statement 3 of the batch gave no output marker"):
        list(segments())


def test_tables_are_dealt_in_groups_of_about_the_same_size_in_their_order():
    tables = [Table("public.t%d" % i, "a", "a") for i in range(6)]
    rows = {"public.t0": 1000, "public.t1": 10, "public.t2": 900, "public.t3": 0, "public.t4": 5, "public.t5": 100}
    groups = balanced_groups(tables, rows, 3)
    assert [[table.name for table in group] for group in groups] == [
        ["public.t0"], ["public.t2"], ["public.t1", "public.t3", "public.t4", "public.t5"]]
    assert balanced_groups(tables[:1], rows, 3) == [tables[:1]]
    # a table listed by its changed rows weighs a tenth of its rows: t0 now shares a group
    light = balanced_groups(tables, rows, 3, by_changes={"public.t0"})
    assert [[table.name for table in group] for group in light] == [["public.t2"], ["public.t0", "public.t1"], ["public.t3", "public.t4", "public.t5"]]
    assert balanced_groups([], rows, 3) == []


def sessions(outputs, rcs=None):
    """A popen that answers each session with the next output, and what each session was given."""
    started = []

    def popen(args, **kwargs):
        script = open(args[args.index("-f") + 1]).read() if args[-1] != "-" else None
        proc = FakeProc(outputs[len(started)], (rcs or {}).get(len(started), 0))
        started.append(dict(side=args[1], script=script, proc=proc))
        return proc
    return popen, started


def test_every_table_of_a_group_is_listed_by_one_session_per_side():
    popen, started = sessions([batch("k1\th1\nk2\th2\nk3\th3\n", "c1\t1\n"), batch("k1\th1\nk2\thX\nk3\th3\n", "")])
    rows = RowSync(FakeServer("origin", ""), FakeServer("target", ""), "bj-data", "00000003-1", popen=popen)
    plans = rows.plan_tables([Table("public.a", "k,v", "k"), Table("public.b", "x", "")])
    assert [s["side"] for s in started] == ["origin", "target"]
    assert "SET TRANSACTION SNAPSHOT '00000003-1';" in started[0]["script"]
    assert started[0]["script"].count("COPY (SELECT") == 2 and "SNAPSHOT" not in started[1]["script"]
    assert [(p["table"].name, p["fetch"], p["delete"], p["replace"]) for p in plans] == [
        ("public.a", ["k2"], ["k2"], False), ("public.b", None, None, True)]


def test_a_table_by_its_changes_lists_only_the_rows_written_since_on_each_side():
    popen, started = sessions([batch("3\n7\n", "k1\th1\n"), batch("7\n9\n", "k1\th1\n")])
    rows = RowSync(FakeServer("origin", ""), FakeServer("target", ""), "bj-data", "00000003-1", popen=popen)
    ids, other = Table("public.a", "id,v", "id", int_key=True), Table("public.b", "k,v", "k")
    plans = rows.plan_tables([ids, other], since=(100, 200), by_changes={"public.a"},
                             rows={"public.a": (40, 39), "public.b": (1, 1)})
    origin_script, target_script = started[0]["script"], started[1]["script"]
    assert ids.changed_keys_sql(100) in origin_script and ids.changed_keys_sql(200) in target_script
    assert "WHERE " + written_since(100) + " ORDER BY id" in ids.changed_keys_sql(100)
    assert other.listing_sql(100) in origin_script  # not proven undeleted: listed whole, as before
    a, b = plans
    # the rows written since on either side are replaced; the origin's count is checked at the apply
    assert (a["fetch"], a["delete"], a["replace"], a["expect"]) == ([3, 7, 9], [3, 7, 9], False, 40)
    assert a["counts"]["by_changes"] is True and "expect" not in b
    # without transaction ids there is no "since": every table is listed whole
    popen, started = sessions([batch("1\th\n"), batch("1\th\n")])
    rows = RowSync(FakeServer("origin", ""), FakeServer("target", ""), "bj-data", "s", popen=popen)
    plan = rows.plan_tables([ids], by_changes={"public.a"}, rows={"public.a": (1, 1)})[0]
    assert "expect" not in plan and "WHERE" not in started[0]["script"]


def test_a_table_by_its_changes_with_most_rows_written_is_copied_whole():
    popen, _started = sessions([batch("1\n2\n3\n"), batch("")])
    rows = RowSync(FakeServer("origin", ""), FakeServer("target", ""), "bj-data", "s", popen=popen)
    plan = rows.plan_tables([Table("public.a", "id", "id", int_key=True)], since=(1, 1), by_changes={"public.a"},
                            rows={"public.a": (4, 1)})[0]
    assert (plan["replace"], plan["fetch"], "expect" in plan) == (True, None, False)


def test_a_table_is_cut_into_buckets_the_same_way_on_both_sides():
    ids, other = Table("public.a", "id,v", "id", int_key=True), Table("public.b", "k,v", "k,v2")
    assert ids.bucket_sql(8) == "abs(id % 8)"
    assert other.bucket_sql(8) == "(('x' || substr(md5(ROW(k,v2)::text), 1, 7))::bit(28)::int % 8)"
    assert ids.bucket_counts_sql(8, before=100) == (
        "COPY (SELECT abs(id % 8), count(*) FROM public.a t WHERE NOT (" + written_since(100) + ") GROUP BY 1) TO STDOUT")
    assert "WHERE" not in ids.bucket_counts_sql(8)  # the target counts all its rows
    assert ids.listing_sql(100, within=(8, [1, 5])) == (
        "COPY (SELECT id, CASE WHEN " + written_since(100) + " THEN '1' ELSE '0' END FROM public.a t "
        "WHERE abs(id % 8) IN (SELECT unnest('{1,5}'::int[])) ORDER BY id) TO STDOUT")
    assert [bucket_count(rows) for rows in (0, 63, 64, 10000, 10 ** 9)] == [1, 1, 1, 156, 1 << 14]
    assert bucket_rows(["0\t3\n", "2\t1\n"]) == {0: 3, 2: 1}
    assert differing_buckets({0: 3, 2: 1, 4: 2}, {0: 3, 2: 2, 3: 1, 4: 2}) == [2, 3]


def test_a_key_of_integers_is_bucketed_by_its_columns_mixed_and_a_fine_table_by_eight_rows_a_bucket():
    """TABLE_COLUMNS_SQL gives the mix of a key made of integers (each column shifted 21 bits further,
    XORed): its bucket is that bigint's remainder, no hash of the key's text. A table of ``fine`` is cut
    into buckets of FINE_BUCKET_ROWS rows below buckets_from_rows (a change-set partition of 130 rows:
    16 buckets); the rest of the plan is that of any table by buckets."""
    for part in ("bool_and(a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype))",
                 "format('(%I::bigint << %s)', a.attname, (21 * (k.ord - 1)) % 63), ' # ' ORDER BY k.ord"):
        assert part in TABLE_COLUMNS_SQL, part
    mix = "(item_id::bigint << 0) # (version::bigint << 21) # (container_id::bigint << 42)"
    changeset = Table("public.cs_7", "version,container_id,item_id", "item_id,version,container_id", "f", mix)
    # by an odd number: a power of two would keep the first column's low bits alone
    assert changeset.bucket_sql(16) == "abs((%s) %% 15)" % mix and changeset.bucket_sql(15) == "abs((%s) %% 15)" % mix
    assert changeset.bucket_sql(1) == "abs((%s) %% 1)" % mix
    assert changeset.listing_sql(100, within=(16, [3])).count("WHERE abs((%s) %% 15) IN (SELECT unnest('{3}'::int[]))" % mix) == 1
    # a one-integer key stays its own bucket; no key: no mix (the content's hash)
    assert Table("public.a", "id", "id", "t", "(id::bigint << 0)").bucket_sql(8) == "abs(id % 8)"
    assert Table("public.n", "a,b", "", "f", "(a::bigint << 0)").bucket_sql(8).startswith("(('x' || substr(")
    assert FINE_BUCKET_ROWS == 8 and bucket_count(130, FINE_BUCKET_ROWS) == 16
    # item 9 (bucket 3) updated: the origin's older rows lack one there; 12 written since
    popen, started = sessions([batch("0\t8\n3\t7\n", "12\n"), batch("0\t8\n3\t8\n", ""),
                               batch("9\t1\n"), batch("9\t0\n")])
    rows = RowSync(FakeServer("origin", ""), FakeServer("target", ""), "bj-data", "s", popen=popen)
    plan = rows.plan_tables([changeset], since=(100, 200), by_buckets={"public.cs_7"}, rows={"public.cs_7": (130, 129)},
                            buckets_from_rows=8192, fine={"public.cs_7"})[0]
    assert changeset.bucket_counts_sql(16, before=100) in started[0]["script"]
    assert changeset.listing_sql(100, within=(16, [3])) in started[2]["script"]
    # the origin's count is its listing's (15 older rows by bucket, 1 written since), not the estimate given
    assert (plan["fetch"], plan["delete"], plan["expect"], plan["counts"]["buckets_listed"]) == (
        ["12", "9"], ["12", "9"], 16, 1)


def test_a_key_not_made_of_integers_alone_is_bucketed_by_its_types_hashes_when_both_servers_agree():
    """TABLE_COLUMNS_SQL gives a key of integer, text and uuid columns (text under a deterministic collation)
    as its columns' extended hash functions, seeded by position, XORed: its bucket is that bigint's remainder,
    no md5 of the key's text (lab test: test_rowsync_apply_lab.py, the same buckets on 13 and 15). A server
    whose functions do not give the probe's values (HASH64_PROBE false) makes tables_of leave it out."""
    for part in ("format('%s(%I, %s)'", "a.attname, k.ord - 1), ' # ' ORDER BY k.ord",
                 "co.collisdeterministic", "NOT bool_and(a.atttypid IN ('int2'::regtype"):
        assert part in TABLE_COLUMNS_SQL, part
    assert set(HASH64_FUNCTIONS) == {"smallint", "integer", "bigint", "text", "character varying", "uuid"}
    assert "'%s'" % HASH64_PROBE_VALUES in HASH64_PROBE and "current_setting('server_encoding') = 'UTF8'" in HASH64_PROBE
    assert "to_regproc('uuid_hash_extended') IS NOT NULL" in HASH64_PROBE
    assert "'hash64', " + HASH64_PROBE in FACTS_SQL
    hashed = "hashint4extended(version, 0) # hashtextextended(item_uid, 1)"
    row = ("public.log", "version,item_uid,type", "version,item_uid", "f", "", hashed)
    log, = tables_of([row])
    assert log.bucket_sql(16) == "abs((%s) %% 16)" % hashed and "md5" not in log.bucket_counts_sql(16, before=100)
    assert log.listing_sql(100, within=(16, [3])).count(
        "WHERE abs((%s) %% 16) IN (SELECT unnest('{3}'::int[]))" % hashed) == 1
    # the listing still names each row by its key's md5, which the merge and the apply find it by
    assert "SELECT md5(ROW(version,item_uid)::text)" in log.listing_sql(100, within=(16, [3]))
    unprobed, = tables_of([row], hash64=False)
    assert unprobed.bucket_sql(16).startswith("(('x' || substr(md5(ROW(version,item_uid)::text)")
    # integers keep their own ways
    assert Table("public.a", "id", "id", "t", "", "hashint4extended(id, 0)").bucket_sql(8) == "abs(id % 8)"


def test_a_table_without_a_key_is_bucketed_by_its_columns_hashes_and_lists_a_bucket_before_hashing_its_rows():
    """No key: TABLE_COLUMNS_SQL gives the hash of the columns of HASH64_FUNCTIONS' types (a NULL as 0, seeded
    by position), which its buckets are counted by instead of each row's md5 (4.9's t_mailbox_record at
    scale l: a second of the window); a bucket listed picks its rows by that hash first, then gives each
    content's md5 and count as before. Unprobed, or without such a column: the md5 of the row."""
    assert "CASE WHEN " + IDENTITY_INDEX + " IS NULL THEN (SELECT string_agg(format('COALESCE(%s(%I, %s), 0)'" \
        in TABLE_COLUMNS_SQL
    hashed = "COALESCE(hashtextextended(mailbox_uid, 0), 0) # COALESCE(hashint4extended(imap_uid, 1), 0)"
    row = ("public.t_mailbox_record", "mailbox_uid,imap_uid,internal_date", "", "f", "", hashed)
    records, = tables_of([row])
    assert records.bucket_sql(64) == "abs((%s) %% 64)" % hashed
    assert "md5" not in records.bucket_counts_sql(64, before=100)
    within = records.listing_sql(100, within=(64, [3, 9]))
    assert within == ("COPY (SELECT h, count(*), l FROM (SELECT md5(ROW(mailbox_uid,imap_uid,internal_date)::text) AS h, "
                      "(%s) AS l FROM public.t_mailbox_record t WHERE abs((%s) %% 64) IN (SELECT unnest('{3,9}'::int[]))) s "
                      "GROUP BY h, l ORDER BY h COLLATE \"C\") TO STDOUT" % (hashed, hashed))
    # the rows written since are still named by their contents' md5, their columns' hash as their locator
    assert "SELECT md5(ROW(mailbox_uid,imap_uid,internal_date)::text) AS h, (%s) AS l" % hashed in records.changed_keys_sql(100)
    # which finds their rows on either side: the hash first, the md5 of those rows alone
    found = "CASE WHEN (%s) IN (SELECT unnest('{-5,12}'::bigint[])) THEN md5(ROW(mailbox_uid,imap_uid,internal_date)::text) " \
            "IN (SELECT unnest('{aa,bb}'::text[])) ELSE false END" % hashed
    assert records.select_sql(["aa", "bb"], {"aa": "12", "bb": "-5"}) == (
        "COPY (SELECT mailbox_uid,imap_uid,internal_date FROM public.t_mailbox_record t WHERE %s) TO STDOUT" % found)
    assert records.delete_sql(["aa", "bb"], {"aa": "12", "bb": "-5"}) == "DELETE FROM public.t_mailbox_record t WHERE %s;" % found
    assert "IN (SELECT unnest('{aa,bb}'::text[]))" in records.select_sql(["aa", "bb"], {"aa": "12"})  # a locator missing
    assert "ELSE false" not in tables_of([row], hash64=False)[0].select_sql(["aa"], {"aa": "12"})
    for table in (tables_of([row], hash64=False)[0], Table("public.n", "a,b", "", "f", "", "")):
        assert table.bucket_sql(8).startswith("(('x' || substr(md5(ROW(")
        assert ") s WHERE (('x' || substr(h, 1, 7))::bit(28)::int % 8) IN (" in table.listing_sql(100, within=(8, [1]))


def test_a_table_by_buckets_lists_key_by_key_only_the_buckets_the_origin_lost_rows_from():
    """The origin deleted key 5 and updated key 7 (bucket 1), inserted key 8 (bucket 0): bucket 1 holds
    fewer of the origin's older rows than the target's rows, and only it is listed, in a second session
    per side; the plan replaces the keys written since, deletes the key gone, and expects the origin's count."""
    popen, started = sessions([batch("0\t300\n1\t298\n", "7\n8\n"), batch("0\t300\n1\t301\n", ""),
                               batch("1\t0\n3\t0\n7\t1\n"), batch("1\t0\n3\t0\n5\t0\n7\t0\n")])
    rows = RowSync(FakeServer("origin", ""), FakeServer("target", ""), "bj-data", "00000003-1", popen=popen)
    ids = Table("public.a", "id,v", "id", int_key=True)
    plan = rows.plan_tables([ids], since=(100, 200), by_buckets={"public.a"}, rows={"public.a": (150, 151)})[0]
    assert [s["side"] for s in started] == ["origin", "target", "origin", "target"]
    first_origin, first_target, second_origin, second_target = (s["script"] for s in started)
    assert ids.bucket_counts_sql(2, before=100) in first_origin and ids.changed_keys_sql(100) in first_origin
    assert ids.bucket_counts_sql(2) in first_target and ids.changed_keys_sql(200) in first_target
    assert ids.listing_sql(100, within=(2, [1])) in second_origin and "SNAPSHOT '00000003-1'" in second_origin
    assert ids.listing_sql(200, within=(2, [1])) in second_target
    # the origin's rows as its listing counted them in the snapshot: 598 older ones and 2 written since
    assert (plan["fetch"], plan["delete"], plan["replace"], plan["expect"]) == ([7, 8], [5, 7, 8], False, 600)
    assert plan["counts"]["by_buckets"] is True and plan["counts"]["buckets_listed"] == 1
    # every bucket counted alike: no second session, the keys written since alone are replaced
    popen, started = sessions([batch("0\t300\n1\t300\n", "8\n"), batch("0\t300\n1\t300\n", "")])
    rows = RowSync(FakeServer("origin", ""), FakeServer("target", ""), "bj-data", "s", popen=popen)
    plan = rows.plan_tables([ids], since=(100, 200), by_buckets={"public.a"}, rows={"public.a": (151, 150)})[0]
    assert len(started) == 2 and (plan["fetch"], plan["delete"], plan["expect"]) == ([8], [8], 601)
    # without transaction ids, nothing is planned by buckets
    popen, started = sessions([batch("1\th\n"), batch("1\th\n")])
    rows = RowSync(FakeServer("origin", ""), FakeServer("target", ""), "bj-data", "s", popen=popen)
    plan = rows.plan_tables([ids], by_buckets={"public.a"}, rows={"public.a": (1, 1)})[0]
    assert "expect" not in plan and "GROUP BY" not in started[0]["script"]


def test_a_small_table_by_buckets_is_one_bucket_counted_by_its_row_counts_and_listed_whole_when_they_differ():
    """Below buckets_from_rows, a table by buckets is one bucket and no statement counts it: the origin's
    older rows are its rows but the ones written since. a: the origin updated 7, inserted 8 and deleted
    5 (2 older rows of 4, the target holds 4): listed whole by flags in the second session. b: nothing
    written, as many rows: no listing. c: key 8 inserted, as many older rows as the target's: only 8 moves."""
    popen, started = sessions([batch("7\n8\n", "", "8\n"), batch("", "", ""),
                               batch("1\t0\n3\t0\n7\t1\n8\t1\n"), batch("1\t0\n3\t0\n5\t0\n7\t0\n")])
    rows = RowSync(FakeServer("origin", ""), FakeServer("target", ""), "bj-data", "00000003-1", popen=popen)
    a, b, c = (Table("public.%s" % name, "id,v", "id", int_key=True) for name in "abc")
    plans = rows.plan_tables([a, b, c], since=(100, 200), by_buckets={"public.a", "public.b", "public.c"},
                             rows={"public.a": (40, 40), "public.b": (50, 50), "public.c": (51, 50)}, buckets_from_rows=8192)
    first_origin, first_target, second_origin, second_target = (s["script"] for s in started)
    assert "GROUP BY" not in first_origin + first_target and first_origin.count("COPY") == 3
    assert a.changed_keys_sql(100) in first_origin and a.changed_keys_sql(200) in first_target
    assert second_origin.count("COPY") == 1 and a.listing_sql(100) in second_origin and a.listing_sql(200) in second_target
    assert [(p["fetch"], p["delete"], p["replace"], p["expect"], p["counts"]["buckets_listed"]) for p in plans] == [
        ([7, 8], [5, 7, 8], False, 40, 1), ([], [], False, 50, 0), ([8], [8], False, 51, 0)]
    # c has 130 rows, at least buckets_from_rows: cut into 2 buckets, counted by a statement on each side;
    # b is not; every table counted alike: one session per side
    popen, started = sessions([batch("", "0\t64\n1\t65\n", "8\n"), batch("", "0\t64\n1\t65\n", "")])
    rows = RowSync(FakeServer("origin", ""), FakeServer("target", ""), "bj-data", "s", popen=popen)
    plans = rows.plan_tables([b, c], since=(100, 200), by_buckets={"public.b", "public.c"},
                             rows={"public.b": (50, 50), "public.c": (130, 129)}, buckets_from_rows=100)
    assert len(started) == 2 and [(p["fetch"], p["expect"]) for p in plans] == [([], 50), ([8], 130)]
    assert started[0]["script"].count("GROUP BY") == 1 and c.bucket_counts_sql(2, before=100) in started[0]["script"]


def test_a_table_without_a_key_by_buckets_lists_only_the_buckets_a_content_left():
    """BlueMind 4.9's t_mailbox_record has no key: its "keys" are its rows' content hashes, cut into
    finer buckets. The origin updated a row of content A (two such rows; bucket 1 holds one fewer of
    the origin's older rows) into B, and wrote C twice: only bucket 1 is listed, by content and count;
    A, B and C are replaced (all their rows deleted on the target, then all of the origin's copied)."""
    table = Table("public.r", "a,b", "")
    popen, started = sessions([batch("0\t4\n1\t3\n", "bbbb\t1\ncccc\t2\n"), batch("0\t4\n1\t4\n", ""),
                               batch("aaaa\t1\nabcd\t2\n"), batch("aaaa\t2\nabcd\t2\n")])
    rows = RowSync(FakeServer("origin", ""), FakeServer("target", ""), "bj-data", "s", popen=popen)
    plan = rows.plan_tables([table], since=(100, 200), by_buckets={"public.r"}, rows={"public.r": (130, 129)},
                            buckets_from_rows=100)[0]
    first_origin, first_target, second_origin, second_target = (s["script"] for s in started)
    assert bucket_count(130, table.bucket_rows()) == 32 and table.bucket_counts_sql(32, before=100) in first_origin
    assert table.changed_keys_sql(100) in first_origin and table.changed_keys_sql(200) in first_target
    assert "WHERE " + written_since(100) + ") s GROUP BY h" in table.changed_keys_sql(100)
    listing = table.listing_sql(100, within=(32, [1]))
    assert listing in second_origin and listing.startswith("COPY (SELECT h, count(*) FROM (SELECT md5(ROW(a,b)::text)")
    assert "WHERE (('x' || substr(h, 1, 7))::bit(28)::int % 32) IN (SELECT unnest('{1}'::int[]))" in listing
    assert (plan["fetch"], plan["delete"], plan["replace"], plan["expect"]) == (
        ["aaaa", "bbbb", "cccc"], ["aaaa", "bbbb", "cccc"], False, 10)  # 7 older rows, 3 written since
    assert plan["counts"]["buckets_listed"] == 1
    # below buckets_from_rows, one bucket: the origin's older rows are its rows but those written since
    # (a content's count each); as many as the target's: nothing listed, the contents written replaced
    popen, started = sessions([batch("bbbb\t2\n"), batch("")])
    rows = RowSync(FakeServer("origin", ""), FakeServer("target", ""), "bj-data", "s", popen=popen)
    plan = rows.plan_tables([table], since=(100, 200), by_buckets={"public.r"}, rows={"public.r": (12, 10)},
                            buckets_from_rows=100)[0]
    assert len(started) == 2 and (plan["fetch"], plan["delete"], plan["expect"]) == (["bbbb"], ["bbbb"], 12)
    # fewer: a content gone (10 - 2 older rows, 10 on the target): listed whole, by content
    popen, started = sessions([batch("bbbb\t2\n"), batch(""), batch("aaaa\t8\nbbbb\t2\n"), batch("aaaa\t9\ndddd\t1\n")])
    rows = RowSync(FakeServer("origin", ""), FakeServer("target", ""), "bj-data", "s", popen=popen)
    plan = rows.plan_tables([table], since=(100, 200), by_buckets={"public.r"}, rows={"public.r": (10, 10)},
                            buckets_from_rows=100)[0]
    assert table.listing_sql(100) in started[2]["script"] and "WHERE" not in table.listing_sql(100)
    assert (plan["fetch"], plan["delete"], plan["expect"]) == (["aaaa", "bbbb"], ["aaaa", "bbbb", "dddd"], 10)


def test_a_bucket_listing_out_of_order_fails_the_plan_naming_the_buckets():
    popen, _started = sessions([batch("0\t2\n", ""), batch("0\t3\n", ""), batch("3\t0\n1\t0\n"), batch("1\t0\n")])
    rows = RowSync(FakeServer("origin", ""), FakeServer("target", ""), "bj-data", "s", popen=popen)
    with pytest.raises(RowSyncError, match="listing 1 bucket.s. of 1 table.s. from public.a of bj-data: "
                                           "the origin's listing is not sorted"):
        rows.plan_tables([Table("public.a", "id", "id", int_key=True)], since=(1, 1), by_buckets={"public.a"},
                         rows={"public.a": (2, 3)})


def test_changed_keys_are_both_sides_sorted_once_and_refused_out_of_order():
    assert changed_keys(["b\n", "d\n"], ["a\n", "b\n"]) == ["a", "b", "d"]
    assert changed_keys(["2\n", "10\n"], [], numeric=True) == [2, 10]
    with pytest.raises(ValueError, match="the target's listing is not sorted"):
        changed_keys([], ["b\n", "a\n"])


def test_apply_counts_the_tables_planned_by_their_changes_before_it_commits():
    popen, started = sessions(["", batch("3\tx\n")])
    rows = RowSync(FakeServer("origin", ""), FakeServer("target", ""), "bj-data", "s", popen=popen)
    a, b = Table("public.a", "id,v", "id", int_key=True), Table("public.b", "id", "id", int_key=True)
    plans = [dict(table=a, fetch=[3], delete=[3], replace=False, expect=40),
             dict(table=Table("public.c", "k", "k"), fetch=[], delete=[], replace=False),
             dict(table=b, fetch=[], delete=[], replace=False, expect=7)]  # nothing written: still counted
    rows.apply(plans, [])
    script = started[0]["proc"].stdin.getvalue().decode()
    check = script[script.index("DO $bm$"):script.index("COMMIT;")]
    assert "(0, (SELECT count(*) FROM public.a), 40::bigint), (2, (SELECT count(*) FROM public.b), 7::bigint)" in check
    assert "RAISE EXCEPTION 'bm-rowsync-recount %'" in check and script.index("COPY public.a") < script.index("DO $bm$")


def test_apply_counts_a_table_whose_rows_before_are_known_without_scanning_it():
    """The target's rows before (read while it does not change), less those its delete took (kept in a
    setting of the transaction), plus the lines copied: the table is not scanned at the commit."""
    popen, started = sessions(["", batch("3\tx\n4\ty\n")])
    rows = RowSync(FakeServer("origin", ""), FakeServer("target", ""), "bj-data", "s", popen=popen)
    a, b = Table("public.a", "id,v", "id", int_key=True), Table("public.b", "id", "id", int_key=True)
    plans = [dict(table=Table("public.c", "k", "k"), fetch=[], delete=[], replace=False),
             dict(table=a, fetch=[3, 4], delete=[3, 4, 5], replace=False, expect=40, counts=dict(target=41)),
             dict(table=b, fetch=[], delete=[], replace=False, expect=7, counts=dict(target=7))]
    rows.apply(plans, [])
    script = started[0]["proc"].stdin.getvalue().decode()
    assert ("WITH d AS (DELETE FROM public.a WHERE id IN (SELECT unnest('{3,4,5}'::bigint[])) RETURNING 1) "
            "SELECT set_config('bm.deleted_1', count(*)::text, true) FROM d;\nCOPY public.a (id,v) FROM STDIN;\n") in script
    check = script[script.index("DO $bm$"):script.index("COMMIT;")]
    assert ("(1, 41 - COALESCE(current_setting('bm.deleted_1', true), '0')::bigint + 2, 40::bigint), "
            "(2, 7 - COALESCE(current_setting('bm.deleted_2', true), '0')::bigint + 0, 7::bigint)") in check
    assert "count(*) FROM public" not in check


def test_a_count_that_differs_fails_the_apply_naming_the_plans():
    popen, started = sessions([""], rcs={0: 3})
    real_start = RowSync._start

    def start(self, server, script, snapshot=None, stdin=False, stdout=True):
        proc, err = real_start(self, server, script, snapshot, stdin, stdout)
        err.write(b"psql:<stdin>:9: ERROR:  bm-rowsync-recount 0,2\nCONTEXT:  PL/pgSQL function inline_code_block\n")
        return proc, err
    rows = RowSync(FakeServer("origin", ""), FakeServer("target", ""), "bj-data", "s", popen=popen)
    plans = [dict(table=Table("public.a", "id", "id", int_key=True), fetch=[], delete=[], replace=False, expect=4)]
    with mock.patch.object(RowSync, "_start", start), pytest.raises(Recount) as failed:
        rows.apply(plans, [])
    assert failed.value.numbers == [0, 2] and "nothing was changed there" in str(failed.value)
    assert recounted("ERROR:  something else") is None and recounted("ERROR:  bm-rowsync-recount 5\n") == [5]


def test_a_session_that_fails_midway_names_its_error():
    popen, _started = sessions([batch("k1\th1\n"), batch("k1\th1\n", "")], rcs={0: 3})
    errors = []
    real_start = RowSync._start

    def start(self, server, script, snapshot=None, stdin=False, stdout=True):
        proc, err = real_start(self, server, script, snapshot, stdin, stdout)
        if server.side == "origin":
            err.write(b'ERROR:  relation "public.b" does not exist\n')
        errors.append(err)
        return proc, err
    rows = RowSync(FakeServer("origin", ""), FakeServer("target", ""), "bj-data", "s", popen=popen)
    with mock.patch.object(RowSync, "_start", start), \
            pytest.raises(RowSyncError, match='on the origin: ERROR:  relation "public.b" does not exist'):
        rows.plan_tables([Table("public.a", "k,v", "k"), Table("public.b", "x", "")])


def test_the_rows_to_fill_come_from_one_origin_session_into_one_transaction():
    popen, started = sessions(["", batch("1\tx\n2\ty\n", "\\\\.\tz\n")])
    rows = RowSync(FakeServer("origin", ""), FakeServer("target", ""), "bj-data", "s", popen=popen)
    a, b, c = Table("public.a", "k,v", "k"), Table("public.b", "k,v", "k"), Table("public.c", "k", "k")
    unchanged = Table("public.d", "k", "k")
    plans = [dict(table=a, fetch=None, delete=None, replace=True),
             dict(table=b, fetch=["h2"], delete=["h2", "h3"], replace=False),
             dict(table=c, fetch=[], delete=["h9"], replace=False),
             dict(table=unchanged, fetch=[], delete=[], replace=False)]
    moved = rows.apply(plans, [("public.seq", 15, "t")])
    assert [s["side"] for s in started] == ["target", "origin"]
    assert started[1]["script"].count("COPY (SELECT") == 2  # a and b: c only loses a row, d is unchanged
    assert started[0]["proc"].stdin.getvalue().decode() == (
        "BEGIN;\nSET LOCAL session_replication_role = replica;\n"
        "DELETE FROM public.a;\nCOPY public.a (k,v) FROM STDIN;\n1\tx\n2\ty\n\\.\n"
        "DELETE FROM public.b WHERE md5(ROW(k)::text) IN (SELECT unnest('{h2,h3}'::text[]));\n"
        "COPY public.b (k,v) FROM STDIN;\n\\\\.\tz\n\\.\n"
        "DELETE FROM public.c WHERE md5(ROW(k)::text) IN (SELECT unnest('{h9}'::text[]));\n"
        "SELECT pg_catalog.setval('public.seq', 15, true);\nCOMMIT;\n")
    assert moved == len("1\tx\n2\ty\n\\\\.\tz\n")


def test_apply_when_the_target_stops_says_so_and_stops_reading_the_origin(tmp_path):
    """The target's psql dies in the middle of the COPY (its server killed): the error names the side and
    keeps psql's words (the module tells a lost server from other errors by them), and the origin's
    reader, still sending rows, is stopped."""
    from ansible_collections.bluemind.migration.plugins.module_utils.pgsync import RowSyncError
    rows_file = tmp_path / "rows"
    rows_file.write_bytes(b"\\.bm-statement 0\n" + b"1\tx\n" * 100000)
    procs = {}

    class Target(object):
        def __init__(self, stderr):
            stderr.write(b"psql:<stdin>:3: FATAL:  terminating connection due to administrator command\n"
                         b"psql:<stdin>:3: error: connection to server was lost\n")
            self.stdin, self.stdout, self.written = self, None, 0

        def write(self, data):
            self.written += len(data)
            if self.written > 200000:
                raise BrokenPipeError(32, "Broken pipe")

        def wait(self, timeout=None):
            return 2

    class Origin(object):
        def __init__(self):
            self.stdin, self.stdout, self.killed = io.BytesIO(), open(str(rows_file), "rb"), False

        def kill(self):
            self.killed = True

        def poll(self):
            return -9 if self.killed else None

        def wait(self, timeout=None):
            return -9

    def popen(args, **kwargs):
        procs[args[1]] = Target(kwargs["stderr"]) if args[1] == "target" else Origin()
        return procs[args[1]]

    rows = RowSync(FakeServer("origin", ""), FakeServer("target", ""), "bj-data", "00000003-1", popen=popen)
    plan = dict(table=Table("public.t", "a,b", "a"), fetch=["k1"], delete=["k1"], replace=False)
    with pytest.raises(RowSyncError) as err:
        rows.apply([plan], [])
    assert (err.value.side, "connection to server was lost" in err.value.messages) == ("target", True)
    assert str(err.value).startswith("applying the changes to bj-data on the target failed (psql exit 2), nothing "
                                     "was changed there: psql:<stdin>:3: FATAL:")
    assert procs["origin"].killed and procs["origin"].stdout.closed


class OptionsServer(FakeServer):
    """A server whose sessions read with a setting of their own (as the origin's with UNCOUNTED_READS)."""

    def tool_env(self, own_options=True, options=""):
        return dict(PGOPTIONS=" ".join(o for o in ("-c track_counts=off" if own_options else "", options) if o))


def snapshot_sessions(*outputs):
    started = []

    def popen(args, **kwargs):
        proc = FakeProc(outputs[len(started)], rc=0 if outputs[len(started)] else 2)
        started.append(dict(proc=proc, env=kwargs["env"]))
        return proc
    return popen, started


def test_the_snapshots_session_runs_the_mark_first_with_the_servers_own_settings():
    """The mark is read in a transaction of its own before the repeatable-read one that exports the
    snapshot, in the same session (one connection through the tunnel); that session keeps the server's
    settings (the mark's epoch holds track_counts)."""
    popen, started = snapshot_sessions('{"tables": {}}\n00000003-1\n')
    with Snapshot(OptionsServer("origin", ""), "bj-data", popen=popen, before="SELECT mark;") as snapshot:
        assert (snapshot.before_result, snapshot.id) == ('{"tables": {}}', "00000003-1")
    script = started[0]["proc"].stdin.getvalue().decode()
    assert script.index("SELECT mark;") < script.index("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;")
    assert script.endswith("SELECT pg_export_snapshot();\n") and started[0]["env"]["PGOPTIONS"] == ""
    # without a mark: the server's session settings, one line read
    popen, started = snapshot_sessions("00000004-1\n")
    with Snapshot(OptionsServer("origin", ""), "bj-data", popen=popen) as snapshot:
        assert (snapshot.before_result, snapshot.id) == (None, "00000004-1")
    assert started[0]["env"]["PGOPTIONS"] == "-c track_counts=off"


def test_a_mark_that_fails_leaves_the_snapshot_to_a_session_of_its_own():
    popen, started = snapshot_sessions("", "00000005-1\n")  # the first session ended at once (its mark failed)
    with Snapshot(OptionsServer("origin", ""), "bj-data", popen=popen, before="SELECT mark;") as snapshot:
        assert (snapshot.before_result, snapshot.id) == (None, "00000005-1")
    assert len(started) == 2 and "SELECT mark" not in started[1]["proc"].stdin.getvalue().decode()
    popen, started = snapshot_sessions("", "")
    with pytest.raises(OSError, match="exporting a snapshot of bj-data on the origin failed"):
        Snapshot(OptionsServer("origin", ""), "bj-data", popen=popen, before="SELECT mark;").__enter__()


def test_the_target_s_first_listing_is_read_before_the_gate_and_not_run_again_in_the_window():
    """Before the gate the target's side of the first listing is read: the keys written since its last
    pass and its rows counted by bucket, by the number the pass chooses from the target's rows (finely
    too for a key of integers); a small table is not. In the window the pass takes those outputs and
    starts no target session for a batch they cover; the plan is the one it makes from live outputs."""
    ids = Table("public.a", "id,v", "id", int_key=True)
    mix = "(item_id::bigint << 0) # (version::bigint << 21)"
    changeset = Table("public.cs_7", "item_id,version", "item_id,version", "f", mix)
    small = Table("public.s", "id", "id", int_key=True)
    empty = Table("public.e", "id", "id", int_key=True)
    statements = ahead_statements([ids, changeset, small, empty],
                                  {"public.a": 2000, "public.cs_7": 1500, "public.s": 50, "public.e": 0}, 200, 1000)
    assert statements == [ids.changed_keys_sql(200), ids.bucket_counts_sql(31),
                          changeset.changed_keys_sql(200), changeset.bucket_counts_sql(23), changeset.bucket_counts_sql(187),
                          small.changed_keys_sql(200)]
    # below buckets_from_rows, a table is one bucket (no statement), but finely cut when its key is of integers
    assert ahead_statements([ids, changeset], {"public.a": 2000, "public.cs_7": 1500}, 200, 8192) == [
        ids.changed_keys_sql(200), changeset.changed_keys_sql(200), changeset.bucket_counts_sql(187)]
    # read in two sessions: what each gave, by statement
    outputs = {ids.changed_keys_sql(200): "", ids.bucket_counts_sql(31): "0\t1000\n1\t1000\n",
               changeset.changed_keys_sql(200): "", changeset.bucket_counts_sql(23): "0\t1500\n",
               changeset.bucket_counts_sql(187): "0\t1500\n", small.changed_keys_sql(200): ""}
    started = []

    def popen(args, **kwargs):  # each session answers its own statements, whichever thread starts first
        script = open(args[args.index("-f") + 1]).read()
        started.append(dict(side=args[1], script=script))
        asked = [line.rstrip(";") for line in script.splitlines() if not line.startswith("\\echo")]
        return FakeProc(batch(*[outputs[sql] for sql in asked]))

    read = ReadAhead(RowSync(FakeServer("origin", ""), FakeServer("target", ""), "bj-data", None, popen=popen),
                     statements, 2).stop()
    assert [s["side"] for s in started] == ["target", "target"] and sorted(read) == sorted(statements)
    assert all(b"".join(read[s]).decode() == outputs[s] for s in statements)
    assert all("SNAPSHOT" not in s["script"] for s in started)
    # the window: the origin inserted key 7 (bucket 1); the target's side comes from what was read
    popen, started = sessions([batch("0\t1000\n1\t1000\n", "7\n")])
    rows = RowSync(FakeServer("origin", ""), FakeServer("target", ""), "bj-data", "s", popen=popen, ahead=read)
    plan = rows.plan_tables([ids], since=(100, 200), by_buckets={"public.a"}, rows={"public.a": (2001, 2000)},
                            buckets_from_rows=1000)[0]
    assert [s["side"] for s in started] == ["origin"] and rows.ahead_used == 2
    assert ids.bucket_counts_sql(31, before=100) in started[0]["script"]
    assert (plan["fetch"], plan["delete"], plan["expect"]) == ([7], [7], 2001)
    # a statement not read ahead (another number of buckets, a table listed whole) runs in a target
    # session of its own, its output in its place among those read
    popen, started = sessions([batch("0\t1000\n1\t1000\n", "7\n", "1\t0\n2\t0\n"), batch("1\t0\n2\t0\n")])
    rows = RowSync(FakeServer("origin", ""), FakeServer("target", ""), "bj-data", "s", popen=popen, ahead=read)
    other = Table("public.o", "k,v", "k")
    plans = rows.plan_tables([ids, other], since=(100, 200), by_buckets={"public.a"},
                             rows={"public.a": (2001, 2000), "public.o": (2, 2)}, buckets_from_rows=1000)
    assert [s["side"] for s in started] == ["origin", "target"] and rows.ahead_used == 2
    assert started[1]["script"].count("COPY") == 1 and other.listing_sql(200) in started[1]["script"]
    assert [(p["fetch"], p["delete"]) for p in plans] == [([7], [7]), ([], [])]


def test_a_read_ahead_stopped_at_the_gate_keeps_only_the_statements_whose_output_was_whole():
    """Stopped before its session ended (psql killed: its output cut), a read ahead keeps the statements
    that the next marker closed; the last one only when psql ended well. A session that fails loses
    only what it did not read."""
    a, b = Table("public.a", "id", "id", int_key=True), Table("public.b", "id", "id", int_key=True)
    statements = [a.changed_keys_sql(5), b.changed_keys_sql(5)]
    popen, _started = sessions([batch("1\n", "2\n")], rcs={0: -9})
    read = ReadAhead(RowSync(FakeServer("origin", ""), FakeServer("target", ""), "d", None, popen=popen), statements, 1).stop()
    assert read == {a.changed_keys_sql(5): [b"1\n"]}
    popen, _started = sessions([batch("1\n", "2\n")])
    read = ReadAhead(RowSync(FakeServer("origin", ""), FakeServer("target", ""), "d", None, popen=popen), statements, 1).stop()
    assert read == {a.changed_keys_sql(5): [b"1\n"], b.changed_keys_sql(5): [b"2\n"]}
    popen, _started = sessions(["no marker\n"], rcs={0: 2})
    assert ReadAhead(RowSync(FakeServer("origin", ""), FakeServer("target", ""), "d", None, popen=popen),
                     statements, 1).stop() == {}


def test_the_tables_counted_apart_are_those_named_alone_in_one_query():
    """table_counts_sql counts exactly the named tables that exist (USER_TABLES filtered by name), as the facts
    count every table; no name: no table."""
    sql = table_counts_sql({"public.t_b", "public.t_a"})
    assert sql.startswith("SELECT (SELECT COALESCE(json_object_agg(t, n), '{}')")
    assert "= ANY(ARRAY['public.t_a', 'public.t_b']::text[])" in sql and "count(*) AS n FROM %I.%I" in sql
    assert "= ANY(ARRAY[NULL]::text[])" in table_counts_sql(())
    assert "count(*) AS n FROM %I.%I" in FACTS_SQL
