import json
import os
import shlex
import sys
from unittest import mock

import pytest

from ansible_collections.bluemind.migration.plugins.module_utils import rsync as rsync_utils, state
from ansible_collections.bluemind.migration.plugins.modules import bluemind_sync

STATS = ("Number of regular files transferred: %d\nTotal transferred file size: %d bytes\n"
         "Total bytes received: 100\n")
FAKE_RSYNC = """#!%s
import json, sys, time
here = %r
with open(here + "/calls.jsonl", "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
scenario = json.load(open(here + "/scenario.json"))
dest = sys.argv[-1]
if "--files-from=-" in sys.argv:  # second pass: keep the list read on stdin
    recursive = "-r" in sys.argv
    with open(here + "/files.jsonl", "a") as log:
        log.write(json.dumps([("dirs:" if recursive else "") + dest, sys.stdin.buffer.read().decode()]) + "\\n")
    answer = scenario.get(("dirs:" if recursive else "recent:") + dest, {})
else:
    answer = scenario.get(("verify:" if "--checksum" in sys.argv else "") + dest, scenario.get(dest))
sys.stdout.write(answer.get("out", ""))
sys.stderr.write(answer.get("err", ""))
time.sleep(answer.get("sleep", 0))
sys.exit(answer.get("rc", 0))
"""
# ssh as run by Popen (the listing of recent files): answers "find:<tree>" from the scenario; the follower
# runs here, on this machine's trees.
FAKE_SSH = """#!%s
import json, os, shlex, sys
here = %r
with open(here + "/ssh.jsonl", "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
scenario = json.load(open(here + "/scenario.json"))
words = shlex.split(sys.argv[-1])
if words[:2] == ["exec", "python3"]:
    os.execv(sys.executable, [sys.executable] + words[2:])
key = ("changed:" if "-newerct" in words else "size:" if "awk" in words else "entries:" if "xargs" in words
       else "find:") + words[1]
if "xargs" in words:  # the directories whose entries are listed, read on stdin
    with open(here + "/entries.jsonl", "a") as log:
        log.write(json.dumps([words[1], sys.stdin.buffer.read().decode()]) + "\\n")
answer = scenario.get(key, {}) if words[0] == "cd" else {"rc": 99, "err": "unexpected\\n"}
sys.stdout.write(answer.get("out", ""))
sys.stderr.write(answer.get("err", ""))
sys.exit(answer.get("rc", 0))
"""
ORIGIN_CLOCK = "1718000000.123456789"


@pytest.fixture
def fake(tmp_path, commands, monkeypatch):
    """A fake rsync and ssh driven by a scenario, ssh master open/close and the origin's clock
    answered, key files present."""
    (tmp_path / "rsync").write_text(FAKE_RSYNC % (sys.executable, str(tmp_path)))
    (tmp_path / "rsync").chmod(0o755)
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "ssh").write_text(FAKE_SSH % (sys.executable, str(tmp_path)))
    (tmp_path / "bin" / "ssh").chmod(0o755)
    monkeypatch.setenv("PATH", "%s:%s" % (tmp_path / "bin", os.environ["PATH"]))
    (tmp_path / "key").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nSECRETKEYMATERIAL\n")
    (tmp_path / "known_hosts").write_text("192.0.2.10 ssh-ed25519 AAAA\n")
    commands.add(lambda a: a[-1] == "true", (0, "", ""))
    commands.add(lambda a: a[-1] == "date +%s.%N", (0, ORIGIN_CLOCK + "\n", ""))
    commands.add(lambda a: "-O" in a, (0, "", ""))

    class Fake(object):
        def scenario(self, **trees):
            (tmp_path / "scenario.json").write_text(json.dumps(trees))

        def calls(self):
            path = tmp_path / "calls.jsonl"
            return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

        def ssh_calls(self, size=False):
            """The listings run on the origin (with ``size``, the measures of the trees' sizes)."""
            path = tmp_path / "ssh.jsonl"
            calls = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
            return [c for c in calls if ("awk" in shlex.split(c[-1])) == size]

        def entries_listed(self):
            """{tree: directories} whose entries the origin listed."""
            path = tmp_path / "entries.jsonl"
            lines = path.read_text().splitlines() if path.exists() else []
            return dict((tree, text.split("\0")[:-1]) for tree, text in map(json.loads, lines))

        def files_read(self):
            """{dest: names} read on stdin by the second passes, sorted (rsync reads a list in any order; the
            changed directories are compared in a thread of their own as the walk finds them)."""
            path = tmp_path / "files.jsonl"
            lines = path.read_text().splitlines() if path.exists() else []
            return dict((dest, sorted(text.split("\0")[:-1])) for dest, text in map(json.loads, lines))

        def args(self, **extra):
            return dict(dict(origin_host="192.0.2.10", ssh_key=str(tmp_path / "key"),
                             known_hosts=str(tmp_path / "known_hosts"), rsync_path=str(tmp_path / "rsync"),
                             ssh_control_path=str(tmp_path / "cm-%C"), trees=["/srv/a", "/srv/b/"],
                             progress_path=str(tmp_path / "run" / "pull-progress.json")), **extra)

    return Fake()


def tree(result, path):
    return next(t for t in result["trees"] if t["path"] == path)


def test_pull_reports_changes_per_tree(run_module, fake, commands):
    fake.scenario(**{"/srv/a/": dict(out=">f+++++++++ x\n.d..t...... ./\n" + STATS % (1, 2048)),
                     "/srv/b/": dict(out=".d..t...... ./\n" + STATS % (0, 0))})
    result = run_module(bluemind_sync, fake.args())
    assert result["changed"] is True
    assert (tree(result, "/srv/a")["changes"], tree(result, "/srv/a")["bytes"], tree(result, "/srv/a")["files"]) == (1, 2048, 1)
    assert tree(result, "/srv/b")["changed"] is False
    assert result["bytes"] == 2048 and result["files"] == 1
    assert "diff" not in result
    # one master connection opened before the workers, closed after
    assert commands.calls[0]["args"][-1] == "true" and "-O" in commands.calls[-1]["args"]


