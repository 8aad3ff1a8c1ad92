# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action of bluemind.migration.bluemind_sync: the pull, with its progress in the task's output.

A module cannot print while it runs. This action starts the module asynchronously on the target
(as ``async:`` would), then reads the async job's status and the progress file the module writes
with one command (no module) that waits on the target up to two seconds for the job to end, so the
result comes back as soon as the pull ends (a window's final pull with little to do costs no more
than a synchronous run plus a few round trips), and prints one line per running tree every
``progress_interval`` seconds on the standard error (the first report after 10 s at most; a tree that
ended since the previous report gets one last line; stdout stays the callback's, whole JSON for a
machine-readable one), and at the end returns the module's own result, as a
synchronous run would have. The module's documentation describes the options and the figures.

It runs the module as any action does (no progress lines) with ``progress_interval: 0``, in check
mode, and for a task that sets ``async`` itself (then ``async_status`` follows it, as usual).

When the controller stops while the pull runs, the pull goes on to its end on the target (the async
job is a daemon there); a rerun waits for it through the module's lock.
"""

from __future__ import annotations

import json
import os
import shlex
import time

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible_collections.bluemind.migration.plugins.module_utils.progress import FIRST_REPORT_SECONDS, format_line

display = Display()

DEFAULT_INTERVAL = 30
DEFAULT_PATH = "/run/bluemind-migration/pull-progress.json"
# The async job's limit: a pull that long is stopped by async_wrapper. Far above any pull.
ASYNC_LIMIT = 30 * 24 * 3600
# The first report comes after FIRST_REPORT_SECONDS (or progress_interval when shorter), the next ones
# every progress_interval: a pull of half a minute shows one, a pull of hours one every interval.
# A status read waits on the target up to this long for the job to end (it returns as soon as it
# does), checking every tenth of a second; after a failed read the controller waits as long.
POLL_SECONDS = 2.0
POLL_STEP_SECONDS = 0.1
# Status reads that may fail in a row (a network bounce) before the task fails.
MAX_READ_FAILURES = 30
SEPARATOR = "--bluemind-migration-progress--"
# async_wrapper's status line while the module runs; the module's result replaces it when it ends.
RUNNING_MARK = '"started": true'
# Keys of async_status's answer that a synchronous run does not have.
ASYNC_KEYS = ("ansible_job_id", "started", "finished", "results_file")


def interval_of(args):
    """The task's progress_interval as an int, or None when it is not one (the module says so)."""
    try:
        return int(args.get("progress_interval", DEFAULT_INTERVAL))
    except (TypeError, ValueError):
        return None


def parse_peek(stdout):
    """``(job, progress)`` from what :meth:`ActionModule._peek` printed: the async job's status file
    and the progress file as dicts, each None when missing or not (yet) whole JSON. Lines may end
    with CR LF (ssh with a terminal)."""
    job_text, _sep, progress_text = stdout.replace("\r\n", "\n").partition("\n%s\n" % SEPARATOR)
    return _json_or_none(job_text), _json_or_none(progress_text)


def _json_or_none(text):
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def peek_command(results_file, progress_path, wait):
    """The shell command of a status read: wait until the job's file exists without the running mark
    (at most ``wait`` seconds), then print it, the separator and the progress file."""
    steps = max(0, int(round(wait / POLL_STEP_SECONDS)))
    job = shlex.quote(results_file)
    return ("i=0; while [ $i -lt %d ] && { [ ! -s %s ] || grep -qF %s %s; }; do sleep %s; i=$((i+1)); done; "
            "cat %s 2>/dev/null; printf '\\n%s\\n'; cat %s 2>/dev/null; true" % (
                steps, job, shlex.quote(RUNNING_MARK), job, POLL_STEP_SECONDS, job, SEPARATOR,
                shlex.quote(progress_path)))


def job_finished(job):
    """Whether the async job's status file holds the module's result (async_wrapper writes
    ``started`` until then). An unreadable file (being written) is a running job."""
    return job is not None and "started" not in job


def progress_lines(host, progress, ended):
    """The lines to print for a progress file's content: the trees running, and those that ended
    since the previous report (``ended``, the paths already reported ended, is updated); none once
    the file says the job finished. Trees not started yet are left out."""
    if not progress or progress.get("finished") or not isinstance(progress.get("trees"), list):
        return []
    prefix = "[%s] %s " % (host, progress.get("job", "pull"))
    lines = []
    for tree in progress["trees"]:
        if tree.get("state") in ("done", "failed") and tree.get("path") not in ended:
            ended.add(tree.get("path"))
        elif tree.get("state") != "running":
            continue
        lines.append(prefix + format_line(tree))
    return lines


