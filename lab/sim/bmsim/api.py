"""Simulated BlueMind admin REST API (the bm-core unit): `python3 -m bmsim.api`.

Serves the calls of BLUEMIND.md exactly as BlueMind's generated Python clients (netbluemind4
4.9.3884, netbluemind5 5.7.3268) make them: JSON bodies sent without a Content-Type, the login
password as a JSON string, `X-BM-ApiKey` (a session key or the bm-core.tok token) on every call but
the core state, task status as `GET /api/tasks/{id}`. Errors are ServerFault bodies with 401, 403, 404
or 500 (also for a body the call does not take): the clients take any status up to 400 as a success.
HTTPS on 443 (bm_cert.pem) and plain HTTP on 8090 (the core port) serve the same API, but for the
internal API of 5.x (`/internal-api/...`, the firewall regeneration) which only 8090 answers. Every request
is recorded in /var/log/bm-sim/api.jsonl, never with a password or a key.

Environment overrides (local runs): BMSIM_BIND, BMSIM_HTTPS_PORT, BMSIM_HTTP_PORT, BMSIM_CERT,
BMSIM_ADMIN_PW_FILE, BMSIM_REPAIR_DELAY, BMSIM_FAULT_FILE, and those of bmsim.common / api_postfix / api_firewall.
"""
import hmac
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from contextlib import closing
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from bmsim import api_firewall, api_postfix
from bmsim.common import connect, installed_version, log_event, read_bm_ini, read_token, upstream_version

ADMIN_LOGIN = "admin0@global.virt"
ADMIN_PW_FILE = os.environ.get("BMSIM_ADMIN_PW_FILE", "/etc/bm/bmsim-admin.pw")
BIND = os.environ.get("BMSIM_BIND", "0.0.0.0")
HTTPS_PORT = int(os.environ.get("BMSIM_HTTPS_PORT", "443"))
HTTP_PORT = int(os.environ.get("BMSIM_HTTP_PORT", "8090"))
CERT = os.environ.get("BMSIM_CERT", "/etc/ssl/certs/bm_cert.pem")  # cert + key (+ CA) in one file
# The repair task reports Success at once; the maps are rebuilt this many seconds later.
REPAIR_DELAY = float(os.environ.get("BMSIM_REPAIR_DELAY", "1.0"))
# bm.ini keys that GET /api/configuration does not merge in: the database password stays on disk.
INI_HIDDEN = ("password",)

# Seconds the core takes to start (a real JVM core takes from seconds to minutes): it listens and
# tells systemd READY=1 (Type=notify, as BlueMind's bm-core.service) only after this delay.
START_DELAY_FILE = os.environ.get("BMSIM_CORE_START_DELAY_FILE", "/etc/bm/bmsim-core-start-delay")

# A fault for the lab's tests, no behaviour of BlueMind: a JSON file {"after": [events], "then": action}.
# Each answered request whose api.jsonl event is the first of "after" takes it off the list; with the
# answer to the last one, before it leaves, the core does "then": "stop" (stops listening, then exits
# cleanly: systemd leaves it inactive, as a core stopped between two calls) or "bad-password" (the admin
# password changes: the next login is refused). The file is removed then. (The tests' watchers of
# api.jsonl acted a little after the answer: once so late, on a loaded machine, that the next call was
# answered; CI, 2026-12-02.)
FAULT_FILE = os.environ.get("BMSIM_FAULT_FILE", "/etc/bm/bmsim-fault.json")
FAULT_LOCK = threading.Lock()

EMPTY = object()  # a 200 answer without a body (the clients' "void" calls)


