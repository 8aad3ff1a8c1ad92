#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: bluemind_db_look
short_description: A last quick look at the origin's databases before the window, for the downtime's prediction
version_added: 1.2.0
description:
  - Reads, and changes nothing on either host. Runs on the target, reaches the origin's PostgreSQL through
    the same SSH tunnel as M(bluemind.migration.bluemind_db_transfer), and reads each database's table
    statistics (the signatures of C(pgsignature), each table's oid, file and written-row counters) twice,
    O(sample_seconds) apart.
  - Compares the first reading with the origin's mark that the last database pass kept in O(state_file)
    (RV(databases[].written_since_pass), what the window's catch-up pass before the stop has to move), and
    the second with the first (RV(databases[].written_in_sample), the rate at which BlueMind writes tables
    now, which gives what the window's own pass will find after the catch-up).
  - Estimates, not proofs. Counts a session has not flushed yet are missing (up to a second, more on
    PostgreSQL 13 and 14), so the pass itself never relies on them; the prediction
    (M(bluemind.migration.bluemind_state)'s rules, filter C(bluemind.migration.window_prediction)) does.
  - Its sessions on the origin carry the application name of the database pass's own sessions (left out of
    the pass's wait for a quiet database), and read the statistics with the server's own settings, as the
    pass does. They read catalogs and statistics only, no table of BlueMind's.
options:
  databases:
    description: Databases to look at, in the order of the hot syncs' database passes.
    type: list
    elements: str
    default: [bj, bj-data]
  origin_db_port:
    description: Port of PostgreSQL on the origin, the remote end of the tunnel.
    type: int
    default: 5432
  origin_db_password:
    description: Password of O(db_user) on the origin. Prefer O(pgpass_file).
    type: str
  pgpass_file:
    description: A C(.pgpass) file on the target for the connections through the tunnel.
    type: path
  tunnel_port:
    description: Local port of the tunnel; C(0) picks a free one.
    type: int
    default: 0
  state_file:
    description:
      - The database pass's JSON file on the target (O(bluemind.migration.bluemind_db_transfer#module:state_file)).
        Without it, or without a mark of a database there, RV(databases[].written_since_pass) is null.
    type: path
  sample_seconds:
    description: Seconds between the two readings. C(0) reads once (RV(databases[].written_in_sample) null).
    type: float
    default: 2.0
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - bluemind.migration.ssh
  - bluemind.migration.pg
attributes:
  check_mode:
    support: full
    details: Reads only, in check mode as in a run.
  diff_mode:
    support: N/A
    details: Reads only.
  platform:
    platforms: posix
notes:
  - The window's role (cold_sync) runs it before it asks for the confirmation, so that the prediction in its
    message includes it. A look that fails leaves the prediction to the hot syncs' history alone.
seealso:
  - module: bluemind.migration.bluemind_db_transfer
author:
  - bluemind.migration contributors (@bluemind-migration)
"""

EXAMPLES = r"""
- name: Look at what the origin wrote since the last pass
  bluemind.migration.bluemind_db_look:
    origin_host: 10.0.0.10
    ssh_key: /root/.ssh/bluemind_migration
    known_hosts: /root/.ssh/bluemind_migration_known_hosts
    pgpass_file: /root/.pgpass
    state_file: /var/lib/bluemind-migration/db-sync.json
  register: look
"""

RETURN = r"""
databases:
  description: One entry per database of O(databases), in that order.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The database.
      type: str
    tables:
      description: Its tables now (the ordinary tables the database pass moves).
      type: int
      sample: 289
    written_since_pass:
      description:
        - Tables whose statistics moved since the last pass's mark (new, rewritten or written); every
          table when the origin's counters started again since (a restart). Null without a mark.
      type: int
      sample: 57
    written_in_sample:
      description: Tables written between the two readings. Null with O(sample_seconds=0).
      type: int
      sample: 12
    rows_since_pass:
      description: Rows inserted, updated or deleted since the last pass's mark, by the same counters. Null without a mark.
      type: int
      sample: 1800
    rows_in_sample:
      description: Rows inserted, updated or deleted between the two readings. Null with O(sample_seconds=0).
      type: int
      sample: 140
    why:
      description: Why a figure is null (no mark kept, statistics not readable), else null.
      type: str
sample_seconds:
  description: Seconds between the two readings, as measured.
  returned: always
  type: float
looked_at:
  description: When the first reading began (the target's clock, the state's format).
  returned: always
  type: str
  sample: "2026-12-05T03:10:00.000000Z"
"""

import json
import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.bluemind.migration.plugins.module_utils.pg import PgError, PgServer, pg_argument_spec
from ansible_collections.bluemind.migration.plugins.module_utils.pgsignature import (
    APP_NAME,
    SHARED_MEMORY_STATS,
    side_signatures,
    signature_sql,
    written_rows,
    written_tables,
)
from ansible_collections.bluemind.migration.plugins.module_utils.ssh import (
    OriginSsh,
    SshError,
    Tunnel,
    free_local_port,
    ssh_argument_spec,
)
from ansible_collections.bluemind.migration.plugins.module_utils.state import stamp


def kept_marks(path):
    """The origin's marks the last passes kept, by database, from the pass's file (empty when unreadable)."""
    try:
        with open(path) as handle:
            data = json.load(handle)
    except (IOError, OSError, ValueError, TypeError):
        return {}
    if not isinstance(data, dict):
        return {}
    return dict((name, ((entry.get("signatures") or {}).get("origin")))
                for name, entry in data.items() if isinstance(entry, dict))


def compare(names, marks, first, second):
    """Each database's entry of RV(databases) from the kept ``marks`` and the two readings (``second`` None
    when read once); a reading is None when it could not be read."""
    entries = []
    for name in names:
        now, later = first.get(name), (second or {}).get(name)
        entry = dict(name=name, tables=len(now["tables"]) if now else None, written_since_pass=None,
                     written_in_sample=None, rows_since_pass=None, rows_in_sample=None, why=None)
        if now is None:
            entry["why"] = "its statistics could not be read on the origin"
        else:
            since = written_tables(marks.get(name), now)
            if since is None:
                entry["why"] = "the last pass kept no mark of the origin"
            else:
                entry.update(written_since_pass=len(since), rows_since_pass=written_rows(marks[name], now))
            in_sample = written_tables(now, later)
            if in_sample is not None:
                entry.update(written_in_sample=len(in_sample), rows_in_sample=written_rows(now, later))
        entries.append(entry)
    return entries


def main():
    argument_spec = ssh_argument_spec()
    argument_spec.update(pg_argument_spec())
    argument_spec.update(
        databases=dict(type="list", elements="str", default=["bj", "bj-data"]),
        origin_db_port=dict(type="int", default=5432),
        origin_db_password=dict(type="str", no_log=True),
        pgpass_file=dict(type="path"),
        tunnel_port=dict(type="int", default=0),
        state_file=dict(type="path"),
        sample_seconds=dict(type="float", default=2.0),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    if params["sample_seconds"] < 0:
        module.fail_json(msg="sample_seconds must be 0 or more (got %s)" % params["sample_seconds"])
    bin_dir = params["pg_bin_dir"] or os.path.dirname(module.get_bin_path("psql", required=True))
    origin_ssh = OriginSsh(module.get_bin_path("ssh", required=True), params)
    result = dict(changed=False, databases=[], sample_seconds=0.0, looked_at=stamp())
    run = module.run_command
    try:
        origin_ssh.check_files()
        with Tunnel(origin_ssh, params["tunnel_port"] or free_local_port(), params["origin_db_port"]) as tunnel:
            origin = PgServer("origin", bin_dir, "127.0.0.1", tunnel.port, params["db_user"],
                              params["origin_db_password"], params["pgpass_file"])
            origin.env["PGAPPNAME"] = APP_NAME
            number = origin.query(run, params["databases"][0], "SELECT current_setting('server_version_num')",
                                  "reading the version")[0][0]
            sql = signature_sql(False, True, int(number) < SHARED_MEMORY_STATS)

            def reading():
                out = {}
                for name in params["databases"]:
                    try:
                        raw = origin.query(run, name, sql, "reading the tables' statistics", own_options=False)[0][0]
                        out[name] = side_signatures(raw, False)
                    except (PgError, IndexError, ValueError, KeyError, TypeError):
                        out[name] = None
                return out

            result["looked_at"] = stamp()
            started = time.monotonic()
            first = reading()
            second = None
            if params["sample_seconds"] > 0:
                time.sleep(max(0.0, params["sample_seconds"] - (time.monotonic() - started)))
                result["sample_seconds"] = round(time.monotonic() - started, 2)
                second = reading()
    except (SshError, PgError, OSError, ValueError) as exc:
        module.fail_json(msg="the look at the origin's databases failed: %s. Nothing was changed" % exc, **result)
    marks = kept_marks(params["state_file"]) if params["state_file"] else {}
    result["databases"] = compare(params["databases"], marks, first, second)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
