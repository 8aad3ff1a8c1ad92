"""The action of bluemind_sync: the module started asynchronously, its progress printed while it
runs, its own result returned. The connection and the module are fakes: ``_execute_module`` answers
the launch, async_status and its cleanup; ``_low_level_execute_command`` answers the status reads."""

import json
import re
from unittest import mock

import pytest
from ansible.module_utils import _internal

# Importing controller code (ansible.errors, the action) marks the process as the controller, where
# AnsibleModule.warn() prints instead of adding to the module's result: the modules' tests that run
# in this process after these ones would lose their warnings. The mark is set back here, and set
# only while an action runs.
_MODULE_SIDE = _internal.is_controller
from ansible.errors import AnsibleError  # noqa: E402

from ansible_collections.bluemind.migration.plugins.action import bluemind_sync as action  # noqa: E402
from ansible_collections.bluemind.migration.plugins.action import bluemind_db_transfer as db_action  # noqa: E402
from ansible_collections.bluemind.migration.plugins.module_utils.progress import format_line  # noqa: E402

_internal.is_controller = _MODULE_SIDE

RESULTS_FILE = "/root/.ansible_async/j42.1"
LAUNCHED = dict(ansible_job_id="j42.1", results_file=RESULTS_FILE, started=1, finished=0, changed=True)
RUNNING_JOB = dict(ansible_job_id="j42.1", started=1, finished=0)
MODULE_RESULT = dict(changed=True, bytes=2048, files=1, trees=[dict(path="/srv/a", bytes=2048)])


def tree(path, state="running", **figures):
    return dict(dict(path=path, state=state, bytes=1024 ** 2, files=3, entries_checked=40, size_entries=100,
                     size_bytes=4 * 1024 ** 2, percent=40.0, rate=104857, eta=15, seconds=10.0), **figures)


def progress(*trees, **extra):
    return dict(dict(job="pull", pid=321, started=1.0, updated=2.0, finished=False, trees=list(trees)), **extra)


def peek(job, progress_file=None):
    """What the status read prints: the async job's file, the separator, the progress file."""
    text = json.dumps(job) if isinstance(job, dict) else (job or "")
    more = json.dumps(progress_file) if progress_file is not None else ""
    return dict(rc=0, stdout="%s\n%s\n%s" % (text, action.SEPARATOR, more), stderr="")


class Clock(object):
    def __init__(self):
        self.now = 1000.0
        self.sleeps = []

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def run(monkeypatch):
    """Run the action with task ``args``; ``reads`` are the status reads' answers in order."""

    def run(args, reads=(), check_mode=False, async_val=0, no_log=False, launched=None, final=None,
            action_class=action.ActionModule):
        launched = LAUNCHED if launched is None else launched
        final = MODULE_RESULT if final is None else final
        task = mock.MagicMock()
        task.args = args
        task.async_val = async_val
        task.check_mode = check_mode
        task.no_log = no_log
        task.action = "bluemind.migration.bluemind_sync"
        connection = mock.MagicMock()
        connection.has_native_async = False
        connection.always_pipeline_modules = False
        connection._shell.tmpdir = None
        plugin = action_class(task, connection, mock.MagicMock(), mock.MagicMock(), mock.MagicMock())
        calls, async_during_launch = [], []

        def execute_module(module_name=None, module_args=None, task_vars=None, wrap_async=False):
            calls.append(dict(module_name=module_name, module_args=module_args, wrap_async=wrap_async))
            if module_name is None:
                async_during_launch.append(task.async_val)
                return dict(launched) if wrap_async else dict(final)
            if module_args["mode"] == "status":
                return dict(final, ansible_job_id="j42.1", started=True, finished=True, results_file=RESULTS_FILE,
                            stdout="", stderr="")
            return dict(ansible_job_id="j42.1", erased=RESULTS_FILE)

        answers = list(reads)

        def low_level(command, sudoable=True):
            calls.append(dict(command=command))
            if command.startswith("rm -f "):
                return dict(rc=0, stdout="", stderr="")
            answer = answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            # the read waits on the target while the job runs, and returns at once when it ended
            if action.parse_peek(answer["stdout"])[0] == RUNNING_JOB:
                clock.now += int(re.search(r"-lt (\d+) ", command).group(1)) * action.POLL_STEP_SECONDS
            return answer

        clock, shown = Clock(), []
        monkeypatch.setattr(_internal, "is_controller", True)
        with mock.patch.object(plugin, "_execute_module", side_effect=execute_module), \
                mock.patch.object(plugin, "_low_level_execute_command", side_effect=low_level), \
                mock.patch.object(plugin, "_remove_tmp_path"), \
                mock.patch.object(action.time, "monotonic", clock.monotonic), \
                mock.patch.object(action.time, "sleep", clock.sleep), \
                mock.patch.object(action.display, "display",
                                  side_effect=lambda line, **where: shown.append((line, where))):
            result = plugin.run(task_vars=dict(inventory_hostname="target"))
        # every line goes to stderr (stdout is the callback's: whole JSON for a machine-readable one)
        assert all(where == dict(stderr=True) for _line, where in shown)
        return dict(result=result, calls=calls, shown=[line for line, _where in shown], clock=clock, task=task,
                    async_during_launch=async_during_launch, reads_left=answers)

    return run


