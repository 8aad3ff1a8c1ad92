import os
import shlex
import stat
import subprocess
import sys
import textwrap
import time

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


@pytest.mark.parametrize("rc, stderr", [
    (255, "Connection to origin closed by remote host.\nrsync: connection unexpectedly closed (5120 bytes received so far) [receiver]\n"),
    (12, "rsync error: error in rsync protocol data stream (code 12) at io.c(232) [receiver=3.2.7]\n"),
    (10, "rsync error: error in socket IO (code 10)\n"),
])
def test_run_rsync_says_when_the_connection_to_the_origin_broke(tmp_path, rc, stderr):
    cmd = fake_rsync(tmp_path, ">f+++++++++ a\n", rc=rc, stderr=stderr)
    with pytest.raises(rsync.RsyncError) as err:
        rsync.run_rsync(cmd, 10, allow_vanished=True)
    message = str(err.value)
    assert "exited %d" % rc in message and "the connection to the origin broke" in message
    assert "the same command pulls only what is missing" in message and stderr.splitlines()[-1] in message


def test_run_rsync_does_not_blame_the_connection_for_other_errors(tmp_path):
    cmd = fake_rsync(tmp_path, "", rc=23, stderr="rsync: open \"/x\" failed: Permission denied (13)\n")
    with pytest.raises(rsync.RsyncError) as err:
        rsync.run_rsync(cmd, 10, allow_vanished=False)
    assert "connection" not in str(err.value)


def test_run_rsync_runs_with_c_locale(tmp_path):
    script = tmp_path / "env-rsync"
    script.write_text("#!/bin/sh\necho \">f+++++++++ $LC_ALL\"\n")
    script.chmod(0o755)
    result = rsync.run_rsync([str(script)], 10, False)
    assert result["diff"] == [">f+++++++++ C"]


def test_build_command_files_from_stdin():
    args = rsync.build_command("rsync", "ssh", "s/", "d/", delete=False, checksum=True, files_from=True)
    assert {"--files-from=-", "--from0", "--checksum"} <= set(args) and "--delete" not in args
    assert "--ignore-missing-args" not in args
    assert "--ignore-missing-args" in rsync.build_command("rsync", "ssh", "s/", "d/", files_from=True,
                                                          ignore_missing=True)
    assert "--files-from=-" not in rsync.build_command("rsync", "ssh", "s/", "d/", ignore_missing=True)


@pytest.mark.parametrize("patterns, path, excluded", [
    (["cyrus.squat"], "cyrus.squat", True),
    (["cyrus.squat"], "user/a/cyrus.squat", True),
    (["cyrus.squat"], "user/a/cyrus.squat.x", False),
    (["cyrus.squat"], "cyrus.squat/inside", True),          # a directory of that name too
    (["/proc/"], "proc/123", True),                          # anchored at the tree's root
    (["/proc/"], "user/proc/123", False),
    (["/proc/"], "proc", False),                             # a trailing / matches directories only
    (["proc/"], "user/proc/123", True),
    (["*.tmp"], "a/b/c.tmp", True),
    (["a/*.tmp"], "x/a/b/c.tmp", False),                     # * stops at /
    (["a/*.tmp"], "x/a/c.tmp", True),                        # a pattern with / matches the path's end
    (["xa/b"], "a/b", False),
    (["/x/**/y"], "x/1/2/y", True),                          # ** does not stop
    (["/x/**"], "x/1/2", True),
    (["d?/"], "d1/f", True),
    (["d?/"], "d12/f", False),
    (["[ab]x"], "bx", True),
    (["[!ab]x"], "bx", False),
    (["[!ab]x"], "cx", True),
    (["lib/***"], "lib/a/b", True),
    (["/lock/", "/socket/"], "socket/s", True),
    (["a+b(c)"], "a+b(c)", True),                            # regex characters are literal
    ([], "anything", False),
])
def test_exclude_filter_follows_rsync_rules(patterns, path, excluded):
    assert rsync.ExcludeFilter(patterns)(path) is excluded