class ActionModule(ActionBase):

    _supports_check_mode = True
    _supports_async = True
    # What the task's messages call the work, and where its module writes the progress by default
    # (bluemind_db_transfer's action is this one with its own).
    WORK = "pull"
    DEFAULT_PROGRESS_PATH = DEFAULT_PATH

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        interval = interval_of(self._task.args)
        if (not interval or interval < 0 or self._task.async_val or self._task.check_mode
                or self._connection.has_native_async or self._connection.always_pipeline_modules):
            return self._plain(result, task_vars)

        self._task.async_val = ASYNC_LIMIT
        try:
            started = self._execute_module(task_vars=task_vars, wrap_async=True)
        finally:
            self._task.async_val = 0
        if started.get("failed") or "ansible_job_id" not in started or "results_file" not in started:
            result.update(started)
            return result
        final = self._follow(started, interval, task_vars)
        for key in ASYNC_KEYS:
            final.pop(key, None)
        for key in ("stdout", "stderr", "stdout_lines", "stderr_lines"):
            if not final.get(key):
                final.pop(key, None)
        result.update(final)
        return result

    def _plain(self, result, task_vars):
        """The module as the ``normal`` action runs it."""
        wrap_async = bool(self._task.async_val) and not self._connection.has_native_async
        result.update(self._execute_module(task_vars=task_vars, wrap_async=wrap_async))
        if not wrap_async:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    def _peek(self, results_file, progress_path, wait):
        """The async job's status and the progress file, read with one command that first waits up
        to ``wait`` seconds for the job to end (a status file without async_wrapper's running mark)."""
        command = peek_command(results_file, progress_path, wait)
        answer = self._low_level_execute_command(command, sudoable=True)
        return parse_peek(answer.get("stdout", ""))

    def _follow(self, started, interval, task_vars):
        """Wait for the async job, printing its progress every ``interval`` seconds; return its result."""
        host = task_vars.get("inventory_hostname", "target")
        progress_path = self._task.args.get("progress_path") or self.DEFAULT_PROGRESS_PATH
        ended, failures = set(), 0
        next_report = time.monotonic() + min(FIRST_REPORT_SECONDS, interval)
        while True:
            try:
                job, progress = self._peek(started["results_file"], progress_path, min(POLL_SECONDS, interval))
                problem = None if job is not None else "its status file %s is missing or not JSON" % (
                    started["results_file"])
            except AnsibleError as exc:
                problem = str(exc)
            if problem:
                failures += 1
                if failures >= MAX_READ_FAILURES:
                    raise AnsibleError("cannot read the status of the %s on %s (async job %s) %d times in a row: "
                                       "%s; the %s may still run there: rerun the task, it waits for that %s"
                                       % (self.WORK, host, started["ansible_job_id"], failures, problem, self.WORK,
                                          self.WORK))
                display.vvvv("reading the %s's status on %s failed, trying again: %s" % (self.WORK, host, problem))
                time.sleep(POLL_SECONDS)
                continue
            failures = 0
            if job_finished(job):
                break
            if time.monotonic() >= next_report:
                next_report = time.monotonic() + interval
                if not self._task.no_log:
                    for line in progress_lines(host, progress, ended):
                        # on stderr: a machine-readable stdout callback (json) stays whole, a terminal shows both
                        display.display(line, stderr=True)
        # async_status reads the result as Ansible reads a module's (warnings and the like decoded)
        final = self._execute_module(module_name="ansible.legacy.async_status", task_vars=task_vars, module_args=dict(
            jid=started["ansible_job_id"], mode="status", _async_dir=os.path.dirname(started["results_file"])))
        # The job's file and the task's folder (async_wrapper removed its own copy) in one command.
        cleanup = "rm -f %s" % shlex.quote(started["results_file"])
        tmpdir = self._connection._shell.tmpdir
        if tmpdir and self._should_remove_tmp_path(tmpdir):
            cleanup += "; " + self._connection._shell.remove(tmpdir, recurse=True)
            self._connection._shell.tmpdir = None
        self._low_level_execute_command(cleanup, sudoable=True)
        return final
