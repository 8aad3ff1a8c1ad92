# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The jobs that cold_sync starts beside the final pull, as its record takes them in the same write."""

from __future__ import annotations

from ansible_collections.bluemind.migration.plugins.filter.db_pass_summary import db_pass_summary

DOCUMENTATION = r"""
name: beside_records
short_description: The done events of the jobs beside the final pull that ended well
version_added: 1.1.0
description:
  - From what M(bluemind.migration.bluemind_job_wait) found of the database pass and the configuration
    copy started beside the final pull (its RV(bluemind.migration.bluemind_job_wait#module:jobs)), the
    V(done) events that the final pull's record writes with its own
    (O(bluemind.migration.bluemind_state#module:then)), the configuration copy's first.
  - Only a job that ended well is taken. A job that failed or is gone, a configuration copy that did not
    say when it ended, and a database pass that did not give the target its own address in the copied
    rows while O(ip_mode) is V(none) (it started before that was asked) are left to their phase (the
    config_copy and db_migrate roles wait for them again and do what is left).
  - The filter C(beside_lines) takes the same arguments and says in a line a job what became of it.
  - The filter C(beside_done) takes one job's outcome (what M(bluemind.migration.bluemind_job_wait) returns
    for O(bluemind.migration.bluemind_job_wait#module:job_file)), its phase (V(config_copy) or V(db_migrate))
    and the address mode, and says whether that phase may take the job as done by the rules above; the
    roles that wait for a job again use it.
options:
  _input:
    description: RV(bluemind.migration.bluemind_job_wait#module:jobs), the outcomes by job file.
    type: dict
    required: true
  db_job:
    description: The database pass's job file, V(null) when none started.
    type: str
  config_job:
    description: The configuration copy's job file, V(null) when none started.
    type: str
  databases:
    description:
      - The databases' names in the pass's order (its result's names may be masked where a password
        has the same text). Without them, the names of the pass's result.
    type: list
    elements: str
  ip_mode:
    description: The cutover's address mode (V(none) needs the target's own address in the copied rows).
    type: str
    default: none
"""

EXAMPLES = r"""
- name: Record the final pull with the jobs beside it
  bluemind.migration.bluemind_state:
    phase: cold_sync
    event: done
    result: "{{ pulled }}"
    then: "{{ waited.jobs | bluemind.migration.beside_records(db_file, config_file, ['bj', 'bj-data'], 'none') }}"
"""

RETURN = r"""
_value:
  description: The events, each C(phase) and C(result).
  type: list
  elements: dict
"""


def beside_done(outcome, phase, ip_mode="none"):
    """Whether ``outcome`` (what bluemind_job_wait found of one job) is a job of ``phase`` that ended
    well enough for its phase to take it as done: it finished without failing and, for the configuration
    copy, said when it ended; for the database pass, gave the target its own address in the copied rows
    where ``ip_mode`` is ``none`` (a pass started before that was asked did not)."""
    job = outcome or {}
    if not job.get("finished") or job.get("failed"):
        return False
    if phase == "config_copy":
        return bool(job.get("ended_at"))
    return "readdress" in job or ip_mode != "none"


def _taken(jobs, db_job, config_job, ip_mode):
    """``(config copy's outcome or None, database pass's outcome or None)``: those the record takes."""
    config = (jobs or {}).get(config_job) if config_job else None
    db_pass = (jobs or {}).get(db_job) if db_job else None
    return (config if beside_done(config, "config_copy") else None,
            db_pass if beside_done(db_pass, "db_migrate", ip_mode) else None)


def _names(db_pass, databases):
    return list(databases) if databases else [entry.get("name") for entry in db_pass.get("databases") or []]


def beside_records(jobs, db_job=None, config_job=None, databases=None, ip_mode="none"):
    config, db_pass = _taken(jobs, db_job, config_job, ip_mode)
    events = []
    if config is not None:
        events.append(dict(phase="config_copy", result=dict(
            files=config.get("files") or [], queue=config.get("queue") or [],
            started_at=config.get("started_at") or "", ended_at=config["ended_at"])))
    if db_pass is not None:
        result = dict((key, value) for key, value in db_pass.items() if key not in ("changed", "waited_seconds"))
        result["names"] = _names(db_pass, databases)
        events.append(dict(phase="db_migrate", result=result))
    return events


def beside_lines(jobs, db_job=None, config_job=None, databases=None, ip_mode="none"):
    config, db_pass = _taken(jobs, db_job, config_job, ip_mode)
    lines = []
    for phase, path, taken in (("config_copy", config_job, config), ("db_migrate", db_job, db_pass)):
        if not path:
            continue
        job = (jobs or {}).get(path) or {}
        if taken is None:
            why = job.get("msg") or ("it ended without the target's own address in the copied rows"
                                     if job.get("finished") else "no result")
            lines.append("%s: left to its phase (%s)" % (phase, why))
        elif phase == "config_copy":
            lines.append("config_copy: done beside the final pull (%d entries copied, recorded with the pull)" % len(
                taken.get("files") or []))
        else:
            if taken.get("catch_up"):
                lines.append("db_migrate: before the origin's stop, %s" % catch_up_line(taken["catch_up"]))
            lines += ["db_migrate: %s: %s" % (name, db_pass_summary(entry))
                      for entry, name in zip(taken.get("databases") or [], _names(taken, databases))]
    return lines


def catch_up_line(catch_up):
    """What the database job's catch-up did (RV(bluemind.migration.bluemind_db_transfer#module:catch_up))."""
    passes = catch_up.get("passes", 1)
    if catch_up.get("error"):
        return "the catch-up failed after %d pass(es), the window's pass moved the rest: %s" % (passes, catch_up["error"])
    if passes == 1:
        return "caught up in one pass (%.1f s)" % catch_up.get("seconds", 0)
    return "caught up in %d passes (the first %.1f s, the last %.1f s)" % (
        passes, catch_up.get("first_seconds", 0), catch_up.get("seconds", 0))


class FilterModule:
    def filters(self):
        return {"beside_records": beside_records, "beside_lines": beside_lines, "beside_done": beside_done}
