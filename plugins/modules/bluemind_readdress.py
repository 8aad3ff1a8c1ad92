#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: bluemind_readdress
short_description: Make a BlueMind server's records name its new address (bm.ini, t_server, t_systemconf, webmail, Cyrus replication, backup spool)
version_added: 1.0.0
description:
  - After a server moved to a new address (a copy of another server, or an address change), sets
    the new address where BlueMind's own records still name an old one, in one run. From the
    vendor's procedure "Changing a BlueMind Server's IP Address" (BM4 documentation).
  - C(host) and C(hz-member-address) in O(bm_ini_path) (quoted or not), when they name an old
    address; a missing file is skipped.
  - C(t_server.ip), and the same two keys in C(t_systemconf.configuration) in database C(bj) (the
    API's configuration is bm.ini overridden by that table, so left as they are the API names the old
    address), in one statement.
  - The webmail's profiles, C(rc_users.mail_host) in database C(bj). Roundcube finds a user's
    profile by login and IMAP host, so with the old host every user gets a new, empty profile. A user
    who already has a profile on the new host keeps it; the old one is left and counted in
    RV(webmail.blocked).
  - C(core_sync_host) in O(cyrus_replication_path) (BlueMind 4.x), where Cyrus replicates new mail to
    the core; with the old address new mail never reaches the webmail, mobile sync or Outlook. A
    missing file (BlueMind 5.x) is skipped.
  - The backup spool folder named after the server's address (O(backup_spool)/<address>, BlueMind's
    data protection) is renamed to the new address when only an old one exists.
  - Run it on the BlueMind server, BlueMind stopped or not serving yet (the vendor stops it).
