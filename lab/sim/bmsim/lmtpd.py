"""BlueMind's LMTP delivery (unit bm-lmtpd, 127.0.0.1:2400), simulated: postfix's virtual_transport.

RFC 2033 by hand: LHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT (PIPELINING works: replies go out in
order). A recipient is a user of t_directory_entry or an alias of t_mailbox_alias (domain aliases
of t_domain count); others get 550. After DATA there is one reply per accepted recipient.

A message is stored once (a `Return-Path:` line first, as Cyrus does) and hard-linked into every
recipient's mailbox under its next IMAP uid; each mailbox's cyrus.index gets a fixed-size record
and its cyrus.cache an entry; bj-data gets t_message_body, t_mailbox_record and t_changeset rows.
On BlueMind 5.x (no Cyrus; LMTP served by bm-core, see bmsim.api) the message is stored once as
/var/spool/cyrus/data/by_hash/<g0>/<g1>/<guid>.zst (zstd, bmsim.spool.body_path), the IMAP uid is
the mailbox's next one in t_mailbox_record, and the same rows are written.
Files and rows go in one transaction: on any error all of it is undone and every recipient gets
451 (postfix retries later), which is also the answer while PostgreSQL is down.
"""
import argparse
import collections
import contextlib
import email.parser
import email.policy
import hashlib
import json
import os
import re
import socketserver
import threading
import time

from bmsim import common, spool

MAX_LINE = 4096
MAX_MESSAGE = 64 * 1024 * 1024
ADDRESS = re.compile(r"^(?P<verb>MAIL FROM|RCPT TO):\s*<(?P<address>[^<>\s]*)>(?P<params>(\s+\S+)*)\s*$",
                     re.IGNORECASE)

Mailbox = collections.namedtuple("Mailbox", "uid domain login")


class TemporaryFailure(Exception):
    """The store cannot answer now (database unreachable): reply 4xx, the client retries."""


class Session:
    """The LMTP state of one connection, independent of the socket: lines in, replies out."""

    def __init__(self, store, hostname):
        self.store = store
        self.hostname = hostname
        self.greeted = False
        self.closed = False
        self.expecting_data = False
        self.reset()

    def reset(self):
        self.sender = None
        self.recipients = []  # (address, Mailbox) of accepted recipients

    def greeting(self):
        return ["220 %s LMTP BlueMind bm-lmtpd ready" % self.hostname]

    def command(self, line):
        """Replies to one command line (bytes, with or without its CRLF)."""
        text = line.decode("utf-8", "replace").rstrip("\r\n")
        verb = text.split(" ", 1)[0].upper()
        handler = {"LHLO": self.lhlo, "MAIL": self.mail, "RCPT": self.rcpt, "DATA": self.data_start,
                   "RSET": self.rset, "NOOP": self.noop, "QUIT": self.quit}.get(verb)
        if verb in ("HELO", "EHLO"):
            return ["500 5.5.1 This is LMTP: say LHLO"]
        if handler is None:
            return ["500 5.5.2 Unknown command"]
        return handler(text)

    def lhlo(self, text):
        if len(text.split()) != 2:
            return ["501 5.5.4 Syntax: LHLO hostname"]
        self.greeted = True
        self.reset()
        return ["250-%s" % self.hostname, "250-PIPELINING", "250-ENHANCEDSTATUSCODES",
                "250-8BITMIME", "250 SIZE %d" % MAX_MESSAGE]

    def mail(self, text):
        if not self.greeted:
            return ["503 5.5.1 Say LHLO first"]
        if self.sender is not None:
            return ["503 5.5.1 Nested MAIL command"]
        match = ADDRESS.match(text)
        if not match or match.group("verb").upper() != "MAIL FROM":
            return ["501 5.5.4 Syntax: MAIL FROM:<address>"]
        for param in match.group("params").split():
            key, _, value = param.partition("=")
            if key.upper() == "SIZE" and value.isdigit() and int(value) > MAX_MESSAGE:
                return ["552 5.3.4 Message size exceeds fixed limit"]
        self.sender = match.group("address")
        return ["250 2.1.0 Ok"]

    def rcpt(self, text):
        if self.sender is None:
            return ["503 5.5.1 Need MAIL command"]
        match = ADDRESS.match(text)
        if not match or match.group("verb").upper() != "RCPT TO" or "@" not in match.group("address"):
            return ["501 5.5.4 Syntax: RCPT TO:<address>"]
        address = match.group("address")
        try:
            mailbox = self.store.resolve(address)
        except TemporaryFailure as exc:
            return ["451 4.3.0 <%s>: temporary lookup failure (%s)" % (address, exc)]
        if mailbox is None:
            common.log_event("lmtp", event="rejected", sender=self.sender, recipient=address)
            return ["550 5.1.1 <%s>: Recipient address rejected: User unknown" % address]
        self.recipients.append((address, mailbox))
        return ["250 2.1.5 Ok"]

    def data_start(self, text):
        if self.sender is None:
            return ["503 5.5.1 Need MAIL command"]
        if not self.recipients:
            return ["503 5.5.1 No valid recipients"]
        self.expecting_data = True
        return ["354 End data with <CR><LF>.<CR><LF>"]

    def data(self, message, too_big=False):
        """Replies after the message (dot-unstuffed, CRLF lines): one per accepted recipient."""
        self.expecting_data = False
        addresses = [a for a, _ in self.recipients]
        try:
            if too_big:
                replies = ["552 5.3.4 <%s> Message size exceeds fixed limit" % a for a in addresses]
            else:
                result = self.store.deliver(self.sender, [m for _, m in self.recipients], message)
                common.log_event("lmtp", event="delivered", sender=self.sender, recipients=addresses,
                                 size=len(message), **result)
                replies = ["250 2.1.5 <%s> Ok, delivered" % a for a in addresses]
        except Exception as exc:  # every failure is temporary for the client: it retries
            common.log_event("lmtp", event="failed", sender=self.sender, recipients=addresses,
                             error="%s: %s" % (type(exc).__name__, exc))
            replies = ["451 4.3.0 <%s> Delivery failed, try again later" % a for a in addresses]
        self.reset()
        return replies

    def rset(self, text):
        self.reset()
        return ["250 2.0.0 Ok"]

    def noop(self, text):
        return ["250 2.0.0 Ok"]

    def quit(self, text):
        self.closed = True
        return ["221 2.0.0 Bye"]