def test_recent_files_command_is_quoted_and_includes_since_itself():
    command = rsync.recent_files_command("/srv/my tree's", 1718000000.25)
    assert shlex.split(command) == [
        "cd", "/srv/my tree's", "&&", "find", ".", "-ignore_readdir_race", "(", "-type", "f", "-o", "-type", "l",
        ")", "-newermt", "@1718000000.249999999", "-print0"]
    assert "@-0.000000001" in rsync.recent_files_command("/t", 0)


@pytest.mark.skipif(subprocess.call(["find", "/", "-maxdepth", "0", "-newermt", "@0"], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL) != 0, reason="GNU find needed")
def test_recent_files_command_lists_files_at_or_after_since(tmp_path):
    (tmp_path / "d").mkdir()
    for name, mtime in (("old", 1000.0), ("same", 2000.5), ("new", 3000.0), ("d/new", 2500.0)):
        (tmp_path / name).write_text(name)
        os.utime(str(tmp_path / name), ns=(int(mtime * 1e9), int(mtime * 1e9)))
    os.symlink("new", str(tmp_path / "link"))
    out = subprocess.check_output(rsync.recent_files_command(str(tmp_path), 2000.5), shell=True)
    assert sorted(out.split(b"\0")[:-1]) == [b"./d/new", b"./link", b"./new", b"./same"]


def python_popen(code):
    """A popen that runs Python ``code`` instead of the given command."""
    def popen(args, **kwargs):
        return subprocess.Popen([sys.executable, "-c", code], **kwargs)
    return popen


def test_list_files_strips_filters_and_counts(tmp_path):
    code = ("import sys\nout = sys.stdout.buffer\n"
            "out.write(b''.join(b'./dir/file%05d\\0' % i for i in range(20000)))\n"  # more than one read
            "out.write(b'./x/cyrus.squat\\0./proc/1\\0./a b\\nc\\0./last')\n")
    with open(str(tmp_path / "spool"), "w+b") as spool:
        count, rc, tail = rsync.list_files(["ssh"], spool, rsync.ExcludeFilter(["cyrus.squat", "/proc/"]),
                                           popen=python_popen(code))
        spool.seek(0)
        listed = spool.read().split(b"\0")
    assert (count, rc, tail) == (20002, 0, [])
    assert listed[0] == b"dir/file00000" and listed[19999] == b"dir/file19999"
    assert listed[20000:] == [b"a b\nc", b"last", b""]


def test_list_files_reports_failure(tmp_path):
    with open(str(tmp_path / "spool"), "w+b") as spool:
        count, rc, tail = rsync.list_files(
            ["ssh"], spool, popen=python_popen(
                "import sys\nsys.stdout.write('./a\\0./trunc')\nsys.stderr.write('find: oops\\n')\nsys.exit(1)\n"))
    assert (count, rc, tail) == (1, 1, ["find: oops"])


@pytest.mark.parametrize("flags, missed", [
    (">fc........", True),
    (">fc..p.....", True),     # the first pass sets the mode; the content is this pass's
    (">fcst......", False),    # size and time differ: the quick check sees it
    (">fc.t......", False),
    (">f+++++++++", False),
    ("cLc.t......", False),
    (".d..t......", False),
    (".f...p.....", False),
])
def test_quick_check_misses(flags, missed):
    assert rsync.quick_check_misses(flags) is missed


def test_run_rsync_feeds_stdin_and_filters_counts(tmp_path):
    script = tmp_path / "stdin-rsync"
    script.write_text("#!/bin/sh\ntr '\\0' '\\n' | sed 's/^/>fc........ /'\necho '>fcst...... grown'\n")
    script.chmod(0o755)
    with open(str(tmp_path / "list"), "w+b") as names:
        names.write(b"a\0b\0")
        names.seek(0)
        result = rsync.run_rsync([str(script)], 10, False, stdin=names, counts=rsync.quick_check_misses)
    assert result["changes"] == 2 and result["diff"] == [">fc........ a", ">fc........ b"]


def test_build_command_preserves_acls_xattrs_and_holes_when_asked():
    default = rsync.build_command("rsync", "ssh", "s/", "d/")
    assert not {"--acls", "--xattrs", "--sparse"} & set(default)
    args = rsync.build_command("rsync", "ssh", "s/", "d/", preserve=["acls", "xattrs", "holes"])
    assert {"--acls", "--xattrs", "--sparse"} <= set(args) and "--numeric-ids" not in args


