import sys

import pytest

from ansible_collections.bluemind.migration.plugins.module_utils import pg


@pytest.mark.parametrize("setting, sql", [
    ("TimeZone=GMT", """ALTER DATABASE "bj-data" SET "TimeZone" TO 'GMT';"""),
    ("search_path=\"$user\", public", """ALTER DATABASE "bj-data" SET "search_path" TO '$user', 'public';"""),
    ("application_name=it's", """ALTER DATABASE "bj-data" SET "application_name" TO 'it''s';"""),
])
def test_alter_database_set(setting, sql):
    assert pg.alter_database_set("bj-data", setting) == sql


def test_split_list_setting_keeps_quoted_commas():
    assert pg.split_list_setting('"a,b", c ,d') == ["a,b", "c", "d"]


def test_count_rows_sql():
    assert pg.count_rows_sql(['public."t_x"', "public.t_y"]) == (
        """SELECT 'public."t_x"', count(*) FROM public."t_x" UNION ALL SELECT 'public.t_y', count(*) FROM public.t_y""")


def test_query_passes_the_password_in_the_environment_only():
    calls = []

    def run(args, **kwargs):
        calls.append((args, kwargs))
        return 0, "public.t_a\x1f12\x00public.t_b\x1f0\x00", ""

    server = pg.PgServer("origin", "/usr/lib/postgresql/15/bin", "127.0.0.1", 15432, "bj", password="pw-XYZ")
    assert server.query(run, "bj", "SELECT 1", "testing") == [("public.t_a", "12"), ("public.t_b", "0")]
    args, kwargs = calls[0]
    assert args[0] == "/usr/lib/postgresql/15/bin/psql"
    assert "pw-XYZ" not in " ".join(args)
    assert kwargs["environ_update"]["PGPASSWORD"] == "pw-XYZ"
    assert {"-w", "ON_ERROR_STOP=1"} <= set(args)


def test_query_failure_names_server_database_and_error():
    server = pg.PgServer("target", "/b", "127.0.0.1", 5432, "bj", pgpass_file="/root/.pgpass")
    assert server.env["PGPASSFILE"] == "/root/.pgpass" and "PGPASSWORD" not in server.env
    with pytest.raises(pg.PgError) as err:
        server.query(lambda args, **kw: (2, "", "FATAL:  password authentication failed\n"), "bj", "SELECT 1", "reading")
    assert str(err.value) == ("reading on the target server (127.0.0.1:5432, database bj) failed (psql exit 2): "
                              "FATAL:  password authentication failed")


def py(code):
    return [sys.executable, "-c", code]


def test_stream_pipeline_counts_bytes_and_passes_environments(tmp_path):
    out = tmp_path / "out"
    total, prc, crc, _perr, _cerr = pg.stream_pipeline(
        py("import os, sys; sys.stdout.write(os.environ['SIDE'] * 3000000)"), {"SIDE": "ab"},
        py("import os, sys; open(%r, 'w').write(sys.stdin.read() + os.environ['SIDE'])" % str(out)), {"SIDE": "!"})
    assert (total, prc, crc) == (6000000, 0, 0)
    assert out.read_text().endswith("ab!") and len(out.read_text()) == 6000001


def test_stream_pipeline_reports_a_failing_producer():
    total, prc, crc, perr, _cerr = pg.stream_pipeline(
        py("import sys; sys.stdout.write('partial'); sys.stderr.write('pg_dump: error: connection lost'); sys.exit(1)"),
        {}, py("import sys; sys.stdin.read()"), {})
    assert (total, prc, crc) == (7, 1, 0) and perr == "pg_dump: error: connection lost"


def test_stream_pipeline_stops_the_producer_when_the_consumer_dies():
    total, prc, crc, _perr, cerr = pg.stream_pipeline(
        py("import sys\nwhile True: sys.stdout.write('x' * 65536)"), {},
        py("import sys; sys.stdin.read(10); sys.stderr.write('ERROR:  syntax error at line 1'); sys.exit(3)"), {})
    assert crc == 3 and prc != 0 and cerr == "ERROR:  syntax error at line 1"
    assert total > 0
