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
    pinned host key), and run in parallel, O(workers) at a time. The connection uses O(ssh_cipher)
    and no compression.
  - With O(checksum_since), each tree gets a second pass after the first one, comparing by content
    (C(--checksum)) the files modified on the origin since then; see O(checksum_since).
  - C(changed) comes from rsync's C(--itemize-changes) lines; lines that only set a directory's
    time do not count. The output is read as it comes, so memory stays bounded with millions of files.
  - With O(verify=true) nothing is copied; a checksum dry run compares every file and the task fails
    on any difference.
  - With O(gate_path), started as a background job before the origin's stop, it opens its connection,
    then waits at the gate; its lock, the origin's clock and every tree come after (the cold window's
    final pull, followed by M(bluemind.migration.bluemind_job_wait) with its progress). With
    O(changed_since), it lists what changed while it waits, with the follower of O(follow) (or, with
    O(follow=false), walks each tree on the origin once, every entry's status read and nothing listed,
    so that the walk after the gate finds the inodes in the origin's caches); then it creates
    C(<job_file>.ready) (see O(job_file)). A walk still running when the gate opens is stopped. A job
    whose gate is opened by a later run (its own run stopped before the origin's stop) ends then.
options:
  trees:
    description:
      - Directories to pull. Each is read from the same path on the origin and written to the same
        path on the target.
    type: list
    elements: path
    required: true
  trees_if_present:
    description:
      - Directories pulled as O(trees) are, when they are directories on the origin at the start of the
        pull (looked for with the origin's clock, in the same remote command). A plan of the trees made
        before the origin's services stopped names here those it did not find then (BlueMind creates
        C(/var/spool/bm-hsm) with the first archived message), so that a tree that appeared since is
        pulled too. Those found are returned in RV(trees_found).
    type: list
    elements: path
    default: []
  workers:
    description:
      - How many trees are pulled at the same time.
      - V(0) picks it from the processors the target may use, half of them, between 1 and 4 (a
        2-core target pulls one tree at a time; parallel trees there were slower than serial ones).
      - The value used is returned as RV(workers).
    type: int
    default: 0
  checksum_since:
    description:
      - Time on the origin's clock (seconds since the epoch, as returned in RV(origin_clock_start) by
        an earlier pull) from which files are also compared by content.
      - After a tree's usual pull succeeds, the regular files and links of the tree modified on the
        origin at or after this time are listed there (C(find -newermt), over the same SSH
        connection, without the excluded ones) and pulled again with
        C(rsync --checksum --files-from), without C(--delete). This catches a same-size rewrite that
        keeps the modification time the target already has (a rewrite within the same kernel
        timestamp tick as the previous copy), which the size and time comparison misses.
      - Pass the RV(origin_clock_start) of the previous pull minus a margin. After a first pull with
        O(checksum=true), every change that sets the modification time is then caught without reading
        every file (a file written with an older time put back, as C(touch -d) or C(cp -p) do, still
        needs O(checksum)).
      - Files and links only; the walk, like rsync, crosses mount points inside the tree.
      - Ignored with O(checksum) or O(verify), which compare every file by content already.
    type: float
  changed_since:
    description:
      - Time on the origin's clock from which entries changed, for a final pass that walks only
        what changed (the cold window's pull). Give the RV(origin_clock_start) of the previous pull
        minus a margin; it implies O(checksum_since) with the same time.
      - The origin lists the entries of each tree whose status changed at or after this time
        (C(find -newerct)). The C(ctime) is set by every change of content, owner, mode or links and
        by a rename, and no program can set it back. In each directory listed (entries added,
        removed or renamed in it, or moved itself) the module compares the entries of both sides by
        type, size and modification time (the origin lists them with C(find -printf), the target's
        are read in place). What the origin no longer has is removed from the target by the module
        (not by rsync, which would read every file of the directory), and what the target lacks or
        holds otherwise is pulled whole (C(rsync -r --delete --files-from)), as is a listed
        directory the target does not have. The other entries listed, and the directories
        themselves, are pulled by content (C(--checksum --files-from)). Every other entry is as
        the previous pull left it, and is not walked again on either side.
      - A tree that the target does not have is pulled whole, as without this option.
      - Hard links. A file's C(ctime) is its inode's, so every name of a file linked or unlinked
        since is listed, with its inode and link count. Two names of one origin file can then
        arrive in the two rsync runs above (a message delivered to a second mailbox, Cyrus'
        single-instance store), which C(rsync -H) cannot link together. After both runs the module
        makes them one file again, as on the origin, and itemizes each as rsync itemizes a hard link.
      - Excluded entries are neither pulled nor removed, as rsync leaves them. In check mode
        nothing is removed or linked; the removals are counted and itemized as rsync itemizes
        deletions.
      - A tree whose own directory changed (an entry added or removed at its top) gets the usual
        whole pull, and so do all trees when the origin's clock is before this time (a clock set
        back would hide changes; RV(whole_trees) says so).
      - Ignored with O(checksum) or O(verify).
    type: float
  follow:
    description:
      - With O(gate_path) and O(changed_since), learn what changes before the origin's stop, so that the
        window does not walk the trees. Ahead of the gate, a follower runs on the origin over the pull's
        connection (C(python3) and the kernel's inotify, nothing installed) and watches every
        directory of the trees. Once its watches are set, the pull of what changed since O(changed_since)
        runs, the origin still serving (under the pull lock, given back once that pull ended, files vanishing
        meanwhile not errors; when another pull holds the lock, only the walk of what changed runs). At the gate the follower
        reports what changed since its watches were set, and the window compares and pulls only that.
      - It gives up on what it cannot follow exactly (a full inotify queue, the watch limit
        C(fs.inotify.max_user_watches), a directory renamed, a file linked to a name it did not see,
        no C(python3), a lost connection), and so does a tree whose walk did not end before the gate;
        the window then walks as without this option (RV(follower) says why).
      - A file written only through a memory mapping whose descriptor was closed before the watches
        were set is not seen. Set V(false) for trees written so.
    type: bool
    default: true
  ssh_cipher:
    description:
      - Cipher of the SSH connection (C(ssh -c)). V(aes128-gcm@openssh.com) moves more data per
        processor second than ssh's default C(chacha20-poly1305) on processors with AES
        instructions.
      - An empty string keeps ssh's default choice, for an origin whose sshd does not accept the
        cipher (C(no matching cipher)).
    type: str
    default: aes128-gcm@openssh.com
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
  preserve:
    description:
      - What each file carries besides its data, owner, group, mode, times and hard links, kept too.
      - V(acls) keeps POSIX ACLs, their users and groups mapped by name like the owners
        (C(--acls)); V(xattrs) keeps extended attributes (C(--xattrs)); V(holes) keeps a sparse
        file sparse (C(--sparse)), where it would arrive as zeros and take its whole size.
      - The target's filesystems must support what the origin's files use; when they do not, the
        pull fails and says so (mount them with ACL and extended attribute support, or leave the
        attribute out knowingly).
    type: list
    elements: str
    choices: [acls, xattrs, holes]
    default: [acls, xattrs, holes]
  rsync_path:
    description:
      - rsync on the target. By default the one found in E(PATH).
    type: path
  progress_interval:
    description:
      - Seconds between two progress reports of a pull that is still running, V(0) for none.
      - The action plugin of this module starts the pull asynchronously on the target and prints,
        every O(progress_interval) seconds, one line per running tree in the task's output (bytes and
        files moved, entries checked, percent of the origin's tree, rate, estimated time left); a tree
        that ended since the previous report gets one last line. The first report comes after 10 s
        (or O(progress_interval) when shorter), so a pull of half a minute shows one; the default of
        30 s then does not flood the output of a pull of hours.
      - The module writes the same figures to O(progress_path) every O(progress_interval) / 2
        seconds (but at least every 5 s and at most every second), and returns the last ones in
        RV(progress).
      - With V(0), rsync reports no progress, the origin's trees are not measured, no file is written
        and the task waits for the module as for any other, as before this option existed. A task
        with C(async) also runs as any other module (C(async_status) then follows it), and so does
        check mode; their progress stays in RV(progress).
      - V(no_log) hides the lines.
    type: int
    default: 30
  progress_path:
    description:
      - File on the target where the pull's progress is written as JSON while it runs (see RV(progress)
        for its content), replaced whole each time, for other tools (AWX, a shell) to read. It stays
        after the pull with C(finished) true. Not written in check mode.
      - A file that cannot be written gives a warning; the pull goes on.
    type: path
    default: /run/bluemind-migration/pull-progress.json
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - bluemind.migration.ssh
  - bluemind.migration.lock
  - bluemind.migration.gate
  - bluemind.migration.job
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
  - A pull that fills the target's filesystem fails, naming the tree, the filesystem and its free
    space. rsync writes each file under a temporary name and removes the one it could not finish, so
    every file on the target is whole; once space is freed, the same task pulls what is missing.
  - The percent of a tree is of its size on the origin, measured by a C(find) over the same SSH
    connection while the tree is pulled (the entries and the sum of the regular files' sizes,
    excluded files included). Until that measure ends the percent and the time left are unknown.
    It is the bytes moved of that size, or the entries checked of that count, whichever is further;
    a first pull moves nearly every byte, a later one mostly checks entries that did not change. The
    time left is the time so far times the part left over the part done. A final pull from
    O(changed_since) measures nothing (it walks only what changed); its percent stays unknown.
  - When the controller stops (Ctrl-C, killed, connection lost) during a pull started with progress,
    the pull goes on to its end on the target; a rerun waits for it (O(lock_dir)) and shows its
    progress meanwhile, then pulls again what changed.
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

- name: Pull again, comparing by content what changed on the origin since the previous pull began
  bluemind.migration.bluemind_sync:
    origin_host: 192.0.2.10
    ssh_key: /root/.ssh/bluemind_migration
    known_hosts: /root/.ssh/bluemind_migration_known_hosts
    trees: [/var/spool/cyrus, /var/lib/cyrus, /var/spool/bm-hsm]
    allow_vanished: true
    checksum_since: "{{ previous_pull.origin_clock_start - 2 }}"
  register: next_pull

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
      description: Wall-clock time of this tree's pull (both passes and the listing with O(checksum_since)).
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
      description: rsync's (or the listing's) last error messages, for a tree that failed.
      type: list
      elements: str
      returned: on failure
    recent:
      description: Files and links modified on the origin since O(checksum_since) (or changed since
        O(changed_since)), compared by content.
      type: int
      returned: when O(checksum_since) or O(changed_since) is set and neither O(checksum) nor O(verify)
      sample: 120
    incremental:
      description: True when the tree was pulled from the list of what changed since O(changed_since).
      type: bool
      returned: when O(changed_since) applied to the tree
    changed_dirs:
      description: Directories changed since O(changed_since), their entries compared on both sides.
      type: int
      returned: when O(changed_since) applied to the tree
      sample: 12
    phases:
      description:
        - Seconds of each step of a pull from the list of what changed (RV(trees[].incremental)) - V(list)
          the origin's walk, V(directories) the changed directories compared, V(whole) what is pulled whole,
          V(content) the other changed entries compared by content, V(relink) the hard links made again.
      type: dict
      returned: when O(changed_since) applied to the tree
      sample: {"list": 0.4, "directories": 0.2, "whole": 0.3, "content": 1.1, "relink": 0.0}
    recent_changed:
      description:
        - Changes found by the content comparison of the RV(trees[].recent) files (also counted in
          RV(trees[].changes)).
        - In check mode, only the content changes that the usual pass does not report.
      type: int
      returned: when O(checksum_since) is set and neither O(checksum) nor O(verify)
      sample: 0
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
started_at:
  description: When the task began, on the target's clock (UTC, as the migration state keeps times).
  returned: when the connection to the origin opened
  type: str
  sample: "2026-11-29T18:00:00.000000Z"
