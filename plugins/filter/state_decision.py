# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The state's rules on the controller: a phase checks what the state allows without a round trip
to the target (the cold window counts every one). The same rules as the bluemind_state module."""

from __future__ import annotations

DOCUMENTATION = r"""
name: state_decision
short_description: What the migration state allows a phase now
version_added: 1.1.0
description:
  - Applies the rules of M(bluemind.migration.bluemind_state) to a state document already read
    (the fact C(bluemind_state)), that is what the phase requires, and what it may no longer do once
    the target is live.
  - Returns C(allowed), C(action) (V(run), V(resume), V(complete)) and C(message), which says what
    the phase does or why it is refused and what to do.
positional: phase, target_name
options:
  _input:
    description: The state document (the fact C(bluemind_state)).
    type: dict
    required: true
  phase:
    description: The phase (as the module's O(bluemind.migration.bluemind_state#module:phase)).
    type: str
    required: true
  target_name:
    description: How the message names the target.
    type: str
    default: the target
"""

EXAMPLES = r"""
- name: Refuse what the state forbids
  ansible.builtin.assert:
    that: decision.allowed
    fail_msg: "{{ decision.message }}"
  vars:
    decision: "{{ ansible_facts.bluemind_state | bluemind.migration.state_decision('cold_sync', inventory_hostname) }}"
"""

RETURN = r"""
_value:
  description: C(allowed) (bool), C(action) and C(message).
  type: dict
"""

from ansible_collections.bluemind.migration.plugins.module_utils import state as migration_state


def state_decision(state, phase, target_name="the target"):
    try:
        decision = migration_state.decide(state or {}, phase, target_name)
    except migration_state.Refused as exc:
        return dict(allowed=False, action="refuse", message=str(exc))
    return dict(decision, allowed=True)


class FilterModule:
    def filters(self):
        return {"state_decision": state_decision}