class ApiError(Exception):
    """Answered as a ServerFault body: {"errorCode", "errorType": "ServerFault", "message"}."""

    def __init__(self, status, code, message, logged=None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.logged = logged or message  # what api.jsonl records (never a key)


class Request:
    def __init__(self, method, path, query, headers, body):
        self.method, self.path, self.query, self.headers, self.body = method, path, query, headers, body
        self.params = {}  # named groups of the route's pattern
        self.port = None  # the listener's port (the internal API answers on the core port only)
        self.log = {}  # extra fields for api.jsonl

    def arg(self, name):
        values = self.query.get(name)
        return values[0] if values else None

    def json(self):
        try:
            return json.loads(self.body.decode("utf-8")) if self.body else None
        except ValueError as exc:
            raise ApiError(500, "INVALID_PARAMETER", "the body is not JSON: %s" % exc) from None


class Sessions:
    """Session keys handed out by login; lost when bm-core restarts, as in BlueMind."""

    def __init__(self):
        self._lock = threading.Lock()
        self._keys = {}

    def open(self, login):
        key = str(uuid.uuid4())
        with self._lock:
            self._keys[key] = login
        return key

    def close(self, key):
        with self._lock:
            self._keys.pop(key, None)

    def valid(self, key):
        with self._lock:
            return key in self._keys


class Tasks:
    """Server-side tasks as ITask shows them (TaskStatus fields), with their log lines."""

    def __init__(self):
        self._lock = threading.Lock()
        self._tasks = {}

    def create(self, state="InProgress"):
        tid = str(uuid.uuid4())
        done = state == "Success"
        with self._lock:
            self._tasks[tid] = {"state": state, "steps": 1.0, "progress": 1.0 if done else 0.0,
                                "lastLogEntry": None, "result": None, "logs": []}
        return tid

    def log(self, tid, line):
        with self._lock:
            self._tasks[tid]["logs"].append(line)
            self._tasks[tid]["lastLogEntry"] = line

    def finish(self, tid, state, result=None):
        with self._lock:
            self._tasks[tid].update(state=state, progress=1.0, result=result)

    def status(self, tid):
        with self._lock:
            task = self._tasks.get(tid)
            return None if task is None else {k: v for k, v in task.items() if k != "logs"}

    def logs(self, tid, offset):
        with self._lock:
            task = self._tasks.get(tid)
            return None if task is None else task["logs"][offset:]

    def run(self, work):
        """Start `work(log)` in a thread: InProgress until it returns (Success) or raises (InError)."""
        tid = self.create()

        def target():
            try:
                self.finish(tid, "Success", work(lambda line: self.log(tid, line)))
            except Exception as exc:  # the task reports the failure; the caller polls for it
                self.log(tid, "failed: %s" % exc)
                self.finish(tid, "InError", str(exc))

        threading.Thread(target=target, daemon=True).start()
        return tid


def read_sysconf():
    """The system configuration: t_systemconf.configuration (an hstore) of database bj."""
    with closing(connect("bj")) as conn, conn.cursor() as cur:
        cur.execute("SELECT e.key, e.value FROM t_systemconf, LATERAL each(configuration) AS e")
        return dict(cur.fetchall())


def write_sysconf(updates):
    """Merge `updates` into t_systemconf (a None value removes the key)."""
    keys = [k for k, v in updates.items() if v is not None]
    values = [updates[k] for k in keys]
    drops = [k for k, v in updates.items() if v is None]
    with closing(connect("bj")) as conn:
        with conn, conn.cursor() as cur:
            cur.execute("LOCK TABLE t_systemconf IN SHARE ROW EXCLUSIVE MODE")
            cur.execute("UPDATE t_systemconf SET configuration = (configuration - %s::text[])"
                        " || hstore(%s::text[], %s::text[])", (drops, keys, values))
            if cur.rowcount == 0:
                cur.execute("INSERT INTO t_systemconf (configuration) VALUES (hstore(%s::text[], %s::text[]))",
                            (keys, values))


def read_mail_directory():
    """Domains, mailboxes and aliases for the postfix maps (see api_postfix.build_maps)."""
    with closing(connect("bj")) as conn, conn.cursor() as cur:
        cur.execute("SELECT name, aliases FROM t_domain WHERE NOT global ORDER BY name")
        domains = cur.fetchall()
        cur.execute("SELECT login, domain_uid FROM t_directory_entry"
                    " WHERE kind = 'USER' AND NOT archived ORDER BY domain_uid, login")
        mailboxes = cur.fetchall()
        cur.execute("SELECT a.alias, a.domain_uid, e.login, e.domain_uid FROM t_mailbox_alias a"
                    " JOIN t_directory_entry e ON e.uid = a.target_uid"
                    " WHERE e.kind = 'USER' AND NOT e.archived ORDER BY a.domain_uid, a.alias")
        return domains, mailboxes, cur.fetchall()


def read_server_ips():
    with closing(connect("bj")) as conn, conn.cursor() as cur:
        cur.execute("SELECT ip FROM t_server ORDER BY id")
        return [row[0] for row in cur.fetchall()]


def _read_secret(path):
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read().strip()
    except OSError:
        return None


def _same(given, secret):
    return bool(secret) and hmac.compare_digest(given.encode("utf-8"), secret.encode("utf-8"))


class Core:
    """The API: routes, authentication, sessions and tasks, shared by the HTTPS and HTTP listeners."""

    def __init__(self, version):
        self.version = version  # what the running core reports, read once at start like a real core
        self.major = int(version.split(".")[0])
        self.version_name = ".".join(version.split(".")[:2])
        self.sessions = Sessions()
        self.tasks = Tasks()
        self.listeners = []  # the HTTP servers (FAULT_FILE's "stop")
        # The firewall call exists once per major version: 4.x ISecurityMgmt at
        # /api/system/security/_updatefirewallrules; 5.x IInternalFirewallMgmt, @BMApi(version = "3",
        # internal = true) @Path("/system/firewall") + "_updatefirewallrules", which the core's REST
        # layer roots at /internal-api (RestServiceApiDescriptionParser) and nginx does not proxy
        # (bm-client-access's vhost has `location /api/` only), so only the core's port 8090 has it.
        # Same X-BM-ApiKey authentication, ROLE_MANAGE_SYSTEM_CONF, returns a TaskRef (SecurityMgmt).
        # bluemindfork master, commit a5d739cec (2023-05) introduced it. Both /api paths are 404 on 5.x.
        firewall_path = "/api/system/security/_updatefirewallrules" if self.major < 5 \
            else "/internal-api/system/firewall/_updatefirewallrules"
        # (method, path pattern, handler, needs X-BM-ApiKey)
        routes = [
            ("POST", "/api/auth/login", self.login, False),
            ("POST", "/api/auth/logout", self.logout, True),
            ("GET", "/api/system/installation/state", self.state, False),
            ("GET", "/api/system/installation/version", self.get_version, True),
            ("GET", "/api/system/installation/_infos", self.get_infos, False),
            ("GET", "/api/configuration", self.get_configuration, True),
            ("POST", "/api/configuration", self.update_configuration, True),
            ("POST", firewall_path, self.update_firewall, True),
            ("POST", "/api/system/maildelivery/mgmt/_repair", self.repair, True),
            ("GET", "/api/tasks/(?P<task>[^/]+)", self.task_status, True),
            ("GET", "/api/tasks/(?P<task>[^/]+)/_currentLogs", self.task_logs, True),
        ]
        if self.major >= 5:
            # IKeycloakAdmin, @BMApi(version = "3", internal = true) @Path("/keycloak") (bluemindfork
            # master parent/keycloak/net.bluemind.keycloak.api/.../IKeycloakAdmin.java, 08a303240):
            # GET all realms, GET/PUT/DELETE {domainId}, POST {domainId} = initForDomain (TaskRef).
            routes += [
                # IDomains @Path("/domains") GET = all(); IDirEntryMaintenance
                # @Path("/directory/{domain}/{entryUid}/mgmt") POST _maintenance/repair (RepairConfig)
                ("GET", "/api/domains", self.domains, True),
                ("POST", "/api/directory/(?P<domain>[^/]+)/(?P<entry>[^/]+)/mgmt/_maintenance/repair",
                 self.dir_repair, True),
                ("GET", "/internal-api/keycloak", self.kc_realms, True),
                ("GET", "/internal-api/keycloak/(?P<domain>[^/]+)", self.kc_realm, True),
                ("DELETE", "/internal-api/keycloak/(?P<domain>[^/]+)", self.kc_delete, True),
                ("POST", "/internal-api/keycloak/(?P<domain>[^/]+)", self.kc_init, True),
            ]
        self.routes = [(m, re.compile(p + r"\Z"), h, a) for m, p, h, a in routes]

    # --- dispatch ---------------------------------------------------------------------------
    def dispatch(self, req):
        """Returns (status, payload); payload is JSON-able or EMPTY."""
        try:
            for method, pattern, handler, needs_key in self.routes:
                match = pattern.match(req.path)
                if match and req.path.startswith("/internal-api/") and req.port != HTTP_PORT:
                    match = None  # the internal API is the core's own port only (not behind nginx)
                if match and method == req.method:
                    req.params = match.groupdict()
                    if needs_key:
                        self.authenticate(req)
                    return handler(req)
            raise ApiError(404, "NOT_FOUND", "no %s %s on this server (bm-core %s)"
                           % (req.method, req.path, self.version))
        except ApiError as exc:
            req.log["error"] = exc.logged
            return exc.status, fault(exc.code, exc.message)
        except Exception as exc:  # any bug or database failure: a 500 ServerFault, as the real core
            req.log["error"] = "%s: %s" % (type(exc).__name__, exc)
            return 500, fault("UNKNOWN", "%s: %s" % (type(exc).__name__, exc))

    def authenticate(self, req):
        key = req.headers.get("X-BM-ApiKey")
        if not key:
            req.log["auth"] = "none"
            raise ApiError(403, "PERMISSION_DENIED", "no X-BM-ApiKey header: log in first")
        if _same(key, read_token()):
            req.log["auth"] = "token"
        elif self.sessions.valid(key):
            req.log["auth"] = "session"
        else:
            req.log["auth"] = "invalid"
            # As BlueMind's RestServiceMethodHandler: 401, AUTHENTICATION_FAIL, and the message
            # names the key it refused (clients must not repeat it).
            raise ApiError(401, "AUTHENTICATION_FAIL", "session id %s is not valid" % key,
                           logged="session id (not logged) is not valid")

    # --- authentication ---------------------------------------------------------------------
    def login(self, req):
        login, origin = req.arg("login"), req.arg("origin")
        password = req.json()
        if not isinstance(password, str):
            raise ApiError(500, "INVALID_PARAMETER", "the body must be the password as a JSON string")
        req.log.update(event="login", login=login, origin=origin)
        # The admin password, the bm-core.tok token, or a live session key (BlueMind accepts all three).
        good = login == ADMIN_LOGIN and (_same(password, _read_secret(ADMIN_PW_FILE))
                                         or _same(password, read_token())
                                         or self.sessions.valid(password))
        req.log["result"] = "Ok" if good else "Bad"
        if not good:
            return 200, {"status": "Bad", "authKey": None, "latd": None, "message": None, "authUser": None}
        return 200, {
            "status": "Ok",
            "authKey": self.sessions.open(login),
            "latd": login,
            "message": None,
            "authUser": {
                "uid": "admin0_global.virt", "domainUid": "global.virt", "displayName": "admin0",
                "value": None, "roles": ["systemManagement"], "rolesByOU": {}, "settings": {},
                "features": [],  # 5.x AuthUser field; 4.x clients ignore it
            },
        }

    def logout(self, req):
        self.sessions.close(req.headers.get("X-BM-ApiKey"))  # the token is not a session: it stays
        req.log["event"] = "logout"
        return 200, EMPTY

    # --- installation -----------------------------------------------------------------------
    def state(self, req):
        req.log["event"] = "installation_state"  # for FAULT_FILE only; api.jsonl lists it
        return 200, "CORE_STATE_RUNNING"

    def get_version(self, req):
        return 200, {"softwareVersion": self.version, "databaseVersion": self.version,
                     "versionName": self.version_name, "needsUpgrade": False}

    def get_infos(self, req):
        return 200, {"defaultDomain": read_sysconf().get("default_domain"),
                     "softwareVersion": self.version, "releaseName": self.version_name}

    # --- system configuration ---------------------------------------------------------------
    def get_configuration(self, req):
        values = {k: v for k, v in read_bm_ini().items() if k not in INI_HIDDEN}
        values.update(read_sysconf())
        return 200, {"values": values}

    def update_configuration(self, req):
        updates = req.json()
        if not isinstance(updates, dict) or not all(
                isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in updates.items()):
            raise ApiError(500, "INVALID_PARAMETER", "the body must be a JSON object of strings")
        mynetworks = updates.get("mynetworks")
        if mynetworks is not None:
            try:
                mynetworks = updates["mynetworks"] = api_postfix.normalise_mynetworks(
                    mynetworks, read_server_ips(), api_postfix.host_ipv4_addresses())
            except api_postfix.InvalidMyNetworks as exc:
                raise ApiError(500, "INVALID_PARAMETER", str(exc)) from None
        write_sysconf(updates)
        req.log.update(event="configuration_update", keys=sorted(updates))  # values may be secrets
        if mynetworks is not None:
            api_postfix.apply_mynetworks(mynetworks)
            req.log["mynetworks"] = mynetworks
        return 200, EMPTY

    # --- firewall -----------------------------------------------------------------------------
    def update_firewall(self, req):
        def work(log):
            sources, skipped = api_firewall.parse_sources(
                read_server_ips(), read_sysconf().get("fwAdditionalIPs", ""))
            for net in skipped:
                log("IPv6 %s is not written to the IPv4 rules" % net)
            path = api_firewall.install_rules(api_firewall.build_rules(sources))
            log("firewall rules written to %s" % path)
            log_event("api", event="firewall_done", rules_file=path, sources=sources)

        tid = self.tasks.run(work)
        req.log.update(event="firewall", task=tid)
        return 200, {"id": tid}

    # --- directory (5.x) ------------------------------------------------------------------------------
    def domains(self, req):
        """IDomains.all: ItemValue<Domain> of every domain (the simulator leaves the properties out)."""
        with closing(connect("bj")) as conn, conn.cursor() as cur:
            cur.execute("SELECT name, label, global, aliases FROM t_domain ORDER BY name")
            rows = cur.fetchall()
        return 200, [{"uid": n, "value": {"name": n, "label": label, "global": g, "aliases": list(a),
                                          "defaultAlias": n}} for n, label, g, a in rows]

    def dir_repair(self, req):
        """IDirEntryMaintenance.repair: a task running the RepairConfig's ops on one entry. The
        simulator knows domain.keycloak on a domain's own entry (entry uid = domain uid); progress lines
        reach the task log only with verbose (RepairTaskMonitor)."""
        config = req.json()
        if not isinstance(config, dict) or not isinstance(config.get("opIdentifiers"), list):
            raise ApiError(500, "INVALID_PARAMETER", "the body must be a RepairConfig (opIdentifiers, dry, ...)")
        domain, entry = req.params["domain"], req.params["entry"]
        ops, dry, verbose = config["opIdentifiers"], bool(config.get("dry")), bool(config.get("verbose"))

        def work(log):
            if "domain.keycloak" in ops and entry == domain:
                from bmsim import keycloak
                lines, problem, repaired = keycloak.op_lines(domain, dry=dry)
                for line in lines if verbose else []:
                    log(line)
                log_event("api", event="dir_repair_done", domain=domain, ops=ops, dry=dry,
                          problem=problem, repaired=repaired)

        tid = self.tasks.run(work)
        req.log.update(event="dir_repair", domain=domain, entry=entry, ops=ops, dry=dry, task=tid)
        return 200, {"id": tid}

    # --- Keycloak (5.x, internal) -------------------------------------------------------------------
    @staticmethod
    def _realm(name):
        return {"id": name, "realm": name, "enabled": True}

    def kc_realms(self, req):
        from bmsim import keycloak
        with keycloak.tx(keycloak.DB) as cur:
            cur.execute("SELECT id FROM realm ORDER BY id")
            return 200, [self._realm(r[0]) for r in cur.fetchall()]

    def kc_realm(self, req):
        from bmsim import keycloak
        with keycloak.tx(keycloak.DB) as cur:
            cur.execute("SELECT id FROM realm WHERE id = %s", (req.params["domain"],))
            row = cur.fetchone()
        return 200, self._realm(row[0]) if row else None

    def kc_delete(self, req):
        from bmsim import keycloak
        with keycloak.tx(keycloak.DB) as cur:
            cur.execute("DELETE FROM realm WHERE id = %s", (req.params["domain"],))
        req.log.update(event="keycloak_delete_realm", domain=req.params["domain"])
        return 200, EMPTY

    def kc_init(self, req):
        """initForDomain: realm, client and a new secret written to bj (fails when the realm exists)."""
        from bmsim import keycloak
        domain = req.params["domain"]

        def work(log):
            with keycloak.tx("bj") as bj_cur, keycloak.tx(keycloak.DB) as kc_cur:
                keycloak.init_for_domain(domain, bj_cur, kc_cur)
            log("Keycloak realm %s initialised" % domain)

        tid = self.tasks.run(work)
        req.log.update(event="keycloak_init", domain=domain, task=tid)
        return 200, {"id": tid}

    # --- mail maintenance ---------------------------------------------------------------------
    def repair(self, req):
        tid = self.tasks.create(state="Success")
        self.tasks.log(tid, "postfix maps regeneration requested")
        threading.Thread(target=self._rebuild_maps, args=(tid,), daemon=True).start()
        req.log.update(event="repair", task=tid)
        return 200, {"id": tid}

    @staticmethod
    def _rebuild_maps(tid):
        time.sleep(REPAIR_DELAY)
        try:
            domains, mailboxes, aliases = read_mail_directory()
            api_postfix.install_maps(api_postfix.build_maps(domains, mailboxes, aliases))
        except Exception as exc:  # too late for the task (already Success): only the log tells
            log_event("api", event="repair_failed", task=tid, error="%s: %s" % (type(exc).__name__, exc))
            return
        log_event("api", event="repair_done", task=tid, domains=len(domains),
                  mailboxes=len(mailboxes), aliases=len(aliases))

    # --- tasks ----------------------------------------------------------------------------------
    def task_status(self, req):
        status = self.tasks.status(req.params["task"])
        if status is None:
            raise ApiError(404, "NOT_FOUND", "no task %s" % req.params["task"])
        return 200, status

    def task_logs(self, req):
        try:
            offset = int(req.arg("offset") or 0)
        except ValueError:
            raise ApiError(500, "INVALID_PARAMETER", "offset must be an integer") from None
        logs = self.tasks.logs(req.params["task"], offset)
        if logs is None:
            raise ApiError(404, "NOT_FOUND", "no task %s" % req.params["task"])
        return 200, logs


def fault_after(event):
    """The action of FAULT_FILE that the answer to ``event`` triggers, or None (the file takes
    ``event`` off its list when it comes next)."""
    if not event:
        return None
    with FAULT_LOCK:
        try:
            with open(FAULT_FILE, encoding="utf-8") as fh:
                armed = json.load(fh)
        except (OSError, ValueError):
            return None
        after = list(armed.get("after") or [])
        if not after or after[0] != event:
            return None
        if after[1:]:
            with open(FAULT_FILE, "w", encoding="utf-8") as fh:
                json.dump(dict(armed, after=after[1:]), fh)
            return None
        os.remove(FAULT_FILE)
        return armed.get("then")


def stop_core():
    """FAULT_FILE's stop: systemd is asked to stop the unit, as ``systemctl stop bm-core`` would, so it
    never restarts it (Restart=on-failure restarts a core that dies badly, and one that exited by its
    own SIGTERM could); a core run outside systemd (no INVOCATION_ID) sends itself SIGTERM."""
    if os.environ.get("INVOCATION_ID"):
        try:
            subprocess.run(["systemctl", "stop", "--no-block", "bm-core.service"], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30, check=True)
            return
        except (OSError, subprocess.SubprocessError):
            pass
    os.kill(os.getpid(), signal.SIGTERM)


def fault(code, message):
    return {"errorCode": code, "errorType": "ServerFault", "message": message}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "bm-core-sim"
    sys_version = ""
    timeout = 60  # a silent client does not hold a thread forever

    def setup(self):
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()  # here, in the request's thread, not in the accept loop

    def _handle(self):
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        req = Request(self.command, url.path, parse_qs(url.query), self.headers, body)
        req.port = self.server.server_port
        status, payload = self.server.core.dispatch(req)
        action = fault_after(req.log.get("event"))
        if action in ("stop", "drop"):
            for server in self.server.core.listeners:  # new connections refused from now on
                server.socket.shutdown(socket.SHUT_RDWR)
        elif action == "bad-password":
            with open(ADMIN_PW_FILE, "w", encoding="utf-8") as fh:
                fh.write("not-the-password\n")
        if action == "drop":  # the core dies before it answers: the client sees its connection closed
            log_event("api", event="fault_drop", method=self.command, path=url.path)
            self.close_connection = True
            stop_core()
            return
        data = b"" if payload is EMPTY else json.dumps(payload).encode("utf-8")
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        log_event("api", method=self.command, path=url.path, status=status, port=self.server.server_port,
                  remote=self.client_address[0], client_version=self.headers.get("X-BM-ClientVersion"),
                  **req.log)
        if action == "stop":
            log_event("api", event="fault_stop")
            stop_core()

    do_GET = do_POST = do_PUT = do_DELETE = _handle

    def log_message(self, fmt, *args):
        pass  # api.jsonl records every request


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, core, ssl_context=None):
        super().__init__(address, Handler)
        self.core = core
        if ssl_context is not None:
            self.socket = ssl_context.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    def handle_error(self, request, client_address):
        # A failed TLS handshake or a dropped connection: one line in the journal, no traceback.
        sys.stderr.write("bm-core: connection from %s: %s\n" % (client_address[0], sys.exc_info()[1]))


