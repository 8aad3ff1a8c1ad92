"""The migration's state: every transition, the refused ones included, and its atomic file."""
import datetime
import json
import os

import pytest

from ansible_collections.bluemind.migration.plugins.module_utils import state as st

T0 = datetime.datetime(2026, 11, 29, 18, 0, 0, tzinfo=datetime.timezone.utc)


def at(seconds):
    return T0 + datetime.timedelta(seconds=seconds)


PULL = {"origin_clock_start": 1700000000.5, "bytes": 10, "files": 3, "seconds": 1.25,
        "trees": [{"path": "/var/spool/cyrus", "bytes": 10, "files": 3, "seconds": 1.2, "changes": 2,
                   "deleted": 1, "recent": 4, "incremental": True, "changed_dirs": 5, "stats": {"x": 1}}]}


def walk(*events):
    """The state after ``events``, each ``(phase, event[, result])``, one second apart."""
    state = {}
    for i, (phase, event, *result) in enumerate(events):
        state = st.apply(state, phase, event, result[0] if result else None, now=at(i))
    return state


PREREQ = ("prereq", "done", {"origin": "o", "addresses": {"origin": ["10.0.0.1"], "target": "10.0.0.2"},
                             "version": "4.9.3884"})
WINDOW = [PREREQ, ("hot_sync", "done", PULL), ("cold_sync", "start"), ("cold_sync", "done", PULL),
          ("db_migrate", "done", {"seconds": 2, "databases": [{"rows": 5}, {"rows": 6}], "names": ["bj", "bj-data"]}),
          ("config_copy", "done", {"files": [".d..t...... etc/", ">f+++++++++ etc/bm/bm.ini"],
                                   "queue": [">f+++++++++ deferred/1/ABC", "cd+++++++++ deferred/1/"]})]
LIVE = WINDOW + [("cutover", "start")]


def test_a_whole_migration_records_what_the_report_needs():
    end = ("cutover", "done", {"ip_mode": "none", "admin": {"a": 1}, "smoke": {"smtp": "ok"}})
    state = walk(*LIVE, ("cutover", "serving"), end)
    assert state["origin"] == "o" and state["version"] == "4.9.3884" and state["prereq"]["checked"]
    assert state["hot_sync_runs"] == [{"end": st.stamp(at(1)), "bytes": 10, "files": 3, "seconds": 1.25}]
    assert state["cold_sync"]["trees"] == [{"path": "/var/spool/cyrus", "bytes": 10, "files": 3, "seconds": 1.2,
                                            "changes": 2, "deleted": 1}]
    assert state["cold_sync"]["verified"].startswith("the entries of the 5 directories changed since the last pull compared")
    assert [d["name"] for d in state["db_migrate"]["databases"]] == ["bj", "bj-data"]
    assert state["config_copy"] == {"end": st.stamp(at(5)), "files": ["etc/bm/bm.ini"], "queued_mail": 1}
    assert state["complete"] is True and state["cutover"]["smoke"] == {"smtp": "ok"}
    summary = st.summary(state)
    assert summary["downtime_seconds"] == 5.0  # cold_sync start at 2 s, serving at 7 s
    assert summary["left"] == [] and summary["live"] and summary["complete"]


def test_the_cold_window_keeps_its_first_start_on_a_rerun():
    state = walk(PREREQ, ("cold_sync", "start"), ("cold_sync", "start"))
    assert state["cold_sync"]["start"] == st.stamp(at(1))
    assert st.decide(state, "cold_sync")["message"].startswith("cold_sync runs again")


def test_since_is_the_previous_pull_start_minus_a_margin():
    assert st.summary({})["first_pull"] is True
    summary = st.summary(walk(PREREQ, ("hot_sync", "done", PULL)))
    assert summary["first_pull"] is False and summary["since"] == PULL["origin_clock_start"] - st.SINCE_MARGIN


@pytest.mark.parametrize("phase", ["hot_sync", "cold_sync", "config_copy"])
def test_a_phase_needs_the_prerequisites(phase):
    with pytest.raises(st.Refused, match="needs prereq first"):
        st.apply({}, phase, "check")


def test_the_database_pass_needs_the_downtime():
    with pytest.raises(st.Refused, match=r"cold_sync \(its start"):
        st.decide(walk(PREREQ, ("hot_sync", "done", PULL)), "db_migrate")
    assert st.decide(walk(PREREQ, ("cold_sync", "start")), "db_migrate")["action"] == "run"