def test_pull_returns_its_span_on_the_targets_clock(run_module, fake):
    fake.scenario(**{"/srv/a/": dict(out=STATS % (0, 0)), "/srv/b/": dict(out=STATS % (0, 0))})
    before = state.stamp()
    result = run_module(bluemind_sync, fake.args())
    after = state.stamp()
    # the state's own format (the report's timeline draws the final pull from it), in call order
    assert before <= result["started_at"] <= result["ended_at"] <= after
    assert state.parse_stamp(result["ended_at"]) >= state.parse_stamp(result["started_at"])


def test_rsync_command_line(run_module, fake):
    fake.scenario(**{"/var/lib/cyrus/": dict(out="")})
    run_module(bluemind_sync, fake.args(trees=["/var/lib/cyrus"]))
    [args] = fake.calls()
    assert args[-2:] == ["root@192.0.2.10:/var/lib/cyrus/", "/var/lib/cyrus/"]
    assert {"-aH", "--delete", "--modify-window=-1", "--itemize-changes", "--exclude=/proc/",
            "--exclude=cyrus.squat", "--acls", "--xattrs", "--sparse"} <= set(args)
    assert "--numeric-ids" not in args and "--dry-run" not in args
    shell = shlex.split(args[args.index("-e") + 1])
    assert "StrictHostKeyChecking=yes" in shell and "ControlMaster=auto" in shell


def test_unchanged_second_pull(run_module, fake):
    fake.scenario(**{"/srv/a/": dict(out=".d..t...... ./\n"), "/srv/b/": dict(out="")})
    result = run_module(bluemind_sync, fake.args())
    assert result["changed"] is False


def test_check_mode_is_a_dry_run_with_diff(run_module, fake):
    lines = "".join(">f+++++++++ m%d\n" % i for i in range(5))
    fake.scenario(**{"/srv/a/": dict(out=lines), "/srv/b/": dict(out="*deleting   old\n")})
    result = run_module(bluemind_sync, fake.args(diff_max_lines=2), check_mode=True, diff=True)
    assert result["changed"] is True
    assert all("--dry-run" in call for call in fake.calls())
    prepared = result["diff"]["prepared"]
    assert "# /srv/a: 5 change(s)\n>f+++++++++ m0\n>f+++++++++ m1\n# ... 3 more not shown" in prepared
    assert "# /srv/b: 1 change(s)\n*deleting   old" in prepared


def test_verify_passes_on_identical_trees(run_module, fake):
    fake.scenario(**{"verify:/srv/a/": dict(out=".d..t...... ./\n"), "verify:/srv/b/": dict(out="")})
    result = run_module(bluemind_sync, fake.args(verify=True))
    assert result["changed"] is False and not result.get("failed")
    assert all({"--checksum", "--dry-run"} <= set(call) for call in fake.calls())


def test_verify_fails_on_any_difference(run_module, fake):
    fake.scenario(**{"verify:/srv/a/": dict(out=">fc........ user/inbox/1.\n"), "verify:/srv/b/": dict(out="")})
    result = run_module(bluemind_sync, fake.args(verify=True))
    assert result["failed"] is True and result["changed"] is False
    assert "differs from the origin in /srv/a (1)" in result["msg"] and ">fc........ user/inbox/1." in result["msg"]


def test_vanished_files_need_allow_vanished(run_module, fake):
    fake.scenario(**{"/srv/a/": dict(out=">f+++++++++ x\n", rc=24, err="file has vanished: \"/srv/a/y\"\n"),
                     "/srv/b/": dict(out="")})
    failed = run_module(bluemind_sync, fake.args())
    assert failed["failed"] is True and "exited 24" in failed["msg"]
    assert tree(failed, "/srv/b")["rc"] == 0  # the other tree still ran and reports
    assert tree(failed, "/srv/a")["messages"] == ['file has vanished: "/srv/a/y"']
    accepted = run_module(bluemind_sync, fake.args(allow_vanished=True))
    assert not accepted.get("failed") and tree(accepted, "/srv/a")["vanished"] == 1


def test_ssh_failure_stops_before_rsync(run_module, fake, commands):
    commands.rules.insert(0, (lambda a: a[-1] == "true", (255, "", "Permission denied (publickey).\n")))
    fake.scenario()
    result = run_module(bluemind_sync, fake.args())
    assert result["failed"] is True
    assert "cannot pull from the origin: ssh to root@192.0.2.10 failed (ssh exit 255" in result["msg"]
    assert "authorized_keys" in result["msg"]
    assert fake.calls() == []


def test_key_never_appears(run_module, fake):
    fake.scenario(**{"/srv/a/": dict(out=">f+++++++++ x\n"), "/srv/b/": dict(out="", rc=12, err="rsync: oops\n")})
    result = run_module(bluemind_sync, fake.args(), diff=True)
    assert result["failed"] is True
    assert "SECRETKEYMATERIAL" not in json.dumps(result)


def test_missing_parents_are_created_except_in_check_mode(run_module, fake, tmp_path):
    tree = str(tmp_path / "new" / "spool" / "cyrus")
    fake.scenario(**{tree + "/": dict(out="")})
    run_module(bluemind_sync, fake.args(trees=[tree]), check_mode=True)
    assert not (tmp_path / "new").exists()
    run_module(bluemind_sync, fake.args(trees=[tree]))
    assert (tmp_path / "new" / "spool").is_dir() and not (tmp_path / "new" / "spool" / "cyrus").exists()


# checksum_since: a second pass compares by content the files modified on the origin since then

SINCE = 1717999990.5


