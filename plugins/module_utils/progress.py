# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Progress of long work on the target: figures per tree, the file that carries them, their text.

A module cannot print while it runs. The module keeps one :class:`TreeProgress` per tree, updated
from rsync's ``--info=progress2`` lines, and a :class:`ProgressBoard` writes them every few seconds
to a small JSON file on the target. The action plugin of the same name reads that file while the
module runs (asynchronously) and prints :func:`format_line` for each tree; the module's result
carries the last figures. The percent is of the origin's tree measured when its pull begins
(:func:`size_command`), by bytes moved or by entries checked, whichever is further: a first pull
moves nearly every byte, a later one mostly checks entries that did not change.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import tempfile
import threading
import time

# The first progress report comes after this many seconds (or the progress interval when shorter):
# a shorter job shows none, so the window runs a pull predicted well under it without the progress
# path (the async launch and status reads cost round trips, nearly a second in the lab).
FIRST_REPORT_SECONDS = 10

# "  1,234,567  12%  10.50MB/s    0:00:07 (xfr#3, ir-chk=1000/1048)" (the part in brackets comes
# with the updates that end a file or a file-list chunk).
_PROGRESS2 = re.compile(r"^\s*([0-9][0-9,]*)\s+\d+%\s+\S+\s+\S+(?:\s+\(xfr#(\d+), (?:ir|to)-chk=(\d+)/(\d+)\))?\s*$")

# On the origin: every entry of the tree (as rsync counts them: "." and directories too) and the sum
# of its regular files' sizes, "<entries> <bytes>".
_SIZE = ("cd %s && find . -ignore_readdir_race -printf '%%y %%s\\n' "
         "| awk '{n++} $1 == \"f\" {s += $2} END {printf \"%%d %%.0f\\n\", n, s}'")


def parse_progress2(line):
    """``(bytes, files_moved, entries_checked, entries_listed)`` for an ``--info=progress2`` line,
    the last three None on an update that does not carry them; None for any other line."""
    match = _PROGRESS2.match(line)
    if not match:
        return None
    moved, to_check, listed = (int(g) if g is not None else None for g in match.groups()[1:])
    checked = listed - to_check if listed is not None else None
    return int(match.group(1).replace(",", "")), moved, checked, listed


def size_command(tree):
    """Shell command, run on the origin, printing ``<entries> <bytes>`` of ``tree``."""
    return _SIZE % shlex.quote(tree)


def parse_size(out):
    """``(entries, bytes)`` from :func:`size_command`'s answer, or None when it is not one."""
    words = out.split()
    if len(words) != 2 or not all(w.isdigit() for w in words) or int(words[0]) == 0:
        return None
    return int(words[0]), int(words[1])


class OriginSize(object):
    """A tree's size on the origin, measured beside its pull: ``args`` (ssh running
    :func:`size_command`) runs in the background and its answer goes to ``progress`` (a
    TreeProgress). :meth:`stop` kills it when the pull ended first (the percent then stays unknown)."""

    def __init__(self, args, progress, popen=subprocess.Popen):
        self.proc = popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          env=dict(os.environ, LC_ALL="C"))
        self.thread = threading.Thread(target=self._read, args=(progress,))
        self.thread.daemon = True
        self.thread.start()

    def _read(self, progress):
        out = self.proc.communicate()[0]
        size = parse_size(out.decode("ascii", "replace")) if self.proc.returncode == 0 else None
        if size is not None:
            progress.sized(*size)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.thread.join()


def percent_done(moved_bytes, checked, size_bytes, size_entries):
    """Percent of the origin's tree done: bytes moved of its size, or entries checked of its count,
    whichever is further (None when its size is not known). Never 100 while it runs."""
    ratios = []
    if size_bytes:
        ratios.append(moved_bytes / float(size_bytes))
    if size_entries and checked is not None:
        ratios.append(checked / float(size_entries))
    if not ratios:
        return None
    return round(min(99.9, 100.0 * max(ratios)), 1)


def eta_seconds(percent, elapsed):
    """Seconds left at the pace so far (None before 0.1 % or 1 s, or when the percent is unknown)."""
    if percent is None or percent < 0.1 or elapsed < 1:
        return None
    return int(round(elapsed * (100.0 - percent) / percent))


def human_bytes(number):
    value = float(number)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return ("%d %s" % (value, unit)) if unit == "B" else ("%.1f %s" % (value, unit))
        value /= 1024.0
    return "%.1f TiB" % value  # pragma: no cover (the loop returns)