def test_the_cutover_needs_the_whole_window():
    with pytest.raises(st.Refused, match="cutover needs db_migrate, config_copy first"):
        st.apply(walk(*WINDOW[:4]), "cutover", "start")


@pytest.mark.parametrize("phase", ["prereq", "hot_sync", "cold_sync", "db_migrate", "config_copy", "rollback"])
def test_nothing_moves_data_into_a_live_target(phase):
    live = walk(*LIVE)
    with pytest.raises(st.Refused, match="has been live since " + st.stamp(at(6))) as refused:
        st.apply(live, phase, "check")
    assert "Nothing was changed" in str(refused.value)


@pytest.mark.parametrize("key", ["live", "serving"])
def test_a_state_from_before_live_existed_is_live_too(key):
    assert st.is_live({"cutover": {key: "2026-01-01T00:00:00.000000Z"}})
    assert st.is_live({"complete": True}) and not st.is_live({"cutover": {}})


def test_a_live_target_resumes_its_cutover_and_keeps_its_times():
    live = walk(*LIVE, ("cutover", "serving"))
    assert st.decide(live, "cutover")["action"] == "resume"
    again = st.apply(st.apply(live, "cutover", "start", now=at(60)), "cutover", "serving", now=at(61))
    assert again["cutover"] == live["cutover"]


def test_a_complete_migration_refuses_every_phase_and_the_cutover_has_nothing_to_do():
    done = walk(*LIVE, ("cutover", "serving"), ("cutover", "done", {}))
    assert st.decide(done, "cutover")["action"] == "complete"
    assert st.apply(done, "cutover", "done", now=at(99)) == done
    with pytest.raises(st.Refused, match="is complete"):
        st.decide(done, "hot_sync")


def test_serving_or_complete_before_live_is_refused():
    with pytest.raises(st.Refused, match="before the cutover made it live"):
        st.apply(walk(*WINDOW), "cutover", "serving")
    with pytest.raises(st.Refused, match="before the target is live"):
        st.apply(walk(*WINDOW), "cutover", "done")


def test_a_rollback_forgets_the_window_and_the_last_pull():
    state = walk(*WINDOW, ("db_migrate", "start", {"job": "j1"}), ("rollback", "done"))
    assert not set(st.WINDOW) & set(state)
    assert state["rollback"]["end"] and state["hot_sync_runs"] and state["prereq"]
    assert st.summary(state)["first_pull"] is True


def test_the_background_pass_keeps_its_job_until_the_database_phase_ends():
    state = walk(PREREQ, ("cold_sync", "start"), ("db_migrate", "start", {"job": "j1"}))
    assert st.summary(state)["db_pass_job"] == "j1"
    state = st.apply(state, "db_migrate", "done", {"seconds": 1, "databases": [], "names": []})
    assert st.summary(state)["db_pass_job"] is None


def test_the_final_pulls_record_keeps_the_job_of_the_pass_started_beside_it():
    state = walk(PREREQ, ("cold_sync", "start"), ("cold_sync", "done", {"db_pass_job": "j2"}))
    assert st.summary(state)["db_pass_job"] == "j2"
    state = st.apply(state, "db_migrate", "done", {"seconds": 1, "databases": [], "names": []})
    assert st.summary(state)["db_pass_job"] is None
    # a pull without a pass beside it (cold_sync_db_beside off) leaves no job to wait for
    assert st.summary(walk(PREREQ, ("cold_sync", "start"), ("cold_sync", "done", {"db_pass_job": None})))["db_pass_job"] is None


def test_the_final_pulls_record_keeps_the_job_of_the_copy_started_beside_it():
    state = walk(PREREQ, ("config_copy", "start"), ("cold_sync", "start"), ("cold_sync", "done", {"config_job": "c1"}))
    assert st.summary(state)["config_copy_job"] == "c1" and st.summary(state)["config_copy_unfinished"] is True
    done = st.apply(state, "config_copy", "done", {"files": [], "queue": [], "started_at": st.stamp(at(3.2)),
                                                   "ended_at": st.stamp(at(3.9))}, now=at(5))
    assert st.summary(done)["config_copy_job"] is None and st.summary(done)["config_copy_unfinished"] is False
    # its start recorded before the window stays; the timeline draws the copy's own run (from its gate)
    assert done["config_copy"]["start"] == st.stamp(at(1))
    assert done["config_copy"]["copy"] == {"start": st.stamp(at(3.2)), "end": st.stamp(at(3.9))}
    config = [s for s in st.timeline(done)["steps"] if s["name"] == "config"]
    assert [(s["start"], s["seconds"]) for s in config] == [(st.stamp(at(3.2)), 0.7)]
    # a rollback forgets a job left behind
    assert "config_job" not in st.apply(state, "rollback", "done")


