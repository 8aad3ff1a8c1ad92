#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: bluemind_state
short_description: Read and record the migration's state on the target
version_added: 1.1.0
description:
  - Owns the migration's state file on the target, one JSON document that says which phases ran,
    when, and what the report needs of their results. It is the only writer of that file.
  - Each call first checks that the state allows the event. A phase needs the phases before it
    (the cutover needs C(cold_sync), C(db_migrate) and C(config_copy)). Once the target is live
    (the cutover started its services) no phase may stop it, pull into it or restore over it; only
    the cutover may go on, to finish what is left. A refused event fails, says why and what to do,
    and changes nothing.
  - The times are stamped here (UTC). Of a work module's result only what the report needs is kept.
  - The file is written atomically (a new file beside it, synced, renamed over the old one).
  - Returns the state as the fact C(bluemind_state), and what the next steps need (whether the
    target is live, the previous pull's start, the downtime, the phases left) as the fact
    C(bluemind_migration), so that no role hands a register to another.
options:
  path:
    description:
      - The state file on the target. Its folder is made (mode 0700) when missing.
    type: path
    default: /var/lib/bluemind-migration/state.json
  phase:
    description:
      - The phase the event belongs to. V(rollback) is the rollback playbook.
      - Needed for every event but V(read).
    type: str
    choices: [prereq, hot_sync, cold_sync, db_migrate, config_copy, cutover, rollback]
  event:
    description:
      - V(read) returns the state and changes nothing, whatever the state says.
      - V(check) fails when the state forbids O(phase) now, and changes nothing.
      - V(start) records a start, the downtime's (V(cold_sync), kept on a rerun, with the downtime
        predicted then when O(result) has C(predicted_seconds)), the database pass started beside the
        final pull (V(db_migrate), with C(job) in O(result)), a configuration copy under way
        (V(config_copy), not done until its end is recorded), the target going live (V(cutover),
        before its services start).
      - V(stopped) (V(cold_sync) only) records when BlueMind and postfix stopped on both hosts (the
        first time only). The window's roles give it with the final pull instead (C(stopped_at) in
        O(result)), one state write less in the window.
      - V(serving) (V(cutover) only) records when the target first served again, the end of the window.
      - V(admin) (V(cutover) only) records when the admin actions begin.
      - V(databases) (V(hot_sync) only) records the seconds of the database pass that followed the hot
        sync's pull (O(result) is the result of M(bluemind.migration.bluemind_db_transfer)); the
        downtime's prediction uses them.
      - V(done) records the end of O(phase) with O(result). V(rollback) forgets the window.
      - The report's timeline draws each step of the window between these records, and the final pull,
        the verification and the database pass from the spans their modules return.
    type: str
    default: read
    choices: [read, check, start, stopped, serving, databases, admin, done]
  result:
    description:
      - What the phase's work gave, of which only what the report needs is kept.
      - V(prereq) C(origin), C(addresses), C(version); V(hot_sync) the result of
        M(bluemind.migration.bluemind_sync), with C(stop), the result of M(bluemind.migration.bmctl)
        that stopped the target (its C(seconds) predict the window's stop); V(cold_sync) that result with C(verify), the result of
        the verification pass when there was one, and C(stopped_at), the end of the origin's stop (the
        C(ended_at) of M(bluemind.migration.bmctl); kept as V(stopped) records it, the first time only); V(db_migrate) the result of
        M(bluemind.migration.bluemind_db_transfer) with C(names), the databases' names in its order;
        V(db_migrate) start C(job), the background job's id; V(config_copy) C(files) and C(queue),
        the itemized lines of the configuration and queue copies; V(cutover) done C(ip_mode),
        C(admin), C(smoke).
    type: dict
    default: {}
  then:
    description:
      - More V(done) events recorded in the same write, in order, after the one of O(phase) and
        O(event), each allowed by the state as the events before it leave it (when one is refused, nothing
        is written). cold_sync gives so the end of the database pass and of the configuration copy
        that ran beside the final pull, with the pull's own record (two state writes less in the window).
    type: list
    elements: dict
    default: []
    suboptions:
      phase:
        description: The phase of the event.
        type: str
        required: true
        choices: [prereq, hot_sync, cold_sync, db_migrate, config_copy, cutover, rollback]
      result:
        description: As O(result), for that phase.
        type: dict
        default: {}
  check_mode_state:
    description:
      - In check mode, the state to start from, as the earlier records of the same run predicted it
        (give the fact C(bluemind_state)). Nothing is written in check mode, so the file does not hold
        those records. Ignored in a real run.
    type: dict
  target_name:
    description:
      - How the messages name the target (the inventory name).
    type: str
    default: the target
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: The new state is computed and returned, not written.
  diff_mode:
    support: full
  platform:
    platforms: posix
