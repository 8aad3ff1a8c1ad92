# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pairs of one run side by side: where each migration stands, its downtime, the run's summary."""

from __future__ import annotations

DOCUMENTATION = r"""
name: migration_summary
short_description: Where each origin/target pair of a run stands, and the run's totals
version_added: 1.1.0
description:
  - Takes, for each target of the inventory, what the run left in its host variables (the migration
    context and the state's summary, C(ansible_facts.bluemind_migration)) and says, pair by pair, whether
    its run went to the end, which phases are done and left, and its downtime; then the totals.
  - A target without the context was not in this run (C(--limit)) and is left out. A target with the
    context that is not among O(finished) failed (Ansible drops a failed or unreachable host from the
    plays that follow, so the summary play's C(ansible_play_hosts) are the pairs whose run went on to
    the end, a target that ended early because it was complete or live included).
options:
  _input:
    description: Host variables of the targets (C(hostvars)), by name.
    type: dict
    required: true
  targets:
    description: The targets' names (C(groups['target'])).
    type: list
    elements: str
    required: true
  finished:
    description: The targets whose run went to the end (the summary play's C(ansible_play_hosts)).
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
- name: Summarise the pairs of this run
  ansible.builtin.set_fact:
    summary: "{{ hostvars | bluemind.migration.migration_summary(groups['target'], ansible_play_hosts) }}"
"""

RETURN = r"""
_value:
  description: C(pairs) (one dict each, C(target), C(origin), C(result), C(done), C(left), C(downtime_seconds)),
    C(totals) (C(pairs), C(complete), C(live), C(failed), C(longest_downtime_seconds)) and C(markdown) (the
    summary as a Markdown page).
  type: dict
"""

# What a pair's run came to, from the best to the worst.
COMPLETE = "complete"
LIVE = "live, cutover to finish"
PHASES_DONE = "ran to the end"
FAILED = "failed"


def _get(mapping, key, default=None):
    try:
        value = mapping[key]
    except (KeyError, TypeError):
        return default
    return default if value is None else value


def _pair(name, hostvars, finished):
    host = _get(hostvars, name, {})
    facts = _get(host, "ansible_facts", {})
    state = _get(facts, "bluemind_migration")
    if state is None:
        return None
    if name not in finished:
        result = FAILED
    elif state.get("complete"):
        result = COMPLETE
    elif state.get("live"):
        result = LIVE
    else:
        result = PHASES_DONE
    return dict(target=name, origin=_get(host, "bluemind_origin", "?"), result=result,
                done=list(state.get("done") or []), left=list(state.get("left") or []),
                downtime_seconds=state.get("downtime_seconds"))


def _markdown(pairs, totals):
    lines = ["# BlueMind migration: the pairs of this run", "",
             "%(pairs)d pair(s): %(complete)d complete, %(live)d live with the cutover to finish, %(failed)d failed"
             % totals + ("; longest downtime %.1f s" % totals["longest_downtime_seconds"]
                         if totals["longest_downtime_seconds"] is not None else ""), "",
             "| origin | target | this run | phases done | left | downtime | report |", "|---|---|---|---|---|---|---|"]
    for pair in pairs:
        lines.append("| %s | %s | %s | %s | %s | %s | %s |" % (
            pair["origin"], pair["target"], pair["result"], ", ".join(pair["done"]) or "none",
            ", ".join(pair["left"]) or "none",
            "%.1f s" % pair["downtime_seconds"] if pair["downtime_seconds"] is not None else "",
            "[%s.md](%s.md)" % (pair["target"], pair["target"]) if pair["result"] == COMPLETE else ""))
    if totals["failed"]:
        lines += ["", "A failed pair says why in this run's output; rerun the same command for it "
                      "(`--limit <target>`): the other pairs are not affected."]
    return "\n".join(lines) + "\n"


def migration_summary(hostvars, targets, finished):
    finished = set(finished)
    pairs = [pair for pair in (_pair(name, hostvars, finished) for name in targets) if pair is not None]
    downtimes = [pair["downtime_seconds"] for pair in pairs if pair["downtime_seconds"] is not None]
    totals = dict(pairs=len(pairs), complete=sum(pair["result"] == COMPLETE for pair in pairs),
                  live=sum(pair["result"] == LIVE for pair in pairs), failed=sum(pair["result"] == FAILED for pair in pairs),
                  longest_downtime_seconds=max(downtimes) if downtimes else None)
    return dict(pairs=pairs, totals=totals, markdown=_markdown(pairs, totals))


class FilterModule:
    def filters(self):
        return {"migration_summary": migration_summary}
