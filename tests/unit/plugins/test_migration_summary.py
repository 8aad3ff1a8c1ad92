"""The run's summary of every pair (filter migration_summary)."""
from ansible_collections.bluemind.migration.plugins.filter.migration_summary import migration_summary


def _host(origin, **state):
    facts = dict(live=False, complete=False, done=[], left=[], downtime_seconds=None)
    facts.update(state)
    return {"bluemind_origin": origin, "ansible_facts": {"bluemind_migration": facts}}


def test_each_pair_says_where_it_stands_and_the_totals_count_them():
    hostvars = {
        "t-a": _host("o-a", complete=True, live=True, downtime_seconds=12.5,
                     done=["prereq", "hot_sync", "cold_sync", "db_migrate", "config_copy", "cutover"]),
        "t-b": _host("o-b", done=["prereq"], left=["hot_sync", "cold_sync"]),
        "t-c": _host("o-c", live=True, downtime_seconds=40.0, left=["cutover"]),
        "t-d": _host("o-d", done=["prereq", "hot_sync"], left=["cold_sync"]),
        "t-out": {"bluemind_origin": "o-x"},  # not in this run (--limit): no context
    }
    # t-b failed: Ansible left it out of the summary play's hosts
    summary = migration_summary(hostvars, ["t-a", "t-b", "t-c", "t-d", "t-out"], ["t-a", "t-c", "t-d"])
    assert [(p["target"], p["origin"], p["result"]) for p in summary["pairs"]] == [
        ("t-a", "o-a", "complete"), ("t-b", "o-b", "failed"), ("t-c", "o-c", "live, cutover to finish"),
        ("t-d", "o-d", "ran to the end")]
    assert summary["totals"] == dict(pairs=4, complete=1, live=1, failed=1, longest_downtime_seconds=40.0)
    page = summary["markdown"].splitlines()
    assert page[2] == "4 pair(s): 1 complete, 1 live with the cutover to finish, 1 failed; longest downtime 40.0 s"
    assert "| o-a | t-a | complete | prereq, hot_sync, cold_sync, db_migrate, config_copy, cutover | none | 12.5 s | " \
           "[t-a.md](t-a.md) |" in page
    assert "| o-b | t-b | failed | prereq | hot_sync, cold_sync |  |  |" in page
    assert "rerun the same command for it" in summary["markdown"]


def test_a_run_where_every_pair_ran_to_the_end_has_no_failure_note():
    summary = migration_summary({"t": _host("o", done=["prereq"])}, ["t", "absent"], ["t"])
    assert summary["totals"]["failed"] == 0 and summary["totals"]["longest_downtime_seconds"] is None
    assert "rerun" not in summary["markdown"] and "longest downtime" not in summary["markdown"]
