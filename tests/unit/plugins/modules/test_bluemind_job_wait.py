"""A job started in the background (module_utils/jobs.py) and bluemind_job_wait: the job keeps its
process and its result on the target; the wait returns the result, or tells a job gone (its process
ended without a result, another boot, never started) from one that still runs. Real processes (a
child python) stand for the job."""

import json
import os
import subprocess
import sys
import time

import pytest

from ansible_collections.bluemind.migration.plugins.module_utils import jobs
from ansible_collections.bluemind.migration.plugins.modules import bluemind_config_copy, bluemind_job_wait


def test_a_job_keeps_its_process_then_its_result_masked_as_ansible_masks_it(run_module, tmp_path, monkeypatch):
    """bluemind_config_copy failing at once (its key file missing) as a job: its process file says which
    process ran it, its result file what it returned, the no_log value masked."""
    job = tmp_path / "jobs" / "config-token.json"
    (tmp_path / "jobs").mkdir()
    job.write_text('{"finished": true, "stale": true}')  # an earlier job's result: removed at the start
    args = dict(origin_host="192.0.2.10", ssh_key=str(tmp_path / "missing-key"), known_hosts=str(tmp_path / "kh"),
                job_file=str(job))
    result = run_module(bluemind_config_copy, args)
    assert result["failed"] is True
    kept = json.loads(job.read_text())
    assert kept["failed"] is True and kept["finished"] is True and kept["msg"] == result["msg"] and "stale" not in kept
    started = json.loads((tmp_path / "jobs" / "config-token.json.pid").read_text())
    assert started["pid"] == os.getpid() and started["boot"] == jobs.boot_id()
    assert started["start"] == jobs.process_start(os.getpid())
    # not in check mode: nothing kept
    other = tmp_path / "jobs" / "checked.json"
    run_module(bluemind_config_copy, dict(args, job_file=str(other)), check_mode=True)
    assert not other.exists() and not (tmp_path / "jobs" / "checked.json.pid").exists()


def start_job(path, body):
    """A real process that writes a job's process file, runs ``body`` (python), and writes no result
    unless the body does."""
    code = ("import json, os, sys, time\nsys.path[:0] = %r\n"
            "from ansible_collections.bluemind.migration.plugins.module_utils import jobs\n"
            "jobs._write_atomic(%r, dict(pid=os.getpid(), start=jobs.process_start(os.getpid()), boot=jobs.boot_id(), "
            "started='now'))\n%s\n" % (sys.path, path + ".pid", body))
    proc = subprocess.Popen([sys.executable, "-c", code])
    for _attempt in range(200):
        if os.path.exists(path + ".pid"):
            break
        time.sleep(0.02)
    return proc


def test_the_wait_returns_the_result_as_soon_as_the_job_writes_it(run_module, tmp_path):
    path = str(tmp_path / "db-pass.json")
    proc = start_job(path, "time.sleep(0.6)\njobs._write_atomic(%r, dict(changed=True, finished=True, "
                           "databases=[dict(name='bj')], invocation=dict(module_args={})))" % path)
    began = time.monotonic()
    result = run_module(bluemind_job_wait, dict(job_file=path))
    proc.wait()
    assert (result["finished"], result["gone"], result["changed"]) == (True, False, True)
    assert result["databases"] == [dict(name="bj")] and 0.4 <= result["waited_seconds"] < 2
    assert time.monotonic() - began < 3


