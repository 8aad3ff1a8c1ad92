"""The simulated bmctl answers as BlueMind's own script (mdhender/bluemindfork
packaging/bm-conf/ROOT/usr/bin/bmctl): bm-nginx, outside bluemind.target, listed first; the target's
units with ".service"; the lines chosen by whether bluemind.target is active. And the bmctl module
reaches stopped and started on such a host, also with a core that takes more than a minute."""
import json
import os
import subprocess
import time

import pytest

from labpaths import LAB_INVENTORY, TOP

UNITS_4 = ["bm-core", "bm-eas", "bm-elasticsearch", "bm-hps", "bm-iptables", "bm-lmtpd", "bm-milter",
           "bm-node", "bm-tika", "bm-webserver", "bm-ysnp"]
# 5.x: bm-conf purges bm-lmtpd and bm-hps, its preset enables bm-keycloak (lab/FIDELITY.md 5x rows)
UNITS_5 = sorted(set(UNITS_4) - {"bm-hps", "bm-lmtpd"} | {"bm-keycloak"})
UNITS = UNITS_4  # the running lab's list, set by the `host` fixture
RESTART_HINT = "please restart bluemind: systemctl restart bluemind.target"
NGINX_WHILE_STOPPED = "bm-nginx started while BlueMind is stopped - " + RESTART_HINT
DELAY_FILE = "/etc/bm/bmsim-core-start-delay"


def running_lines():
    return ["bm-nginx is running."] + [f"{u}.service is running." for u in UNITS]


@pytest.fixture
def host(lab):
    """The target host, BlueMind and bm-nginx started again after each test whatever the test left."""
    global UNITS
    UNITS = UNITS_5 if lab.bluemind == 5 else UNITS_4
    # these tests stop and start every unit many times in a row: systemd's start limit (5 starts in 10 s
    # by default) counted from the tests before them refused one (CI: bm-core on 2026-12-02, bm-node on
    # 2026-12-04, start-limit-hit), so every unit's counter starts from zero, before and after each test
    lab.target.run("systemctl reset-failed")
    yield lab.target
    lab.target.run(f"rm -f /etc/bm/bm-node.disabled {DELAY_FILE}; systemctl reset-failed; systemctl start bm-nginx; "
                   "systemctl is-active -q bm-core || systemctl restart bm-core; bmctl start >/dev/null")


def status(host):
    proc = host.run("bmctl status", check=False)
    return proc.returncode, proc.stdout.splitlines()


