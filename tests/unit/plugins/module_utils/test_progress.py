import json
import os
import shlex
import subprocess

import pytest

from ansible_collections.bluemind.migration.plugins.module_utils import progress
from ansible_collections.bluemind.migration.plugins.module_utils.progress import (
    ProgressBoard,
    TreeProgress,
    eta_seconds,
    format_line,
    human_bytes,
    human_duration,
    parse_progress2,
    parse_size,
    percent_done,
)


class Clock(object):
    def __init__(self, now=100.0):
        self.now = now

    def __call__(self):
        return self.now


@pytest.mark.parametrize("line, expected", [
    # rsync 3.2's updates, as they come between carriage returns
    ("      3,000,000  14%  471.63MB/s    0:00:00 (xfr#1, ir-chk=1041/1049)", (3000000, 1, 8, 1049)),
    ("     15,000,000 100%  460.45MB/s    0:00:00 (xfr#5, to-chk=0/6)", (15000000, 5, 6, 6)),
    ("         32,768   0%    0.00kB/s    0:00:00  ", (32768, None, None, None)),
    ("              0   0%    0.00kB/s    0:00:00 (xfr#0, ir-chk=1000/4548)", (0, 0, 3548, 4548)),
])
def test_parse_progress2_reads_bytes_files_and_entries_checked(line, expected):
    assert parse_progress2(line) == expected


@pytest.mark.parametrize("line", [
    ">f+++++++++ 12345 100% file", ".d..t...... ./", "Total file size: 1,234 bytes", "", "*deleting   old",
    "sent 1,234 bytes  received 6,789 bytes  16,046.00 bytes/sec",
])
def test_other_lines_are_not_progress(line):
    assert parse_progress2(line) is None


def test_size_command_counts_entries_and_bytes_of_regular_files(tmp_path):
    tree = tmp_path / "it's"
    (tree / "sub").mkdir(parents=True)
    (tree / "a").write_bytes(b"x" * 1000)
    (tree / "sub" / "b").write_bytes(b"y" * 24)
    os.symlink("a", str(tree / "link"))
    out = subprocess.run(["sh", "-c", progress.size_command(str(tree))], capture_output=True, text=True, check=True).stdout
    # ".", sub, a, sub/b, link; the link's length is not a file's size
    assert parse_size(out) == (5, 1024)
    assert shlex.split(progress.size_command("/srv/it's"))[:2] == ["cd", "/srv/it's"]


@pytest.mark.parametrize("out", ["", "12", "x 12", "0 0\n", "3 4 5"])
def test_parse_size_refuses_what_is_not_a_measure(out):
    assert parse_size(out) is None


def test_percent_is_the_further_of_bytes_moved_and_entries_checked():
    assert percent_done(250, 10, 1000, 100) == 25.0  # a first pull: bytes lead
    assert percent_done(0, 60, 1000, 100) == 60.0  # a later pull: entries lead
    assert percent_done(500, None, 1000, None) == 50.0
    assert percent_done(5000, 500, 1000, 100) == 99.9  # never 100 while it runs (the origin grew)
    assert percent_done(10, 5, None, None) is None


def test_eta_is_the_time_so_far_times_what_is_left_over_what_is_done():
    assert eta_seconds(25.0, 60) == 180
    assert eta_seconds(None, 60) is None
    assert eta_seconds(0.0, 60) is None
    assert eta_seconds(50.0, 0.5) is None


def test_human_units():
    assert human_bytes(512) == "512 B"
    assert human_bytes(1536) == "1.5 KiB"
    assert human_bytes(3 * 1024 ** 3) == "3.0 GiB"
    assert human_duration(12) == "12s"
    assert human_duration(245) == "4m05s"
    assert human_duration(3720) == "1h02m"


