# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the collection assumes about BlueMind (lab/FIDELITY.md), compared with what the probe read on
a real origin and target. The playbook playbooks/probe.yml only gathers (read-only commands and GETs)
and prints; every judgement is here, so it is unit-tested."""

from __future__ import annotations

DOCUMENTATION = r"""
name: probe_rows
short_description: Compare what the probe read on the origin and the target with lab/FIDELITY.md
version_added: 1.2.0
description:
  - Takes what C(playbooks/probe.yml) read on each host (raw command outputs, API answers, the result
    of M(bluemind.migration.bluemind_pg_info)) and returns one row per row of C(lab/FIDELITY.md),
    with its stable id, its status (V(confirmed), V(differs) or V(not observable)) and what was found.
  - The filter P(bluemind.migration.probe_table#filter) renders these rows as the table the operator sends back.
positional: expect
options:
  _input:
    description:
      - "What the probe read, C({origin: {...}, target: {...}}); each host's keys are described in
        C(playbooks/probe.yml). A key that is missing makes its rows V(not observable)."
    type: dict
    required: true
  expect:
    description:
      - "Inputs of the collection the probe compares with, C({trees: [...], config_paths: [...]})."
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Print the table
  ansible.builtin.debug:
    msg: "{{ (probe_observed | bluemind.migration.probe_rows({'trees': bluemind_trees})) | bluemind.migration.probe_table }}"
"""

RETURN = r"""
_value:
  description: One dict per FIDELITY row, C(id), C(row) (its number), C(what), C(status), C(found).
  type: list
  elements: dict
"""

import json
import re

from ansible_collections.bluemind.migration.plugins.module_utils.pg import older_major

CONFIRMED = "confirmed"
DIFFERS = "differs"
NOT_OBSERVABLE = "not observable"

HOSTS = ("origin", "target")
PG_CATALOG_EXTENSIONS = ("btree_gin", "hstore", "ltree", "unaccent")
PUBLIC_EXTENSIONS = ("pg_stat_statements", "pg_repack")
DATABASES = ("bj", "bj-data")
API_PATHS = ("state", "version", "infos", "configuration")
VERSION_KEYS = {"softwareVersion", "databaseVersion", "versionName", "needsUpgrade"}
INFOS_KEYS = {"defaultDomain", "softwareVersion", "releaseName"}
SYSTEMCONF_KEYS = ("host", "hz-member-address", "external_url")
# What BlueMind 4.9 / 5.x hold beside the seven trees (issue 10, point 7).
HOLLOWED = "/var/spool/bm-hollowed"
FIREWALL_SCRIPT = "/etc/init.d/bm-iptables"
CYRUS_REPLICATION = "/etc/cyrus-replication"
BM_CLI = "/usr/bin/bm-cli"
NGINX_VHOSTS = "/etc/nginx/bluemind"

# Stable ids of the rows of lab/FIDELITY.md, in its order: the probe, the table and the docs use them.
ROWS = (
    (1, "ext-pg-catalog", "hstore, btree_gin, ltree, unaccent in pg_catalog"),
    (2, "ext-every-db", "every database has every extension"),
    (3, "ext-public", "pg_stat_statements, pg_repack in public"),
    (4, "locale-en-us", "databases and host use en_US.UTF-8"),
    (5, "bmctl-units", "bmctl status: bm-nginx, then bluemind.target's units"),
    (6, "bmctl-lines", "bmctl status: line per unit, exit code"),
    (7, "bmctl-stop", "bmctl stop leaves bm-nginx up, status exits 1"),
    (8, "core-notify", "bm-core.service Type=notify, 300 s start timeout"),
    (9, "api-bad-key", "unknown key 401 AUTHENTICATION_FAIL, no key 403"),
    (10, "api-infos", "_infos keys, defaultDomain from t_systemconf"),
    (11, "systemconf-keys", "t_systemconf holds host, hz-member-address, external_url"),
    (12, "version-per-distro", "softwareVersion equal, package version per distribution"),
    (13, "api-paths", "state, version, _infos, configuration (bm-core.tok) answer"),
    (14, "trees-config", "data trees and config files where the collection reads them"),
    (15, "bm-packages", "BlueMind packages of the origin installed on the target"),
    (16, "hollowed", "/var/spool/bm-hollowed (directory snapshots)"),
    (17, "nginx-vhosts", "nginx vhosts: default + one per domain of /etc/bm/domains-settings"),
    (18, "firewall-script", "firewall rules in /etc/init.d/bm-iptables"),
    (19, "mynetworks-normalised", "My Networks normalised by the server on write"),
    (20, "webmail-mail-host", "webmail profiles keyed by rc_users.mail_host in bj"),
    (21, "cyrus-replication", "/etc/cyrus-replication (core_sync_host, 4.x)"),
    (22, "backup-spool", "backup spool named after the server's address"),
    (23, "tick-reconfigure", "bm-cli present (tick reconfigure after an address change)"),
    (24, "changeset-partitions", "t_container_changeset hash-partitioned (bj-data)"),
    (25, "changeset-trigger", "trigger changelog_insert on t_container_changelog"),
    (26, "enum-keyless", "enum t_directory_entry_account_type; t_mailbox_record without a key"),
    (27, "pg-majors", "target's PostgreSQL major at least the origin's"),
    (28, "pg-superuser", "bj a PostgreSQL superuser on the origin (reads uncounted, statistics socket read)"),
    (29, "inotify-follow", "the final pull's follower can watch the origin's trees (python3, inotify, watch limit)"),
)
ROW_IDS = tuple(row[1] for row in ROWS)

_BMCTL_LINE = (
    ("running", re.compile(r"^(?P<u>\S+) is running\.$")),
    ("stopped", re.compile(r"^(?P<u>\S+) is stopped\.$")),
    ("fail", re.compile(r"^(?P<u>\S+) fail - check systemctl status (?P=u) and journalctl -xe -u (?P=u)$")),
    ("started_while_stopped", re.compile(
        r"^(?P<u>\S+) started while BlueMind is stopped - please restart bluemind: systemctl restart bluemind\.target$")),
    ("disabled", re.compile(r"^(?P<u>\S+) is disabled on this node$")),
)


class NotObservable(Exception):
    """The probe could not read what the row needs; the message says why."""


def _host(observed, name):
    host = observed.get(name)
    if not isinstance(host, dict) or host.get("unreachable"):
        raise NotObservable("%s not reached" % name)
    return host


def _need(host, key, name):
    value = host.get(key)
    if value is None:
        raise NotObservable("%s: %s not read" % (name, key))
    return value


def _pg_databases(host, name):
    pg = _need(host, "pg", name)
    if pg.get("failed"):
        raise NotObservable("%s: PostgreSQL not read (%s)" % (name, pg.get("msg", "failed")))
    return dict((db["name"], db) for db in pg.get("databases", []) if db.get("exists"))


def _schemas(db):
    return dict((ext["name"], ext["schema"]) for ext in db.get("extensions", []))


def _api_answers(api):
    """The API answers by name: a dict already, or the results of the probe's uri loop (each with
    C(item.name), C(status), C(json), C(msg))."""
    if isinstance(api, dict):
        return api
    answers = {}
    for result in api or []:
        item = result.get("item") or {}
        if item.get("name"):
            answers[item["name"]] = dict(status=result.get("status"), json=result.get("json"),
                                         msg=result.get("msg"))
    return answers


def _api(host, name, path):
    answer = _api_answers(_need(host, "api", name)).get(path)
    if not isinstance(answer, dict) or answer.get("status") in (None, -1):
        raise NotObservable("%s: %s did not answer (%s)" % (
            name, path, (answer or {}).get("msg", "no answer") if isinstance(answer, dict) else "not asked"))
    return answer


def _norm_locale(value):
    return re.sub(r"[-_.]", "", (value or "").lower())


def _upstream(package_version):
    return package_version.rsplit("-", 1)[0] if package_version and "-" in package_version else package_version


def _packages(host, name):
    text = _need(host, "packages", name)
    result = {}
    for line in text.splitlines():
        parts = line.split()
        # dpkg-query -W -f '${Package} ${Version} ${db:Status-Abbrev}\n': installed = "ii "
        if len(parts) >= 3 and parts[2].startswith("ii"):
            result[parts[0]] = parts[1]
    return result


def _paths(host, name):
    """`present PATH` / `absent PATH` lines -> {path: bool}."""
    text = _need(host, "paths", name)
    result = {}
    for line in text.splitlines():
        state, dummy, path = line.partition(" ")
        if state in ("present", "absent") and path:
            result[path] = state == "present"
    return result


# ---- one function per row: returns (status, found) or raises NotObservable ----

def _row_ext_pg_catalog(observed, expect):
    found, bad = [], False
    for name in HOSTS:
        for dbname, db in sorted(_pg_databases(_host(observed, name), name).items()):
            schemas = _schemas(db)
            wrong = ["%s in %s" % (ext, schemas.get(ext, "(absent)")) for ext in PG_CATALOG_EXTENSIONS
                     if schemas.get(ext) != "pg_catalog"]
            bad = bad or bool(wrong)
            found.append("%s %s: %s" % (name, dbname, ", ".join(wrong) if wrong else "all four in pg_catalog"))
    return (DIFFERS if bad else CONFIRMED), found


def _row_ext_every_db(observed, expect):
    found, bad = [], False
    for name in HOSTS:
        dbs = _pg_databases(_host(observed, name), name)
        missing_dbs = [db for db in DATABASES if db not in dbs]
        sets = dict((db, set(_schemas(dbs[db]))) for db in DATABASES if db in dbs)
        lacking = ["%s lacks %s" % (db, ", ".join(sorted(set(PG_CATALOG_EXTENSIONS) - exts)))
                   for db, exts in sorted(sets.items()) if set(PG_CATALOG_EXTENSIONS) - exts]
        if missing_dbs:
            lacking.append("no database %s" % ", ".join(missing_dbs))
        bad = bad or bool(lacking)
        found.append("%s: %s" % (name, "; ".join(lacking) if lacking else "bj and bj-data have the four"))
    return (DIFFERS if bad else CONFIRMED), found


def _row_ext_public(observed, expect):
    found, bad = [], False
    for name in HOSTS:
        for dbname, db in sorted(_pg_databases(_host(observed, name), name).items()):
            schemas = _schemas(db)
            parts = []
            for ext in PUBLIC_EXTENSIONS:
                schema = schemas.get(ext)
                if schema is None:
                    parts.append("%s absent" % ext)
                    bad = bad or ext == "pg_stat_statements"
                else:
                    parts.append("%s in %s" % (ext, schema))
                    bad = bad or schema != "public"
            found.append("%s %s: %s" % (name, dbname, ", ".join(parts)))
    return (DIFFERS if bad else CONFIRMED), found


def _row_locale(observed, expect):
    found, bad = [], False
    want = _norm_locale("en_US.UTF-8")
    for name in HOSTS:
        host = _host(observed, name)
        dbs = _pg_databases(host, name)
        locales = [_norm_locale(line) for line in _need(host, "locales", name).split()]
        parts = []
        for dbname, db in sorted(dbs.items()):
            if _norm_locale(db.get("collate")) != want or _norm_locale(db.get("ctype")) != want:
                bad = True
                parts.append("%s %s/%s" % (dbname, db.get("collate"), db.get("ctype")))
        if want not in locales:
            bad = True
            parts.append("locale -a has no en_US.UTF-8")
        found.append("%s: %s" % (name, "; ".join(parts) if parts else "en_US.UTF-8 everywhere"))
    return (DIFFERS if bad else CONFIRMED), found


def _bmctl_lines(host, name):
    bmctl = _need(host, "bmctl", name)
    if bmctl.get("rc") is None or bmctl.get("rc") == 127:
        raise NotObservable("%s: bmctl not found" % name)
    parsed = []
    for line in bmctl.get("stdout", "").splitlines():
        if not line.strip():
            continue
        for kind, pattern in _BMCTL_LINE:
            match = pattern.match(line.strip())
            if match:
                parsed.append((match.group("u"), kind, line))
                break
        else:
            parsed.append((None, "unknown", line))
    return bmctl["rc"], parsed


def _target_units(host, name):
    text = _need(host, "target_units", name)
    return [line.strip() for line in text.splitlines()[1:] if line.strip()]


def _row_bmctl_units(observed, expect):
    found, bad = [], False
    for name in HOSTS:
        host = _host(observed, name)
        parsed = _bmctl_lines(host, name)[1]
        printed = [entry[0] for entry in parsed]
        units = _target_units(host, name)
        nginx_loaded = bool(host.get("nginx_loaded"))
        want = (["bm-nginx"] if nginx_loaded else []) + units
        if printed == want or (printed[:1] == want[:1] and sorted(printed) == sorted(want)):
            found.append("%s: %d lines, %s" % (name, len(printed), "bm-nginx first" if nginx_loaded else "no bm-nginx"))
        else:
            bad = True
            found.append("%s: printed %s; bluemind.target wants %s%s" % (
                name, ", ".join(str(p) for p in printed), ", ".join(units),
                " (bm-nginx loaded)" if nginx_loaded else ""))
    return (DIFFERS if bad else CONFIRMED), found


def _row_bmctl_lines(observed, expect):
    found, bad = [], False
    for name in HOSTS:
        host = _host(observed, name)
        rc, parsed = _bmctl_lines(host, name)
        unknown = [line for unit, kind, line in parsed if kind == "unknown"]
        inconsistent = any(entry[1] in ("fail", "started_while_stopped") for entry in parsed)
        kinds = sorted(set(entry[1] for entry in parsed if entry[1] != "unknown"))
        if unknown or rc != (1 if inconsistent else 0):
            bad = True
            found.append("%s: exit %s%s" % (name, rc, "; unknown lines: " + " | ".join(unknown) if unknown else
                                            " while lines are " + ", ".join(kinds)))
        else:
            found.append("%s: exit %s, lines %s (this state only)" % (name, rc, ", ".join(kinds)))
    return (DIFFERS if bad else CONFIRMED), found


def _row_bmctl_stop(observed, expect):
    found, seen, bad = [], False, False
    for name in HOSTS:
        host = _host(observed, name)
        rc, parsed = _bmctl_lines(host, name)
        if host.get("target_active", True):
            found.append("%s: BlueMind runs (needs `bmctl stop`)" % name)
            continue
        seen = True
        nginx = [entry[1] for entry in parsed if entry[0] == "bm-nginx"]
        if nginx == ["started_while_stopped"] and rc == 1:
            found.append("%s: stopped, bm-nginx up, exit 1" % name)
        elif not nginx and rc == 0:
            found.append("%s: stopped, no bm-nginx, exit 0" % name)
        else:
            bad = True
            found.append("%s: stopped, bm-nginx %s, exit %s" % (name, nginx[0] if nginx else "not printed", rc))
    if not seen:
        raise NotObservable("BlueMind runs on both hosts; seeing it needs `bmctl stop`")
    return (DIFFERS if bad else CONFIRMED), found


def _row_core_notify(observed, expect):
    found, bad = [], False
    for name in HOSTS:
        props = dict(line.split("=", 1) for line in _need(_host(observed, name), "core_unit", name).splitlines()
                     if "=" in line)
        if props.get("LoadState") not in (None, "loaded"):
            raise NotObservable("%s: bm-core.service is %s" % (name, props.get("LoadState")))
        ok = props.get("Type") == "notify" and props.get("TimeoutStartUSec") in ("5min", "300s", "300000000")
        bad = bad or not ok
        found.append("%s: Type=%s TimeoutStartUSec=%s" % (name, props.get("Type"), props.get("TimeoutStartUSec")))
    return (DIFFERS if bad else CONFIRMED), found


def _fault(answer):
    body = answer.get("json") if isinstance(answer.get("json"), dict) else {}
    return "%s %s" % (answer.get("status"), body.get("errorCode"))


def _row_api_bad_key(observed, expect):
    found, bad = [], False
    for name in HOSTS:
        host = _host(observed, name)
        bad_key, no_key = _api(host, name, "bad_key"), _api(host, name, "no_key")
        ok = _fault(bad_key) == "401 AUTHENTICATION_FAIL" and _fault(no_key) == "403 PERMISSION_DENIED"
        bad = bad or not ok
        found.append("%s: unknown key %s, no key %s" % (name, _fault(bad_key), _fault(no_key)))
    return (DIFFERS if bad else CONFIRMED), found


def _systemconf(host, name):
    text = _need(host, "systemconf", name)
    lines = text.splitlines()
    if not lines:
        raise NotObservable("%s: t_systemconf is empty" % name)
    keys, dummy, default_domain = lines[0].partition("|")
    return set(k for k in keys.split(",") if k), default_domain


def _row_api_infos(observed, expect):
    found, bad = [], False
    for name in HOSTS:
        host = _host(observed, name)
        infos = _api(host, name, "infos").get("json") or {}
        default_domain = _systemconf(host, name)[1]
        keys = set(infos) if isinstance(infos, dict) else set()
        ok = keys == INFOS_KEYS and infos.get("defaultDomain") == default_domain
        bad = bad or not ok
        found.append("%s: keys %s; defaultDomain %s, t_systemconf %s" % (
            name, ",".join(sorted(keys)), infos.get("defaultDomain") if keys else None, default_domain or "(none)"))
    return (DIFFERS if bad else CONFIRMED), found


def _row_systemconf_keys(observed, expect):
    found, bad = [], False
    for name in HOSTS:
        host = _host(observed, name)
        keys = _systemconf(host, name)[0]
        values = (_api(host, name, "configuration").get("json") or {}).get("values") or {}
        missing = [k for k in SYSTEMCONF_KEYS if k not in keys]
        not_in_api = [k for k in SYSTEMCONF_KEYS if k in keys and k not in values]
        bad = bad or bool(missing or not_in_api)
        parts = []
        if missing:
            parts.append("t_systemconf lacks " + ", ".join(missing))
        if not_in_api:
            parts.append("GET /api/configuration lacks " + ", ".join(not_in_api))
        found.append("%s: %s" % (name, "; ".join(parts) if parts else "all three, also in /api/configuration"))
    return (DIFFERS if bad else CONFIRMED), found


def _row_version(observed, expect):
    found, bad, software = [], False, {}
    for name in HOSTS:
        host = _host(observed, name)
        version = (_api(host, name, "version").get("json") or {}).get("softwareVersion")
        package = _packages(host, name).get("bm-core")
        software[name] = version
        ok = bool(version) and bool(package) and _upstream(package) == version
        bad = bad or not ok
        found.append("%s: softwareVersion %s, bm-core %s" % (name, version, package or "not installed"))
    if software["origin"] != software["target"]:
        bad = True
    return (DIFFERS if bad else CONFIRMED), found


def _row_api_paths(observed, expect):
    found, bad = [], False
    for name in HOSTS:
        host = _host(observed, name)
        problems = []
        for path in API_PATHS:
            answer = _api(host, name, path)
            body = answer.get("json")
            if answer.get("status") != 200:
                problems.append("%s %s" % (path, answer.get("status")))
            elif path == "state" and not (isinstance(body, str) and body.startswith("CORE_STATE_")):
                problems.append("state %r" % (body,))
            elif path == "version" and not (isinstance(body, dict) and VERSION_KEYS <= set(body)):
                problems.append("version keys %s" % ",".join(sorted(body or {})))
            elif path == "configuration" and not (isinstance(body, dict) and isinstance(body.get("values"), dict)):
                problems.append("configuration without values")
        bad = bad or bool(problems)
        found.append("%s: %s" % (name, "; ".join(problems) if problems else "200 on all four"))
    return (DIFFERS if bad else CONFIRMED), found


def _row_trees_config(observed, expect):
    wanted = list(expect.get("trees") or []) + list(expect.get("config_paths") or [])
    if not wanted:
        raise NotObservable("no trees or config paths given to compare")
    found, bad = [], False
    for name in HOSTS:
        paths = _paths(_host(observed, name), name)
        missing = [p for p in wanted if not paths.get(p, False)]
        bad = bad or bool(missing)
        found.append("%s: %s" % (name, "missing " + ", ".join(missing) if missing else "all %d present" % len(wanted)))
    return (DIFFERS if bad else CONFIRMED), found


def _row_bm_packages(observed, expect):
    origin = _packages(_host(observed, "origin"), "origin")
    target = _packages(_host(observed, "target"), "target")
    if not origin:
        return DIFFERS, ["origin: no bm-* package installed"]
    lacking = sorted(set(origin) - set(target))
    other = sorted(p for p in set(origin) & set(target) if _upstream(origin[p]) != _upstream(target[p]))
    found = ["origin: %d bm-* packages, target: %d" % (len(origin), len(target))]
    if lacking:
        found.append("target lacks " + ", ".join(lacking))
    if other:
        found.append("other versions: " + ", ".join("%s %s/%s" % (p, origin[p], target[p]) for p in other))
    return (DIFFERS if lacking or other else CONFIRMED), found


def _path_row(path, observed):
    found, bad = [], False
    for name in HOSTS:
        present = _paths(_host(observed, name), name).get(path)
        if present is None:
            raise NotObservable("%s: %s not looked at" % (name, path))
        bad = bad or not present
        found.append("%s: %s" % (name, "present" if present else "absent"))
    return (DIFFERS if bad else CONFIRMED), found


def _row_hollowed(observed, expect):
    return _path_row(HOLLOWED, observed)


def _row_nginx_vhosts(observed, expect):
    """bm-client-access's configure-nginx.sh writes the default vhost /etc/nginx/bluemind/bluemind-vhosts.conf
    and one /etc/nginx/bluemind/<domainUid>/bluemind-vhosts.conf per line <domainUid>:<externalUrl> of
    /etc/bm/domains-settings whose URL is not already served."""
    found, bad = [], False
    for name in HOSTS:
        host = _host(observed, name)
        vhosts = set(_need(host, "nginx_vhosts", name).split())
        settings = _need(host, "domains_settings", name)
        wanted = [NGINX_VHOSTS + "/bluemind-vhosts.conf"]
        urls = set([host.get("external_url")])
        for line in settings.splitlines():
            parts = line.strip().split(":")
            if len(parts) >= 2 and parts[1] and parts[1] not in urls:
                urls.add(parts[1])
                wanted.append("%s/%s/bluemind-vhosts.conf" % (NGINX_VHOSTS, parts[0]))
        missing = [v for v in wanted if v not in vhosts]
        bad = bad or bool(missing)
        found.append("%s: %s" % (name, "missing " + ", ".join(missing) if missing else
                                 "%d vhosts (default + %d domains)" % (len(vhosts), len(wanted) - 1)))
    return (DIFFERS if bad else CONFIRMED), found


def _row_firewall(observed, expect):
    return _path_row(FIREWALL_SCRIPT, observed)


def _row_mynetworks(observed, expect):
    raise NotObservable("the server normalises My Networks only when it is written; a read-only probe cannot see it")


def _row_webmail(observed, expect):
    found, bad = [], False
    for name in HOSTS:
        columns = _need(_host(observed, name), "webmail_columns", name)
        ok = columns == "mail_host,username"
        bad = bad or not ok
        found.append("%s: %s" % (name, "rc_users has username and mail_host" if ok else
                                 "rc_users columns found: %s" % (columns or "none (no rc_users in bj)")))
    return (DIFFERS if bad else CONFIRMED), found


def _row_cyrus_replication(observed, expect):
    return _path_row(CYRUS_REPLICATION, observed)


def _row_backup_spool(observed, expect):
    raise NotObservable("the spool exists only where BlueMind's backup ran; the probe does not look for it")


def _row_tick(observed, expect):
    return _path_row(BM_CLI, observed)


def _origin_schema(observed, database):
    """What the probe read of the schema of one of the origin's databases (a JSON object)."""
    schema = _need(_host(observed, "origin"), "schema", "origin")
    text = schema.get(database) if isinstance(schema, dict) else None
    if isinstance(text, dict):
        return text
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        raise NotObservable("origin: the schema of %s not read" % database)