def test_an_interrupted_config_copy_is_known_to_the_next_run():
    state = walk(*WINDOW)
    assert st.summary(state)["config_copy_unfinished"] is False
    started = st.apply(state, "config_copy", "start", now=at(10))
    # a copy under way is not done: the cutover waits for its end, and the next run knows it was cut
    assert started["config_copy"] == {"start": st.stamp(at(10))}
    assert st.summary(started)["config_copy_unfinished"] is True
    with pytest.raises(st.Refused, match="cutover needs config_copy first"):
        st.apply(started, "cutover", "start")
    again = st.apply(started, "config_copy", "start", now=at(11))
    assert st.summary(again)["config_copy_unfinished"] is True
    done = st.apply(again, "config_copy", "done", {"files": [], "queue": []}, now=at(12))
    # its start (the last run's, for the timeline) stays beside its end
    assert done["config_copy"] == {"start": st.stamp(at(11)), "end": st.stamp(at(12)), "files": [], "queued_mail": 0}
    assert st.summary(done)["config_copy_unfinished"] is False and st.decide(done, "cutover")["action"] == "run"
    # a copy run again after a finished one is unfinished until its own end: the old end does not count
    redo = st.apply(done, "config_copy", "start", now=at(13))
    assert redo["config_copy"] == {"start": st.stamp(at(13))} and st.summary(redo)["config_copy_unfinished"] is True
    assert "config_copy" not in st.apply(started, "rollback", "done")


def test_unknown_phase_and_event_are_refused():
    with pytest.raises(st.Refused, match="unknown phase"):
        st.decide({}, "upgrade")
    with pytest.raises(st.Refused, match="unknown event"):
        st.apply(walk(PREREQ), "hot_sync", "begin")
    with pytest.raises(st.Refused, match="has no start event"):
        st.apply(walk(PREREQ), "hot_sync", "start")


def test_apply_never_changes_its_input():
    state = walk(*WINDOW)
    copy = json.loads(json.dumps(state))
    st.apply(state, "cutover", "start")
    assert state == copy


@pytest.mark.parametrize("verify, pull, words", [
    ({"trees": []}, PULL, "every file by checksum"),
    ({"skipped": True}, {"trees": [{"recent": 3}]}, "the 3 files modified since the last pull, by checksum"),
    (None, {"trees": [{"path": "/x"}]}, "every file by checksum (first pull)"),
    (None, {"trees": []}, "no"),
])
def test_verified_by_says_how_the_final_pull_was_compared(verify, pull, words):
    assert st.verified_by(pull, verify) == words


def test_save_is_atomic_and_private(tmp_path):
    path = tmp_path / "sub" / "state.json"
    st.save(str(path), {"a": 1})
    assert st.load(str(path)) == {"a": 1}
    assert oct(path.stat().st_mode & 0o777) == "0o600" and oct(path.parent.stat().st_mode & 0o777) == "0o700"
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]  # no temporary file left


