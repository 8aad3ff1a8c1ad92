"""bluemind_config_copy driven through main(): ssh, rsync, postmap, bash and postsuper answered by
fakes, the postfix folder in tmp_path. The real commands run in molecule's default scenario (the
configuration, the maps, the vhosts and the held message compared on both hosts)."""

import pytest

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
