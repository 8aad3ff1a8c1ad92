"""`make lab` refuses bad conditions with a message that says what to do, before starting anything."""
import os
import subprocess

from labpaths import TOP


def lab_sh(*args, env=None, user=None):
    cmd = ["bash", str(TOP / "lab/lab.sh"), *args]
    if user is not None:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})}, check=False)


def containers():
    return subprocess.run(["docker", "ps", "-aq", "--filter", "label=bmlab=1"],
                          capture_output=True, text=True, check=True).stdout.split()


def test_without_root():
    proc = lab_sh("up", user=65534)
    assert proc.returncode == 1
    assert "needs root" in proc.stderr and "sudo" in proc.stderr


def test_without_disk_space_nothing_is_started():
    before = containers()
    proc = lab_sh("up", env={"BMLAB_MIN_FREE_GB": "1000000"})
    assert proc.returncode == 1
    assert "free on" in proc.stderr and "the lab needs 1000000 GiB" in proc.stderr
    assert containers() == before


def test_unknown_command():
    proc = lab_sh("frobnicate")
    assert proc.returncode == 1
    assert "usage: lab.sh up" in proc.stderr
