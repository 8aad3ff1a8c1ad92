"""After three hot syncs, one of them interrupted: every tree of the target equals the origin's."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))
from compare import TREES, hardlink_groups, host, tree_listing  # noqa: E402

ORIGIN, TARGET = host("mol-origin"), host("mol-target")


@pytest.mark.parametrize("tree", TREES)
def test_tree_converged(tree):
    assert tree_listing(TARGET, tree) == tree_listing(ORIGIN, tree)


def test_no_partial_file_left():
    assert TARGET.check_output("find /var/spool/bm-filehosting -name '.*' -type f | wc -l") == "0"


def test_hard_links_kept():
    assert hardlink_groups(TARGET, "/var/spool/cyrus") == hardlink_groups(ORIGIN, "/var/spool/cyrus")


def test_each_run_recorded():
    state = json.loads(TARGET.file("/var/lib/bluemind-migration/state.json").content_string)
    assert len(state["hot_sync_runs"]) == 2  # the interrupted pull is not a recorded run
    assert state["hot_sync_runs"][-1]["files"] >= 1
