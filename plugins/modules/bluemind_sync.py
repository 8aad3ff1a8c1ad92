#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: bluemind_sync
short_description: Pull BlueMind data trees from the origin with rsync
version_added: 1.0.0
description:
  - Runs on the target and pulls each tree from the origin over SSH as O(origin_user), with
    C(rsync -aH --delete --modify-window=-1). Hard links are kept (Cyrus single-instance store), owners
    and groups mapped by name (never C(--numeric-ids), as uids differ between distributions) and
    modification times compared to the nanosecond (plain C(-a) misses a same-size rewrite within
    the same second).
  - All trees share one multiplexed SSH connection, opened first (which proves the key and the
    pinned host key), and run in parallel, O(workers) at a time.
  - C(changed) comes from rsync's C(--itemize-changes) lines; lines that only set a directory's
    time do not count. The output is read as it comes, so memory stays bounded with millions of files.
  - With O(verify=true) nothing is copied; a checksum dry run compares every file and the task fails
    on any difference.
options:
  trees:
    description:
      - Directories to pull. Each is read from the same path on the origin and written to the same
        path on the target.
    type: list
    elements: path
    required: true
  workers:
    description:
      - How many trees are pulled at the same time.
    type: int
    default: 4
  delete:
    description:
      - Delete files on the target that are gone on the origin (C(--delete)). Excluded files are
        never deleted.
    type: bool
    default: true
  excludes:
    description:
      - rsync exclude patterns. An absolute pattern applies to the tree that holds it, anchored at
        the tree's root; a relative one applies in every tree.
      - The default is BlueMind's own backup exclusions.
    type: list
    elements: str
    default: [cyrus.squat, /var/lib/cyrus/proc/, /var/lib/cyrus/lock/, /var/lib/cyrus/socket/]
  allow_vanished:
    description:
      - Accept rsync's exit code 24 (files vanished on the origin while it was read), which is
        expected while BlueMind still runs there (hot phase). Never set it for the final pull.
    type: bool
    default: false
  checksum:
    description:
      - Compare files by checksum instead of size and modification time (C(--checksum)), which reads
        every file on both sides. Use it when the target already holds files that did not come from this
        origin (a fresh install's own files can match in size and time but not in content), for
        example on the first pull.
    type: bool
    default: false
  verify:
    description:
      - Copy nothing; compare every file by checksum (C(--checksum --dry-run)) and fail when any file,
        owner, mode, time or deletion differs. C(changed) is then always V(false).
    type: bool
    default: false
  diff_max_lines:
    description:
      - How many itemized lines of each tree are kept for the diff and for verify failures.
    type: int
    default: 100
  ssh_control_path:
    description:
      - Socket of the shared SSH connection on the target (C(ssh -o ControlPath)); C(%C) is a hash of
        the destination. Its directory is created if needed.
    type: path
    default: "~/.ssh/bluemind-migration-%C"
  rsync_path:
    description:
      - rsync on the target. By default the one found in E(PATH).
    type: path
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - bluemind.migration.ssh
attributes:
  check_mode:
    support: full
    details: Runs rsync with C(--dry-run); C(changed) and the diff are what a real run would do.
  diff_mode:
    support: partial
    details: The diff lists rsync's itemized changes, at most O(diff_max_lines) per tree.
  platform:
    platforms: posix
notes:
  - The trees must not be written on the target by anything else during the pull; stop BlueMind
    and postfix on the target first.
  - A tree's missing parent directories are created on the target (owned by root, mode from the
    umask); rsync creates the tree itself with the origin's owner and mode.
author:
  - bluemind.migration contributors (@bluemind-migration)
"""

EXAMPLES = r"""
- name: Hot pull while BlueMind still runs on the origin
  bluemind.migration.bluemind_sync:
    origin_host: 192.0.2.10
    ssh_key: /root/.ssh/bluemind_migration
    known_hosts: /root/.ssh/bluemind_migration_known_hosts
    trees:
      - /var/spool/cyrus
      - /var/lib/cyrus
      - /var/spool/bm-hsm
    allow_vanished: true
    workers: 3

- name: Prove that the target holds exactly the origin's trees
  bluemind.migration.bluemind_sync:
    origin_host: 192.0.2.10
    ssh_key: /root/.ssh/bluemind_migration
    known_hosts: /root/.ssh/bluemind_migration_known_hosts
    trees: [/var/spool/cyrus, /var/lib/cyrus]
    verify: true