class Store:
    """Mailboxes in the spool and rows in bj (directory) and bj-data (mail), one delivery at a time."""

    def __init__(self, db="bj"):
        self.db = db
        self.lock = threading.Lock()
        self.owners = spool.Owners()
        self.conns = {}
        self.v5 = spool.MAJOR >= 5

    def _conn(self, db):
        """A live connection to `db`: a kept one that still answers, else a new one (PostgreSQL
        may have been restarted since)."""
        conn = self.conns.get(db)
        if conn is not None:
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT 1")
                conn.rollback()
                return conn
            except Exception:
                self._drop(db)
        try:
            conn = self.conns[db] = common.connect(db)
        except Exception as exc:
            raise TemporaryFailure("database %s: %s" % (db, str(exc).strip()))
        return conn

    def _drop(self, db):
        conn = self.conns.pop(db, None)
        if conn is not None:
            conn.close()

    def resolve(self, address):
        """The Mailbox an address delivers to (user, alias, domain alias, +detail), or None."""
        local, _, domain = address.lower().rpartition("@")
        local = local.split("+", 1)[0]
        with self.lock:
            conn = self._conn(self.db)
            try:
                with conn.cursor() as cur:
                    cur.execute(
                        "WITH d AS (SELECT name FROM t_domain WHERE NOT global "
                        "  AND (name = %(domain)s OR %(domain)s = ANY(aliases))) "
                        "SELECT e.uid, e.domain_uid, e.login, 0 FROM t_directory_entry e JOIN d "
                        "  ON e.domain_uid = d.name WHERE e.login = %(local)s "
                        "  AND e.kind = 'USER' AND NOT e.archived "
                        "UNION ALL SELECT e.uid, e.domain_uid, e.login, 1 FROM t_mailbox_alias a "
                        "  JOIN d ON a.domain_uid = d.name "
                        "  JOIN t_directory_entry e ON e.uid = a.target_uid "
                        "  WHERE a.alias = %(local)s AND NOT e.archived ORDER BY 4 LIMIT 1",
                        {"domain": domain, "local": local})
                    row = cur.fetchone()
                conn.rollback()
            except Exception as exc:
                self._drop(self.db)
                raise TemporaryFailure(str(exc).strip())
        return Mailbox(*row[:3]) if row else None

    def deliver(self, sender, mailboxes, data):
        """Store `data` once, link it into every mailbox (in one transaction); returns a summary."""
        message = b"Return-Path: <%s>\r\n" % sender.encode() + data
        guid = hashlib.sha1(message).hexdigest()
        now = int(time.time())
        unique = list(collections.OrderedDict((m.uid, m) for m in mailboxes).values())
        with self.lock, contextlib.ExitStack() as locks:
            for m in sorted(unique, key=lambda m: (m.domain, m.login)):
                if self.v5:
                    break  # no Cyrus lock files on 5.x: self.lock serialises deliveries
                locks.enter_context(spool.MailboxLock(m.domain, m.login, self.owners))
            conn = self._conn("bj-data")
            undo = Undo()
            try:
                store = self._store5 if self.v5 else self._store
                uids = store(conn, undo, guid, message, unique, now)
                conn.commit()
            except Exception:
                undo.run()
                self._drop("bj-data")
                raise
        return {"guid": guid, "uids": uids}

    def _store(self, conn, undo, guid, message, mailboxes, now):
        subject, mime = describe(message)
        structure = {"mime": mime, "size": len(message), "parts": 1}
        uids, first = {}, None
        with conn.cursor() as cur:
            cur.execute("INSERT INTO t_message_body (guid, size, subject, structure, created) "
                        "VALUES (%s, %s, %s, %s, to_timestamp(%s)) ON CONFLICT (guid) DO NOTHING",
                        (guid, len(message), subject, json.dumps(structure), now))
            for m in mailboxes:
                spool.ensure_mailbox(m.domain, m.login, self.owners, now)
                index, cache = spool.index_path(m.domain, m.login), spool.cache_path(m.domain, m.login)
                uid = spool.read_index_header(index).last_uid + 1
                path = spool.message_path(m.domain, m.login, uid)
                if first is None:
                    tmp = path + "tmp"
                    undo.unlink(tmp)
                    spool.write_file(tmp, message, spool.MAIL_SPOOL, self.owners)
                    os.rename(tmp, path)
                    first = path
                else:
                    os.link(first, path)
                undo.unlink(path)
                undo.restore(cache)
                offset = spool.append_cache(cache, message)
                undo.restore(index)
                spool.append_record(index, spool.Record(uid, now, len(message), 0, bytes.fromhex(guid),
                                                        uid, offset, now))
                cur.execute("INSERT INTO t_mailbox_record (mailbox_uid, imap_uid, message_body_guid, "
                            "system_flags, internal_date) VALUES (%s, %s, %s, 0, to_timestamp(%s))",
                            (m.uid, uid, guid, now))
                cur.execute("INSERT INTO t_changeset (container_uid, item_uid, version, type, date) "
                            "SELECT %s, %s, coalesce(max(version), 0) + 1, 0, to_timestamp(%s) "
                            "FROM t_changeset WHERE container_uid = %s",
                            ("mbox_records_" + m.uid, str(uid), now, "mbox_records_" + m.uid))
                uids[m.uid] = uid
        return uids


    def _store5(self, conn, undo, guid, message, mailboxes, now):
        """5.x: one compressed body by hash (kept if already there), rows as on 4.x."""
        subject, mime = describe(message)
        structure = {"mime": mime, "size": len(message), "parts": 1}
        body = spool.body_path(guid)
        if not os.path.exists(body):
            spool.make_dirs(os.path.dirname(body), spool.MAIL_SPOOL, self.owners)
            tmp = body + ".tmp"
            undo.unlink(tmp)
            spool.write_file(tmp, spool.compress(message), spool.MAIL_SPOOL, self.owners)
            os.rename(tmp, body)
            undo.unlink(body)
        uids = {}
        with conn.cursor() as cur:
            cur.execute("INSERT INTO t_message_body (guid, size, subject, structure, created) "
                        "VALUES (%s, %s, %s, %s, to_timestamp(%s)) ON CONFLICT (guid) DO NOTHING",
                        (guid, len(message), subject, json.dumps(structure), now))
            for m in mailboxes:
                cur.execute("SELECT coalesce(max(imap_uid), 0) + 1 FROM t_mailbox_record "
                            "WHERE mailbox_uid = %s", (m.uid,))
                uid = cur.fetchone()[0]
                cur.execute("INSERT INTO t_mailbox_record (mailbox_uid, imap_uid, message_body_guid, "
                            "system_flags, internal_date) VALUES (%s, %s, %s, 0, to_timestamp(%s))",
                            (m.uid, uid, guid, now))
                cur.execute("INSERT INTO t_changeset (container_uid, item_uid, version, type, date) "
                            "SELECT %s, %s, coalesce(max(version), 0) + 1, 0, to_timestamp(%s) "
                            "FROM t_changeset WHERE container_uid = %s",
                            ("mbox_records_" + m.uid, str(uid), now, "mbox_records_" + m.uid))
                uids[m.uid] = uid
        return uids


