# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    # A module run as a background job that bluemind_job_wait waits for (module_utils/jobs.py).
    DOCUMENTATION = r"""
options:
  job_file:
    description:
      - A file on the target for this run as a background job (Ansible C(async), C(poll=0)). When the
        module starts, it writes C(<job_file>.pid) (its process id, start time and the target's boot id)
        and removes any result an earlier job left in O(job_file); just before it exits, whether it
        succeeded or failed, it writes its result there as JSON. A job started ahead of its gate (see
        O(gate_path)) creates C(<job_file>.ready) once what it does before the gate ended.
      - M(bluemind.migration.bluemind_job_wait) reads both on the target and tells a job that still runs
        from one whose process is gone (the target restarted, the job killed), which Ansible's own
        C(async_status) cannot.
      - Not used in check mode.
    type: path
"""