def test_progress_lines_every_interval_then_the_module_s_own_result(run):
    a, b = tree("/srv/a"), tree("/srv/b", state="waiting")
    later, b_done = tree("/srv/a", bytes=3 * 1024 ** 2, percent=75.0, eta=5, seconds=15.0), tree("/srv/b", state="done")
    last = tree("/srv/a", bytes=4 * 1024 ** 2 - 1, percent=99.9, eta=0, seconds=19.0)
    reads = [peek(RUNNING_JOB, progress(a, b))] + [peek(RUNNING_JOB, progress(later, b_done))] * 2 + [
        peek(RUNNING_JOB, progress(last, b_done))] * 2 + [peek(MODULE_RESULT)]
    done = run(dict(trees=["/srv/a", "/srv/b"], progress_interval=4), reads)
    # no sleep on the controller: each read waits on the target up to 2 s for the job to end
    assert done["clock"].sleeps == []
    assert done["clock"].now == pytest.approx(1000.0 + 5 * 2.0)
    # reads end at 2, 4, 6, 8, 10 s and the last one at once; reports once 4 s had passed (at 4 s), then
    # 4 s later (8 s), with the figures read then: the running tree each time, a tree that ended once, a
    # tree not started never
    assert done["shown"] == ["[target] pull " + format_line(later), "[target] pull " + format_line(b_done),
                             "[target] pull " + format_line(last)]
    assert done["shown"][0].startswith("[target] pull /srv/a: 3.0 MiB moved in 3 files, 40 of 100 entries checked, "
                                       "75% of 4.0 MiB, 102.4 KiB/s, ETA 5s")
    # started asynchronously with a limit far above any pull; the task is synchronous again afterwards
    assert done["calls"][0] == dict(module_name=None, module_args=None, wrap_async=True)
    assert done["async_during_launch"] == [action.ASYNC_LIMIT] and done["task"].async_val == 0
    # the module's result as a synchronous run gives it: no async keys
    assert done["result"] == MODULE_RESULT
    [status] = [c for c in done["calls"] if c.get("module_name") == "ansible.legacy.async_status"]
    assert status["module_args"] == dict(jid="j42.1", _async_dir="/root/.ansible_async", mode="status")
    commands = [c["command"] for c in done["calls"] if "command" in c]
    assert all(RESULTS_FILE in c and action.DEFAULT_PATH in c for c in commands[:-1])
    assert commands[-1] == "rm -f " + RESULTS_FILE  # the job's file, once its result is read (no tmpdir)