def _row_changeset_partitions(observed, expect):
    features = _origin_schema(observed, "bj-data")
    kind, partitions = features.get("changeset_kind"), int(features.get("changeset_partitions") or 0)
    if kind is None:
        return DIFFERS, ["origin bj-data: no table t_container_changeset"]
    found = "origin bj-data: t_container_changeset %s, %d partition(s)" % (
        "partitioned" if kind == "p" else "of kind %r (not partitioned)" % kind, partitions)
    # a unique index (the pg_repack maintenance's) is the partitions' key for the row sync; without one
    # they are listed by content: slower, as correct
    unique = features.get("changeset_unique")
    notes = [] if unique is None else ["origin bj-data: %d partition(s) with a unique index" % int(unique)]
    return (CONFIRMED if kind == "p" and partitions > 0 else DIFFERS), [found] + notes


def _row_changeset_trigger(observed, expect):
    present = bool(_origin_schema(observed, "bj-data").get("changelog_trigger"))
    return (CONFIRMED if present else DIFFERS), [
        "origin bj-data: changelog_insert on t_container_changelog %s" % ("present" if present else "absent")]


def _row_enum_keyless(observed, expect):
    labels = int(_origin_schema(observed, "bj").get("account_type_labels") or 0)
    data = _origin_schema(observed, "bj-data")
    found = ["origin bj: t_directory_entry_account_type %s" % ("has %d labels" % labels if labels else "absent")]
    if not data.get("mailbox_record"):
        found.append("origin bj-data: no table t_mailbox_record")
        return DIFFERS, found
    keyed = bool(data.get("mailbox_record_key"))
    found.append("origin bj-data: t_mailbox_record %s" % ("has a primary key" if keyed else "has no primary key"))
    return (CONFIRMED if labels and not keyed else DIFFERS), found