def test_run_rsync_says_when_the_target_cannot_hold_acls_or_xattrs(tmp_path):
    stderr = "rsync: [receiver] set_acl: sys_acl_set_file(a, ACCESS): Operation not supported (95)\n"
    cmd = fake_rsync(tmp_path, "", rc=23, stderr=stderr)
    with pytest.raises(rsync.RsyncError) as err:
        rsync.run_rsync(cmd, 10, allow_vanished=False)
    assert "does not support the ACLs or extended attributes" in str(err.value)
    assert "leave acls/xattrs out of preserve" in str(err.value)


def test_run_rsync_says_where_the_target_is_full_and_what_to_do(tmp_path):
    dest = tmp_path / "spool"
    stderr = ('rsync: [receiver] write failed on "%s/user/a/17.": No space left on device (28)\n'
              "rsync error: error in file IO (code 11) at receiver.c(401) [receiver=3.2.7]\n" % dest)
    cmd = fake_rsync(tmp_path, "", rc=11, stderr=stderr)
    with pytest.raises(rsync.RsyncError) as err:
        rsync.run_rsync(cmd + ["root@o:%s/" % dest, "%s/" % dest], 10, allow_vanished=False)
    message = str(err.value)
    # the tree does not exist yet: its filesystem is its nearest parent's
    assert message.startswith("rsync exited 11: error in file I/O (no space left on device on the target's %s "
                              "(filesystem /" % dest), message
    assert " free of " in message
    assert "now); free space there and run the pull again: the files already pulled are whole and are not " \
           "pulled again); last messages: rsync: [receiver] write failed" in message


def test_no_space_hint_for_a_quota_and_nothing_else(tmp_path):
    quota = rsync.no_space_hint(['rsync: [receiver] write failed on "x": Disk quota exceeded (122)'], str(tmp_path))
    assert quota.startswith(" (disk quota exceeded on the target's %s (filesystem " % tmp_path)
    assert rsync.no_space_hint(["rsync: connection unexpectedly closed"], str(tmp_path)) is None


# rsync 3.2 with --itemize-changes --info=progress2, as it came: updates end with a carriage return.
PROGRESS_OUTPUT = (
    b".d..t...... ./\n>f+++++++++ f7\n\r         32,768   0%    0.00kB/s    0:00:00  "
    b"\r      3,000,000  14%  471.63MB/s    0:00:00 (xfr#1, ir-chk=1041/1049)"
    b"\r      3,000,000  14%   26.45MB/s    0:00:00 (xfr#1, ir-chk=1000/5049)\n"
    b">f+++++++++ dir/f8\n"
    b"\r      6,000,000  28%   26.45MB/s    0:00:01 (xfr#2, to-chk=0/5050)\n\n")


def test_build_command_adds_progress2_when_asked():
    assert "--info=progress2" in rsync.build_command("rsync", "ssh", "s/", "d/", progress=True)
    assert not any(a.startswith("--info") for a in rsync.build_command("rsync", "ssh", "s/", "d/"))


def test_run_rsync_gives_progress_updates_and_still_counts_the_itemized_lines(tmp_path):
    code = ("import sys, time\nout = sys.stdout.buffer\nout.write(%r)\nout.flush()\n"
            "out.write(%r)\n" % (PROGRESS_OUTPUT[:150], PROGRESS_OUTPUT[150:] + STATS.encode()))
    updates = []
    result = rsync.run_rsync(["rsync"], 10, False, popen=python_popen(code), progress=lambda *u: updates.append(u))
    assert updates == [(32768, None, None, None), (3000000, 1, 8, 1049), (3000000, 1, 4049, 5049),
                       (6000000, 2, 5050, 5050)]
    assert result["changes"] == 2 and result["diff"] == [">f+++++++++ f7", ">f+++++++++ dir/f8"]
    assert result["stats"]["transferred_size"] == 5120