def human_duration(seconds):
    """``1h02m``, ``4m05s``, ``12s``."""
    seconds = int(round(seconds))
    if seconds >= 3600:
        return "%dh%02dm" % (seconds // 3600, seconds % 3600 // 60)
    if seconds >= 60:
        return "%dm%02ds" % (seconds // 60, seconds % 60)
    return "%ds" % seconds


class TreeProgress(object):
    """Figures of one tree's pull, updated by the threads that run it, read by the board's writer.

    Bytes and files are what rsync moved (its passes added up); entries are what it checked, of the
    current pass. The origin's size comes from :meth:`sized` when its measure ends.
    """

    def __init__(self, path, clock=time.monotonic, counts_files=True):
        self.path = path
        self.clock = clock
        self.counts_files = counts_files  # a database's copy moves bytes, not files
        self.lock = threading.Lock()
        self.state = "waiting"
        self.started = self.ended = None
        self.size_entries = self.size_bytes = None
        self.base_bytes = self.base_files = 0  # earlier passes
        self.bytes = self.files = 0  # current pass
        self.checked = None

    def start(self):
        with self.lock:
            self.state, self.started = "running", self.clock()

    def sized(self, entries, size):
        with self.lock:
            self.size_entries, self.size_bytes = entries, size

    def update(self, moved_bytes, files, checked, _listed=None):
        """One ``--info=progress2`` update of the current pass (see :func:`parse_progress2`)."""
        with self.lock:
            self.bytes = moved_bytes
            if files is not None:
                self.files = files
            if checked is not None:
                self.checked = checked

    def next_pass(self):
        """The current pass ended: its bytes and files count for the tree, its entries do not."""
        with self.lock:
            self.base_bytes += self.bytes
            self.base_files += self.files
            self.bytes = self.files = 0

    def end(self, failed=False, moved_bytes=None, files=None):
        """The tree's pull ended; ``moved_bytes`` and ``files`` are rsync's final counts when known."""
        with self.lock:
            self.state, self.ended = ("failed" if failed else "done"), self.clock()
            if moved_bytes is not None:
                self.base_bytes, self.bytes = moved_bytes, 0
            if files is not None:
                self.base_files, self.files = files, 0

    def snapshot(self):
        with self.lock:
            moved_bytes, files = self.base_bytes + self.bytes, self.base_files + self.files
            now = self.ended if self.ended is not None else self.clock()
            elapsed = now - self.started if self.started is not None else 0.0
            if self.state == "done":
                percent = 100.0
            elif self.state == "running":
                percent = percent_done(moved_bytes, self.checked, self.size_bytes, self.size_entries)
            else:
                percent = None
            return dict(
                path=self.path, state=self.state, bytes=moved_bytes, files=files if self.counts_files else None,
                entries_checked=self.checked,
                size_bytes=self.size_bytes, size_entries=self.size_entries, percent=percent,
                rate=int(moved_bytes / elapsed) if elapsed >= 1 else None,
                eta=eta_seconds(percent, elapsed) if self.state == "running" else None,
                seconds=round(elapsed, 1))


def format_line(tree):
    """One line for a tree's snapshot, as the action plugin prints it."""
    path, state = tree["path"], tree["state"]
    if state == "waiting":
        return "%s: not started yet (waiting for the connection or a worker)" % path
    parts = ["%s moved" % human_bytes(tree["bytes"]) + (
        " in %s files" % format(tree["files"], ",") if tree.get("files") is not None else "")]
    if tree.get("entries_checked") is not None:
        parts.append("%s%s entries checked" % (
            format(tree["entries_checked"], ","),
            " of %s" % format(tree["size_entries"], ",") if tree.get("size_entries") else ""))
    if tree.get("percent") is None:
        parts.append("percent unknown (the origin's size is not measured yet)")
    else:
        parts.append("%g%% of %s" % (tree["percent"], human_bytes(tree["size_bytes"] or 0)))
    parts.append("%s/s" % human_bytes(tree["rate"]) if tree.get("rate") is not None else "rate unknown")
    if state == "running":
        parts.append("ETA %s" % human_duration(tree["eta"]) if tree.get("eta") is not None else "ETA unknown")
    parts.append("%s %s" % ("running" if state == "running" else "in", human_duration(tree["seconds"])))
    return "%s: %s%s" % (path, "" if state == "running" else state + ": ", ", ".join(parts))


class ProgressBoard(object):
    """The trees of one job and the JSON file on the target that shows them while it runs.

    The file is replaced whole (written beside it, then renamed), every ``period`` seconds by a
    thread and once more at the end; one that cannot be written is reported once in
    ``write_error`` and never fails the job.
    """

    def __init__(self, job, trees, path=None, period=5.0, clock=time.time):
        self.job, self.trees, self.path, self.period, self.clock = job, trees, path, period, clock
        self.started = clock()
        self.write_error = None
        self._stop = threading.Event()
        self._thread = None

    def snapshot(self, finished=False):
        return dict(job=self.job, pid=os.getpid(), started=self.started, updated=self.clock(), finished=finished,
                    trees=[tree.snapshot() for tree in self.trees])

    def write(self, finished=False):
        snapshot = self.snapshot(finished)
        if not self.path or (self.write_error and not finished):
            return snapshot
        try:
            folder = os.path.dirname(self.path)
            if folder and not os.path.isdir(folder):
                os.makedirs(folder, 0o755)
            fd, temporary = tempfile.mkstemp(prefix=".progress-", dir=folder or ".")
            try:
                with os.fdopen(fd, "w") as out:
                    json.dump(snapshot, out, sort_keys=True)
                os.chmod(temporary, 0o644)
                os.replace(temporary, self.path)
            except BaseException:
                os.unlink(temporary)
                raise
        except (OSError, TypeError, ValueError) as exc:
            self.write_error = self.write_error or "cannot write the progress file %s: %s" % (self.path, exc)
        return snapshot

    def _loop(self):
        while not self._stop.wait(self.period):
            self.write()

    def __enter__(self):
        self.write()
        if self.path:
            self._thread = threading.Thread(target=self._loop)
            self._thread.daemon = True
            self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return False

    def finish(self):
        """Stop the writer and write the last figures (``finished`` true); return them."""
        self.__exit__()
        return self.write(finished=True)