ended_at:
  description: When the last tree was pulled, on the target's clock (UTC). With RV(started_at), the step in the report's timeline.
  returned: when the connection to the origin opened
  type: str
  sample: "2026-11-29T18:00:42.000000Z"
whole_trees:
  description: Why O(changed_since) was not used for any tree.
  returned: when the origin's clock is before O(changed_since)
  type: str
trees_found:
  description: The trees of O(trees_if_present) found on the origin, and pulled.
  returned: when the connection to the origin opened
  type: list
  elements: str
  sample: [/var/spool/bm-hsm]
origin_clock_start:
  description:
    - The origin's clock (seconds since the epoch) read before any tree was pulled. Minus a margin,
      it is the O(checksum_since) of the next pull.
  returned: when the connection to the origin opened
  type: float
  sample: 1718000000.123456
waited_for_lock:
  description: Seconds waited for a job of the same kind left running on the target (see O(lock_dir)).
  returned: success
  type: float
  sample: 0.0
waited_for_gate:
  description: Seconds waited at the gate (see O(gate_path)) before the pull began; 0 without one.
  returned: success
  type: float
  sample: 0.0
follower:
  description:
    - The follower of O(follow) (with O(gate_path) and O(changed_since) only).
    - C(watches) is the number of directories it watched, C(trees) the trees it listed, C(walked) the
      trees the window walked instead, each with its reason, C(pulled_before_stop) the pull before the
      stop of each tree (C(changes), C(bytes), C(files), C(seconds)).
  returned: when the follower ran
  type: dict
  sample: {"watches": 16420, "trees": ["/var/spool/cyrus"], "walked": {"/var/lib/cyrus": "a directory was renamed"}}
