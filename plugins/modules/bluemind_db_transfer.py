#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: bluemind_db_transfer
short_description: Move the BlueMind databases from the origin's PostgreSQL to the target's
version_added: 1.0.0
description:
  - Runs on the target. The target's C(pg_dump) (the newer one, as PostgreSQL advises for upgrades)
    reads the origin's server through an SSH tunnel (C(ssh -N -L) to the origin's
    C(127.0.0.1:5432)), so nothing changes in the origin's PostgreSQL configuration.
  - For each database, the target's copy is dropped and created again with owner O(db_user),
    encoding UTF8 from C(template0), the origin's database-level settings (C(ALTER DATABASE ... SET),
    which a plain C(pg_dump) does not carry) are applied, the C(hstore) extension is created, then
    C(pg_dump | psql -v ON_ERROR_STOP=1) streams the data without a temporary file; the exit codes
    of both tools are checked.
  - Afterwards, for every table, the exact row count (C(count(*))) on both sides and the value of
    every sequence are compared, as are the settings; any difference fails the task.
  - Passwords reach the PostgreSQL tools only through the environment (C(PGPASSWORD)) or a pgpass
    file (C(PGPASSFILE)), never through their command line.
options:
  databases:
    description:
      - Databases to move, in order.
    type: list
    elements: str
    default: [bj, bj-data]
  db_user:
    description:
      - PostgreSQL user on both servers, and owner of the databases created on the target. It must be
        allowed to create databases on the target (BlueMind's C(bj) is a superuser).
    type: str
    default: bj
  origin_db_port:
    description:
      - Port of PostgreSQL on the origin's loopback interface, the far end of the tunnel.
    type: int
    default: 5432
  origin_db_password:
    description:
      - Password of O(db_user) on the origin (C(password) in the origin's C(/etc/bm/bm.ini)).
      - Leave it out to use O(pgpass_file).
    type: str
  target_db_host:
    description:
      - Host of the target's PostgreSQL, as the target reaches it.
    type: str
    default: 127.0.0.1
  target_db_port:
    description:
      - Port of the target's PostgreSQL.
    type: int
    default: 5432
  target_db_password:
    description:
      - Password of O(db_user) on the target. Leave it out to use O(pgpass_file).
    type: str
  pgpass_file:
    description:
      - pgpass file on the target used when a password is not given. The origin is reached as
        C(127.0.0.1) on the tunnel's port, so its line should be C(127.0.0.1:*:*:bj:<password>),
        after the target's own line.
    type: path
  maintenance_db:
    description:
      - Database to connect to when dropping and creating databases and reading settings.
    type: str
    default: postgres
  tunnel_port:
    description:
      - Local port of the tunnel on the target; V(0) picks a free one.
    type: int
    default: 0
  pg_bin_dir:
    description:
      - Directory of the target's C(pg_dump) and C(psql), for example V(/usr/lib/postgresql/15/bin).
        By default the ones found in E(PATH).
    type: path
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - bluemind.migration.ssh
attributes:
  check_mode:
    support: partial
    details:
      - Opens the tunnel and reads the origin (versions, sizes, settings, tables) and the target's
        version; the target is not touched. C(changed) is then V(true), as a real run always
        replaces the databases.
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - Stop BlueMind on both servers first; the row counts are compared exactly, so an origin still
    written fails the check, and a database in use on the target cannot be dropped.
author:
  - bluemind.migration contributors (@bluemind-migration)
"""

EXAMPLES = r"""
- name: Move bj and bj-data from the origin (PostgreSQL 13) to the target (PostgreSQL 15)
  bluemind.migration.bluemind_db_transfer:
    origin_host: 192.0.2.10
    ssh_key: /root/.ssh/bluemind_migration
    known_hosts: /root/.ssh/bluemind_migration_known_hosts
    origin_db_password: "{{ bluemind_db_password }}"
    target_db_password: "{{ bluemind_db_password }}"
    pg_bin_dir: /usr/lib/postgresql/15/bin
  no_log: true
"""

RETURN = r"""
databases:
  description: One entry per database.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Database name.
      type: str
      sample: bj-data
    origin_size:
      description: Size of the database on the origin (C(pg_database_size)), in bytes.
      type: int
    settings:
      description: Database-level settings carried over, as C(name=value).
      type: list
      elements: str
      sample: [TimeZone=GMT]
    bytes:
      description: Size of the dump streamed from the origin to the target.
      type: int
      returned: when not in check mode
    seconds:
      description: Time to recreate, restore and verify the database.
      type: float
      returned: when not in check mode
    tables:
      description: Tables compared.
      type: int
      returned: when not in check mode
    rows:
      description: Rows in all tables (the same on both sides).
      type: int
      returned: when not in check mode
    sequences:
      description: Sequences compared.
      type: int
      returned: when not in check mode
bytes:
  description: Sum of RV(databases[].bytes).
  returned: always
  type: int
seconds:
  description: Time of the whole task.
  returned: always
  type: float
tables:
  description: Sum of RV(databases[].tables).
  returned: always
  type: int
rows:
  description: Sum of RV(databases[].rows).
  returned: always
  type: int
origin_version:
  description: PostgreSQL version of the origin's server.
  returned: always
  type: str
  sample: "13.16"
target_version:
  description: PostgreSQL version of the target's server.
  returned: always
  type: str
  sample: "15.8"
executed_commands:
  description: Commands and SQL scripts run on the target (no password appears in them).
  returned: always
  type: list
  elements: str
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.bluemind.migration.plugins.module_utils.pg import (
    SEQUENCES_SQL,
    TABLES_SQL,
    PgError,
    PgServer,
    alter_database_set,
    count_rows_sql,
    quote_ident,
    quote_literal,
    stream_pipeline,
)
from ansible_collections.bluemind.migration.plugins.module_utils.ssh import (
    OriginSsh,
    SshError,
    Tunnel,
    free_local_port,
    ssh_argument_spec,
)

MAX_LISTED_DIFFERENCES = 10


class Transfer(object):
    """The work on one pair of servers; ``commands`` records what ran."""

    def __init__(self, module, origin, target):
        self.module = module
        self.run = module.run_command
        self.origin = origin
        self.target = target
        self.maintenance_db = module.params["maintenance_db"]
        self.owner = module.params["db_user"]
        self.commands = []

    def version(self, server):
        return server.query(self.run, self.maintenance_db, "SHOW server_version", "reading the version")[0][0]

    def inspect(self, name):
        """What the origin holds for one database: size and database-level settings."""
        rows = self.origin.query(
            self.run, self.maintenance_db,
            "SELECT pg_database_size(datname) FROM pg_database WHERE datname = %s" % quote_literal(name),
            "reading the size of %s" % name)
        if not rows:
            raise PgError("database %s does not exist on the origin (%s): check databases" % (
                name, self.origin.label))
        return dict(name=name, origin_size=int(rows[0][0]), settings=self.settings(self.origin, name))

    def settings(self, server, name):
        rows = server.query(
            self.run, self.maintenance_db,
            "SELECT unnest(s.setconfig) FROM pg_db_role_setting s JOIN pg_database d "
            "ON d.oid = s.setdatabase WHERE s.setrole = 0 AND d.datname = %s ORDER BY 1" % quote_literal(name),
            "reading the settings of %s" % name)
        return [row[0] for row in rows]

    def execute(self, database, script, what):
        self.commands.append("psql -d %s: %s" % (database, script.strip()))
        self.target.execute(self.run, database, script, what)

    def copy(self, entry):
        name = entry["name"]
        started = time.monotonic()
        self.execute(self.maintenance_db, "\n".join(
            ["DROP DATABASE IF EXISTS %s;" % quote_ident(name),
             "CREATE DATABASE %s OWNER %s ENCODING 'UTF8' TEMPLATE template0;" % (
                 quote_ident(name), quote_ident(self.owner))]
            + [alter_database_set(name, setting) for setting in entry["settings"]]),
            "recreating database %s (stop BlueMind on the target first)" % name)
        self.execute(name, "CREATE EXTENSION IF NOT EXISTS hstore;",
                     "creating the hstore extension (is postgresql-contrib installed on the target?)")
        dump, restore = self.origin.dump_args(name), self.target.psql_args(name) + ["-f", "-"]
        self.commands.append("%s | %s" % (" ".join(dump), " ".join(restore)))
        size, dump_rc, restore_rc, dump_err, restore_err = stream_pipeline(
            dump, self.origin.env, restore, self.target.env)
        if dump_rc != 0 or restore_rc != 0:
            raise PgError(
                "copy of database %s failed (pg_dump exit %s, psql exit %s): %s; the target's %s is "
                "incomplete: fix the cause and run the task again" % (
                    name, dump_rc, restore_rc, restore_err or dump_err or "no message", name))
        entry.update(self.compare(name, entry["settings"]), bytes=size)
        entry["seconds"] = round(time.monotonic() - started, 3)

    def compare(self, name, origin_settings):
        """Settings, hstore, tables, row counts and sequences of the two copies; raise on any difference."""
        problems = []
        target_settings = self.settings(self.target, name)
        if target_settings != origin_settings:
            problems.append("settings: origin %s, target %s" % (origin_settings, target_settings))
        if not self.target.query(self.run, name, "SELECT 1 FROM pg_extension WHERE extname = 'hstore'",
                                 "looking for hstore"):
            problems.append("the hstore extension is missing on the target")
        tables = [row[0] for row in self.origin.query(self.run, name, TABLES_SQL, "listing tables")]
        target_tables = [row[0] for row in self.target.query(self.run, name, TABLES_SQL, "listing tables")]
        problems += ["table %s only on the %s" % (t, side) for side, only in (
            ("origin", sorted(set(tables) - set(target_tables))),
            ("target", sorted(set(target_tables) - set(tables)))) for t in only]
        counts = {}
        if tables:
            sql = count_rows_sql(tables)
            counts = dict(self.origin.query(self.run, name, sql, "counting rows"))
            target_counts = dict(self.target.query(self.run, name, sql, "counting rows"))
            problems += ["%s: %s rows on the origin, %s on the target" % (t, counts[t], target_counts.get(t))
                         for t in tables if counts[t] != target_counts.get(t)]
        sequences = dict(self.origin.query(self.run, name, SEQUENCES_SQL, "reading sequences"))
        target_sequences = dict(self.target.query(self.run, name, SEQUENCES_SQL, "reading sequences"))
        problems += ["sequence %s: %s on the origin, %s on the target" % (s, v, target_sequences.get(s))
                     for s, v in sorted(sequences.items()) if v != target_sequences.get(s)]
        if problems:
            raise PgError(
                "database %s differs after the copy (%d difference(s)): %s%s; was BlueMind still "
                "writing on the origin? Stop it and run the task again" % (
                    name, len(problems), "; ".join(problems[:MAX_LISTED_DIFFERENCES]),
                    " ..." if len(problems) > MAX_LISTED_DIFFERENCES else ""))
        return dict(tables=len(tables), rows=sum(int(c) for c in counts.values()), sequences=len(sequences))


def main():
    argument_spec = ssh_argument_spec()
    argument_spec.update(
        databases=dict(type="list", elements="str", default=["bj", "bj-data"]),
        db_user=dict(type="str", default="bj"),
        origin_db_port=dict(type="int", default=5432),
        origin_db_password=dict(type="str", no_log=True),
        target_db_host=dict(type="str", default="127.0.0.1"),
        target_db_port=dict(type="int", default=5432),
        target_db_password=dict(type="str", no_log=True),
        pgpass_file=dict(type="path"),
        maintenance_db=dict(type="str", default="postgres"),
        tunnel_port=dict(type="int", default=0),
        pg_bin_dir=dict(type="path"),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    started = time.monotonic()
    origin_ssh = OriginSsh(module.get_bin_path("ssh", required=True), params)
    bin_dir = params["pg_bin_dir"] or os.path.dirname(module.get_bin_path("pg_dump", required=True))
    missing = [tool for tool in ("pg_dump", "psql") if not os.access(os.path.join(bin_dir, tool), os.X_OK)]
    if missing:
        module.fail_json(msg="%s not found in %s on the target: install the PostgreSQL client of the "
                             "target's server version, or set pg_bin_dir" % (" and ".join(missing), bin_dir))
    target = PgServer("target", bin_dir, params["target_db_host"], params["target_db_port"],
                      params["db_user"], params["target_db_password"], params["pgpass_file"])
    result = dict(changed=False, databases=[], bytes=0, tables=0, rows=0, executed_commands=[])
    try:
        origin_ssh.check_files()
        with Tunnel(origin_ssh, params["tunnel_port"] or free_local_port(), params["origin_db_port"]) as tunnel:
            origin = PgServer("origin", bin_dir, "127.0.0.1", tunnel.port, params["db_user"],
                              params["origin_db_password"], params["pgpass_file"])
            transfer = Transfer(module, origin, target)
            result["executed_commands"] = transfer.commands
            result.update(origin_version=transfer.version(origin), target_version=transfer.version(target))
            result["databases"] = [transfer.inspect(name) for name in params["databases"]]
            result["changed"] = True
            if not module.check_mode:
                for entry in result["databases"]:
                    transfer.copy(entry)
    except (SshError, PgError) as exc:
        result["seconds"] = round(time.monotonic() - started, 3)
        module.fail_json(msg=str(exc), **result)
    for key in ("bytes", "tables", "rows"):
        result[key] = sum(entry.get(key, 0) for entry in result["databases"])
    result["seconds"] = round(time.monotonic() - started, 3)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
