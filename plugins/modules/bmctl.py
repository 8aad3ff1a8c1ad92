#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: bmctl
short_description: Start, stop or restart BlueMind with bmctl
version_added: 1.0.0
description:
  - Brings the units of C(bluemind.target) to the requested state with C(bmctl start), C(bmctl stop)
    or C(bmctl restart), then waits until C(bmctl status) shows every unit in that state.
  - The state is read from the text of C(bmctl status), one line per unit; its exit code is 0 when
    BlueMind is fully stopped too, so it says nothing about the state.
  - C(bmctl) stops neither PostgreSQL nor postfix.
options:
  state:
    description:
      - V(started) and V(stopped) act only when a unit is not in that state; V(restarted) always
        restarts.
      - V(started) means every unit that is not disabled on this node is running. V(stopped) means
        no unit is running (failed units count as not running).
    type: str
    required: true
    choices: [started, stopped, restarted]
  bmctl_path:
    description:
      - Path of C(bmctl) on the BlueMind server.
    type: path
    default: /usr/bin/bmctl
  wait_timeout:
    description:
      - Seconds to wait after the action for every unit to reach the state.
    type: int
    default: 300
  with_units:
    description:
      - Other systemd units taken along in the same task (one round trip instead of one task each),
        such as V(postfix). They are started before BlueMind, and stopped or restarted after it,
        with C(systemctl), each only when it is not already in the state.
    type: list
    elements: str
    default: []
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
author:
  - bluemind.migration contributors (@bluemind-migration)
"""

EXAMPLES = r"""
- name: Stop BlueMind before the final pull
  bluemind.migration.bmctl:
    state: stopped

- name: Stop BlueMind, then postfix
  bluemind.migration.bmctl:
    state: stopped
    with_units: [postfix]

- name: Start BlueMind and wait up to ten minutes for bm-core
  bluemind.migration.bmctl:
    state: started
    wait_timeout: 600
"""

RETURN = r"""
bmctl_action:
  description: The C(bmctl) command run (or that would run in check mode), V(null) when none was needed.
  returned: always
  type: str
  sample: start
