# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""BlueMind 5.x's Keycloak after a move: each domain's realm and OIDC client made to match ``bj``.

BlueMind 5.x logs users in through Keycloak: one realm per domain (``global.virt`` included), an OIDC
client whose secret BlueMind keeps in the domain's properties (``OPENID_CLIENT_SECRET``), and a
"bluemind provider" component that calls the core back. After the databases of the origin are
restored on the target, the target's Keycloak still holds its own realms and secrets, and nobody can
log in. The directory maintenance operation ``domain.keycloak`` (keycloak.service
``KeycloakRealmRepairSupport``) compares the realm, the client (with the secret of ``bj``) and the
provider with what BlueMind expects; when they differ it deletes the realm and builds it again
(``KeycloakHelper.initForDomain``), writing the new secret into ``bj``. Run dry, it only checks.
Its progress lines, which this module reads, are those of that class (5d708160dd56):

- check:  "Keycloak configuration is ok" / "Keycloak configuration is ko"
- repair: "Keycloak configuration don't need repair for domain: <uid>" /
          "Keycloak configuration need repair for domain: <uid>", then "Reset keycloak configuration ..."

``bm-cli maintenance repair --domain-only --ops domain.keycloak <domain>`` (cli.adm RepairCommand) sends
the same call on the domain's own directory entry, whose uid is the domain uid.
"""

from __future__ import annotations

GLOBAL_DOMAIN = "global.virt"
OPERATION = "domain.keycloak"
# Keycloak's own HTTP port on the BlueMind host (keycloak.utils KeycloakAdminClient BASE_URL ":8099").
KEYCLOAK_URL = "http://127.0.0.1:8099"


def domains_to_repair(found, wanted=None):
    """The domains to repair: ``wanted`` when given, else every domain ``found`` plus global.virt
    (``bm-cli ... --all-domains`` leaves global.virt out, and its realm is the admin console's)."""
    names = list(wanted) if wanted else list(found) + [GLOBAL_DOMAIN]
    seen = []
    for name in names:
        if name and name not in seen:
            seen.append(name)
    return seen


def check_outcome(logs):
    """``ok``, ``ko`` or ``unknown`` from the log lines of a dry run (check) of the operation."""
    text = "\n".join(logs or [])
    if "Keycloak configuration is ko" in text:
        return "ko"
    if "Keycloak configuration is ok" in text:
        return "ok"
    return "unknown"


def repair_outcome(logs):
    """``repaired``, ``ok`` (nothing to do) or ``unknown`` from the log lines of a repair."""
    text = "\n".join(logs or [])
    if "need repair for domain" in text and "don't need repair" not in text:
        return "repaired"
    if "don't need repair" in text:
        return "ok"
    return "unknown"


def discovery_url(keycloak_url, domain):
    """The realm's OpenID discovery document: Keycloak answers it only for a realm that exists."""
    return "%s/realms/%s/.well-known/openid-configuration" % (keycloak_url.rstrip("/"), domain)


def discovery_matches(document, domain):
    """The discovery document names the realm of ``domain`` as its issuer."""
    issuer = (document or {}).get("issuer") or ""
    return issuer.rstrip("/").endswith("/realms/%s" % domain)