def test_recent_files_get_a_checksum_pass(run_module, fake):
    fake.scenario(**{
        "/srv/a/": dict(out=".d..t...... ./\n" + STATS % (0, 0)),
        "find:/srv/a": dict(out="./user/1.\0./user/cyrus.squat\0./proc/9\0./user/proc/1\0./link\0"),
        "recent:/srv/a/": dict(out=".d..t...... user/\n>fc........ user/1.\n" + STATS % (1, 11)),
        "/srv/b/": dict(out=""),
        "find:/srv/b": dict(out=""),
    })
    result = run_module(bluemind_sync, fake.args(checksum_since=SINCE, excludes=["cyrus.squat", "/srv/a/proc/"]),
                        diff=True)
    assert not result.get("failed"), result
    first, second = [c for c in fake.calls() if c[-1] == "/srv/a/"]
    assert "--files-from=-" not in first and "--delete" in first
    assert {"-aH", "--modify-window=-1", "--itemize-changes", "--checksum", "--files-from=-", "--from0",
            "--exclude=/proc/", "--exclude=cyrus.squat"} <= set(second)
    assert not {"--delete", "--dry-run", "--ignore-missing-args"} & set(second)
    assert second[second.index("-e") + 1] == first[first.index("-e") + 1]
    assert second[-2:] == ["root@192.0.2.10:/srv/a/", "/srv/a/"]
    # excluded names (cyrus.squat, what is under /proc/) are left out of the list rsync reads
    assert fake.files_read() == {"/srv/a/": ["link", "user/1.", "user/proc/1"]}
    a, b = tree(result, "/srv/a"), tree(result, "/srv/b")
    assert (a["changed"], a["changes"], a["recent"], a["recent_changed"], a["files"], a["bytes"]) == (
        True, 1, 3, 1, 1, 11)
    assert "# /srv/a: 1 change(s)\n>fc........ user/1." in result["diff"]["prepared"]
    # an empty list: no second rsync
    assert len([c for c in fake.calls() if c[-1] == "/srv/b/"]) == 1
    assert (b["changed"], b["recent"], b["recent_changed"]) == (False, 0, 0)
    assert result["changed"] is True and result["files"] == 1
    assert result["origin_clock_start"] == float(ORIGIN_CLOCK)


def test_recent_listing_runs_find_over_the_shared_connection(run_module, fake):
    fake.scenario(**{"/srv/it's/": dict(out=""), "find:/srv/it's": dict(out="")})
    run_module(bluemind_sync, fake.args(trees=["/srv/it's"], checksum_since=SINCE))
    [ssh_args] = fake.ssh_calls()
    assert "ControlMaster=auto" in ssh_args and ssh_args[-2] == "root@192.0.2.10"
    assert shlex.split(ssh_args[-1]) == [
        "cd", "/srv/it's", "&&", "find", ".", "-ignore_readdir_race", "(", "-type", "f", "-o", "-type", "l", ")",
        "-newermt", "@1717999990.499999999", "-print0"]
    assert len(fake.calls()) == 1  # nothing listed: no second rsync


def test_recent_pass_counts_only_what_a_quick_check_misses_in_check_mode(run_module, fake):
    fake.scenario(**{
        "/srv/a/": dict(out=">f+++++++++ new\n>f.st...... grown\n.f...p..... mode\n"),
        "find:/srv/a": dict(out="./new\0./grown\0./same\0./mode\0"),
        # a dry run of the second pass sees again what the first one would copy
        "recent:/srv/a/": dict(out=">f+++++++++ new\n>fcst...... grown\n>fc........ same\n>fc..p..... mode\n"),
        "/srv/b/": dict(out=""), "find:/srv/b": dict(out=""),
    })
    result = run_module(bluemind_sync, fake.args(checksum_since=SINCE), check_mode=True)
    assert all("--dry-run" in call for call in fake.calls())
    a = tree(result, "/srv/a")
    assert (a["changes"], a["recent"], a["recent_changed"]) == (5, 4, 2)  # same and mode's content


def test_recent_pass_alone_makes_the_task_changed(run_module, fake):
    fake.scenario(**{
        "/srv/a/": dict(out=".d..t...... ./\n"), "find:/srv/a": dict(out="./x\0"),
        "recent:/srv/a/": dict(out=">fc........ x\n" + STATS % (1, 5)),
        "/srv/b/": dict(out=""), "find:/srv/b": dict(out="./y\0"), "recent:/srv/b/": dict(out=""),
    })
    result = run_module(bluemind_sync, fake.args(checksum_since=SINCE, allow_vanished=True))
    assert result["changed"] is True
    assert (tree(result, "/srv/a")["changed"], tree(result, "/srv/b")["changed"]) == (True, False)
    assert (tree(result, "/srv/b")["recent"], tree(result, "/srv/b")["recent_changed"]) == (1, 0)
    # while BlueMind runs, a listed file may be gone before rsync reads it
    assert all("--ignore-missing-args" in c for c in fake.calls() if "--files-from=-" in c)


def test_failed_listing_fails_naming_the_tree(run_module, fake):
    fake.scenario(**{
        "/srv/a/": dict(out=""), "find:/srv/a": dict(out="./x\0", rc=1, err="find: './x': Permission denied\n"),
        "/srv/b/": dict(out=""), "find:/srv/b": dict(out=""),
    })
    result = run_module(bluemind_sync, fake.args(checksum_since=SINCE))
    assert result["failed"] is True
    assert ("pull from root@192.0.2.10 failed for 1 tree(s): /srv/a: listing the files of /srv/a modified since "
            "1717999990.5 on the origin failed (ssh exit 1: find: './x': Permission denied)") in result["msg"]
    assert not any("--files-from=-" in c for c in fake.calls())  # no second pass on a partial list
    assert "recent" not in tree(result, "/srv/a") and tree(result, "/srv/a")["messages"]
    assert tree(result, "/srv/b")["recent"] == 0


