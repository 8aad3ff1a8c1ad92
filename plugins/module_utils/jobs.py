# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A module run in the background beside the final pull, and the wait for its end.

cold_sync starts the database pass and the configuration copy as Ansible async jobs. Ansible's own
job file says "started" for ever when its async wrapper dies with the job (the target restarted, the
OOM killer, a ``kill -9`` of the process group): ``async_status`` cannot tell such a job from one that
still runs, and a wait on it lasts its whole timeout (hours). So such a module keeps a *job file* of its
own (``job_file``): ``<job_file>.pid`` says which process runs it (pid, start time, boot id), written
when it starts; ``<job_file>`` holds its result, written (atomically) just before it exits, whether it
succeeded or failed. The wait (``bluemind_job_wait``) reads them on the target itself, every few
hundredths of a second: a result ends it; a process gone without a result (or another boot) makes
the job *gone*, and the phase does the work again in the foreground.

A job started ahead of a gate (see gate.py) that works before the gate without reading what it copies
(the database pass's target side, the final pull's walks that warm the origin's caches) creates
``<job_file>.ready`` once that work ended, well or not (:func:`ready_when`); the play waits for it, or
for the job's end, before the origin's stop (``bluemind_job_wait`` with ``until_ready``).
"""

from __future__ import annotations

import json
import os
import threading
import time

from ansible.module_utils.common.parameters import remove_values

PID_SUFFIX = ".pid"
READY_SUFFIX = ".ready"
BOOT_ID = "/proc/sys/kernel/random/boot_id"


def job_argument_spec():
    """The option documented by the ``bluemind.migration.job`` fragment."""
    return dict(job_file=dict(type="path"))


def _write_atomic(path, data):
    partial = "%s.%d.new" % (path, os.getpid())
    with open(partial, "w") as handle:
        json.dump(data, handle, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.rename(partial, path)


def _read(path):
    try:
        with open(path) as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def boot_id():
    return (_read(BOOT_ID) or "").strip()


def process_start(pid):
    """The start time of process ``pid`` (clock ticks since boot, /proc/<pid>/stat), None when no
    such process runs."""
    stat = _read("/proc/%d/stat" % pid)
    if stat is None:
        return None
    # the command's name (field 2) is in parentheses and may hold spaces: count fields after it
    fields = stat.rpartition(")")[2].split()
    return int(fields[19]) if len(fields) > 19 else None


def start_job(module):
    """When the module runs as a job (``job_file``), say so in ``<job_file>.pid``, and write what it
    exits with to ``<job_file>`` before it exits (its exit_json and fail_json write it first). A
    result left there by an earlier job of that file is removed first."""
    path = module.params.get("job_file")
    if not path or module.check_mode:
        return
    folder = os.path.dirname(path)
    if folder and not os.path.isdir(folder):
        os.makedirs(folder, 0o700)
    for stale in (path, path + PID_SUFFIX, path + READY_SUFFIX):
        if os.path.exists(stale):
            os.unlink(stale)
    _write_atomic(path + PID_SUFFIX, dict(pid=os.getpid(), start=process_start(os.getpid()), boot=boot_id(),
                                          started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())))
    exit_json, fail_json = module.exit_json, module.fail_json

    def keep(result):
        try:
            # masked as Ansible masks what the module returns (its no_log values)
            _write_atomic(path, remove_values(result, module.no_log_values))
        except (IOError, OSError, TypeError, ValueError) as exc:
            # the wait then finds the job gone, and the phase does the work again in the foreground
            module.warn("could not write the job's result to %s: %s" % (path, exc))

    def exit_kept(**result):
        keep(dict(result, finished=True))
        exit_json(**result)

    def fail_kept(msg, **result):
        keep(dict(result, msg=msg, failed=True, finished=True))
        fail_json(msg=msg, **result)

    module.exit_json, module.fail_json = exit_kept, fail_kept


def job_status(path):
    """``(status, detail)`` of the job of ``path``: ``("finished", its result)``, ``("running", pid)``,
    ``("gone", why)`` (its process ended without a result) or ``("absent", None)`` (no trace of it yet)."""
    result = _read(path)
    if result is not None:
        try:
            return "finished", json.loads(result)
        except ValueError:
            return "gone", "its result file %s is not JSON" % path
    started = _read(path + PID_SUFFIX)
    if started is None:
        return "absent", None
    try:
        started = json.loads(started)
        pid = int(started["pid"])
    except (ValueError, KeyError, TypeError):
        return "gone", "its process file %s is not readable" % (path + PID_SUFFIX)
    if started.get("boot") and started["boot"] != boot_id():
        return "gone", "the target restarted since it started (%s)" % started.get("started", "at an unknown time")
    now = process_start(pid)
    if now is None or (started.get("start") is not None and now != started["start"]):
        # the result is written before the process ends: read it again, it may have come just now
        if _read(path) is not None:
            return job_status(path)
        return "gone", "its process (pid %d, started %s) ended without a result" % (pid, started.get("started", "?"))
    return "running", pid


def ready_when(module, done):
    """Create ``<job_file>.ready`` (nothing without a job file, or in check mode) once ``done()`` returned
    or raised, in a thread of its own (a daemon: the job's end does not wait for it). An error writing it
    is ignored: the play's wait then ends with its timeout or the job's end. Return the thread."""
    path = module.params.get("job_file")

    def run():
        try:
            done()
        except Exception:  # pylint: disable=broad-except
            pass  # ended all the same: what it could not do runs after the gate
        finally:
            if path and not module.check_mode:
                try:
                    _write_atomic(path + READY_SUFFIX, dict(ready=True))
                except (IOError, OSError):
                    pass

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


class JobTimeout(Exception):
    """The job still runs after the wait's timeout."""


def wait_job(path, timeout, grace, poll=0.05, sleep=time.sleep, clock=time.monotonic, until_ready=False):
    """Wait for the job of ``path`` to end: ``(status, detail, seconds waited)`` with status
    ``finished`` or ``gone``, or ``ready`` (detail None) with ``until_ready`` once ``<path>.ready``
    exists. A job with no trace after ``grace`` seconds is gone (never started); one still running
    after ``timeout`` seconds raises JobTimeout."""
    began = clock()
    if not os.path.isabs(path):  # an async job id that an earlier version of the collection kept
        return "gone", "%s is not a job file (a job started by an earlier version?)" % path, 0.0
    while True:
        if until_ready and os.path.exists(path + READY_SUFFIX):
            return "ready", None, round(clock() - began, 2)
        status, detail = job_status(path)
        waited = clock() - began
        if status in ("finished", "gone"):
            return status, detail, round(waited, 2)
        if status == "absent" and waited >= grace:
            return "gone", "it left no trace on the target (%s) after %s s: it never started" % (path, grace), round(waited, 2)
        if status == "running" and waited >= timeout:
            raise JobTimeout("the job of %s (pid %d) still runs after %g s of waiting" % (path, detail, timeout))
        sleep(poll)
