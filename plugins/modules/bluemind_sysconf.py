#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: bluemind_sysconf
short_description: Read and set BlueMind system configuration values
version_added: 1.0.0
description:
  - Reads the system configuration (C(GET /api/configuration)) and, when O(values) asks for
    something the server does not have yet, sends only those keys (C(POST /api/configuration)),
    then reads the configuration again to check that the server kept them.
  - C(mynetworks) is compared as a set of networks. The server normalises it, as it adds
    C(127.0.0.0/8) and its own address (C(host) of C(bm.ini), which the configuration carries),
    drops duplicates and does not keep the order. The value is in sync when the server's set is
    the set given plus those two; networks the server has beyond them are removed.
  - Every other value is compared as a string.
  - C(changed) is what the server's configuration shows. When a value was sent but the server,
    after normalising it, holds the same as before, nothing changed.
options:
  values:
    description:
      - Keys and values to set. Booleans become V(true)/V(false), numbers their decimal text.
      - Leave it empty to only read the configuration.
    type: dict
    default: {}
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
  - bluemind.migration.api
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The diff shows the keys of O(values), before and after.
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
- name: Carry the origin's relay networks over to the new server
  bluemind.migration.bluemind_sysconf:
    api_token_file: /etc/bm/bm-core.tok
    values:
      mynetworks: 10.0.0.0/24, 192.0.2.0/28

- name: Read the configuration
  bluemind.migration.bluemind_sysconf:
    api_token_file: /etc/bm/bm-core.tok
  register: sysconf
"""

RETURN = r"""
values:
  description:
    - The server's configuration at the end of the task. Keys whose name contains C(password),
      C(secret) or C(token) are left out.
  returned: always
  type: dict
  sample: {"mynetworks": "10.0.0.0/24, 127.0.0.0/8, 192.0.2.20/32", "fwAdditionalIPs": ""}
updated:
  description: The keys sent to the server (or that would be sent in check mode).
  returned: always
  type: list
  elements: str
  sample: [mynetworks]
"""

import ipaddress
import re

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.bluemind.migration.plugins.module_utils.api import (
    API_AUTH_MUTUALLY_EXCLUSIVE,
    API_AUTH_REQUIRED_ONE_OF,
    BlueMindApiError,
    BlueMindClient,
    bluemind_api_argument_spec,
)

SECRET_KEY = re.compile(r"password|secret|token", re.IGNORECASE)
LOOPBACK = "127.0.0.0/8"


def as_text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def canonical_network(entry):
    try:
        return str(ipaddress.ip_network(entry, strict=False))
    except ValueError:
        return entry  # not an address: compared as written, the server judges it


def networks(value):
    return set(canonical_network(entry) for entry in re.split(r"[\s,]+", value or "") if entry)


def comparable(key, value):
    return networks(value) if key == "mynetworks" else value


def in_sync(key, wanted, configuration):
    """Whether the server holds what ``wanted`` becomes once the server has normalised it."""
    current = comparable(key, configuration.get(key))
    if key == "mynetworks":
        return current == networks(wanted) | networks(LOOPBACK + " " + (configuration.get("host") or ""))
    return current == wanted


def kept(key, wanted, configuration):
    """Whether the server kept a value it was sent (``mynetworks``: every network given is there)."""
    current = comparable(key, configuration.get(key))
    return networks(wanted) <= current if key == "mynetworks" else current == wanted


def visible(values):
    return dict((k, v) for k, v in values.items() if not SECRET_KEY.search(k))


def main():
    argument_spec = bluemind_api_argument_spec()
    argument_spec.update(values=dict(type="dict", default={}))
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=API_AUTH_MUTUALLY_EXCLUSIVE,
        required_one_of=API_AUTH_REQUIRED_ONE_OF,
        supports_check_mode=True,
    )
    wanted = dict((key, as_text(value)) for key, value in module.params["values"].items())
    try:
        with BlueMindClient(module.params) as client:
            current = client.get_configuration()
            pending = dict((k, v) for k, v in wanted.items() if not in_sync(k, v, current))
            before = visible(dict((k, current.get(k)) for k in wanted))
            after = dict(before, **visible(pending))
            changed = bool(pending)
            if pending and not module.check_mode:
                client.set_configuration(pending)
                previous, current = current, client.get_configuration()
                after = visible(dict((k, current.get(k)) for k in wanted))
                changed = any(comparable(k, current.get(k)) != comparable(k, previous.get(k)) for k in pending)
                refused = sorted(k for k, v in pending.items() if not kept(k, v, current))
                if refused:
                    module.fail_json(
                        msg="the server did not keep %s: it answered %s; check the values against "
                            "the admin console's rules" % (", ".join(refused), visible(
                                dict((k, current.get(k)) for k in refused))),
                        changed=changed, values=visible(current), updated=sorted(pending))
    except BlueMindApiError as exc:
        module.fail_json(msg="system configuration: %s" % exc)
    result = dict(changed=changed, values=visible(current), updated=sorted(pending))
    if module._diff:
        result["diff"] = dict(before=before, after=after)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
