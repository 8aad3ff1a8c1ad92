import datetime
import json

import pytest

from ansible_collections.bluemind.migration.plugins.module_utils import state
from ansible_collections.bluemind.migration.plugins.modules import bmctl

# The texts of BlueMind's own bmctl (mdhender/bluemindfork packaging/bm-conf/ROOT/usr/bin/bmctl):
# bm-nginx first, outside bluemind.target and without ".service"; the target's units with it.
RESTART_HINT = "please restart bluemind: systemctl restart bluemind.target"
RUNNING = ("bm-nginx is running.\nbm-core.service is running.\nbm-node.service is running.\n"
           "bm-hps.service is disabled on this node\n")
# After `bmctl stop`: bm-nginx keeps running, so the product exits 1.
STOPPED = ("bm-nginx started while BlueMind is stopped - " + RESTART_HINT + "\n"
           "bm-core.service is stopped.\nbm-node.service is stopped.\nbm-hps.service is disabled on this node\n")
# During `bmctl start` with a slow core: bluemind.target waits for bm-core (Type=notify), so bmctl
# takes the "stopped" branch; the activating core is "stopped", units already up are "started while".
CORE_STARTING = ("bm-nginx started while BlueMind is stopped - " + RESTART_HINT + "\n"
                 "bm-core.service is stopped.\n"
                 "bm-node.service started while BlueMind is stopped - " + RESTART_HINT + "\n"
                 "bm-hps.service is disabled on this node\n")
# The target is up and a unit is (re)starting: "fail".
CORE_RESTARTING = ("bm-nginx is running.\n"
                   "bm-core.service fail - check systemctl status bm-core.service and journalctl -xe -u bm-core.service\n"
                   "bm-node.service is running.\nbm-hps.service is disabled on this node\n")
DEPENDENCIES = "bluemind.target\n  bm-core.service\n  bm-hps.service\n  bm-node.service\n"


@pytest.fixture
def bmctl_bin(tmp_path):
    path = tmp_path / "bmctl"
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def bins(monkeypatch):
    """systemctl and timeout at /bin (a test removes one to see the fallback)."""
    found = {"systemctl": "/bin/systemctl", "timeout": "/usr/bin/timeout"}

    def get_bin_path(self, name, required=False, opt_dirs=None):
        if name not in found and required:
            self.fail_json(msg="%s not found" % name)
        return found.get(name)

    monkeypatch.setattr(bmctl.AnsibleModule, "get_bin_path", get_bin_path)
    return found


# What `systemctl show` says of an active bluemind.target whose last start took 41.74 s (monotonic µs).
TARGET_SHOWN = "ActiveState=active\nInactiveExitTimestampMonotonic=1000000000\nActiveEnterTimestampMonotonic=1041740000\n"


@pytest.fixture
def target(commands, bins):
    """systemd lists bluemind.target's units as on a BlueMind server, and says when it last started."""
    commands.add(lambda a: a[1:3] == ["list-dependencies", "--plain"], (0, DEPENDENCIES, ""))
    commands.add(lambda a: a[1:3] == ["show", "bluemind.target"], (0, TARGET_SHOWN, ""))


def status_sequence(commands, *outputs):
    """``bmctl status`` answers each output in turn, then repeats the last one."""
    answers = list(outputs)

    def answer(_args, _kwargs):
        return answers.pop(0) if len(answers) > 1 else answers[0]

    commands.add(lambda a: a[1:] == ["status"], answer)


def bmctl_args(call):
    """The bmctl part of a command (after ``timeout --kill-after=10 N``), or None."""
    args = call["args"]
    if args[0].endswith("/timeout"):
        args = args[3:]
    return args[1:] if args[0].endswith("/bmctl") else None


def actions(commands):
    return [a[0] for a in map(bmctl_args, commands.calls) if a and a[0] != "status"]


