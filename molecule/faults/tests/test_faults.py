"""Faults at chosen points and the documented recovery (issue 11's fault matrix, part).

The steps run in this file's order, each on what the previous one left, as an operator would live
them: a hot sync whose controller is killed mid-pull, then rerun; a window refused because the origin
does not answer; a window whose controller is killed in the final pull, then rolled back; the whole
migration again, its controller killed while the live target's core starts, then rerun. At the end
every file and every row of the origin is on the target, and the rollback gave the origin back with
everything it had.
"""
import json
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))
from compare import (TREES, ansible_playbook, big_file, full_speed, host, kill_controller, kill_controller_mid_pull,  # noqa: E402
                     rows_lost, slow_link, start_playbook, table_counts, table_rows, tree_listing)

ORIGIN, TARGET = host("mol-origin"), host("mol-target")
# The window as the README gives it, less prereq and hot_sync (their pulls would move the slow file first).
WINDOW = ("--tags", "cold_sync,db_migrate,config_copy,cutover",
          "-e", "bluemind_confirm_downtime=true", "-e", "bluemind_confirm_cutover=true")
STATE = "/var/lib/bluemind-migration/state.json"
SPOOL = "/var/spool/bm-filehosting"
# The smoke check's message and its mailbox changed on the target after the cutover.
SMOKE = ("lab.test/admin",)
SEEN = {}


def state():
    return json.loads(TARGET.file(STATE).content_string)


def origin_serves():
    status = ORIGIN.run("bmctl status").stdout
    return "is running." in status and "stopped" not in status and ORIGIN.service("postfix").is_running


def slow_origin_with(name, megabytes):
    """A file the next pull takes seconds to move: the origin's link slowed to 80 Mbit/s."""
    big_file(ORIGIN, "%s/%s" % (SPOOL, name), megabytes)
    slow_link(ORIGIN)


@pytest.fixture(scope="module", autouse=True)
def full_speed_after():
    yield
    full_speed(ORIGIN)


def test_a_hot_sync_killed_mid_pull_then_rerun_converges():
    runs_before = len(state()["hot_sync_runs"])
    ORIGIN.check_output("bm-sim activity --flags 50 --delete 10 --seed 11")
    slow_origin_with("fault-hot.bin", 60)
    kill_controller_mid_pull(start_playbook("migrate.yml", "--tags", "hot_sync"), TARGET, SPOOL, "fault-hot.bin")
    full_speed(ORIGIN)
    rerun = ansible_playbook("migrate.yml", "--tags", "hot_sync")
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-2000:]
    # only the rerun is recorded; the killed run's pull (if it went on alone) ended before it began
    assert len(state()["hot_sync_runs"]) == runs_before + 1
    for tree in TREES:
        assert tree_listing(TARGET, tree) == tree_listing(ORIGIN, tree), tree


def test_an_origin_that_does_not_answer_stops_nothing():
    ORIGIN.check_output("systemctl stop ssh")
    try:
        proc = ansible_playbook("migrate.yml", *WINDOW)
    finally:
        ORIGIN.check_output("systemctl start ssh")
    said = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "cannot reach mol-origin over SSH" in said, said[-3000:]
    assert "Nothing was stopped, the origin still serves" in said
    assert origin_serves()
    assert "cold_sync" not in state()


def test_a_window_killed_in_the_final_pull_then_rolled_back_gives_the_origin_back():
    slow_origin_with("fault-cold.bin", 60)
    SEEN["origin_rows"] = {db: table_counts(ORIGIN, db) for db in ("bj", "bj-data")}
    SEEN["origin_trees"] = {tree: tree_listing(ORIGIN, tree) for tree in TREES}
    # Without the follower: with it, the file would move before the origin's stop (the pull before it),
    # and this fault is the controller killed while the window's pull moves it.
    kill_controller_mid_pull(start_playbook("migrate.yml", *WINDOW, "-e", "cold_sync_follow_changes=false"),
                             TARGET, SPOOL, "fault-cold.bin",
                             also=lambda: "start" in state().get("cold_sync", {}))
    full_speed(ORIGIN)
    assert not origin_serves()  # the window was open: BlueMind stopped on the origin
    rollback = ansible_playbook("rollback.yml")
    assert rollback.returncode == 0, rollback.stdout[-3000:] + rollback.stderr[-2000:]
    assert origin_serves()
    after = state()
    assert "rollback" in after and "cold_sync" not in after and "last_pull_origin_start" not in after
    # nothing on the origin was modified: every row and every file as before the window
    assert {db: table_counts(ORIGIN, db) for db in ("bj", "bj-data")} == SEEN["origin_rows"]
    assert {tree: tree_listing(ORIGIN, tree) for tree in TREES} == SEEN["origin_trees"]


def test_a_window_killed_while_the_target_starts_then_rerun_finishes_and_moves_everything():
    """The whole migration again after the rollback (hot sync, then the window), the controller killed
    while the target's core takes its time to start (the cutover has made it live): the rerun only
    finishes the cutover, and every file and row of the origin is on the target."""
    TARGET.check_output("echo 15 > /etc/bm/bmsim-core-start-delay")
    try:
        proc = start_playbook("migrate.yml", "-e", "bluemind_confirm_downtime=true", "-e", "bluemind_confirm_cutover=true")
        for _attempt in range(900):
            cutover = state().get("cutover", {}) if TARGET.file(STATE).exists else {}
            if "live" in cutover:
                break
            assert proc.poll() is None, "the run ended before the cutover made the target live"
            time.sleep(0.2)
        assert "serving" not in state()["cutover"]
        kill_controller(proc)
        downtime_start = state()["cold_sync"]["start"]
    finally:
        TARGET.check_output("rm -f /etc/bm/bmsim-core-start-delay")
    rerun = ansible_playbook("migrate.yml", "-e", "bluemind_confirm_downtime=true", "-e", "bluemind_confirm_cutover=true")
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-2000:]
    assert "its cutover did not finish: this run finishes it" in rerun.stdout
    done = state()
    assert done["complete"] is True and done["cold_sync"]["start"] == downtime_start
    for tree in TREES:
        assert tree_listing(TARGET, tree, SMOKE) == tree_listing(ORIGIN, tree, SMOKE), tree
    for db in ("bj", "bj-data"):
        assert rows_lost(db, table_rows(ORIGIN, db), table_rows(TARGET, db), messages=1) == {}, db
