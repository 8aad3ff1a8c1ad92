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


def test_extension_and_locale_sql():
    assert pg.create_extension_sql("uuid-ossp", "public") == 'CREATE EXTENSION IF NOT EXISTS "uuid-ossp" WITH SCHEMA "public";'
    probe = pg.locale_probe_sql("en_US.UTF-8")
    assert probe.startswith("BEGIN;\n") and probe.endswith("ROLLBACK;\n")  # leaves nothing behind
    assert "(LC_COLLATE = 'en_US.UTF-8', LC_CTYPE = 'en_US.UTF-8')" in probe


@pytest.mark.parametrize("version, major", [
    ("15.8 (Debian 15.8-0+deb12u1)", "15"), ("13.16", "13"), ("9.6.24", "9.6"), ("", "")])
def test_server_major(version, major):
    assert pg.server_major(version) == major


def test_install_hints_and_locale_gen_names():
    assert pg.extension_install_hint("unaccent", "15") == (
        "unaccent comes with PostgreSQL's contrib modules (Debian: postgresql-15 or postgresql-contrib)")
    assert pg.extension_install_hint("pg_repack", "16").endswith("(Debian: postgresql-16-repack)")
    assert pg.locale_gen_name("en_US.utf8") == pg.locale_gen_name("en_US.UTF8") == "en_US.UTF-8 UTF-8"
    assert pg.locale_gen_name("de_DE@euro") == "de_DE@euro"


def test_missing_requirements_names_what_to_install():
    scripts = []

    def run(args, **kwargs):
        if "-c" in args:
            sql = args[args.index("-c") + 1]
            if "pg_available_extensions" in sql:
                return 0, "hstore\0plpgsql\0", ""
            assert sql == "SHOW server_version"
            return 0, "15.8 (Debian 15.8-0+deb12u1)\0", ""
        scripts.append(kwargs["data"])
        if "fr_FR" in kwargs["data"]:
            return 1, "", 'ERROR:  could not create locale "fr_FR.utf8"'
        return 0, "", ""

    server = pg.PgServer("target", "/usr/bin", "127.0.0.1", 5432, "bj", password="pw")
    problems = pg.missing_requirements(server, run, "postgres", ["hstore", "ltree", "hstore"],
                                       ["en_US.UTF-8", "fr_FR.utf8", "en_US.UTF-8"])
    assert problems == [
        "PostgreSQL extension(s) ltree used on the origin are not available on the target server: ltree comes "
        "with PostgreSQL's contrib modules (Debian: postgresql-15 or postgresql-contrib), then run the task again",
        "the target server cannot use the locale fr_FR.utf8 that the origin's databases use (LC_COLLATE / "
        "LC_CTYPE): generate it (Debian: enable 'fr_FR.UTF-8 UTF-8' in /etc/locale.gen, run locale-gen), then "
        "restart PostgreSQL"]
    assert len(scripts) == 2  # each locale probed once
    assert pg.missing_requirements(server, run, "postgres", ["hstore"], ["en_US.UTF-8"]) == []


@pytest.mark.parametrize("messages, kind", [
    ('ERROR:  could not extend file "base/16384/16390": No space left on device\nHINT:  Check free disk space.',
     "space"),
    ("ERROR:  checkpoint request failed\nHINT:  Consult recent messages in the server log for details.", "space"),
    ('ERROR:  could not extend file "base/237973/237983": wrote only 4096 of 8192 bytes at block 805\n'
     "HINT:  Check free disk space.", "space"),
    ("psql:<stdin>:9: FATAL:  terminating connection due to administrator command\n"
     "psql:<stdin>:9: error: connection to server was lost", "gone"),
    ("server closed the connection unexpectedly\n\tThis probably means the server terminated abnormally", "gone"),
    ('psql: error: connection to server at "127.0.0.1", port 5432 failed: Connection refused', "gone"),
    ("FATAL:  the database system is in recovery mode", "gone"),
    ("ERROR:  duplicate key value violates unique constraint", None),
    ("", None),
])
def test_trouble_tells_a_full_disk_and_a_server_gone_from_other_errors(messages, kind):
    assert pg.trouble(messages) == kind


def test_trouble_hint_locates_the_full_disk_on_a_local_server(tmp_path):
    data = tmp_path / "main"
    (data / "base" / "16384").mkdir(parents=True)
    calls = []

    def run(args, **kwargs):
        calls.append(args)
        return 0, "%s\n" % data, ""
    target = pg.PgServer("target", "/b", "127.0.0.1", 5432, "bj")
    hint = target.trouble_hint('ERROR:  could not extend file "base/16384/16390": No space left on device', run, "bj")
    assert hint.startswith("the target's PostgreSQL has no space left on device (writing %s/base/16384/16390; "
                           "filesystem /" % data), hint
    assert hint.endswith(" now): free space there and run the task again")
    assert calls[0][-2:] == ["-c", "SHOW data_directory"] and calls[0][calls[0].index("-d") + 1] == "bj"
    # a server elsewhere: its files are not this host's, the free space here says nothing
    remote = pg.PgServer("target", "/b", "db.example.test", 5432, "bj")
    assert remote.trouble_hint('could not extend file "base/1/2": No space left on device', run) == (
        "the target's PostgreSQL has no space left on device (writing %s/base/1/2): free space there and run "
        "the task again" % data)
    # no file named, or the data directory unreadable: said without them
    assert target.trouble_hint("ERROR:  checkpoint request failed") == (
        "the target's PostgreSQL could not write a checkpoint (its log says which file; a full disk is the usual "
        "cause): free space there and run the task again")
    assert target.trouble_hint('could not extend file "base/1/2": No space left on device',
                               lambda args, **kw: (2, "", "refused")).startswith(
        "the target's PostgreSQL has no space left on device (writing base/1/2): ")
    assert target.trouble_hint("ERROR:  syntax error") is None


def test_trouble_hint_for_a_server_that_stopped_answering():
    target = pg.PgServer("target", "/b", "127.0.0.1", 5432, "bj")
    assert target.trouble_hint("server closed the connection unexpectedly") == (
        "the target's PostgreSQL (127.0.0.1:5432) stopped answering: it was stopped, killed or is restarting; "
        "start it (systemctl start postgresql), see its log, and run the task again")
    origin = pg.PgServer("origin", "/b", "127.0.0.1", 40001, "bj")
    assert "(127.0.0.1:40001) stopped answering: it was stopped, killed or is restarting, or the SSH tunnel to it " \
           "was cut; start it" in origin.trouble_hint("Connection refused")


def test_query_failure_of_a_server_gone_says_what_to_do():
    server = pg.PgServer("target", "/b", "127.0.0.1", 5432, "bj")
    with pytest.raises(pg.PgError) as err:
        server.query(lambda args, **kw: (2, "", 'psql: error: connection to server at "127.0.0.1", port 5432 '
                                                'failed: Connection refused\n'), "bj", "SELECT 1", "reading")
    assert str(err.value).endswith("Connection refused; the target's PostgreSQL (127.0.0.1:5432) stopped answering: "
                                   "it was stopped, killed or is restarting; start it (systemctl start postgresql), "
                                   "see its log, and run the task again")