def test_tree_progress_adds_the_passes_and_ends_with_rsync_s_counts():
    clock = Clock()
    tree = TreeProgress("/var/spool/cyrus", clock=clock)
    assert tree.snapshot()["state"] == "waiting" and tree.snapshot()["percent"] is None
    tree.start()
    clock.now += 10
    tree.update(1024 ** 2, 3, 40, 100)
    first = tree.snapshot()
    assert (first["bytes"], first["files"], first["entries_checked"], first["percent"], first["eta"]) == (
        1024 ** 2, 3, 40, None, None)  # the origin's size is not known yet
    tree.sized(100, 4 * 1024 ** 2)
    sized = tree.snapshot()
    assert sized["percent"] == 40.0 and sized["eta"] == 15 and sized["rate"] == 104857
    tree.next_pass()
    tree.update(2048, 1, 2, 2)  # the second pass: its entries are not the tree's
    assert tree.snapshot()["bytes"] == 1024 ** 2 + 2048 and tree.snapshot()["files"] == 4
    clock.now += 5
    tree.end(moved_bytes=1050000, files=4)
    done = tree.snapshot()
    assert (done["state"], done["bytes"], done["percent"], done["eta"], done["seconds"]) == ("done", 1050000, 100.0, None, 15)
    clock.now += 100
    assert tree.snapshot()["seconds"] == 15  # an ended tree's time stops


def test_format_line_running_with_the_origin_s_size():
    line = format_line(dict(path="/var/spool/cyrus", state="running", bytes=512 * 1024 ** 2, files=812,
                            entries_checked=40000, size_entries=52000, size_bytes=1536 * 1024 ** 2, percent=33.3,
                            rate=42 * 1024 ** 2, eta=31, seconds=130))
    assert line == ("/var/spool/cyrus: 512.0 MiB moved in 812 files, 40,000 of 52,000 entries checked, "
                    "33.3% of 1.5 GiB, 42.0 MiB/s, ETA 31s, running 2m10s")


def test_format_line_says_what_is_unknown():
    line = format_line(dict(path="/var/lib/cyrus", state="running", bytes=0, files=0, entries_checked=None,
                            size_entries=None, size_bytes=None, percent=None, rate=None, eta=None, seconds=0.4))
    assert line == ("/var/lib/cyrus: 0 B moved in 0 files, percent unknown (the origin's size is not measured yet), "
                    "rate unknown, ETA unknown, running 0s")


def test_format_line_of_ended_and_waiting_trees():
    done = format_line(dict(path="/a", state="done", bytes=2048, files=2, entries_checked=10, size_entries=10,
                            size_bytes=2048, percent=100.0, rate=1024, eta=None, seconds=2))
    assert done == "/a: done: 2.0 KiB moved in 2 files, 10 of 10 entries checked, 100% of 2.0 KiB, 1.0 KiB/s, in 2s"
    assert format_line(dict(path="/b", state="waiting")) == "/b: not started yet (waiting for the connection or a worker)"


def test_board_writes_the_file_whole_and_finishes_it(tmp_path):
    tree = TreeProgress("/a", clock=Clock())
    path = tmp_path / "run" / "pull-progress.json"
    board = ProgressBoard("pull", [tree], str(path), period=0.01)
    with board:
        tree.start()
        tree.update(100, 1, 1, 1)
        written = json.loads(path.read_text())
        assert written["finished"] is False and written["trees"][0]["path"] == "/a"
    last = board.finish()
    assert json.loads(path.read_text()) == last and last["finished"] is True and last["job"] == "pull"
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    assert [p.name for p in path.parent.iterdir()] == ["pull-progress.json"]  # no temporary left


def test_board_that_cannot_write_says_so_once_and_goes_on(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    board = ProgressBoard("pull", [TreeProgress("/a")], str(blocker / "progress.json"), period=60)
    with board:
        pass
    last = board.finish()
    assert last["finished"] is True and board.write_error.startswith(
        "cannot write the progress file %s/progress.json: " % blocker)


def test_origin_size_gives_its_answer_to_the_tree():
    tree = TreeProgress("/a")
    size = progress.OriginSize(["sh", "-c", "echo 5 8192"], tree)
    size.proc.wait()
    size.stop()
    assert (tree.size_entries, tree.size_bytes) == (5, 8192)


def test_origin_size_is_stopped_when_the_pull_ends_first():
    tree = TreeProgress("/a")
    size = progress.OriginSize(["sh", "-c", "sleep 30; echo 5 8192"], tree)
    size.stop()  # returns at once: the measure is killed
    assert size.proc.returncode is not None and size.proc.returncode < 0
    assert (tree.size_entries, tree.size_bytes) == (None, None)


def test_origin_size_that_fails_leaves_the_size_unknown():
    tree = TreeProgress("/a")
    size = progress.OriginSize(["sh", "-c", "echo 5 8192; exit 255"], tree)
    size.proc.wait()
    size.stop()
    assert tree.size_bytes is None
