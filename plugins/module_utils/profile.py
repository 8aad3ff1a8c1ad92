# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the migration moves, calls and checks for each BlueMind major: the one place that knows.

The origin's major comes from the admin API's ``softwareVersion`` (or the upstream part of the
bm-core package version), and an explicit ``bluemind_major`` overrides it. From it, :func:`profile`
gives the data trees to pull, the configuration paths and patterns to copy, the admin calls of the
cutover and the checks. Every entry says where the product shows it (BlueMind 5.x is GitHub
``mdhender/bluemindfork`` master, commit 5d708160dd56; 4.x is its commit 410e30fb0 and the vendor
procedure). The roles read it through the ``bluemind_profile`` filter; nothing here touches a host.

A tree or file that the major does not have is not an error: it is simply not in its profile (or it
is optional and skipped when the origin lacks it). One that the major must have and the origin lacks
is named by :func:`missing_required` so that prereq fails before any change.
"""

from __future__ import annotations

SUPPORTED = (4, 5)

# Data trees, in pull order: (path, required). "Required" = the product cannot run without it, so an
# origin without it is not a BlueMind of that major (or not the host meant). The others appear on
# first use: bm-node's own disk monitoring says /var/spool/bm-hsm "doesn't exist at the beginning"
# (bluemindfork packaging/bm-node/ROOT/usr/share/bm-node/monitoring/system/disks.sh).
TREES = {
    # The vendor procedure's seven (BM4 "Changer de distribution"), then the Hollow snapshots of the
    # directory (4.9; DirectorySerializer BASE_DATA_DIR). The list is today's 4.x list, unchanged.
    4: (
        ("/var/spool/cyrus", True),
        ("/var/lib/cyrus", True),
        ("/var/spool/bm-hsm", False),
        ("/var/spool/sieve", False),
        ("/var/spool/bm-elasticsearch", True),
        ("/var/spool/bm-docs", False),
        ("/var/spool/bm-filehosting", False),
        ("/var/spool/bm-hollowed", False),
    ),
    # BlueMind 5.x has no Cyrus (bm-conf's postinst removeCyrus). The doc.bluemind.net 5.x procedure's
    # rsync list starts with /var/spool/bm-hsm/ (its remainder is not readable here: unconfirmed).
    5: (
        # archive tier, by-hash bodies: SpoolBackingStore "/var/spool/bm-hsm/data/by_hash/<c0>/<c1>/<guid>.zst"
        ("/var/spool/bm-hsm", False),
        # message bodies "/var/spool/cyrus/data/by_hash/<c0>/<c1>/<guid>.zst" (SpoolBackingStore,
        # SpoolStoreFactory mkdirs), plus the legacy Cyrus layout on servers upgraded from 4.x
        ("/var/spool/cyrus", True),
        ("/var/spool/bm-elasticsearch", True),  # ElasticWorker, TopologyChangePlanner
        ("/var/spool/bm-docs", False),  # document.persistence.fs Activator
        ("/var/spool/bm-filehosting", False),  # FileSystemFileHostingService.DEFAULT_STORE_PATH
        # directory/ (DirectorySerializer) and tokens/ (authentication TokensStore BASE_DATA_DIR)
        ("/var/spool/bm-hollowed", False),
    ),
}

# Trees of the other major that this one does not use: on an origin upgraded from 4.x they may still
# be there, and are left behind on purpose (the report names them). /var/spool/bm-mail/bodies is the
# 5.x parser's staging folder (backend.mail.parsing Bodies.STAGING, one sub-folder per session id,
# recreated with mkdirs at start): what it holds belongs to sessions that end when BlueMind stops, so
# it is not data to move.
LEFT_BEHIND = {
    4: (),
    5: ("/var/lib/cyrus", "/var/spool/sieve", "/var/spool/bm-mail"),
}

# Configuration copied in one rsync pass (paths relative to /, all required: rsync fails on a missing
# one) and shell patterns resolved on the origin (what exists is copied).
CONFIG_PATHS = {
    # Today's 4.x list, unchanged: the vendor's, plus what it misses (see config_copy's defaults).
    4: (
        "etc/bm/",
        "etc/bm-hps/",
        "etc/bm-webmail/",
        "etc/ssl/certs/bm_cert.pem",
        "var/lib/bm-ca/",
        "usr/share/bm-elasticsearch/config/elasticsearch.yml",
        "etc/postfix/main.cf",
        "etc/postfix/master.cf",
    ),
    # 5.x: no /etc/bm-hps (bm-hps is in bm-conf's deprecatedServices). /etc/bm holds bm.ini,
    # bm-core.tok, mcast.id, subscription.bmz (system.helper ArchiveHelper.SUBSCRIPTION_ARCHIVE_PATH)
    # and the optional kafka.properties (kafka.configuration.fs FileSystemBrokerConf): all travel with it.
    # bm_cert.pem and /var/lib/bm-ca: bm-client-access createcert.sh; elasticsearch.yml: dataprotect
    # protectConfigurationFiles.sh.
    5: (
        "etc/bm/",
        "etc/ssl/certs/bm_cert.pem",
        "var/lib/bm-ca/",
        "usr/share/bm-elasticsearch/config/elasticsearch.yml",
        "etc/postfix/main.cf",
        "etc/postfix/master.cf",
    ),
}
CONFIG_GLOBS = {
    4: (
        "/etc/ssl/certs/bm_cert-*.pem",
        "/etc/nginx/bm-local.d",
        "/etc/imapd*",
        "/etc/cyrus*",
        "/etc/postfix/*-flat",
    ),
    # 5.x's own backup copies every /etc/bm* (dataprotect protectConfigurationFiles.sh): /etc/bm-webmail
    # (nginx includes of bm-client-access's configure-nginx.sh, when bm-webmail is installed) and
    # /etc/bm-keycloak (per-domain Kerberos keytabs and krbconf.json, keycloak.utils KerberosConfigHelper).
    # No /etc/imapd* or /etc/cyrus* (no Cyrus).
    5: (
        "/etc/ssl/certs/bm_cert-*.pem",
        "/etc/nginx/bm-local.d",
        "/etc/bm-webmail",
        "/etc/bm-keycloak",
        "/etc/postfix/*-flat",
    ),
}

# Admin calls of the cutover. The root is the REST prefix: BlueMind serves an interface annotated
# @BMApi(internal = true) under /internal-api instead of /api (core.rest RestServiceApiDescriptionParser),
# and nginx proxies only /api/ (bm-client-access bluemind-vhosts.conf), so an internal call goes to
# the core's own port 8090. The same X-BM-ApiKey session authenticates both (RestRootHandler).
FIREWALL = {
    # ISecurityMgmt of 4.x (netbluemind4 4.9.3884)
    4: dict(root="/api", path="/system/security/_updatefirewallrules", internal=False),
    # IInternalFirewallMgmt (system.api), answered by SecurityMgmt.updateFirewallRules: a TaskRef,
    # role manageSystemConf. `bm-cli maintenance update-fw` (cli.adm UpdateFirewallCommand) calls the same.
    5: dict(root="/internal-api", path="/system/firewall/_updatefirewallrules", internal=True),
}
# Same interface on both majors: IMailDeliveryMgmt @Path("/system/maildelivery/mgmt") _repair and
# ISystemConfiguration @Path("/configuration") GET/POST (system.api, 410e30fb0 and master).
MAIL_REPAIR = dict(root="/api", path="/system/maildelivery/mgmt/_repair")
SYSCONF = dict(root="/api", path="/configuration")
# 5.x: Keycloak realm + OIDC client per domain, repaired by the directory maintenance operation
# "domain.keycloak" (keycloak.service KeycloakRealmRepairSupport) on each domain's own entry.
KEYCLOAK_REPAIR_OP = "domain.keycloak"

# PostgreSQL databases moved by dump and row sync. 5.x's Keycloak database is not moved: its name is
# set by bm-keycloak's createdb.sh, which the source mirror does not have, and everything in it that
# BlueMind relies on is rebuilt from bj by the domain.keycloak repair.
DATABASES = {4: ("bj", "bj-data"), 5: ("bj", "bj-data")}


class ProfileError(Exception):
    """The major cannot be told or is not supported; the message says what to set."""


def resolve_major(version=None, override=None):
    """The major to plan for: ``override`` (``5``, ``"5"``, ``"5.7"``) wins over ``version``."""
    for source, value in (("bluemind_major", override), ("the origin's version", version)):
        if value is None or str(value).strip() == "":
            continue
        head = str(value).strip().split(".", 1)[0]
        if not head.isdigit():
            raise ProfileError("cannot read a BlueMind major from %s '%s': set bluemind_major to 4 or 5"
                               % (source, value))
        major = int(head)
        if major not in SUPPORTED:
            raise ProfileError("BlueMind %s (%s) is not supported: only %s are; set bluemind_major if the "
                               "version is misread" % (value, source, " and ".join("%d.x" % m for m in SUPPORTED)))
        return major
    raise ProfileError("the origin's BlueMind version is unknown (its admin API did not answer and no bm-core "
                       "package was found): set bluemind_major to 4 or 5")


def profile(version=None, override=None):
    """Everything that depends on the major, as plain data (JSON-able: it goes into the state)."""
    major = resolve_major(version, override)
    return dict(
        major=major,
        trees=[path for path, _required in TREES[major]],
        required_trees=[path for path, required in TREES[major] if required],
        left_behind=list(LEFT_BEHIND[major]),
        config_paths=list(CONFIG_PATHS[major]),
        config_globs=list(CONFIG_GLOBS[major]),
        databases=list(DATABASES[major]),
        admin=dict(
            firewall=dict(FIREWALL[major]),
            mail_repair=dict(MAIL_REPAIR),
            sysconf=dict(SYSCONF),
            keycloak_repair=major >= 5,
        ),
        checks=dict(
            # the smoke message is found by its row in bj-data on both majors (bodies are zstd files on 5.x)
            delivery="bj-data",
            keycloak=major >= 5,
        ),
    )


def candidate_trees():
    """Every tree of every supported major (what prereq may have to describe before the major is known)."""
    seen = []
    for major in SUPPORTED:
        for path, _required in TREES[major]:
            if path not in seen:
                seen.append(path)
    return seen


def trees_to_pull(plan, existing, override=None):
    """The trees a pull moves: the operator's ``override`` when given (as is), otherwise the profile's
    trees that exist on the origin (``existing``: the paths found there), in the profile's order."""
    if override:
        return list(override)
    present = set(p.rstrip("/") for p in existing)
    return [path for path in plan["trees"] if path in present]


def missing_required(plan, existing, override=None):
    """Required trees of the profile the origin lacks (none when the operator chose the trees)."""
    if override:
        return []
    present = set(p.rstrip("/") for p in existing)
    return [path for path in plan["required_trees"] if path not in present]


def config_lists(plan, paths_override=None, globs_override=None):
    """The configuration to copy: the operator's lists win, each on its own."""
    return dict(
        paths=list(paths_override) if paths_override else list(plan["config_paths"]),
        globs=list(globs_override) if globs_override else list(plan["config_globs"]),
    )


def missing_config(plan, existing_paths, paths_override=None):
    """Required configuration paths (relative to /) the origin lacks."""
    wanted = list(paths_override) if paths_override else plan["config_paths"]
    present = set(p.strip("/") for p in existing_paths)
    return [p for p in wanted if p.strip("/") not in present]