def test_failed_second_pass_fails_naming_the_tree(run_module, fake):
    fake.scenario(**{
        "/srv/a/": dict(out=""), "find:/srv/a": dict(out="./x\0"),
        "recent:/srv/a/": dict(rc=23, err="rsync: link_stat \"/srv/a/x\" failed: No such file or directory (2)\n"),
        "/srv/b/": dict(out=""), "find:/srv/b": dict(out=""),
    })
    result = run_module(bluemind_sync, fake.args(checksum_since=SINCE))
    assert result["failed"] is True
    assert "/srv/a: content comparison of the recent files: rsync exited 23" in result["msg"]
    assert tree(result, "/srv/a")["rc"] == 23 and "link_stat" in tree(result, "/srv/a")["messages"][0]


@pytest.mark.parametrize("option", ["checksum", "verify"])
def test_no_recent_pass_when_every_file_is_compared_anyway(run_module, fake, option):
    fake.scenario(**{"verify:/srv/a/": dict(out=""), "verify:/srv/b/": dict(out="")})
    result = run_module(bluemind_sync, fake.args(checksum_since=SINCE, **{option: True}))
    assert not result.get("failed"), result
    assert fake.ssh_calls() == [] and len(fake.calls()) == 2
    assert all("recent" not in t for t in result["trees"])


def test_no_recent_pass_without_checksum_since(run_module, fake):
    fake.scenario(**{"/srv/a/": dict(out=""), "/srv/b/": dict(out="")})
    result = run_module(bluemind_sync, fake.args())
    assert fake.ssh_calls() == [] and all("recent" not in t for t in result["trees"])


def test_unreadable_origin_clock_stops_before_rsync(run_module, fake, commands):
    commands.rules.insert(0, (lambda a: a[-1] == "date +%s.%N", (255, "", "Connection closed by 192.0.2.10\n")))
    fake.scenario()
    result = run_module(bluemind_sync, fake.args())
    assert result["failed"] is True and "reading the clock of root@192.0.2.10 failed (ssh exit 255" in result["msg"]
    assert fake.calls() == []
    assert "-O" in commands.calls[-1]["args"]  # the shared connection is closed all the same


# workers and the SSH transport

@pytest.mark.parametrize("requested, cpus, expected", [
    (0, 1, 1), (0, 2, 1), (0, 3, 1), (0, 4, 2), (0, 8, 4), (0, 64, 4), (0, None, 1),
    (1, 64, 1), (3, 2, 3), (16, 2, 16),
])
def test_effective_workers(requested, cpus, expected):
    assert bluemind_sync.effective_workers(requested, cpus) == expected


def test_available_cpus_is_the_affinity_when_known():
    with mock.patch.object(bluemind_sync.os, "sched_getaffinity", create=True, return_value={0, 3}):
        assert bluemind_sync.available_cpus() == 2
    with mock.patch.object(bluemind_sync.os, "sched_getaffinity", create=True, side_effect=OSError), \
            mock.patch.object(bluemind_sync.os, "cpu_count", return_value=6):
        assert bluemind_sync.available_cpus() == 6


@pytest.mark.parametrize("cpus, workers, expected", [(2, 0, 1), (8, 0, 4), (2, 3, 3)])
def test_workers_used_and_returned(run_module, fake, cpus, workers, expected):
    fake.scenario(**{"/srv/a/": dict(out=""), "/srv/b/": dict(out="")})
    real = bluemind_sync.concurrent.futures.ThreadPoolExecutor
    with mock.patch.object(bluemind_sync, "available_cpus", return_value=cpus), \
            mock.patch.object(bluemind_sync.concurrent.futures, "ThreadPoolExecutor", side_effect=real) as pool:
        result = run_module(bluemind_sync, fake.args(workers=workers))
    assert result["workers"] == expected
    assert pool.call_args.kwargs["max_workers"] == expected


def test_negative_workers_is_an_error(run_module, fake):
    fake.scenario()
    result = run_module(bluemind_sync, fake.args(workers=-1))
    assert result["failed"] is True and "workers >= 1" in result["msg"]
    assert fake.calls() == []


def test_ssh_cipher_and_no_compression(run_module, fake, commands):
    fake.scenario(**{"/srv/a/": dict(out=""), "/srv/b/": dict(out="")})
    run_module(bluemind_sync, fake.args())
    shell = shlex.split(fake.calls()[0][fake.calls()[0].index("-e") + 1])
    assert shell[shell.index("-c") + 1] == "aes128-gcm@openssh.com" and "Compression=no" in shell
    master = commands.calls[0]["args"]
    assert master[master.index("-c") + 1] == "aes128-gcm@openssh.com"  # negotiated by the master


def test_empty_ssh_cipher_keeps_ssh_default(run_module, fake, commands):
    fake.scenario(**{"/srv/a/": dict(out=""), "/srv/b/": dict(out="")})
    run_module(bluemind_sync, fake.args(ssh_cipher=""))
    shell = shlex.split(fake.calls()[0][fake.calls()[0].index("-e") + 1])
    assert "-c" not in shell and "-c" not in commands.calls[0]["args"] and "Compression=no" in shell


def make_entry(path, content=None, mtime_ns=1700000000123456789):
    if content is None:
        path.mkdir(parents=True, exist_ok=True)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    os.utime(path, ns=(mtime_ns, mtime_ns))