progress:
  description:
    - The last progress figures, as written to O(progress_path) (there with C(finished) false while
      the pull runs).
  returned: unless O(progress_interval=0)
  type: dict
  contains:
    job:
      description: What the file follows.
      type: str
      sample: pull
    pid:
      description: Process id of the module on the target.
      type: int
    started:
      description: When the pull began, seconds since the epoch on the target's clock.
      type: float
    updated:
      description: When the figures were taken, seconds since the epoch on the target's clock.
      type: float
    finished:
      description: Whether the pull has ended.
      type: bool
    trees:
      description: One entry per tree, in the order given.
      type: list
      elements: dict
      contains:
        path:
          description: The tree.
          type: str
        state:
          description: V(waiting) for a worker, V(running), V(done) or V(failed).
          type: str
        bytes:
          description: Bytes moved so far (at the end, rsync's C(Total transferred file size)).
          type: int
        files:
          description: Regular files moved so far.
          type: int
        entries_checked:
          description: Entries (files, directories, links) rsync compared so far in its current pass;
            null before its first report.
          type: int
        size_bytes:
          description: Sum of the sizes of the tree's regular files on the origin; null until measured.
          type: int
        size_entries:
          description: Entries of the tree on the origin; null until measured.
          type: int
        percent:
          description: Percent of the tree done (100 when done); null when the origin's size is not known.
          type: float
          sample: 42.5
        rate:
          description: Bytes moved per second since the tree's pull began; null in its first second.
          type: int
        eta:
          description: Estimated seconds left; null when the percent is not known or the tree is not running.
          type: int
        seconds:
          description: Seconds since the tree's pull began (its duration once ended).
          type: float
workers:
  description: How many trees were pulled at the same time (O(workers), or the automatic choice).
  returned: always
  type: int
  sample: 1
"""

import concurrent.futures
import functools
import os
import tempfile
import threading
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.bluemind.migration.plugins.module_utils import gate, jobs
from ansible_collections.bluemind.migration.plugins.module_utils.lock import (
    LockBusy,
    acquire,
    release,
    lock_argument_spec,
    lock_path,
)
from ansible_collections.bluemind.migration.plugins.module_utils.follow import (
    ChangesBeforeStop,
    Follower,
    follower_command,
    replay,
    walk_into,
)
from ansible_collections.bluemind.migration.plugins.module_utils.progress import (
    OriginSize,
    ProgressBoard,
    TreeProgress,
    size_command,
)
from ansible_collections.bluemind.migration.plugins.module_utils.rsync import (
    BLUEMIND_EXCLUDES,
    ExcludeFilter,
    RsyncError,
    WarmWalks,
    build_command,
    changed_entries_command,
    just_before_ns,
    OriginEntries,
    compare_directory,
    entries_command,
    list_changed,
    relink,
    remove_entries,
    target_entries,
    without,
    list_files,
    quick_check_misses,
    recent_files_command,
    run_rsync,
    tree_excludes,
    warm_walk_command,
)
from ansible_collections.bluemind.migration.plugins.module_utils.state import stamp
from ansible_collections.bluemind.migration.plugins.module_utils.ssh import (
    OriginSsh,
    SshError,
    explain_ssh_failure,
    ssh_argument_spec,
)

MAX_AUTO_WORKERS = 4
DEFAULT_PROGRESS_INTERVAL = 30
# Seconds the window waits for the follower's report (read from its memory: well under one)
FOLLOWER_REPORT_TIMEOUT = 30


def make_parents(trees):
    """The trees' parent folders on the target (mode 0755): rsync creates each tree itself, with the
    origin's owner and mode, not its parents."""
    for directory in [os.path.dirname(t.rstrip("/")) for t in trees]:
        if directory and not os.path.isdir(directory):
            os.makedirs(directory, 0o755)


def available_cpus():
    """Processors this process may run on (its affinity, narrower than the machine in a cpuset)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def effective_workers(requested, cpus):
    """``requested`` when >= 1; for 0, half the processors, between 1 and MAX_AUTO_WORKERS."""
    if requested >= 1:
        return requested
    return max(1, min(MAX_AUTO_WORKERS, (cpus or 1) // 2))


def checksum_recent(params, rsync_bin, origin, path, excludes, dry_run, progress=None):
    """Second pass of a tree: list on the origin its files modified since ``checksum_since`` and
    pull them again comparing by content. Return ``(listed, rsync result or None)``; raise
    :class:`SshError` when the listing fails and :class:`RsyncError` when rsync does.
    """
    root = path.rstrip("/") + "/"
    with tempfile.TemporaryFile(prefix="bluemind-sync-") as spool:
        listed, rc, tail = list_files(
            origin.remote(recent_files_command(path, params["checksum_since"])), spool,
            excluded=ExcludeFilter(excludes))
        if rc != 0:
            raise SshError(explain_ssh_failure(
                "listing the files of %s modified since %s on the origin" % (path, params["checksum_since"]),
                rc, "\n".join(tail)))
        if not listed:
            return 0, None
        spool.flush()
        spool.seek(0)
        args = build_command(
            rsync_bin, origin.shell(), "%s:%s" % (origin.destination, root), root, excludes=excludes,
            delete=False, dry_run=dry_run, checksum=True, files_from=True,
            ignore_missing=params["allow_vanished"], preserve=params["preserve"], progress=progress is not None)
        # A dry run of the second pass also sees what the first one would copy: count only what
        # the first one cannot see (a real run copied that already).
        return listed, rsync_pass(progress, args, params["diff_max_lines"], params["allow_vanished"], stdin=spool,
                                  counts=quick_check_misses if dry_run else None)


def incremental(params, rsync_bin, origin, path, excludes, dry_run, progress=None, found=None, links=None):
    """The final pass of a tree from what changed since ``changed_since``. In each directory whose
    status changed (entries added, removed or renamed), the entries of both sides are compared by
    type, size and time: what the origin no longer has is removed on the target (by this module:
    rsync would read the whole directory for it), what the target lacks or holds otherwise is
    pulled whole (``-r --delete``), and so is a changed directory the target does not have. Then the
    other changed entries, and the changed directories themselves, by content (``--checksum``).
    Last, the names of each file of several links on the origin are made one file here again.
    Entries with an older status are as the previous pull left them. Return ``(directories, others,
    results, removed)``, or None when the tree's own directory changed (the caller then pulls the
    whole tree). ``found`` (from :meth:`follow.ChangesBeforeStop.changes`) replaces the walk when given;
    ``links`` (a dict) gets the names of every file it found by inode, one link or more."""
    root = path.rstrip("/") + "/"
    source = "%s:%s" % (origin.destination, root)
    excluded = ExcludeFilter(excludes)
    phases, mark = {}, [time.monotonic()]

    def lap(name):  # the seconds since the previous step's end
        now = time.monotonic()
        phases[name], mark[0] = round(now - mark[0], 3), now

    with tempfile.TemporaryFile(prefix="bluemind-sync-") as others, \
            tempfile.TemporaryFile(prefix="bluemind-sync-") as whole:
        given_links, links = links is not None, {} if links is None else links
        # the changed directories are compared as the walk finds them
        compared = ChangedDirectories(params, origin, path, excluded, others, whole)
        try:
            if found is not None:
                ndirs, nothers, root_changed = replay(found, others, excluded, links, compared.listed)
                rc, tail = 0, []
            else:
                ndirs, nothers, root_changed, rc, tail = list_changed(
                    origin.remote(changed_entries_command(path, params["changed_since"])), None, others,
                    excluded=excluded, links=links, on_directory=compared.listed, every_file=given_links)
        except BaseException:
            compared.abandon()
            raise
        if rc != 0 or root_changed:
            compared.abandon()
        if rc != 0:
            raise SshError(explain_ssh_failure(
                "listing the entries of %s changed since %s on the origin" % (path, params["changed_since"]),
                rc, "\n".join(tail)))
        if root_changed:
            return None
        lap("list")
        results, received = [], set()
        removed, nwhole = compared.finish()
        if removed and not dry_run:
            remove_entries(root, removed)
        lap("directories")
        if nwhole:
            results.append(pull_list(params, rsync_bin, origin, source, root, excludes, dry_run, whole,
                                     dict(recursive=True, delete=params["delete"]), received, progress))
        lap("whole")
        others.seek(0, os.SEEK_END)
        if others.tell():
            # What the first pass received is the origin's already: not read again.
            others, left = without(others, received) if received else (others, True)
            with others:
                if left:
                    results.append(pull_list(params, rsync_bin, origin, source, root, excludes, dry_run, others,
                                             dict(checksum=True, delete=False), progress=progress))
        lap("content")
        # A name linked since the last pull to a file of another directory came in another rsync run
        # than that file (rsync -H links only what one run transfers): made one file again, as on the origin.
        if links and not dry_run:
            results.append(relink_result(relink(root, links, excluded)))
        lap("relink")
        return ndirs, nothers, results, removed, phases


class ChangedDirectories(object):
    """The directories of a tree that changed on the origin (see :func:`incremental`), compared on both sides
    as the walk lists them (:meth:`listed`): one the target does not have is written to ``whole`` (pulled
    whole), one it has to ``others`` (its own status comes with the second pass) and its entries are read
    on the origin (:class:`OriginEntries`, started at the first) and compared with the target's, in that
    listing's thread. :meth:`finish` returns ``(entries to remove, count written to whole)`` once every
    directory was compared, and raises :class:`SshError` when the origin's listing failed."""

    def __init__(self, params, origin, path, excluded, others, whole):
        self.params, self.origin, self.path, self.excluded = params, origin, path, excluded
        self.base = os.fsencode(path.rstrip("/") + "/")
        self.others, self.whole = others, whole
        self.lock = threading.Lock()  # whole is written by both threads
        self.names = set()
        self.present = 0
        self.removed, self.undecided, self.count = [], [], 0
        self.listing = None

    def listed(self, name):
        """One changed directory, named as the walk lists it (relative to the tree)."""
        self.names.add(name)
        full = os.path.join(self.base, name)
        if os.path.islink(full) or not os.path.isdir(full):
            self._pull_whole(name)
            return
        self.others.write(name + b"\0")
        if self.listing is None:
            self.listing = OriginEntries(self.origin.remote(entries_command(self.path)), self._compare)
        self.present += 1
        self.listing.add(name)

    def _pull_whole(self, name):
        with self.lock:
            self.whole.write(name + b"\0")
            self.count += 1

    def _compare(self, directory, entries):
        remove, pull = compare_directory(directory, entries, target_entries(os.path.join(self.base, directory)),
                                         None, self.excluded, undecided=self.undecided)
        if self.params["delete"]:
            self.removed.extend(remove)
        for name in pull:
            self._pull_whole(name)

    def finish(self):
        if self.listing is not None:
            rc, tail = self.listing.finish()
            if rc != 0:
                raise SshError(explain_ssh_failure(
                    "listing the entries of the %d directories of %s changed since %s on the origin" % (
                        self.present, self.path, self.params["changed_since"]), rc, "\n".join(tail)))
        # a directory of another time that did not change itself (one moved in keeps its entries' times)
        for name in self.undecided:
            if name not in self.names:
                self._pull_whole(name)
        return self.removed, self.count

    def abandon(self):
        """The walk failed or the whole tree is pulled: the entries are not wanted."""
        if self.listing is not None:
            self.listing.abandon()