def describe(message):
    """(subject, content type) of a message; a header that cannot be parsed does not stop delivery."""
    try:
        headers = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(message)
        return str(headers.get("subject", "")), headers.get_content_type()
    except Exception:  # malformed headers: deliver anyway, as Cyrus does
        return "", "text/plain"


class Undo:
    """File changes of a delivery to take back if it fails: new files, appended-to files."""

    def __init__(self):
        self.actions = []

    def unlink(self, path):
        self.actions.append(lambda: os.path.exists(path) and os.unlink(path))

    def restore(self, path):
        """Truncate back to the current size and put back the first bytes (an index header)."""
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            head = fh.read(spool.HEADER.size)

        def put_back():
            with open(path, "r+b") as fh:
                fh.truncate(size)
                fh.write(head)
        self.actions.append(put_back)

    def run(self):
        for action in reversed(self.actions):
            action()


class Handler(socketserver.StreamRequestHandler):
    timeout = 300

    def send(self, replies):
        self.wfile.write("".join(r + "\r\n" for r in replies).encode())

    def handle(self):
        session = Session(self.server.store, self.server.hostname)
        self.send(session.greeting())
        while not session.closed:
            line = self.rfile.readline(MAX_LINE + 1)
            if not line:
                return
            if len(line) > MAX_LINE:
                self.send(["500 5.5.2 Line too long"])
                return
            self.send(session.command(line))
            if session.expecting_data:
                message = self.read_data()
                if message is None:
                    return
                self.send(session.data(*message))

    def read_data(self):
        """The message up to <CRLF>.<CRLF>, dot-unstuffed, lines ending in CRLF; None if the
        client went away. Beyond MAX_MESSAGE the rest is read and dropped."""
        chunks, size = [], 0
        while True:
            line = self.rfile.readline(MAX_MESSAGE)
            if not line:
                return None
            if line in (b".\r\n", b".\n"):
                return b"".join(chunks), size > MAX_MESSAGE
            if line.startswith(b"."):
                line = line[1:]
            if line.endswith(b"\n") and not line.endswith(b"\r\n"):
                line = line[:-1] + b"\r\n"
            size += len(line)
            if size <= MAX_MESSAGE:
                chunks.append(line)


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, address, store, hostname):
        self.store = store
        self.hostname = hostname
        super().__init__(address, Handler)


def serve_in_thread(listen="127.0.0.1:2400"):
    """Start the LMTP server in a daemon thread of the calling process (5.x: bm-core serves LMTP,
    bluemindfork master parent/delivery/net.bluemind.delivery.lmtp/resources/application.conf
    port 2400; bm-conf's postinst purges the bm-lmtpd unit). Returns the server."""
    host, _, port = listen.rpartition(":")
    ini = common.read_bm_ini()
    server = Server((host, int(port)), Store(ini.get("db", "bj")), ini.get("external-url", "localhost"))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    common.log_event("lmtp", event="started", listen=listen, inside="bm-core")
    return server


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python3 -m bmsim.lmtpd", description=__doc__.split("\n")[0])
    parser.add_argument("--listen", default="127.0.0.1:2400", help="address:port (default %(default)s)")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    ini = common.read_bm_ini()
    server = Server((host, int(port)), Store(ini.get("db", "bj")), ini.get("external-url", "localhost"))
    common.log_event("lmtp", event="started", listen=args.listen)
    server.serve_forever()


if __name__ == "__main__":
    main()
