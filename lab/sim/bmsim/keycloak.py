"""BlueMind 5.x's Keycloak (unit bm-keycloak), simulated: `python3 -m bmsim.keycloak serve|init|repair`.

What the simulator takes from BlueMind's source (mdhender/bluemindfork master, see lab/FIDELITY.md
rows 5x-keycloak-*):
- Keycloak listens on 8099 (KeycloakAdminClient.BASE_URL, bm-nginx's bm-upstream-keycloak.conf
  `server 127.0.0.1:8099`, the bm-iptables template `keycloak="8099"`);
- one realm per domain, named by the domain uid, and in it one OIDC client `<domainUid>-cli`
  (IKeycloakUids.clientId), made by KeycloakHelper.initForDomain, which then stores the secret
  Keycloak generated for it in bj's domain properties under `OPENID_CLIENT_SECRET`
  (AuthDomainProperties), with `AUTH_TYPE` INTERNAL when unset;
- the core administers Keycloak with a password grant on the `master` realm, client `admin-cli`,
  user `admin`, password the core's token (KeycloakAdminClient.getToken, Token.admin0());
- the repair op `domain.keycloak` (KeycloakRealmRepairSupport) compares the realm and the client
  (secret included: the client's secret must equal the domain's OPENID_CLIENT_SECRET) with what
  they should be; when they differ it deletes the realm and runs initForDomain again: a new realm,
  client and secret, and the new secret written to bj.
What is the lab's own (unconfirmed, probe.yml asks): the database name and owner `keycloak`, its
tables (named after Keycloak's own `realm` and `client`), /etc/bm-keycloak/keycloak.conf.

Login (the risk the lab shows): the token endpoint `POST /realms/<realm>/protocol/openid-connect/token`
(Keycloak's path) with `grant_type=password`, `client_id`, `client_secret`, `username`, `password`
answers a token only when the realm exists, the client and its secret match Keycloak's database,
and the user's password is right (the BlueMind provider of the realm checks it against bj:
t_domain_user). BlueMind sends the secret it keeps in bj (`bm-sim keycloak login` does the same):
a target whose bj came from the origin but whose Keycloak database did not, and was not repaired,
refuses every login.
"""
import argparse
import hashlib
import hmac
import json
import os
import secrets
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode
from urllib.request import Request, urlopen
from urllib.error import HTTPError

from bmsim import common

PORT = int(os.environ.get("BMSIM_KEYCLOAK_PORT", "8099"))
BIND = os.environ.get("BMSIM_KEYCLOAK_BIND", "0.0.0.0")
CONF_DIR = os.environ.get("BMSIM_KEYCLOAK_CONF_DIR", "/etc/bm-keycloak")
CONF = os.path.join(CONF_DIR, "keycloak.conf")
DB, DB_USER, DB_PASSWORD = "keycloak", "keycloak", "keycloak"
GLOBAL = "global.virt"
SCHEMA = """
CREATE TABLE IF NOT EXISTS realm (
    id        text PRIMARY KEY,
    name      text NOT NULL UNIQUE,
    enabled   boolean NOT NULL DEFAULT true,
    created   timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS client (
    id        text PRIMARY KEY,
    client_id text NOT NULL,
    realm_id  text NOT NULL REFERENCES realm(id) ON DELETE CASCADE,
    secret    text NOT NULL,
    enabled   boolean NOT NULL DEFAULT true,
    UNIQUE (realm_id, client_id)
);
"""


def client_id(realm):
    return realm + "-cli"  # IKeycloakUids.clientId


def connect():
    import psycopg2
    return psycopg2.connect(host="127.0.0.1", port=5432, user=DB_USER, password=DB_PASSWORD, dbname=DB)


@contextmanager
def tx(db):
    """A cursor in one transaction of `db` ("keycloak" or a BlueMind database); closed at the end."""
    conn = connect() if db == DB else common.connect(db)
    try:
        with conn, conn.cursor() as cur:
            yield cur
    finally:
        conn.close()


