# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cold window's downtime predicted from the hot phase's history and a last look at the origin (the state's rules)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: window_prediction
short_description: The cold window's downtime predicted from the hot phase's history
version_added: 1.2.0
description:
  - Predicts the cold window (the origin stopped until the target serves) from what the state
    recorded of the hot phase, as M(bluemind.migration.bluemind_state) keeps it.
  - The stop is the target's own stop at a hot sync; the final pull and the database catch-up are
    each as long as the last hot sync that was not the first (the first copies everything, a later
    one what changed between two runs, as the window will), side by side when O(beside); BlueMind's start
    on the target is as long as its last start (systemd's timestamps, read by the hot sync that stopped
    it), else O(start_seconds); O(fixed_seconds) stands for the steps around them that no hot phase
    measures (the records, the checks; the configuration copy runs beside the final pull).
  - With O(look), the result of M(bluemind.migration.bluemind_db_look) (a last quick look at the origin's
    databases before the window), the database pass is what the origin writes during the catch-up before
    the stop (O(catch_up)) at the rate the look saw, at the last hot pass's cost per listed table and per
    written row, and the
    final pull what changes meanwhile (O(followed), a follower moved the rest before the stop) or since the
    last hot sync began, at the rate of change that hot sync saw. Without it (or when it failed), both
    are as long as the last hot sync's, an upper bound (a hot sync walks every tree and lists every table
    written since the one before; the window does neither).
  - Returns C(seconds) (null while a part is unknown), C(parts) (C(step), C(seconds), C(basis)),
    C(missing) (why a part is unknown and what gives it), C(text), one line for the operator, and
    C(quick_pull), true when the final pull is predicted to end well before its first progress
    report (the window then runs it without the progress path), and C(catch_up_seconds), the catch-up the
    look predicts before the stop (null without a look).
positional: fixed_seconds, beside, start_seconds, look, catch_up, followed
options:
  _input:
    description: The state document (the fact C(bluemind_state)).
    type: dict
    required: true
  fixed_seconds:
    description: Seconds of the window no hot phase measures (the variable C(bluemind_window_fixed_seconds)).
    type: float
    required: true
  beside:
    description: Whether the database pass runs beside the final pull (C(cold_sync_db_beside)).
    type: bool
    default: true
  start_seconds:
    description:
      - Seconds of BlueMind's start on the target when no hot sync measured it (the variable
        C(bluemind_window_start_seconds)).
    type: float
    default: 60.0
  look:
    description: The registered result of M(bluemind.migration.bluemind_db_look); null, failed or skipped is no look.
    type: dict
  catch_up:
    description: Whether the window's database job catches up before the stop (C(cold_sync_db_catch_up)).
    type: bool
    default: true
  followed:
    description: Whether the final pull follows the origin's changes before the stop (C(cold_sync_follow_changes)).
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Tell the operator what the window will cost
  ansible.builtin.debug:
    msg: "{{ (ansible_facts.bluemind_state | bluemind.migration.window_prediction(bluemind_window_fixed_seconds)).text }}"
"""

RETURN = r"""
_value:
  description: C(seconds), C(parts), C(missing), C(text), C(quick_pull) and C(catch_up_seconds).
  type: dict
"""

from ansible_collections.bluemind.migration.plugins.module_utils import state as migration_state


def window_prediction(state, fixed_seconds, beside=True, start_seconds=60.0, look=None, catch_up=True, followed=True):
    return migration_state.predict_window(state or {}, float(fixed_seconds), bool(beside), float(start_seconds),
                                          look, bool(catch_up), bool(followed))


class FilterModule:
    def filters(self):
        return {"window_prediction": window_prediction}
