"""bluemind_config_copy driven through main(): ssh, rsync, postmap, bash and postsuper answered by
fakes, the postfix folder in tmp_path. The real commands run in molecule's default scenario (the
configuration, the maps, the vhosts and the held message compared on both hosts)."""

import fcntl
import os
import threading

import pytest

from ansible_collections.bluemind.migration.plugins.module_utils import state as migration_state
from ansible_collections.bluemind.migration.plugins.modules import bluemind_config_copy

COPIED = ".d..t...... etc/\n>f.st...... etc/bm/bm.ini\n>f+++++++++ etc/postfix/transport-flat\n"
QUEUED = "cd+++++++++ hold/\n>f+++++++++ hold/4B2C1\n"


@pytest.fixture
def target(tmp_path, commands, monkeypatch):
    monkeypatch.setattr(bluemind_config_copy.AnsibleModule, "get_bin_path", lambda self, name, *a, **k: "/usr/bin/" + name)
    for name in ("key", "known_hosts"):
        (tmp_path / name).write_text("x")
    postfix = tmp_path / "postfix"
    postfix.mkdir()
    script = tmp_path / "configure-nginx.sh"
    script.write_text("true\n")
    answers = dict(copy=COPIED, queue=QUEUED)

    def postmap(args, kwargs):
        (postfix / (args[1].rsplit("/", 1)[1] + ".db")).write_text("built")
        return 0, "", ""

    commands.add(lambda a: a[0] == "/usr/bin/ssh", (0, "etc/postfix/transport-flat\netc/imapd.conf\n", ""))
    commands.add(lambda a: a[0] == "/usr/bin/rsync" and "--files-from=-" in a, lambda a, k: (0, answers["copy"], ""))
    commands.add(lambda a: a[0] == "/usr/bin/rsync", lambda a, k: (0, answers["queue"], ""))
    commands.add(lambda a: a[0] == "/usr/bin/postmap", postmap)
    commands.add(lambda a: a[0] in ("bash", "systemctl", "/usr/bin/postsuper"), (0, "", ""))
    args = dict(origin_host="192.0.2.10", ssh_key=str(tmp_path / "key"), known_hosts=str(tmp_path / "known_hosts"),
                paths=["etc/bm/", "etc/postfix/main.cf"], patterns=["/etc/postfix/*-flat", "/etc/imapd*"],
                backup_dir=str(tmp_path / "backups"), postfix_maps=["transport"], postfix_dir=str(postfix),
                nginx_configure=str(script))
    return dict(args=args, commands=commands, postfix=postfix, answers=answers)


def ran(commands, *names):
    return [c["args"] for c in commands.calls if c["args"][0] in names]


def test_copies_rebuilds_and_requeues_in_one_run(run_module, target):
    result = run_module(bluemind_config_copy, target["args"], diff=True)
    assert result["changed"] is True
    assert result["files"] == [">f.st...... etc/bm/bm.ini", ">f+++++++++ etc/postfix/transport-flat"]
    copy = [c for c in target["commands"].calls if "--files-from=-" in c["args"]][0]
    assert copy["data"] == "etc/bm/\netc/postfix/main.cf\netc/postfix/transport-flat\netc/imapd.conf\n"
    assert "--backup-dir=%s" % result["backup"] in copy["args"] and "--dry-run" not in copy["args"]
    assert (target["postfix"] / "transport.db").read_text() == "built" and not (target["postfix"] / "transport-flat.db").exists()
    assert result["maps"] == [str(target["postfix"] / "transport.db")] and result["nginx"] is True
    assert ran(target["commands"], "systemctl") == [["systemctl", "try-reload-or-restart", "bm-nginx.service"]]
    assert result["queued_mail"] == 1 and result["requeued"] is True
    assert ran(target["commands"], "/usr/bin/postsuper") == [["/usr/bin/postsuper", "-s"]]
    assert result["diff"]["prepared"].splitlines() == result["files"] + [">f+++++++++ hold/4B2C1"]


def test_nothing_moved_nothing_rebuilt(run_module, target):
    target["answers"].update(copy=".d..t...... etc/\n", queue="")
    result = run_module(bluemind_config_copy, target["args"])
    assert result["changed"] is False and result["files"] == [] and result["queued_mail"] == 0
    assert not ran(target["commands"], "/usr/bin/postmap", "bash", "systemctl", "/usr/bin/postsuper")