def write_conf():
    """Keycloak's own settings (Keycloak's keycloak.conf keys); the file name and place are the lab's."""
    common.write_atomic(CONF, "# bm-keycloak (bluemind.migration lab simulator)\n"
                        "db=postgres\ndb-url=jdbc:postgresql://127.0.0.1:5432/%s\n"
                        "db-username=%s\ndb-password=%s\nhttp-port=%d\nhttp-enabled=true\n"
                        % (DB, DB_USER, DB_PASSWORD, PORT), mode=0o640)


def ensure_database(run_psql, quote_literal, quote_ident):
    """Role and database `keycloak` (owner keycloak), and the stand-in's two tables."""
    verb = "ALTER" if run_psql("SELECT 1 FROM pg_roles WHERE rolname = %s" % quote_literal(DB_USER)) \
        else "CREATE"
    run_psql("%s ROLE %s LOGIN PASSWORD %s" % (verb, quote_ident(DB_USER), quote_literal(DB_PASSWORD)))
    if not run_psql("SELECT 1 FROM pg_database WHERE datname = %s" % quote_literal(DB)):
        run_psql("CREATE DATABASE %s OWNER %s ENCODING 'UTF8' TEMPLATE template0"
                 % (quote_ident(DB), quote_ident(DB_USER)))
    with tx(DB) as cur:
        cur.execute(SCHEMA)
        cur.execute("TRUNCATE realm CASCADE")
    write_conf()


# --- what the core does (KeycloakHelper.initForDomain, the domain.keycloak repair) ------------------

def domains(bj_cur):
    bj_cur.execute("SELECT name FROM t_domain ORDER BY global DESC, name")
    return [r[0] for r in bj_cur.fetchall()]


def init_for_domain(domain_uid, bj_cur, kc_cur):
    """Create the realm and its client with a new secret, and store the secret in bj's domain
    properties (OPENID_CLIENT_SECRET; AUTH_TYPE INTERNAL when unset), as initForDomain does."""
    kc_cur.execute("INSERT INTO realm (id, name) VALUES (%s, %s)", (domain_uid, domain_uid))
    secret = secrets.token_urlsafe(24)
    kc_cur.execute("INSERT INTO client (id, client_id, realm_id, secret) VALUES (%s, %s, %s, %s)",
                   (common.uuid4() if hasattr(common, "uuid4") else secrets.token_hex(16),
                    client_id(domain_uid), domain_uid, secret))
    bj_cur.execute("UPDATE t_domain SET properties = coalesce(properties, ''::hstore) "
                   "|| hstore('OPENID_CLIENT_SECRET', %s) "
                   "|| hstore('AUTH_TYPE', coalesce(properties -> 'AUTH_TYPE', 'INTERNAL')) "
                   "WHERE name = %s", (secret, domain_uid))
    if bj_cur.rowcount != 1:
        raise LookupError("no domain %s in bj" % domain_uid)
    return secret


def check(domain_uid, bj_cur, kc_cur):
    """None when Keycloak's realm and client match bj for the domain, else what differs."""
    bj_cur.execute("SELECT properties -> 'OPENID_CLIENT_SECRET' FROM t_domain WHERE name = %s", (domain_uid,))
    row = bj_cur.fetchone()
    if row is None:
        return "no domain %s in bj" % domain_uid
    kc_cur.execute("SELECT c.secret FROM realm r LEFT JOIN client c ON c.realm_id = r.id AND c.client_id = %s "
                   "WHERE r.id = %s", (client_id(domain_uid), domain_uid))
    kc = kc_cur.fetchone()
    if kc is None:
        return "no realm %s in Keycloak" % domain_uid
    if kc[0] is None:
        return "no client %s in realm %s" % (client_id(domain_uid), domain_uid)
    if row[0] is None or not hmac.compare_digest(kc[0], row[0]):
        return "client %s's secret differs from bj's OPENID_CLIENT_SECRET" % client_id(domain_uid)
    return None