units_changed:
  description: Units of O(with_units) started, stopped or restarted (or that would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: [postfix]
status_before:
  description: State of each unit before the task, as read from C(bmctl status).
  returned: always
  type: dict
  sample: {"bm-core": "stopped", "bm-node": "stopped", "bm-hps": "disabled"}
status:
  description:
    - State of each unit at the end of the task (the same as RV(status_before) when nothing ran).
    - Values are V(running), V(stopped), V(failed), V(disabled) and V(inconsistent) (a unit
      started while BlueMind is stopped).
  returned: always
  type: dict
  sample: {"bm-core": "running", "bm-node": "running", "bm-hps": "disabled"}
"""

import os
import re
import time

from ansible.module_utils.basic import AnsibleModule

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
STATUS_PATTERNS = (
    (re.compile(r"^(\S+) is running\b"), "running"),
    (re.compile(r"^(\S+) is stopped\b"), "stopped"),
    (re.compile(r"^(\S+) is disabled on this node\b"), "disabled"),
    (re.compile(r"^(\S+) started while BlueMind is stopped\b"), "inconsistent"),
    (re.compile(r"^(\S+) fail\b"), "failed"),
)
ACTIONS = {"started": "start", "stopped": "stop", "restarted": "restart"}
POLL_SECONDS = 2


class BmctlError(Exception):
    """``units`` is the last status read, when there is one."""

    def __init__(self, message, units=None):
        super(BmctlError, self).__init__(message)
        self.units = units


def parse_status(text):
    """``{unit: state}`` from the text of ``bmctl status``; lines of other kinds are ignored."""
    units = {}
    for line in ANSI_ESCAPE.sub("", text).splitlines():
        for pattern, state in STATUS_PATTERNS:
            match = pattern.match(line.strip())
            if match:
                units[match.group(1)] = state
                break
    return units


def unready_units(units, state):
    """Units that keep ``units`` from being in ``state`` (``started`` or ``stopped``)."""
    if state == "started":
        return dict((u, s) for u, s in units.items() if s not in ("running", "disabled"))
    return dict((u, s) for u, s in units.items() if s in ("running", "inconsistent"))


def read_status(module, bmctl):
    rc, out, err = module.run_command([bmctl, "status"])
    units = parse_status(out)
    # Exit 1 means "something is inconsistent", which the text tells unit by unit.
    if rc not in (0, 1) or not units:
        raise BmctlError(
            "'%s status' gave no unit states (exit %d): %s; check that BlueMind is installed and "
            "that bluemind.target exists" % (bmctl, rc, (err or out).strip() or "no output")
        )
    return units


def wait_for(module, bmctl, state, timeout):
    deadline = time.monotonic() + timeout
    while True:
        units = read_status(module, bmctl)
        pending = unready_units(units, state)
        if not pending:
            return units
        if time.monotonic() >= deadline:
            raise BmctlError(
                "BlueMind did not reach state %s within %d s: %s; look at 'systemctl status <unit>' "
                "and /var/log/bm/ on this server, or raise wait_timeout" % (
                    state, timeout, ", ".join("%s is %s" % item for item in sorted(pending.items()))),
                units,
            )
        time.sleep(POLL_SECONDS)


def take_along(module, units, state):
    """Bring the systemd ``units`` to ``state`` (unless check mode); the names of those that moved."""
    systemctl = module.get_bin_path("systemctl", required=True)
    moved = []
    for unit in units:
        active = module.run_command([systemctl, "is-active", "--quiet", unit])[0] == 0
        if state == "started" and active or state == "stopped" and not active:
            continue
        moved.append(unit)
        if module.check_mode:
            continue
        rc, out, err = module.run_command([systemctl, ACTIONS[state], unit])
        if rc != 0:
            module.fail_json(msg="'systemctl %s %s' failed (exit %d): %s; see 'systemctl status %s'" % (
                ACTIONS[state], unit, rc, (err or out).strip() or "no output", unit), units_changed=moved)
    return moved


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", required=True, choices=list(ACTIONS)),
            bmctl_path=dict(type="path", default="/usr/bin/bmctl"),
            wait_timeout=dict(type="int", default=300),
            with_units=dict(type="list", elements="str", default=[]),
        ),
        supports_check_mode=True,
    )
    bmctl = module.params["bmctl_path"]
    state = module.params["state"]
    if not os.access(bmctl, os.X_OK):
        module.fail_json(msg="%s is not an executable on this host: is BlueMind (package bm-conf) "
                             "installed? Set bmctl_path if it lives elsewhere" % bmctl)
    try:
        before = read_status(module, bmctl)
    except BmctlError as exc:
        module.fail_json(msg=str(exc))
    if state == "restarted" or unready_units(before, state):
        action = ACTIONS[state]
    else:
        action = None
    units = module.params["with_units"]
    moved = take_along(module, units, state) if state == "started" else []
    result = dict(changed=action is not None or bool(moved), bmctl_action=action, status_before=before,
                  status=before, units_changed=moved)
    if action is not None and not module.check_mode:
        rc, out, err = module.run_command([bmctl, action])
        if rc != 0:
            module.fail_json(
                msg="'%s %s' failed (exit %d): %s; see 'systemctl status bluemind.target'" % (
                    bmctl, action, rc, (err or out).strip() or "no output"),
                **result
            )
        try:
            result["status"] = wait_for(module, bmctl, "stopped" if state == "stopped" else "started",
                                        module.params["wait_timeout"])
        except BmctlError as exc:
            result["status"] = exc.units or {}
            module.fail_json(msg=str(exc), **result)
    if state != "started":
        result["units_changed"] = take_along(module, units, state)
        result["changed"] = result["changed"] or bool(result["units_changed"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