def _row_pg_superuser(observed, expect):
    superuser = _origin_schema(observed, "bj-data").get("bj_superuser")
    if superuser is None:
        raise NotObservable("origin: whether bj is a superuser was not read")
    if superuser:
        return CONFIRMED, ["origin: bj is a superuser"]
    return DIFFERS, ["origin: bj is not a superuser: the database pass's reads are counted in the origin's statistics "
                     "and, before PostgreSQL 15, their losses cannot be read, so the window's pass lists every table"]


def _row_pg_majors(observed, expect):
    majors = {}
    for name in HOSTS:
        pg = _need(_host(observed, name), "pg", name)
        if pg.get("failed") or not pg.get("version"):
            raise NotObservable("%s: PostgreSQL not read (%s)" % (name, pg.get("msg", "no version")))
        majors[name] = pg["version"].split()[0]

    ok = older_major(majors["target"], majors["origin"]) is None
    return (CONFIRMED if ok else DIFFERS), ["origin %s, target %s" % (majors["origin"], majors["target"])]


def _row_inotify_follow(observed, expect):
    origin = _host(observed, "origin")
    parts = [part.strip() for part in _need(origin, "follow", "origin").split("@@")]
    if len(parts) < 3:
        raise NotObservable("origin: the follower's needs were not read")
    inotify, limit, directories = parts[:3]
    cyrus = _packages(origin, "origin").get("bm-cyrus-imapd", "not installed")
    found = ["origin: python3 inotify: %s; %s directories in the trees, watch limit %s; bm-cyrus-imapd %s" % (
        inotify or "no answer", directories or "?", limit or "?", cyrus)]
    if inotify == "ok" and limit.isdigit() and directories.isdigit() and int(directories) < int(limit):
        return CONFIRMED, found
    return DIFFERS, found + ["the final pull's follower would give up: the window walks the trees "
                             "(raise fs.inotify.max_user_watches, or install python3)"]