def pull_list(params, rsync_bin, origin, source, root, excludes, dry_run, spool, options, received=None,
              progress=None):
    """One rsync of the names in ``spool`` (``--files-from``)."""
    spool.flush()
    spool.seek(0)
    args = build_command(rsync_bin, origin.shell(), source, root, excludes=excludes, dry_run=dry_run,
                         files_from=True, ignore_missing=params["allow_vanished"], preserve=params["preserve"],
                         progress=progress is not None, **options)
    return rsync_pass(progress, args, params["diff_max_lines"], params["allow_vanished"], stdin=spool,
                      transferred=received)


def rsync_pass(progress, args, *more, **options):
    """:func:`run_rsync`, its ``--info=progress2`` updates given to ``progress`` (a TreeProgress)."""
    try:
        return run_rsync(args, *more, progress=progress.update if progress is not None else None, **options)
    finally:
        if progress is not None:
            progress.next_pass()


def removal_result(removed):
    """The entries removed by the module (see :func:`incremental`) as rsync itemizes deletions."""
    result = empty_result()
    result.update(changes=len(removed), deleted=len(removed), diff=[
        "*deleting   %s%s" % (os.fsdecode(path), "/" if is_dir else "") for path, is_dir in removed])
    return result


def relink_result(relinked):
    """The names the module linked again (see :func:`incremental`) as rsync itemizes a hard link."""
    result = empty_result()
    result.update(changes=len(relinked), diff=[
        "hf          %s => %s" % (os.fsdecode(name), os.fsdecode(first)) for name, first in relinked])
    return result