def test_a_resumed_copy_rebuilds_and_requeues_whatever_it_moves(run_module, target):
    target["answers"].update(copy="", queue="")
    result = run_module(bluemind_config_copy, dict(target["args"], resumed=True))
    assert result["maps"] and result["nginx"] is True and result["requeued"] is True and result["changed"] is True


def test_check_mode_lists_and_changes_nothing(run_module, target):
    result = run_module(bluemind_config_copy, target["args"], check_mode=True)
    assert result["changed"] is True and result["queued_mail"] == 1
    assert all("--dry-run" in args for args in ran(target["commands"], "/usr/bin/rsync"))
    assert not ran(target["commands"], "/usr/bin/postmap", "bash", "systemctl", "/usr/bin/postsuper")


def test_only_the_steps_asked(run_module, target):
    result = run_module(bluemind_config_copy, dict(target["args"], steps=["queue"]))
    assert result["files"] == [] and result["queued_mail"] == 1
    assert not ran(target["commands"], "/usr/bin/ssh", "/usr/bin/postmap") and "backup" not in result


def test_a_failed_copy_says_what_failed_and_rebuilds_nothing(run_module, target):
    target["commands"].rules.insert(0, (lambda a: "--files-from=-" in a, (23, "", "rsync: link_stat \"/etc/bm\" failed")))
    result = run_module(bluemind_config_copy, target["args"])
    assert result["failed"] and "the configuration copy from 192.0.2.10 failed (exit 23)" in result["msg"]
    assert "link_stat" in result["msg"] and not ran(target["commands"], "/usr/bin/postmap")


def test_a_pattern_the_shell_would_act_on_is_refused_before_anything_runs(run_module, target):
    result = run_module(bluemind_config_copy, dict(target["args"], patterns=["/etc/$(id)"]))
    assert result["failed"] and "patterns:" in result["msg"] and target["commands"].calls == []


@pytest.fixture
def copied_files(tmp_path, monkeypatch):
    """bm.ini, Cyrus replication and the backup spool as the copy left them: the origin's address."""
    from ansible_collections.bluemind.migration.plugins.module_utils import readdress
    bm_ini, replication, spool = tmp_path / "bm.ini", tmp_path / "cyrus-replication", tmp_path / "spool"
    bm_ini.write_text("[global]\nhost = 192.0.2.10\nhz-member-address = 192.0.2.10\nexternal-url = mail.lab.test\n")
    replication.write_text("core_sync_host: 192.0.2.10\n")
    (spool / "192.0.2.10").mkdir(parents=True)
    for name, path in (("BM_INI_PATH", bm_ini), ("CYRUS_REPLICATION_PATH", replication), ("BACKUP_SPOOL", spool)):
        monkeypatch.setattr(readdress, name, str(path))
    return dict(bm_ini=bm_ini, replication=replication, spool=spool)


def test_the_copied_files_get_the_targets_own_address_in_the_same_run(run_module, target, copied_files):
    args = dict(target["args"], readdress_to="192.0.2.20", readdress_from=["192.0.2.10", "", "192.0.2.20"])
    result = run_module(bluemind_config_copy, args)
    assert not result.get("failed") and result["changed"] is True
    assert "host = 192.0.2.20\nhz-member-address = 192.0.2.20\n" in copied_files["bm_ini"].read_text()
    assert copied_files["replication"].read_text() == "core_sync_host: 192.0.2.20\n"
    assert sorted(p.name for p in copied_files["spool"].iterdir()) == ["192.0.2.20"]
    assert result["readdress"] == {
        "bm_ini": ["192.0.2.10", "192.0.2.10"], "cyrus_replication": ["192.0.2.10"], "left_as_is": [],
        "backup_spool": {"from": str(copied_files["spool"] / "192.0.2.10"), "to": str(copied_files["spool"] / "192.0.2.20")}}
    # a rerun that copies nothing finds them done
    target["answers"].update(copy="", queue="")
    again = run_module(bluemind_config_copy, args)
    assert again["changed"] is False and again["readdress"]["bm_ini"] == [] and again["readdress"]["backup_spool"] == {}


