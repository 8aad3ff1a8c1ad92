"""bluemind_state: the module that owns the state file, driven through main()."""
import datetime
import json

from ansible_collections.bluemind.migration.plugins.module_utils import state
from ansible_collections.bluemind.migration.plugins.modules import bluemind_state

PREREQ = {"origin": "o", "addresses": {"origin": ["10.0.0.1"], "target": "10.0.0.2"}, "version": "4.9.3884"}


def test_read_without_a_state_file_changes_nothing(run_module, tmp_path):
    path = tmp_path / "state.json"
    result = run_module(bluemind_state, dict(path=str(path)))
    assert result["changed"] is False and not path.exists()
    assert result["ansible_facts"]["bluemind_state"] == {}
    assert result["ansible_facts"]["bluemind_migration"]["first_pull"] is True


def test_done_writes_the_state_and_returns_it_as_facts(run_module, tmp_path):
    path = tmp_path / "state.json"
    result = run_module(bluemind_state, dict(path=str(path), phase="prereq", event="done", result=PREREQ))
    assert result["changed"] is True
    written = json.loads(path.read_text())
    assert written == result["ansible_facts"]["bluemind_state"] and written["version"] == "4.9.3884"
    assert result["ansible_facts"]["bluemind_migration"]["done"] == ["prereq"]


def test_check_mode_and_diff_predict_without_writing(run_module, tmp_path):
    path = tmp_path / "state.json"
    run_module(bluemind_state, dict(path=str(path), phase="prereq", event="done", result=PREREQ))
    before = path.read_text()
    result = run_module(bluemind_state, dict(path=str(path), phase="cold_sync", event="start"),
                        check_mode=True, diff=True)
    assert result["changed"] is True and path.read_text() == before
    assert '"start"' in result["diff"]["after"] and '"start"' not in result["diff"]["before"]
    assert "start" in result["ansible_facts"]["bluemind_state"]["cold_sync"]


def test_a_refused_event_fails_says_why_and_writes_nothing(run_module, tmp_path):
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"prereq": {"checked": "x"}, "cutover": {"live": "2026-11-29T18:00:00.000000Z"}}))
    before = path.read_text()
    result = run_module(bluemind_state, dict(path=str(path), phase="hot_sync", event="check", target_name="t1"))
    assert result["failed"] is True and result["changed"] is False
    assert result["msg"].startswith("t1 has been live since 2026-11-29T18:00:00.000000Z")
    assert path.read_text() == before


def test_a_rerun_that_changes_nothing_is_not_changed(run_module, tmp_path):
    path = tmp_path / "state.json"
    run_module(bluemind_state, dict(path=str(path), phase="prereq", event="done", result=PREREQ))
    first = run_module(bluemind_state, dict(path=str(path), phase="cold_sync", event="start"))
    again = run_module(bluemind_state, dict(path=str(path), phase="cold_sync", event="start"))
    assert first["changed"] is True and again["changed"] is False
    assert again["decision"]["message"].startswith("cold_sync runs again")


def test_an_unreadable_state_fails_with_what_to_do(run_module, tmp_path):
    path = tmp_path / "state.json"
    path.write_text("{")
    result = run_module(bluemind_state, dict(path=str(path)))
    assert result["failed"] is True and "reports/<target>.json" in result["msg"]


def test_the_stop_of_the_window_is_recorded_once(run_module, tmp_path):
    path = tmp_path / "state.json"
    run_module(bluemind_state, dict(path=str(path), phase="prereq", event="done", result=PREREQ))
    run_module(bluemind_state, dict(path=str(path), phase="cold_sync", event="start"))
    first = run_module(bluemind_state, dict(path=str(path), phase="cold_sync", event="stopped"))
    again = run_module(bluemind_state, dict(path=str(path), phase="cold_sync", event="stopped"))
    assert first["changed"] is True and again["changed"] is False
    cold = json.loads(path.read_text())["cold_sync"]
    assert cold["start"] <= cold["stopped"]