def empty_result():
    return dict(changes=0, created=0, deleted=0, vanished=0, diff=[], diff_omitted=0, rc=0, stderr_tail=[],
                stats={}, seconds=0.0)


def merge(raw, second, diff_max_lines):
    """Add the second pass's changes to the first pass's result."""
    for key in ("changes", "created", "deleted", "vanished"):
        raw[key] += second[key]
    raw["diff"] += second["diff"][:max(0, diff_max_lines - len(raw["diff"]))]
    raw["diff_omitted"] = raw["changes"] - len(raw["diff"])
    raw["rc"] = second["rc"] or raw["rc"]
    raw["stderr_tail"] = second["stderr_tail"] or raw["stderr_tail"]


def sync_tree(params, rsync_bin, origin, tree, dry_run, progress=None, found=None):
    """Pull one tree; return its summary (a failed tree carries ``msg`` instead of raising).
    ``progress`` (a TreeProgress) follows the pull as it goes; ``found``: see :func:`incremental`."""
    if progress is not None:
        progress.start()
    outcome = None
    try:
        outcome = pull_tree(params, rsync_bin, origin, tree, dry_run, progress, found)
    finally:
        if progress is not None:
            summary = outcome[0] if outcome else {}
            progress.end(failed=outcome is None or outcome[1] is not None, moved_bytes=summary.get("bytes"),
                         files=summary.get("files"))
    return outcome