def test_the_files_keep_the_origins_address_in_check_mode_and_without_the_files_step(run_module, target, copied_files):
    args = dict(target["args"], readdress_to="192.0.2.20", readdress_from=["192.0.2.10"])
    before = copied_files["bm_ini"].read_text()
    assert "readdress" not in run_module(bluemind_config_copy, args, check_mode=True)
    assert "readdress" not in run_module(bluemind_config_copy, dict(args, steps=["queue"]))
    assert copied_files["bm_ini"].read_text() == before


def test_a_readdress_that_cannot_write_fails_and_says_to_run_again(run_module, target, copied_files, monkeypatch):
    from ansible_collections.bluemind.migration.plugins.module_utils import readdress

    def full(path, text):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(readdress, "write_like", full)
    result = run_module(bluemind_config_copy, dict(target["args"], readdress_to="192.0.2.20", readdress_from=["192.0.2.10"]))
    assert result["failed"] is True
    assert result["msg"] == ("the configuration was copied, but giving the target its own address failed: cannot rewrite "
                             "%s: [Errno 28] No space left on device. Run the task again" % copied_files["bm_ini"])
    assert result["files"] and result["maps"]  # the copy and what it feeds were done


def test_a_copy_started_ahead_of_the_stop_copies_nothing_before_its_gate_opens(run_module, target, tmp_path):
    """An earlier run's token at the gate: the copy fails after its timeout, having resolved, copied and
    locked nothing (only the SSH access was checked)."""
    (tmp_path / "run.gate").write_text("earlier-run\n")
    result = run_module(bluemind_config_copy, dict(target["args"], gate_path=str(tmp_path / "run.gate"),
                                                   gate_token="this-run", gate_timeout=0))
    assert result["failed"] is True and result["msg"].startswith("the origin's stop did not happen within 0 s")
    assert not ran(target["commands"], "/usr/bin/ssh", "/usr/bin/rsync", "/usr/bin/postmap", "/usr/bin/postsuper")
    assert result["files"] == [] and not (tmp_path / "locks" / "bluemind-migration-config.lock").exists()


def test_a_copy_whose_gate_opens_copies_and_starts_its_clock_there(run_module, target, tmp_path):
    gate_file = tmp_path / "run.gate"
    opened = []

    def open_gate():  # when the gate opens, on this clock (the module's start-up time plays no part)
        opened.append(migration_state.stamp())
        gate_file.write_text("this-run\n")

    opener = threading.Timer(0.3, open_gate)
    opener.start()
    try:
        result = run_module(bluemind_config_copy, dict(target["args"], gate_path=str(gate_file), gate_token="this-run",
                                                       gate_timeout=30))
    finally:
        opener.cancel()
    assert not result.get("failed"), result.get("msg")
    assert 0 < result["waited_for_gate"] < 30 and opened
    assert migration_state.parse_stamp(result["started_at"]) >= migration_state.parse_stamp(opened[0])
    assert result["files"] and result["requeued"] is True
    assert result["started_at"] <= result["ended_at"]  # the state's stamps sort as the times do
    assert (tmp_path / "locks" / "bluemind-migration-config.lock").exists()


def test_a_gate_without_a_token_is_refused_before_anything(run_module, target, tmp_path):
    result = run_module(bluemind_config_copy, dict(target["args"], gate_path=str(tmp_path / "run.gate")))
    assert result["failed"] is True and "gate_path" in result["msg"] and "gate_token" in result["msg"]
    assert target["commands"].calls == []


def test_a_copy_left_running_holds_the_next_one_back(run_module, target, tmp_path):
    """A copy that a stopped controller left on the target holds the lock: the next one waits for it, and
    says who holds it when it gives up, having copied nothing."""
    (tmp_path / "locks").mkdir()
    held = os.open(str(tmp_path / "locks" / "bluemind-migration-config.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)
        os.write(held, b"pid 4242 since 2026-11-30T10:15:00Z")
        result = run_module(bluemind_config_copy, dict(target["args"], lock_timeout=0))
    finally:
        os.close(held)
    assert result["failed"] is True
    assert result["msg"].startswith("a configuration copy is still running on the target") and "pid 4242" in result["msg"]
    assert not ran(target["commands"], "/usr/bin/rsync", "/usr/bin/postmap", "/usr/bin/postsuper")
    again = run_module(bluemind_config_copy, target["args"])  # released: the next one copies
    assert not again.get("failed") and again["files"]
