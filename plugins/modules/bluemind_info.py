#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: bluemind_info
short_description: Facts about a BlueMind server and its data trees
version_added: 1.0.0
description:
  - Reads, and changes nothing. The BlueMind version from the C(bm-core) package and, when the API
    answers, from the server (C(GET /api/system/installation/version) when credentials are given,
    otherwise C(GET /api/system/installation/_infos) without them); the external
    URL from C(bm.ini); the distribution; the version of the PostgreSQL server (with the credentials
    of C(bm.ini)).
  - For each tree, the size and number of files (hard links counted once), the owners and groups
    used in it with their ids, and the free space of the filesystem that holds it (or would hold
    it, when the tree does not exist yet).
options:
  trees:
    description:
      - Directories to describe.
    type: list
    elements: path
    default:
      - /var/spool/cyrus
      - /var/lib/cyrus
      - /var/spool/bm-hsm
      - /var/spool/sieve
      - /var/spool/bm-elasticsearch
      - /var/spool/bm-docs
      - /var/spool/bm-filehosting
  bm_ini:
    description:
      - BlueMind's main configuration file.
    type: path
    default: /etc/bm/bm.ini
  db_host:
    description:
      - Host of the local PostgreSQL server, for its version.
    type: str
    default: 127.0.0.1
  db_port:
    description:
      - Port of the local PostgreSQL server.
    type: int
    default: 5432
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - bluemind.migration.api
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
- name: Describe the origin
  bluemind.migration.bluemind_info:
  register: origin_info

- name: Describe the target, where the trees do not exist yet
  bluemind.migration.bluemind_info:
    trees: "{{ origin_info.trees | map(attribute='path') }}"
    api_url: https://bluemind.example.com
    ca_path: /etc/ssl/certs/example-ca.pem
"""

RETURN = r"""
version:
  description: BlueMind version from the package and from the API.
  returned: always
  type: dict
  contains:
    package:
      description:
        - Version of the C(bm-core) package, V(null) when it is not installed.
        - BlueMind builds its packages per distribution, so the same BlueMind has different package
          versions on two distributions; compare RV(version.api) instead.
      type: str
      sample: 4.9.3884-bookworm
    package_upstream:
      description:
        - The upstream part of RV(version.package) (no epoch, no Debian revision after the last
          C(-)), V(null) when the package is not installed. What to compare when the API does not
          answer.
      type: str
      sample: 4.9.3884
    api:
      description:
        - Version the server reports (C(softwareVersion)), the same on every distribution; V(null)
          when the API did not answer.
      type: str
      sample: 4.9.3884
    api_error:
      description: Why the API did not answer, when it did not.
      type: str
external_url:
  description: C(external-url) of C(bm.ini), V(null) when missing.
  returned: always
  type: str
  sample: mail.example.com
external_protocol:
  description: C(external-protocol) of C(bm.ini), V(null) when missing.
  returned: always
  type: str
  sample: https
distribution:
  description: The distribution of the host.
  returned: always
  type: dict
  sample: {"id": "Debian", "version": "12", "codename": "bookworm"}
postgresql:
  description: The PostgreSQL server's version, or why it could not be read.
  returned: always
  type: dict
  sample: {"version": "15.8", "error": null}
trees:
  description: One entry per tree, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The tree.
      type: str
    exists:
      description: Whether the tree exists.
      type: bool
    bytes:
      description: Apparent size of the files (hard links counted once).
      type: int
    disk_bytes:
      description: Space the files take on disk (allocated blocks, hard links counted once).
      type: int
    files:
      description: Entries that are not directories (hard links counted once).
      type: int
    directories:
      description: Directories, the tree itself included.
      type: int
    owners:
      description: Each owner found, with its name (V(null) when the uid has none on this host).
      type: list
      elements: dict
      sample: [{"name": "cyrus", "id": 105}]
    groups:
      description: Each group found, with its name (V(null) when the gid has none on this host).
      type: list
      elements: dict
      sample: [{"name": "mail", "id": 8}]
    filesystem:
      description: The filesystem that holds the tree (or its nearest existing parent).
      type: dict
      sample: {"mount": "/var", "free_bytes": 107374182400, "size_bytes": 214748364800}
