"""Two origin/target pairs in one run (issue 14, point 3).

The steps run in this file's order, each on what the previous one left: a hot sync where pair B's
origin does not answer over SSH (B fails, A goes on), the hot sync again once it answers, then the
whole window with B slow (its target's core takes 30 s to start): A's window does not wait for B's.
At the end each origin's files and rows are on its target, and the run's summary has both pairs.
"""
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))
from compare import TREES, ansible_playbook, host, rows_lost, table_rows, tree_listing  # noqa: E402

PAIRS = {"a": (host("mol-origin-a"), host("mol-target-a")), "b": (host("mol-origin-b"), host("mol-target-b"))}
STATE = "/var/lib/bluemind-migration/state.json"
REPORTS = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "reports"
WINDOW = ("-e", "bluemind_confirm_downtime=true", "-e", "bluemind_confirm_cutover=true")
SLOW_CORE_SECONDS = 30
# The smoke check's message and its mailbox changed on each target after the cutover.
SMOKE = ("lab.test/admin",)


def state(pair):
    target = PAIRS[pair][1]
    return json.loads(target.file(STATE).content_string) if target.file(STATE).exists else {}


def summary():
    return json.loads((REPORTS / "summary.json").read_text())


def seconds(stamp):
    from datetime import datetime
    return datetime.strptime(stamp.rstrip("Z"), "%Y-%m-%dT%H:%M:%S.%f").timestamp()


def test_a_pair_whose_origin_does_not_answer_fails_alone():
    origin_b = PAIRS["b"][0]
    origin_b.check_output("systemctl stop ssh.socket ssh.service 2>/dev/null; systemctl stop ssh")
    try:
        run = ansible_playbook("migrate.yml", "--tags", "prereq,hot_sync")
    finally:
        origin_b.check_output("systemctl start ssh")
    said = run.stdout + run.stderr
    assert run.returncode != 0, said[-3000:]
    assert "fatal: [mol-target-b]" in said and "mol-origin-b" in said, said[-3000:]
    assert "fatal: [mol-target-a]" not in said
    assert len(state("a").get("hot_sync_runs", [])) == 1, "pair A's hot sync did not run"
    assert not state("b").get("hot_sync_runs")
    results = dict((p["target"], p["result"]) for p in summary()["pairs"])
    assert results == {"mol-target-a": "ran to the end", "mol-target-b": "failed"}
    assert "rerun the same command for it" in (REPORTS / "summary.md").read_text()


def test_the_hot_sync_again_brings_the_failed_pair_along():
    run = ansible_playbook("migrate.yml", "--tags", "prereq,hot_sync")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert len(state("b").get("hot_sync_runs", [])) == 1 and len(state("a").get("hot_sync_runs", [])) == 2
    assert summary()["totals"]["failed"] == 0


def test_a_slow_pair_does_not_stretch_the_other_pairs_window():
    target_b = PAIRS["b"][1]
    target_b.check_output("echo %s > /etc/bm/bmsim-core-start-delay" % SLOW_CORE_SECONDS)
    try:
        run = ansible_playbook("migrate.yml", *WINDOW)
    finally:
        target_b.check_output("rm -f /etc/bm/bmsim-core-start-delay")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    served = dict((pair, seconds(state(pair)["cutover"]["serving"])) for pair in PAIRS)
    opened = dict((pair, seconds(state(pair)["cold_sync"]["start"])) for pair in PAIRS)
    assert served["b"] - opened["b"] >= SLOW_CORE_SECONDS
    # Task by task (Ansible's linear strategy), A would serve only once B's core answered.
    assert served["a"] < served["b"] - SLOW_CORE_SECONDS / 2, (opened, served)
    totals = summary()["totals"]
    assert (totals["pairs"], totals["complete"], totals["failed"]) == (2, 2, 0)
    assert totals["longest_downtime_seconds"] >= SLOW_CORE_SECONDS
    page = (REPORTS / "summary.md").read_text()
    for pair in PAIRS:
        assert "| mol-origin-%s | mol-target-%s | complete |" % (pair, pair) in page
        assert (REPORTS / ("mol-target-%s.md" % pair)).is_file() and (REPORTS / ("mol-target-%s.json" % pair)).is_file()


def test_each_origin_is_on_its_own_target():
    for pair, (origin, target) in PAIRS.items():
        for tree in TREES:
            assert tree_listing(target, tree, SMOKE) == tree_listing(origin, tree, SMOKE), (pair, tree)
        for db in ("bj", "bj-data"):
            assert rows_lost(db, table_rows(origin, db), table_rows(target, db), messages=1) == {}, (pair, db)