def test_final_pass_compares_the_changed_directories_and_pulls_changed_files_by_content(run_module, fake, tmp_path):
    a, b = tmp_path / "srv" / "a", tmp_path / "srv" / "b"
    b.mkdir(parents=True)
    inbox = a / "user" / "inbox"
    make_entry(inbox / "1.", b"0123456789")              # as on the origin
    make_entry(inbox / "2.", b"gone")                    # gone from the origin: removed here
    make_entry(inbox / "3.", b"x" * 21)                  # another size there
    make_entry(inbox / "moved")                          # a directory moved in there: another time
    make_entry(inbox / "cyrus.squat", b"index")          # excluded: kept, as rsync keeps it
    make_entry(inbox / "gone-dir" / "x", b"x")           # a directory gone from the origin
    make_entry(inbox / "gone-dir")
    make_entry(inbox / "sub")                            # changed itself: compared on its own
    make_entry(inbox)
    fake.scenario(**{
        "changed:%s" % a: dict(out="d 7 1 ./user/inbox\0f 7 1 ./user/inbox/4.\0d 7 1 ./proc\0f 7 1 ./user/cyrus.squat\0"
                                   "l 7 1 ./link\0d 7 1 ./proc/sub\0d 7 1 ./user/new\0d 7 1 ./user/inbox/sub\0"),
        "entries:%s" % a: dict(out="f 10 1700000000.1234567890 ./user/inbox/1.\0f 21 1700000000.2 ./user/inbox/3.\0"
                                   "f 5 1700000000.5 ./user/inbox/4.\0d 4096 1700000099.0 ./user/inbox/moved\0"
                                   "d 4096 1700000099.0 ./user/inbox/sub\0"),
        "dirs:%s/" % a: dict(out=">f+++++++++ user/inbox/4.\n" + STATS % (1, 7)),
        "recent:%s/" % a: dict(out=">fc........ link\n" + STATS % (1, 3)),
        "changed:%s" % b: dict(out=""),
    })
    result = run_module(bluemind_sync, fake.args(trees=[str(a), str(b)], changed_since=SINCE,
                                                 excludes=["cyrus.squat", "%s/proc/" % a]), diff=True)
    assert not result.get("failed"), result
    calls = fake.calls()
    assert all("--files-from=-" in call for call in calls)  # no walk of the whole trees
    whole, files = [c for c in calls if c[-1] == "%s/" % a]
    assert {"-r", "--delete"} <= set(whole) and "--checksum" not in whole
    assert "--checksum" in files and not {"-r", "--delete"} & set(files)
    # the directories the target has are compared entry by entry (the origin lists theirs); what
    # differs is pulled whole, with the changed directory the target lacks; excluded names and what
    # is under an excluded directory are left out; what the first pass received (4.) is not compared again
    assert fake.entries_listed() == {str(a): ["./user/inbox", "./user/inbox/sub"]}
    assert fake.files_read() == {"dirs:%s/" % a: sorted(["user/new", "user/inbox/3.", "user/inbox/4.", "user/inbox/moved"]),
                                 "%s/" % a: ["link", "user/inbox", "user/inbox/sub"]}
    # the module removed what the origin no longer has, and kept the excluded index
    assert sorted(os.listdir(inbox)) == ["1.", "3.", "cyrus.squat", "moved", "sub"]
    t = tree(result, str(a))
    assert (t["incremental"], t["changed_dirs"], t["recent"], t["changes"], t["deleted"], t["files"], t["bytes"]) == (
        True, 3, 2, 4, 2, 2, 10)
    # each step's time, for the report and the bench: every step of an incremental pull is named
    assert sorted(t["phases"]) == ["content", "directories", "list", "relink", "whole"]
    # each figure is rounded to the millisecond: their sum may pass the total by a few thousandths
    assert all(seconds >= 0 for seconds in t["phases"].values()) and sum(t["phases"].values()) <= t["seconds"] + 0.005
    assert {"*deleting   user/inbox/2.", "*deleting   user/inbox/gone-dir/"} <= set(result["diff"]["prepared"].splitlines())
    assert (tree(result, str(b))["incremental"], tree(result, str(b))["changed"]) == (True, False)
    assert len([c for c in calls if c[-1] == "%s/" % b]) == 0  # nothing changed: no rsync at all
    [listing] = [shlex.split(c[-1]) for c in fake.ssh_calls() if "-newerct" in c[-1] and str(a) in c[-1]]
    assert listing == ["cd", str(a), "&&", "find", ".", "-ignore_readdir_race", "-newerct", "@1717999990.499999999",
                       "-printf", "%y %i %n %p\\0"]


def test_a_dry_run_of_the_final_pass_removes_nothing_and_says_what_it_would(run_module, fake, tmp_path):
    a = tmp_path / "a"
    make_entry(a / "d" / "old", b"x")
    make_entry(a / "d")
    fake.scenario(**{"changed:%s" % a: dict(out="d 7 1 ./d\0"), "entries:%s" % a: dict(out=""),
                     "recent:%s/" % a: dict(out=STATS % (0, 0))})
    result = run_module(bluemind_sync, fake.args(trees=[str(a)], changed_since=SINCE), check_mode=True, diff=True)
    assert not result.get("failed"), result
    assert (a / "d" / "old").exists()
    assert tree(result, str(a))["deleted"] == 1 and result["changed"] is True
    assert "*deleting   d/old" in result["diff"]["prepared"]


def test_a_changed_tree_top_or_a_clock_gone_back_pulls_the_whole_tree(run_module, fake, tmp_path):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    os.makedirs(a)
    os.makedirs(b)
    fake.scenario(**{
        "changed:%s" % a: dict(out="d 7 1 .\0f 7 1 ./x\0"),
        a + "/": dict(out=""), "find:%s" % a: dict(out="./x\0"),
        "recent:%s/" % a: dict(out=""),
        "changed:%s" % b: dict(out="f 7 1 ./y\0"), "recent:%s/" % b: dict(out=""),
    })
    result = run_module(bluemind_sync, fake.args(trees=[a, b], changed_since=SINCE))
    whole = [c for c in fake.calls() if c[-1] == a + "/" and "--files-from=-" not in c]
    assert len(whole) == 1 and "--delete" in whole[0]
    # the whole pull still compares by content what was modified since
    assert fake.files_read()[a + "/"] == ["x"]
    assert "incremental" not in tree(result, a) and tree(result, b)["incremental"] is True
    assert "whole_trees" not in result

    gone_back = run_module(bluemind_sync, fake.args(trees=[a, b], changed_since=float(ORIGIN_CLOCK) + 60))
    assert "is before changed_since" in gone_back["whole_trees"]
    assert not any(t.get("incremental") for t in gone_back["trees"])