def test_reads_the_progress_file_the_task_names(run):
    done = run(dict(trees=["/a"], progress_path="/var/tmp/it's.json"), [peek(MODULE_RESULT)])
    command = [c["command"] for c in done["calls"] if "command" in c][0]
    assert "'/var/tmp/it'\"'\"'s.json'" in command


def test_a_failed_module_result_is_returned_failed(run):
    failed = dict(failed=True, msg="pull from root@192.0.2.10 failed for 1 tree(s): /a: rsync exited 23")
    done = run(dict(trees=["/a"]), [peek(failed)], final=failed)
    assert done["result"] == failed


def test_no_lines_under_no_log(run):
    reads = [peek(RUNNING_JOB, progress(tree("/a")))] * 20 + [peek(MODULE_RESULT)]
    done = run(dict(trees=["/a"], progress_interval=2), reads, no_log=True)
    assert done["shown"] == [] and done["result"] == MODULE_RESULT


def test_a_finished_or_missing_progress_file_prints_nothing(run):
    """A file left by an earlier pull that ended, or none yet: nothing to show."""
    reads = [peek(RUNNING_JOB, progress(tree("/a", state="done"), finished=True)), peek(RUNNING_JOB),
             peek('{"started": 1, "fini'), peek(MODULE_RESULT)]
    done = run(dict(trees=["/a"], progress_interval=1), reads)
    assert done["shown"] == [] and done["result"] == MODULE_RESULT and done["reads_left"] == []


@pytest.mark.parametrize("case", [dict(check_mode=True), dict(args=dict(progress_interval=0)),
                                  dict(args=dict(progress_interval="not a number"))])
def test_runs_as_any_module_in_check_mode_or_without_progress(run, case):
    done = run(dict(trees=["/a"], **case.get("args", {})), check_mode=case.get("check_mode", False))
    assert done["calls"] == [dict(module_name=None, module_args=None, wrap_async=False)]
    assert done["result"] == MODULE_RESULT and done["shown"] == []


def test_a_task_with_async_is_left_to_async_status(run):
    done = run(dict(trees=["/a"]), async_val=600)
    assert done["calls"] == [dict(module_name=None, module_args=None, wrap_async=True)]
    assert done["result"]["ansible_job_id"] == "j42.1" and done["task"].async_val == 600


def test_a_launch_that_fails_is_the_result(run):
    refused = dict(failed=True, msg="async_wrapper could not start the job")
    done = run(dict(trees=["/a"]), launched=refused)
    assert done["result"] == refused and len(done["calls"]) == 1


def test_status_reads_that_fail_are_tried_again(run):
    reads = [AnsibleError("connection reset")] * 3 + [peek(MODULE_RESULT)]
    assert run(dict(trees=["/a"]), reads)["result"] == MODULE_RESULT


def test_status_reads_failing_in_a_row_fail_the_task_saying_the_pull_may_still_run(run):
    reads = [AnsibleError("connection refused")] * action.MAX_READ_FAILURES
    with pytest.raises(AnsibleError) as err:
        run(dict(trees=["/a"]), reads)
    assert "cannot read the status of the pull on target (async job j42.1) 30 times in a row" in str(err.value)
    assert "rerun the task, it waits for that pull" in str(err.value)


@pytest.mark.parametrize("stdout, job, progress_file", [
    ('{"started": 1}\n%s\n{"job": "pull"}' % action.SEPARATOR, {"started": 1}, {"job": "pull"}),
    ('{"changed": true}\n%s\n' % action.SEPARATOR, {"changed": True}, None),
    ('{"star\n%s\n{"job"' % action.SEPARATOR, None, None),
    ("", None, None),
    # through ssh -tt, as the lab's connection runs it
    ('{"changed": true}\r\n%s\r\n{"job": "pull"}\r\n' % action.SEPARATOR, {"changed": True}, {"job": "pull"}),
])
def test_parse_peek(stdout, job, progress_file):
    assert action.parse_peek(stdout) == (job, progress_file)


