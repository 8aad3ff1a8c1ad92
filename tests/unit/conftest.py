"""Shared fixtures of the unit tests.

The collection is imported as ``ansible_collections.bluemind.migration`` through a symlink made in
a temporary directory, so the tests run from the repository as it is (no install, no copy).
Modules run for real: ``main()`` parses its arguments, and ``exit_json``/``fail_json`` print the
result, which the ``run_module`` fixture reads back.
"""

import io
import json
import os
import sys
import tempfile
from unittest import mock
from urllib.error import HTTPError

import pytest

_ROOT = tempfile.mkdtemp(prefix="bluemind-unit-")
os.makedirs(os.path.join(_ROOT, "ansible_collections", "bluemind"))
os.symlink(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
           os.path.join(_ROOT, "ansible_collections", "bluemind", "migration"))
sys.path.insert(0, _ROOT)

from ansible.module_utils import basic  # noqa: E402
from ansible.module_utils.testing import patch_module_args  # noqa: E402

NO_LOG_MASK = "********"


@pytest.fixture
def run_module(capsys):
    """Run a module's main() with ``args``; return its JSON result (``failed`` set on fail_json)."""

    def run(module, args, check_mode=False, diff=False):
        args = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)
        with patch_module_args(args):
            with pytest.raises(SystemExit):
                module.main()
        return json.loads(capsys.readouterr().out)

    return run


def assert_no_secret(result, *secrets):
    """No secret in the result, and none that Ansible had to mask: the module never emitted one."""
    shown = dict((k, v) for k, v in result.items() if k != "invocation")
    text = json.dumps(shown)
    for secret in secrets:
        assert secret not in text
    assert NO_LOG_MASK not in text


class Commands(object):
    """Stand-in for AnsibleModule.run_command: answers by the first matching rule, records calls.

    A rule is ``(predicate(argv) -> bool, (rc, out, err))``; unmatched commands fail the test.
    """

    def __init__(self, rules=()):
        self.rules = list(rules)
        self.calls = []

    def add(self, predicate, answer):
        self.rules.append((predicate, answer))

    def __call__(self, args, **kwargs):
        self.calls.append(dict(kwargs, args=list(args)))
        for predicate, answer in self.rules:
            if predicate(list(args)):
                return answer(args, kwargs) if callable(answer) else answer
        raise AssertionError("unexpected command %r" % (args,))


@pytest.fixture
def commands():
    fake = Commands()
    with mock.patch.object(basic.AnsibleModule, "run_command", side_effect=fake):
        yield fake


class FakeApi(object):
    """Stand-in for ``open_url`` in module_utils/api.py: routes ``(method, path)`` to answers.

    An answer is ``(status, body)`` or a callable taking the request and returning one; ``body`` is
    JSON-encoded unless it is bytes. Every request is recorded with its headers and body.
    """

    def __init__(self, routes=None):
        self.routes = dict(routes or {})
        self.requests = []

    def __call__(self, url, data=None, headers=None, method=None, **kwargs):
        internal = "/internal-api/" in url
        path, _sep, query = url.partition("/internal-api" if internal else "/api")[2].partition("?")
        if internal:
            path = "/internal-api" + path  # routes of BlueMind's internal interfaces carry their root
        request = dict(url=url, path=path, query=query, method=method, headers=dict(headers or {}),
                       body=None if data is None else json.loads(data), options=kwargs)
        self.requests.append(request)
        answer = self.routes.get((method, path))
        if answer is None:
            raise AssertionError("unexpected API call %s %s" % (method, path))
        status, body = answer(request) if callable(answer) else answer
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        if status >= 400:
            raise HTTPError(url, status, "error", {}, io.BytesIO(raw))
        return io.BytesIO(raw)

    def calls(self, method, path):
        return [r for r in self.requests if r["method"] == method and r["path"] == path]


@pytest.fixture
def api():
    fake = FakeApi({
        ("POST", "/auth/login"): (200, {"status": "Ok", "authKey": "session-key", "latd": "admin0@global.virt"}),
        ("POST", "/auth/logout"): (200, b""),
        ("GET", "/system/installation/version"): (200, {"softwareVersion": "4.9.3884", "versionName": "4.9"}),
    })
    with mock.patch("ansible_collections.bluemind.migration.plugins.module_utils.api.open_url", fake):
        yield fake


@pytest.fixture
def no_sleep():
    """time.sleep does nothing and time.monotonic advances by the time slept."""
    clock = [1000.0]

    def sleep(seconds):
        clock[0] += seconds

    with mock.patch("time.sleep", sleep), mock.patch("time.monotonic", lambda: clock[0]):
        yield clock


@pytest.fixture(autouse=True)
def private_locks(tmp_path, monkeypatch):
    """Each module run takes its lock in a folder of its own: a lock lasts as long as the process that
    took it, and here every module runs in pytest's one process (a test may run a module twice).
    The first run of a test uses the test's ``locks`` folder, where a test can hold the lock first."""
    from ansible_collections.bluemind.migration.plugins.module_utils import lock
    real, real_release = lock.acquire, lock.release
    runs = []
    taken = {}  # the path a module asked for -> the one its last acquire took (what its release gives back)

    def acquire(path, timeout, what, **kwargs):
        runs.append(path)
        folder = tmp_path / ("locks" if len(runs) == 1 else "locks-%d" % len(runs))
        taken[path] = str(folder / os.path.basename(path))
        return real(taken[path], timeout, what, **kwargs)

    def release(path):
        real_release(taken.pop(path, path))

    for name in ("bluemind_sync", "bluemind_db_transfer", "bluemind_config_copy"):
        module = __import__("ansible_collections.bluemind.migration.plugins.modules." + name, fromlist=["acquire"])
        if hasattr(module, "acquire"):
            monkeypatch.setattr(module, "acquire", acquire)
        if hasattr(module, "release"):
            monkeypatch.setattr(module, "release", release)
