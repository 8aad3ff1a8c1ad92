import json
import shlex
import sys

import pytest

from ansible_collections.bluemind.migration.plugins.modules import bluemind_sync

STATS = ("Number of regular files transferred: %d\nTotal transferred file size: %d bytes\n"
         "Total bytes received: 100\n")
FAKE_RSYNC = """#!%s
import json, sys
here = %r
with open(here + "/calls.jsonl", "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
scenario = json.load(open(here + "/scenario.json"))
dest = sys.argv[-1]
answer = scenario.get(("verify:" if "--checksum" in sys.argv else "") + dest, scenario.get(dest))
sys.stdout.write(answer.get("out", ""))
sys.stderr.write(answer.get("err", ""))
sys.exit(answer.get("rc", 0))
"""


@pytest.fixture
def fake(tmp_path, commands):
    """A fake rsync driven by a scenario, ssh master open/close answered, key files present."""
    (tmp_path / "rsync").write_text(FAKE_RSYNC % (sys.executable, str(tmp_path)))
    (tmp_path / "rsync").chmod(0o755)
    (tmp_path / "key").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nSECRETKEYMATERIAL\n")
    (tmp_path / "known_hosts").write_text("192.0.2.10 ssh-ed25519 AAAA\n")
    commands.add(lambda a: a[-1] == "true", (0, "", ""))
    commands.add(lambda a: "-O" in a, (0, "", ""))

    class Fake(object):
        def scenario(self, **trees):
            (tmp_path / "scenario.json").write_text(json.dumps(trees))

        def calls(self):
            path = tmp_path / "calls.jsonl"
            return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

        def args(self, **extra):
            return dict(dict(origin_host="192.0.2.10", ssh_key=str(tmp_path / "key"),
                             known_hosts=str(tmp_path / "known_hosts"), rsync_path=str(tmp_path / "rsync"),
                             ssh_control_path=str(tmp_path / "cm-%C"), trees=["/srv/a", "/srv/b/"]), **extra)

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


def test_rsync_command_line(run_module, fake):
    fake.scenario(**{"/var/lib/cyrus/": dict(out="")})
    run_module(bluemind_sync, fake.args(trees=["/var/lib/cyrus"]))
    [args] = fake.calls()
    assert args[-2:] == ["root@192.0.2.10:/var/lib/cyrus/", "/var/lib/cyrus/"]
    assert {"-aH", "--delete", "--modify-window=-1", "--itemize-changes", "--exclude=/proc/",
            "--exclude=cyrus.squat"} <= set(args)
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
