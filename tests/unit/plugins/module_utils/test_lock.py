"""One pull or database pass at a time on the target: the lock waits for the previous holder."""
import os
import subprocess
import sys

import pytest

from ansible_collections.bluemind.migration.plugins.module_utils import lock

HOLD = ("import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
        "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, b'pid 4242 since then'); print('held', flush=True); "
        "time.sleep(float(sys.argv[2]))")


@pytest.fixture
def holder(tmp_path):
    """Another process that holds the lock for a while, as an orphaned module would."""
    path = str(tmp_path / "run" / "x.lock")
    os.makedirs(os.path.dirname(path))
    procs = []

    def hold(seconds):
        proc = subprocess.Popen([sys.executable, "-c", HOLD, path, str(seconds)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "held"
        procs.append(proc)
        return path

    yield hold
    for proc in procs:
        proc.kill()
        proc.wait()


def test_a_free_lock_is_taken_at_once_and_names_its_holder(tmp_path):
    path = str(tmp_path / "new" / "x.lock")
    assert lock.acquire(path, 5, "a pull") == 0
    assert open(path).read().startswith("pid %d since " % os.getpid())


def test_the_lock_waits_for_the_previous_holder(holder):
    path = holder(1.5)
    waited = lock.acquire(path, 30, "a pull")
    assert 0.5 <= waited < 30


def test_a_holder_that_stays_is_named_after_the_timeout(holder):
    path = holder(60)
    with pytest.raises(lock.LockBusy, match=r"a pull of the trees is still running .* \(pid 4242 since then; lock "):
        lock.acquire(path, 1, "a pull of the trees")


def test_a_released_lock_is_free_for_another_process_and_taken_again(tmp_path):
    """The window's database job gives its lock back after its catch-up pass, before it waits at its gate."""
    path = str(tmp_path / "run" / "x.lock")
    lock.acquire(path, 5, "a database pass")
    probe = ("import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR); "
             "fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)")
    held = subprocess.run([sys.executable, "-c", probe, path], capture_output=True, text=True, check=False)
    assert held.returncode != 0 and "BlockingIOError" in held.stderr
    lock.release(path)
    assert subprocess.run([sys.executable, "-c", probe, path], check=False).returncode == 0
    lock.release(path)  # not held any more: nothing
    assert lock.acquire(path, 5, "a database pass") == 0
    lock.release(path)
