"""The collection's filters: the state's rules on the controller and a database pass in words."""
from ansible_collections.bluemind.migration.plugins.filter.db_pass_summary import db_pass_summary
from ansible_collections.bluemind.migration.plugins.filter.state_decision import state_decision
from ansible_collections.bluemind.migration.plugins.filter.pull_summary import pull_summary
from ansible_collections.bluemind.migration.plugins.filter.tag_steps import tag_steps


def test_a_whole_copy_says_why():
    line = db_pass_summary({"method": "full", "reason": "first copy", "seconds": 2.04, "tables": 3, "rows": 10,
                            "bytes": 3 * 1024 * 1024, "settings": ["TimeZone=GMT"]})
    assert line == ("copied whole (first copy) in 2.0 s; 3 tables, 10 rows identical on both sides; "
                    "3.0 MiB dumped; settings carried over: TimeZone=GMT")


def test_a_row_sync_says_what_moved_and_how_it_was_found():
    line = db_pass_summary({"method": "rows", "rows_copied": 5, "rows_deleted": 1, "compared_by": "transaction ids",
                            "seconds": 0.31})
    assert line == "5 rows copied, 1 deleted (found by transaction ids) in 0.3 s; settings carried over: none"


def test_a_row_sync_says_how_many_tables_it_skipped_or_why_none():
    line = db_pass_summary({"method": "rows", "rows_copied": 2, "rows_deleted": 0, "compared_by": "transaction ids",
                            "seconds": 0.5, "tables_listed": 3, "tables_skipped": 280})
    assert line == ("2 rows copied, 0 deleted (found by transaction ids) in 0.5 s; 3 tables listed, 280 skipped as "
                    "unchanged on both sides; settings carried over: none")
    line = db_pass_summary({"method": "rows", "compared_by": "transaction ids", "tables_listed": 283,
                            "tables_skipped": 0, "skip_blocker": "on the origin, the server was restarted since the last pass"})
    assert "283 tables listed, 0 skipped as unchanged on both sides (none skipped: on the origin, the server was " \
           "restarted since the last pass)" in line
    line = db_pass_summary({"method": "rows", "tables_listed": 9, "tables_skipped": 80, "tables_by_changes": 4,
                            "tables_recounted": 1})
    assert "9 tables listed (4 by their rows written since the last pass alone, 1 of them listed whole again after a " \
           "count differed), 80 skipped" in line


def test_the_state_filter_refuses_what_the_module_refuses():
    refused = state_decision({}, "hot_sync", "t1")
    assert refused["allowed"] is False and refused["action"] == "refuse"
    assert refused["message"].startswith("hot_sync needs prereq first")
    assert state_decision({"prereq": {"checked": "x"}}, "hot_sync") == {
        "allowed": True, "action": "run", "message": "hot_sync runs"}


def test_window_prediction_reads_the_state_as_the_module_wrote_it():
    from ansible_collections.bluemind.migration.plugins.filter.window_prediction import FilterModule
    predict = FilterModule().filters()["window_prediction"]
    state = {"target_stop_seconds": 2.0,
             "hot_sync_runs": [{"seconds": 40.0, "databases_seconds": 30.0, "end": "a"},
                               {"seconds": 3.0, "databases_seconds": 5.0, "end": "b"}]}
    assert predict(state, "20")["seconds"] == 2.0 + 5.0 + 60.0 + 20.0  # Jinja may hand the numbers over as text
    assert predict(state, 20, False, "30")["seconds"] == 2.0 + 3.0 + 5.0 + 30.0 + 20.0
    assert predict(dict(state, target_start_seconds=12.5), 20, True, 30)["seconds"] == 2.0 + 5.0 + 12.5 + 20.0
    assert predict(None, 20)["seconds"] is None
    # the look (a registered result) goes through as given: one that failed is no look
    assert predict(state, 20, True, 30, {"failed": True, "msg": "x"}, "yes", "no")["seconds"] == 2.0 + 5.0 + 30.0 + 20.0


def test_pull_summary_says_a_line_a_tree_in_the_pulls_order():
    trees = [dict(path="/var/spool/cyrus", files=200, bytes=101459, seconds=5.44, changes=431, deleted=100,
                  incremental=True, changed_dirs=349, recent=3),
             dict(path="/var/lib/cyrus", files=0, bytes=0, seconds=0.06, changes=0, deleted=0, vanished=2)]
    assert pull_summary(trees) == [
        "/var/spool/cyrus: 200 files, 99.08 KB in 5.4 s (431 changes, 100 deleted, the entries of 349 directories "
        "changed since the last pull compared, 3 modified since the last pull compared by content)",
        "/var/lib/cyrus: 0 files, 0.00 Bytes in 0.1 s (0 changes, 0 deleted, 2 vanished)"]
    assert pull_summary(None) == []


def test_tag_steps_selects_what_the_run_tags_select():
    steps = {"files": "config_copy_files", "queue": "config_copy_queue"}
    parents = ["config_copy"]
    assert tag_steps(steps, ["all"], [], parents) == ["files", "queue"]
    assert tag_steps(steps, [], [], parents) == ["files", "queue"]
    assert tag_steps(steps, ["cold_sync", "db_migrate", "config_copy", "cutover"], [], parents) == ["files", "queue"]
    assert tag_steps(steps, ["config_copy_queue"], [], parents) == ["queue"]
    assert tag_steps(steps, ["all"], ["config_copy_files"], parents) == ["queue"]
    assert tag_steps(steps, ["all"], ["config_copy"], parents) == []
    assert tag_steps(steps, ["cutover"], [], parents) == []
    assert tag_steps(steps, ["tagged"], [], parents) == ["files", "queue"]