@pytest.fixture
def clock(monkeypatch):
    """A clock that only moves when the module sleeps."""
    now = [1000.0]
    monkeypatch.setattr(bmctl.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(bmctl.time, "sleep", lambda seconds: now.__setitem__(0, now[0] + seconds))
    return now


def test_parse_status_reads_every_kind_of_line():
    text = ("\x1b[32mbm-core.service is running.\x1b[0m\nbm-eas.service is stopped.\n"
            "bm-milter.service fail - check systemctl status bm-milter.service and journalctl -xe -u bm-milter.service\n"
            "bm-nginx started while BlueMind is stopped - " + RESTART_HINT + "\n"
            "bm-hps.service is disabled on this node\nsomething else\n"
            "BlueMind bm-xmpp is down.\nBlueMind bm-tika is running.\n")
    assert bmctl.parse_status(text) == {
        "bm-core.service": "running", "bm-eas.service": "stopped", "bm-milter.service": "failed",
        "bm-nginx": "inconsistent", "bm-hps.service": "disabled", "bm-xmpp": "stopped", "bm-tika": "running"}


def test_parse_dependencies_takes_the_last_word_and_skips_the_target():
    text = "bluemind.target\n  bm-core.service\n\u25cf bm-node.service\n  bm-core.service\n"
    assert bmctl.parse_dependencies(text) == {"bm-core", "bm-node"}


def test_stopped_with_bm_nginx_running_is_stopped(run_module, commands, target, bmctl_bin):
    status_sequence(commands, (1, STOPPED, ""))  # the product exits 1 for bm-nginx
    result = run_module(bmctl, dict(state="stopped", bmctl_path=bmctl_bin))
    assert result["changed"] is False and result["bmctl_action"] is None
    assert result["status"] == {"bm-core.service": "stopped", "bm-node.service": "stopped",
                                "bm-hps.service": "disabled"}
    assert result["outside_target"] == {"bm-nginx": "inconsistent"}
    assert actions(commands) == []


def test_stop_reaches_stopped_although_bm_nginx_stays_up(run_module, commands, target, bmctl_bin, clock):
    status_sequence(commands, (0, RUNNING, ""), (1, STOPPED, ""))
    commands.add(lambda a: bmctl_args(dict(args=a)) == ["stop"], (0, "Stop BlueMind Services\n", ""))
    result = run_module(bmctl, dict(state="stopped", bmctl_path=bmctl_bin))
    assert result.get("failed") is not True, result
    assert result["changed"] is True and actions(commands) == ["stop"]
    assert result["status"]["bm-core.service"] == "stopped"
    assert clock[0] == 1000.0  # no wait: the first status after the stop is final
    assert result["last_start_seconds"] == 41.74  # read before the stop, for the window's prediction


@pytest.mark.parametrize("shown", [
    "ActiveState=active\nInactiveExitTimestampMonotonic=0\nActiveEnterTimestampMonotonic=0\n",  # never started
    "ActiveState=activating\nInactiveExitTimestampMonotonic=5\nActiveEnterTimestampMonotonic=0\n",
    "ActiveState=active\nInactiveExitTimestampMonotonic=9\nActiveEnterTimestampMonotonic=4\n",  # restarted since
])
def test_a_last_start_that_systemd_cannot_time_is_not_reported(run_module, commands, bins, bmctl_bin, clock, shown):
    commands.add(lambda a: a[1:3] == ["list-dependencies", "--plain"], (0, DEPENDENCIES, ""))
    commands.add(lambda a: a[1:3] == ["show", "bluemind.target"], (0, shown, ""))
    status_sequence(commands, (0, RUNNING, ""), (1, STOPPED, ""))
    commands.add(lambda a: bmctl_args(dict(args=a)) == ["stop"], (0, "", ""))
    result = run_module(bmctl, dict(state="stopped", bmctl_path=bmctl_bin))
    assert result["changed"] is True and "last_start_seconds" not in result


def test_only_a_stop_reads_the_last_start(run_module, commands, target, bmctl_bin, clock):
    status_sequence(commands, (1, STOPPED, ""), (0, RUNNING, ""))
    commands.add(lambda a: bmctl_args(dict(args=a)) == ["start"], (0, "", ""))
    result = run_module(bmctl, dict(state="started", bmctl_path=bmctl_bin))
    assert actions(commands) == ["start"] and "last_start_seconds" not in result
    assert not [c for c in commands.calls if c["args"][1:2] == ["show"]]


def test_without_systemd_list_only_bm_nginx_is_left_out(run_module, commands, bins, bmctl_bin):
    del bins["systemctl"]
    status_sequence(commands, (1, STOPPED, ""))
    result = run_module(bmctl, dict(state="stopped", bmctl_path=bmctl_bin))
    assert result["changed"] is False and result["outside_target"] == {"bm-nginx": "inconsistent"}
    assert "judging every unit bmctl status lists except bm-nginx" in json.dumps(result["warnings"])


def test_a_unit_outside_the_target_other_than_nginx_is_not_judged(run_module, commands, target, bmctl_bin):
    status_sequence(commands, (1, STOPPED + "bm-other started while BlueMind is stopped - x\n", ""))
    result = run_module(bmctl, dict(state="stopped", bmctl_path=bmctl_bin))
    assert result["changed"] is False and set(result["outside_target"]) == {"bm-nginx", "bm-other"}


def test_started_starts_and_waits_for_a_slow_core(run_module, commands, target, bmctl_bin, clock):
    # 160 polls, half a second apart, while the core starts: 80 s, within the default wait_timeout;
    # the module sees it running half a second at most after it is.
    status_sequence(commands, (1, STOPPED, ""), *([(1, CORE_STARTING, "")] * 160 + [(0, RUNNING, "")]))
    commands.add(lambda a: bmctl_args(dict(args=a)) == ["start"], (0, "Start BlueMind Services\n", ""))
    result = run_module(bmctl, dict(state="started", bmctl_path=bmctl_bin))
    assert result.get("failed") is not True, result
    assert result["changed"] is True and result["bmctl_action"] == "start"
    assert result["status_before"]["bm-core.service"] == "stopped"
    assert result["status"]["bm-core.service"] == "running"
    assert clock[0] == 1080.0
    start = [c["args"] for c in commands.calls if bmctl_args(c) == ["start"]]
    assert start == [["/usr/bin/timeout", "--kill-after=10", "600", bmctl_bin, "start"]]


def test_started_when_running_changes_nothing(run_module, commands, target, bmctl_bin):
    status_sequence(commands, (0, RUNNING, ""))
    assert run_module(bmctl, dict(state="started", bmctl_path=bmctl_bin))["changed"] is False


def test_a_restarting_core_is_not_started(run_module, commands, target, bmctl_bin, clock):
    status_sequence(commands, (1, CORE_RESTARTING, ""), (1, CORE_RESTARTING, ""), (0, RUNNING, ""))
    commands.add(lambda a: bmctl_args(dict(args=a)) == ["start"], (0, "", ""))
    result = run_module(bmctl, dict(state="started", bmctl_path=bmctl_bin))
    assert result["changed"] is True and result["status_before"]["bm-core.service"] == "failed"
    assert result["status"]["bm-core.service"] == "running"


def test_inconsistent_unit_is_not_stopped(run_module, commands, target, bmctl_bin, clock):
    status_sequence(commands, (1, CORE_STARTING, ""), (1, STOPPED, ""))
    commands.add(lambda a: bmctl_args(dict(args=a)) == ["stop"], (0, "Stop BlueMind Services\n", ""))
    result = run_module(bmctl, dict(state="stopped", bmctl_path=bmctl_bin))
    assert result["changed"] is True and actions(commands) == ["stop"]


def test_check_mode_plans_without_acting(run_module, commands, target, bmctl_bin):
    status_sequence(commands, (0, RUNNING, ""))
    result = run_module(bmctl, dict(state="stopped", bmctl_path=bmctl_bin), check_mode=True)
    assert result["changed"] is True and result["bmctl_action"] == "stop"
    assert actions(commands) == []


def test_restarted_always_restarts(run_module, commands, target, bmctl_bin, clock):
    status_sequence(commands, (0, RUNNING, ""))
    commands.add(lambda a: bmctl_args(dict(args=a)) == ["restart"], (0, "Restarting BlueMind Services\n", ""))
    result = run_module(bmctl, dict(state="restarted", bmctl_path=bmctl_bin))
    assert result["changed"] is True and actions(commands) == ["restart"]


def test_timeout_names_the_units_not_ready(run_module, commands, target, bmctl_bin, clock):
    status_sequence(commands, (1, STOPPED, ""), (1, CORE_RESTARTING, ""))
    commands.add(lambda a: bmctl_args(dict(args=a)) == ["start"], (0, "", ""))
    result = run_module(bmctl, dict(state="started", bmctl_path=bmctl_bin, wait_timeout=10))
    assert result["failed"] is True
    assert "did not reach state started within 10 s: bm-core.service is failed" in result["msg"]
    assert "raise wait_timeout" in result["msg"]
    assert result["status"]["bm-core.service"] == "failed"
    assert clock[0] == 1010.0


def test_bmctl_start_that_outlives_the_timeout_is_reported(run_module, commands, target, bmctl_bin, clock):
    status_sequence(commands, (1, STOPPED, ""), (1, CORE_STARTING, ""))
    commands.add(lambda a: bmctl_args(dict(args=a)) == ["start"], (124, "Start BlueMind Services\n", ""))
    result = run_module(bmctl, dict(state="started", bmctl_path=bmctl_bin, wait_timeout=60))
    assert result["failed"] is True
    assert ("'%s start' did not return within 60 s (wait_timeout); systemd goes on with the job: "
            "bm-core.service is stopped, bm-node.service is inconsistent." % bmctl_bin) in result["msg"]
    assert result["status"]["bm-node.service"] == "inconsistent"


def test_without_timeout_binary_bmctl_runs_directly(run_module, commands, target, bins, bmctl_bin, clock):
    del bins["timeout"]
    status_sequence(commands, (1, STOPPED, ""), (0, RUNNING, ""))
    commands.add(lambda a: a == [bmctl_bin, "start"], (0, "", ""))
    result = run_module(bmctl, dict(state="started", bmctl_path=bmctl_bin))
    assert result["changed"] is True and result["status"]["bm-core.service"] == "running"


def test_failed_action_reports_exit_and_output(run_module, commands, target, bmctl_bin):
    status_sequence(commands, (1, STOPPED, ""))
    commands.add(lambda a: bmctl_args(dict(args=a)) == ["start"], (5, "", "Job for bluemind.target failed.\n"))
    result = run_module(bmctl, dict(state="started", bmctl_path=bmctl_bin))
    assert result["failed"] is True
    assert "start' failed (exit 5): Job for bluemind.target failed." in result["msg"]


def test_unreadable_status_fails_clearly(run_module, commands, target, bmctl_bin):
    status_sequence(commands, (0, "Usage: /usr/bin/bmctl [start|stop|status]\n", ""))
    result = run_module(bmctl, dict(state="started", bmctl_path=bmctl_bin))
    assert result["failed"] is True and "gave no unit states" in result["msg"]


def test_status_without_any_target_unit_fails_clearly(run_module, commands, target, bmctl_bin):
    status_sequence(commands, (0, "bm-nginx is running.\n", ""))
    result = run_module(bmctl, dict(state="stopped", bmctl_path=bmctl_bin))
    assert result["failed"] is True and "lists none of the units of bluemind.target (it lists bm-nginx)" in result["msg"]


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


def test_with_units_stopped_after_bluemind_only_when_running(run_module, commands, target, bmctl_bin, clock):
    status_sequence(commands, (0, RUNNING, ""), (1, STOPPED, ""))
    commands.add(lambda a: bmctl_args(dict(args=a)) == ["stop"], (0, "", ""))
    calls = systemctl(commands, {"postfix"})
    result = run_module(bmctl, dict(state="stopped", bmctl_path=bmctl_bin, with_units=["postfix", "cron"]))
    assert result["changed"] is True and result["units_changed"] == ["postfix"]
    assert ["stop", "postfix"] in calls and ["stop", "cron"] not in calls
    # BlueMind first, then postfix
    order = [c["args"][-2:] for c in commands.calls
             if bmctl_args(c) == ["stop"] or c["args"][1:] == ["stop", "postfix"]]
    assert order == [[bmctl_bin, "stop"], ["stop", "postfix"]]


def test_with_units_planned_in_check_mode(run_module, commands, target, bmctl_bin):
    status_sequence(commands, (0, RUNNING, ""))
    calls = systemctl(commands, set())
    result = run_module(bmctl, dict(state="started", bmctl_path=bmctl_bin, with_units=["postfix"]), check_mode=True)
    assert result["changed"] is True and result["bmctl_action"] is None and result["units_changed"] == ["postfix"]
    assert calls == [["is-active", "--quiet", "postfix"]]  # nothing started in check mode


def test_with_units_started_beside_bluemind_and_waited_for_after_it(run_module, commands, target, bmctl_bin):
    # postfix's start is queued before bmctl start and waited for after it: the task lasts the longer
    # of the two starts, not their sum (the window ends when both the core and SMTP answer)
    status_sequence(commands, (1, STOPPED, ""), (0, RUNNING, ""))
    commands.add(lambda a: bmctl_args(dict(args=a)) == ["start"], (0, "", ""))
    systemctl(commands, {"cron"})
    result = run_module(bmctl, dict(state="started", bmctl_path=bmctl_bin, with_units=["postfix", "cron"]))
    assert result["changed"] is True and result["bmctl_action"] == "start" and result["units_changed"] == ["postfix"]
    order = [bmctl_args(c) or c["args"][1:] for c in commands.calls
             if bmctl_args(c) == ["start"] or c["args"][0].endswith("systemctl") and c["args"][1] == "start"]
    assert order == [["start", "--no-block", "postfix"], ["start"], ["start", "postfix"]]


def test_with_unit_failure_names_the_unit(run_module, commands, target, bmctl_bin):
    status_sequence(commands, (1, STOPPED, ""))
    commands.add(lambda a: a[0].endswith("systemctl") and a[1] == "start", (1, "", "Unit postfix.service not found.\n"))
    systemctl(commands, set())
    result = run_module(bmctl, dict(state="started", bmctl_path=bmctl_bin, with_units=["postfix"]))
    assert result["failed"] is True and "'systemctl start postfix' failed (exit 1): Unit postfix.service not found." in result["msg"]


def test_seconds_measure_the_stop_with_its_waits_and_are_zero_in_check_mode(
        run_module, commands, target, bmctl_bin, clock):
    # a core still stopping when bmctl returns: the module waits for it, and counts that wait
    status_sequence(commands, (0, RUNNING, ""), (0, RUNNING, ""), (1, STOPPED, ""))
    commands.add(lambda a: bmctl_args(dict(args=a)) == ["stop"], (0, "Stop BlueMind Services\n", ""))
    result = run_module(bmctl, dict(state="stopped", bmctl_path=bmctl_bin))
    assert result["bmctl_action"] == "stop" and clock[0] > 1000.0
    assert result["seconds"] == pytest.approx(clock[0] - 1000.0)
    # and when it ended, as the migration state keeps times (the window records the origin's stop with it)
    assert state.parse_stamp(result["ended_at"]) <= datetime.datetime.now(datetime.timezone.utc)
    status_sequence(commands, (0, RUNNING, ""))
    checked = run_module(bmctl, dict(state="stopped", bmctl_path=bmctl_bin), check_mode=True)
    assert checked["seconds"] == 0.0 and "ended_at" not in checked