def test_a_job_whose_process_ended_without_a_result_is_gone_not_waited_for(run_module, tmp_path):
    path = str(tmp_path / "db-pass.json")
    start_job(path, "pass").wait()  # killed, OOM: its process is gone, no result written
    result = run_module(bluemind_job_wait, dict(job_file=path, timeout=600))
    assert (result["finished"], result["gone"], result.get("failed")) == (False, True, None)
    assert "ended without a result" in result["gone_reason"] and result["waited_seconds"] < 1
    # another boot since it started: gone, whatever runs under that pid now
    started = json.loads(open(path + ".pid").read())
    with open(path + ".pid", "w") as handle:
        json.dump(dict(started, pid=os.getpid(), start=jobs.process_start(os.getpid()), boot="another-boot"), handle)
    assert "the target restarted" in run_module(bluemind_job_wait, dict(job_file=path))["gone_reason"]
    # the same pid, but another process (its start time differs)
    with open(path + ".pid", "w") as handle:
        json.dump(dict(started, pid=os.getpid(), start=1, boot=jobs.boot_id()), handle)
    assert run_module(bluemind_job_wait, dict(job_file=path))["gone"] is True


def test_a_job_that_never_started_is_gone_after_the_grace_and_an_old_job_id_at_once(run_module, tmp_path):
    result = run_module(bluemind_job_wait, dict(job_file=str(tmp_path / "none.json"), grace=0.3))
    assert result["gone"] is True and "never started" in result["gone_reason"] and result["waited_seconds"] >= 0.3
    # what an earlier version kept: an async job id, not a file
    result = run_module(bluemind_job_wait, dict(job_file="j123456789.4242"))
    assert result["gone"] is True and result["waited_seconds"] == 0


def test_a_job_that_failed_fails_the_wait_with_its_message(run_module, tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(dict(failed=True, finished=True, msg="origin unreachable", files=[])))
    result = run_module(bluemind_job_wait, dict(job_file=str(path)))
    assert result["failed"] is True and result["msg"] == "the job of %s failed: origin unreachable" % path
    assert (result["finished"], result["gone"], result["files"]) == (True, False, [])


def test_a_job_still_running_at_the_timeout_fails_the_wait_and_is_left_running(run_module, tmp_path):
    path = str(tmp_path / "db-pass.json")
    proc = start_job(path, "time.sleep(30)")
    try:
        result = run_module(bluemind_job_wait, dict(job_file=path, timeout=1))
        assert result["failed"] is True and "still runs after 1 s" in result["msg"] and result["gone"] is False
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()


def test_a_result_written_just_as_the_process_ends_is_read_not_taken_for_gone(tmp_path, monkeypatch):
    path = str(tmp_path / "db-pass.json")
    jobs._write_atomic(path + ".pid", dict(pid=os.getpid(), start=-1, boot=jobs.boot_id(), started="now"))
    real_read = jobs._read

    def read(name):  # the result appears while the process is looked at (it ended just after writing it)
        if name.startswith("/proc/%d/" % os.getpid()):
            jobs._write_atomic(path, dict(finished=True, changed=False))
        return real_read(name)

    monkeypatch.setattr(jobs, "_read", read)
    assert jobs.job_status(path) == ("finished", dict(finished=True, changed=False))


@pytest.mark.parametrize("stat,start", [("123 (python3) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 4242 99", 4242),
                                        ("123 (a b) c)) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 77 99", 77)])
def test_a_process_start_is_read_after_its_name_whatever_the_name_holds(monkeypatch, stat, start):
    monkeypatch.setattr(jobs, "_read", lambda name: stat)
    assert jobs.process_start(123) == start