def test_the_jobs_beside_the_final_pull_that_ended_well_are_recorded_with_it_the_others_left_to_their_phase():
    from ansible_collections.bluemind.migration.plugins.filter.beside_jobs import beside_lines, beside_records
    db_pass = dict(changed=True, finished=True, gone=False, waited_seconds=0.1, readdress=[], started_at="a", ended_at="b",
                   databases=[dict(name="bj", method="rows", rows_copied=1, rows_deleted=0, compared_by="transaction ids"),
                              dict(name="bj-data", method="full", reason="first copy")])
    config = dict(finished=True, gone=False, files=[">f+++++++++ etc/bm/bm.ini"], queue=[], started_at="a", ended_at="b")
    jobs = {"/j/db.json": db_pass, "/j/config.json": config}
    events = beside_records(jobs, "/j/db.json", "/j/config.json", None, "none")
    assert [event["phase"] for event in events] == ["config_copy", "db_migrate"]
    assert events[0]["result"] == dict(files=config["files"], queue=[], started_at="a", ended_at="b")
    assert events[1]["result"]["names"] == ["bj", "bj-data"] and "waited_seconds" not in events[1]["result"]
    # the names given win over the result's (masked where a password has the same text)
    masked = dict(db_pass, databases=[dict(entry, name="VALUE_SPECIFIED_IN_NO_LOG_PARAMETER") for entry in db_pass["databases"]])
    assert beside_records({"/j/db.json": masked}, "/j/db.json", None, ["bj", "bj-data"])[0]["result"]["names"] == ["bj", "bj-data"]
    lines = beside_lines(jobs, "/j/db.json", "/j/config.json", None, "none")
    assert lines[0] == "config_copy: done beside the final pull (1 entries copied, recorded with the pull)"
    assert lines[1].startswith("db_migrate: bj: 1 rows copied") and lines[2].startswith("db_migrate: bj-data: copied whole")
    # the catch-up before the stop: its passes (several while the final pull's work before the stop ran)
    caught = dict(db_pass, catch_up=dict(passes=4, first_seconds=12.34, seconds=0.61, databases=[]))
    assert beside_lines({"/j/db.json": caught}, "/j/db.json", None)[0] == (
        "db_migrate: before the origin's stop, caught up in 4 passes (the first 12.3 s, the last 0.6 s)")
    once = dict(db_pass, catch_up=dict(passes=1, first_seconds=2.0, seconds=2.0, databases=[]))
    assert beside_lines({"/j/db.json": once}, "/j/db.json", None)[0].endswith("caught up in one pass (2.0 s)")
    failed_catch_up = dict(db_pass, catch_up=dict(passes=2, seconds=0.3, error="the origin went away", databases=[]))
    assert beside_lines({"/j/db.json": failed_catch_up}, "/j/db.json", None)[0] == (
        "db_migrate: before the origin's stop, the catch-up failed after 2 pass(es), the window's pass moved the "
        "rest: the origin went away")
    # a pass without the target's own address (started before none mode was asked), a failed copy, a gone
    # job, a copy that did not say when it ended: each left to its phase, and said so
    unaddressed = dict((k, v) for k, v in db_pass.items() if k != "readdress")
    failed = dict(config, failed=True, msg="the job of /j/config.json failed: origin unreachable")
    assert beside_records({"/j/db.json": unaddressed, "/j/config.json": failed}, "/j/db.json", "/j/config.json", None, "none") == []
    assert [e["phase"] for e in beside_records({"/j/db.json": unaddressed}, "/j/db.json", None, None, "move")] == ["db_migrate"]
    gone = dict(finished=False, gone=True, msg="the job of /j/db.json is gone: it never started")
    assert beside_records({"/j/db.json": gone, "/j/config.json": dict(config, ended_at="")}, "/j/db.json", "/j/config.json") == []
    assert beside_lines({"/j/db.json": gone, "/j/config.json": failed}, "/j/db.json", "/j/config.json") == [
        "config_copy: left to its phase (the job of /j/config.json failed: origin unreachable)",
        "db_migrate: left to its phase (the job of /j/db.json is gone: it never started)"]
    assert beside_lines({}, None, None) == [] and beside_records({}, None, None) == []


def test_a_phase_takes_a_job_beside_the_pull_as_done_by_the_rule_of_the_pulls_record():
    from ansible_collections.bluemind.migration.plugins.filter.beside_jobs import beside_done
    copy = dict(finished=True, gone=False, files=[], queue=[], ended_at="b")
    assert beside_done(copy, "config_copy")
    # what a skipped wait registers, a job gone, failed, or a copy that did not say when it ended: not done
    assert not beside_done(dict(skipped=True, changed=False), "config_copy") and not beside_done(None, "config_copy")
    assert not beside_done(dict(finished=False, gone=True), "config_copy")
    assert not beside_done(dict(copy, failed=True, msg="origin unreachable"), "config_copy")
    assert not beside_done(dict(copy, ended_at=""), "config_copy")
    db_pass = dict(finished=True, gone=False, databases=[], readdress=[])
    unaddressed = dict(finished=True, gone=False, databases=[])
    assert beside_done(db_pass, "db_migrate", "none") and beside_done(unaddressed, "db_migrate", "address")
    # a pass that did not give the target its own address is not done while the mode is none: db_migrate does it
    assert not beside_done(unaddressed, "db_migrate", "none") and not beside_done(unaddressed, "db_migrate")
    assert not beside_done(dict(db_pass, failed=True), "db_migrate", "none")
