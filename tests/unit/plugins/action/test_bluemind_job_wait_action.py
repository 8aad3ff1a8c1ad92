"""The action of bluemind_job_wait: with a progress file, the wait for a job runs the module a period
at a time and prints the job's progress between two periods; the job's outcome is returned as the
module returns it for one job file. The module and the connection are fakes."""

import json
from unittest import mock

import pytest
from ansible.module_utils import _internal

_MODULE_SIDE = _internal.is_controller  # see test_bluemind_sync_action.py: set back after the imports
from ansible_collections.bluemind.migration.plugins.action import bluemind_job_wait as action  # noqa: E402
from ansible_collections.bluemind.migration.plugins.action import bluemind_sync as sync_action  # noqa: E402
from ansible_collections.bluemind.migration.plugins.module_utils.progress import format_line  # noqa: E402

_internal.is_controller = _MODULE_SIDE

JOB = "/var/lib/bluemind-migration/jobs/pull-tok.json"
PULLED = dict(changed=True, trees=[dict(path="/srv/a", bytes=10)], started_at="2026-12-02T05:00:01.000000Z",
              finished=True, gone=False, waited_seconds=0.1)


def tree(path, state="running"):
    return dict(path=path, state=state, bytes=1024 ** 2, files=3, entries_checked=40, size_entries=100,
                size_bytes=4 * 1024 ** 2, percent=25.0, rate=1024, eta=30, seconds=10.0)


def still_running(seconds):
    return dict(changed=False, jobs={JOB: dict(finished=False, gone=False, running=True,
                                               msg="the job of %s (pid 7) still runs after %g s of waiting" % (JOB, seconds))},
                waited_seconds=seconds)


def ended(outcome):
    return dict(changed=False, jobs={JOB: outcome}, waited_seconds=0.2)


@pytest.fixture
def run(monkeypatch):
    def run(args, answers, progress_files=(), check_mode=False, no_log=False):
        task = mock.MagicMock()
        task.args, task.check_mode, task.no_log, task.async_val = args, check_mode, no_log, 0
        connection = mock.MagicMock()
        connection._shell.tmpdir = None
        plugin = action.ActionModule(task, connection, mock.MagicMock(), mock.MagicMock(), mock.MagicMock())
        answers, progress_files, calls, shown = list(answers), list(progress_files), [], []
        clock = [1000.0]

        def execute_module(module_name=None, module_args=None, task_vars=None, wrap_async=False):
            calls.append(dict(module_args=module_args, wrap_async=wrap_async))
            answer = answers.pop(0)
            clock[0] += (module_args or {}).get("timeout", 0) if "running" in json.dumps(answer) else 0.2
            return answer

        def low_level(command, sudoable=True):
            calls.append(dict(command=command))
            text = json.dumps(progress_files.pop(0)) if progress_files else ""
            return dict(rc=0, stdout="\n%s\n%s" % (sync_action.SEPARATOR, text), stderr="")

        monkeypatch.setattr(_internal, "is_controller", True)
        with mock.patch.object(plugin, "_execute_module", side_effect=execute_module), \
                mock.patch.object(plugin, "_low_level_execute_command", side_effect=low_level), \
                mock.patch.object(plugin, "_remove_tmp_path"), \
                mock.patch.object(action.time, "monotonic", lambda: clock[0]), \
                mock.patch.object(action.display, "display", side_effect=lambda line, **where: shown.append((line, where))):
            result = plugin.run(task_vars=dict(inventory_hostname="target"))
        assert all(where == dict(stderr=True) for _line, where in shown)
        return dict(result=result, calls=calls, shown=[line for line, _where in shown], answers_left=answers)

    return run


def test_waits_a_period_at_a_time_printing_the_progress_then_returns_the_job_s_result(run):
    a = tree("/srv/a")
    done = run(dict(job_file=JOB, progress_path="/run/p.json", progress_interval=30, timeout=3600),
               [still_running(10), still_running(30), ended(PULLED)],
               progress_files=[dict(job="pull", finished=False, trees=[a, tree("/srv/b", "waiting")]),
                               dict(job="pull", finished=False, trees=[tree("/srv/a", "done")])])
    # the module, pipelined (no async start), for 10 s, then 30 s, then until the job's end
    waits = [c["module_args"] for c in done["calls"] if "module_args" in c]
    assert [w["timeout"] for w in waits] == [10, 30, 30] and not any(c.get("wrap_async") for c in done["calls"])
    assert all(w["job_files"] == [JOB] and "job_file" not in w for w in waits)
    assert done["shown"] == ["[target] pull " + format_line(a), "[target] pull " + format_line(tree("/srv/a", "done"))]
    assert "/run/p.json" in [c for c in done["calls"] if "command" in c][0]["command"]
    # the job's own result, as the module returns it for one job_file (the pull's figures at the top)
    result = done["result"]
    assert result["trees"] == PULLED["trees"] and result["changed"] is True and result["finished"] is True
    assert "running" not in result and "jobs" not in result and not result.get("failed")


def test_a_failed_or_gone_job_is_returned_as_the_module_says_it(run):
    failed = dict(PULLED, failed=True, msg="the job of %s failed: pull from root@o failed for 1 tree(s)" % JOB)
    done = run(dict(job_file=JOB, progress_path="/run/p.json"), [ended(failed)])
    assert done["result"]["failed"] is True and "failed for 1 tree(s)" in done["result"]["msg"]
    gone = dict(finished=False, gone=True, gone_reason="its process (pid 7) ended without a result", msg="gone")
    done = run(dict(job_file=JOB, progress_path="/run/p.json"), [ended(gone)])
    assert done["result"]["gone"] is True and done["result"]["gone_reason"].startswith("its process")
    assert done["shown"] == []


def test_a_job_still_running_after_the_timeout_fails_the_task_saying_so(run):
    done = run(dict(job_file=JOB, progress_path="/run/p.json", progress_interval=30, timeout=40),
               [still_running(10), still_running(30)], progress_files=[None, None])
    assert done["result"]["failed"] is True and "still runs after 40 s" in done["result"]["msg"]
    assert done["answers_left"] == []


def test_no_lines_under_no_log(run):
    done = run(dict(job_file=JOB, progress_path="/run/p.json"), [still_running(10), ended(PULLED)],
               progress_files=[dict(job="pull", trees=[tree("/srv/a")])], no_log=True)
    assert done["shown"] == [] and done["result"]["trees"] == PULLED["trees"]


@pytest.mark.parametrize("args,check_mode", [
    (dict(job_file=JOB), False),                                              # no progress file
    (dict(job_file=JOB, progress_path="/run/p.json", progress_interval=0), False),
    (dict(job_files=[JOB], progress_path="/run/p.json"), False),             # several jobs: the module's own
    (dict(job_file=JOB, progress_path="/run/p.json"), True),
])
def test_runs_the_module_once_as_any_action_otherwise(run, args, check_mode):
    done = run(args, [dict(PULLED)], check_mode=check_mode)
    assert done["calls"] == [dict(module_args=None, wrap_async=False)] and done["result"]["trees"] == PULLED["trees"]


def test_wait_lengths():
    assert action.wait_lengths(100, 30) == [10, 30, 30, 30]
    assert action.wait_lengths(5, 30) == [5]
    assert action.wait_lengths(20, 4) == [4, 4, 4, 4, 4]
    assert action.wait_lengths(0, 30) == []
