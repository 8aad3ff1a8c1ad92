import stat
import sys
import textwrap

import pytest

from ansible_collections.bluemind.migration.plugins.module_utils import rsync

STATS = textwrap.dedent("""\
    Number of files: 1,204 (reg: 1,000, dir: 204)
    Number of created files: 3 (reg: 3)
    Number of deleted files: 1 (reg: 1)
    Number of regular files transferred: 4
    Total file size: 12,345,678 bytes
    Total transferred file size: 5,120 bytes
    Literal data: 5,120 bytes
    Matched data: 0 bytes
    File list size: 0
    File list generation time: 0.001 seconds
    File list transfer time: 0.000 seconds
    Total bytes sent: 1,234
    Total bytes received: 6,789

    sent 1,234 bytes  received 6,789 bytes  16,046.00 bytes/sec
    total size is 12,345,678  speedup is 1,538.80
    """)


def fake_rsync(tmp_path, stdout, rc=0, stderr=""):
    """An executable that prints ``stdout``/``stderr`` as rsync would and exits ``rc``."""
    (tmp_path / "out.txt").write_text(stdout)
    (tmp_path / "err.txt").write_text(stderr)
    script = tmp_path / "rsync"
    script.write_text("#!%s\nimport sys\nsys.stdout.write(open(%r).read())\nsys.stderr.write(open(%r).read())\n"
                      "sys.exit(%d)\n" % (sys.executable, str(tmp_path / "out.txt"), str(tmp_path / "err.txt"), rc))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return [str(script)]


def test_tree_excludes_anchor_absolute_patterns_in_their_tree_only():
    assert rsync.tree_excludes("/var/lib/cyrus", rsync.BLUEMIND_EXCLUDES) == [
        "cyrus.squat", "/proc/", "/lock/", "/socket/"]
    assert rsync.tree_excludes("/var/spool/cyrus/", rsync.BLUEMIND_EXCLUDES) == ["cyrus.squat"]
    assert rsync.tree_excludes("/var/lib/cyrus-other", ["/var/lib/cyrus/proc/"]) == []


def test_build_command_maps_owners_by_name_and_compares_nanoseconds():
    args = rsync.build_command("/usr/bin/rsync", "ssh -i k", "root@o:/t/", "/t/", excludes=["/proc/"])
    assert args[:2] == ["/usr/bin/rsync", "-aH"]
    assert "--numeric-ids" not in args
    assert {"--modify-window=-1", "--itemize-changes", "--stats", "--delete", "--exclude=/proc/"} <= set(args)
    assert args[args.index("-e") + 1] == "ssh -i k"
    assert args[-2:] == ["root@o:/t/", "/t/"]
    assert "--dry-run" not in args and "--checksum" not in args


def test_build_command_dry_run_checksum_and_no_delete():
    args = rsync.build_command("rsync", "ssh", "s/", "d/", delete=False, dry_run=True, checksum=True)
    assert "--delete" not in args
    assert {"--dry-run", "--checksum"} <= set(args)


@pytest.mark.parametrize("line, expected", [
    (">f+++++++++ mail/1.", (">f+++++++++", "mail/1.")),
    ("*deleting   old/file", ("*deleting", "old/file")),
    (".d..t...... some dir/", (".d..t......", "some dir/")),
    ("hf          a/b => c/d", ("hf         ", "a/b => c/d")),
    ("Number of files: 3 (reg: 2, dir: 1)", None),
    ("sent 1 bytes  received 2 bytes", None),
    ("", None),
])
def test_parse_itemized(line, expected):
    assert rsync.parse_itemized(line) == expected


@pytest.mark.parametrize("flags, change", [
    (".d..t......", False),   # directory time only
    (".d         ", False),   # nothing changed
    (".d...p.....", True),    # directory permissions
    ("cd+++++++++", True),
    (">f.st......", True),
    (".f..t......", True),    # a file's time is data for BlueMind (index rewrites)
    (".f....og...", True),
    ("*deleting", True),
    ("hf         ", True),
])
def test_is_change(flags, change):
    assert rsync.is_change(flags) is change


def test_parse_stats_line():
    found = dict(filter(None, (rsync.parse_stats_line(line) for line in STATS.splitlines())))
    assert found == {
        "files_total": 1204, "files_created": 3, "files_deleted": 1, "files_transferred": 4,
        "total_size": 12345678, "transferred_size": 5120, "literal_data": 5120, "matched_data": 0,
        "bytes_sent": 1234, "bytes_received": 6789,
    }


def test_run_rsync_counts_changes_and_ignores_directory_times(tmp_path):
    out = ">f+++++++++ a\n.d..t...... d/\n>f.st...... b\n*deleting   c\n" + STATS
    result = rsync.run_rsync(fake_rsync(tmp_path, out), diff_max_lines=10, allow_vanished=False)
    assert (result["changes"], result["created"], result["deleted"]) == (3, 1, 1)
    assert result["diff"] == [">f+++++++++ a", ">f.st...... b", "*deleting   c"]
    assert result["stats"]["transferred_size"] == 5120
    assert result["rc"] == 0 and result["diff_omitted"] == 0


def test_run_rsync_caps_the_diff_not_the_counts(tmp_path):
    out = "".join(">f+++++++++ file%d\n" % i for i in range(5000))
    result = rsync.run_rsync(fake_rsync(tmp_path, out), diff_max_lines=3, allow_vanished=False)
    assert result["changes"] == 5000
    assert len(result["diff"]) == 3 and result["diff_omitted"] == 4997


def test_run_rsync_only_directory_times_is_no_change(tmp_path):
    result = rsync.run_rsync(fake_rsync(tmp_path, ".d..t...... a/\n" + STATS), 10, False)
    assert result["changes"] == 0 and result["diff"] == []


def test_run_rsync_vanished_accepted_only_when_asked(tmp_path):
    cmd = fake_rsync(tmp_path, ">f+++++++++ a\n", rc=24, stderr="file has vanished: \"/x/y\"\n")
    assert rsync.run_rsync(cmd, 10, allow_vanished=True)["vanished"] == 1
    with pytest.raises(rsync.RsyncError) as err:
        rsync.run_rsync(cmd, 10, allow_vanished=False)
    assert "exited 24" in str(err.value) and "allow_vanished" in str(err.value)
    assert err.value.result["changes"] == 1


def test_run_rsync_error_names_code_and_last_messages(tmp_path):
    cmd = fake_rsync(tmp_path, "", rc=23, stderr="rsync: change_dir \"/nope\" failed: No such file or directory (2)\n")
    with pytest.raises(rsync.RsyncError) as err:
        rsync.run_rsync(cmd, 10, allow_vanished=True)
    assert "exited 23: partial transfer due to error" in str(err.value)
    assert "change_dir" in str(err.value)


def test_run_rsync_runs_with_c_locale(tmp_path):
    script = tmp_path / "env-rsync"
    script.write_text("#!/bin/sh\necho \">f+++++++++ $LC_ALL\"\n")
    script.chmod(0o755)
    result = rsync.run_rsync([str(script)], 10, False)
    assert result["diff"] == [">f+++++++++ C"]
