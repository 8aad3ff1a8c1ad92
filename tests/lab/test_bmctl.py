"""The simulated bmctl answers like BlueMind's: same lines, same exit codes (BLUEMIND.md, bmctl)."""
import pytest

UNITS = ["bm-core", "bm-eas", "bm-elasticsearch", "bm-hps", "bm-iptables", "bm-lmtpd", "bm-milter",
         "bm-node", "bm-tika", "bm-webserver", "bm-ysnp"]


@pytest.fixture
def host(lab):
    """The target host, BlueMind started again after each test whatever the test left."""
    yield lab.target
    lab.target.run("rm -f /etc/bm/bm-node.disabled; bmctl start >/dev/null")


def status(host):
    proc = host.run("bmctl status", check=False)
    return proc.returncode, proc.stdout.splitlines()


def test_running_lists_every_unit_and_exits_0(host):
    host.run("bmctl start")
    rc, lines = status(host)
    assert rc == 0
    assert lines == [f"{u} is running." for u in UNITS]


def test_stop_leaves_postgresql_and_postfix_running_and_status_exits_0(host):
    out = host.run("bmctl stop").stdout
    assert out.strip() == "Stop BlueMind Services"
    rc, lines = status(host)
    assert rc == 0, "a fully stopped BlueMind exits 0: callers must read the text"
    assert lines == [f"{u} is stopped." for u in UNITS]
    assert host.run("systemctl is-active postgresql postfix").stdout.split() == ["active", "active"]


def test_one_unit_down_while_started_exits_1(host):
    host.run("bmctl start && systemctl stop bm-node")
    rc, lines = status(host)
    assert rc == 1
    assert "bm-node is stopped." in lines
    assert "bm-core is running." in lines


def test_unit_started_while_bluemind_stopped_exits_1(host):
    host.run("bmctl stop >/dev/null && systemctl start bm-tika")
    rc, lines = status(host)
    assert rc == 1
    assert "bm-tika started while BlueMind is stopped - please restart bluemind: bmctl restart" in lines


def test_disabled_unit(host):
    host.run("touch /etc/bm/bm-node.disabled")
    rc, lines = status(host)
    assert rc == 0
    assert "bm-node is disabled on this node" in lines


def test_restart_and_usage(host):
    assert host.run("bmctl restart").stdout.strip() == "Restarting BlueMind Services"
    assert status(host)[0] == 0
    proc = host.run("bmctl frobnicate", check=False)
    assert proc.returncode == 0
    assert proc.stdout.strip() == "Usage: /usr/bin/bmctl [start|stop|status|reload|restart|all_status|memory]"