notes:
  - What a rerun of each phase does is in the collection's README ("What a rerun does").
author:
  - bluemind.migration contributors (@bluemind-migration)
"""

EXAMPLES = r"""
- name: Read the migration state
  bluemind.migration.bluemind_state:

- name: Record the start of the downtime (kept by a rerun)
  bluemind.migration.bluemind_state:
    phase: cold_sync
    event: start

- name: Record this hot sync
  bluemind.migration.bluemind_state:
    phase: hot_sync
    event: done
    result: "{{ hot_sync_pull }}"
"""

RETURN = r"""
ansible_facts:
  description: The state and what the next steps need of it.
  returned: always
  type: complex
  contains:
    bluemind_state:
      description: The whole state document, as written (or as it would be, in check mode).
      type: dict
      sample: {"prereq": {"checked": "2026-11-29T18:00:00.000000Z"}, "hot_sync_runs": []}
    bluemind_migration:
      description: Computed from the state.
      type: dict
      contains:
        live:
          description: The target may hold mail the origin never had (the cutover started it).
          type: bool
        live_since:
          description: When the target went live, V(null) before.
          type: str
        complete:
          description: The cutover finished.
          type: bool
        first_pull:
          description: No pull was recorded yet (or a rollback forgot the last one).
          type: bool
        since:
          description: The previous pull's start on the origin's clock, minus a margin (0 before any).
          type: float
        downtime_seconds:
          description: From the stop of the origin to the target serving again, V(null) before the end.
          type: float
        downtime_started:
          description: When the cold window began, V(null) before.
          type: str
        done:
          description: The phases recorded as done.
          type: list
          elements: str
        left:
          description: The phases of the window still to run.
          type: list
          elements: str
        db_pass_job:
          description: The job id of the database pass started beside the final pull, V(null) when none.
          type: str
        config_copy_job:
          description: The job id of the configuration copy started beside the final pull, V(null) when none.
          type: str
        config_copy_unfinished:
          description:
            - A configuration copy started and its end was not recorded (its run died or failed after its
              files may have landed). The next copy then rebuilds what the copied files feed even when it
              finds nothing more to copy.
          type: bool
recorded:
  description: The phases whose event this call recorded (O(phase), then those of O(then)), none for V(read) and V(check).
  returned: always
  type: list
  elements: str
decision:
  description: What the state allows the phase now (V(run), V(resume), V(complete)) and why.
  returned: when O(phase) is given
  type: dict
  sample: {"action": "run", "message": "hot_sync runs again: it pulls again: only what changed since the previous pull moves"}
"""

import json

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.bluemind.migration.plugins.module_utils import state as migration_state


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", default="/var/lib/bluemind-migration/state.json"),
            phase=dict(type="str", choices=sorted(migration_state.REQUIRES)),
            event=dict(type="str", default="read", choices=["read", "check", "start", "stopped", "serving", "databases", "admin", "done"]),
            result=dict(type="dict", default={}),
            target_name=dict(type="str", default="the target"),
            check_mode_state=dict(type="dict"),
            then=dict(type="list", elements="dict", default=[], options=dict(
                phase=dict(type="str", required=True, choices=sorted(migration_state.REQUIRES)),
                result=dict(type="dict", default={}))),
        ),
        required_if=[("event", event, ["phase"]) for event in ("check", "start", "stopped", "serving", "databases", "admin", "done")],
        supports_check_mode=True,
    )
    path, phase, event = module.params["path"], module.params["phase"], module.params["event"]
    out = dict(changed=False, recorded=[])
    try:
        before = migration_state.load(path)
        if module.check_mode and module.params["check_mode_state"] is not None:
            before = module.params["check_mode_state"]
        after = before
        if phase is not None:
            out["decision"] = migration_state.decide(before, phase, module.params["target_name"])
        if event not in ("read", "check"):
            after = migration_state.apply(before, phase, event, module.params["result"])
            recorded = [phase]
            for more in module.params["then"]:
                migration_state.decide(after, more["phase"], module.params["target_name"])
                after = migration_state.apply(after, more["phase"], "done", more["result"])
                recorded.append(more["phase"])
            out["recorded"] = recorded
        if after != before:
            out["changed"] = True
            if module._diff:
                out["diff"] = dict(before=json.dumps(before, indent=2, sort_keys=True) + "\n",
                                   after=json.dumps(after, indent=2, sort_keys=True) + "\n",
                                   before_header=path, after_header=path)
            if not module.check_mode:
                migration_state.save(path, after)
    except migration_state.Refused as exc:
        module.fail_json(msg=str(exc), **out)
    except migration_state.StateError as exc:
        module.fail_json(msg=str(exc), **out)
    out["ansible_facts"] = dict(bluemind_state=after, bluemind_migration=migration_state.summary(after))
    module.exit_json(**out)


if __name__ == "__main__":
    main()