def test_job_finished_when_the_module_s_result_replaced_the_status():
    assert action.job_finished({"changed": True}) is True
    assert action.job_finished({"started": 1, "finished": 0}) is False
    assert action.job_finished(None) is False


def test_a_status_file_that_stays_missing_fails_the_task(run):
    with pytest.raises(AnsibleError) as err:
        run(dict(trees=["/a"]), [peek(None)] * action.MAX_READ_FAILURES)
    assert "its status file %s is missing or not JSON" % RESULTS_FILE in str(err.value)


def test_the_first_report_comes_after_ten_seconds_with_a_longer_interval(run):
    """A pull of half a minute shows a line with the default interval of 30 s."""
    reads = [peek(RUNNING_JOB, progress(tree("/a")))] * 9 + [peek(MODULE_RESULT)]
    done = run(dict(trees=["/a"]), reads)
    # reads end at 2, 4, ..., 10 (the first report, 10 s after the start), ..., 18; next report at 40
    assert done["shown"] == ["[target] pull " + format_line(tree("/a"))]


def test_a_pull_that_ends_at_once_costs_no_wait(run):
    """The window's final pull with nothing to do: its result is read as soon as the job ended."""
    done = run(dict(trees=["/a"]), [peek(MODULE_RESULT)])
    assert done["clock"].now == 1000.0 and done["clock"].sleeps == [] and done["result"] == MODULE_RESULT


def test_the_status_read_waits_on_the_target_for_the_job_s_end(tmp_path):
    """The read's shell command, run for real: it returns as soon as the module's result replaced the
    running mark, and after the wait when the job still runs."""
    import subprocess
    import time as real_time
    job, prog = tmp_path / "j1", tmp_path / "progress.json"
    job.write_text(json.dumps(RUNNING_JOB | {"started": True}))
    prog.write_text(json.dumps(progress(tree("/a"))))
    began = real_time.monotonic()
    out = subprocess.run(["sh", "-c", action.peek_command(str(job), str(prog), 0.5)], capture_output=True,
                         text=True, check=True).stdout
    assert real_time.monotonic() - began >= 0.4
    assert action.parse_peek(out) == ({"ansible_job_id": "j42.1", "started": True, "finished": 0},
                                      progress(tree("/a")))
    job.write_text(json.dumps(MODULE_RESULT))
    began = real_time.monotonic()
    out = subprocess.run(["sh", "-c", action.peek_command(str(job), str(prog), 30)], capture_output=True,
                         text=True, check=True).stdout
    assert real_time.monotonic() - began < 10
    assert action.parse_peek(out)[0] == MODULE_RESULT


def test_the_database_pass_shows_its_databases_from_its_own_progress_file(run):
    copying = dict(tree("bj-data", bytes=3 * 1024 ** 2, size_bytes=6 * 1024 ** 2, percent=50.0, eta=12),
                   files=None, entries_checked=None, size_entries=None)
    reads = [peek(RUNNING_JOB, dict(progress(copying), job="databases"))] * 6 + [peek(MODULE_RESULT)]
    done = run(dict(databases=["bj", "bj-data"], progress_interval=10), reads, action_class=db_action.ActionModule)
    assert done["shown"] == ["[target] databases bj-data: 3.0 MiB moved, 50% of 6.0 MiB, 102.4 KiB/s, ETA 12s, "
                             "running 10s"]
    commands = [c["command"] for c in done["calls"] if "command" in c]
    assert "/run/bluemind-migration/db-progress.json" in commands[0] and done["result"] == MODULE_RESULT


def test_the_database_pass_s_status_failures_name_it(run):
    with pytest.raises(AnsibleError) as err:
        run(dict(databases=["bj"]), [AnsibleError("refused")] * action.MAX_READ_FAILURES,
            action_class=db_action.ActionModule)
    assert "the database pass may still run there: rerun the task, it waits for that database pass" in str(err.value)