def repair(domain_uid, dry=False):
    """The domain.keycloak op: check; when not ok (and not dry), delete the realm and init again.
    Returns (ok_before, repaired)."""
    with tx("bj") as bj_cur, tx(DB) as kc_cur:
        problem = check(domain_uid, bj_cur, kc_cur)
        if problem is None or dry:
            return problem, False
        kc_cur.execute("DELETE FROM realm WHERE id = %s", (domain_uid,))
        init_for_domain(domain_uid, bj_cur, kc_cur)
        return problem, True


def op_lines(domain_uid, dry=False):
    """Run the domain.keycloak op (check when dry, else repair) on one domain; its progress lines as
    KeycloakRealmRepairSupport writes them (KeycloakRepairImpl.check / repair, monitor.begin/progress)."""
    problem, repaired = repair(domain_uid, dry=dry)
    lines = ["Check Keycloak configuration for domain: %s" % domain_uid]
    if dry:
        lines.append("Keycloak configuration is %s" % ("ok" if problem is None else "ko"))
    elif problem is None:
        lines.append("Keycloak configuration don't need repair for domain: %s" % domain_uid)
    else:
        lines += ["Keycloak configuration need repair for domain: %s" % domain_uid,
                  "Reset keycloak configuration for domain: %s" % domain_uid]
    return lines, problem, repaired


def seed_realms(bj_cur):
    """A realm and client for every domain of bj (global.virt included), as the install leaves them."""
    with tx(DB) as kc_cur:
        for d in domains(bj_cur):
            init_for_domain(d, bj_cur, kc_cur)


# --- users' passwords in bj (t_domain_user, as BlueMind's user-schema has it) --------------------------

def hash_password(password, salt=None):
    salt = salt or secrets.token_hex(8)
    return "%s$%s" % (salt, hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), 1000).hex())


def password_ok(bj_cur, domain_uid, login, password):
    bj_cur.execute("SELECT u.password FROM t_domain_user u JOIN t_directory_entry e ON e.uid = u.uid "
                   "WHERE e.domain_uid = %s AND e.login = %s AND NOT e.archived", (domain_uid, login))
    row = bj_cur.fetchone()
    if not row or not row[0] or "$" not in row[0]:
        return False
    salt = row[0].split("$", 1)[0]
    return hmac.compare_digest(hash_password(password, salt), row[0])