def test_the_final_pull_records_the_end_of_the_origins_stop_once(run_module, tmp_path):
    path = tmp_path / "state.json"
    run_module(bluemind_state, dict(path=str(path), phase="prereq", event="done", result=PREREQ))
    run_module(bluemind_state, dict(path=str(path), phase="cold_sync", event="start"))
    start = json.loads(path.read_text())["cold_sync"]["start"]
    stopped = state.stamp(state.parse_stamp(start) + datetime.timedelta(seconds=0.7))
    run_module(bluemind_state, dict(path=str(path), phase="cold_sync", event="done",
                                    result=dict(trees=[], stopped_at=stopped)))
    assert json.loads(path.read_text())["cold_sync"]["stopped"] == stopped
    # a rerun of the window keeps the first stop
    run_module(bluemind_state, dict(path=str(path), phase="cold_sync", event="done",
                                    result=dict(trees=[], stopped_at=state.stamp())))
    assert json.loads(path.read_text())["cold_sync"]["stopped"] == stopped
    # the origin's clock behind the target's: never before the start; a value that is no time is not kept
    for given, kept in (("2020-01-01T00:00:00.000000Z", "start"), ("not a time", None)):
        other = tmp_path / "other.json"
        other.unlink(missing_ok=True)
        run_module(bluemind_state, dict(path=str(other), phase="prereq", event="done", result=PREREQ))
        run_module(bluemind_state, dict(path=str(other), phase="cold_sync", event="start"))
        run_module(bluemind_state, dict(path=str(other), phase="cold_sync", event="done",
                                        result=dict(trees=[], stopped_at=given)))
        cold = json.loads(other.read_text())["cold_sync"]
        assert cold.get("stopped") == (cold["start"] if kept else None)


def test_an_event_that_records_needs_a_phase(run_module, tmp_path):
    for event in ("stopped", "admin"):
        result = run_module(bluemind_state, dict(path=str(tmp_path / "state.json"), event=event))
        assert result["failed"] is True and "phase" in result["msg"]


def test_the_final_pull_records_the_jobs_beside_it_in_the_same_write(run_module, tmp_path):
    """cold_sync's record with the database pass's and the configuration copy's ends (``then``): one
    write, the three phases done, the pass's job forgotten; one event refused: nothing written."""
    path = tmp_path / "state.json"
    run_module(bluemind_state, dict(path=str(path), phase="prereq", event="done", result=PREREQ))
    run_module(bluemind_state, dict(path=str(path), phase="cold_sync", event="start"))
    pull = dict(trees=[], db_pass_job="/j/db-pass-t.json", config_job="/j/config-t.json")
    passed = dict(databases=[dict(method="rows", seconds=1.5)], started_at="2026-11-29T18:00:01.000000Z",
                  ended_at="2026-11-29T18:00:02.500000Z", names=["bj"])
    result = run_module(bluemind_state, dict(path=str(path), phase="cold_sync", event="done", result=pull, then=[
        dict(phase="config_copy", result=dict(files=[], queue=[])), dict(phase="db_migrate", result=passed)]))
    assert result["changed"] is True and result["recorded"] == ["cold_sync", "config_copy", "db_migrate"]
    written = json.loads(path.read_text())
    facts = result["ansible_facts"]["bluemind_migration"]
    assert facts["left"] == ["cutover"] and facts["db_pass_job"] is None and facts["config_copy_job"] is None
    assert written["db_migrate"]["databases"][0]["name"] == "bj" and "end" in written["config_copy"]
    # the target live: a later event of the same call is refused, and nothing at all is written
    path.write_text(json.dumps(dict(written, cutover={"live": "2026-11-29T18:00:05.000000Z"})))
    before = path.read_text()
    refused = run_module(bluemind_state, dict(path=str(path), phase="cutover", event="serving",
                                              then=[dict(phase="db_migrate", result=passed)]))
    assert refused["failed"] is True and "db_migrate" in refused["msg"] and path.read_text() == before
    assert run_module(bluemind_state, dict(path=str(path)))["recorded"] == []
