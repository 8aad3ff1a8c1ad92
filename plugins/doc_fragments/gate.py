# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    # A job started ahead of the step it must follow (module_utils/gate.py, gate_argument_spec).
    DOCUMENTATION = r"""
options:
  gate_path:
    description:
      - A file on the target that the play writes once the step this job must follow succeeded (the
        origin's stop, for the window's final pull, database pass and configuration copy). With it, the
        job is started before that step (an async task costs Ansible one to several seconds, then out of
        the window); it opens its connections and reads what the origin's service does not change (the
        servers' versions, each database's locale, extensions and settings), then waits until the file
        holds O(gate_token), and only then takes its lock and reads any row or file to copy.
      - Without it, the job begins at once.
    type: path
  gate_token:
    description:
      - What the file must hold, made by the run that starts the job, so that a file an earlier run left
        opens nothing. Required with O(gate_path).
      - When the file comes to hold another token than the one it held when the wait began (a later run
        opened it, the run that started this job having stopped before its step), the job fails at once, having
        read and written nothing.
    type: str
  gate_timeout:
    description:
      - Seconds to wait at the gate; then the job fails, having read and written nothing.
    type: int
    default: 1800
"""