def start_delay():
    try:
        with open(START_DELAY_FILE, encoding="utf-8") as fh:
            return max(0.0, float(fh.read().strip() or 0))
    except (OSError, ValueError):
        return 0.0


def notify_systemd(message):
    """sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET (set for Type=notify units)."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with closing(socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)) as sock:
        sock.connect(address)
        sock.sendall(message.encode("ascii"))


def main():
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    delay = start_delay()
    if delay:
        log_event("api", event="starting", delay=delay)
        if stop.wait(delay):
            return
    core = Core(upstream_version(installed_version()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(CERT, CERT)
    servers = [Server((BIND, HTTPS_PORT), core, context), Server((BIND, HTTP_PORT), core)]
    core.listeners = list(servers)
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    # 5.x: LMTP delivery is part of bm-core (no bm-lmtpd unit). A 4.x lab host whose core a test
    # switched to 5.x (bm-sim-set-version) keeps its bm-lmtpd, which keeps the port.
    if core.major >= 5 and not os.path.exists("/etc/systemd/system/bm-lmtpd.service"):
        from bmsim import lmtpd
        servers.append(lmtpd.serve_in_thread())
    log_event("api", event="start", version=core.version, https_port=HTTPS_PORT, http_port=HTTP_PORT)
    notify_systemd("READY=1")
    stop.wait()
    for server in servers:
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    main()
