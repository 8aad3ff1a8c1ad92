import pytest

from ansible_collections.bluemind.migration.plugins.modules import bmctl

RUNNING = "bm-core is running.\nbm-node is running.\nbm-hps is disabled on this node\n"
STOPPED = "bm-core is stopped.\nbm-node is stopped.\nbm-hps is disabled on this node\n"


@pytest.fixture
def bmctl_bin(tmp_path):
    path = tmp_path / "bmctl"
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return str(path)


def status_sequence(commands, *outputs):
    """``bmctl status`` answers each output in turn, then repeats the last one."""
    answers = list(outputs)

    def answer(_args, _kwargs):
        return answers.pop(0) if len(answers) > 1 else answers[0]

    commands.add(lambda a: a[1:] == ["status"], answer)


def actions(commands):
    return [c["args"][1] for c in commands.calls if c["args"][1] != "status"]


def test_parse_status_reads_every_kind_of_line():
    text = ("\x1b[32mbm-core is running.\x1b[0m\nbm-eas is stopped.\n"
            "bm-milter fail - check systemctl status bm-milter for details\n"
            "bm-tika started while BlueMind is stopped - please restart bluemind: bmctl restart\n"
            "bm-hps is disabled on this node\nsomething else\n")
    assert bmctl.parse_status(text) == {"bm-core": "running", "bm-eas": "stopped", "bm-milter": "failed",
                                        "bm-tika": "inconsistent", "bm-hps": "disabled"}


def test_stopped_when_already_stopped_changes_nothing(run_module, commands, bmctl_bin):
    status_sequence(commands, (0, STOPPED, ""))
    result = run_module(bmctl, dict(state="stopped", bmctl_path=bmctl_bin))
    assert result["changed"] is False and result["bmctl_action"] is None
    assert result["status"] == {"bm-core": "stopped", "bm-node": "stopped", "bm-hps": "disabled"}
    assert actions(commands) == []


def test_started_starts_and_waits(run_module, commands, bmctl_bin, no_sleep):
    status_sequence(commands, (0, STOPPED, ""), (1, "bm-core is stopped.\nbm-node is running.\n", ""),
                    (0, RUNNING, ""))
    commands.add(lambda a: a[1:] == ["start"], (0, "Start BlueMind Services\n", ""))
    result = run_module(bmctl, dict(state="started", bmctl_path=bmctl_bin))
    assert result["changed"] is True and result["bmctl_action"] == "start"
    assert result["status_before"]["bm-core"] == "stopped"
    assert result["status"]["bm-core"] == "running"
    assert actions(commands) == ["start"]


def test_started_when_running_changes_nothing(run_module, commands, bmctl_bin):
    status_sequence(commands, (0, RUNNING, ""))
    assert run_module(bmctl, dict(state="started", bmctl_path=bmctl_bin))["changed"] is False


def test_inconsistent_unit_is_not_stopped(run_module, commands, bmctl_bin, no_sleep):
    status_sequence(commands, (1, "bm-core is stopped.\nbm-tika started while BlueMind is stopped - restart\n", ""),
                    (0, STOPPED, ""))
    commands.add(lambda a: a[1:] == ["stop"], (0, "Stop BlueMind Services\n", ""))
    result = run_module(bmctl, dict(state="stopped", bmctl_path=bmctl_bin))
    assert result["changed"] is True and actions(commands) == ["stop"]


def test_check_mode_plans_without_acting(run_module, commands, bmctl_bin):
    status_sequence(commands, (0, RUNNING, ""))
    result = run_module(bmctl, dict(state="stopped", bmctl_path=bmctl_bin), check_mode=True)
    assert result["changed"] is True and result["bmctl_action"] == "stop"
    assert actions(commands) == []


def test_restarted_always_restarts(run_module, commands, bmctl_bin, no_sleep):
    status_sequence(commands, (0, RUNNING, ""))
    commands.add(lambda a: a[1:] == ["restart"], (0, "Restarting BlueMind Services\n", ""))
    result = run_module(bmctl, dict(state="restarted", bmctl_path=bmctl_bin))
    assert result["changed"] is True and actions(commands) == ["restart"]