def pull_tree(params, rsync_bin, origin, tree, dry_run, progress, found=None, links=None):
    started = time.monotonic()
    path = tree.rstrip("/") or "/"
    root = path.rstrip("/") + "/"
    excludes = tree_excludes(path, params["excludes"])
    # A tree the target does not have yet (its plan found it after the last pull) is pulled whole: what
    # changed since that pull is not all it holds.
    if walks_in_window(params) and os.path.isdir(path):
        try:
            done = incremental(params, rsync_bin, origin, path, excludes, dry_run, progress, found, links)
        except SshError as exc:
            return failed_tree(path, started, str(exc))
        except RsyncError as exc:
            return failed_tree(path, started, "changed entries: %s" % exc, exc.result)
        if done is not None:
            ndirs, nothers, results, removed, phases = done
            raw = empty_result()
            if removed:
                merge(raw, removal_result(removed), params["diff_max_lines"])
            for one in results:
                merge(raw, one, params["diff_max_lines"])
            summary = tree_summary(path, started, raw, [r["stats"] for r in results], {}, incremental=True,
                                   changed_dirs=ndirs, recent=nothers, recent_changed=raw["changes"],
                                   phases=phases, listed_by="walk" if found is None else "follower")
            return summary, None, raw["diff"], raw["diff_omitted"]
    args = build_command(
        rsync_bin, origin.shell(), "%s:%s" % (origin.destination, root), root,
        excludes=excludes, delete=params["delete"],
        dry_run=dry_run, checksum=params["verify"] or params["checksum"], preserve=params["preserve"],
        progress=progress is not None,
    )
    size = OriginSize(origin.remote(size_command(path)), progress) if progress is not None else None
    try:
        raw = rsync_pass(progress, args, params["diff_max_lines"], params["allow_vanished"])
        msg = None
    except RsyncError as exc:
        raw, msg = exc.result, "%s: %s" % (path, exc)
    finally:
        if size is not None:
            size.stop()
    transferred = [raw["stats"]]
    recent = None
    if msg is None and recent_pass(params):
        second = None
        try:
            recent, second = checksum_recent(params, rsync_bin, origin, path, excludes, dry_run, progress)
        except SshError as exc:
            msg, raw["stderr_tail"] = "%s: %s" % (path, exc), [str(exc)]
        except RsyncError as exc:
            second, msg = exc.result, "%s: content comparison of the recent files: %s" % (path, exc)
        recent_changed = 0
        if second is not None:
            recent_changed = second["changes"]
            merge(raw, second, params["diff_max_lines"])
            transferred.append(second["stats"])
    summary = tree_summary(path, started, raw, transferred, raw["stats"])
    if recent is not None:
        summary.update(recent=recent, recent_changed=recent_changed)
    if msg:
        summary["messages"] = raw["stderr_tail"]
    return summary, msg, raw["diff"], raw["diff_omitted"]


def tree_summary(path, started, raw, transferred, stats, **extra):
    """One tree's entry of RV(trees): the counters of ``raw``, the sums of the ``transferred`` stats."""
    return dict(
        path=path, changed=raw["changes"] > 0, changes=raw["changes"], created=raw["created"],
        deleted=raw["deleted"], bytes=sum(t.get("transferred_size", 0) for t in transferred),
        files=sum(t.get("files_transferred", 0) for t in transferred),
        seconds=round(time.monotonic() - started, 3), rc=raw["rc"], vanished=raw["vanished"], stats=stats,
        **extra)


