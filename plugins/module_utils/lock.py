# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One job of a kind at a time on the target.

A controller that dies (killed, its connection lost) leaves the module it started running on the
target: a pull keeps writing into the trees, a database pass into the databases. A rerun must not
write beside it. Each such job holds an exclusive lock for its life; the next one waits for it,
then goes on (what the first one did is compared again), or gives up after a while and says who
holds it. The kernel releases the lock when the holder exits, however it exits.
"""

from __future__ import annotations

import fcntl
import os
import time


def lock_argument_spec():
    """Options documented by the ``bluemind.migration.lock`` fragment."""
    return dict(lock_dir=dict(type="path", default="/run/lock"), lock_timeout=dict(type="int", default=3600))


def lock_path(params, kind):
    """The lock of one kind of job (``pull``, ``db``) in the folder the options name."""
    return os.path.join(params["lock_dir"], "bluemind-migration-%s.lock" % kind)


class LockBusy(Exception):
    """Another job of the kind still holds the lock after the wait; the message says which."""


def _holder(fd):
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return os.read(fd, 200).decode("utf-8", "replace").strip() or "unknown"
    except OSError:
        return "unknown"


# path -> the open file that holds its lock, for release()
_HELD = {}


def acquire(path, timeout, what, sleep=time.sleep, clock=time.monotonic):
    """Takes the lock at ``path`` for this process's life, or until :func:`release`; returns the seconds
    waited for it.

    ``what`` names the job in the message (e.g. "a pull of the trees").
    """
    folder = os.path.dirname(path)
    if folder and not os.path.isdir(folder):
        os.makedirs(folder, 0o755)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    started = clock()
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if clock() - started >= timeout:
                holder = _holder(fd)
                os.close(fd)
                raise LockBusy(
                    "%s is still running on the target after %d s of waiting (%s; lock %s), left by a run "
                    "that stopped before it ended: wait for it to end, or stop that process, then run "
                    "again" % (what, timeout, holder, path))
            sleep(0.5)
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, ("pid %d since %s" % (os.getpid(), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))).encode())
    # Kept open on purpose: the lock lasts as long as this process (or until release).
    _HELD[path] = fd
    return round(clock() - started, 1)


def release(path):
    """Give back the lock at ``path`` that :func:`acquire` took in this process (closing its file drops
    it); nothing when this process does not hold it."""
    fd = _HELD.pop(path, None)
    if fd is not None:
        os.close(fd)