def test_a_tree_the_target_lacks_is_pulled_whole_and_one_found_late_is_pulled_too(run_module, fake, tmp_path, commands):
    """The plan ran before the origin's stop: a tree it did not find (trees_if_present) that the origin
    has now is pulled, and whole (the target has nothing of it: what changed since the last pull is
    not all it holds); one still absent is not."""
    a, late, absent = str(tmp_path / "a"), str(tmp_path / "new" / "hsm"), str(tmp_path / "never")
    os.makedirs(a)
    answer = (0, ORIGIN_CLOCK + "\n" + late + "\n", "")
    commands.rules.insert(0, (lambda argv: argv[-1].startswith("date +%s.%N; for d in "), answer))
    fake.scenario(**{"changed:%s" % a: dict(out=""), "recent:%s/" % a: dict(out=""),
                     late + "/": dict(out=">f+++++++++ old-file\n" + STATS % (1, 5)), "recent:%s/" % late: dict(out="")})
    result = run_module(bluemind_sync, fake.args(trees=[a], trees_if_present=[late, absent, a], changed_since=SINCE))
    assert not result.get("failed"), result
    assert result["trees_found"] == [late] and [t["path"] for t in result["trees"]] == [a, late]
    listing = [c["args"][-1] for c in commands.calls if c["args"][-1].startswith("date +%s.%N; for d in ")]
    assert len(listing) == 1 and shlex.split(listing[0].split("; ")[1])[3:5] == [late, absent]
    assert os.path.isdir(os.path.dirname(late))  # its parent made, as for the other trees
    assert "incremental" not in tree(result, late) and tree(result, late)["files"] == 1
    assert tree(result, a)["incremental"] is True


def test_changed_listing_failure_names_the_tree(run_module, fake, tmp_path):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    os.makedirs(a)
    os.makedirs(b)
    fake.scenario(**{"changed:%s" % a: dict(rc=1, err="find: permission denied\n"), "changed:%s" % b: dict(out="")})
    result = run_module(bluemind_sync, fake.args(trees=[a, b], changed_since=SINCE))
    assert result["failed"] is True
    assert "%s: listing the entries of %s changed since" % (a, a) in result["msg"]


def test_a_pull_left_running_by_a_dead_controller_holds_the_rerun_back(run_module, fake, tmp_path):
    """The module takes its lock; another holder makes it wait, then fail with the holder's pid."""
    import fcntl
    path = tmp_path / "locks" / "bluemind-migration-pull.lock"  # lock_dir is replaced per test (conftest)
    path.parent.mkdir(exist_ok=True)
    fd = os.open(str(path), os.O_RDWR | os.O_CREAT)
    os.write(fd, b"pid 4242 since earlier")
    other = os.open(str(path), os.O_RDWR)  # another open file: a lock of its own, as another process's
    fcntl.flock(other, fcntl.LOCK_EX)
    try:
        result = run_module(bluemind_sync, fake.args(lock_timeout=1))
    finally:
        os.close(other)
        os.close(fd)
    assert result["failed"] is True
    assert "a pull of the trees is still running on the target" in result["msg"] and "pid 4242" in result["msg"]
    assert fake.calls() == []  # no rsync ran


def test_preserve_leaves_out_what_the_operator_leaves_out(run_module, fake):
    fake.scenario(**{"/var/lib/cyrus/": dict(out="")})
    run_module(bluemind_sync, fake.args(trees=["/var/lib/cyrus"], preserve=["holes"]))
    [args] = fake.calls()
    assert "--sparse" in args and not {"--acls", "--xattrs"} & set(args)


def test_a_full_target_fails_the_pull_naming_the_tree_its_filesystem_and_what_to_do(run_module, fake):
    fake.scenario(**{"/srv/a/": dict(out=">f+++++++++ x\n", rc=11, err=(
        'rsync: [receiver] write failed on "/srv/a/y": No space left on device (28)\n'
        "rsync error: error in file IO (code 11) at receiver.c(401) [receiver=3.2.7]\n")),
        "/srv/b/": dict(out=">f+++++++++ z\n")})
    result = run_module(bluemind_sync, fake.args())
    assert result["failed"] is True
    assert result["msg"].startswith(
        "pull from root@192.0.2.10 failed for 1 tree(s): /srv/a: rsync exited 11: error in file I/O (no space left "
        "on device on the target's /srv/a (filesystem /"), result["msg"]
    assert "free space there and run the pull again: the files already pulled are whole and are not pulled " \
           "again); last messages: rsync: [receiver] write failed" in result["msg"]
    assert tree(result, "/srv/b")["changed"] is True and tree(result, "/srv/a")["rc"] == 11


PROGRESS = ("\r         32,768   0%    0.00kB/s    0:00:00  "
            "\r      2,048  14%  471.63MB/s    0:00:00 (xfr#1, ir-chk=3/5)\n")


