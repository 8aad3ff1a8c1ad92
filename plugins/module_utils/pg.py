# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL through its own client tools: queries with psql, dump | restore as a stream.

Passwords go to the tools through the environment (``PGPASSWORD``) or a pgpass file
(``PGPASSFILE``), never through argv; every tool runs with ``-w`` so none can prompt.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile

from ansible_collections.bluemind.migration.plugins.module_utils.disk import NO_SPACE, QUOTA, free_space

FIELD_SEP = "\x1f"
CHUNK = 1 << 20
ERR_TAIL_BYTES = 4000

# Settings whose value is a list of separately quoted items (PostgreSQL's GUC_LIST_QUOTE):
# ALTER DATABASE ... SET must give them item by item, as pg_dumpall does.
LIST_SETTINGS = frozenset((
    "local_preload_libraries", "search_path", "session_preload_libraries",
    "shared_preload_libraries", "temp_tablespaces", "unix_socket_directories",
))


# The extensions of the connected database: name, schema, version.
EXTENSIONS_SQL = ("SELECT e.extname, n.nspname, e.extversion FROM pg_extension e "
                  "JOIN pg_namespace n ON n.oid = e.extnamespace ORDER BY 1")
AVAILABLE_EXTENSIONS_SQL = "SELECT name FROM pg_available_extensions ORDER BY 1"
# Schemas that a database created from template0 already has: an extension of the origin that
# lives there can be created before the restore; one in a schema of its own is left to the dump,
# which creates the schema first.
BUILTIN_SCHEMAS = ("pg_catalog", "public")
# Extensions that come with PostgreSQL itself (its contrib modules; on Debian in postgresql-<major>).
CONTRIB_EXTENSIONS = frozenset((
    "adminpack", "amcheck", "autoinc", "bloom", "btree_gin", "btree_gist", "citext", "cube", "dblink",
    "dict_int", "dict_xsyn", "earthdistance", "file_fdw", "fuzzystrmatch", "hstore", "insert_username",
    "intagg", "intarray", "isn", "lo", "ltree", "moddatetime", "old_snapshot", "pageinspect",
    "pg_buffercache", "pg_freespacemap", "pg_prewarm", "pg_stat_statements", "pg_surgery", "pg_trgm",
    "pg_visibility", "pg_walinspect", "pgcrypto", "pgrowlocks", "pgstattuple", "plpgsql", "postgres_fdw",
    "refint", "seg", "sslinfo", "tablefunc", "tcn", "tsm_system_rows", "tsm_system_time", "unaccent",
    "uuid-ossp", "xml2",
))


def pg_argument_spec():
    """The PostgreSQL user and client tools (documented by the ``bluemind.migration.pg`` fragment)."""
    return dict(
        db_user=dict(type="str", default="bj"),
        pg_bin_dir=dict(type="path"),
    )


def pg_server_argument_spec():
    """One server reached from the managed host (fragment ``bluemind.migration.pg.server``)."""
    return dict(
        db_password=dict(type="str", no_log=True),
        db_host=dict(type="str", default="127.0.0.1"),
        db_port=dict(type="int", default=5432),
    )


def pg_maintenance_argument_spec():
    """The database to connect to for what is not about one database (fragment ``bluemind.migration.pg.maintenance``)."""
    return dict(maintenance_db=dict(type="str", default="postgres"))


def create_extension_sql(name, schema):
    """``CREATE EXTENSION`` of one extension in the schema it has on the origin."""
    return "CREATE EXTENSION IF NOT EXISTS %s WITH SCHEMA %s;" % (quote_ident(name), quote_ident(schema))


def locale_probe_sql(locale):
    """A script that fails when the server cannot load ``locale`` (as LC_COLLATE and LC_CTYPE) and
    that leaves nothing behind: PostgreSQL loads the locale of a collation it creates."""
    return ("BEGIN;\nCREATE COLLATION pg_temp.bluemind_migration_locale_probe (LC_COLLATE = %s, LC_CTYPE = %s);\n"
            "ROLLBACK;\n" % (quote_literal(locale), quote_literal(locale)))