def failed_tree(path, started, message, result=None):
    result = result or empty_result()
    summary = tree_summary(path, started, result, [], {}, messages=result["stderr_tail"] or [message])
    return summary, "%s: %s" % (path, message), result["diff"], result["diff_omitted"]


def walks_in_window(params):
    """Whether the pull lists what changed by walking the origin's trees (O(changed_since) alone)."""
    return params["changed_since"] is not None and not (params["checksum"] or params["verify"])


def listed(found):
    """The changes of a tree found before the stop, or None (a reason: the window walks it)."""
    return found if isinstance(found, tuple) else None


def before_stop(module, params, rsync_bin, origin, workers, dry_run):
    """What the gated pull does while it waits (in the background), or None, with O(changed_since): with
    O(follow), the follower, then the pull of what changed since the last pull (the origin still serving:
    the window takes the rest from the follower) under the pull lock, or, when another pull holds it, only
    the walk of what changed; without, the walks warming the origin's caches."""
    if not walks_in_window(params):
        return None
    if not params["follow"] or dry_run:
        return WarmWalks([origin.remote(warm_walk_command(tree, params["changed_since"]))
                          for tree in params["trees"]], workers)
    follower = Follower(origin.remote(follower_command(
        params["trees"], just_before_ns(params["changed_since"]))), params["trees"])
    try:
        acquire(lock_path(params, "pull"), 0, "a pull of the trees")
    except (LockBusy, OSError) as exc:
        module.warn("the pull before the origin's stop is not made (%s): the window moves what changed" % exc)
        work = dict((tree, walk_into(origin.remote(changed_entries_command(tree, params["changed_since"]))))
                    for tree in params["trees"])
    else:
        # a pull while the origin serves: files may vanish between its listing and its copy
        serving = dict(params, allow_vanished=True)
        work = dict((tree, pull_ahead(serving, rsync_bin, origin, tree)) for tree in params["trees"])
    return ChangesBeforeStop(follower, work, workers)


def work_before_stop(params, warming):
    """Wait for what the gated pull does before its gate (``warming``, or None), then give back the pull lock
    that its pull before the stop took: a job whose gate never opens (its run's controller died) holds it
    no longer than that pull, and the window's pull takes it again after the gate."""
    try:
        if warming:
            warming.join()
    finally:
        release(lock_path(params, "pull"))


def pull_ahead(params, rsync_bin, origin, tree):
    """The work of ``tree`` before the stop (see :class:`follow.ChangesBeforeStop`): its pull of what
    changed, summed up into its TreeChanges (``pulled``), with the names of every file its walk found by
    inode (a name the follower then sees linked to such a file is not linked to a name it did not see)."""
    def work(changes, _popen):
        summary, msg = pull_tree(params, rsync_bin, origin, tree, False, None, links=changes.links)[:2]
        changes.pulled = dict((key, summary.get(key)) for key in ("changes", "bytes", "files", "seconds"))
        return "the pull before the stop failed: %s" % msg if msg else None
    return work


def recent_pass(params):
    """Whether the trees get the content comparison of their recent files."""
    return params["checksum_since"] is not None and not (params["checksum"] or params["verify"])


def connect(module, origin, params, dry_run, workers):
    """The connection to the origin, opened once for every tree (which proves the key and the pinned
    host key), and the trees' parents on the target; the module fails when it cannot open."""
    try:
        origin.check_files()
        control_dir = os.path.dirname(params["ssh_control_path"])
        if control_dir and not os.path.isdir(control_dir):
            os.makedirs(control_dir, 0o700)
        if not dry_run:
            make_parents(params["trees"])
        origin.open_master(module.run_command)
    except (SshError, OSError) as exc:
        module.fail_json(msg="cannot pull from the origin: %s" % exc, trees=[], workers=workers)


