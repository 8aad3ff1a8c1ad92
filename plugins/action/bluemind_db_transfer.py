# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action of bluemind.migration.bluemind_db_transfer: the database pass, with its progress in the
task's output.

The same as bluemind_sync's action (the module started asynchronously on the target, its progress
file read while it runs, its own result returned), for the pass's progress file: one line per database
being copied whole, every ``progress_interval`` seconds. A task with ``async`` (cold_sync's pass
beside the final pull), check mode and ``progress_interval: 0`` run the module as any action does.
"""

from __future__ import annotations

from ansible_collections.bluemind.migration.plugins.action.bluemind_sync import ActionModule as PullAction


class ActionModule(PullAction):

    WORK = "database pass"
    DEFAULT_PROGRESS_PATH = "/run/bluemind-migration/db-progress.json"