def test_progress_is_written_on_the_target_and_returned(run_module, fake, tmp_path):
    fake.scenario(**{"/srv/a/": dict(out=">f+++++++++ x\n" + PROGRESS + STATS % (1, 2048), sleep=1),
                     "/srv/b/": dict(out=STATS % (0, 0), sleep=1),
                     "size:/srv/a": dict(out="5 8192\n"), "size:/srv/b": dict(rc=255, err="gone\n")})
    result = run_module(bluemind_sync, fake.args())
    assert all("--info=progress2" in call for call in fake.calls())
    measured = [shlex.split(call[-1])[:2] for call in fake.ssh_calls(size=True)]
    assert sorted(measured) == [["cd", "/srv/a"], ["cd", "/srv/b"]]
    written = json.loads((tmp_path / "run" / "pull-progress.json").read_text())
    assert written == result["progress"] and written["finished"] is True and written["job"] == "pull"
    a, b = written["trees"]
    assert (a["path"], a["state"], a["bytes"], a["files"], a["size_bytes"], a["size_entries"], a["percent"]) == (
        "/srv/a", "done", 2048, 1, 8192, 5, 100.0)
    assert a["entries_checked"] == 2  # rsync's last update: 3 of 5 still to check
    assert (b["path"], b["state"], b["size_bytes"], b["bytes"]) == ("/srv/b", "done", None, 0)  # not measured
    assert "progress file" not in json.dumps(result.get("warnings", []))  # (warnings of other tests may linger)


def test_a_failed_tree_is_failed_in_the_progress(run_module, fake):
    fake.scenario(**{"/srv/a/": dict(rc=23, err="rsync: oops\n"), "/srv/b/": dict(out="")})
    result = run_module(bluemind_sync, fake.args())
    assert result["failed"] is True
    assert [t["state"] for t in result["progress"]["trees"]] == ["failed", "done"]


def test_no_progress_with_interval_zero(run_module, fake, tmp_path):
    fake.scenario(**{"/srv/a/": dict(out=""), "/srv/b/": dict(out="")})
    result = run_module(bluemind_sync, fake.args(progress_interval=0))
    assert "progress" not in result and not result.get("failed")
    assert not any(a.startswith("--info") for call in fake.calls() for a in call)
    assert fake.ssh_calls(size=True) == [] and not (tmp_path / "run").exists()


def test_check_mode_leaves_the_progress_file_alone(run_module, fake, tmp_path):
    """A dry run must not replace the file of a pull left running."""
    fake.scenario(**{"/srv/a/": dict(out=""), "/srv/b/": dict(out="")})
    result = run_module(bluemind_sync, fake.args(), check_mode=True)
    assert not (tmp_path / "run").exists()
    assert [t["state"] for t in result["progress"]["trees"]] == ["done", "done"]


def test_an_unwritable_progress_file_warns_and_the_pull_goes_on(run_module, fake, tmp_path):
    fake.scenario(**{"/srv/a/": dict(out=""), "/srv/b/": dict(out="")})
    (tmp_path / "blocker").write_text("")
    result = run_module(bluemind_sync, fake.args(progress_path=str(tmp_path / "blocker" / "p.json")))
    assert not result.get("failed")
    assert "cannot write the progress file %s" % (tmp_path / "blocker" / "p.json") in json.dumps(result["warnings"])


def test_negative_progress_interval_is_an_error(run_module, fake):
    result = run_module(bluemind_sync, fake.args(progress_interval=-1))
    assert result["failed"] is True and "progress_interval is -1" in result["msg"]


def test_a_pull_started_ahead_of_the_stop_connects_then_reads_nothing_before_its_gate(run_module, fake, commands, tmp_path):
    """An earlier run's token at the gate: the job fails after its timeout, its connection opened (the
    proof that the key works, before the stop) but no clock read, no lock taken, no rsync, and its job
    file says so."""
    (tmp_path / "run.gate").write_text("earlier-run\n")
    job = tmp_path / "jobs" / "pull.json"
    result = run_module(bluemind_sync, fake.args(gate_path=str(tmp_path / "run.gate"), gate_token="this-run",
                                                 gate_timeout=0, job_file=str(job)))
    assert result["failed"] is True and "the origin's stop did not happen" in result["msg"]
    assert [c["args"][-1] for c in commands.calls] == ["true"]  # the master only: no clock, no -O exit
    assert fake.calls() == [] and not (tmp_path / "locks" / "bluemind-migration-pull.lock").exists()
    kept = json.loads(job.read_text())
    assert kept["failed"] is True and kept["msg"] == result["msg"] and kept["trees"] == []


def test_a_pull_whose_gate_opens_pulls_and_starts_its_clock_there(run_module, fake, commands, tmp_path):
    import threading
    fake.scenario(**{"/srv/a/": dict(out=">f+++++++++ x\n" + STATS % (1, 10)), "/srv/b/": dict(out=STATS % (0, 0))})
    gate_file, job = tmp_path / "run.gate", tmp_path / "jobs" / "pull.json"
    opened = []

    def open_gate():  # when the gate opens, on this clock (the module's start-up time plays no part)
        opened.append(state.stamp())
        gate_file.write_text("this-run\n")

    opener = threading.Timer(0.3, open_gate)
    opener.start()
    try:
        result = run_module(bluemind_sync, fake.args(gate_path=str(gate_file), gate_token="this-run", gate_timeout=30,
                                                     job_file=str(job)))
    finally:
        opener.cancel()
    assert result.get("failed") is not True, result.get("msg")
    assert 0 < result["waited_for_gate"] < 30 and opened
    # the pull's own span begins at the gate, not at the job's start
    assert state.parse_stamp(result["started_at"]) >= state.parse_stamp(opened[0])
    # the connection first, then the clock and the trees, then the connection closed
    sequence = [c["args"][-1] for c in commands.calls]
    assert sequence[0] == "true" and sequence[1] == "date +%s.%N" and "-O" in commands.calls[-1]["args"]
    assert result["changed"] is True and tree(result, "/srv/a")["changes"] == 1
    kept = json.loads(job.read_text())  # the job's result, for bluemind_job_wait
    assert kept["finished"] is True and kept["trees"] == result["trees"] and kept["started_at"] == result["started_at"]


