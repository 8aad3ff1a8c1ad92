import shlex
import subprocess
import sys

import pytest

from ansible_collections.bluemind.migration.plugins.module_utils import ssh

PARAMS = dict(origin_host="192.0.2.10", origin_user="root", ssh_key="/k/id", known_hosts="/k/known hosts",
              ssh_port=2222, ssh_connect_timeout=3)


def options_dict(args):
    return dict(args[i + 1].split("=", 1) for i, a in enumerate(args) if a == "-o")


def test_options_pin_the_host_key_and_never_accept_blindly():
    opts = options_dict(ssh.OriginSsh("ssh", PARAMS).options())
    assert opts["StrictHostKeyChecking"] == "yes"
    assert opts["UserKnownHostsFile"] == "/k/known hosts"
    assert opts["GlobalKnownHostsFile"] == "/dev/null"
    assert opts["BatchMode"] == "yes"
    assert "ControlMaster" not in opts


def test_multiplexing_only_with_a_control_path():
    origin = ssh.OriginSsh("ssh", PARAMS, control_path="/r/.ssh/cm-%C", control_persist=30)
    opts = options_dict(origin.options())
    assert (opts["ControlMaster"], opts["ControlPath"], opts["ControlPersist"]) == ("auto", "/r/.ssh/cm-%C", "30")
    assert "ControlMaster" not in options_dict(origin.options(multiplex=False))


def test_shell_is_split_back_into_the_same_arguments():
    origin = ssh.OriginSsh("/usr/bin/ssh", PARAMS, control_path="/r/my dir/%C")
    assert shlex.split(origin.shell()) == origin.command()


def test_open_master_explains_a_host_key_failure():
    origin = ssh.OriginSsh("ssh", PARAMS, control_path="/c")

    def run(args):
        assert args[-2:] == ["root@192.0.2.10", "true"]
        return 255, "", "Host key verification failed.\n"

    with pytest.raises(ssh.SshError) as err:
        origin.open_master(run)
    assert "ssh exit 255" in str(err.value) and "never accept it blindly" in str(err.value)


def test_close_master_only_when_multiplexed():
    calls = []
    ssh.OriginSsh("ssh", PARAMS).close_master(calls.append)
    assert calls == []
    ssh.OriginSsh("ssh", PARAMS, control_path="/c").close_master(calls.append)
    assert calls == [["ssh", "-o", "ControlPath=/c", "-O", "exit", "root@192.0.2.10"]]


def test_check_files_names_the_missing_file(tmp_path):
    key = tmp_path / "key"
    key.write_text("k")
    params = dict(PARAMS, ssh_key=str(key), known_hosts=str(tmp_path / "absent"))
    with pytest.raises(ssh.SshError, match="known_hosts .*absent is missing"):
        ssh.OriginSsh("ssh", params).check_files()


def test_tunnel_command_forwards_loopback_to_loopback():
    args = ssh.OriginSsh("ssh", PARAMS, control_path="/c").tunnel_command(15432, 5432)
    assert args[-3:] == ["-L", "127.0.0.1:15432:127.0.0.1:5432", "root@192.0.2.10"]
    assert "-N" in args and "ExitOnForwardFailure=yes" in args and "ControlMaster=auto" not in args


def python_popen(code):
    """A popen that runs ``code`` (with the port as argv[1]) instead of ssh."""
    def popen(args, **kwargs):
        port = args[args.index("-L") + 1].split(":")[1]
        return subprocess.Popen([sys.executable, "-c", code, port], **kwargs)
    return popen


def test_tunnel_waits_for_the_listener_and_stops_it():
    listener = ("import socket, sys, time\ns = socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
                "time.sleep(0.5)\ns.bind(('127.0.0.1', int(sys.argv[1])))\ns.listen(5)\ntime.sleep(60)\n")
    tunnel = ssh.Tunnel(ssh.OriginSsh("ssh", PARAMS), ssh.free_local_port(), 5432, popen=python_popen(listener))
    with tunnel:
        assert tunnel.proc.poll() is None
    assert tunnel.proc.poll() is not None


def test_tunnel_failure_reports_ssh_message():
    failing = "import sys\nsys.stderr.write('root@192.0.2.10: Permission denied (publickey).\\n')\nsys.exit(255)\n"
    tunnel = ssh.Tunnel(ssh.OriginSsh("ssh", PARAMS), ssh.free_local_port(), 5432, popen=python_popen(failing))
    with pytest.raises(ssh.SshError) as err:
        with tunnel:
            pass
    assert "the tunnel to root@192.0.2.10 port 5432 failed (ssh exit 255" in str(err.value)
    assert "authorized_keys" in str(err.value)
