# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The migration's memory: the state file on the target, and the rules of its transitions.

One JSON document says which phases ran, when, and what the report needs of their results. The
rules here decide what a phase may do given that document (what it requires, what it may no longer
do once the target is live) and how each event changes it. Nothing here touches a host but
``load``/``save``, so every transition is tested without one. The module ``bluemind_state`` is the
only writer; the ``state_decision`` filter reads the same rules on the controller.
"""

from __future__ import annotations

import datetime
import json
import os
import tempfile

from ansible_collections.bluemind.migration.plugins.module_utils.confcopy import copied, moved_mail
from ansible_collections.bluemind.migration.plugins.module_utils.progress import FIRST_REPORT_SECONDS

PHASES = ("prereq", "hot_sync", "cold_sync", "db_migrate", "config_copy", "cutover")
# What a rollback forgets: the window closed, a later cold sync opens a new one; and the target may
# have written into its trees since the last pull, so the next pull compares every file.
WINDOW = ("cold_sync", "db_migrate", "config_copy", "db_pass", "config_job", "last_pull_origin_start")
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
# Seconds taken off the previous pull's start on the origin's clock: a file written in the same
# second as that start is compared again.
SINCE_MARGIN = 2
# What the report keeps of each tree of the final pull.
TREE_KEYS = ("path", "bytes", "files", "seconds", "changes", "deleted", "phases")

# The phases whose end a phase requires (cold_sync's start for db_migrate: the downtime started).
REQUIRES = {
    "prereq": (),
    "hot_sync": ("prereq",),
    "cold_sync": ("prereq",),
    "db_migrate": ("prereq",),
    "config_copy": ("prereq",),
    "cutover": ("cold_sync", "db_migrate", "config_copy"),
    "rollback": (),
}
# What a rerun of each phase does, for the README and the decision's message.
RERUN = {
    "prereq": "checks again and sets the SSH trust up again",
    "hot_sync": "pulls again: only what changed since the previous pull moves",
    "cold_sync": "keeps the recorded start of the downtime and pulls again what changed",
    "db_migrate": "moves again only the rows that differ",
    "config_copy": "copies again, the target's previous copies backed up",
    "cutover": "finishes what is left (start, admin actions, smoke checks, report)",
    "rollback": "starts the origin again (a no-op when it serves)",
}


RESTORE_HINT = ("Restore it from the report's JSON (reports/<target>.json on the controller holds the state) "
                "or, knowing that the migration then starts over, remove it.")


class StateError(Exception):
    """The state file cannot be read or written; the message says where and what to do."""


class Refused(Exception):
    """The state forbids the transition; the message says why and what to do. Nothing was changed."""


def stamp(now=None):
    """A time as the state keeps it (UTC, microseconds)."""
    return (now or datetime.datetime.now(datetime.timezone.utc)).strftime(TIME_FORMAT)


def parse_stamp(value):
    return datetime.datetime.strptime(value, TIME_FORMAT).replace(tzinfo=datetime.timezone.utc)


def load(path):
    """The state at ``path``; an empty state when there is none yet."""
    try:
        with open(path, encoding="utf-8") as handle:
            state = json.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise StateError("cannot read the migration state %s: %s. %s" % (path, exc, RESTORE_HINT))
    if not isinstance(state, dict):
        raise StateError("the migration state %s is not a JSON object. %s" % (path, RESTORE_HINT))
    return state


def save(path, state):
    """Writes ``state`` at ``path`` atomically: a new file beside it, synced, renamed over, the folder
    synced. An interruption leaves the previous state or the new one, never a mix."""
    folder = os.path.dirname(path) or "."
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        handle, tmp = tempfile.mkstemp(prefix=".state.", suffix=".new", dir=folder)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(json.dumps(state, indent=2, sort_keys=True) + "\n")
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        raise StateError("cannot write the migration state %s: %s (is the target's disk full?)" % (path, exc))


def is_live(state):
    """The target may hold mail the origin never had: the cutover started its services. The older
    keys count too (`serving`, `complete`), for a state written before `live` existed."""
    cutover = state.get("cutover") or {}
    return bool("live" in cutover or "serving" in cutover or state.get("complete"))


def live_since(state):
    cutover = state.get("cutover") or {}
    return cutover.get("live") or cutover.get("serving") or "?"


def is_done(state, phase):
    """A phase counts as done when its end is recorded (prereq: when it was checked)."""
    entry = state.get(phase) or {}
    return "checked" in entry if phase == "prereq" else "end" in entry


def summary(state):
    """What the steps after a read need, computed once here instead of in Jinja."""
    last_pull = state.get("last_pull_origin_start")
    cold = state.get("cold_sync") or {}
    cutover = state.get("cutover") or {}
    downtime = None
    if "start" in cold and "serving" in cutover:
        downtime = round((parse_stamp(cutover["serving"]) - parse_stamp(cold["start"])).total_seconds(), 1)
    return dict(
        live=is_live(state),
        live_since=live_since(state) if is_live(state) else None,
        complete=bool(state.get("complete")),
        first_pull=last_pull is None,
        since=(float(last_pull) - SINCE_MARGIN) if last_pull is not None else 0.0,
        downtime_seconds=downtime,
        downtime_started=cold.get("start"),
        done=[p for p in PHASES if is_done(state, p)],
        left=[p for p in PHASES[2:] if not is_done(state, p)],
        db_pass_job=(state.get("db_pass") or {}).get("job"),
        config_copy_job=(state.get("config_job") or {}).get("job"),
        config_copy_unfinished="start" in (state.get("config_copy") or {}) and not is_done(state, "config_copy"),
    )


def decide(state, phase, host="the target"):
    """What ``phase`` may do now: a dict with ``action`` (``run``, ``resume``, ``complete``) and a
    ``message``; raises Refused when the state forbids it."""
    if phase not in REQUIRES:
        raise Refused("unknown phase %r (one of %s)" % (phase, ", ".join(sorted(REQUIRES))))
    if state.get("complete"):
        if phase == "cutover":
            return dict(action="complete", message="the migration of %s is complete: nothing to do" % host)
        raise Refused(
            "the migration of %s is complete (cutover at %s): the target is live, and %s would stop it or "
            "overwrite its data with the stale origin's. Nothing was changed." % (
                host, (state.get("cutover") or {}).get("end", "?"), phase))
    if is_live(state):
        if phase == "cutover":
            return dict(action="resume", message="%s has been live since %s: the cutover finishes what is "
                        "left (start, admin actions, smoke checks, report)" % (host, live_since(state)))
        raise Refused(
            "%s has been live since %s: it may hold mail that the origin never had, and %s would %s. Nothing "
            "was changed. Rerun playbooks/migrate.yml to finish the cutover." % (
                host, live_since(state), phase,
                "leave it unseen on the target" if phase == "rollback"
                else "stop the target or overwrite its data with the stale origin's"))
    missing = [p for p in REQUIRES[phase] if not is_done(state, p)]
    if phase == "db_migrate" and "start" not in (state.get("cold_sync") or {}):
        missing.append("cold_sync (its start: BlueMind stopped on the origin)")
    if missing:
        raise Refused("%s needs %s first (done so far: %s). Nothing was changed." % (
            phase, ", ".join(missing), ", ".join(p for p in PHASES if is_done(state, p)) or "nothing"))
    rerun = is_done(state, phase) or (phase == "cold_sync" and "start" in (state.get("cold_sync") or {}))
    return dict(action="run", message="%s %s" % (phase, ("runs again: it " + RERUN[phase]) if rerun else "runs"))


def _seconds_or_none(value):
    """A number of seconds handed over by a template (a number, its text, or none of them)."""
    try:
        return round(float(value), 1)
    except (TypeError, ValueError):
        return None


def _keep_pull_start(new, result):
    """The pull's start on the origin's clock: the next pull compares what changed since. A pull
    that did not run (check mode before the SSH trust) has none and leaves the previous one."""
    if result.get("origin_clock_start") is not None:
        new["last_pull_origin_start"] = result["origin_clock_start"]


def _pull_summary(result):
    summary = dict(bytes=result.get("bytes", 0), files=result.get("files", 0),
                   seconds=round(float(result.get("seconds", 0)), 3))
    moved = _moved_seconds(result.get("trees"))
    if moved is not None:
        summary["moved_seconds"] = moved
    return summary


def _moved_seconds(trees):
    """The seconds a pull spent on what changed, its walks left out (the steps after ``list`` in each tree's
    ``phases``: what the window's final pull does too, its list of changes coming from its follower), or
    None when no tree said (a first pull, or one that walked without ``changed_since``)."""
    timed = [tree["phases"] for tree in trees or [] if isinstance(tree, dict) and isinstance(tree.get("phases"), dict)]
    if not timed:
        return None
    return round(sum(float(seconds) for phases in timed for step, seconds in phases.items() if step != "list"), 3)


def _databases_shape(result):
    """What the prediction needs of each database of a pass, in the pass's order: its tables, the tables it
    listed and the seconds of those listings, the rows it wrote on the target and the seconds of that, and its
    own seconds (see :func:`look_databases`)."""
    shape = []
    for entry in result.get("databases") or []:
        if not isinstance(entry, dict) or entry.get("seconds") is None:
            return None
        shape.append(dict(tables=int(entry.get("tables") or 0), listed=int(entry.get("tables_listed") or 0),
                          listing_seconds=round(float(entry.get("listing_seconds") or 0), 3),
                          rows=int(entry.get("rows_copied") or 0) + int(entry.get("rows_deleted") or 0),
                          apply_seconds=round(float(entry.get("apply_seconds") or 0), 3),
                          seconds=round(float(entry["seconds"]), 3)))
    return shape or None


def _is_stamp(value):
    try:
        parse_stamp(value)
    except (TypeError, ValueError):
        return False
    return True


def _span(result):
    """What a work module measured of its own run (``started_at``/``ended_at``, the target's clock)
    as the state keeps a step; None when it did not run (check mode) or did not say."""
    result = result or {}
    if result.get("started_at") and result.get("ended_at"):
        return dict(start=result["started_at"], end=result["ended_at"])
    return None


def _keep_span(entry, key, result):
    span = _span(result)
    if span:
        entry[key] = span


def verified_by(pull, verify=None):
    """How the final pull made sure no change escaped it, in words for the report."""
    if verify and not verify.get("skipped") and not verify.get("failed") and "trees" in verify:
        return "every file by checksum"
    trees = pull.get("trees") or []
    if not trees:
        return "no"
    if "incremental" in trees[0]:
        return ("the entries of the %d directories changed since the last pull compared on both sides, the %d other "
                "entries by checksum"
                % (sum(t.get("changed_dirs", 0) for t in trees), sum(t.get("recent", 0) for t in trees)))
    if "recent" in trees[0]:
        return "the %d files modified since the last pull, by checksum" % sum(t.get("recent", 0) for t in trees)
    return "every file by checksum (first pull)"


def copied_entries(itemized_lines):
    """Paths an rsync ``--itemize-changes`` run copied or deleted (not directories whose time alone changed)."""
    return [line.split(" ", 1)[1] if " " in line else line for line in copied(itemized_lines)]


def apply(state, phase, event, result=None, now=None):
    """The state after ``event`` of ``phase`` with the work module's ``result``. Checks the
    transition first (Refused), and never changes ``state`` itself."""
    result = result or {}
    new = json.loads(json.dumps(state))
    at = stamp(now)
    if event == "check":
        decide(state, phase)
        return new
    if (phase, event) == ("cutover", "serving"):
        if not is_live(state):
            raise Refused("the target cannot serve before the cutover made it live. Nothing was changed.")
        new.setdefault("cutover", {}).setdefault("serving", at)  # the first time: the end of the window
        return new
    if (phase, event) == ("cutover", "admin"):
        if not is_live(state):
            raise Refused("the admin actions cannot start before the cutover made the target live. Nothing was changed.")
        if not state.get("complete"):
            new["cutover"]["admin_start"] = at  # a resumed cutover runs them again: the last run's start
        return new
    if (phase, event) == ("cutover", "done"):
        if not is_live(state):
            raise Refused("the cutover cannot be complete before the target is live. Nothing was changed.")
        if state.get("complete"):
            return new
        new["complete"] = True
        new["cutover"].update(end=at, ip_mode=result.get("ip_mode"), admin=result.get("admin", {}),
                              smoke=result.get("smoke", {}))
        return new
    decide(state, phase)
    if event == "start":
        if phase == "cold_sync":
            new.setdefault("cold_sync", {}).setdefault("start", at)  # a rerun keeps the window's start
            predicted = _seconds_or_none(result.get("predicted_seconds"))
            if predicted is not None:  # what the operator was told, kept for the report
                new["cold_sync"].setdefault("predicted_seconds", predicted)
                if isinstance(result.get("prediction"), str) and result["prediction"]:
                    new["cold_sync"].setdefault("prediction", result["prediction"])
        elif phase == "cutover":
            new.setdefault("cutover", {}).setdefault("live", at)  # a resumed cutover keeps the first
        elif phase == "db_migrate":
            new["db_pass"] = dict(job=result.get("job"), start=at)
        elif phase == "config_copy":
            # Each run copies again: its own start, and the copy is not done until its end is recorded
            # (a previous run's end is dropped). A run that finds a start without an end knows the previous
            # copy was interrupted after its files may have landed (summary's config_copy_unfinished).
            new["config_copy"] = dict(start=at)
        else:
            raise Refused("%s has no start event (only cold_sync, db_migrate, config_copy and cutover)" % phase)
        return new
    if event == "stopped":
        if phase != "cold_sync" or "start" not in (state.get("cold_sync") or {}):
            raise Refused("only cold_sync records a stop, after its start. Nothing was changed.")
        new["cold_sync"].setdefault("stopped", at)  # the window's first stop, as its start
        return new
    if event == "databases":
        if phase != "hot_sync" or not state.get("hot_sync_runs"):
            raise Refused("only a hot sync records a database pass, after its pull. Nothing was changed.")
        if result.get("seconds") is not None:
            new["hot_sync_runs"][-1]["databases_seconds"] = round(float(result["seconds"]), 1)
        shape = _databases_shape(result)
        if shape:
            new["hot_sync_runs"][-1]["databases"] = shape
        return new
    if event != "done":
        raise Refused("unknown event %r (check, start, stopped, serving, databases, admin, done)" % event)
    if phase == "prereq":
        new.update(origin=result.get("origin"), addresses=result.get("addresses"), version=result.get("version"))
        if result.get("major") not in (None, ""):
            new["major"] = int(result["major"])
        new["prereq"] = dict(checked=at)
    elif phase == "hot_sync":
        _keep_pull_start(new, result)
        run = dict(end=at, **_pull_summary(result))
        if _span(result):
            run["start"] = result["started_at"]
        new.setdefault("hot_sync_runs", []).append(run)
        stop = result.get("stop") or {}
        if stop.get("bmctl_action") and stop.get("seconds") is not None:  # the target was running: a stop measured
            new["target_stop_seconds"] = round(float(stop["seconds"]), 1)
            if stop.get("last_start_seconds") is not None:  # and how long its last start took (systemd's)
                new["target_start_seconds"] = round(float(stop["last_start_seconds"]), 1)
    elif phase == "cold_sync":
        _keep_pull_start(new, result)
        entry = new.setdefault("cold_sync", {})
        entry.setdefault("start", at)
        if _is_stamp(result.get("stopped_at")):
            # the end of the origin's stop (a rerun keeps the first), on the origin's clock: never before
            # the start, on the target's (the stamps' fixed format sorts as the times do)
            entry.setdefault("stopped", max(result["stopped_at"], entry["start"]))
        entry.update(end=at, verified=verified_by(result, result.get("verify")),
                     trees=[{k: t[k] for k in TREE_KEYS if k in t} for t in result.get("trees") or []])
        for key in ("pull", "verify"):  # a rerun's own spans, not a previous run's
            entry.pop(key, None)
        _keep_span(entry, "pull", result)
        _keep_span(entry, "verify", result.get("verify"))
        if result.get("db_pass_job"):  # the database pass started beside this pull: db_migrate waits for it
            new["db_pass"] = dict(job=result["db_pass_job"], start=at)
        if result.get("config_job"):  # the configuration copy started beside it: config_copy waits for it
            new["config_job"] = dict(job=result["config_job"], start=at)
        else:  # an earlier window's copy is not this pull's: config_copy copies again
            new.pop("config_job", None)
    elif phase == "db_migrate":
        names = result.get("names") or []
        databases = [dict(d, name=n) for d, n in zip(result.get("databases") or [], names)]
        new["db_migrate"] = dict(end=at, seconds=result.get("seconds"), databases=databases)
        _keep_span(new["db_migrate"], "pass", result)
        new.pop("db_pass", None)
    elif phase == "config_copy":
        new["config_copy"] = dict(end=at, files=copied_entries(result.get("files") or []),
                                  queued_mail=len(moved_mail(result.get("queue") or [])))
        if "start" in (state.get("config_copy") or {}):
            new["config_copy"]["start"] = state["config_copy"]["start"]
        _keep_span(new["config_copy"], "copy", result)  # the module's own run (a copy beside the pull waited at its gate)
        new.pop("config_job", None)
    elif phase == "rollback":
        for key in WINDOW:
            new.pop(key, None)
        new["rollback"] = dict(end=at)
    else:
        raise Refused("%s has no done event here (the cutover's end is cutover/done)" % phase)
    return new


# The cold window's steps as the report's timeline draws them, in order: (name, label).
WINDOW_STEPS = (
    ("stop", "stop BlueMind and postfix"),
    ("pull", "final pull"),
    ("verify", "verification by checksum"),
    ("databases", "database pass"),
    ("config", "configuration copy"),
    ("start", "start on the target"),
    ("admin", "admin actions, smoke checks"),
)


def _seconds_between(start, end):
    return round((parse_stamp(end) - parse_stamp(start)).total_seconds(), 1)


def timeline(state):
    """What the report's timeline draws, from the recorded times only: each hot sync run, each step of
    the cold window with both ends recorded (``missing`` names the others, but a verification that did
    not run), and the downtime (from the start of the cold sync to the target serving; ``end`` None
    while it lasts)."""
    cold = state.get("cold_sync") or {}
    cutover = state.get("cutover") or {}
    config = state.get("config_copy") or {}
    pull, verify = cold.get("pull") or {}, cold.get("verify") or {}
    db_pass = (state.get("db_migrate") or {}).get("pass") or {}
    bounds = dict(
        stop=(cold.get("start"), cold.get("stopped")),
        pull=(pull.get("start"), pull.get("end")),
        verify=(verify.get("start"), verify.get("end")),
        databases=(db_pass.get("start"), db_pass.get("end")),
        config=(config["copy"]["start"], config["copy"]["end"]) if "copy" in config else (config.get("start"), config.get("end")),
        start=(cutover.get("live"), cutover.get("serving")),
        admin=(cutover.get("admin_start"), cutover.get("end")),
    )
    # A pull recorded with its span and no verification span: the window ran without one (cold_sync_verify).
    skipped = {"verify"} if pull and not verify else set()
    steps, missing = [], []
    for name, label in WINDOW_STEPS:
        start, end = bounds[name]
        if start and end and start <= end:  # a rerun under way has a new start, not yet its end
            steps.append(dict(name=name, label=label, start=start, end=end, seconds=_seconds_between(start, end)))
        elif name not in skipped:
            missing.append(name)
    runs = [dict(number=number, start=run.get("start"), end=run["end"], seconds=run.get("seconds", 0),
                 files=run.get("files", 0), bytes=run.get("bytes", 0))
            for number, run in enumerate(state.get("hot_sync_runs") or [], 1) if run.get("end")]
    downtime = None
    if cold.get("start"):
        end = cutover.get("serving")
        downtime = dict(start=cold["start"], end=end, seconds=_seconds_between(cold["start"], end) if end else None)
    return dict(hot_sync_runs=runs, steps=steps, missing=missing, downtime=downtime)


def _usable_look(look, shape):
    """The look's databases paired with the last hot pass's (the same order, see ``_databases_shape``), or
    None when the look failed, was skipped, or does not say enough for every database."""
    if not isinstance(look, dict) or look.get("failed") or look.get("skipped") or not shape:
        return None
    seen = look.get("databases") or []
    sample = look.get("sample_seconds") or 0
    if len(seen) != len(shape) or not sample or any(
            entry.get("tables") is None or entry.get("written_in_sample") is None for entry in seen):
        return None
    return list(zip(shape, seen))


def look_databases(pairs, sample_seconds, stop_seconds, catch_up):
    """``(catch_up_seconds, window_seconds)`` of the database passes from the last look at the origin.

    Each database costs what the last hot pass spent besides its listings and its writes on the target (its
    connections, snapshot, checks), plus its listing time per table for each table to list and its write
    time per row for each row to write. The catch-up before the stop (when ``catch_up``) moves the tables and
    rows written since the last pass (every table without a mark); the window's pass those written during the
    catch-up and the origin's stop, at the rate the look saw (tables written a second: an upper bound, the
    same table written twice is listed once; never more tables than the database has); without a catch-up,
    both. The databases move side by side: the slowest counts."""
    costs = []
    for measured, seen in pairs:
        per_table = measured["listing_seconds"] / measured["listed"] if measured["listed"] else 0.0
        per_row = measured.get("apply_seconds", 0.0) / measured["rows"] if measured.get("rows") else 0.0
        fixed = max(0.0, measured["seconds"] - measured["listing_seconds"] - measured.get("apply_seconds", 0.0))
        tables = int(seen["tables"])
        since = tables if seen.get("written_since_pass") is None else int(seen["written_since_pass"])
        rows_since = int(seen.get("rows_since_pass") or 0)
        rate = float(seen["written_in_sample"]) / float(sample_seconds)
        row_rate = float(seen.get("rows_in_sample") or 0) / float(sample_seconds)
        costs.append((fixed, per_table, per_row, tables, since, rows_since, rate, row_rate))
    catch_up_seconds = max(fixed + per_table * since + per_row * rows_since
                           for fixed, per_table, per_row, _t, since, rows_since, _r, _w in costs) if catch_up else 0.0
    exposure = catch_up_seconds + stop_seconds
    window = max(fixed + per_table * min(tables, (0 if catch_up else since) + rate * exposure)
                 + per_row * ((0 if catch_up else rows_since) + row_rate * exposure)
                 for fixed, per_table, per_row, tables, since, rows_since, rate, row_rate in costs)
    return round(catch_up_seconds, 1), round(window, 1)


def look_pull(runs, looked_at, exposure, followed):
    """The window's final pull from the last hot sync that was not the first, at the rate of change it saw: the
    seconds it spent on what changed (``moved_seconds``, its walk left out, when its trees said; else its whole
    seconds, an upper bound) times the seconds of change the window's pull moves over the seconds between the
    two last hot syncs' starts (the changes that hot sync moved). With a follower (``followed``), what changed
    before the stop moves while the origin serves: the window's pull moves the ``exposure`` seconds' changes
    (the catch-up and the stop); without, those since that hot sync began (to ``looked_at``, then
    ``exposure``). None when the hot syncs' starts are not known."""
    last, previous = runs[-1], runs[-2]
    if not (_is_stamp(last.get("start")) and _is_stamp(previous.get("start")) and _is_stamp(looked_at)):
        return None
    between = _seconds_between(previous["start"], last["start"])
    if between <= 0:
        return None
    moved = last["seconds"] if last.get("moved_seconds") is None else last["moved_seconds"]
    since = exposure if followed else _seconds_between(last["start"], looked_at) + exposure
    return round(float(moved) * max(since, 0.0) / between, 1)


def predict_window(state, fixed_seconds, beside=True, start_seconds=60.0, look=None, catch_up=True, followed=True):
    """The cold window (origin stopped -> target serving) predicted from the hot phase's history and, when
    given, a last quick look at the origin (``look``: M(bluemind_db_look)'s result).

    The parts: the stop (the target's own stop at a hot sync: the same product and units as the
    origin's), the final pull and the database pass (side by side when ``beside``), BlueMind's start on
    the target (how long its last start took, by systemd, as the hot sync that stopped it read it; else
    ``start_seconds``), and ``fixed_seconds`` for the steps around them that no hot phase measures.
    With a usable look, the database pass is what the origin writes during the catch-up before the stop
    (``catch_up``) at the rate the look saw, at the last hot pass's cost per table (:func:`look_databases`),
    and the pull what changes meanwhile (``followed``: a follower moved the rest before the stop) or since the
    last hot sync began, at that hot sync's rate (:func:`look_pull`). Without one,
    each is as long as the last hot sync that was not the first (the first copies everything), an upper
    bound: a hot sync walks every tree and lists every written table, the window does neither.
    Returns ``seconds`` (None while a part is unknown), ``parts`` (``step``, ``seconds``, ``basis`` each),
    ``missing`` (why a part is unknown and what gives it), ``text``, one line for the operator,
    ``catch_up_seconds`` (the catch-up the look predicts before the stop, the origin still serving; None
    without a look) and ``quick_pull``: whether the final pull is predicted to end well before its first
    progress report would show (under half of it), so that it may run without the progress path."""
    runs = [run for run in state.get("hot_sync_runs") or [] if run.get("seconds") is not None]
    later = runs[1:]
    parts, missing, pull, catch_up_seconds = [], [], None, None
    stop = state.get("target_stop_seconds")
    if stop is None:
        missing.append("the stop (no hot sync stopped a running target yet)")
    else:
        parts.append(dict(step="stop", seconds=float(stop), basis="the target's stop at a hot sync"))
    if not later:
        missing.append("the final pull and the database catch-up (run hot sync again: the first one copies "
                       "everything, the next ones what changed between two runs, as the window will)")
    else:
        last = later[-1]
        pull = float(last["seconds"])  # the final pull's prediction
        databases = last.get("databases_seconds")
        basis = "hot sync %d, %s" % (len(runs), last.get("end", "?"))
        pairs = _usable_look(look, last.get("databases"))
        if pairs is not None and stop is not None:
            catch_up_seconds, databases = look_databases(pairs, look["sample_seconds"], float(stop), catch_up)
            looked_pull = look_pull(runs, look.get("looked_at"), catch_up_seconds + float(stop), followed)
            if looked_pull is not None:
                pull = looked_pull
            basis = "the look at the origin %s: %s; catch-up before the stop %.1f s; %s" % (
                look.get("looked_at", "?"), ", ".join(
                    "%s %s tables written since the last pass, %.1f a second now" % (
                        seen.get("name", "?"), "all" if seen.get("written_since_pass") is None else seen["written_since_pass"],
                        float(seen["written_in_sample"]) / float(look["sample_seconds"]))
                    for _measured, seen in pairs), catch_up_seconds,
                "pull scaled from hot sync %d's changes" % len(runs) if looked_pull is not None
                else "pull as hot sync %d" % len(runs))
        if databases is None:
            parts.append(dict(step="pull", seconds=pull, basis=basis + " (no database pass measured)"))
        elif beside:
            parts.append(dict(step="pull and databases side by side", seconds=max(pull, float(databases)),
                              basis="%s: pull %.1f s, databases %.1f s" % (basis, pull, float(databases))))
        else:
            parts.append(dict(step="pull, then databases", seconds=pull + float(databases),
                              basis="%s: pull %.1f s, databases %.1f s" % (basis, pull, float(databases))))
    start = state.get("target_start_seconds")
    if start is not None:
        parts.append(dict(step="start", seconds=float(start), basis="the target's last start of BlueMind (systemd)"))
    else:
        parts.append(dict(step="start", seconds=float(start_seconds),
                          basis="bluemind_window_start_seconds (no hot sync stopped a target that systemd saw start)"))
    parts.append(dict(step="records and checks", seconds=float(fixed_seconds),
                      basis="bluemind_window_fixed_seconds (not measured before the window)"))
    seconds = None if missing else round(sum(part["seconds"] for part in parts), 1)
    if seconds is None:
        text = "the downtime cannot be predicted yet: unknown %s" % "; ".join(missing)
    else:
        text = "predicted downtime about %.0f s: %s" % (seconds, ", ".join(
            "%s %.1f s" % (part["step"], part["seconds"]) for part in parts))
        if catch_up_seconds:
            text += " (before the stop, the origin still serving: a database catch-up of about %.0f s)" % catch_up_seconds
    quick_pull = pull is not None and pull < FIRST_REPORT_SECONDS / 2.0
    return dict(seconds=seconds, parts=parts, missing=missing, text=text, quick_pull=quick_pull,
                catch_up_seconds=catch_up_seconds)
