# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    # One job of a kind at a time on the target (module_utils/lock.py, lock_argument_spec).
    DOCUMENTATION = r"""
options:
  lock_dir:
    description:
      - Folder on the target of the lock each job holds for its whole life
        (C(bluemind-migration-pull.lock) for a pull, C(bluemind-migration-db.lock) for a database
        pass, C(bluemind-migration-config.lock) for a configuration copy). A job left running by a controller that stopped (killed, connection lost) and a
        rerun then never write at the same time; the rerun waits for it. Not taken in check mode.
    type: path
    default: /run/lock
  lock_timeout:
    description:
      - Seconds to wait for such a job to end before failing with its process id.
    type: int
    default: 3600
"""