def extension_install_hint(name, major):
    """What to install on Debian for an extension that ``pg_available_extensions`` lacks."""
    if name in CONTRIB_EXTENSIONS:
        return "%s comes with PostgreSQL's contrib modules (Debian: postgresql-%s or postgresql-contrib)" % (
            name, major)
    package = name[3:] if name.startswith("pg_") else name  # pg_repack: postgresql-16-repack
    return "install the package that provides %s for PostgreSQL %s (Debian: postgresql-%s-%s)" % (
        name, major, major, package.replace("_", "-"))


def server_major(version):
    """``15`` of ``15.8 (Debian 15.8-0+deb12u1)``; ``9.6`` of ``9.6.24``."""
    parts = version.split()[0].split(".") if version else [""]
    return ".".join(parts[:2]) if parts[0].isdigit() and int(parts[0]) < 10 else parts[0]


def older_major(version, than):
    """A sentence when server ``version`` is of an older major than ``than`` (the origin's), else None:
    the target's pg_dump then refuses to read the origin (pg_dump cannot dump a newer server)."""
    def key(text):
        return tuple(int(part) for part in server_major(text).split(".") if part.isdigit())
    if not version or not than or not key(than) or key(version) >= key(than):
        return None
    return ("PostgreSQL %s here is older than the origin's %s: its pg_dump cannot read a newer server; install "
            "PostgreSQL %s or later here (BlueMind ships the same major on both sides), then run the task again"
            % (server_major(version), server_major(than), server_major(than)))


def snapshot_script(snapshot, sql):
    """``sql`` run in a read-only transaction that sees the exported ``snapshot``."""
    return ("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\nSET TRANSACTION SNAPSHOT %s;\n%s;\nCOMMIT;\n"
            % (quote_literal(snapshot), sql.rstrip(";")))


# What libpq and the server say when the server went away during a session (stopped, killed, crashed,
# restarting) or cannot be reached at all.
GONE_MESSAGES = (
    "server closed the connection unexpectedly", "terminating connection due to unexpected postmaster exit",
    "terminating connection because of crash of another server process",
    "terminating connection due to administrator command", "connection to server was lost",
    "no connection to the server", "could not receive data from server", "could not send data to server",
    "Connection refused", "SSL SYSCALL error: EOF detected",
    "the database system is in recovery mode", "the database system is shutting down",
    "the database system is starting up", "the database system is not yet accepting connections",
)
# The server's hint when a file could not be extended: ENOSPC, or a write cut short ("wrote only 4096 of
# 8192 bytes"), which a full disk causes too.
FREE_DISK_HINT = "HINT:  Check free disk space."
# The server's words for a write that found its disk full (the file is relative to its data directory).
FILE_WRITE = re.compile(r'could not (?:extend|write to|write block \d+ in|create|write) file "([^"]+)"')


def trouble(text):
    """``space`` when a PostgreSQL tool's messages say the server's disk is full (or a checkpoint failed,
    which a full disk causes), ``gone`` when the server stopped answering, else None."""
    text = text or ""
    if NO_SPACE in text or QUOTA in text or "checkpoint request failed" in text or FREE_DISK_HINT in text:
        return "space"
    if any(message in text for message in GONE_MESSAGES):
        return "gone"
    return None


class PgError(Exception):
    """A PostgreSQL tool failed; the message names the server, the database and the tool's error."""


def quote_ident(name):
    return '"%s"' % name.replace('"', '""')


def quote_literal(value):
    return "'%s'" % value.replace("'", "''")


def split_list_setting(value):
    """Items of a list setting as stored in pg_db_role_setting (``"$user", public``)."""
    items, current, quoted = [], [], False
    for char in value:
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            items.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    items.append("".join(current).strip())
    return [item for item in items if item]


def alter_database_set(database, setting):
    """``ALTER DATABASE ... SET`` for one ``name=value`` entry of pg_db_role_setting.setconfig."""
    name, _sep, value = setting.partition("=")
    if name.lower() in LIST_SETTINGS:
        rendered = ", ".join(quote_literal(item) for item in split_list_setting(value))
    else:
        rendered = quote_literal(value)
    return "ALTER DATABASE %s SET %s TO %s;" % (quote_ident(database), quote_ident(name), rendered)