"""

import grp
import os
import pwd
import stat

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.sys_info import (
    get_distribution,
    get_distribution_codename,
    get_distribution_version,
)
from ansible_collections.bluemind.migration.plugins.module_utils.api import (
    API_AUTH_MUTUALLY_EXCLUSIVE,
    BlueMindApiError,
    BlueMindClient,
    bluemind_api_argument_spec,
)
from ansible_collections.bluemind.migration.plugins.module_utils.bmini import read_global_settings
from ansible_collections.bluemind.migration.plugins.module_utils.pg import PgError, PgServer


def package_version(module):
    dpkg = module.get_bin_path("dpkg-query")
    if dpkg:
        rc, out, _err = module.run_command([dpkg, "-W", "-f=${Version}", "bm-core"])
    else:
        rpm = module.get_bin_path("rpm")
        if not rpm:
            return None
        rc, out, _err = module.run_command([rpm, "-q", "--qf", "%{VERSION}", "bm-core"])
    return (out.strip() or None) if rc == 0 else None


def upstream_version(version):
    """``4.9.3884`` from ``4.9.3884-bookworm`` or ``1:4.9.3884-1``; None stays None."""
    if not version:
        return None
    version = version.split(":", 1)[-1]
    return version.rsplit("-", 1)[0] if "-" in version else version


def api_version(params):
    try:
        with BlueMindClient(params) as client:
            if any(params[key] for key in API_AUTH_MUTUALLY_EXCLUSIVE[0]):
                return client.server_version(), None
            return client.public_infos().get("softwareVersion"), None
    except BlueMindApiError as exc:
        return None, str(exc)


def postgresql_version(module, ini):
    psql = module.get_bin_path("psql")
    if not psql:
        return dict(version=None, error="psql is not installed on this host")
    server = PgServer("local", os.path.dirname(psql), module.params["db_host"], module.params["db_port"],
                      ini.get("user", "bj"), ini.get("password"))
    try:
        rows = server.query(module.run_command, ini.get("db", "bj"), "SHOW server_version", "reading the version")
        return dict(version=rows[0][0], error=None)
    except PgError as exc:
        return dict(version=None, error=str(exc))


def named_ids(ids, lookup):
    result = []
    for number in sorted(ids):
        try:
            name = lookup(number)[0]
        except KeyError:
            name = None
        result.append(dict(name=name, id=number))
    return result


def filesystem(path):
    """Mount point, free and total bytes of the filesystem holding ``path`` or its nearest parent."""
    while not os.path.exists(path):
        path = os.path.dirname(path)
    device = os.stat(path).st_dev
    mount = path
    while mount != "/" and os.stat(os.path.dirname(mount)).st_dev == device:
        mount = os.path.dirname(mount)
    fs = os.statvfs(path)
    return dict(mount=mount, free_bytes=fs.f_bavail * fs.f_frsize, size_bytes=fs.f_blocks * fs.f_frsize)


def describe_tree(path):
    info = dict(path=path, exists=os.path.isdir(path), bytes=0, disk_bytes=0, files=0, directories=0,
                owners=[], groups=[], filesystem=filesystem(path))
    if not info["exists"]:
        return info
    uids, gids, linked = set(), set(), set()
    for top, dirs, names in os.walk(path):
        info["directories"] += 1
        top_stat = os.lstat(top)
        uids.add(top_stat.st_uid)
        gids.add(top_stat.st_gid)
        for name in names + [d for d in dirs if os.path.islink(os.path.join(top, d))]:
            try:
                st = os.lstat(os.path.join(top, name))
            except OSError:
                continue  # vanished while walking a live server
            uids.add(st.st_uid)
            gids.add(st.st_gid)
            if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
                if (st.st_dev, st.st_ino) in linked:
                    continue
                linked.add((st.st_dev, st.st_ino))
            info["files"] += 1
            info["bytes"] += st.st_size
            info["disk_bytes"] += st.st_blocks * 512
    info["owners"] = named_ids(uids, pwd.getpwuid)
    info["groups"] = named_ids(gids, grp.getgrgid)
    return info


def main():
    argument_spec = bluemind_api_argument_spec()
    argument_spec.update(
        trees=dict(type="list", elements="path", default=[
            "/var/spool/cyrus", "/var/lib/cyrus", "/var/spool/bm-hsm", "/var/spool/sieve",
            "/var/spool/bm-elasticsearch", "/var/spool/bm-docs", "/var/spool/bm-filehosting"]),
        bm_ini=dict(type="path", default="/etc/bm/bm.ini"),
        db_host=dict(type="str", default="127.0.0.1"),
        db_port=dict(type="int", default=5432),
    )
    module = AnsibleModule(argument_spec=argument_spec, mutually_exclusive=API_AUTH_MUTUALLY_EXCLUSIVE,
                           supports_check_mode=True)
    ini = read_global_settings(module.params["bm_ini"])
    api, api_error = api_version(module.params)
    package = package_version(module)
    module.exit_json(
        changed=False,
        version=dict(package=package, package_upstream=upstream_version(package), api=api, api_error=api_error),
        external_url=ini.get("external-url"),
        external_protocol=ini.get("external-protocol"),
        distribution=dict(id=get_distribution(), version=get_distribution_version(),
                          codename=get_distribution_codename()),
        postgresql=postgresql_version(module, ini),
        trees=[describe_tree(path.rstrip("/") or "/") for path in module.params["trees"]],
    )


if __name__ == "__main__":
    main()
