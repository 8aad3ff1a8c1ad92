import pytest

import io

from ansible_collections.bluemind.migration.plugins.module_utils.pgsync import (
    RowSync,
    Table,
    merge_listings,
    normalize_schema,
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
    assert ">= 4294967396 THEN '1' ELSE '0' END" in flags and "t.xmin::text::bigint" in flags
    assert table.select_sql(["ab", "cd"]) == (
        "COPY (SELECT mailbox_uid,imap_uid,flags FROM public.t_mailbox_record WHERE "
        "md5(ROW(mailbox_uid,imap_uid)::text) IN (SELECT unnest('{ab,cd}'::text[]))) TO STDOUT")
    assert table.select_sql() == "COPY (SELECT mailbox_uid,imap_uid,flags FROM public.t_mailbox_record) TO STDOUT"
    assert table.delete_sql(["ab"]) == (
        "DELETE FROM public.t_mailbox_record WHERE md5(ROW(mailbox_uid,imap_uid)::text) IN "
        "(SELECT unnest('{ab}'::text[]));")
    assert table.delete_sql() == "DELETE FROM public.t_mailbox_record;"


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

    def __init__(self, side, listing):
        self.side = side
        self.listing = listing

    def psql_args(self, database):
        return ["psql", self.side, database]


class FakeProc(object):
    def __init__(self, output):
        self.stdin = io.BytesIO()
        self.stdout = io.BytesIO(output.encode())

    def wait(self, timeout=None):
        return 0

    def poll(self):
        return 0

    def kill(self):
        pass


def plan(origin_listing, target_listing, key="", since=None):
    servers = dict(origin=FakeServer("origin", origin_listing), target=FakeServer("target", target_listing))

    def popen(args, **kwargs):
        return FakeProc(servers[args[1]].listing)

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


def test_apply_when_the_target_stops_says_so_and_stops_reading_the_origin(tmp_path):
    """The target's psql dies in the middle of the COPY (its server killed): the error names the side and
    keeps psql's words (the module tells a lost server from other errors by them), and the origin's
    reader, still sending rows, is stopped."""
    from ansible_collections.bluemind.migration.plugins.module_utils.pgsync import RowSyncError
    rows_file = tmp_path / "rows"
    rows_file.write_bytes(b"1\tx\n" * 100000)
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