def test_a_failed_write_leaves_the_previous_state(tmp_path, monkeypatch):
    path = tmp_path / "state.json"
    st.save(str(path), {"a": 1})

    def full(*_args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(st.StateError, match="disk full"):
        st.save(str(path), {"a": 2})
    assert st.load(str(path)) == {"a": 1} and [p.name for p in tmp_path.iterdir()] == ["state.json"]


@pytest.mark.parametrize("content", ["{not json", "[1, 2]"])
def test_an_unreadable_state_says_what_to_do(tmp_path, content):
    path = tmp_path / "state.json"
    path.write_text(content)
    with pytest.raises(st.StateError, match="reports/<target>.json"):
        st.load(str(path))


def span(start, end):
    """A work module's own span, as bluemind_sync and bluemind_db_transfer return it."""
    return {"started_at": st.stamp(at(start)), "ended_at": st.stamp(at(end))}


# A window with every step recorded (the walk stamps event i at i seconds; the spans are the modules').
TIMED = [PREREQ, ("hot_sync", "done", dict(PULL, **span(0.5, 0.75))),
         ("cold_sync", "start"), ("cold_sync", "stopped"),
         ("db_migrate", "start", {"job": "j1"}),
         ("cold_sync", "done", dict(PULL, verify=dict(trees=[], **span(4.25, 4.5)), **span(3.5, 4.25))),
         ("db_migrate", "done", dict(span(3.75, 5.5), seconds=1.75, databases=[], names=[])),
         ("config_copy", "start"), ("config_copy", "done", {}),
         ("cutover", "start"), ("cutover", "serving"), ("cutover", "admin"), ("cutover", "done", {})]


def test_the_timeline_has_each_window_step_in_order_from_its_records():
    timeline = st.timeline(walk(*TIMED))
    steps = [(s["name"], s["start"], s["seconds"]) for s in timeline["steps"]]
    assert steps == [("stop", st.stamp(at(2)), 1.0), ("pull", st.stamp(at(3.5)), 0.8),
                     ("verify", st.stamp(at(4.25)), 0.2), ("databases", st.stamp(at(3.75)), 1.8),
                     ("config", st.stamp(at(7)), 1.0), ("start", st.stamp(at(9)), 1.0),
                     ("admin", st.stamp(at(11)), 1.0)]
    assert timeline["missing"] == []
    # from the start of the cold sync (2 s) to the target serving (10 s)
    assert timeline["downtime"] == {"start": st.stamp(at(2)), "end": st.stamp(at(10)), "seconds": 8.0}
    assert timeline["hot_sync_runs"] == [{"number": 1, "start": st.stamp(at(0.5)), "end": st.stamp(at(1)),
                                          "seconds": 1.25, "files": 3, "bytes": 10}]


def test_a_timeline_draws_only_what_was_recorded():
    # a run stopped after the hot syncs: runs, no window
    assert st.timeline(walk(PREREQ, ("hot_sync", "done", PULL))) == {
        "hot_sync_runs": [{"number": 1, "start": None, "end": st.stamp(at(1)), "seconds": 1.25, "files": 3,
                           "bytes": 10}],
        "steps": [], "missing": list(dict(st.WINDOW_STEPS)), "downtime": None}
    # a window under way: the downtime has a start and no end yet
    open_window = st.timeline(walk(PREREQ, ("cold_sync", "start"), ("cold_sync", "stopped")))
    assert [s["name"] for s in open_window["steps"]] == ["stop"]
    assert open_window["downtime"] == {"start": st.stamp(at(1)), "end": None, "seconds": None}
    assert st.timeline({}) == {"hot_sync_runs": [], "steps": [], "missing": list(dict(st.WINDOW_STEPS)),
                               "downtime": None}


def test_a_rerun_keeps_the_first_stop_and_draws_its_own_copy_only_once_done():
    state = walk(*TIMED[:9])
    rerun = st.apply(st.apply(state, "cold_sync", "stopped", now=at(50)), "config_copy", "start", now=at(60))
    assert rerun["cold_sync"]["stopped"] == state["cold_sync"]["stopped"]
    # the new copy has a start after the previous end: not drawn until its end is recorded
    assert "config" in st.timeline(rerun)["missing"]
    again = st.apply(rerun, "config_copy", "done", {}, now=at(61))
    assert [(s["name"], s["seconds"]) for s in st.timeline(again)["steps"] if s["name"] == "config"] == [("config", 1.0)]


def test_a_window_without_verification_does_not_call_it_missing():
    no_verify = [(*e[:2], dict(e[2], verify={})) if e[:2] == ("cold_sync", "done") else e for e in TIMED]
    timeline = st.timeline(walk(*no_verify))
    assert "verify" not in [s["name"] for s in timeline["steps"]] and timeline["missing"] == []


def test_a_pull_in_check_mode_records_no_span():
    state = walk(PREREQ, ("cold_sync", "start"), ("cold_sync", "done", dict(PULL, verify={})))
    assert "pull" not in state["cold_sync"] and "verify" not in state["cold_sync"]


def test_stop_and_admin_records_need_their_phase_under_way():
    with pytest.raises(st.Refused, match="only cold_sync records a stop, after its start"):
        st.apply(walk(PREREQ), "cold_sync", "stopped")
    with pytest.raises(st.Refused, match="only cold_sync records a stop"):
        st.apply(walk(PREREQ, ("cold_sync", "start")), "config_copy", "stopped")
    with pytest.raises(st.Refused, match="admin actions cannot start before"):
        st.apply(walk(*WINDOW), "cutover", "admin")
    done = walk(*TIMED)
    assert st.apply(done, "cutover", "admin", now=at(99)) == done


STOPPED_TARGET = {"bmctl_action": "stop", "seconds": 3.04}
ALREADY_STOPPED = {"bmctl_action": None, "seconds": 0.2}


def hot(seconds, stop=None):
    """A hot sync's record; ``stop`` is the result of the target's stop (by default: it was stopped already)."""
    return ("hot_sync", "done", dict(PULL, seconds=seconds, stop=ALREADY_STOPPED if stop is None else stop))


def test_a_hot_sync_keeps_the_target_s_stop_only_when_it_stopped_a_running_target():
    state = walk(PREREQ, hot(30.0, STOPPED_TARGET), hot(2.0))
    assert state["target_stop_seconds"] == 3.0  # the second found it stopped: its 0.2 s is no stop
    assert walk(PREREQ, hot(30.0, {})).get("target_stop_seconds") is None  # check mode: no stop ran


def test_the_hot_sync_s_database_pass_goes_to_its_run_and_only_after_a_pull():
    state = walk(PREREQ, hot(30.0, STOPPED_TARGET), ("hot_sync", "databases", {"seconds": 8.26}),
                 hot(2.0), ("hot_sync", "databases", {"seconds": 1.04}))
    assert [run.get("databases_seconds") for run in state["hot_sync_runs"]] == [8.3, 1.0]
    with pytest.raises(st.Refused, match="only a hot sync records a database pass, after its pull"):
        walk(PREREQ, ("hot_sync", "databases", {"seconds": 1}))
    with pytest.raises(st.Refused, match="only a hot sync records a database pass"):
        walk(PREREQ, hot(1.0), ("cold_sync", "databases", {"seconds": 1}))


def test_the_window_is_predicted_from_the_last_hot_sync_that_was_not_the_first():
    state = walk(PREREQ, hot(30.0, STOPPED_TARGET), ("hot_sync", "databases", {"seconds": 20.0}),
                 hot(4.0), ("hot_sync", "databases", {"seconds": 6.0}),
                 hot(2.5), ("hot_sync", "databases", {"seconds": 1.5}))
    beside = st.predict_window(state, 5)
    # stop 3.0 + max(pull 2.5, databases 1.5) + the start (not measured: 60 by default) + 5 for the rest
    assert beside["seconds"] == 70.5 and beside["missing"] == []
    assert [(p["step"], p["seconds"]) for p in beside["parts"]] == [
        ("stop", 3.0), ("pull and databases side by side", 2.5), ("start", 60.0), ("records and checks", 5.0)]
    assert beside["parts"][1]["basis"].startswith("hot sync 3, ") and "pull 2.5 s, databases 1.5 s" in beside["parts"][1]["basis"]
    assert beside["parts"][2]["basis"].startswith("bluemind_window_start_seconds")
    assert beside["text"] == ("predicted downtime about 70 s: stop 3.0 s, pull and databases side by side 2.5 s, "
                              "start 60.0 s, records and checks 5.0 s")
    assert st.predict_window(state, 10, beside=False, start_seconds=30)["seconds"] == 3.0 + 2.5 + 1.5 + 30 + 10
    assert beside["quick_pull"] is True  # 2.5 s: no progress report would show


def test_the_start_in_the_window_is_predicted_from_the_target_s_last_start_that_a_hot_sync_read():
    """A hot sync that stops a running target keeps how long its last start took (systemd's, from bmctl):
    the prediction's start is that, not the variable's guess; a later hot sync that found it stopped
    keeps it."""
    started = dict(STOPPED_TARGET, last_start_seconds=41.74)
    state = walk(PREREQ, hot(30.0, started), ("hot_sync", "databases", {"seconds": 9.0}),
                 hot(2.5), ("hot_sync", "databases", {"seconds": 1.5}))
    assert state["target_start_seconds"] == 41.7
    predicted = st.predict_window(state, 5, start_seconds=60)
    assert predicted["seconds"] == 3.0 + 2.5 + 41.7 + 5
    assert predicted["parts"][2] == dict(step="start", seconds=41.7, basis="the target's last start of BlueMind (systemd)")
    # a target already stopped (its start unknown to systemd since) measures nothing
    assert walk(PREREQ, hot(30.0, dict(ALREADY_STOPPED, last_start_seconds=9.0))).get("target_start_seconds") is None


def test_only_a_pull_predicted_well_under_the_first_progress_report_is_quick():
    def quick_pull(*pulls):
        return st.predict_window(walk(PREREQ, *[hot(seconds, STOPPED_TARGET) for seconds in pulls]), 60)["quick_pull"]
    assert quick_pull(30.0, 4.9) is True
    assert quick_pull(30.0, 5.0) is False  # half of the first report's 10 s: a slower window would show one
    assert quick_pull(30.0, 2.0, 40.0) is False  # the last one counts: the delta grows with the time between syncs
    assert quick_pull(2.0) is False  # a first hot sync says nothing of the window's pull
    assert st.predict_window({}, 60)["quick_pull"] is False


def test_no_prediction_before_a_second_hot_sync_nor_without_a_measured_stop():
    first = st.predict_window(walk(PREREQ, hot(30.0, STOPPED_TARGET)), 60)
    assert first["seconds"] is None
    assert first["text"].startswith("the downtime cannot be predicted yet: unknown the final pull and the database "
                                    "catch-up (run hot sync again")
    no_stop = st.predict_window(walk(PREREQ, hot(30.0), hot(2.0)), 60)
    assert no_stop["seconds"] is None and no_stop["missing"] == ["the stop (no hot sync stopped a running target yet)"]
    assert st.predict_window({}, 60)["seconds"] is None
    # a pull without a database pass (hot_sync_databases empty) predicts the pull alone
    pull_only = st.predict_window(walk(PREREQ, hot(30.0, STOPPED_TARGET), hot(2.0)), 5)
    assert pull_only["seconds"] == 3.0 + 2.0 + 60 + 5


def test_the_window_s_start_keeps_the_prediction_it_was_opened_with():
    state = walk(PREREQ, hot(1.0), ("cold_sync", "start", {"predicted_seconds": 65.5, "prediction": "about 66 s: stop 1.0 s"}),
                 ("cold_sync", "start", {"predicted_seconds": 99.0, "prediction": "about 99 s"}))
    assert state["cold_sync"]["predicted_seconds"] == 65.5
    assert state["cold_sync"]["prediction"] == "about 66 s: stop 1.0 s"  # its parts, for the report and the bench
    assert "predicted_seconds" not in walk(PREREQ, hot(1.0), ("cold_sync", "start"))["cold_sync"]


@pytest.mark.parametrize("handed", ["65.5", "None", "", None])
def test_a_prediction_handed_over_as_text_is_a_number_or_nothing(handed):
    state = walk(PREREQ, hot(1.0), ("cold_sync", "start", {"predicted_seconds": handed}))
    assert state["cold_sync"].get("predicted_seconds") == (65.5 if handed == "65.5" else None)


def test_prereq_keeps_the_major_it_planned_for():
    assert "major" not in walk(PREREQ)  # recorded by an older run: none
    five = ("prereq", "done", dict(PREREQ[2], version="5.7.3268", major="5"))
    assert walk(five)["major"] == 5
    assert "major" not in walk(("prereq", "done", dict(PREREQ[2], major="")))


def hot_at(seconds, start, stop=None, moved=None):
    """A hot sync's record whose pull began ``start`` seconds after the epoch of ``at`` and spent ``moved``
    seconds on what changed (its trees' steps after the walk)."""
    trees = [] if moved is None else [dict(path="/var/spool/cyrus", phases={"list": 50.0, "directories": moved / 2,
                                                                            "content": moved / 2, "relink": 0.0})]
    return ("hot_sync", "done", dict(PULL, seconds=seconds, stop=ALREADY_STOPPED if stop is None else stop,
                                     started_at=st.stamp(at(start)), ended_at=st.stamp(at(start + 1)), trees=trees))


def hot_pass(bj_seconds, data_seconds, data_listed, data_listing):
    """A hot sync's database pass as bluemind_db_transfer returns it (bj listed nothing)."""
    return ("hot_sync", "databases", {"seconds": max(bj_seconds, data_seconds), "databases": [
        {"seconds": bj_seconds, "tables": 7, "tables_listed": 0, "listing_seconds": 0.0},
        {"seconds": data_seconds, "tables": 289, "tables_listed": data_listed, "listing_seconds": data_listing}]})


def look(since_data, in_sample_data, sample=2.0, looked_at=None, since_bj=0):
    return {"changed": False, "sample_seconds": sample, "looked_at": looked_at or st.stamp(at(400)), "databases": [
        {"name": "bj", "tables": 7, "written_since_pass": since_bj, "written_in_sample": 0},
        {"name": "bj-data", "tables": 289, "written_since_pass": since_data, "written_in_sample": in_sample_data}]}


def test_a_hot_sync_keeps_what_its_pull_spent_on_changes_and_each_database_s_shape():
    state = walk(PREREQ, hot_at(60.0, 0, STOPPED_TARGET), hot_at(55.0, 100, moved=4.0), hot_pass(1.0, 9.0, 280, 6.0))
    first, second = state["hot_sync_runs"]
    assert "moved_seconds" not in first  # a first pull walks: nothing of it is a window's work
    assert second["moved_seconds"] == 4.0 and second["start"] == st.stamp(at(100))
    assert second["databases"] == [dict(tables=7, listed=0, listing_seconds=0.0, rows=0, apply_seconds=0.0, seconds=1.0),
                                   dict(tables=289, listed=280, listing_seconds=6.0, rows=0, apply_seconds=0.0, seconds=9.0)]
    assert second["databases_seconds"] == 9.0


def test_the_look_at_the_origin_predicts_the_catch_up_and_the_window_from_the_rate_it_saw():
    """bj-data: 3 s of its hot pass besides listings, 6 s for 300 listed tables (20 ms each). The look: 100
    tables written since the last pass, 10 in its 2 s (5 a second). The catch-up lists the 100: 3 + 2 = 5 s;
    the window's pass lists what 5 s of catch-up and the 3 s stop write at 5 a second, 40 tables: 3 + 0.8 s.
    The pull: hot sync 2 spent 4 s on the changes of the 100 s since hot sync 1 began; the window's pull
    moves the 8 s of changes after the follower's: 0.32 s. Side by side: 3.8 s."""
    state = walk(PREREQ, hot_at(60.0, 0, STOPPED_TARGET), hot_at(55.0, 100, moved=4.0), hot_pass(1.0, 9.0, 300, 6.0))
    predicted = st.predict_window(state, 5, start_seconds=20, look=look(100, 10))
    assert predicted["catch_up_seconds"] == 5.0
    assert [(p["step"], p["seconds"]) for p in predicted["parts"]] == [
        ("stop", 3.0), ("pull and databases side by side", 3.8), ("start", 20.0), ("records and checks", 5.0)]
    assert predicted["seconds"] == 31.8
    basis = predicted["parts"][1]["basis"]
    assert "bj-data 100 tables written since the last pass, 5.0 a second now" in basis and "pull 0.3 s, databases 3.8 s" in basis
    assert predicted["text"].endswith("(before the stop, the origin still serving: a database catch-up of about 5 s)")
    # without the history's look: the last hot sync's 55 s pull bounds the window
    assert st.predict_window(state, 5, start_seconds=20)["parts"][1]["seconds"] == 55.0
    # the window's pass never lists more tables than the database has (BlueMind writing everywhere)
    busy = st.predict_window(state, 5, start_seconds=20, look=look(100, 2000))
    assert busy["parts"][1]["seconds"] == round(3.0 + 0.02 * 289, 1)


def test_without_catch_up_or_follower_the_window_moves_all_that_changed_since_the_last_pass():
    state = walk(PREREQ, hot_at(60.0, 0, STOPPED_TARGET), hot_at(55.0, 100, moved=4.0), hot_pass(1.0, 9.0, 300, 6.0))
    # no catch-up: the window's pass lists the 100 written since the pass and 15 more during the stop
    no_catch_up = st.predict_window(state, 5, look=look(100, 10), catch_up=False, followed=False)
    assert no_catch_up["catch_up_seconds"] == 0.0
    # no follower: the pull moves the changes since hot sync 2 began (at 100 s, looked at 400 s, then the stop)
    assert "pull 12.1 s, databases 5.3 s" in no_catch_up["parts"][1]["basis"]
    assert no_catch_up["parts"][1]["seconds"] == 12.1
    serial = st.predict_window(state, 5, beside=False, look=look(100, 10), catch_up=False, followed=False)
    assert serial["parts"][1]["seconds"] == 17.4
    # a pass with no mark of the origin: every table was written since, as far as the prediction knows
    unknown = st.predict_window(state, 5, look=look(None, 10))
    assert unknown["catch_up_seconds"] == round(3.0 + 0.02 * 289, 1)


def test_a_look_that_failed_or_says_too_little_leaves_the_prediction_to_the_history():
    state = walk(PREREQ, hot_at(60.0, 0, STOPPED_TARGET), hot_at(55.0, 100, moved=4.0), hot_pass(1.0, 9.0, 300, 6.0))
    history = st.predict_window(state, 5)
    for bad in ({"failed": True, "msg": "ssh"}, {"skipped": True}, dict(look(100, 10), sample_seconds=0),
                dict(look(100, 10), databases=look(100, 10)["databases"][:1]),
                dict(look(100, 10), databases=[dict(entry, written_in_sample=None) for entry in look(1, 1)["databases"]])):
        predicted = st.predict_window(state, 5, look=bad)
        assert predicted["seconds"] == history["seconds"] and predicted["catch_up_seconds"] is None, bad
    # a state written before the databases' shape was kept: the history alone
    old = walk(PREREQ, hot_at(60.0, 0, STOPPED_TARGET), hot_at(55.0, 100, moved=4.0), ("hot_sync", "databases", {"seconds": 9.0}))
    assert st.predict_window(old, 5, look=look(100, 10))["seconds"] == st.predict_window(old, 5)["seconds"]
    # a pull whose trees did not say what it spent on changes (a walk by rsync): its whole 55 s, at the same
    # rate (8 s of changes of the 100 s it moved), 4.4 s
    unmoved = walk(PREREQ, hot_at(60.0, 0, STOPPED_TARGET), hot_at(55.0, 100), hot_pass(1.0, 9.0, 300, 6.0))
    assert "pull 4.4 s, databases 3.8 s" in st.predict_window(unmoved, 5, look=look(100, 10))["parts"][1]["basis"]
    # hot syncs recorded without their starts: the pull as the last hot sync's
    unstarted = walk(PREREQ, hot(60.0, STOPPED_TARGET), hot(55.0), hot_pass(1.0, 9.0, 300, 6.0))
    assert st.predict_window(unstarted, 5, look=look(100, 10))["parts"][1]["seconds"] == 55.0


def test_the_rows_to_write_cost_what_the_hot_pass_spent_on_each():
    """bj-data's hot pass: 9 s, of which 6 s listing 300 tables and 1 s writing 10000 rows (0.1 ms each),
    2 s for the rest. The look: 100 tables and 5000 rows since the pass, 10 tables and 200 rows in 2 s.
    Catch-up: 2 + 100 * 0.02 + 5000 * 0.0001 = 4.5 s; the window (4.5 + 3 s at 5 tables and 100 rows a
    second): 2 + 37.5 * 0.02 + 750 * 0.0001 = 2.825 s."""
    shaped = ("hot_sync", "databases", {"seconds": 9.0, "databases": [
        {"seconds": 1.0, "tables": 7, "tables_listed": 0, "listing_seconds": 0.0},
        {"seconds": 9.0, "tables": 289, "tables_listed": 300, "listing_seconds": 6.0, "rows_copied": 8000,
         "rows_deleted": 2000, "apply_seconds": 1.0}]})
    state = walk(PREREQ, hot_at(60.0, 0, STOPPED_TARGET), hot_at(55.0, 100, moved=0.1), shaped)
    assert state["hot_sync_runs"][1]["databases"][1]["rows"] == 10000
    seen = look(100, 10)
    seen["databases"][1].update(rows_since_pass=5000, rows_in_sample=200)
    predicted = st.predict_window(state, 5, look=seen)
    assert predicted["catch_up_seconds"] == 4.5
    assert "databases 2.8 s" in predicted["parts"][1]["basis"]
