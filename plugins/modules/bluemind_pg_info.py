#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: bluemind_pg_info
short_description: The locale and extensions of the BlueMind databases, and what a server lacks to hold them
version_added: 1.0.0
description:
  - Reads, and changes nothing. Connects to the PostgreSQL server of the host it runs on with
    C(psql) and, for each database of O(databases), reads its encoding, C(LC_COLLATE) and
    C(LC_CTYPE) (C(pg_database)) and its extensions with their schema and version
    (C(pg_extension)). BlueMind creates C(bj) and C(bj-data) with the C(en_US.UTF-8) locale and
    puts C(hstore), C(btree_gin), C(ltree) and C(unaccent) in C(pg_catalog).
  - With O(required_extensions) and O(required_locales) (what the origin's databases use), it also
    reports in RV(missing) what this server lacks to hold a copy of them, each with what to do, that
    is an extension that C(pg_available_extensions) does not list, or a locale the server cannot load
    (it creates a collation with it in a transaction that it rolls back).
  - Run it on the origin to learn what its databases use, then on the target with that, before
    anything changes.
options:
  databases:
    description:
      - Databases to describe. One that does not exist is reported with RV(databases[].exists=false).
    type: list
    elements: str
    default: [bj, bj-data]
  required_extensions:
    description:
      - Extensions a copy of the origin's databases needs (RV(extensions) of the origin).
    type: list
    elements: str
    default: []
  required_locales:
    description:
      - Locales a copy of the origin's databases needs (RV(locales) of the origin).
    type: list
    elements: str
    default: []
  required_version:
    description:
      - Version of the origin's server (RV(version) of the origin). A server of an older major is
        reported in RV(missing), as the target's C(pg_dump) reads the origin and cannot read a newer server.
    type: str
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - bluemind.migration.pg
  - bluemind.migration.pg.server
  - bluemind.migration.pg.maintenance
attributes:
  check_mode:
    support: full
  diff_mode:
    support: N/A
    details: Reads only.
  platform:
    platforms: posix
author:
  - bluemind.migration contributors (@bluemind-migration)
"""

EXAMPLES = r"""
- name: What the origin's databases use
  bluemind.migration.bluemind_pg_info:
    db_password: "{{ bluemind_origin_db_password }}"
  delegate_to: "{{ bluemind_origin }}"
  register: origin_pg
  no_log: true

- name: What the target lacks to hold them
  bluemind.migration.bluemind_pg_info:
    db_password: "{{ bluemind_target_db_password }}"
    required_extensions: "{{ origin_pg.extensions }}"
    required_locales: "{{ origin_pg.locales }}"
    required_version: "{{ origin_pg.version }}"
  register: target_pg
  failed_when: target_pg.missing | length > 0
  no_log: true
"""

RETURN = r"""
version:
  description: Version of the PostgreSQL server.
  returned: always
  type: str
  sample: "15.8 (Debian 15.8-0+deb12u1)"
databases:
  description: One entry per database of O(databases).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Database name.
      type: str
      sample: bj
    exists:
      description: Whether the database exists; the other keys are there only when it does.
      type: bool
    encoding:
      description: Encoding of the database.
      type: str
      sample: UTF8
    collate:
      description: C(LC_COLLATE) of the database.
      type: str
      sample: en_US.UTF-8
    ctype:
      description: C(LC_CTYPE) of the database.
      type: str
      sample: en_US.UTF-8
    extensions:
      description: Extensions of the database.
      type: list
      elements: dict
      sample: [{name: hstore, schema: pg_catalog, version: "1.7"}]
extensions:
  description: Names of the extensions of all the existing databases, sorted, each once.
  returned: always
  type: list
  elements: str
  sample: [btree_gin, hstore, ltree, plpgsql, unaccent]
locales:
  description: C(LC_COLLATE) and C(LC_CTYPE) values of all the existing databases, sorted, each once.
  returned: always
  type: list
  elements: str
  sample: [en_US.UTF-8]
missing:
  description: What this server lacks of O(required_extensions), O(required_locales) and O(required_version), one sentence each,
    saying what to install or generate. Empty when nothing is missing.
  returned: always
  type: list
  elements: str
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.bluemind.migration.plugins.module_utils.pg import (
    EXTENSIONS_SQL,
    PgError,
    PgServer,
    pg_argument_spec,
    pg_maintenance_argument_spec,
    pg_server_argument_spec,
    missing_requirements,
    older_major,
    quote_literal,
)


def describe(server, run_command, maintenance_db, name):
    """One database: whether it exists, its encoding, locale and extensions."""
    rows = server.query(
        run_command, maintenance_db,
        "SELECT pg_encoding_to_char(encoding), datcollate, datctype FROM pg_database WHERE datname = %s"
        % quote_literal(name), "reading the locale of %s" % name)
    if not rows:
        return dict(name=name, exists=False)
    encoding, collate, ctype = rows[0]
    extensions = [dict(name=row[0], schema=row[1], version=row[2]) for row in server.query(
        run_command, name, EXTENSIONS_SQL, "listing the extensions of %s" % name)]
    return dict(name=name, exists=True, encoding=encoding, collate=collate, ctype=ctype, extensions=extensions)


def main():
    argument_spec = pg_argument_spec()
    argument_spec.update(pg_server_argument_spec())
    argument_spec.update(pg_maintenance_argument_spec())
    argument_spec.update(
        databases=dict(type="list", elements="str", default=["bj", "bj-data"]),
        required_extensions=dict(type="list", elements="str", default=[]),
        required_locales=dict(type="list", elements="str", default=[]),
        required_version=dict(type="str"),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    bin_dir = params["pg_bin_dir"] or os.path.dirname(module.get_bin_path("psql", required=True))
    server = PgServer("%s:%s" % (params["db_host"], params["db_port"]), bin_dir, params["db_host"],
                      params["db_port"], params["db_user"], params["db_password"])
    result = dict(changed=False, databases=[], extensions=[], locales=[], missing=[])
    run = module.run_command
    try:
        result["version"] = server.query(run, params["maintenance_db"], "SHOW server_version",
                                         "reading the version")[0][0]
        result["databases"] = [describe(server, run, params["maintenance_db"], name) for name in params["databases"]]
        present = [entry for entry in result["databases"] if entry["exists"]]
        result["extensions"] = sorted(set(ext["name"] for entry in present for ext in entry["extensions"]))
        result["locales"] = sorted(set(entry[key] for entry in present for key in ("collate", "ctype")))
        result["missing"] = missing_requirements(server, run, params["maintenance_db"],
                                                 params["required_extensions"], params["required_locales"])
        too_old = older_major(result["version"], params["required_version"])
        result["missing"] = ([too_old] if too_old else []) + result["missing"]
    except PgError as exc:
        module.fail_json(msg=str(exc), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
