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
    or C(bmctl restart), then waits until C(bmctl status) shows every unit of the target in that
    state.
  - The state is read from the text of C(bmctl status), one line per unit; its exit code says
    nothing useful (a stopped BlueMind exits 1 as soon as C(bm-nginx) runs, a fully stopped one 0).
  - Only the units of C(bluemind.target) are judged, as C(systemctl list-dependencies --plain
    bluemind.target) lists them, the same list C(bmctl) builds its lines from. C(bmctl status) also
    prints C(bm-nginx), which is outside the target and keeps running after C(bmctl stop) (then
    reported as started while BlueMind is stopped); such units are returned in RV(outside_target)
    and never block V(stopped). When systemd cannot list the target, C(bm-nginx) is the only unit
    left out, with a warning.
  - While BlueMind starts, C(bm-core) can take minutes (systemd waits for it, up to its own 300 s
    start timeout); the module waits for it within O(wait_timeout).
  - C(bmctl) stops neither PostgreSQL nor postfix.
options:
  state:
    description:
      - V(started) and V(stopped) act only when a unit of the target is not in that state;
        V(restarted) always restarts.
      - V(started) means every unit of the target that is not disabled on this node is running
        (a unit still starting is not). V(stopped) means no unit of the target is running (failed
        units count as not running).
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
      - Seconds for the whole change, from running C(bmctl start), C(stop) or C(restart) (which
        return only when systemd has finished the job, so after C(bm-core) is up) to the last
        unit in the state. When C(bmctl) itself has not returned by then, it is stopped (systemd
        goes on with the job) and the task fails naming the units not yet in the state.
      - A core with a large database or many domains takes minutes to start; raise this for such
        a server rather than retrying the task.
    type: int
    default: 600
  with_units:
    description:
      - Other systemd units taken along in the same task (one round trip instead of one task each),
        such as V(postfix). They are started beside BlueMind (their start queued with C(systemctl start
        --no-block) before C(bmctl start), then waited for once BlueMind is up, so that the task lasts the longer
        of the two starts, not their sum), and stopped or restarted after it, with C(systemctl), each only
        when it is not already in the state.
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

- name: Start BlueMind and wait up to twenty minutes for a slow bm-core
  bluemind.migration.bmctl:
    state: started
    wait_timeout: 1200
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
  description: State of each unit of C(bluemind.target) before the task, as read from C(bmctl status).
  returned: always
  type: dict
  sample: {"bm-core.service": "stopped", "bm-node.service": "stopped", "bm-hps.service": "disabled"}
status:
  description:
    - State of each unit of C(bluemind.target) at the end of the task (the same as
      RV(status_before) when nothing ran), named as C(bmctl status) prints them.
    - Values are V(running), V(stopped), V(failed) (which is also how C(bmctl) shows a unit still
      starting while the target is up), V(disabled) and V(inconsistent) (a unit started while
      BlueMind is stopped).
  returned: always
  type: dict
  sample: {"bm-core.service": "running", "bm-node.service": "running", "bm-hps.service": "disabled"}
seconds:
  description:
    - How long the task took to bring the units to O(state) (C(bmctl) and the units of
      O(with_units)), status reads included; V(0) in check mode.
  returned: always
  type: float
  sample: 12.4
ended_at:
  description: When the task ended, on the clock of the host it ran on (UTC, as the migration state keeps
    times); the window records the origin's stop with it.
  returned: when not in check mode
  type: str
  sample: "2026-11-30T05:32:18.862745Z"
last_start_seconds:
  description:
    - When the task stopped a running BlueMind, how long its last start had taken, from systemd's
      timestamps of C(bluemind.target) (from leaving inactive to active, which it reaches once every unit
      it wants started, the core once it said it is ready); the hot sync keeps it to predict the start in
      the window.
  returned: when the task stopped a running BlueMind whose target systemd saw start
  type: float
  sample: 41.7
outside_target:
  description:
    - Units that C(bmctl status) lists but that are not part of C(bluemind.target), with their
      state at the end of the task; not judged.
  returned: always
  type: dict
  sample: {"bm-nginx": "inconsistent"}