def test_several_jobs_are_waited_for_in_one_run_each_outcome_returned_none_failing_the_task(run_module, tmp_path):
    """The jobs beside the final pull: one ends after a while with its result, one failed, one never
    started (no trace after the grace): the task returns the three outcomes and does not fail."""
    ended, failed, absent = (str(tmp_path / name) for name in ("db-pass.json", "config.json", "never.json"))
    proc = start_job(ended, "time.sleep(0.4)\njobs._write_atomic(%r, dict(changed=True, finished=True, "
                            "databases=[dict(name='bj')]))" % ended)
    jobs._write_atomic(failed, dict(failed=True, finished=True, msg="origin unreachable", files=[]))
    result = run_module(bluemind_job_wait, dict(job_files=[ended, failed, absent], grace=0.2))
    proc.wait()
    assert not result.get("failed") and result["waited_seconds"] >= 0.35
    outcomes = result["jobs"]
    assert outcomes[ended]["finished"] is True and outcomes[ended]["databases"] == [dict(name="bj")]
    assert "failed" not in outcomes[ended] and outcomes[ended]["gone"] is False
    assert outcomes[failed]["failed"] is True and outcomes[failed]["msg"] == "the job of %s failed: origin unreachable" % failed
    assert outcomes[absent]["gone"] is True and "never started" in outcomes[absent]["gone_reason"]
    # a job that still runs after the timeout (shared by all) is said so, the task does not fail
    slow = str(tmp_path / "slow.json")
    proc = start_job(slow, "time.sleep(5)")
    try:
        result = run_module(bluemind_job_wait, dict(job_files=[failed, slow], timeout=0.3))
    finally:
        proc.kill()
        proc.wait()
    assert not result.get("failed") and result["jobs"][failed]["failed"] is True
    assert result["jobs"][slow]["running"] is True and "still runs after" in result["jobs"][slow]["msg"]
    # one job file or several, not both
    both = run_module(bluemind_job_wait, dict(job_file=ended, job_files=[ended]))
    assert both["failed"] is True and "mutually exclusive" in both["msg"]


def test_until_ready_a_job_is_waited_for_until_its_ready_file_or_its_end(run_module, tmp_path):
    """Before the origin's stop the play waits for the jobs' work ahead of their gate: a job that creates
    its ready file after a while (jobs.ready_when) and keeps running, one that ended without being ready
    (failed early), one neither ready nor ended at the timeout (running, not a failure)."""
    ready, failed, slow = (str(tmp_path / name) for name in ("db-pass.json", "pull.json", "slow.json"))
    jobs._write_atomic(failed, dict(failed=True, finished=True, msg="no ssh"))
    slowproc = start_job(slow, "time.sleep(5)")
    proc = start_job(ready, "class M: params = dict(job_file=%r); check_mode = False\n"
                            "jobs.ready_when(M, lambda: time.sleep(0.6)).join()\ntime.sleep(5)" % ready)
    try:
        assert not os.path.exists(ready + jobs.READY_SUFFIX)
        result = run_module(bluemind_job_wait, dict(job_files=[ready, failed], until_ready=True, timeout=3))
        assert not result.get("failed") and 0 < result["waited_seconds"] < 3
        assert result["jobs"][ready] == dict(changed=False, finished=False, gone=False, ready=True,
                                             waited_seconds=result["jobs"][ready]["waited_seconds"])
        assert proc.poll() is None  # ready, still running: the job goes on to its gate
        assert result["jobs"][failed]["failed"] is True and "ready" not in result["jobs"][failed]
        result = run_module(bluemind_job_wait, dict(job_files=[slow], until_ready=True, timeout=0.3))
        assert not result.get("failed") and result["jobs"][slow]["running"] is True
        # without until_ready the ready file does not end the wait
        result = run_module(bluemind_job_wait, dict(job_files=[ready], timeout=0.3))
        assert result["jobs"][ready]["running"] is True
    finally:
        for running in (proc, slowproc):
            running.kill()
            running.wait()


def test_a_ready_file_is_made_after_the_work_even_when_it_fails_and_never_in_check_mode(tmp_path):
    class Module(object):
        def __init__(self, path, check_mode=False):
            self.params, self.check_mode = dict(job_file=path), check_mode

    path = str(tmp_path / "pull.json")

    def fails():
        assert not os.path.exists(path + jobs.READY_SUFFIX)  # not before the work ended
        raise ValueError("walk failed")

    jobs.ready_when(Module(path), fails).join()
    assert os.path.exists(path + jobs.READY_SUFFIX)
    checked = str(tmp_path / "checked.json")
    jobs.ready_when(Module(checked, check_mode=True), lambda: None).join()
    assert not os.path.exists(checked + jobs.READY_SUFFIX)
    jobs.ready_when(Module(None), lambda: None).join()  # no job file: nothing to make
