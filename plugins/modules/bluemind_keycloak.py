#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: bluemind_keycloak
short_description: Make BlueMind 5.x's Keycloak match the restored databases (domain.keycloak repair)
version_added: 1.2.0
description:
  - BlueMind 5.x logs users in through Keycloak, with one realm per domain and an OIDC client whose
    secret BlueMind keeps in the domain's properties in database C(bj). After the origin's databases
    are restored on a target, the target's Keycloak does not match them and nobody can log in.
  - Runs BlueMind's directory maintenance operation C(domain.keycloak) on every domain (and on
    C(global.virt)) through the admin API, as C(bm-cli maintenance repair --domain-only --ops domain.keycloak
    <domain>) does. BlueMind rebuilds a realm that does not match and leaves a matching one alone.
  - Then checks each domain (the same operation run dry) and, read-only, that Keycloak serves each
    realm's OpenID discovery document.
  - BlueMind 4.x has no Keycloak; do not run it there.
options:
  domains:
    description:
      - Domain uids to repair. By default every domain the API lists (C(GET /api/domains)) and C(global.virt).
    type: list
    elements: str
  keycloak_url:
    description:
      - Keycloak's own URL on the BlueMind host, for the read-only realm check. Empty skips that check.
    type: str
    default: http://127.0.0.1:8099
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
  - bluemind.migration.api
  - bluemind.migration.api.task
attributes:
  check_mode:
    support: full
    details:
      - Runs the check only (the operation dry); C(changed) says whether a repair would be made.
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
- name: Make Keycloak match the restored databases
  bluemind.migration.bluemind_keycloak:
    api_token_file: /etc/bm/bm-core.tok
"""

RETURN = r"""
domains:
  description: One entry per domain, with what was found and done.
  returned: always
  type: list
  elements: dict
  contains:
    domain:
      description: The domain uid.
      type: str
    repair:
      description: V(repaired), V(ok) (nothing to do), V(unknown) (no progress line found), or V(skipped) in check mode.
      type: str
    check:
      description: The check after the repair, V(ok), V(ko) or V(unknown).
      type: str
    realm:
      description: Whether Keycloak serves the realm's discovery document (V(null) when not checked).
      type: bool
  sample: [{"domain": "bm.lan", "repair": "repaired", "check": "ok", "realm": true}]
"""

import json

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.urls import open_url
from ansible_collections.bluemind.migration.plugins.module_utils.api import (
    API_AUTH_MUTUALLY_EXCLUSIVE,
    API_AUTH_REQUIRED_ONE_OF,
    BlueMindApiError,
    BlueMindClient,
    bluemind_api_argument_spec,
    bluemind_api_task_argument_spec,
)
from ansible_collections.bluemind.migration.plugins.module_utils import keycloak


def realm_served(module, domain):
    """Keycloak answers the realm's discovery document, naming that realm (read-only)."""
    url = keycloak.discovery_url(module.params["keycloak_url"], domain)
    try:
        response = open_url(url, method="GET", timeout=module.params["api_timeout"],
                            validate_certs=module.params["validate_certs"], http_agent="bluemind.migration")
        return keycloak.discovery_matches(json.loads(to_text(response.read())), domain)
    except Exception:  # any failure (refused, 404, not JSON) means the realm is not served
        return False


def main():
    argument_spec = bluemind_api_argument_spec()
    argument_spec.update(bluemind_api_task_argument_spec())
    argument_spec.update(domains=dict(type="list", elements="str"),
                         keycloak_url=dict(type="str", default=keycloak.KEYCLOAK_URL, no_log=False))  # a URL, not a key
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=API_AUTH_MUTUALLY_EXCLUSIVE,
        required_one_of=API_AUTH_REQUIRED_ONE_OF,
        supports_check_mode=True,
    )
    timeout = module.params["task_timeout"]
    result = dict(changed=False, domains=[])
    try:
        with BlueMindClient(module.params) as client:
            found = [] if module.params["domains"] else client.domains()
            for domain in keycloak.domains_to_repair(found, module.params["domains"]):
                entry = dict(domain=domain, repair="skipped", check="unknown", realm=None)
                result["domains"].append(entry)
                if not module.check_mode:
                    done = client.repair_entry(domain, domain, [keycloak.OPERATION], timeout)
                    entry["repair"] = keycloak.repair_outcome(done.get("logs"))
                checked = client.repair_entry(domain, domain, [keycloak.OPERATION], timeout, dry=True)
                entry["check"] = keycloak.check_outcome(checked.get("logs"))
                if module.check_mode:
                    result["changed"] = result["changed"] or entry["check"] != "ok"
                else:
                    result["changed"] = result["changed"] or entry["repair"] == "repaired"
                if module.params["keycloak_url"] and not module.check_mode:
                    entry["realm"] = realm_served(module, domain)
    except BlueMindApiError as exc:
        module.fail_json(msg="keycloak repair: %s" % exc, **result)
    if module.check_mode:
        module.exit_json(**result)
    bad = [d["domain"] for d in result["domains"] if d["check"] == "ko" or d["realm"] is False]
    if bad:
        module.fail_json(
            msg="after the domain.keycloak repair, Keycloak still does not match BlueMind for %s: users of these "
                "domains cannot log in. Check that bm-keycloak runs, that its admin password is this server's "
                "/etc/bm/bm-core.tok (the core logs in to Keycloak's master realm as `admin` with it), and "
                "/var/log/bm/core.log; then rerun (bm-cli maintenance repair --domain-only --ops domain.keycloak "
                "<domain>)" % ", ".join(bad), **result)
    unknown = [d["domain"] for d in result["domains"] if d["check"] == "unknown"]
    if unknown:
        module.warn("the domain.keycloak check of %s wrote no progress line this module knows: look at the task "
                    "log (bm-cli maintenance repair --dry --verbose --domain-only --ops domain.keycloak <domain>)"
                    % ", ".join(unknown))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