def test_run_rsync_gives_updates_before_the_next_newline(tmp_path):
    """An update is read when its carriage return comes, not at the end of the line (a long file's
    updates come for minutes without a newline)."""
    marker = tmp_path / "seen"
    code = ("import os, sys, time\nout = sys.stdout.buffer\n"
            "out.write(b'\\r      1,000  1%%  1.00kB/s    0:00:09  \\r')\nout.flush()\n"
            "for _ in range(200):\n    time.sleep(0.02)\n    if os.path.exists(%r): sys.exit(0)\n"
            "sys.exit(7)  # the update was not read before the newline\n" % str(marker))
    seen = []

    def update(*figures):
        seen.append(figures)
        marker.write_text("")
    rsync.run_rsync(["rsync"], 10, False, popen=python_popen(code), progress=update)
    assert seen == [(1000, None, None, None)]


def test_list_changed_keeps_the_names_of_each_file_of_several_links(tmp_path):
    code = ("import sys\nsys.stdout.buffer.write(b'f 12 2 ./a/x\\0d 5 3 ./b\\0f 12 2 ./b/y z\\0f 13 1 ./c\\0"
            "f 14 2 ./x/cyrus.squat\\0f 14 2 ./d\\0')\n")
    links = {}
    with open(str(tmp_path / "dirs"), "w+b") as dirs, open(str(tmp_path / "others"), "w+b") as others:
        counts = rsync.list_changed(["ssh"], dirs, others, rsync.ExcludeFilter(["cyrus.squat"]),
                                    popen=python_popen(code), links=links)
        others.seek(0)
        assert others.read().split(b"\0")[:-1] == [b"a/x", b"b/y z", b"c", b"d"]
    assert counts == (1, 4, False, 0, [])
    # by inode, excluded names too (relink leaves them out): directories and single links are not kept
    assert links == {b"12": [b"a/x", b"b/y z"], b"14": [b"x/cyrus.squat", b"d"]}


def test_relink_makes_the_names_of_one_origin_file_one_file_here(tmp_path):
    for name in ("a/x", "b/y", "c/z", "e/one", "e/two", "f/w"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"same")
    os.link(str(tmp_path / "e/one"), str(tmp_path / "e/linked"))
    (tmp_path / "b/y").chmod(0o640)
    links = {b"1": [b"a/x", b"b/y", b"c/z", b"gone/q"],   # b/y and c/z came as copies, gone/q is not here
             b"2": [b"e/one", b"e/linked"],               # already one file
             b"3": [b"missing", b"f/w"],                  # the first name is not here: left as it is
             b"4": [b"x/cyrus.squat", b"f/w"]}            # excluded name: the other alone, nothing to do
    done = rsync.relink(str(tmp_path) + "/", links, rsync.ExcludeFilter(["cyrus.squat"]))
    assert done == [(b"b/y", b"a/x"), (b"c/z", b"a/x")]
    inode = os.stat(str(tmp_path / "a/x")).st_ino
    assert [os.stat(str(tmp_path / n)).st_ino == inode for n in ("b/y", "c/z", "f/w")] == [True, True, False]
    assert os.stat(str(tmp_path / "a/x")).st_nlink == 3 and (tmp_path / "c/z").read_bytes() == b"same"
    assert not list(tmp_path.rglob(".bluemind-link.*"))
    assert rsync.relink(str(tmp_path) + "/", links) == []  # done once: nothing the second time


def test_relink_replaces_a_spare_name_left_by_a_killed_run(tmp_path):
    for name in ("a/x", "b/y"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"same")
    (tmp_path / "b/.bluemind-link.y").write_bytes(b"left over")  # killed between the link and the rename
    done = rsync.relink(str(tmp_path) + "/", {b"1": [b"a/x", b"b/y"]})
    assert done == [(b"b/y", b"a/x")]
    assert os.stat(str(tmp_path / "b/y")).st_ino == os.stat(str(tmp_path / "a/x")).st_ino
    assert not list(tmp_path.rglob(".bluemind-link.*"))


