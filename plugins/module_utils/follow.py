# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What changed in the origin's trees, known before its stop, so that the window's final pull does not
walk them (a walk of a mail spool reads every inode: seconds at a million files).

Ahead of the stop, while the origin still serves:

1. a **follower** starts on the origin over the pull's SSH connection (Python's standard library and the
   kernel's inotify: nothing installed there) and watches every directory of the trees;
2. then what changed since the last pull is pulled (the module's), or only listed (:func:`walk_into`:
   the walk the window would have made, ``find -newerct``), before the stop.

Every change is then either in that pull or listing (made before its walk) or seen by the follower (made
after its watches were set, which was before the walk began). After the stop, the follower is asked for
what it saw; the window's pull takes its changed directories and files from it (and that listing) without
a walk.

The follower gives up (the window then walks as before, nothing lost) on anything it cannot follow
exactly: a full inotify queue, the watch limit, a directory renamed (the paths below it change), a file
linked to a name it did not see, no ``python3`` on the origin, an error or a lost connection."""

from __future__ import annotations

import os
import shlex
import subprocess
import threading

from ansible_collections.bluemind.migration.plugins.module_utils.background import Background
from ansible_collections.bluemind.migration.plugins.module_utils.rsync import excluded_entry, list_changed

# The follower, run on the origin as ``python3 -c FOLLOWER_SOURCE <since_ns> <tree>...`` (Python 3.5 or
# later). It prints NUL-terminated records on its stdout:
#   ``R <watches>``      its watches are set (or ``X`` came first)
# then nothing until it reads ``flush`` on its stdin (the origin is stopped by then), and:
#   ``D<tree> <dir>``     a directory whose entries changed (added, removed, renamed) or whose status did
#   ``F<tree> <file>``    a file (not a directory) changed in content or status at or after ``since_ns``
#   ``G<tree> <name>``    a name added, removed or renamed, gone now
#   ``L<tree> <inode> <links> <name>``   a name (not a directory) added or renamed (or found in a directory
#                         made since the watches were set), there now
#   ``X <reason>``        it gave up
#   ``E``                 the end
# ``<tree>`` is the index of the tree in its arguments, names are relative to the tree ("" for itself).
FOLLOWER_SOURCE = r'''
import ctypes, errno, os, select, stat, struct, sys

IN_MODIFY, IN_ATTRIB, IN_CLOSE_WRITE = 0x2, 0x4, 0x8
IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x40, 0x80, 0x100, 0x200
IN_MOVE_SELF, IN_Q_OVERFLOW, IN_IGNORED = 0x800, 0x4000, 0x8000
IN_ONLYDIR, IN_DONT_FOLLOW, IN_ISDIR = 0x1000000, 0x2000000, 0x40000000
MASK = (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
        | IN_MOVE_SELF | IN_ONLYDIR | IN_DONT_FOLLOW)
NAMES = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO
HEADER = struct.Struct("iIII")


class GiveUp(Exception):
    pass


class Changes(object):
    def __init__(self, trees, since_ns):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise GiveUp("inotify_init1: " + os.strerror(ctypes.get_errno()))
        self.trees, self.since_ns = trees, since_ns
        self.where = {}
        self.dirs, self.files, self.names = set(), set(), set()
        self.busy = False

    def path(self, index, name):
        return os.path.join(self.trees[index], name) if name else self.trees[index]

    def watch(self, index, name):
        wd = self.libc.inotify_add_watch(self.fd, self.path(index, name), MASK)
        if wd >= 0:
            self.where[wd] = (index, name)
            return True
        err = ctypes.get_errno()
        if err == errno.ENOSPC:
            raise GiveUp("the inotify watch limit (fs.inotify.max_user_watches) is reached")
        if err in (errno.ENOENT, errno.ENOTDIR) and name:
            return False
        raise GiveUp("inotify_add_watch %s: %s" % (os.fsdecode(self.path(index, name)), os.strerror(err)))

    def watch_tree(self, index, top, new=False):
        # new: a directory made since the watches were set, whose entries made before its own watch
        # are names added too (a file linked from elsewhere then has every name known)
        pending, done = [top], 0
        while pending:
            name = pending.pop()
            if not self.watch(index, name):
                continue
            try:
                entries = list(os.scandir(self.path(index, name)))
            except OSError:
                continue
            for entry in entries:
                child = os.path.join(name, entry.name) if name else entry.name
                try:
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(child)
                    elif new:
                        self.names.add((index, child))
                except OSError:
                    pass
            done += 1
            if done % 256 == 0:
                self.read()

    def read(self):
        if self.busy:
            return
        self.busy = True
        try:
            while True:
                try:
                    data = os.read(self.fd, 1 << 16)
                except (BlockingIOError, InterruptedError):
                    return
                offset = 0
                while offset < len(data):
                    wd, mask, _cookie, length = HEADER.unpack_from(data, offset)
                    name = data[offset + HEADER.size:offset + HEADER.size + length].rstrip(b"\0")
                    offset += HEADER.size + length
                    self.event(wd, mask, name)
        finally:
            self.busy = False

    def event(self, wd, mask, name):
        if mask & IN_Q_OVERFLOW:
            raise GiveUp("the inotify queue overflowed (fs.inotify.max_queued_events)")
        if mask & IN_IGNORED:
            self.where.pop(wd, None)
            return
        if wd not in self.where:
            return
        index, parent = self.where[wd]
        if not name:
            if mask & IN_MOVE_SELF:
                raise GiveUp("%s was renamed" % os.fsdecode(self.path(index, parent)))
            self.dirs.add((index, parent))
            return
        entry = os.path.join(parent, name) if parent else name
        if mask & IN_ISDIR and mask & (IN_MOVED_FROM | IN_MOVED_TO):
            raise GiveUp("the directory %s was renamed" % os.fsdecode(self.path(index, entry)))
        if mask & NAMES:
            self.dirs.add((index, parent))
            self.names.add((index, entry))
            if mask & IN_ISDIR and mask & IN_CREATE:
                self.watch_tree(index, entry, True)
        elif mask & IN_ISDIR:
            self.dirs.add((index, entry))
        else:
            self.files.add((index, entry))

    def report(self, out):
        self.read()
        for index, name in sorted(self.dirs):
            try:
                if name and not stat.S_ISDIR(os.lstat(self.path(index, name)).st_mode):
                    continue
            except OSError:
                continue
            out.write(b"D%d %s\0" % (index, name))
        for index, name in sorted(self.files):
            try:
                st = os.lstat(self.path(index, name))
            except OSError:
                continue
            if not stat.S_ISDIR(st.st_mode) and st.st_ctime_ns >= self.since_ns:
                out.write(b"F%d %s\0" % (index, name))
        for index, name in sorted(self.names):
            try:
                st = os.lstat(self.path(index, name))
            except OSError:
                out.write(b"G%d %s\0" % (index, name))
                continue
            if not stat.S_ISDIR(st.st_mode):
                out.write(b"L%d %d %d %s\0" % (index, st.st_ino, st.st_nlink, name))


def main():
    out = sys.stdout.buffer
    since_ns, trees = int(sys.argv[1]), [os.fsencode(tree) for tree in sys.argv[2:]]
    changes, reason = None, None
    try:
        changes = Changes(trees, since_ns)
        for index in range(len(trees)):
            changes.watch_tree(index, b"")
        out.write(b"R %d\0" % len(changes.where))
    except (GiveUp, OSError) as exc:
        reason = str(exc)
        out.write(b"X %s\0" % reason.encode("utf-8", "replace"))
    out.flush()
    stdin = sys.stdin.buffer
    while True:
        watched = [stdin] + ([changes.fd] if changes is not None and reason is None else [])
        readable = select.select(watched, [], [])[0]
        if changes is not None and reason is None and changes.fd in readable:
            try:
                changes.read()
            except (GiveUp, OSError) as exc:
                reason = str(exc)
        if stdin in readable:
            line = stdin.readline()
            if not line:
                return
            if line.strip() == b"flush":
                break
    if reason is None:
        try:
            changes.report(out)
        except (GiveUp, OSError) as exc:
            reason = str(exc)
    if reason is not None:
        out.write(b"X %s\0" % reason.encode("utf-8", "replace"))
    out.write(b"E\0")
    out.flush()


main()
'''


def follower_command(trees, since_ns):
    """Shell command, run on the origin, starting the follower of ``trees`` (paths) for the changes at or
    after ``since_ns`` (nanoseconds since the epoch, on the origin's clock)."""
    return "exec python3 -c %s %d %s" % (shlex.quote(FOLLOWER_SOURCE), since_ns,
                                         " ".join(shlex.quote(tree) for tree in trees))


class TreeChanges(object):
    """What changed in one tree since the last pull: the walk made before the stop (:meth:`directory`,
    :meth:`write`, ``links``) together with what the follower saw after it set its watches (:meth:`saw`)."""

    def __init__(self):
        self.dirs, self.others, self.links = set(), set(), {}
        self.root = False
        self.pulled = None  # the pull before the stop's summary, when one moved what changed
        self.seen_dirs, self.seen_files, self.gone, self.touched = set(), set(), set(), {}

    # -- the walk before the stop, filled as rsync.list_changed fills its outputs
    def directory(self, name):
        self.dirs.add(bytes(name))

    def write(self, record):
        self.others.add(bytes(record).rstrip(b"\0"))

    # -- the follower's records
    def saw(self, kind, rest):
        if kind == b"D":
            if rest:
                self.seen_dirs.add(rest)
            else:
                self.root = True
        elif kind == b"F":
            self.seen_files.add(rest)
        elif kind == b"G":
            self.gone.add(rest)
        elif kind == b"L":
            inode, count, name = rest.split(b" ", 2)
            self.touched[name] = (inode, int(count))

    def merged(self):
        """``(dirs, others, links, unseen)``: the changed directories and other entries of both, the
        names of each file of several links by inode (as :func:`rsync.list_changed` gives them), and the
        inodes of which some name was seen by neither (the follower then cannot say what to link)."""
        touched = self.gone | set(self.touched)
        dirs = (self.dirs - self.gone) | self.seen_dirs
        others = (self.others - self.gone) | self.seen_files
        links = {}
        for inode, names in self.links.items():
            kept = [name for name in names if name not in touched]
            if kept:
                links[inode] = kept
        counts = {}
        for name, (inode, count) in sorted(self.touched.items()):
            if count < 2:
                continue
            links.setdefault(inode, [])
            if name not in links[inode]:
                links[inode].append(name)
            counts[inode] = count
        unseen = sorted(inode for inode, count in counts.items() if count > len(links[inode]))
        return dirs, others, links, unseen


class Follower(object):
    """The follower of the origin's ``trees`` (its process: ``args``, ssh running :func:`follower_command`),
    read in a thread of its own; its records kept by tree until :meth:`changes`."""

    def __init__(self, args, trees, popen=subprocess.Popen):
        self.trees = list(trees)
        self.changes = [TreeChanges() for _tree in self.trees]
        self.reason = None
        self.watches = None
        self.ready, self.ended = threading.Event(), threading.Event()
        try:
            self.proc = popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as exc:
            self.proc, self.reason = None, "cannot start the follower: %s" % exc
            self.ready.set()
            self.ended.set()
            return
        self.tail = []
        for target, stream in ((self._read, self.proc.stdout), (self._drain, self.proc.stderr)):
            threading.Thread(target=target, args=(stream,), daemon=True).start()

    def _drain(self, stream):
        for line in iter(stream.readline, b""):
            self.tail = (self.tail + [line.decode("utf-8", "replace").rstrip()])[-5:]

    def _read(self, stream):
        rest = b""
        try:
            for chunk in iter(lambda: stream.read1(1 << 16), b""):
                records = (rest + chunk).split(b"\0")
                rest = records.pop()
                for record in records:
                    self._record(record)
        finally:
            if not self.ended.is_set():
                rc = self.proc.wait()
                if self.reason is None:
                    self.reason = "the follower ended without its report (rc %s%s)" % (
                        rc, ": " + " / ".join(self.tail) if self.tail else "")
            self.ready.set()
            self.ended.set()

    def _record(self, record):
        kind, rest = record[:1], record[1:]
        if kind == b"R":
            self.watches = int(rest.strip() or 0)
            self.ready.set()
        elif kind == b"X":
            self.reason = self.reason or rest.strip().decode("utf-8", "replace")
            self.ready.set()
        elif kind == b"E":
            self.ended.set()
        elif kind in (b"D", b"F", b"G", b"L"):
            index, name = rest.split(b" ", 1)
            self.changes[int(index)].saw(kind, name)

    def wait_ready(self, timeout=None):
        """True once the watches are set (False when it gave up, or not within ``timeout`` seconds)."""
        return self.ready.wait(timeout) and self.reason is None and self.watches is not None

    def report(self, timeout):
        """Ask for what it saw (the origin stopped by now) and wait for it: ``{tree: TreeChanges}``, or the
        reason it gave up (a string)."""
        if self.proc is not None and self.reason is None:
            try:
                self.proc.stdin.write(b"flush\n")
                self.proc.stdin.flush()
            except OSError as exc:
                self.reason = "the follower cannot be asked for its report: %s" % exc
        if self.reason is None and not self.ended.wait(timeout):
            self.reason = "the follower did not report within %d s" % timeout
        self.close()
        if self.reason is not None:
            return self.reason
        return dict(zip(self.trees, self.changes))

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(2)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class ChangesBeforeStop(Background):
    """The follower (a :class:`Follower`), then, once its watches are set, the work of each tree (``work``:
    ``{tree: work(changes, popen)}``, returning None or the reason the window must walk the tree):
    :func:`walk_into` lists what changed since the last pull into the tree's :class:`TreeChanges`, a pull
    moves it (the module's); ``workers`` trees at a time, in the background, ahead of the origin's stop.
    :meth:`stop` ends the processes started through ``popen`` (the walks) and waits for the rest; the
    follower goes on until :meth:`changes`."""

    def __init__(self, follower, work, workers, popen=subprocess.Popen):
        super(ChangesBeforeStop, self).__init__()
        self.follower, self.popen = follower, popen
        self.pending = list(work.items())
        self.done = {}
        self.start(self._work, [()] * max(1, min(workers, len(self.pending))))

    def _popen(self, *args, **kwargs):
        proc = self.popen(*args, **kwargs)
        self.started(proc)
        return proc

    def _work(self):
        while not self.follower.wait_ready(0.2):
            if self.stopped or self.follower.ready.is_set():
                return
        while True:
            with self.lock:
                if self.stopped or not self.pending:
                    return
                tree, work = self.pending.pop(0)
            changes = self.follower.changes[self.follower.trees.index(tree)]
            try:
                reason = work(changes, self._popen)
            except (OSError, ValueError) as exc:
                reason = "the work before the stop failed: %s" % exc
            with self.lock:
                self.done[tree] = reason

    def changes(self, timeout):
        """After the stop: ``{tree: (dirs, others, links, root) or the reason the window walks it}``."""
        self.stop()
        report = self.follower.report(timeout)
        found = {}
        for tree in self.follower.trees:
            reason = report if isinstance(report, str) else self.done.get(
                tree, "the work before the stop did not begin before it")
            if reason is None:
                dirs, others, links, unseen = report[tree].merged()
                if unseen:
                    reason = "%d file(s) linked to a name the follower did not see" % len(unseen)
                else:
                    reason = (dirs, others, links, report[tree].root)
            found[tree] = reason
        return found


def walk_into(args):
    """The work of a tree for :class:`ChangesBeforeStop` that lists what changed since the last pull
    (``args``: ssh running :func:`rsync.changed_entries_command`) into its :class:`TreeChanges`, every file's
    names by inode among them (a name linked later to one of them is not linked to a name unseen)."""
    def work(changes, popen):
        _dirs, _others, root, rc, tail = list_changed(args, None, changes, links=changes.links,
                                                      on_directory=changes.directory, popen=popen, every_file=True)
        changes.root = changes.root or root
        if rc == 0:
            return None
        if rc == -9:
            return "the walk before the stop did not end before it"
        return "the walk before the stop failed (rc %s): %s" % (rc, " / ".join(tail))
    return work


def replay(found, others, excluded, links, on_directory):
    """What :func:`rsync.list_changed` gives from a walk, from ``found`` (a tuple of
    :meth:`ChangesBeforeStop.changes`): ``on_directory(name)`` for each changed directory, the other names
    written to ``others`` (NUL-terminated), ``links`` updated; leaving out what ``excluded`` does. Return
    ``(directories, others, root_changed)``."""
    dirs, names, found_links, root = found
    counts = [0, 0]
    for name in sorted(dirs):
        if not excluded_entry(excluded, os.fsdecode(name), True):
            counts[0] += 1
            on_directory(name)
    for name in sorted(names):
        if not excluded_entry(excluded, os.fsdecode(name), False):
            counts[1] += 1
            others.write(name + b"\0")
    links.update(found_links)
    return counts[0], counts[1], root
