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
  - C(mynetworks) is predicted as the server normalises it (C(MyNetworksSanitizor) and
    C(MyNetworksValidator) of BlueMind's core) and compared as a set. The server splits the value on
    spaces and commas, strips a leading C(!), keeps each entry as written, and always adds
    C(127.0.0.0/8), every address of its server directory (C(t_server)) as C(/32) and every
    non-loopback IPv4 address of the host as C(/32) (see O(server_addresses)). The value is in sync
    when the server's set is exactly that; networks the server has beyond it are removed.
  - An entry the server would refuse (not an address, a mask out of range, an empty value) fails the
    task before anything is sent, in check mode too; the server would answer HTTP 500.
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
  replace_addresses:
    description:
      - Addresses of a former server to take out of C(mynetworks), as bare addresses or C(/32) entries
        (networks with a wider mask stay). O(replace_with) is added as C(<address>/32) in their place.
      - The starting value is C(mynetworks) of O(values) when given, else the server's current value.
        Used when a server moved to another address (the migration's DNS switch).
    type: list
    elements: str
  replace_with:
    description:
      - The server's new address, added as C(/32) to C(mynetworks) with O(replace_addresses).
    type: str
  server_addresses:
    description:
      - The addresses the server adds to C(mynetworks) by itself (each C(t_server) address and each
        non-loopback IPv4 address of the host), used to predict its value.
      - By default the configuration's C(host), plus, when O(api_url) names the local host (the task
        runs on the BlueMind server, the default), the managed host's IPv4 addresses that have a
        broadcast address (C(ip -o -4 addr show)), as BlueMind counts them. Give the list for a
        server with several entries in its server directory, or when the API is remote.
    type: list
    elements: str
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

- name: After a move to a new address, swap the old server's entries in "My Networks" for the new one
  bluemind.migration.bluemind_sysconf:
    api_token_file: /etc/bm/bm-core.tok
    replace_addresses: [192.0.2.10]
    replace_with: 192.0.2.20

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
server_addresses:
  description: The addresses the module expects the server to add to C(mynetworks) by itself.
  returned: always
  type: list
  elements: str
  sample: [192.0.2.20]
updated:
  description: The keys sent to the server (or that would be sent in check mode).
  returned: always
  type: list
  elements: str
  sample: [mynetworks]
"""

import re

from urllib.parse import urlparse

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.bluemind.migration.plugins.module_utils.api import (
    API_AUTH_MUTUALLY_EXCLUSIVE,
    API_AUTH_REQUIRED_ONE_OF,
    BlueMindApiError,
    BlueMindClient,
    bluemind_api_argument_spec,
)
from ansible_collections.bluemind.migration.plugins.module_utils import mynetworks as mn

SECRET_KEY = re.compile(r"password|secret|token", re.IGNORECASE)
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def as_text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def comparable(key, value):
    return mn.sanitized_parts(value) if key == "mynetworks" else value


def predicted(key, wanted, server_addresses):
    """What the server holds once it has normalised ``wanted``."""
    return mn.predict(wanted, server_addresses) if key == "mynetworks" else wanted


def shown(key, value):
    return mn.join(value) if key == "mynetworks" else value


def kept(key, wanted, configuration):
    """Whether the server kept a value it was sent (``mynetworks``: every entry given is there)."""
    current = comparable(key, configuration.get(key))
    return mn.sanitized_parts(wanted) <= current if key == "mynetworks" else current == wanted


def visible(values):
    return dict((k, v) for k, v in values.items() if not SECRET_KEY.search(k))


def local_ipv4_addresses(module):
    """Non-loopback IPv4 addresses with a broadcast address, as BlueMind lists the host's own."""
    ip = module.get_bin_path("ip")
    if not ip:
        return []
    rc, out, _err = module.run_command([ip, "-o", "-4", "addr", "show"])
    if rc != 0:
        return []
    found = []
    for line in out.splitlines():
        match = re.search(r"\binet\s+([0-9.]+)/\d+\s+brd\s", line)
        if match and not match.group(1).startswith("127"):
            found.append(match.group(1))
    return found


def server_addresses(module, configuration):
    if module.params["server_addresses"] is not None:
        return sorted(set(module.params["server_addresses"]))
    found = [configuration["host"]] if configuration.get("host") else []
    if (urlparse(module.params["api_url"]).hostname or "") in LOCAL_HOSTS:
        found += local_ipv4_addresses(module)
    return sorted(set(found))


def wanted_values(module, current):
    wanted = dict((key, as_text(value)) for key, value in module.params["values"].items())
    if module.params["replace_addresses"] or module.params["replace_with"]:
        base = wanted.get("mynetworks", current.get("mynetworks") or "")
        wanted["mynetworks"] = mn.join(mn.replace_addresses(
            base, module.params["replace_addresses"] or [], module.params["replace_with"]))
    return wanted


def main():
    argument_spec = bluemind_api_argument_spec()
    argument_spec.update(
        values=dict(type="dict", default={}),
        replace_addresses=dict(type="list", elements="str"),
        replace_with=dict(type="str"),
        server_addresses=dict(type="list", elements="str"),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=API_AUTH_MUTUALLY_EXCLUSIVE,
        required_one_of=API_AUTH_REQUIRED_ONE_OF,
        required_by=dict(replace_addresses="replace_with"),
        supports_check_mode=True,
    )
    try:
        with BlueMindClient(module.params) as client:
            current = client.get_configuration()
            wanted = wanted_values(module, current)
            own = server_addresses(module, current)
            try:
                expected = dict((k, predicted(k, v, own)) for k, v in wanted.items())
            except mn.InvalidMyNetworksError as exc:
                module.fail_json(msg="%s; BlueMind would answer HTTP 500 INVALID_PARAMETER. Nothing was sent." % exc,
                                 values=visible(current), server_addresses=own)
            pending = dict((k, v) for k, v in wanted.items() if comparable(k, current.get(k)) != expected[k])
            before = visible(dict((k, current.get(k)) for k in wanted))
            after = dict(before, **visible(dict((k, shown(k, expected[k])) for k in pending)))
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
                        changed=changed, values=visible(current), updated=sorted(pending),
                        server_addresses=own)
    except BlueMindApiError as exc:
        module.fail_json(msg="system configuration: %s" % exc)
    result = dict(changed=changed, values=visible(current), updated=sorted(pending), server_addresses=own)
    if module._diff:
        result["diff"] = dict(before=before, after=after)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
