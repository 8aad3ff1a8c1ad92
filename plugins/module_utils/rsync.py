# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""rsync for BlueMind trees: the command line, and a streaming reader of its output.

The output of ``--itemize-changes --stats`` is read line by line while rsync runs, so memory
stays bounded whatever the number of files: only counters, the stats and at most
``diff_max_lines`` itemized lines per tree are kept.
"""

from __future__ import annotations

import collections
import os
import subprocess
import threading
import time

# BlueMind's own backup leaves these out: a search index rebuilt by Cyrus, and runtime state.
BLUEMIND_EXCLUDES = ("cyrus.squat", "/var/lib/cyrus/proc/", "/var/lib/cyrus/lock/", "/var/lib/cyrus/socket/")

EXIT_VANISHED = 24
EXIT_MEANINGS = {
    1: "syntax or usage error",
    2: "protocol incompatibility",
    3: "errors selecting input/output files or directories",
    5: "error starting client-server protocol",
    10: "error in socket I/O",
    11: "error in file I/O",
    12: "error in rsync protocol data stream",
    20: "interrupted",
    23: "partial transfer due to error",
    24: "partial transfer: source files vanished (data still changing on the origin)",
    30: "timeout in data send/receive",
    35: "timeout waiting for daemon connection",
    255: "ssh failed",
}

STATS_KEYS = {
    "Number of files": "files_total",
    "Number of created files": "files_created",
    "Number of deleted files": "files_deleted",
    "Number of regular files transferred": "files_transferred",
    "Total file size": "total_size",
    "Total transferred file size": "transferred_size",
    "Literal data": "literal_data",
    "Matched data": "matched_data",
    "Total bytes sent": "bytes_sent",
    "Total bytes received": "bytes_received",
}

ITEM_WIDTH = 11  # YXcstpoguax, or "*deleting" padded
STDERR_TAIL_LINES = 20


class RsyncError(Exception):
    """rsync ended with an exit code that is not accepted; ``result`` holds what it reported."""

    def __init__(self, message, result):
        super(RsyncError, self).__init__(message)
        self.result = result


def tree_excludes(tree, excludes):
    """Exclude patterns for one tree.

    An absolute pattern names a place on disk: it applies only to the tree that holds it, anchored
    at the transfer's root (``/var/lib/cyrus/proc/`` becomes ``/proc/`` for ``/var/lib/cyrus``).
    A relative pattern (``cyrus.squat``) applies everywhere.
    """
    root = tree.rstrip("/") + "/"
    result = []
    for pattern in excludes:
        if not pattern.startswith("/"):
            result.append(pattern)
        elif pattern.startswith(root) and len(pattern) > len(root):
            result.append("/" + pattern[len(root):])
    return result


def build_command(rsync_bin, remote_shell, source, dest, excludes=(), delete=True, dry_run=False,
                  checksum=False):
    """The rsync argv for one tree pulled from ``source`` (``user@host:/path/``) into ``dest``.

    Owners and groups are mapped by name (never ``--numeric-ids``: uids differ between
    distributions) and modification times are compared to the nanosecond
    (``--modify-window=-1``: whole seconds miss a same-size rewrite within the same second).
    """
    args = [rsync_bin, "-aH", "--modify-window=-1", "--itemize-changes", "--stats", "-e", remote_shell]
    if delete:
        args.append("--delete")
    if dry_run:
        args.append("--dry-run")
    if checksum:
        args.append("--checksum")
    args += ["--exclude=%s" % pattern for pattern in excludes]
    args += [source, dest]
    return args


def parse_itemized(line):
    """``(flags, name)`` for an itemized line (``>f+++++++++ a/b``, ``*deleting   x``), else None."""
    if len(line) <= ITEM_WIDTH + 1 or line[ITEM_WIDTH] != " ":
        return None
    flags = line[:ITEM_WIDTH]
    if flags.startswith("*deleting"):
        return flags.rstrip(), line[ITEM_WIDTH + 1:]
    if flags[0] not in "<>ch." or flags[1] not in "fdLDS":
        return None
    return flags, line[ITEM_WIDTH + 1:]


def is_change(flags):
    """False for lines that change nothing that matters: a directory's time only, or nothing."""
    if flags.startswith("*"):
        return True
    unchanged = ". tT" if flags[1] == "d" else ". "
    return flags[0] != "." or any(c not in unchanged for c in flags[2:])


def parse_stats_line(line):
    """``(key, int)`` for a ``--stats`` line we keep (``Total file size: 1,234 bytes``), else None."""
    label, sep, rest = line.partition(": ")
    key = STATS_KEYS.get(label.strip())
    if not sep or key is None:
        return None
    number = rest.split(" ", 1)[0].replace(",", "")
    return (key, int(number)) if number.isdigit() else None


def _drain_stderr(stream, tail, counters):
    for raw in stream:
        line = raw.decode("utf-8", "replace").rstrip("\n")
        if line.startswith("file has vanished:"):
            counters["vanished"] += 1
        tail.append(line)


def run_rsync(args, diff_max_lines, allow_vanished, popen=subprocess.Popen, clock=time.monotonic):
    """Run rsync, reading its output as it comes; return the tree's summary.

    ``changes`` counts the itemized lines that matter (see :func:`is_change`); ``diff`` keeps the
    first ``diff_max_lines`` of them. Exit code 24 (files vanished) is accepted only when
    ``allow_vanished``; any other failure raises :class:`RsyncError`.
    """
    started = clock()
    proc = popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ, LC_ALL="C"))
    tail = collections.deque(maxlen=STDERR_TAIL_LINES)
    counters = {"vanished": 0}
    reader = threading.Thread(target=_drain_stderr, args=(proc.stderr, tail, counters))
    reader.daemon = True
    reader.start()
    result = dict(changes=0, created=0, deleted=0, diff=[], stats={})
    for raw in proc.stdout:
        line = raw.decode("utf-8", "replace").rstrip("\n")
        item = parse_itemized(line)
        if item is None:
            stat = parse_stats_line(line)
            if stat:
                result["stats"][stat[0]] = stat[1]
            continue
        flags = item[0]
        if not is_change(flags):
            continue
        result["changes"] += 1
        if flags == "*deleting":
            result["deleted"] += 1
        elif flags.endswith("+++++++++"):
            result["created"] += 1
        if len(result["diff"]) < diff_max_lines:
            result["diff"].append(line)
    rc = proc.wait()
    reader.join()
    result.update(
        rc=rc,
        seconds=round(clock() - started, 3),
        vanished=counters["vanished"],
        stderr_tail=list(tail),
        diff_omitted=result["changes"] - len(result["diff"]),
    )
    if rc != 0 and not (rc == EXIT_VANISHED and allow_vanished):
        hint = " (set allow_vanished while BlueMind still runs on the origin)" if rc == EXIT_VANISHED else ""
        raise RsyncError(
            "rsync exited %d: %s%s; last messages: %s" % (
                rc, EXIT_MEANINGS.get(rc, "see rsync(1)"), hint, " | ".join(tail) or "none"),
            result,
        )
    return result
