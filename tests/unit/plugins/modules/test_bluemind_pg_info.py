import json

import pytest

from ansible_collections.bluemind.migration.plugins.modules import bluemind_pg_info

from ...conftest import assert_no_secret

PASSWORD = "bj-s3cret-789"


class Server(object):
    """Answers psql as a PostgreSQL 15 server holding BlueMind's two databases."""

    def __init__(self):
        self.databases = {
            "bj": ("UTF8", "en_US.UTF-8", "en_US.UTF-8",
                   [("btree_gin", "pg_catalog", "1.3"), ("hstore", "pg_catalog", "1.8"),
                    ("ltree", "pg_catalog", "1.2"), ("plpgsql", "pg_catalog", "1.0"),
                    ("unaccent", "pg_catalog", "1.1")]),
            "bj-data": ("UTF8", "en_US.UTF-8", "en_US.UTF-8",
                        [("hstore", "pg_catalog", "1.8"), ("plpgsql", "pg_catalog", "1.0")]),
        }
        self.available = ["btree_gin", "hstore", "ltree", "plpgsql", "unaccent"]
        self.locales = {"en_US.UTF-8", "C.UTF-8"}
        self.scripts = []

    def __call__(self, args, kwargs):
        database = args[args.index("-d") + 1]
        if "-c" not in args:  # a script on stdin: only the locale probe
            self.scripts.append((database, kwargs["data"]))
            assert kwargs["data"].startswith("BEGIN;\n") and kwargs["data"].endswith("ROLLBACK;\n")
            locale = kwargs["data"].split("LC_COLLATE = '")[1].split("'")[0]
            return (0, "", "") if locale in self.locales else (1, "", "ERROR:  could not create locale")
        sql = args[args.index("-c") + 1]
        if sql == "SHOW server_version":
            return 0, "15.8 (Debian 15.8-0+deb12u1)\0", ""
        if "FROM pg_database" in sql:
            name = sql.split("'")[1]
            if name not in self.databases:
                return 0, "", ""
            return 0, "\x1f".join(self.databases[name][:3]) + "\0", ""
        if "FROM pg_extension" in sql:
            return 0, "".join("\x1f".join(e) + "\0" for e in self.databases[database][3]), ""
        if "pg_available_extensions" in sql:
            return 0, "".join(name + "\0" for name in self.available), ""
        raise AssertionError(sql)


@pytest.fixture
def server(commands, tmp_path):
    (tmp_path / "psql").write_text("#!/bin/sh\n")
    (tmp_path / "psql").chmod(0o755)
    fake = Server()
    commands.add(lambda a: a[0].endswith("/psql"), fake)
    fake.args = dict(db_password=PASSWORD, pg_bin_dir=str(tmp_path))
    return fake


def test_describes_the_databases_and_changes_nothing(run_module, server, commands):
    result = run_module(bluemind_pg_info, dict(server.args, databases=["bj", "bj-data", "nope"]), check_mode=True)
    assert result["changed"] is False and not result.get("failed")
    assert result["version"].startswith("15.8")
    bj, _data, nope = result["databases"]
    assert bj["collate"] == bj["ctype"] == "en_US.UTF-8" and bj["encoding"] == "UTF8"
    assert {"name": "hstore", "schema": "pg_catalog", "version": "1.8"} in bj["extensions"]
    assert nope == {"name": "nope", "exists": False}
    assert result["extensions"] == ["btree_gin", "hstore", "ltree", "plpgsql", "unaccent"]
    assert result["locales"] == ["en_US.UTF-8"]
    assert result["missing"] == [] and server.scripts == []  # nothing required, nothing probed
    for call in commands.calls:
        assert PASSWORD not in json.dumps(call["args"])
        assert call["environ_update"]["PGPASSWORD"] == PASSWORD
    assert_no_secret(result, PASSWORD)


def test_reports_what_the_target_lacks(run_module, server):
    server.available.remove("ltree")
    result = run_module(bluemind_pg_info, dict(
        server.args, required_extensions=["hstore", "ltree", "pg_repack"], required_locales=["en_US.UTF-8", "de_DE.utf8"]))
    assert not result.get("failed")
    assert result["missing"] == [
        "PostgreSQL extension(s) ltree, pg_repack used on the origin are not available on the 127.0.0.1:5432 "
        "server: ltree comes with PostgreSQL's contrib modules (Debian: postgresql-15 or postgresql-contrib); "
        "install the package that provides pg_repack for PostgreSQL 15 (Debian: postgresql-15-repack), then run "
        "the task again",
        "the 127.0.0.1:5432 server cannot use the locale de_DE.utf8 that the origin's databases use (LC_COLLATE / "
        "LC_CTYPE): generate it (Debian: enable 'de_DE.UTF-8 UTF-8' in /etc/locale.gen, run locale-gen), then "
        "restart PostgreSQL"]
    assert [locale for _db, locale in ((d, s.split("'")[1]) for d, s in server.scripts)] == ["de_DE.utf8", "en_US.UTF-8"]


def test_connection_error_fails_with_the_server_message(run_module, commands, tmp_path):
    (tmp_path / "psql").write_text("#!/bin/sh\n")
    (tmp_path / "psql").chmod(0o755)
    commands.add(lambda a: True, (2, "", "psql: error: password authentication failed for user \"bj\""))
    result = run_module(bluemind_pg_info, dict(db_password=PASSWORD, pg_bin_dir=str(tmp_path)))
    assert result["failed"] is True
    assert "reading the version on the 127.0.0.1:5432 server" in result["msg"]
    assert "password authentication failed" in result["msg"]
    assert_no_secret(result, PASSWORD)


@pytest.mark.parametrize("origin, missing", [
    ("13.16 (Debian 13.16-0+deb11u1)", False),
    ("15.2", False),
    ("16.2-bluemind1055", True),
    ("9.6.24", False),
])
def test_an_older_major_on_the_target_is_missing(run_module, server, origin, missing):
    result = run_module(bluemind_pg_info, dict(server.args, required_version=origin))
    assert not result.get("failed")
    if missing:
        assert result["missing"] == [
            "PostgreSQL 15 here is older than the origin's 16: its pg_dump cannot read a newer server; install "
            "PostgreSQL 16 or later here (BlueMind ships the same major on both sides), then run the task again"]
    else:
        assert result["missing"] == []
