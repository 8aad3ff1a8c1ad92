import pytest

from ansible_collections.bluemind.migration.plugins.module_utils import gate


class Clock(object):
    """A clock that moves only when the code sleeps; ``on_sleep`` runs at each sleep (the play at work)."""

    def __init__(self, on_sleep=None):
        self.now = 100.0
        self.sleeps = 0
        self.on_sleep = on_sleep

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps += 1
        self.now += seconds
        if self.on_sleep:
            self.on_sleep(self.sleeps)


def test_the_job_goes_on_once_the_gate_holds_its_token(tmp_path):
    path = tmp_path / "db.gate"
    path.write_text("token-of-an-earlier-run\n")

    def play(sleeps):
        if sleeps == 10:  # the stop succeeded: the play opens the gate
            path.write_text("token-1\n")

    clock = Clock(play)
    assert gate.wait(str(path), "token-1", 60, "the origin's stop", sleep=clock.sleep, clock=clock) == 0.5
    assert clock.sleeps == 10


def test_an_open_gate_costs_no_wait(tmp_path):
    path = tmp_path / "db.gate"
    path.write_text("token-1")
    clock = Clock()
    assert gate.wait(str(path), "token-1", 60, "the origin's stop", sleep=clock.sleep, clock=clock) == 0
    assert clock.sleeps == 0


def test_a_gate_never_opened_ends_the_wait_and_says_why(tmp_path):
    clock = Clock()
    with pytest.raises(gate.GateClosed) as caught:
        gate.wait(str(tmp_path / "missing.gate"), "token-1", 3, "the origin's stop", sleep=clock.sleep, clock=clock)
    assert str(caught.value).startswith("the origin's stop did not happen within 3 s")
    assert "nothing was copied or written" in str(caught.value) and 3 <= clock.now - 100.0 < 3.1


def test_a_gate_is_never_opened_without_a_token(tmp_path):
    (tmp_path / "db.gate").write_text("")
    with pytest.raises(ValueError):
        gate.wait(str(tmp_path / "db.gate"), "", 3, "the origin's stop")


def test_a_gate_that_cannot_be_read_is_an_error_not_a_wait(tmp_path):
    with pytest.raises(IsADirectoryError):
        gate.wait(str(tmp_path), "token-1", 3, "the origin's stop")


def test_a_gate_opened_by_a_later_run_ends_the_wait_of_a_job_whose_run_stopped(tmp_path):
    """A job whose run's controller died before the stop waits no longer once a later run opened the gate
    with its own token (the timeout is half an hour: meanwhile it held its connections and its follower)."""
    path = tmp_path / "db.gate"
    path.write_text("token-of-an-earlier-run\n")

    def later_run(sleeps):
        if sleeps == 4:
            path.write_text("token-of-a-later-run\n")

    clock = Clock(later_run)
    with pytest.raises(gate.GateClosed) as caught:
        gate.wait(str(path), "token-1", 1800, "the origin's stop", sleep=clock.sleep, clock=clock)
    assert clock.sleeps == 4 and "another run opened the gate" in str(caught.value)
    assert "nothing was copied or written" in str(caught.value)


def test_a_gate_first_made_by_a_later_run_ends_the_wait_too(tmp_path):
    path = tmp_path / "run" / "db.gate"

    def later_run(sleeps):
        if sleeps == 2:
            path.parent.mkdir()
            path.write_text("token-of-a-later-run\n")

    clock = Clock(later_run)
    with pytest.raises(gate.GateClosed):
        gate.wait(str(path), "token-1", 1800, "the origin's stop", sleep=clock.sleep, clock=clock)
    assert clock.sleeps == 2


def test_a_gate_read_while_it_is_being_written_is_not_another_runs(tmp_path):
    path = tmp_path / "db.gate"

    def play(sleeps):
        if sleeps == 2:  # a shell's '>' made the file, its token not yet written
            path.write_text("")
        if sleeps == 3:
            path.write_text("token-1\n")

    clock = Clock(play)
    assert gate.wait(str(path), "token-1", 60, "the origin's stop", sleep=clock.sleep, clock=clock) == 0.15
    assert clock.sleeps == 3