def test_timeout_names_the_units_not_ready(run_module, commands, bmctl_bin, no_sleep):
    status_sequence(commands, (0, STOPPED, ""), (0, "bm-core fail - check systemctl status bm-core\n"
                                                    "bm-node is running.\n", ""))
    commands.add(lambda a: a[1:] == ["start"], (0, "", ""))
    result = run_module(bmctl, dict(state="started", bmctl_path=bmctl_bin, wait_timeout=10))
    assert result["failed"] is True
    assert "did not reach state started within 10 s: bm-core is failed" in result["msg"]
    assert result["status"] == {"bm-core": "failed", "bm-node": "running"}


def test_failed_action_reports_exit_and_output(run_module, commands, bmctl_bin):
    status_sequence(commands, (0, STOPPED, ""))
    commands.add(lambda a: a[1:] == ["start"], (5, "", "Job for bluemind.target failed.\n"))
    result = run_module(bmctl, dict(state="started", bmctl_path=bmctl_bin))
    assert result["failed"] is True
    assert "start' failed (exit 5): Job for bluemind.target failed." in result["msg"]


def test_unreadable_status_fails_clearly(run_module, commands, bmctl_bin):
    status_sequence(commands, (0, "Usage: /usr/bin/bmctl [start|stop|status]\n", ""))
    result = run_module(bmctl, dict(state="started", bmctl_path=bmctl_bin))
    assert result["failed"] is True and "gave no unit states" in result["msg"]


def test_missing_bmctl(run_module, commands, tmp_path):
    result = run_module(bmctl, dict(state="started", bmctl_path=str(tmp_path / "nope")))
    assert result["failed"] is True and "is BlueMind (package bm-conf) installed" in result["msg"]
    assert commands.calls == []


def systemctl(commands, active):
    """``systemctl is-active`` answers from ``active`` (a set of unit names); start and stop succeed."""
    calls = []

    def answer(args, _kwargs):
        calls.append(args[1:])
        if args[1] == "is-active":
            return (0 if args[-1] in active else 3), "", ""
        return 0, "", ""

    commands.add(lambda a: a[0].endswith("systemctl"), answer)
    return calls


def test_with_units_stopped_after_bluemind_only_when_running(run_module, commands, bmctl_bin, no_sleep, monkeypatch):
    monkeypatch.setattr(bmctl.AnsibleModule, "get_bin_path", lambda self, name, required=False: "/bin/" + name)
    status_sequence(commands, (0, RUNNING, ""), (0, STOPPED, ""))
    commands.add(lambda a: a[1:] == ["stop"], (0, "", ""))
    calls = systemctl(commands, {"postfix"})
    result = run_module(bmctl, dict(state="stopped", bmctl_path=bmctl_bin, with_units=["postfix", "cron"]))
    assert result["changed"] is True and result["units_changed"] == ["postfix"]
    assert ["stop", "postfix"] in calls and ["stop", "cron"] not in calls
    # BlueMind first, then postfix
    order = [c["args"][1:] for c in commands.calls if c["args"][1:] in (["stop"], ["stop", "postfix"])]
    assert order == [["stop"], ["stop", "postfix"]]


def test_with_units_started_first_and_planned_in_check_mode(run_module, commands, bmctl_bin, monkeypatch):
    monkeypatch.setattr(bmctl.AnsibleModule, "get_bin_path", lambda self, name, required=False: "/bin/" + name)
    status_sequence(commands, (0, RUNNING, ""))
    calls = systemctl(commands, set())
    result = run_module(bmctl, dict(state="started", bmctl_path=bmctl_bin, with_units=["postfix"]), check_mode=True)
    assert result["changed"] is True and result["bmctl_action"] is None and result["units_changed"] == ["postfix"]
    assert calls == [["is-active", "--quiet", "postfix"]]  # nothing started in check mode


def test_with_unit_failure_names_the_unit(run_module, commands, bmctl_bin, monkeypatch):
    monkeypatch.setattr(bmctl.AnsibleModule, "get_bin_path", lambda self, name, required=False: "/bin/" + name)
    status_sequence(commands, (0, STOPPED, ""))
    commands.add(lambda a: a[0].endswith("systemctl") and a[1] == "start", (1, "", "Unit postfix.service not found.\n"))
    systemctl(commands, set())
    result = run_module(bmctl, dict(state="started", bmctl_path=bmctl_bin, with_units=["postfix"]))
    assert result["failed"] is True and "'systemctl start postfix' failed (exit 1): Unit postfix.service not found." in result["msg"]