# --- the server ----------------------------------------------------------------------------------------

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "bm-keycloak-sim"
    sys_version = ""
    timeout = 30

    def reply(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        parts = self.path.split("?")[0].strip("/").split("/")
        if len(parts) == 4 and parts[0] == "realms" and parts[2:] == [".well-known", "openid-configuration"]:
            with tx(DB) as cur:
                cur.execute("SELECT 1 FROM realm WHERE id = %s", (parts[1],))
                found = cur.fetchone()
            if not found:
                return self.reply(404, {"error": "Realm does not exist"})
            base = "http://%s:%d/realms/%s" % (self.headers.get("Host", "127.0.0.1").split(":")[0], PORT, parts[1])
            return self.reply(200, {"issuer": base, "token_endpoint": base + "/protocol/openid-connect/token"})
        return self.reply(404, {"error": "Unable to find matching target resource method"})

    def do_POST(self):
        parts = self.path.split("?")[0].strip("/").split("/")
        length = int(self.headers.get("Content-Length") or 0)
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        if not (len(parts) == 5 and parts[0] == "realms" and parts[2:] == ["protocol", "openid-connect", "token"]):
            return self.reply(404, {"error": "Unable to find matching target resource method"})
        status, payload = token(parts[1], form)
        common.log_event("keycloak", event="token", realm=parts[1], client_id=form.get("client_id"),
                         username=form.get("username"), status=status, error=payload.get("error"))
        self.reply(status, payload)


def token(realm, form):
    """(status, body) of the password grant, with Keycloak's error codes."""
    if form.get("grant_type") != "password":
        return 400, {"error": "unsupported_grant_type", "error_description": "Unsupported grant_type"}
    if realm == "master":  # the core's administration login (KeycloakAdminClient.getToken)
        good = form.get("client_id") == "admin-cli" and form.get("username") == "admin" \
            and hmac.compare_digest(form.get("password", ""), common.read_token() or "\0")
        if not good:
            return 401, {"error": "invalid_grant", "error_description": "Invalid user credentials"}
        return 200, {"access_token": secrets.token_urlsafe(32), "token_type": "Bearer", "expires_in": 60}
    with tx(DB) as cur:
        cur.execute("SELECT 1 FROM realm WHERE id = %s AND enabled", (realm,))
        if cur.fetchone() is None:
            return 404, {"error": "Realm does not exist"}
        cur.execute("SELECT secret FROM client WHERE realm_id = %s AND client_id = %s AND enabled",
                    (realm, form.get("client_id")))
        row = cur.fetchone()
    if row is None or not hmac.compare_digest(row[0], form.get("client_secret", "")):
        return 401, {"error": "unauthorized_client" if row is None else "invalid_client",
                     "error_description": "Invalid client or Invalid client credentials"}
    login = form.get("username", "").split("@")[0]
    with tx("bj") as cur:
        good = password_ok(cur, realm, login, form.get("password", ""))
    if not good:
        return 401, {"error": "invalid_grant", "error_description": "Invalid user credentials"}
    return 200, {"access_token": secrets.token_urlsafe(32), "token_type": "Bearer", "expires_in": 300,
                 "scope": "openid"}


def login(address, password, host="127.0.0.1"):
    """Log a user in as BlueMind does: the secret from bj's domain properties, then the token endpoint.
    Returns (http status, body)."""
    login_part, _, domain = address.partition("@")
    with tx("bj") as cur:
        cur.execute("SELECT name, properties -> 'OPENID_CLIENT_SECRET' FROM t_domain "
                    "WHERE name = %s OR %s = ANY(aliases)", (domain, domain))
        row = cur.fetchone()
    if row is None:
        return 404, {"error": "no domain %s in bj" % domain}
    realm, secret = row
    data = urlencode({"grant_type": "password", "client_id": client_id(realm), "client_secret": secret or "",
                      "username": login_part, "password": password}).encode()
    req = Request("http://%s:%d/realms/%s/protocol/openid-connect/token" % (host, PORT, realm), data=data)
    try:
        with urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read().decode())
    except HTTPError as exc:
        return exc.code, json.loads(exc.read().decode() or "{}")


def serve():
    server = ThreadingHTTPServer((BIND, PORT), Handler)
    server.daemon_threads = True
    stop = threading.Event()
    import signal
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    common.log_event("keycloak", event="start", port=PORT)
    stop.wait()
    server.shutdown()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python3 -m bmsim.keycloak", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("serve", help="the bm-keycloak unit")
    p_login = sub.add_parser("login", help="log a user in as BlueMind does (secret from bj); exit 0 on a token")
    p_login.add_argument("address")
    p_login.add_argument("password")
    p_check = sub.add_parser("check", help="does Keycloak match bj for DOMAIN (exit 0) or not (exit 1)")
    p_check.add_argument("domain")
    args = parser.parse_args(argv)
    if args.cmd == "serve":
        serve()
        return 0
    if args.cmd == "login":
        for _ in range(20):
            try:
                status, body = login(args.address, args.password)
                break
            except OSError:  # Keycloak still starting
                time.sleep(0.5)
        else:
            print(json.dumps({"error": "Keycloak does not answer on %d" % PORT}))
            return 2
        print(json.dumps({"status": status, "error": body.get("error"), "token": "access_token" in body}))
        return 0 if status == 200 else 1
    with tx("bj") as bj_cur, tx(DB) as kc_cur:
        problem = check(args.domain, bj_cur, kc_cur)
    print(problem or "Keycloak configuration is ok")
    return 0 if problem is None else 1


if __name__ == "__main__":
    sys.exit(main())
