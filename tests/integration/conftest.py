"""Fixtures for the modules' integration tests: the lab (from tests/lab), ansible-playbook runs,
and SSH trust target -> origin made for the tests and removed afterwards."""

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parents[2]
VENV_BIN = TOP / ".venv" / "bin"
TEST_KEY = "/root/.ssh/bluemind_itest"
TEST_KNOWN_HOSTS = "/root/.ssh/bluemind_itest_known_hosts"
KEY_MARK = "bluemind-migration-itest"

_spec = importlib.util.spec_from_file_location("lab_conftest", TOP / "tests" / "lab" / "conftest.py")
_lab_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_lab_conftest)
lab = _lab_conftest.lab  # the session fixture of tests/lab (skips or fails when no lab is up)
sys.path.insert(0, str(TOP / "tests" / "lab"))
from labpaths import LAB_INVENTORY as INVENTORY  # noqa: E402  (honours BMLAB_NAME like lab/lab.sh)


@pytest.fixture(scope="session")
def collections_path():
    """This checkout as ansible_collections/bluemind/migration, without installing it."""
    root = tempfile.mkdtemp(prefix="bluemind-itest-")
    os.makedirs(os.path.join(root, "ansible_collections", "bluemind"))
    os.symlink(str(TOP), os.path.join(root, "ansible_collections", "bluemind", "migration"))
    return root


class Play(object):
    """One task of a module on a lab host, run by ansible-playbook (in the background until
    ``result()``); the result is the host's."""

    def __init__(self, workdir, collections_path, host, module, args, check=False, diff=False):
        play = [{"hosts": host, "gather_facts": False,
                 "tasks": [{"name": module, "bluemind.migration." + module: args}]}]
        handle, path = tempfile.mkstemp(dir=str(workdir), prefix="play-", suffix=".json")
        with os.fdopen(handle, "w") as out:
            json.dump(play, out)
        env = dict(os.environ, ANSIBLE_CONFIG=str(workdir / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=collections_path,
                   ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_PIPELINING="true")
        cmd = [str(VENV_BIN / "ansible-playbook"), "-i", str(INVENTORY), path]
        cmd += ["--check"] if check else []
        cmd += ["--diff"] if diff else []
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                     cwd=str(TOP))

    def running(self):
        return self.proc.poll() is None

    def result(self, timeout=900):
        try:
            stdout, stderr = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            stdout, stderr = self.proc.communicate()
        try:
            report = json.loads(stdout)
            return next(iter(report["plays"][0]["tasks"][0]["hosts"].values()))
        except (ValueError, KeyError, IndexError, StopIteration):
            raise AssertionError("ansible-playbook gave no result (exit %d):\n%s\n%s" % (
                self.proc.returncode, stdout[-3000:], stderr[-3000:]))


@pytest.fixture(scope="session")
def plays_dir(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("plays")
    (workdir / "ansible.cfg").write_text("[defaults]\n")  # not the checkout's: its profiling callback would print into the report
    return workdir


@pytest.fixture(scope="session")
def run_task(lab, collections_path, plays_dir):
    """Run one task of a module on a lab host with ansible-playbook; return the host's result."""

    def run(host, module, args, check=False, diff=False):
        return Play(plays_dir, collections_path, host, module, args, check, diff).result()

    return run


@pytest.fixture(scope="session")
def start_task(lab, collections_path, plays_dir):
    """Start one task as run_task does, in the background; ``.result()`` waits for it."""

    def start(host, module, args, check=False, diff=False):
        return Play(plays_dir, collections_path, host, module, args, check, diff)

    return start


@pytest.fixture(scope="session")
def ssh_trust(lab):
    """A key on the target accepted by the origin's root, and the origin's host key, read from the
    origin itself, pinned in a known_hosts file on the target. Removed at the end."""
    lab.target.run("rm -f {k} {k}.pub && ssh-keygen -q -t ed25519 -N '' -C {m} -f {k}".format(k=TEST_KEY, m=KEY_MARK))
    public = lab.target.run("cat %s.pub" % TEST_KEY).stdout.strip()
    lab.origin.run("install -d -m 700 /root/.ssh && echo 'from=\"%s\" %s' >> /root/.ssh/authorized_keys"
                   % (lab.target.ip, public))
    host_key = lab.origin.run("cat /etc/ssh/ssh_host_ed25519_key.pub").stdout.split()[:2]
    lab.target.run("echo '%s %s' > %s" % (lab.origin.ip, " ".join(host_key), TEST_KNOWN_HOSTS))
    yield dict(origin_host=lab.origin.ip, ssh_key=TEST_KEY, known_hosts=TEST_KNOWN_HOSTS)
    lab.origin.run("sed -i '/%s/d' /root/.ssh/authorized_keys" % KEY_MARK)
    lab.target.run("rm -f %s %s.pub %s" % (TEST_KEY, TEST_KEY, TEST_KNOWN_HOSTS))
