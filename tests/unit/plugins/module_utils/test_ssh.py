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
    assert calls == [["ssh", "-o", "ControlPath=/c", "-p", "2222", "-O", "exit", "root@192.0.2.10"]]


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


def test_cipher_and_no_compression_only_for_a_module_with_ssh_cipher():
    tuned = ssh.OriginSsh("ssh", dict(PARAMS, ssh_cipher="aes128-gcm@openssh.com"), control_path="/c")
    args = tuned.options()
    assert args[args.index("-c") + 1] == "aes128-gcm@openssh.com"
    assert options_dict(args)["Compression"] == "no"
    assert "-c" in tuned.tunnel_command(15432, 5432)
    assert shlex.split(tuned.shell()) == tuned.command()
    default = ssh.OriginSsh("ssh", dict(PARAMS, ssh_cipher=""))
    assert "-c" not in default.options() and options_dict(default.options())["Compression"] == "no"
    # the modules without the option (bluemind_db_transfer) keep ssh's own choices
    untouched = ssh.OriginSsh("ssh", PARAMS)
    assert "-c" not in untouched.options() and "Compression" not in options_dict(untouched.options())


@pytest.mark.parametrize("stderr, hint", [
    ("Unable to negotiate with 192.0.2.10 port 22: no matching cipher found. Their offer: aes256-ctr\n",
     "the origin's sshd does not accept ssh_cipher: set ssh_cipher to \"\""),
    ("Unknown cipher type 'nope'\n", "ssh on the target does not know ssh_cipher"),
])
def test_cipher_failures_are_explained(stderr, hint):
    message = ssh.explain_ssh_failure("ssh to root@192.0.2.10", 255, stderr)
    assert message.startswith("ssh to root@192.0.2.10 failed (ssh exit 255: ") and hint in message


def test_remote_runs_a_command_over_the_shared_connection():
    origin = ssh.OriginSsh("ssh", PARAMS, control_path="/c")
    args = origin.remote("date +%s.%N")
    assert args[:-2] == origin.command() and args[-2:] == ["root@192.0.2.10", "date +%s.%N"]
    assert "ControlMaster=auto" not in origin.remote("true", multiplex=False)


@pytest.mark.parametrize("out, seconds", [
    ("1718000000.123456789\n", 1718000000.123456789),
    ("1718000000.N\n", 1718000000.0),   # a date without %N
    ("1718000000\n", 1718000000.0),
])
def test_clock_reads_the_origin_date(out, seconds):
    calls = []

    def run(args):
        calls.append(args)
        return 0, out, ""

    assert ssh.OriginSsh("ssh", PARAMS, control_path="/c").clock(run) == seconds
    assert calls[0][-1] == "date +%s.%N"


@pytest.mark.parametrize("answer, message", [
    ((255, "", "Connection closed by 192.0.2.10\n"), "reading the clock of root@192.0.2.10 failed (ssh exit 255"),
    ((0, "Tue Jun 10\n", ""), "unexpected answer 'Tue Jun 10' from date"),
])
def test_clock_failure(answer, message):
    with pytest.raises(ssh.SshError) as err:
        ssh.OriginSsh("ssh", PARAMS).clock(lambda args: answer)
    assert message in str(err.value)
