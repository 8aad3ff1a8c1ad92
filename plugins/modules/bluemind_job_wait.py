#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: bluemind_job_wait
short_description: Wait on the target for a job of this collection started in the background
version_added: 1.0.0
description:
  - Waits for a module of this collection started as a background job with its O(job_file) (the
    database pass and the configuration copy that cold_sync starts beside the final pull) and
    returns what the job returned.
  - Reads the job's files on the target itself, every O(poll) seconds, in one module run (no round
    trip of the controller per poll, so the job's end is seen within a few hundredths of a second).
  - Tells a job that still runs from one that is gone (its process ended without a result, or the
    target restarted since it started), which Ansible's C(async_status) cannot (its job file says
    "started" for ever then). A gone job is not a failure here (RV(gone)); the phase does the work again.
  - A job that failed makes this task fail with the job's message and result.
  - With O(job_files), waits for every job in one run and returns each one's outcome in RV(jobs);
    a job that failed, is gone or still runs after O(timeout) does not fail the task then (the caller
    decides what each means).
options:
  job_file:
    description:
      - The job's file, as given to the job's module (its O(bluemind.migration.bluemind_db_transfer#module:job_file)).
      - One of O(job_file) and O(job_files) is needed.
    type: path
  job_files:
    description:
      - Several jobs' files, waited for in turn, within one O(timeout) for all.
    type: list
    elements: path
  timeout:
    description:
      - Seconds to wait for a job that still runs; then the task fails, the job left running.
    type: float
    default: 7200
  grace:
    description:
      - Seconds a job may show no trace (no process file, no result) before it is taken as never
        started, and so gone.
    type: float
    default: 10
  poll:
    description:
      - Seconds between two readings of the job's files.
    type: float
    default: 0.05
  until_ready:
    description:
      - With O(job_files), wait for each job only until it is ready (C(<job_file>.ready), which a job started
        ahead of its gate creates once what it does before the gate ended), or until it ended or is gone;
        such a job's outcome in RV(jobs) is C(ready=true). A job neither ready nor ended after O(timeout) is
        C(running), as always with O(job_files); the task does not fail.
      - What the play waits for before the origin's stop, so that the jobs' work before their gate stays out
        of the window.
    type: bool
    default: false
  progress_path:
    description:
      - The progress file that the job writes while it runs (the pull's O(bluemind.migration.bluemind_sync#module:progress_path)).
        With it and O(job_file), the task prints the job's progress as the pull's own task does. The action waits with
        this module for at most O(progress_interval) seconds at a time (the first time 10 s at most) and
        prints one line per running tree between two waits. The module itself only waits.
    type: path
  progress_interval:
    description:
      - Seconds between two progress reports with O(progress_path); V(0) prints none (one wait).
    type: int
    default: 30
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Waits and reads in check mode too (it changes nothing).
  diff_mode:
    support: none
  platform:
    platforms: posix
author:
  - bluemind.migration contributors (@bluemind-migration)
"""

EXAMPLES = r"""
- name: Wait for the database pass started beside the final pull
  bluemind.migration.bluemind_job_wait:
    job_file: /var/lib/bluemind-migration/jobs/db-pass-5c1b2e.json
  register: db_pass
  failed_when: db_pass.failed | default(false)
"""

RETURN = r"""
finished:
  description: The job ended and left its result (returned with it, its keys at the top level).
  type: bool
  returned: always
gone:
  description: The job's process ended without a result, the target restarted since it started, or it never started.
  type: bool
  returned: always
gone_reason:
  description: Why the job is taken as gone.
  type: str
  returned: when RV(gone)
waited_seconds:
  description: Seconds this task waited.
  type: float
  returned: always
jobs:
  description:
    - With O(job_files), each job's outcome by its file, shaped as this module's result for one
      O(job_file) (the job's result at the top level, RV(finished), RV(gone), RV(gone_reason)), with
      C(failed) and C(msg) when the job failed, C(running) when it still ran after O(timeout), and
      C(ready) with O(until_ready) when it was ready.
  type: dict
  returned: when O(job_files) is given
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.bluemind.migration.plugins.module_utils.jobs import JobTimeout, wait_job

# What the job's result says about the job that this task must not take for its own.
JOB_KEYS_DROPPED = ("invocation", "finished", "failed", "msg", "gone", "gone_reason", "waited_seconds")


def main():
    module = AnsibleModule(
        argument_spec=dict(
            job_file=dict(type="path"),
            job_files=dict(type="list", elements="path"),
            timeout=dict(type="float", default=7200),
            grace=dict(type="float", default=10.0),
            poll=dict(type="float", default=0.05),
            progress_path=dict(type="path"),
            progress_interval=dict(type="int", default=30),
            until_ready=dict(type="bool", default=False),
        ),
        required_one_of=[("job_file", "job_files")],
        mutually_exclusive=[("job_file", "job_files")],
        supports_check_mode=True,
    )
    params = module.params
    timeout, grace, poll = max(0, params["timeout"]), max(0.0, params["grace"]), max(0.01, params["poll"])
    try:
        if params["job_files"] is not None:
            jobs, began = {}, time.monotonic()
            for path in params["job_files"]:
                try:
                    jobs[path] = outcome(path, *wait_job(path, max(0.0, timeout - (time.monotonic() - began)), grace, poll,
                                                         until_ready=params["until_ready"]))
                except JobTimeout as exc:
                    jobs[path] = dict(finished=False, gone=False, running=True, msg=str(exc))
            module.exit_json(changed=False, jobs=jobs, waited_seconds=round(time.monotonic() - began, 2))
        result = outcome(params["job_file"], *wait_job(params["job_file"], timeout, grace, poll))
    except JobTimeout as exc:
        module.fail_json(msg="%s: wait longer (timeout), or stop that job and run again" % exc,
                         finished=False, gone=False, waited_seconds=float(params["timeout"]))
    if result.get("failed"):
        module.fail_json(**result)
    module.exit_json(**result)


def outcome(path, status, detail, waited):
    """What the wait for the job of ``path`` found, as this module returns it."""
    if status == "ready":
        return dict(changed=False, finished=False, gone=False, ready=True, waited_seconds=waited)
    if status == "gone":
        return dict(changed=False, finished=False, gone=True, gone_reason=detail, waited_seconds=waited,
                    msg="the job of %s is gone: %s" % (path, detail))
    result = dict((key, value) for key, value in detail.items() if key not in JOB_KEYS_DROPPED)
    result.update(finished=True, gone=False, waited_seconds=waited)
    if detail.get("failed"):
        result.update(failed=True, msg="the job of %s failed: %s" % (path, detail.get("msg", "no message")))
    return result


if __name__ == "__main__":
    main()
