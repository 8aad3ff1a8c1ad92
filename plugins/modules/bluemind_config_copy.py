#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: bluemind_config_copy
short_description: Copy BlueMind's configuration from the origin, rebuild what it feeds, move the queued mail
version_added: 1.0.0
description:
  - Run on the target, BlueMind and postfix stopped on both hosts (the cold window). In one run, so
    that the window pays one remote round trip for what were seven.
  - C(files) step. Resolves O(patterns) on the origin (what exists there), then copies O(paths) and
    what the patterns found in one rsync pass, folders recursively, owners mapped by name. The
    target's files that the copy replaces are kept in a folder of O(backup_dir) named after the time of
    the run. Postfix hash maps (C(*.db)) are never copied.
  - When the copy moved something (or O(resumed), a previous copy that died after its files landed),
    rebuilds each of O(postfix_maps) from its copied C(-flat) source with C(postmap), and runs
    O(nginx_configure) (bm-client-access regenerates nginx's vhosts from the copied domain settings
    and certificates), then reloads C(bm-nginx).
  - C(queue) step. Copies the origin's postfix queues (maildrop, incoming, active, deferred, hold) into
    the target's in one rsync run, then, when a queue file moved (or O(resumed)), renames the queue
    files after the target's inodes (C(postsuper -s)), which postfix requires.
  - Holds the lock C(bluemind-migration-config.lock) of O(lock_dir) while it copies (not in check
    mode), so that a copy that a stopped controller left running and a rerun's never write at the same time.
  - With O(gate_path) (the cold window starts the copy beside the final pull, before the origin's stop),
    checks its SSH access, then waits at the gate before it takes the lock or reads anything.
  - The origin is only read.
options:
  steps:
    description:
      - Which steps to run (the role maps its tags C(config_copy_files) and C(config_copy_queue) to them).
    type: list
    elements: str
    choices: [files, queue]
    default: [files, queue]
  paths:
    description:
      - Files and folders to copy, absolute or relative to C(/); each must exist on the origin.
    type: list
    elements: str
    default: []
  patterns:
    description:
      - Absolute shell patterns (wildcards C(*), C(?), C([ ]) only), resolved on the origin; what
        exists there is copied.
    type: list
    elements: str
    default: []
  backup_dir:
    description:
      - Where the target's files replaced by a copy are kept, one folder a run.
    type: path
    default: /var/backups/bluemind-migration
  postfix_maps:
    description:
      - Postfix maps of O(postfix_dir) rebuilt from their C(-flat) sources when the copy moved something.
    type: list
    elements: str
    default: []
  postfix_dir:
    description:
      - Postfix's configuration folder.
    type: path
    default: /etc/postfix
  nginx_configure:
    description:
      - The script that regenerates nginx's vhosts from the copied files, run when the copy moved
        something (then C(bm-nginx) reloads). Empty, or not installed on the target, leaves the vhosts alone.
    type: str
    default: ""
  resumed:
    description:
      - The previous copy did not record its end, so its files may have landed already; the maps, the
        vhosts and the requeue are done whatever this copy moves.
    type: bool
    default: false
  readdress_to:
    description:
      - The target's own address, for a DNS switch. After the C(files) step, where the copied C(bm.ini)
        (C(host), C(hz-member-address)) and Cyrus replication (C(core_sync_host), 4.x) name one of
        O(readdress_from), they name this address, and the backup spool folder named after the origin's
        address is renamed after it, as M(bluemind.migration.bluemind_readdress) does with C(parts=[files]).
        Done on every run (a run that died between the copy and this step leaves it to the next). Not in check mode.
    type: str
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - bluemind.migration.ssh
  - bluemind.migration.readdress
  - bluemind.migration.lock
  - bluemind.migration.gate
  - bluemind.migration.job
attributes:
  check_mode:
    support: full
    details: Both rsync runs with C(--dry-run); nothing is rebuilt, reloaded or requeued.
  diff_mode:
    support: full
    details: The diff lists what each copy moves (rsync's itemized lines).
  platform:
    platforms: posix
author:
  - bluemind.migration contributors (@bluemind-migration)
"""

EXAMPLES = r"""
- name: Copy the configuration and the queued mail from the origin
  bluemind.migration.bluemind_config_copy:
    origin_host: 192.0.2.10
    ssh_key: /root/.ssh/bluemind_migration_ed25519
    known_hosts: /root/.ssh/bluemind_migration_known_hosts
    paths: [etc/bm/, etc/postfix/main.cf]
    patterns: [/etc/postfix/*-flat]
    postfix_maps: [virtual_domains, virtual_mailbox]
    nginx_configure: /usr/share/bm-client-access/bin/configure-nginx.sh
"""

RETURN = r"""
files:
  description: The configuration copy's itemized lines (rsync C(--itemize-changes)), directories whose time alone changed left out.
  returned: always
  type: list
  elements: str
  sample: [">f.st...... etc/bm/bm.ini"]
backup:
  description: The folder holding the target's files that this copy replaced (nothing there when it replaced none).
  returned: when the files step ran
  type: str
  sample: /var/backups/bluemind-migration/20261130T101500Z
maps:
  description: The postfix maps rebuilt.
  returned: always
  type: list
  elements: str
nginx:
  description: Whether nginx's vhosts were regenerated and bm-nginx reloaded.
  returned: always
  type: bool
queue:
  description: The queue move's itemized lines.
  returned: always
  type: list
  elements: str
queued_mail:
  description: Queue files moved.
  returned: always
  type: int
requeued:
  description: Whether the moved queue files were renamed after the target's inodes (C(postsuper -s)).
  returned: always
  type: bool
started_at:
  description: When the copy began, on the target's clock (UTC, as the migration state keeps times); with
    O(gate_path), when the gate opened.
  returned: always
  type: str
  sample: "2026-11-30T10:15:00.125Z"
ended_at:
  description: When the copy ended, on the target's clock (UTC). With RV(started_at), the step in the report's timeline.
  returned: success
  type: str
waited_for_gate:
  description: Seconds waited at the gate (see O(gate_path)); 0 without one.
  returned: always
  type: float
waited_for_lock:
  description: Seconds waited for a copy left running on the target (see O(lock_dir)).
  returned: always
  type: float
readdress:
  description:
    - What O(readdress_to) set, as M(bluemind.migration.bluemind_readdress) returns it. C(bm_ini) and
      C(cyrus_replication) (the old values replaced), C(backup_spool) (C(from) and C(to), empty when
      not renamed) and C(left_as_is) (also shown as warnings).
  returned: when O(readdress_to) is set and the files step ran, not in check mode
  type: dict
  sample: {"bm_ini": ["192.0.2.10", "192.0.2.10"], "cyrus_replication": ["192.0.2.10"], "backup_spool": {}, "left_as_is": []}
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.bluemind.migration.plugins.module_utils import confcopy, gate, jobs, readdress
from ansible_collections.bluemind.migration.plugins.module_utils.lock import LockBusy, acquire, lock_argument_spec, lock_path
from ansible_collections.bluemind.migration.plugins.module_utils.state import stamp
from ansible_collections.bluemind.migration.plugins.module_utils.ssh import (
    OriginSsh,
    SshError,
    explain_ssh_failure,
    ssh_argument_spec,
)


class Step(object):
    """Runs the steps' commands; any failure ends the module with what was done so far."""

    def __init__(self, module, result):
        self.module = module
        self.result = result

    def run(self, argv, what, data=None):
        rc, out, err = self.module.run_command(argv, data=data, binary_data=True, environ_update=dict(LC_ALL="C"))
        if rc != 0:
            self.module.fail_json(msg="%s failed (exit %d): %s" % (what, rc, (err or out).strip()[-2000:]), **self.result)
        return out.splitlines()


def copy_files(module, step, ssh, rsync_bin, result, diff):
    params = module.params
    try:
        found_command = confcopy.existing_paths_command(params["patterns"])
    except ValueError as exc:
        module.fail_json(msg="patterns: %s" % exc, **result)
    rc, out, err = module.run_command(ssh.remote(found_command))
    if rc != 0:
        module.fail_json(msg=explain_ssh_failure("resolving the configuration patterns on %s" % params["origin_host"], rc, err),
                         **result)
    result["backup"] = os.path.join(params["backup_dir"], time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    argv = confcopy.copy_command(rsync_bin, ssh.shell(), ssh.destination, result["backup"], dry_run=module.check_mode)
    result["files"] = confcopy.copied(step.run(argv, "the configuration copy from %s" % params["origin_host"],
                                               data=confcopy.files_list(params["paths"], out.split())))
    diff["prepared"] += "".join(line + "\n" for line in result["files"])
    if not (result["files"] or params["resumed"]) or module.check_mode:
        return
    postmap = module.get_bin_path("postmap", required=True)
    for argv, built, used in confcopy.postmap_commands(postmap, params["postfix_maps"], params["postfix_dir"]):
        step.run(argv, "rebuilding %s" % used)
        os.replace(built, used)
        result["maps"].append(used)
    script = params["nginx_configure"]
    if script and os.path.exists(script):
        step.run(["bash", script], "regenerating nginx's vhosts (%s)" % script)
        step.run(["systemctl", "try-reload-or-restart", "bm-nginx.service"], "reloading bm-nginx")
        result["nginx"] = True


def give_own_address(module, result):
    """The target's own address where the copied files name the origin's (O(readdress_to))."""
    new = module.params["readdress_to"]
    old = readdress.usable_old_addresses(module.params["readdress_from"], new)
    if not old:  # the target has the origin's address (moved before the copy): nothing names another
        result["readdress"] = readdress.files_summary()
        return False
    try:
        done = readdress.files(old, new)
    except readdress.FilesError as exc:
        result["readdress"] = readdress.files_summary(exc.done)
        module.fail_json(msg="the configuration was copied, but giving the target its own address failed: %s. "
                             "Run the task again" % exc, **result)
    result["readdress"] = readdress.files_summary(done)
    for warning in done["left_as_is"]:
        module.warn(warning)
    return done["changed"]


def move_queue(module, step, ssh, rsync_bin, result, diff):
    argv = confcopy.queue_command(rsync_bin, ssh.shell(), ssh.destination, dry_run=module.check_mode)
    result["queue"] = confcopy.copied(step.run(argv, "moving the queued mail from %s" % module.params["origin_host"]))
    moved = confcopy.moved_mail(result["queue"])
    result["queued_mail"] = len(moved)
    diff["prepared"] += "".join(line + "\n" for line in moved)
    if (moved or module.params["resumed"]) and not module.check_mode:
        step.run([module.get_bin_path("postsuper", required=True), "-s"], "requeueing the moved mail (postsuper -s)")
        result["requeued"] = True


def main():
    argument_spec = ssh_argument_spec()
    argument_spec.update(
        steps=dict(type="list", elements="str", choices=["files", "queue"], default=["files", "queue"]),
        paths=dict(type="list", elements="str", default=[]),
        patterns=dict(type="list", elements="str", default=[]),
        backup_dir=dict(type="path", default="/var/backups/bluemind-migration"),
        postfix_maps=dict(type="list", elements="str", default=[]),
        postfix_dir=dict(type="path", default="/etc/postfix"),
        nginx_configure=dict(type="str", default=""),
        resumed=dict(type="bool", default=False),
    )
    argument_spec.update(readdress.argument_spec())
    argument_spec.update(lock_argument_spec())
    argument_spec.update(gate.gate_argument_spec())
    argument_spec.update(jobs.job_argument_spec())
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           required_together=[("gate_path", "gate_token")])
    # run as a background job: its process and its result on the target, for bluemind_job_wait
    jobs.start_job(module)
    result = dict(changed=False, files=[], maps=[], nginx=False, queue=[], queued_mail=0, requeued=False,
                  started_at=stamp(), waited_for_gate=0.0, waited_for_lock=0.0)
    diff = dict(prepared="")
    ssh = OriginSsh(module.get_bin_path("ssh", required=True), module.params)
    try:
        ssh.check_files()
        # Started ahead of the origin's stop: nothing is read, nor the lock taken, before the gate opens.
        if module.params["gate_path"]:
            result["waited_for_gate"] = gate.wait(module.params["gate_path"], module.params["gate_token"],
                                                  module.params["gate_timeout"], "the origin's stop")
            result["started_at"] = stamp()
        if not module.check_mode:
            result["waited_for_lock"] = acquire(lock_path(module.params, "config"), module.params["lock_timeout"],
                                                "a configuration copy")
    except (SshError, LockBusy, gate.GateClosed) as exc:
        module.fail_json(msg=str(exc), **result)
    rsync_bin = module.get_bin_path("rsync", required=True)
    step = Step(module, result)
    readdressed = False
    if "files" in module.params["steps"]:
        copy_files(module, step, ssh, rsync_bin, result, diff)
        if module.params["readdress_to"] and not module.check_mode:
            readdressed = give_own_address(module, result)
    if "queue" in module.params["steps"]:
        move_queue(module, step, ssh, rsync_bin, result, diff)
    result["changed"] = bool(result["files"] or result["maps"] or result["nginx"] or result["queued_mail"] or result["requeued"]
                             or readdressed)
    result["ended_at"] = stamp()
    if module._diff and diff["prepared"]:
        result["diff"] = diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
