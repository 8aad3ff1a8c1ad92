import pytest

from ansible_collections.bluemind.migration.plugins.module_utils.pgsync import (
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


def test_table_without_key_is_listed_whole():
    table = Table("public.t_log", "a,b", "")
    assert table.listing_sql().startswith("COPY (SELECT count(*), md5(COALESCE(string_agg(h, ''")
    assert "COALESCE(max(h), '0')" in table.listing_sql(since=10)


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