def progress_board(params, check_mode):
    """The trees' progress and its file (none in check mode, which must not touch the file of a pull
    left running; no progress at all with ``progress_interval: 0``)."""
    if not params["progress_interval"]:
        return ProgressBoard("pull", [])
    trees = [TreeProgress(tree.rstrip("/") or "/") for tree in params["trees"]]
    period = max(1.0, min(5.0, params["progress_interval"] / 2.0))
    return ProgressBoard("pull", trees, None if check_mode else params["progress_path"], period)


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
    argument_spec.update(lock_argument_spec())
    argument_spec.update(gate.gate_argument_spec())
    argument_spec.update(jobs.job_argument_spec())
    argument_spec.update(
        trees=dict(type="list", elements="path", required=True),
        trees_if_present=dict(type="list", elements="path", default=[]),
        workers=dict(type="int", default=0),
        checksum_since=dict(type="float"),
        changed_since=dict(type="float"),
        follow=dict(type="bool", default=True),
        ssh_cipher=dict(type="str", default="aes128-gcm@openssh.com"),
        delete=dict(type="bool", default=True),
        excludes=dict(type="list", elements="str", default=list(BLUEMIND_EXCLUDES)),
        allow_vanished=dict(type="bool", default=False),
        checksum=dict(type="bool", default=False),
        verify=dict(type="bool", default=False),
        diff_max_lines=dict(type="int", default=100),
        ssh_control_path=dict(type="path", default="~/.ssh/bluemind-migration-%C"),
        rsync_path=dict(type="path"),
        preserve=dict(type="list", elements="str", default=["acls", "xattrs", "holes"],
                      choices=["acls", "xattrs", "holes"]),
        progress_interval=dict(type="int", default=DEFAULT_PROGRESS_INTERVAL),
        progress_path=dict(type="path", default="/run/bluemind-migration/pull-progress.json"),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           required_together=[("gate_path", "gate_token")])
    # run as a background job (the window's final pull, ahead of the stop): its process and result on
    # the target, for bluemind_job_wait
    jobs.start_job(module)
    params = module.params
    if params["workers"] < 0 or not params["trees"]:
        module.fail_json(msg="give at least one tree, and workers >= 1 (or 0 for an automatic choice)")
    if params["progress_interval"] < 0:
        module.fail_json(msg="progress_interval is %d: give seconds between progress reports, or 0 for none"
                         % params["progress_interval"])
    workers = effective_workers(params["workers"], available_cpus())
    rsync_bin = params["rsync_path"] or module.get_bin_path("rsync", required=True)
    origin = OriginSsh(module.get_bin_path("ssh", required=True), params,
                       control_path=params["ssh_control_path"])
    dry_run = module.check_mode or params["verify"]
    waited_for_gate = 0.0
    followed, warming = {}, None
    if params["gate_path"]:
        # Started ahead of the origin's stop: the connection opens now, nothing is read before the gate.
        connect(module, origin, params, dry_run, workers)
        warming = before_stop(module, params, rsync_bin, origin, workers, dry_run)
        ready = jobs.ready_when(module, functools.partial(work_before_stop, params, warming))
        try:
            waited_for_gate = gate.wait(params["gate_path"], params["gate_token"], params["gate_timeout"],
                                        "the origin's stop")
        except gate.GateClosed as exc:
            # the connection is left to its ControlPersist: another pull may share it by now
            module.fail_json(msg=str(exc), trees=[], workers=workers, waited_for_gate=float(params["gate_timeout"]))
        finally:
            if warming:
                warming.stop()
            ready.join()  # the pull before the stop gave its lock back: the window's pull takes it below
        if isinstance(warming, ChangesBeforeStop):
            followed = warming.changes(FOLLOWER_REPORT_TIMEOUT)
    waited_for_lock = 0.0
    if not module.check_mode:
        try:
            waited_for_lock = acquire(lock_path(params, "pull"), params["lock_timeout"], "a pull of the trees")
        except (LockBusy, OSError) as exc:
            # a gated job's connection may be the running pull's own (ControlMaster=auto): left open
            module.fail_json(msg=str(exc), trees=[], workers=workers)
    started, started_at = time.monotonic(), stamp()
    if not params["gate_path"]:
        connect(module, origin, params, dry_run, workers)
    try:
        try:
            clock_start, found = origin.clock_and_directories(
                module.run_command, [t for t in params["trees_if_present"] if t not in params["trees"]])
            if found and not dry_run:
                make_parents(found)
        except (SshError, OSError) as exc:
            module.fail_json(msg="cannot pull from the origin: %s" % exc, trees=[], workers=workers)
        params["trees"] = params["trees"] + found
        whole_trees = None
        if params["changed_since"] is not None:
            # A tree whose top changed, or a clock that went back, gets the whole pull, still
            # comparing by content what was modified since.
            params["checksum_since"] = params["checksum_since"] or params["changed_since"]
            if clock_start < params["changed_since"]:
                whole_trees = "the origin's clock (%s) is before changed_since (%s)" % (
                    clock_start, params["changed_since"])
                params["changed_since"] = None
        board = progress_board(params, module.check_mode)
        with board, concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            outcomes = list(pool.map(
                lambda tracked: sync_tree(params, rsync_bin, origin, tracked[0], dry_run, tracked[1],
                                          listed(followed.get(tracked[0]))),
                zip(params["trees"], board.trees if board.trees else [None] * len(params["trees"]))))
    finally:
        origin.close_master(module.run_command)

    trees = [outcome[0] for outcome in outcomes]
    result = dict(
        changed=not params["verify"] and any(t["changed"] for t in trees),
        trees=trees,
        bytes=sum(t["bytes"] for t in trees),
        files=sum(t["files"] for t in trees),
        seconds=round(time.monotonic() - started, 3),
        origin_clock_start=clock_start,
        started_at=started_at,
        ended_at=stamp(),
        workers=workers,
        waited_for_lock=waited_for_lock,
        waited_for_gate=waited_for_gate,
        trees_found=found,
    )
    if board.trees:
        result["progress"] = board.finish()
        if board.write_error:
            module.warn(board.write_error)
    if whole_trees:
        result["whole_trees"] = whole_trees
    if isinstance(warming, ChangesBeforeStop):
        result["follower"] = dict(watches=warming.follower.watches or 0,
                                  trees=[tree for tree, found in followed.items() if listed(found)],
                                  walked={tree: found for tree, found in followed.items() if not listed(found)},
                                  pulled_before_stop=dict((tree, changes.pulled) for tree, changes in zip(
                                      warming.follower.trees, warming.follower.changes) if changes.pulled))
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