"""

import os
import re
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.bluemind.migration.plugins.module_utils.state import stamp

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
STATUS_PATTERNS = (
    (re.compile(r"^(\S+) is running\b"), "running"),
    (re.compile(r"^(\S+) is stopped\b"), "stopped"),
    (re.compile(r"^(\S+) is disabled on this node\b"), "disabled"),
    (re.compile(r"^(\S+) started while BlueMind is stopped\b"), "inconsistent"),
    (re.compile(r"^(\S+) fail\b"), "failed"),
    # bmctl of BlueMind before 4.3 (no systemd target): "BlueMind <unit> is running." / "is down."
    (re.compile(r"^BlueMind (\S+) is running\b"), "running"),
    (re.compile(r"^BlueMind (\S+) is down\b"), "stopped"),
)
ACTIONS = {"started": "start", "stopped": "stop", "restarted": "restart"}
TARGET = "bluemind.target"
# Printed by bmctl status although outside bluemind.target; used only when systemd cannot list it.
KNOWN_OUTSIDE_TARGET = ("bm-nginx",)
# Status reads while the units start or stop: a read costs a few milliseconds, and each period of
# waiting past the moment BlueMind is ready adds to the window's downtime.
POLL_SECONDS = 0.5
TIMED_OUT = (124, 137)  # timeout(1): the command ran out of time (137: it had to be killed)


class BmctlError(Exception):
    """``units`` is the last status read, when there is one."""

    def __init__(self, message, units=None):
        super(BmctlError, self).__init__(message)
        self.units = units


def unit_base(name):
    """``bm-core.service`` and ``bm-core`` name the same unit (bmctl prints both forms)."""
    return name[:-len(".service")] if name.endswith(".service") else name


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


def parse_dependencies(text):
    """Unit names (without ``.service``) from ``systemctl list-dependencies --plain <target>``."""
    names = set()
    for line in ANSI_ESCAPE.sub("", text).splitlines():
        words = line.split()
        if words and words[-1] != TARGET:
            names.add(unit_base(words[-1]))  # the last word: older systemd may print a state dot first
    return names


def target_units(module):
    """The units of bluemind.target as systemd lists them, or None (with a warning) when it cannot."""
    systemctl = module.get_bin_path("systemctl")
    if systemctl:
        rc, out, err = module.run_command([systemctl, "list-dependencies", "--plain", "--no-pager", TARGET])
        names = parse_dependencies(out) if rc == 0 else set()
        if names:
            return names
        why = "'systemctl list-dependencies %s' answered nothing usable (exit %d: %s)" % (
            TARGET, rc, (err or out).strip() or "no output")
    else:
        why = "systemctl was not found"
    module.warn("%s: judging every unit bmctl status lists except %s" % (why, ", ".join(KNOWN_OUTSIDE_TARGET)))
    return None


def split_units(units, in_target):
    """(units of the target, units outside it) from a parsed status."""
    inside, outside = {}, {}
    for unit, state in units.items():
        base = unit_base(unit)
        if in_target is None:
            part_of_target = base not in KNOWN_OUTSIDE_TARGET
        else:
            part_of_target = base in in_target
        (inside if part_of_target else outside)[unit] = state
    return inside, outside


def unready_units(units, state):
    """Units that keep ``units`` from being in ``state`` (``started`` or ``stopped``)."""
    if state == "started":
        return dict((u, s) for u, s in units.items() if s not in ("running", "disabled"))
    return dict((u, s) for u, s in units.items() if s in ("running", "inconsistent"))


def read_status(module, bmctl, in_target):
    """``(target units, outside units)`` from ``bmctl status``."""
    rc, out, err = module.run_command([bmctl, "status"])
    units = parse_status(out)
    # Exit 1 means "something is inconsistent" (bm-nginx up while BlueMind is stopped is enough),
    # which the text tells unit by unit.
    if rc not in (0, 1) or not units:
        raise BmctlError(
            "'%s status' gave no unit states (exit %d): %s; check that BlueMind is installed and "
            "that %s exists" % (bmctl, rc, (err or out).strip() or "no output", TARGET)
        )
    inside, outside = split_units(units, in_target)
    if not inside:
        raise BmctlError(
            "'%s status' lists none of the units of %s (it lists %s); check 'systemctl "
            "list-dependencies %s'" % (bmctl, TARGET, ", ".join(sorted(units)), TARGET), inside)
    return inside, outside


def describe(pending):
    return ", ".join("%s is %s" % item for item in sorted(pending.items()))


def wait_for(module, bmctl, in_target, state, deadline, timeout):
    while True:
        units, outside = read_status(module, bmctl, in_target)
        pending = unready_units(units, state)
        if not pending:
            return units, outside
        if time.monotonic() >= deadline:
            raise BmctlError(
                "BlueMind did not reach state %s within %d s: %s; look at 'systemctl status <unit>' "
                "and /var/log/bm/ on this server, or raise wait_timeout (a core with much data can "
                "take minutes to start)" % (state, timeout, describe(pending)),
                units,
            )
        time.sleep(POLL_SECONDS)


def run_action(module, bmctl, action, seconds):
    """``bmctl <action>``, stopped after ``seconds`` when timeout(1) exists; ``(rc, out, err, timed_out)``."""
    timeout = module.get_bin_path("timeout")
    if timeout is None:
        rc, out, err = module.run_command([bmctl, action])
        return rc, out, err, False
    rc, out, err = module.run_command([timeout, "--kill-after=10", str(max(1, int(seconds))), bmctl, action])
    return rc, out, err, rc in TIMED_OUT


def take_along(module, units, state, queue_only=False):
    """Bring the systemd ``units`` to ``state`` (unless check mode); the names of those that moved.
    ``queue_only``: their jobs queued (``--no-block``), for :func:`systemctl_each` to wait for later."""
    if not units:
        return []
    systemctl = module.get_bin_path("systemctl", required=True)
    moved = []
    for unit in units:
        active = module.run_command([systemctl, "is-active", "--quiet", unit])[0] == 0
        if state == "started" and active or state == "stopped" and not active:
            continue
        moved.append(unit)
        if not module.check_mode:
            systemctl_each(module, [unit], state, moved, queue_only)
    return moved


def systemctl_each(module, units, state, moved, queue_only=False):
    """``systemctl <action> [--no-block] <unit>`` for each of ``units``; fail naming the unit. Without
    ``--no-block``, systemctl returns once the unit's job (its own, or one queued before) is done."""
    systemctl = module.get_bin_path("systemctl", required=True)
    for unit in units:
        rc, out, err = module.run_command([systemctl, ACTIONS[state]] + (["--no-block"] if queue_only else []) + [unit])
        if rc != 0:
            module.fail_json(msg="'systemctl %s %s' failed (exit %d): %s; see 'systemctl status %s'" % (
                ACTIONS[state], unit, rc, (err or out).strip() or "no output", unit), units_changed=moved)