def poll_status(host, predicate, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        rc, lines = status(host)
        if predicate(rc, lines):
            return rc, lines
        assert time.monotonic() < deadline, f"bmctl status never matched: exit {rc}\n" + "\n".join(lines)
        time.sleep(0.5)


def test_running_lists_bm_nginx_then_every_unit_and_exits_0(host):
    host.run("bmctl start")
    rc, lines = status(host)
    assert rc == 0
    assert lines == running_lines()


def test_stop_leaves_bm_nginx_postgresql_and_postfix_running_and_status_exits_1(host):
    out = host.run("bmctl stop").stdout
    assert out.strip() == "Stop BlueMind Services"
    rc, lines = status(host)
    assert rc == 1, "bm-nginx stays up after bmctl stop: the product exits 1"
    assert lines == [NGINX_WHILE_STOPPED] + [f"{u}.service is stopped." for u in UNITS]
    assert host.run("systemctl is-active bm-nginx postgresql postfix").stdout.split() == ["active"] * 3


def test_fully_stopped_exits_0(host):
    host.run("bmctl stop >/dev/null && systemctl stop bm-nginx")
    rc, lines = status(host)
    assert rc == 0, "a fully stopped BlueMind exits 0: callers must read the text"
    assert lines == ["bm-nginx is stopped."] + [f"{u}.service is stopped." for u in UNITS]


def test_one_unit_down_while_started_is_a_fail_and_exits_1(host):
    host.run("bmctl start && systemctl stop bm-node")
    rc, lines = status(host)
    assert rc == 1
    assert ("bm-node.service fail - check systemctl status bm-node.service and journalctl -xe -u "
            "bm-node.service") in lines
    assert "bm-core.service is running." in lines


def test_unit_started_while_bluemind_stopped_exits_1(host):
    host.run("bmctl stop >/dev/null && systemctl start bm-tika")
    rc, lines = status(host)
    assert rc == 1
    assert "bm-tika.service started while BlueMind is stopped - " + RESTART_HINT in lines


def test_disabled_unit(host):
    host.run("bmctl start >/dev/null && touch /etc/bm/bm-node.disabled")
    rc, lines = status(host)
    assert rc == 0
    assert "bm-node.service is disabled on this node" in lines


def test_restart_and_usage(host):
    assert host.run("bmctl restart").stdout.strip() == "Restarting BlueMind Services"
    assert status(host)[0] == 0
    proc = host.run("bmctl frobnicate", check=False)
    assert proc.returncode == 0
    assert proc.stdout.strip() == "Usage: /usr/bin/bmctl [start|stop|status|reload|restart|all_status|memory]"


def test_a_core_restarting_while_started_is_a_fail(host):
    """bm-core is Type=notify: while it starts it is "activating", which bmctl reports as a fail."""
    host.run(f"bmctl start >/dev/null && echo 6 >{DELAY_FILE} && systemctl restart --no-block bm-core")
    deadline = time.monotonic() + 20
    while host.run("systemctl is-active bm-core", check=False).stdout.strip() != "activating":
        assert time.monotonic() < deadline, "bm-core never went through activating"
        time.sleep(0.2)
    rc, lines = status(host)
    assert rc == 1 and lines[0] == "bm-nginx is running."
    assert ("bm-core.service fail - check systemctl status bm-core.service and journalctl -xe -u "
            "bm-core.service") in lines
    poll_status(host, lambda rc, lines: rc == 0 and lines == running_lines())


def test_a_slow_core_holds_bluemind_target_while_it_starts(host):
    """`bmctl start` waits for bm-core (the target is ordered after what it wants): meanwhile the target
    is not active, so bmctl takes its "stopped" branch: the starting core is stopped, the rest are
    "started while BlueMind is stopped"."""
    host.run(f"bmctl stop >/dev/null && echo 6 >{DELAY_FILE}")
    started = time.monotonic()
    host.run("systemctl start --no-block bluemind.target")
    rc, lines = poll_status(host, lambda rc, lines: "bm-node.service started while BlueMind is stopped - "
                            + RESTART_HINT in lines)
    assert rc == 1 and "bm-core.service is stopped." in lines
    rc, lines = poll_status(host, lambda rc, lines: rc == 0)
    assert lines == running_lines()
    assert time.monotonic() - started >= 5


# --- the bmctl module on this host ------------------------------------------------------------
@pytest.fixture(scope="module")
def run_bmctl_module(lab, tmp_path_factory):
    """Run bluemind.migration.bmctl on the target with ansible-playbook; returns the host's result."""
    root = tmp_path_factory.mktemp("collections")
    link = root / "ansible_collections" / "bluemind" / "migration"
    link.parent.mkdir(parents=True)
    link.symlink_to(TOP)
    (root / "ansible.cfg").write_text("[defaults]\n")  # not the checkout's: its callbacks print
    env = dict(os.environ, ANSIBLE_CONFIG=str(root / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=str(root),
               ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")

    def run(**args):
        play = [{"hosts": "target", "gather_facts": False,
                 "tasks": [{"name": "bmctl", "bluemind.migration.bmctl": args}]}]
        (root / "play.json").write_text(json.dumps(play))
        proc = subprocess.run([str(TOP / ".venv/bin/ansible-playbook"), "-i", str(LAB_INVENTORY),
                               str(root / "play.json")], capture_output=True, text=True, env=env,
                              cwd=str(TOP), timeout=900, check=False)
        try:
            return next(iter(json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"].values()))
        except (ValueError, KeyError, IndexError, StopIteration):
            raise AssertionError("ansible-playbook gave no result (exit %d):\n%s\n%s" % (
                proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:]))

    return run


def test_module_reaches_stopped_although_bm_nginx_stays_up(run_bmctl_module, host):
    host.run("bmctl start >/dev/null")
    result = run_bmctl_module(state="stopped")
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is True and result["bmctl_action"] == "stop"
    assert set(result["status"].values()) == {"stopped"} and len(result["status"]) == len(UNITS)
    assert result["outside_target"] == {"bm-nginx": "inconsistent"}
    assert status(host)[1][0] == NGINX_WHILE_STOPPED
    again = run_bmctl_module(state="stopped")
    assert again["changed"] is False and again["bmctl_action"] is None


def test_module_waits_for_a_core_that_takes_more_than_a_minute(run_bmctl_module, host):
    host.run(f"bmctl stop >/dev/null && echo 65 >{DELAY_FILE}")
    started = time.monotonic()
    result = run_bmctl_module(state="started")
    assert not result.get("failed"), result.get("msg")
    assert time.monotonic() - started >= 65
    assert result["changed"] is True and result["status"]["bm-core.service"] == "running"
    assert set(result["status"].values()) == {"running"}
    assert status(host) == (0, running_lines())


def test_module_gives_up_after_wait_timeout_and_names_the_core(run_bmctl_module, host):
    host.run(f"bmctl stop >/dev/null && echo 40 >{DELAY_FILE}")
    started = time.monotonic()
    result = run_bmctl_module(state="started", wait_timeout=10)
    assert time.monotonic() - started < 35
    assert result["failed"] is True
    assert "start' did not return within 10 s (wait_timeout); systemd goes on with the job" in result["msg"]
    assert "bm-core.service is stopped" in result["msg"] and "raise wait_timeout" in result["msg"]
    # systemd finishes the start on its own
    poll_status(host, lambda rc, lines: rc == 0 and lines == running_lines(), timeout=60)