"""

RETURN = r"""
trees:
  description: One entry per tree, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The tree.
      type: str
      sample: /var/spool/cyrus
    changed:
      description: Whether rsync changed (or, in check mode and verify, would change) something.
      type: bool
    changes:
      description: Itemized lines that count as changes.
      type: int
      sample: 42
    created:
      description: Files, directories and links created.
      type: int
    deleted:
      description: Entries deleted.
      type: int
    bytes:
      description: Size of the files transferred (rsync's C(Total transferred file size)).
      type: int
    files:
      description: Regular files transferred.
      type: int
    seconds:
      description: Wall-clock time of this tree's rsync.
      type: float
    rc:
      description: rsync's exit code.
      type: int
    vanished:
      description: Files that vanished on the origin while rsync read them.
      type: int
    stats:
      description: rsync's C(--stats) numbers (files_total, total_size, bytes_received, ...).
      type: dict
    messages:
      description: rsync's last error messages, for a tree that failed.
      type: list
      elements: str
      returned: on failure
bytes:
  description: Sum of RV(trees[].bytes).
  returned: always
  type: int
files:
  description: Sum of RV(trees[].files).
  returned: always
  type: int
seconds:
  description: Wall-clock time of the whole task.
  returned: always
  type: float
"""

import concurrent.futures
import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.bluemind.migration.plugins.module_utils.rsync import (
    BLUEMIND_EXCLUDES,
    RsyncError,
    build_command,
    run_rsync,
    tree_excludes,
)
from ansible_collections.bluemind.migration.plugins.module_utils.ssh import (
    OriginSsh,
    SshError,
    ssh_argument_spec,
)


def sync_tree(params, rsync_bin, origin, tree, dry_run):
    """Pull one tree; return its summary (a failed tree carries ``msg`` instead of raising)."""
    path = tree.rstrip("/") or "/"
    root = path.rstrip("/") + "/"
    args = build_command(
        rsync_bin, origin.shell(), "%s:%s" % (origin.destination, root), root,
        excludes=tree_excludes(path, params["excludes"]), delete=params["delete"],
        dry_run=dry_run, checksum=params["verify"] or params["checksum"],
    )
    try:
        raw = run_rsync(args, params["diff_max_lines"], params["allow_vanished"])
        msg = None
    except RsyncError as exc:
        raw, msg = exc.result, "%s: %s" % (path, exc)
    summary = dict(
        path=path, changed=raw["changes"] > 0, changes=raw["changes"], created=raw["created"],
        deleted=raw["deleted"], bytes=raw["stats"].get("transferred_size", 0),
        files=raw["stats"].get("files_transferred", 0), seconds=raw["seconds"], rc=raw["rc"],
        vanished=raw["vanished"], stats=raw["stats"],
    )
    if msg:
        summary["messages"] = raw["stderr_tail"]
    return summary, msg, raw["diff"], raw["diff_omitted"]


def render_diff(outcomes):
    """Ansible's ``prepared`` diff: the itemized lines of each tree, capped."""
    parts = []
    for summary, _msg, lines, omitted in outcomes:
        if not lines:
            continue
        parts.append("# %s: %d change(s)" % (summary["path"], summary["changes"]))
        parts.extend(lines)
        if omitted:
            parts.append("# ... %d more not shown (diff_max_lines)" % omitted)
    return "\n".join(parts) + "\n" if parts else ""


def main():
    argument_spec = ssh_argument_spec()
    argument_spec.update(
        trees=dict(type="list", elements="path", required=True),
        workers=dict(type="int", default=4),
        delete=dict(type="bool", default=True),
        excludes=dict(type="list", elements="str", default=list(BLUEMIND_EXCLUDES)),
        allow_vanished=dict(type="bool", default=False),
        checksum=dict(type="bool", default=False),
        verify=dict(type="bool", default=False),
        diff_max_lines=dict(type="int", default=100),
        ssh_control_path=dict(type="path", default="~/.ssh/bluemind-migration-%C"),
        rsync_path=dict(type="path"),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    if params["workers"] < 1 or not params["trees"]:
        module.fail_json(msg="give at least one tree and workers >= 1")
    rsync_bin = params["rsync_path"] or module.get_bin_path("rsync", required=True)
    origin = OriginSsh(module.get_bin_path("ssh", required=True), params,
                       control_path=params["ssh_control_path"])
    started = time.monotonic()
    dry_run = module.check_mode or params["verify"]
    # rsync creates each tree itself (with the origin's owner and mode), not the parents.
    parents = [] if dry_run else [os.path.dirname(t.rstrip("/")) for t in params["trees"]]
    try:
        origin.check_files()
        for directory, mode in [(os.path.dirname(params["ssh_control_path"]), 0o700)] + [(p, 0o755) for p in parents]:
            if directory and not os.path.isdir(directory):
                os.makedirs(directory, mode)
        origin.open_master(module.run_command)
    except (SshError, OSError) as exc:
        module.fail_json(msg="cannot pull from the origin: %s" % exc, trees=[])
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=params["workers"]) as pool:
            outcomes = list(pool.map(
                lambda tree: sync_tree(params, rsync_bin, origin, tree, dry_run),
                params["trees"]))
    finally:
        origin.close_master(module.run_command)

    trees = [outcome[0] for outcome in outcomes]
    result = dict(
        changed=not params["verify"] and any(t["changed"] for t in trees),
        trees=trees,
        bytes=sum(t["bytes"] for t in trees),
        files=sum(t["files"] for t in trees),
        seconds=round(time.monotonic() - started, 3),
    )
    if module._diff:
        result["diff"] = dict(prepared=render_diff(outcomes))
    errors = [outcome[1] for outcome in outcomes if outcome[1]]
    if errors:
        module.fail_json(msg="pull from %s failed for %d tree(s): %s" % (
            origin.destination, len(errors), "; ".join(errors)), **result)
    if params["verify"] and any(t["changed"] for t in trees):
        module.fail_json(
            msg="verify: the target differs from the origin in %s (first differences: %s); run "
                "the pull again with BlueMind stopped on the origin" % (
                    ", ".join("%s (%d)" % (t["path"], t["changes"]) for t in trees if t["changed"]),
                    "; ".join(outcome[2][0] for outcome in outcomes if outcome[2])),
            **result
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