def last_start_seconds(module):
    """How long the last start of bluemind.target took by systemd's monotonic timestamps (leaving inactive,
    then entering active), while it is active; None when systemd cannot say."""
    systemctl = module.get_bin_path("systemctl")
    if not systemctl:
        return None
    rc, out, _err = module.run_command([systemctl, "show", TARGET, "--property=ActiveState",
                                        "--property=InactiveExitTimestampMonotonic",
                                        "--property=ActiveEnterTimestampMonotonic"])
    if rc != 0:
        return None
    values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    try:
        began = int(values.get("InactiveExitTimestampMonotonic", "0"))
        ended = int(values.get("ActiveEnterTimestampMonotonic", "0"))
    except ValueError:
        return None
    if values.get("ActiveState") != "active" or began <= 0 or ended < began:
        return None
    return round((ended - began) / 1e6, 3)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", required=True, choices=list(ACTIONS)),
            bmctl_path=dict(type="path", default="/usr/bin/bmctl"),
            wait_timeout=dict(type="int", default=600),
            with_units=dict(type="list", elements="str", default=[]),
        ),
        supports_check_mode=True,
    )
    began = time.monotonic()
    bmctl = module.params["bmctl_path"]
    state = module.params["state"]
    timeout = module.params["wait_timeout"]
    if not os.access(bmctl, os.X_OK):
        module.fail_json(msg="%s is not an executable on this host: is BlueMind (package bm-conf) "
                             "installed? Set bmctl_path if it lives elsewhere" % bmctl)
    if timeout < 1:
        module.fail_json(msg="wait_timeout must be at least 1 second, not %d" % timeout)
    in_target = target_units(module)
    try:
        before, outside = read_status(module, bmctl, in_target)
    except BmctlError as exc:
        module.fail_json(msg=str(exc))
    if state == "restarted" or unready_units(before, state):
        action = ACTIONS[state]
    else:
        action = None
    units = module.params["with_units"]
    # started beside BlueMind: queued now, waited for once BlueMind is up (below)
    moved = take_along(module, units, state, queue_only=True) if state == "started" else []
    result = dict(changed=action is not None or bool(moved), bmctl_action=action, status_before=before,
                  status=before, outside_target=outside, units_changed=moved, seconds=0.0)
    if action == "stop" and not module.check_mode:
        started_in = last_start_seconds(module)
        if started_in is not None:
            result["last_start_seconds"] = started_in
    if action is not None and not module.check_mode:
        goal = "stopped" if state == "stopped" else "started"
        deadline = time.monotonic() + timeout
        rc, out, err, timed_out = run_action(module, bmctl, action, timeout)
        if timed_out:
            try:
                result["status"], result["outside_target"] = read_status(module, bmctl, in_target)
                left = describe(unready_units(result["status"], goal)) or "no unit left"
            except BmctlError as exc:
                left = str(exc)
            module.fail_json(
                msg="'%s %s' did not return within %d s (wait_timeout); systemd goes on with the job: "
                    "%s. A core with much data can take minutes to start: raise wait_timeout, and "
                    "follow it with 'systemctl list-jobs' and 'journalctl -u bm-core'" % (
                        bmctl, action, timeout, left),
                **result
            )
        if rc != 0:
            module.fail_json(
                msg="'%s %s' failed (exit %d): %s; see 'systemctl status %s'" % (
                    bmctl, action, rc, (err or out).strip() or "no output", TARGET),
                **result
            )
        try:
            result["status"], result["outside_target"] = wait_for(
                module, bmctl, in_target, goal, deadline, timeout)
        except BmctlError as exc:
            result["status"] = exc.units or {}
            module.fail_json(msg=str(exc), **result)
    if state == "started" and moved and not module.check_mode:
        systemctl_each(module, moved, state, moved)
    if state != "started":
        result["units_changed"] = take_along(module, units, state)
        result["changed"] = result["changed"] or bool(result["units_changed"])
    if not module.check_mode:
        result["seconds"] = round(time.monotonic() - began, 3)
        result["ended_at"] = stamp()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