def test_a_pull_of_what_changed_walks_each_tree_once_before_its_gate_then_says_it_is_ready(run_module, fake, tmp_path):
    """Started ahead of the stop with changed_since: before its gate opens, the job walks each tree on the
    origin (the window's walk then finds the inodes in the origin's caches) and creates its ready file,
    which the play waits for before the stop; after the gate, the pull walks again for what changed."""
    import threading
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    os.makedirs(a)
    os.makedirs(b)
    fake.scenario(**{"changed:%s" % a: dict(out="f 7 1 ./x\0"), "recent:%s/" % a: dict(out=""),
                     "changed:%s" % b: dict(out=""), "recent:%s/" % b: dict(out="")})
    gate_file, job = tmp_path / "run.gate", tmp_path / "jobs" / "pull.json"
    seen = []

    def open_gate():
        seen.append((os.path.exists(str(job) + ".ready"), len(walks())))
        gate_file.write_text("this-run\n")

    def walks():
        return [c[-1] for c in fake.ssh_calls() if "-newerct" in c[-1]]

    opener = threading.Timer(1.0, open_gate)
    opener.start()
    try:
        result = run_module(bluemind_sync, fake.args(trees=[a, b], changed_since=SINCE, gate_path=str(gate_file),
                                                     gate_token="this-run", gate_timeout=30, job_file=str(job),
                                                     follow=False))
    finally:
        opener.cancel()
    assert result.get("failed") is not True, result.get("msg")
    assert seen == [(True, 2)]  # both trees walked, and ready, before the gate opened
    warm = [command for command in walks() if "-printf ." in command]
    assert sorted(warm) == sorted(rsync_utils.warm_walk_command(tree, SINCE) for tree in (a, b))
    assert len(walks()) == 4 and tree(result, a)["incremental"] is True  # then the window's own walks


@pytest.mark.parametrize("lock_held", [False, True], ids=["pulled-before-stop", "lock-held-walk-only"])
def test_a_followed_pull_moves_what_changed_before_its_gate_and_the_rest_from_its_follower(
        run_module, fake, tmp_path, lock_held):
    """With follow (the default), the gated pull starts the follower on the origin (here: this machine's
    trees), then pulls what changed since changed_since once its watches are set, and says it is ready;
    what changes after that is the follower's to say: after the gate, no tree is walked again, and only
    what the follower saw is compared. When another pull holds the lock then, it only walks (warning),
    and the window compares what the walk and the follower found."""
    import fcntl
    import threading
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    os.makedirs(a + "/inbox")
    os.makedirs(b)
    fake.scenario(**{"changed:%s" % a: dict(out="d 7 1 ./inbox\0f 7 1 ./x\0"), "entries:%s" % a: dict(out=""),
                     "recent:%s/" % a: dict(out=""), "changed:%s" % b: dict(out=""), "recent:%s/" % b: dict(out=""),
                     "%s/" % b: dict(out="")})
    gate_file, job = tmp_path / "run.gate", tmp_path / "jobs" / "pull.json"
    lock = tmp_path / "locks" / "bluemind-migration-pull.lock"  # lock_dir is replaced per test (conftest)
    lock.parent.mkdir(exist_ok=True)
    holder = os.open(str(lock), os.O_RDWR | os.O_CREAT)
    if lock_held:
        fcntl.flock(holder, fcntl.LOCK_EX)  # another pull's, until the gate
    seen = []

    def walks():
        return [c[-1] for c in fake.ssh_calls() if "-newerct" in c[-1]]

    def lock_free():
        probe = os.open(str(lock), os.O_RDWR)
        try:
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
        finally:
            os.close(probe)

    def open_gate():
        for _attempt in range(100):
            if os.path.exists(str(job) + ".ready"):
                break
            threading.Event().wait(0.1)
        seen.append((os.path.exists(str(job) + ".ready"), len(walks()), fake.entries_listed(), lock_free()))
        os.makedirs(b + "/new")  # after the walk, the origin still serving
        os.close(holder)
        gate_file.write_text("this-run\n")

    opener = threading.Thread(target=open_gate)
    opener.start()
    try:
        result = run_module(bluemind_sync, fake.args(trees=[a, b], changed_since=SINCE, gate_path=str(gate_file),
                                                     gate_token="this-run", gate_timeout=30, job_file=str(job)))
    finally:
        opener.join()
    assert result.get("failed") is not True, result.get("msg")
    # both trees walked, and ready, before the gate opened; a/inbox compared then when the pull was made,
    # whose lock was given back once it ended (a job whose gate never opens holds no lock)
    assert seen == [(True, 2, {} if lock_held else {a: ["./inbox"]}, not lock_held)]
    assert len(walks()) == 2  # and not again after it
    assert result["follower"]["walked"] == {} and sorted(result["follower"]["trees"]) == [a, b]
    assert result["follower"]["watches"] == 3  # a, a/inbox, b
    # what changed since the last pull moved before the stop, unless the lock was held
    assert sorted(result["follower"]["pulled_before_stop"]) == ([] if lock_held else [a, b])
    assert ("pull before the origin's stop is not made" in json.dumps(result.get("warnings", []))) is lock_held
    assert tree(result, a)["listed_by"] == "follower"
    assert "incremental" not in tree(result, b)  # its top changed (a directory added there): pulled whole
    assert fake.entries_listed() == {a: ["./inbox"]}  # compared once: before the gate, or after it


def test_a_gate_without_a_token_is_refused_before_anything(run_module, fake, commands, tmp_path):
    result = run_module(bluemind_sync, fake.args(gate_path=str(tmp_path / "run.gate")))
    assert result["failed"] is True and "gate_path" in result["msg"] and "gate_token" in result["msg"]
    assert commands.calls == [] and fake.calls() == []


def test_a_pull_without_a_gate_waits_for_nothing(run_module, fake):
    fake.scenario(**{"/srv/a/": dict(out=STATS % (0, 0)), "/srv/b/": dict(out=STATS % (0, 0))})
    result = run_module(bluemind_sync, fake.args())
    assert result["waited_for_gate"] == 0.0 and result["waited_for_lock"] < 1