_CHECKS = {
    "ext-pg-catalog": _row_ext_pg_catalog,
    "ext-every-db": _row_ext_every_db,
    "ext-public": _row_ext_public,
    "locale-en-us": _row_locale,
    "bmctl-units": _row_bmctl_units,
    "bmctl-lines": _row_bmctl_lines,
    "bmctl-stop": _row_bmctl_stop,
    "core-notify": _row_core_notify,
    "api-bad-key": _row_api_bad_key,
    "api-infos": _row_api_infos,
    "systemconf-keys": _row_systemconf_keys,
    "version-per-distro": _row_version,
    "api-paths": _row_api_paths,
    "trees-config": _row_trees_config,
    "bm-packages": _row_bm_packages,
    "hollowed": _row_hollowed,
    "nginx-vhosts": _row_nginx_vhosts,
    "firewall-script": _row_firewall,
    "mynetworks-normalised": _row_mynetworks,
    "webmail-mail-host": _row_webmail,
    "cyrus-replication": _row_cyrus_replication,
    "backup-spool": _row_backup_spool,
    "tick-reconfigure": _row_tick,
    "changeset-partitions": _row_changeset_partitions,
    "changeset-trigger": _row_changeset_trigger,
    "enum-keyless": _row_enum_keyless,
    "pg-majors": _row_pg_majors,
    "pg-superuser": _row_pg_superuser,
    "inotify-follow": _row_inotify_follow,
}


def probe_rows(observed, expect=None):
    observed = observed or {}
    expect = expect or {}
    rows = []
    for number, row_id, what in ROWS:
        try:
            status, found = _CHECKS[row_id](observed, expect)
        except NotObservable as exc:
            status, found = NOT_OBSERVABLE, [str(exc)]
        rows.append(dict(row=number, id=row_id, what=what, status=status, found="; ".join(found)))
    return rows


class FilterModule:
    def filters(self):
        return {"probe_rows": probe_rows}
