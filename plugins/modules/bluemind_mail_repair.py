#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: bluemind_mail_repair
short_description: Run the BlueMind mail maintenance repair and wait for the postfix maps
version_added: 1.0.0
description:
  - Starts the "Mail maintenance" repair (C(POST /api/system/maildelivery/mgmt/_repair)), which
    rewrites the postfix maps from the database, and waits for its task.
  - The task ends before the maps are written; the module then waits until every file in O(maps)
    has been rewritten (a new inode or modification time), so that postfix uses the new maps when
    the task returns.
  - Run it on the BlueMind server itself, where the map files are.
options:
  maps:
    description:
      - Map files to watch. Each must be rewritten by the repair before the task succeeds.
    type: list
    elements: path
    default:
      - /etc/postfix/virtual_domains.db
      - /etc/postfix/virtual_mailbox.db
      - /etc/postfix/virtual_alias.db
      - /etc/postfix/transport.db
      - /etc/postfix/master_relay_transport.db
  maps_timeout:
    description:
      - Seconds to wait, after the task, for the maps to be rewritten; a map still not rewritten then
        fails the task. V(0) looks once, reports RV(maps) and does not fail.
    type: int
    default: 120
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
  - bluemind.migration.api
  - bluemind.migration.api.task
attributes:
  check_mode:
    support: partial
    details:
      - Logs in but does not start the repair. C(changed) is then V(true), as a repair always
        rewrites the maps.
  diff_mode:
    support: none
  action_group:
    support: full
    membership:
      - bluemind.migration.api
  platform:
    platforms: posix
author:
  - bluemind.migration contributors (@bluemind-migration)
"""

EXAMPLES = r"""
- name: Rebuild the postfix maps from the migrated database
  bluemind.migration.bluemind_mail_repair:
    api_token_file: /etc/bm/bm-core.tok
"""

RETURN = r"""
task:
  description: Final status of the server task.
  returned: when not in check mode
  type: dict
  sample: {"state": "Success", "progress": 1, "steps": 1}
maps:
  description: Each watched map file and whether the repair rewrote it.
  returned: when not in check mode
  type: list
  elements: dict
  sample: [{"path": "/etc/postfix/transport.db", "rebuilt": true}]
seconds:
  description: Time from the start of the repair until the maps were rewritten.
  returned: when not in check mode
  type: float
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.bluemind.migration.plugins.module_utils.api import (
    API_AUTH_MUTUALLY_EXCLUSIVE,
    API_AUTH_REQUIRED_ONE_OF,
    MAIL_REPAIR_PATH,
    BlueMindApiError,
    BlueMindClient,
    bluemind_api_argument_spec,
    bluemind_api_task_argument_spec,
)

POLL_SECONDS = 0.5


def signature(path):
    """Inode and modification time of a file (None when absent): a rewrite changes one of them."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns


def wait_rebuilt(before, timeout):
    """``{path: rebuilt}`` once every map changed, or when ``timeout`` is over."""
    deadline = time.monotonic() + timeout
    while True:
        rebuilt = dict((path, sig is not None and sig != before[path])
                       for path, sig in ((p, signature(p)) for p in before))
        if all(rebuilt.values()) or time.monotonic() >= deadline:
            return rebuilt
        time.sleep(POLL_SECONDS)


def main():
    argument_spec = bluemind_api_argument_spec()
    argument_spec.update(bluemind_api_task_argument_spec())
    argument_spec.update(
        maps=dict(type="list", elements="path", default=[
            "/etc/postfix/%s.db" % name for name in
            ("virtual_domains", "virtual_mailbox", "virtual_alias", "transport", "master_relay_transport")]),
        maps_timeout=dict(type="int", default=120),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=API_AUTH_MUTUALLY_EXCLUSIVE,
        required_one_of=API_AUTH_REQUIRED_ONE_OF,
        supports_check_mode=True,
    )
    result = dict(changed=True)
    started = time.monotonic()
    try:
        with BlueMindClient(module.params) as client:
            client.authenticate()
            if module.check_mode:
                module.exit_json(**result)
            before = dict((path, signature(path)) for path in module.params["maps"])
            result["task"] = client.run_task(MAIL_REPAIR_PATH, module.params["task_timeout"])
    except BlueMindApiError as exc:
        module.fail_json(msg="mail maintenance repair: %s" % exc, **result)
    rebuilt = wait_rebuilt(before, module.params["maps_timeout"])
    result["maps"] = [dict(path=path, rebuilt=rebuilt[path]) for path in module.params["maps"]]
    result["seconds"] = round(time.monotonic() - started, 3)
    stale = [path for path in module.params["maps"] if not rebuilt[path]]
    if stale and module.params["maps_timeout"]:
        module.fail_json(
            msg="the repair task succeeded but %s %s not rewritten within %d s: look at the server's "
                "/var/log/bm/core.log and /var/log/mail.log, or raise maps_timeout" % (
                    ", ".join(stale), "was" if len(stale) == 1 else "were", module.params["maps_timeout"]),
            **result
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