options:
  old_addresses:
    description:
      - The addresses the server had before (all of them, as other servers may have recorded any).
    type: list
    elements: str
    required: true
  new_address:
    description:
      - The server's address now.
    type: str
    required: true
  db_name:
    description:
      - Database holding C(t_server), C(t_systemconf) and C(rc_users) (BlueMind's C(bj)).
    type: str
    default: bj
  bm_ini_path:
    description:
      - BlueMind's main settings.
    type: path
    default: /etc/bm/bm.ini
  cyrus_replication_path:
    description:
      - BlueMind 4.x's Cyrus replication settings.
    type: path
    default: /etc/cyrus-replication
  backup_spool:
    description:
      - Folder of the backup spools, one per server address.
    type: path
    default: /var/backups/bluemind/dp_spool/rsync
  parts:
    description:
      - What to readdress. V(files) is C(bm.ini), Cyrus replication and the backup spool folder;
        V(database) is C(t_server), C(t_systemconf) and the webmail profiles (O(db_password) is needed
        only for it). The migration's window does both in its work modules (the O(bluemind.migration.bluemind_db_transfer#module:readdress_to)
        of the database pass, the O(bluemind.migration.bluemind_config_copy#module:readdress_to) of the configuration
        copy), with the same code; its database phase runs this module for a pass that did not.
    type: list
    elements: str
    choices: [files, database]
    default: [files, database]
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - bluemind.migration.pg
  - bluemind.migration.pg.server
attributes:
  check_mode:
    support: full
    details: Counts the webmail profiles to move and reads the files; changes nothing.
  diff_mode:
    support: full
    details: >-
      The diff shows bm.ini, the Cyrus replication file, the rows of C(t_server) and C(t_systemconf), the
      webmail profile count per host and the spool folder.
  platform:
    platforms: posix
seealso:
  - module: bluemind.migration.bluemind_sysconf
    description: Swaps the old address for the new one in "My Networks" (O(bluemind.migration.bluemind_sysconf#module:replace_addresses)).
author:
  - bluemind.migration contributors (@bluemind-migration)
"""

EXAMPLES = r"""
- name: The target keeps its own address (DNS switch); what the origin's copy named, name the target
  bluemind.migration.bluemind_readdress:
    old_addresses: [192.0.2.10]
    new_address: 192.0.2.20
    db_password: "{{ bluemind_target_db_password }}"
  no_log: true
"""

RETURN = r"""
bm_ini:
  description: The old values of C(host) and C(hz-member-address) replaced in O(bm_ini_path) (empty when none, or when the file does not exist).
  returned: always
  type: list
  elements: str
  sample: [192.0.2.10, 192.0.2.10]
server:
  description: What named an old address in BlueMind's server directory and system configuration (in check mode, that would be changed).
  returned: always
  type: dict
  contains:
    t_server:
      description: Rows of C(t_server) whose C(ip) was an old address.
      type: int
    t_systemconf:
      description: Keys (C(host), C(hz-member-address)) of C(t_systemconf) that named an old address.
      type: int
  sample: {"t_server": 1, "t_systemconf": 2}
webmail:
  description: Webmail profiles (C(rc_users)) on an old IMAP host.
  returned: always
  type: dict
  contains:
    moved:
      description: Profiles moved to the new address (in check mode, that would be moved).
      type: int
    blocked:
      description: Profiles left on an old address because the user already has one on the new address.
      type: int
    table:
      description: Whether the database has C(rc_users) (no webmail installed otherwise).
      type: bool
  sample: {"moved": 20, "blocked": 0, "table": true}
cyrus_replication:
  description: The old values of C(core_sync_host) replaced (empty when none, or when the file does not exist).
  returned: always
  type: list
  elements: str
  sample: [192.0.2.10]
backup_spool:
  description: The spool folder renamed, as C(from) and C(to); empty when nothing was renamed.
  returned: always
  type: dict
  sample: {"from": /var/backups/bluemind/dp_spool/rsync/192.0.2.10, "to": /var/backups/bluemind/dp_spool/rsync/192.0.2.20}
left_as_is:
  description: What was left as it was and why (also shown as warnings).
  returned: always
  type: list
  elements: str
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.bluemind.migration.plugins.module_utils.pg import (
    PgError,
    PgServer,
    pg_argument_spec,
    pg_server_argument_spec,
)
from ansible_collections.bluemind.migration.plugins.module_utils import readdress


def files(module, result, diff, old, new):
    """bm.ini, Cyrus replication and the backup spool folder."""
    params = module.params
    try:
        done = readdress.files(old, new, module.check_mode, params["bm_ini_path"], params["cyrus_replication_path"],
                               params["backup_spool"])
    except readdress.FilesError as exc:
        done = exc.done
        failure = str(exc)
    else:
        failure = None
    for key in ("bm_ini", "cyrus_replication", "backup_spool"):
        result[key] = done[key]
    result["left_as_is"].extend(done["left_as_is"])
    result["changed"] = result["changed"] or done["changed"]
    for side in ("before", "after"):
        diff[side].update(done["diff"][side])
    if failure:
        module.fail_json(msg=failure, **result)


def database(module, result, diff, old, new):
    """The server directory, the system configuration and the webmail profiles (database C(bj))."""
    params = module.params
    psql = os.path.join(params["pg_bin_dir"], "psql") if params["pg_bin_dir"] else module.get_bin_path("psql", required=True)
    server = PgServer("local", os.path.dirname(psql), params["db_host"], params["db_port"], params["db_user"],
                      password=params["db_password"])
    try:
        records = readdress.database_records(server, module.run_command, params["db_name"], old, new, module.check_mode)
    except PgError as exc:
        module.fail_json(msg=str(exc), **result)
    result.update(records)
    for table, count in sorted(result["server"].items()):
        if count:
            result["changed"] = True
            diff["before"][table] = "%d naming %s" % (count, ", ".join(old))
            diff["after"][table] = "%d naming %s" % (count, new)
    if result["webmail"]["moved"]:
        result["changed"] = True
        diff["before"]["rc_users on %s" % new] = "-"
        diff["after"]["rc_users on %s" % new] = "+%d profiles from %s" % (result["webmail"]["moved"], ", ".join(old))
    blocked = readdress.webmail_left_as_is(result["webmail"], old, new)
    if blocked:
        result["left_as_is"].append(blocked)


def main():
    argument_spec = pg_argument_spec()
    argument_spec.update(pg_server_argument_spec())
    argument_spec.update(
        old_addresses=dict(type="list", elements="str", required=True),
        new_address=dict(type="str", required=True),
        db_name=dict(type="str", default="bj"),
        bm_ini_path=dict(type="path", default=readdress.BM_INI_PATH),
        cyrus_replication_path=dict(type="path", default=readdress.CYRUS_REPLICATION_PATH),
        backup_spool=dict(type="path", default=readdress.BACKUP_SPOOL),
        parts=dict(type="list", elements="str", choices=["files", "database"], default=["files", "database"]),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    new = params["new_address"]
    old = readdress.usable_old_addresses(params["old_addresses"], new)
    result = dict(changed=False, **readdress.files_summary())
    result.update(readdress.no_records())
    diff = dict(before={}, after={})
    if not old:
        module.exit_json(**result)

    if "files" in params["parts"]:
        files(module, result, diff, old, new)
    if "database" in params["parts"]:
        database(module, result, diff, old, new)
    for warning in result["left_as_is"]:
        module.warn(warning)
    if module._diff:
        result["diff"] = diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
