#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: bluemind_delivery_info
short_description: Whether BlueMind delivered a message, read from its mail index in bj-data
version_added: 1.2.0
description:
  - Reads, and changes nothing. Looks in database C(bj-data) for the message of O(subject), that is its
    body row in C(t_message_body) and the mailbox records in C(t_mailbox_record) that point at it, and
    waits for them up to O(timeout) seconds.
  - This proves a delivery through the product on BlueMind 4.x and 5.x alike; a search of the spool
    cannot on 5.x, which stores message bodies zstd-compressed.
  - Fails when no mailbox record appeared in time, unless O(timeout) is V(0) (one look, no failure).
options:
  subject:
    description:
      - The exact subject of the message (make it unique, for example with a time stamp).
    type: str
    required: true
  database:
    description:
      - The database of BlueMind's mail index.
    type: str
    default: bj-data
  bm_ini:
    description:
      - Without O(db_password), the password is read from C(password) of C([global]) in this file on the host.
    type: path
    default: /etc/bm/bm.ini
  timeout:
    description:
      - Seconds to wait for the message. V(0) looks once and reports, without failing.
    type: int
    default: 120
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - bluemind.migration.pg
  - bluemind.migration.pg.server
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
- name: Wait for the test message in BlueMind's mail index
  bluemind.migration.bluemind_delivery_info:
    subject: "BlueMind migration smoke check 20260101T000000"
"""

RETURN = r"""
delivered:
  description: Whether at least one mailbox record of the message exists.
  returned: always
  type: bool
bodies:
  description: Message bodies with that subject.
  returned: always
  type: int
records:
  description: Mailbox records of those bodies (one per mailbox the message landed in).
  returned: always
  type: int
seconds:
  description: Seconds waited.
  returned: always
  type: float
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.bluemind.migration.plugins.module_utils.bmini import global_settings
from ansible_collections.bluemind.migration.plugins.module_utils.delivery import (
    delivery_sql,
    parse_counts,
    wait_for_delivery,
)
from ansible_collections.bluemind.migration.plugins.module_utils.pg import (
    PgError,
    PgServer,
    pg_argument_spec,
    pg_server_argument_spec,
)


def main():
    argument_spec = pg_argument_spec()
    argument_spec.update(pg_server_argument_spec())
    argument_spec.update(
        subject=dict(type="str", required=True),
        database=dict(type="str", default="bj-data"),
        timeout=dict(type="int", default=120),
        bm_ini=dict(type="path", default="/etc/bm/bm.ini"),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    password = params["db_password"]
    if not password:
        try:
            with open(params["bm_ini"], encoding="utf-8") as handle:
                password = global_settings(handle.read()).get("password")
        except (IOError, OSError) as exc:
            module.fail_json(msg="cannot read the database password from %s (%s): give db_password, or run the "
                                 "task as root on the BlueMind host" % (params["bm_ini"], exc))
    bin_dir = params["pg_bin_dir"] or os.path.dirname(module.get_bin_path("psql", required=True))
    server = PgServer("%s:%s" % (params["db_host"], params["db_port"]), bin_dir, params["db_host"],
                      params["db_port"], params["db_user"], password)
    sql = delivery_sql(params["subject"])

    def count():
        return parse_counts(server.query(module.run_command, params["database"], sql,
                                         "looking for the message in %s" % params["database"]))

    result = dict(changed=False, delivered=False, bodies=0, records=0, seconds=0.0)
    try:
        bodies, records, seconds, _attempts = wait_for_delivery(count, max(0, params["timeout"]))
    except PgError as exc:
        module.fail_json(msg=str(exc), **result)
    result.update(delivered=records > 0, bodies=bodies, records=records, seconds=seconds)
    if not result["delivered"] and params["timeout"] > 0:
        module.fail_json(
            msg="no mailbox of %s holds the message '%s' after %s s (%d body row): BlueMind did not deliver it. "
                "Look at /var/log/mail.log (postfix) and /var/log/bm/core.log on this host"
                % (params["database"], params["subject"], seconds, bodies), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