def count_rows_sql(tables):
    """One query giving ``table, count(*)`` for each table (names already quoted)."""
    return " UNION ALL ".join(
        "SELECT %s, count(*) FROM %s" % (quote_literal(table), table) for table in tables
    )


class PgServer(object):
    """One PostgreSQL server as reached from the target (the origin's through the SSH tunnel)."""

    def __init__(self, label, bin_dir, host, port, user, password=None, pgpass_file=None):
        self.label = label
        self.bin_dir = bin_dir
        self.host = host
        self.port = port
        self.user = user
        self.env = {"PGCONNECT_TIMEOUT": "15"}
        if password:
            self.env["PGPASSWORD"] = password
        if pgpass_file:
            self.env["PGPASSFILE"] = pgpass_file
        # Settings of its tools' sessions (PGOPTIONS, ``-c name=value`` each), see tool_env.
        self.options = ""

    def tool_env(self, own_options=True, options=""):
        """The environment of a client tool: the connection's (``env``) and PGOPTIONS with this server's
        session settings (``options``, unless ``own_options`` is False) and the caller's."""
        joined = " ".join(part for part in ((self.options if own_options else ""), options) if part)
        return dict(self.env, PGOPTIONS=joined) if joined else dict(self.env)

    def tool(self, name):
        return os.path.join(self.bin_dir, name)

    def connection_args(self, database):
        return ["-h", self.host, "-p", str(self.port), "-U", self.user, "-w", "-d", database]

    def psql_args(self, database):
        return [self.tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1"] + self.connection_args(database)

    def dump_args(self, database, snapshot=None, schema_only=False):
        args = [self.tool("pg_dump"), "--format=plain"]
        if snapshot:
            args.append("--snapshot=" + snapshot)
        if schema_only:
            args.append("--schema-only")
        return args + self.connection_args(database)

    def _fail(self, what, database, rc, err, run_command=None):
        hint = self.trouble_hint(err, run_command, database)
        raise PgError("%s on the %s server (%s:%s, database %s) failed (psql exit %s): %s%s" % (
            what, self.label, self.host, self.port, database, rc, (err or "").strip() or "no message",
            "; " + hint if hint else ""))

    def local(self):
        """Whether the server runs here (its files are this host's)."""
        return self.host in ("127.0.0.1", "::1", "localhost") or self.host.startswith("/")

    def trouble_hint(self, err, run_command=None, database="postgres"):
        """What happened and what to do when a tool's messages ``err`` show the server's disk full or the
        server gone (see :func:`trouble`); None for any other error. With ``run_command``, a full disk
        is located: the file the server could not write (in its data directory, read from
        ``database``) and, when the server runs here, the free space of that file's filesystem."""
        kind = trouble(err)
        if kind == "gone":
            return ("the %s's PostgreSQL (%s:%s) stopped answering: it was stopped, killed or is restarting%s; "
                    "start it (systemctl start postgresql), see its log, and run the task again" % (
                        self.label, self.host, self.port,
                        ", or the SSH tunnel to it was cut" if self.label == "origin" else ""))
        if kind != "space":
            return None
        written = FILE_WRITE.search(err or "")
        if not written:
            return ("the %s's PostgreSQL could not write a checkpoint (its log says which file; a full disk "
                    "is the usual cause): free space there and run the task again" % self.label)
        path = written.group(1)
        if not os.path.isabs(path) and run_command is not None:
            rc, out, _err = run_command(self.psql_args(database) + ["-At", "-c", "SHOW data_directory"],
                                        environ_update=self.tool_env())
            if rc == 0 and out.strip():
                path = os.path.join(out.strip(), path)
        here = self.local() and os.path.isabs(path) and os.path.isdir(os.path.dirname(path))
        space = free_space(os.path.dirname(path)) if here else ""
        return "the %s's PostgreSQL has no space left on device (writing %s%s): free space there and run the task again" % (
            self.label, path, "; %s now" % space if space else "")

    def query(self, run_command, database, sql, what, snapshot=None, own_options=True):
        """Rows (tuples of text) of one query; with ``snapshot``, as that exported snapshot sees them;
        ``own_options`` False: without the server's session settings (see tool_env)."""
        args = self.psql_args(database) + [
            "--no-align", "--tuples-only", "--field-separator=" + FIELD_SEP, "--record-separator-zero",
        ]
        if snapshot:
            rc, out, err = run_command(args + ["-f", "-"], data=snapshot_script(snapshot, sql),
                                       environ_update=self.tool_env(own_options))
        else:
            rc, out, err = run_command(args + ["-c", sql], environ_update=self.tool_env(own_options))
        if rc != 0:
            self._fail(what, database, rc, err, run_command)
        return [tuple(record.split(FIELD_SEP)) for record in out.split("\0") if record.strip("\n")]

    def execute(self, run_command, database, script, what):
        """Run SQL statements one after the other (outside a transaction block), stopping at the first error."""
        rc, _out, err = run_command(self.psql_args(database) + ["-f", "-"], data=script, environ_update=self.tool_env())
        if rc != 0:
            self._fail(what, database, rc, err, run_command)


def _tail(handle):
    handle.seek(0, os.SEEK_END)
    size = handle.tell()
    handle.seek(max(0, size - ERR_TAIL_BYTES))
    return handle.read().decode("utf-8", "replace").strip()


def stream_pipeline(producer, producer_env, consumer, consumer_env, popen=subprocess.Popen, on_bytes=None):
    """``producer | consumer`` without a shell, counting the bytes that flow, checking both exits.

    Returns ``(bytes, producer_rc, consumer_rc, producer_stderr_tail, consumer_stderr_tail)``.
    When the consumer stops early, the producer is terminated instead of blocking on the pipe.
    ``on_bytes`` is called with the bytes passed so far after each block (a progress).
    """
    with tempfile.TemporaryFile() as producer_err, tempfile.TemporaryFile() as consumer_err:
        source = popen(producer, stdout=subprocess.PIPE, stderr=producer_err,
                       env=dict(os.environ, **producer_env))
        sink = popen(consumer, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=consumer_err,
                     env=dict(os.environ, **consumer_env))
        total = 0
        try:
            while True:
                block = os.read(source.stdout.fileno(), CHUNK)
                if not block:
                    break
                sink.stdin.write(block)
                total += len(block)
                if on_bytes is not None:
                    on_bytes(total)
            sink.stdin.close()
        except (BrokenPipeError, ConnectionResetError):
            source.terminate()
        finally:
            source.stdout.close()
        consumer_rc = sink.wait()
        producer_rc = source.wait()
        return total, producer_rc, consumer_rc, _tail(producer_err), _tail(consumer_err)


def missing_requirements(server, run_command, database, extensions, locales):
    """What ``server`` lacks to hold a copy of databases that use ``extensions`` (names) and
    ``locales`` (LC_COLLATE / LC_CTYPE values): one message per missing thing, saying what to do."""
    problems = []
    needed = sorted(set(extensions))
    if needed:
        available = set(row[0] for row in server.query(
            run_command, database, AVAILABLE_EXTENSIONS_SQL, "listing the available extensions"))
        missing = [name for name in needed if name not in available]
        if missing:
            major = server_major(server.query(run_command, database, "SHOW server_version",
                                              "reading the version")[0][0])
            problems.append("PostgreSQL extension(s) %s used on the origin are not available on the %s "
                            "server: %s, then run the task again" % (
                                ", ".join(missing), server.label,
                                "; ".join(extension_install_hint(name, major) for name in missing)))
    for locale in sorted(set(locales)):
        try:
            server.execute(run_command, database, locale_probe_sql(locale), "loading locale %s" % locale)
        except PgError:
            problems.append(
                "the %s server cannot use the locale %s that the origin's databases use (LC_COLLATE / "
                "LC_CTYPE): generate it (Debian: enable '%s' in /etc/locale.gen, run locale-gen), then "
                "restart PostgreSQL" % (server.label, locale, locale_gen_name(locale)))
    return problems


def locale_gen_name(locale):
    """The /etc/locale.gen line of a locale name: ``en_US.UTF-8 UTF-8`` for en_US.utf8 or en_US.UTF8."""
    base, _dot, codeset = locale.partition(".")
    if codeset.replace("-", "").lower() == "utf8":
        return "%s.UTF-8 UTF-8" % base
    return locale
