# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Client of the BlueMind admin REST API, shared by the API modules.

Paths, headers and payloads follow BlueMind's own generated clients (``netbluemind4`` and
``netbluemind5``): every call after login carries ``X-BM-ApiKey`` and ``X-BM-ClientVersion``;
a task is polled with ``GET /api/tasks/{id}`` until ``Success`` or ``InError``.
Errors are raised as :class:`BlueMindApiError` subclasses; modules turn them into ``fail_json``.
"""

from __future__ import annotations

import json
import re
import time

from urllib.error import HTTPError, URLError
from urllib.parse import quote, urlencode

from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.urls import ConnectionError as UrlsConnectionError, open_url

DEFAULT_LOGIN = "admin0@global.virt"
LOGIN_ORIGIN = "bluemind.migration"
# The firewall call of each major, relative to its REST root (see module_utils/profile.py FIREWALL for
# the sources): 4.x ISecurityMgmt under /api; 5.x IInternalFirewallMgmt, @BMApi(internal = true), under
# /internal-api, which nginx does not proxy: only the core's own port 8090 answers it.
FIREWALL_PATHS = {
    4: "/system/security/_updatefirewallrules",
    5: "/system/firewall/_updatefirewallrules",
}
FIREWALL_ROOTS = {4: "/api", 5: "/internal-api"}
INTERNAL_API_URL = "http://127.0.0.1:8090"
MAIL_REPAIR_PATH = "/system/maildelivery/mgmt/_repair"
CONFIGURATION_PATH = "/configuration"


class BlueMindApiError(Exception):
    """A call to the admin API failed; the message says which call, where, and what to do."""


class LoginRefusedError(BlueMindApiError):
    """The server answered the login with a status other than ``Ok``."""


class TaskFailedError(BlueMindApiError):
    """A server task ended in ``InError`` or did not end in time."""


def bluemind_api_argument_spec():
    """Connection and authentication options (documented by the ``bluemind.migration.api`` fragment)."""
    return dict(
        api_url=dict(type="str", default="http://127.0.0.1:8090"),
        validate_certs=dict(type="bool", default=True),
        ca_path=dict(type="path"),
        api_timeout=dict(type="int", default=30),
        api_login=dict(type="str", default=DEFAULT_LOGIN),
        api_password=dict(type="str", no_log=True),
        api_token=dict(type="str", no_log=True),
        api_token_file=dict(type="path"),
    )


def bluemind_api_task_argument_spec():
    """Options of the modules that start a server task (fragment ``api.task``)."""
    return dict(task_timeout=dict(type="int", default=300))


API_AUTH_MUTUALLY_EXCLUSIVE = [("api_password", "api_token", "api_token_file")]
API_AUTH_REQUIRED_ONE_OF = [("api_password", "api_token", "api_token_file")]


def major_version(version):
    """Major number of a BlueMind version string such as ``4.9.3884`` or ``5.7.3268-1``."""
    head = to_text(version).strip().split(".", 1)[0]
    if not head.isdigit():
        raise BlueMindApiError(
            "cannot read a BlueMind major version from '%s': give version as 4.x or 5.x" % version
        )
    return int(head)


def firewall_path(version):
    """The firewall regeneration path of a BlueMind version (4.x and 5.x differ)."""
    major = major_version(version)
    if major not in FIREWALL_PATHS:
        raise BlueMindApiError(
            "BlueMind %s is not supported for firewall regeneration: only 4.x and 5.x are" % version
        )
    return FIREWALL_PATHS[major]


def firewall_root(version):
    """The REST root (``/api`` or ``/internal-api``) of the firewall call of a BlueMind version."""
    firewall_path(version)  # same checks and message
    return FIREWALL_ROOTS[major_version(version)]


def read_token_file(path):
    try:
        with open(path, "r") as handle:
            token = handle.read().strip()
    except (IOError, OSError) as exc:
        raise BlueMindApiError(
            "cannot read the API token file %s: %s; run the task as root on the BlueMind server "
            "or give api_password" % (path, exc.strerror or exc)
        )
    if not token:
        raise BlueMindApiError("the API token file %s is empty" % path)
    return token


class BlueMindClient(object):
    """Admin API session. Use as a context manager: a password login is logged out at the end.

    ``params`` is the module's parameters (see :func:`bluemind_api_argument_spec`); the
    authentication options are read only when a call needs a login. ``sleep`` and ``clock`` are
    injectable for tests.
    """

    def __init__(self, params, sleep=time.sleep, clock=time.monotonic):
        self.url = params["api_url"].rstrip("/")
        self.base = self.url + "/api"
        self.validate_certs = params["validate_certs"]
        self.ca_path = params.get("ca_path")
        self.timeout = params["api_timeout"]
        self.params = params
        self.api_key = None
        self.client_version = None
        self._logged_in = False
        self._sleep = sleep
        self._clock = clock

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        if self._logged_in:
            try:
                self.call("POST", "/auth/logout")
            except BlueMindApiError:
                pass  # the session expires by itself; the real error (if any) is already raised
            self._logged_in = False
        return False

    # -- transport -------------------------------------------------------------------------

    def call(self, method, path, body=None, query=None, authenticated=True, root="/api"):
        """Send one request; return the decoded JSON answer (None for an empty body). ``root`` is
        ``/api`` or, for BlueMind's internal interfaces, ``/internal-api`` (same session key)."""
        if authenticated and self.api_key is None:
            self.authenticate()
        base = self.url + root
        url = base + path
        if query:
            url += "?" + urlencode(query)
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if authenticated:
            headers["X-BM-ApiKey"] = self.api_key
        if self.client_version:
            headers["X-BM-ClientVersion"] = self.client_version
        data = None if body is None else json.dumps(body)
        where = "%s %s" % (method, base + path)
        try:
            response = open_url(
                url, data=data, headers=headers, method=method, validate_certs=self.validate_certs,
                ca_path=self.ca_path, timeout=self.timeout, http_agent="bluemind.migration",
            )
            raw = response.read()
        except HTTPError as exc:
            raise BlueMindApiError(self._http_error_message(where, exc))
        except (URLError, UrlsConnectionError) as exc:
            raise BlueMindApiError(
                "%s: cannot reach the BlueMind API (%s); check api_url, that bm-core runs, "
                "and ca_path/validate_certs for TLS" % (where, to_text(getattr(exc, "reason", exc)))
            )
        except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError) as exc:
            # a core that stops (or starts) while the request is sent drops it: not a timeout
            raise BlueMindApiError(
                "%s: cannot reach the BlueMind API (the connection was closed: %s); check that bm-core runs "
                "(it may be stopping or starting) and api_url" % (where, exc)
            )
        except (IOError, OSError) as exc:
            raise BlueMindApiError("%s: connection failed (%s); check api_url and api_timeout" % (where, exc))
        if not raw.strip():
            return None
        try:
            return json.loads(to_text(raw))
        except ValueError:
            raise BlueMindApiError(
                "%s: the answer is not JSON (%r...); is api_url a BlueMind server?" % (where, raw[:80])
            )

    def _http_error_message(self, where, exc):
        detail = ""
        try:
            fault = json.loads(to_text(exc.read()))
            detail = ": %s %s" % (fault.get("errorCode", ""), fault.get("message", ""))
        except (ValueError, AttributeError, IOError, OSError):
            pass
        # BlueMind names a refused key in its message ("session id <key> is not valid"): a token
        # is a full admin credential, so it never reaches a result or a log.
        for secret in (self.api_key, self.params.get("api_password")):
            if secret:
                detail = re.sub(r"(?<![\w-])%s(?![\w-])" % re.escape(secret), "<hidden>", detail)
        hint = {
            401: "BlueMind refused the API key: the session expired, or api_token/api_token_file is "
                 "not this server's /etc/bm/bm-core.tok (each server has its own)",
            403: "the session or token lacks the rights for this call: use admin0@global.virt or the "
                 "server's /etc/bm/bm-core.tok",
            404: "this BlueMind version does not have this call",
        }.get(exc.code, "see the server's /var/log/bm/core.log")
        return "%s: HTTP %s%s (%s)" % (where, exc.code, detail.rstrip(), hint)

    # -- session ---------------------------------------------------------------------------

    def authenticate(self):
        """Use the given token, or log in with the password; then learn the server's version."""
        params = self.params
        if params.get("api_token"):
            self.api_key = params["api_token"]
        elif params.get("api_token_file"):
            self.api_key = read_token_file(params["api_token_file"])
        else:
            self.api_key = self._login(params["api_login"], params["api_password"])
            self._logged_in = True
        version = self.call("GET", "/system/installation/version") or {}
        self.client_version = version.get("softwareVersion")

    def _login(self, login, password):
        answer = self.call(
            "POST", "/auth/login", body=password, authenticated=False,
            query={"login": login, "origin": LOGIN_ORIGIN},
        ) or {}
        status = answer.get("status")
        if status == "Ok" and answer.get("authKey"):
            return answer["authKey"]
        raise LoginRefusedError(
            "login refused for %s at %s (status %s): check api_password, or use api_token_file "
            "%s on the server itself" % (login, self.base, status, "/etc/bm/bm-core.tok")
        )

    # -- calls used by the modules ---------------------------------------------------------

    def public_infos(self):
        """``GET /api/system/installation/_infos``: needs no authentication."""
        return self.call("GET", "/system/installation/_infos", authenticated=False) or {}

    def server_version(self):
        if self.api_key is None:
            self.authenticate()
        return self.client_version

    def get_configuration(self):
        answer = self.call("GET", CONFIGURATION_PATH) or {}
        return answer.get("values") or {}

    def set_configuration(self, values):
        self.call("POST", CONFIGURATION_PATH, body=values)

    def run_task(self, path, timeout, root="/api", body=None):
        """POST a call that answers a TaskRef, then wait for the task; return its final status."""
        ref = self.call("POST", path, body=body, root=root) or {}
        if "id" not in ref:
            raise BlueMindApiError("POST %s%s%s: no task id in the answer %r" % (self.url, root, path, ref))
        status = self.wait_task(ref["id"], timeout, started_by=root + path)
        return dict(status, id=ref["id"])

    def task_logs(self, task_id):
        """``GET /api/tasks/{id}/_currentLogs?offset=0`` (ITask.getCurrentLogs): the task's log lines."""
        answer = self.call("GET", "/tasks/%s/_currentLogs" % quote(to_text(task_id), safe=""),
                           query={"offset": 0})
        return [to_text(line) for line in answer or []]

    def domains(self):
        """``GET /api/domains`` (IDomains.all): the uid of every domain."""
        return [d.get("uid") for d in self.call("GET", "/domains") or [] if d.get("uid")]

    def repair_entry(self, domain_uid, entry_uid, ops, timeout, dry=False):
        """Run directory maintenance operations on one entry and wait for them
        (IDirEntryMaintenance ``POST /api/directory/{domain}/{entryUid}/mgmt/_maintenance/repair`` with a
        RepairConfig, as ``bm-cli maintenance repair`` sends it); return the final status with its logs."""
        path = "/directory/%s/%s/mgmt/_maintenance/repair" % (quote(domain_uid, safe=""), quote(entry_uid, safe=""))
        # verbose: the operations' progress lines reach the task log only then (directory.service
        # RepairTaskMonitor.progress), and they are what tells a configuration found ok from one repaired.
        config = dict(opIdentifiers=list(ops), dry=dry, logToCoreLog=not dry, verbose=True)
        status = self.run_task(path, timeout, body=config)
        status["logs"] = self.task_logs(status["id"])
        return status

    def wait_task(self, task_id, timeout, started_by):
        task_path = "/tasks/%s" % quote(to_text(task_id), safe="")
        deadline = self._clock() + timeout
        delay = 0.2
        while True:
            status = self.call("GET", task_path) or {}
            state = status.get("state")
            if state == "Success":
                return status
            if state == "InError":
                raise TaskFailedError(
                    "the task %s started by %s ended in error: %s; see /var/log/bm/core.log on the "
                    "server" % (task_id, started_by, status.get("lastLogEntry") or status.get("result"))
                )
            if self._clock() >= deadline:
                raise TaskFailedError(
                    "the task %s started by %s is still %s after %s s (progress %s/%s); raise "
                    "task_timeout or look at the server's load" % (
                        task_id, started_by, state, timeout, status.get("progress"), status.get("steps"))
                )
            self._sleep(delay)
            delay = min(delay * 2, 2.0)
