# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action of bluemind.migration.bluemind_job_wait: the wait for a background job, with the job's
progress in the task's output.

The window's final pull starts before the origin's stop, as a background job waiting at the gate (an
async start costs Ansible one to several seconds; that way they are not the window's). The task that
waits for it afterwards should still show its progress, as the pull's own task does. With
``progress_path`` and one ``job_file``, this action runs the module (pipelined: no temporary folder,
no async start) for at most ``progress_interval`` seconds at a time (the first time 10 s at most),
reads the progress file between two runs and prints one line per running tree on the standard error.
The module sees the job's end on the target within a twentieth of a second, so the task ends as soon as
the job does. Without ``progress_path``, with ``progress_interval: 0`` or in check mode, the module runs
once, as any action.
"""

from __future__ import annotations

import shlex
import time

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible_collections.bluemind.migration.plugins.action.bluemind_sync import (
    DEFAULT_INTERVAL, interval_of, parse_peek, progress_lines, SEPARATOR)
from ansible_collections.bluemind.migration.plugins.module_utils.progress import FIRST_REPORT_SECONDS

display = Display()

DEFAULT_TIMEOUT = 7200.0


def wait_lengths(timeout, interval, first=FIRST_REPORT_SECONDS):
    """The seconds of each successive wait: the first report after ``first`` seconds at most, the next
    ones every ``interval``, all within ``timeout``."""
    lengths, total, step = [], 0.0, min(first, interval)
    while total < timeout:
        length = min(step, timeout - total)
        lengths.append(length)
        total += length
        step = interval
    return lengths


def single_outcome(job_file, answer, waited):
    """The module's result for one ``job_file`` from its answer for ``job_files: [job_file]``."""
    outcome = dict(answer.get("jobs", {}).get(job_file) or {})
    if not outcome:  # the module failed before it waited (a bad option): its own answer
        return dict(answer)
    outcome.pop("running", None)
    outcome["waited_seconds"] = round(waited, 2)
    return outcome


class ActionModule(ActionBase):

    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        try:
            return self._wait(result, task_vars or {})
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)

    def _wait(self, result, task_vars):
        args = self._task.args
        interval = interval_of(dict(progress_interval=args.get("progress_interval", DEFAULT_INTERVAL)))
        try:
            timeout = max(0.0, float(args.get("timeout", DEFAULT_TIMEOUT)))
        except (TypeError, ValueError):
            timeout = None  # the module says what is wrong
        if (not args.get("progress_path") or not args.get("job_file") or not interval or interval < 0
                or timeout is None or self._task.check_mode):
            result.update(self._execute_module(task_vars=task_vars))
            return result
        host = task_vars.get("inventory_hostname", "target")
        job_file, progress_path = args["job_file"], args["progress_path"]
        began, ended = time.monotonic(), set()
        for length in wait_lengths(timeout, interval):
            module_args = dict((k, v) for k, v in args.items() if k not in ("job_file", "timeout"))
            module_args.update(job_files=[job_file], timeout=length)
            answer = self._execute_module(task_vars=task_vars, module_args=module_args)
            outcome = (answer.get("jobs") or {}).get(job_file)
            if answer.get("failed") or not outcome or not outcome.get("running"):
                result.update(single_outcome(job_file, answer, time.monotonic() - began))
                return result
            if not self._task.no_log:
                for line in progress_lines(host, self._progress(progress_path), ended):
                    # on stderr: a machine-readable stdout callback keeps its whole JSON
                    display.display(line, stderr=True)
        result.update(failed=True, finished=False, gone=False, waited_seconds=round(time.monotonic() - began, 2),
                      msg="the job of %s still runs after %g s of waiting: wait longer (timeout), or stop that job "
                          "and run again" % (job_file, timeout))
        return result

    def _progress(self, path):
        """The progress file's content, or None (absent, being replaced)."""
        answer = self._low_level_execute_command("printf '\\n%s\\n'; cat %s 2>/dev/null; true" % (
            SEPARATOR, shlex.quote(path)), sudoable=True)
        return parse_peek(answer.get("stdout", ""))[1]
