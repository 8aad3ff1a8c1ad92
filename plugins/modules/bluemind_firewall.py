#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: bluemind_firewall
short_description: Regenerate the BlueMind firewall rules
version_added: 1.0.0
description:
  - Asks BlueMind to regenerate its firewall rules through the admin API and waits for the task
    to end. The call depends on the version. 4.x is C(POST /api/system/security/_updatefirewallrules)
    at O(api_url).
  - 5.x is the internal call C(POST /internal-api/system/firewall/_updatefirewallrules)
    (C(IInternalFirewallMgmt), C(@BMApi(internal = true)) in BlueMind's source), which nginx does not
    proxy, so it goes to the core's own port at O(internal_api_url) with the same session key. It is what
    C(bm-cli maintenance update-fw) calls. Both C(/api/...) firewall paths answer 404 on 5.x.
  - After a migration the rules still name the origin's addresses until they are regenerated.
options:
  version:
    description:
      - BlueMind version of the server (C(4.9.3884), C(5.7.3268)); only the major number matters.
        By default the version the server reports (C(GET /api/system/installation/version)) is used.
    type: str
  internal_api_url:
    description:
      - Base URL of the core's own port, where BlueMind 5.x answers its internal calls (C(/internal-api)).
        Used for the 5.x firewall call only; the version is read at O(api_url).
    type: str
    default: http://127.0.0.1:8090
  rules_file:
    description:
      - Rules file the regeneration writes on the managed host. When given, C(changed) tells whether
        its content changed; otherwise every regeneration counts as a change.
    type: path
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
  - bluemind.migration.api
  - bluemind.migration.api.task
attributes:
  check_mode:
    support: partial
    details:
      - Logs in and reads the version, but does not start the regeneration. C(changed) is then
        V(true), because what the server would write cannot be known beforehand.
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
- name: Regenerate the firewall rules on the new server
  bluemind.migration.bluemind_firewall:
    api_token_file: /etc/bm/bm-core.tok
    rules_file: /etc/init.d/bm-iptables
"""

RETURN = r"""
version:
  description: The BlueMind version that chose the path.
  returned: always
  type: str
  sample: 4.9.3884
api_root:
  description: The REST root of the call, C(/api) (4.x) or C(/internal-api) (5.x).
  returned: always
  type: str
  sample: /internal-api
api_url:
  description: The base URL the call went to (O(api_url) for 4.x, O(internal_api_url) for 5.x).
  returned: always
  type: str
  sample: http://127.0.0.1:8090
api_path:
  description: The call made (or that would be made in check mode), relative to RV(api_root).
  returned: always
  type: str
  sample: /system/security/_updatefirewallrules
task:
  description: Final status of the server task.
  returned: when not in check mode
  type: dict
  sample: {"state": "Success", "progress": 1, "steps": 1, "lastLogEntry": "rules updated"}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.bluemind.migration.plugins.module_utils.api import (
    API_AUTH_MUTUALLY_EXCLUSIVE,
    API_AUTH_REQUIRED_ONE_OF,
    BlueMindApiError,
    BlueMindClient,
    bluemind_api_argument_spec,
    bluemind_api_task_argument_spec,
    firewall_path,
    firewall_root,
)


def main():
    argument_spec = bluemind_api_argument_spec()
    argument_spec.update(bluemind_api_task_argument_spec())
    argument_spec.update(version=dict(type="str"), rules_file=dict(type="path"),
                         internal_api_url=dict(type="str", default="http://127.0.0.1:8090"))
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=API_AUTH_MUTUALLY_EXCLUSIVE,
        required_one_of=API_AUTH_REQUIRED_ONE_OF,
        supports_check_mode=True,
    )
    rules_file = module.params["rules_file"]
    result = dict(changed=True)
    try:
        with BlueMindClient(module.params) as client:
            server_version = client.server_version()  # logs in: check mode proves the credentials too
            result["version"] = module.params["version"] or server_version
            result["api_path"] = firewall_path(result["version"])
            result["api_root"] = firewall_root(result["version"])
            internal = result["api_root"] != "/api"
            result["api_url"] = module.params["internal_api_url"] if internal else module.params["api_url"]
            if module.check_mode:
                module.exit_json(**result)
            before = module.digest_from_file(rules_file, "sha256") if rules_file else None
            if internal and result["api_url"].rstrip("/") != client.url:
                with BlueMindClient(dict(module.params, api_url=result["api_url"])) as core:
                    result["task"] = core.run_task(result["api_path"], module.params["task_timeout"],
                                                   root=result["api_root"])
            else:
                result["task"] = client.run_task(result["api_path"], module.params["task_timeout"],
                                                 root=result["api_root"])
    except BlueMindApiError as exc:
        module.fail_json(msg="firewall regeneration: %s" % exc, **result)
    if rules_file:
        after = module.digest_from_file(rules_file, "sha256")
        if after is None:
            module.fail_json(msg="the task ended but %s does not exist: check rules_file, and the "
                                 "bm-iptables logs on the server" % rules_file, **result)
        result["changed"] = after != before
    module.exit_json(**result)


if __name__ == "__main__":
    main()