def test_a_warm_walk_reads_every_entrys_status_and_prints_a_dot_a_directory(tmp_path):
    """The walk the final pull runs on the origin before its stop: the same find as the window's walk
    (every entry's status read by -newerct), nothing listed but a dot for each directory that is not newer,
    which makes a walk whose SSH channel closed die at its next directory."""
    for name in ("a/b", "a/c", "d"):
        (tmp_path / name).mkdir(parents=True)
    for name in ("a/b/1.", "a/c/2.", "d/3."):
        (tmp_path / name).write_text("x")
    command = rsync.warm_walk_command(str(tmp_path), 0)
    assert "-newerct @" in command and "-printf ." in command
    same = rsync.changed_entries_command(str(tmp_path), 0).split(" -newerct")
    assert command.startswith(same[0]) and "-newerct" + same[1].split(" -printf")[0] in command
    out = subprocess.run(["sh", "-c", command], capture_output=True, check=True).stdout
    assert out == b""  # everything is newer than the epoch
    old = rsync.warm_walk_command(str(tmp_path), 4102444800)  # 2100: nothing newer, every directory a dot
    assert subprocess.run(["sh", "-c", old], capture_output=True, check=True).stdout == b"." * 5


def test_warm_walks_run_some_at_a_time_join_when_all_ended_and_stop_ends_the_rest():
    endless = ["sh", "-c", "while :; do printf .; sleep 0.02; done"]
    quick = ["sh", "-c", "printf ..."]
    started = []

    def popen(args, **kwargs):
        started.append(args)
        return subprocess.Popen(args, **kwargs)

    walks = rsync.WarmWalks([quick, quick, quick], 2, popen=popen)
    walks.join()
    assert len(started) == 3 and all(proc.poll() == 0 for proc in walks.running)
    walks = rsync.WarmWalks([endless, endless, quick], 2, popen=popen)
    for _attempt in range(100):
        if len(walks.running) == 2:
            break
        time.sleep(0.02)
    walks.stop()  # the two endless ones killed, the third never started
    assert len(walks.running) == 2 and all(proc.returncode is not None and proc.returncode < 0 for proc in walks.running)
    assert walks.pending == [quick]


def test_the_origins_entries_of_directories_come_while_more_names_are_sent(tmp_path):
    """OriginEntries (entries_command run here by sh) lists the first ENTRIES_BATCH directories before it is
    sent the others, so a walk has its changed directories compared as it finds them; finish() gives every
    directory to ``each``, an empty one and one gone included, once."""
    names = [b"d%02d" % i for i in range(rsync.ENTRIES_BATCH + 5)]
    for name in names[:-2]:
        (tmp_path / name.decode()).mkdir()
        (tmp_path / name.decode() / "1.").write_bytes(b"x" * int(name[1:]))
    (tmp_path / names[-2].decode()).mkdir()  # empty; the last one does not exist
    seen = {}
    listing = rsync.OriginEntries(["sh", "-c", rsync.entries_command(str(tmp_path))], seen.setdefault)
    for name in names[:rsync.ENTRIES_BATCH]:
        listing.add(name)
    deadline = time.monotonic() + 10
    while len(seen) < rsync.ENTRIES_BATCH - 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    # the batch's directories were listed before the names were ended (the last one with the next batch's
    # first: a directory's entries end when the next one's begin)
    assert len(seen) >= rsync.ENTRIES_BATCH - 1
    for name in names[rsync.ENTRIES_BATCH:]:
        listing.add(name)
    rc, _tail = listing.finish()
    assert rc != 0  # find says that the last directory does not exist
    assert sorted(seen) == names
    assert seen[b"d07"][b"1."][:2] == ("f", 7) and seen[names[-2]] == {} and seen[names[-1]] == {}


def test_a_directory_of_another_time_is_left_undecided_when_the_caller_does_not_know_every_changed_one():
    origin = {b"sub": ("d", 0, 2), b"same": ("d", 0, 1), b"f": ("f", 3, 5)}
    target = {b"sub": ("d", 0, 1), b"same": ("d", 0, 1), b"f": ("f", 3, 5)}
    undecided = []
    assert rsync.compare_directory(b"top", origin, target, None, undecided=undecided) == ([], [])
    assert undecided == [b"top/sub"]
    assert rsync.compare_directory(b"top", origin, target, set()) == ([], [b"top/sub"])
    assert rsync.compare_directory(b"top", origin, target, {b"top/sub"}) == ([], [])
