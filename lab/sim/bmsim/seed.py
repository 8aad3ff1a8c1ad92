"""Seed the simulated BlueMind: PostgreSQL role and databases, the seven data trees, the rows that
describe them, and the postfix maps.

  python3 -m bmsim.seed [--scale s|m|l|<files>] [--seed 42]   the ORIGIN: users and data at a scale
  python3 -m bmsim.seed --fresh                                the TARGET: a fresh install
  --files-only                                                 only the trees, no database, no postfix

Every run WIPES and reseeds: the contents of the seven trees are deleted and the seeded tables are
emptied, then everything is rebuilt. The same --seed and scale give byte-identical trees (content,
owners, modes, mtimes, hard links) and identical rows. BMSIM_ROOT prefixes the tree paths.

Scales are a number of files (every non-directory entry of the seven trees): s = 5k, m = 100k,
l = 1M; the databases get about 10 kB per file (m ~ 1 GB, l ~ 10 GB).
A JSON summary is printed on the last line.
"""
import argparse
import base64
import bisect
import contextlib
import email.header
import email.utils
import hashlib
import io
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
import uuid

from bmsim import api, api_postfix, common, extras, keycloak, spool
from bmsim.spool import TREE

SCALES = {"s": 5000, "m": 100000, "l": 1000000}
DB_BYTES_PER_FILE = 10000
BODY_SHARE, ITEM_SHARE = 0.55, 0.25  # of the database target, in t_message_body / t_container_item
FILL_BLOCKS, FILL_BLOCK_CHARS = 1031, 1024  # prime count: distinct blocks within one row

MAIL_START, MAIL_SPAN = 1672531200, 2 * 365 * 86400  # mail dated 2023-01-01 .. 2024-12-31 (UTC)
TREE_TIME = 1735689600  # 2025-01-01: mtime of every seeded directory
FQDN = "bluemind.lab.test"
CYRUS_REPLICATION = os.environ.get("BMSIM_CYRUS_REPLICATION", "/etc/cyrus-replication")
BACKUP_SPOOL = os.environ.get("BMSIM_BACKUP_SPOOL", "/var/backups/bluemind/dp_spool/rsync")
DB_LOCALE = "en_US.UTF-8"  # BlueMind creates its databases with it (LC_COLLATE and LC_CTYPE)
GLOBAL_DOMAIN, MAIN_DOMAIN, MAIN_ALIAS, SECOND_DOMAIN = "global.virt", "lab.test", "lab.example", "acme.test"
SERVER_TAGS = ("bm/core,bm/pgsql,bm/pgsql-data,bm/es,bm/ac,bm/cal,bm/hps,bm/nginx,bm/redirector,"
               "bm/settings,bm/webmail,mail/imap,mail/smtp,mail/smtp-edge,filehosting/data")

USERS_PER_FILE = 1 / 250
SHARE = {"es": 0.05, "docs": 0.04, "filehosting": 0.04, "hsm": 0.08}
MULTI_RECIPIENT, MAX_RECIPIENTS = 0.15, 5
ATTACHMENT = 0.02
EVENTS_PER_USER, CONTACTS_PER_USER = 60, 40
ES_INDICES = (("mailspool_1", 4), ("contact", 1), ("event", 1), ("todo", 1), ("note", 1))
STAGING = "/var/spool/bm-mail/bodies"
STAGING_FILES = 3  # 5.x: bodies left in bm-mail's staging folder
USER_PASSWORD = "bluemind"  # 5.x: every seeded user's password (the lab's only; Keycloak logins)
SIEVE_FILES = 3  # script, bytecode, defaultbc symlink
META_FILES = 4 + 3 * len(spool.FOLDERS) + 2  # INBOX with squat, folders, seen and sub files
CYRUS_DBS = ("annotations.db", "deliver.db", "statuscache.db", "tls_sessions.db", "user_deny.db")
CYRUS_PROCS, CYRUS_SOCKETS = 3, ("lmtp", "idle")
CYRUS_LIB_FILES = 1 + len(CYRUS_DBS) + CYRUS_PROCS + 1 + len(CYRUS_SOCKETS)  # + mailboxes.db, 1 lock
ES_SKELETON = 2 + len(ES_INDICES) + 5 * sum(shards for _, shards in ES_INDICES)  # before segments

FIRST = (("alice", "Alice"), ("bruno", "Bruno"), ("chloe", "Chloé"), ("david", "David"),
         ("emma", "Emma"), ("francois", "François"), ("helene", "Hélène"), ("ines", "Inès"),
         ("jules", "Jules"), ("karim", "Karim"), ("lea", "Léa"), ("marc", "Marc"),
         ("nadia", "Nadia"), ("olivier", "Olivier"), ("paul", "Paul"), ("rose", "Rose"),
         ("samuel", "Samuel"), ("theo", "Théo"), ("victor", "Victor"), ("zoe", "Zoé"))
LAST = (("martin", "Martin"), ("bernard", "Bernard"), ("dubois", "Dubois"), ("lefevre", "Lefèvre"),
        ("muller", "Müller"), ("garcia", "García"), ("petit", "Petit"), ("durand", "Durand"),
        ("leroy", "Leroy"), ("moreau", "Moreau"), ("simon", "Simon"), ("laurent", "Laurent"),
        ("michel", "Michel"), ("fournier", "Fournier"), ("girard", "Girard"), ("nguyen", "Nguyen"))
ALIASES = ("contact", "info", "sales", "support", "rh", "compta", "direction", "accueil",
           "communication", "facturation")
EXTERNAL = ("example.com", "example.net", "example.org", "partenaire.example", "fournisseur.example")
SUBJECTS = ("Réunion budget 2026", "Compte rendu du comité", "Facture n°{n}", "Re: planning {n}",
            "Invitation : point hebdo", "Livraison commande {n}", "Fwd: contrat signé",
            "Congés d'été", "Ticket #{n} résolu", "Newsletter {n}", "Quarterly report {n}")
WORDS = ("le la les un une des projet budget client réunion livraison contrat équipe planning "
         "semaine prochaine merci bonjour cordialement voici ci-joint document version finale "
         "the and report meeting please find attached review schedule delivery invoice "
         "numéro été déjà très où ça être naïve façon cœur").split()
FILE_NAMES = ("Réunion budget 2026.pdf", "Compte rendu (v2).docx", "photo été 2024.jpg",
              "l'équipe — organigramme.png", "Plan de charge Q3.xlsx", "notes ünïcødé.txt",
              "Présentation client FINAL.pptx", "facture 0042 [payée].pdf", "archive #7.zip",
              "contrat & annexes.pdf", "日本語のファイル.txt", "Ελληνικά.odt")
FILE_DIRS = ("", "", "Partagé", "Projets 2025")


class Writer:
    """Creates tree entries with their owner, mode and a fixed mtime, and counts them."""

    def __init__(self, owners):
        self.owners = owners
        self.known = set()
        self.created = []
        self.files = self.bytes = self.hardlinks = 0
        self.per_tree = {t.path: {"files": 0, "bytes": 0} for t in spool.TREES}

    def count(self, tree, size):
        self.files += 1
        self.bytes += size
        self.per_tree[tree.path]["files"] += 1
        self.per_tree[tree.path]["bytes"] += size

    def dir(self, p, tree):
        if p not in self.known:
            spool.make_dirs(p, tree, self.owners, self.created)
            self.known.add(p)
        return p

    def file(self, p, data, tree, mtime):
        self.dir(os.path.dirname(p), tree)
        spool.write_file(p, data, tree, self.owners, mtime)
        self.count(tree, len(data))

    def link(self, src, p, tree):
        self.dir(os.path.dirname(p), tree)
        os.link(src, p)
        self.hardlinks += 1
        self.files += 1
        self.per_tree[tree.path]["files"] += 1

    def symlink(self, target, p, tree, mtime):
        self.dir(os.path.dirname(p), tree)
        os.symlink(target, p)
        self.owners.lchown(p, tree)
        os.utime(p, (mtime, mtime), follow_symlinks=False)
        self.count(tree, len(target))

    def socket(self, p, tree, mtime):
        """A listening socket's leftover file, as daemons leave in /var/lib/cyrus/socket."""
        self.dir(os.path.dirname(p), tree)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.bind(p)
        os.chmod(p, 0o777)
        self.owners.lchown(p, tree)
        os.utime(p, (mtime, mtime))
        self.count(tree, 0)

    def finish(self):
        """Fixed mtimes on every created directory and the tree tops (after their contents)."""
        for p in self.created + [spool.path(t.path) for t in spool.TREES]:
            os.utime(p, (TREE_TIME, TREE_TIME))


class Content:
    """Pseudo-random but reproducible text and bytes, sliced out of pools made once per run."""

    def __init__(self, rng):
        self.rng = rng
        lines, line = [], []
        for _ in range(60000):
            line.append(rng.choice(WORDS))
            if sum(len(w) + 1 for w in line) > 66:
                lines.append(" ".join(line).capitalize() + ("." if rng.random() < 0.3 else ""))
                line = []
        self.text = "\r\n".join(lines).encode() + b"\r\n"
        self.line_starts = [0]
        for i, b in enumerate(self.text):
            if b == 10:
                self.line_starts.append(i + 1)
        self.binary = rng.randbytes(1 << 22)
        b64 = base64.b64encode(rng.randbytes(600000))
        self.b64 = b"".join(b64[i:i + 76] + b"\r\n" for i in range(0, len(b64), 76))

    def text_body(self, size):
        """Whole lines of text, about `size` bytes (at least one line)."""
        first = self.rng.randrange(len(self.line_starts) // 2)
        start = self.line_starts[first]
        last = max(first + 1, bisect.bisect_right(self.line_starts, start + size) - 1)
        return self.text[start:self.line_starts[last]]

    def base64_block(self, size):
        lines = max(1, size // 78)
        first = self.rng.randrange(len(self.b64) // 78 - lines) * 78
        return self.b64[first:first + lines * 78]

    def blob(self, size):
        size = min(size, len(self.binary))
        start = self.rng.randrange(len(self.binary) - size + 1)
        return self.binary[start:start + size]


def log_size(rng, median, sigma, lo, hi):
    return int(min(hi, max(lo, rng.lognormvariate(0, sigma) * median)))


def header_text(value):
    """An RFC 2047 encoded header value when it is not plain ASCII."""
    try:
        value.encode("ascii")
        return value
    except UnicodeEncodeError:
        return email.header.Header(value, "utf-8").encode()


class User:
    def __init__(self, uid, domain, login, display):
        self.uid, self.domain, self.login, self.display = uid, domain, login, display
        self.address = "%s@%s" % (login, domain)
        self.records = bytearray()  # packed cyrus.index records of INBOX
        self.cache_size = len(spool.CACHE_MAGIC)
        self.last_uid = 0
        self.seen = []
        self.uidvalidity = 0


class Seeder:
    def __init__(self, seed, files, fresh):
        self.rng = random.Random(seed)
        self.seed = seed
        self.files = files
        self.fresh = fresh
        self.w = Writer(spool.Owners())
        self.users = []
        self.aliases = []  # (domain, alias, user)
        self.bodies = io.StringIO()  # COPY rows of seed_body
        self.records = io.StringIO()  # COPY rows of t_mailbox_record
        self.n_bodies = 0
        self.n_records = 0
        self.v5 = spool.MAJOR >= 5

    # --- directory ------------------------------------------------------------------------
    def uid(self):
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def make_users(self):
        self.users.append(User(self.uid(), MAIN_DOMAIN, "admin", "Administrator"))
        if self.fresh:
            return
        total = max(3, int(self.files * USERS_PER_FILE))
        second = max(1, total // 8)
        taken = set()
        for i in range(1, total):
            domain = MAIN_DOMAIN if i < total - second else SECOND_DOMAIN
            (first, first_d), (last, last_d) = self.rng.choice(FIRST), self.rng.choice(LAST)
            login, n = "%s.%s" % (first, last), 1
            while (domain, login) in taken:
                n += 1
                login = "%s.%s%d" % (first, last, n)
            taken.add((domain, login))
            self.users.append(User(self.uid(), domain, login, "%s %s" % (first_d, last_d)))
        main = [u for u in self.users if u.domain == MAIN_DOMAIN and u.login != "admin"]
        for i in range(max(2, total // 10)):
            name = ALIASES[i] if i < len(ALIASES) else "equipe%d" % i
            self.aliases.append((MAIN_DOMAIN, name, self.rng.choice(main)))
        second_users = [u for u in self.users if u.domain == SECOND_DOMAIN]
        self.aliases.append((SECOND_DOMAIN, "contact", self.rng.choice(second_users)))

    # --- trees ----------------------------------------------------------------------------
    def date(self):
        return MAIL_START + self.rng.randrange(MAIL_SPAN)

    def plan(self):
        """Files of each kind: shares of the scale for HSM, ES, docs and filehosting, a fixed
        number per user and for Cyrus' own files, and mail spool entries for the rest."""
        counts = {kind: int(self.files * share) for kind, share in SHARE.items()}
        counts["es"] = max(counts["es"], ES_SKELETON)
        if self.v5:  # no Cyrus metadata nor sieve files; bm-mail's staging holds STAGING_FILES
            counts["mail"] = self.files - sum(counts.values()) - STAGING_FILES
        else:
            counts["mail"] = (self.files - sum(counts.values()) - CYRUS_LIB_FILES -
                              len(self.users) * (META_FILES + SIEVE_FILES))
        if counts["mail"] < len(self.users):
            raise SystemExit("seed: %d files is too small a scale: use at least 1000" % self.files)
        return counts

    def mail(self, content, links):
        """INBOX messages: `links` spool entries, some messages hard-linked into several mailboxes."""
        by_domain = {}
        for u in self.users:
            by_domain.setdefault(u.domain, []).append(u)
        domains = list(by_domain)
        weights = [len(by_domain[d]) for d in domains]
        done, n = 0, 0
        while done < links:
            n += 1
            mailboxes = by_domain[self.rng.choices(domains, weights)[0]]
            k = self.rng.randint(2, MAX_RECIPIENTS) if self.rng.random() < MULTI_RECIPIENT else 1
            rcpts = self.rng.sample(mailboxes, min(k, len(mailboxes), links - done))
            date = MAIL_START + MAIL_SPAN * done // links + self.rng.randrange(3600)
            message, subject = self.message(content, n, date, rcpts)
            if self.v5:  # one compressed file a message, whatever the recipients
                self.deliver5(message, subject, date, rcpts)
                done += 1
            else:
                self.deliver(message, subject, date, rcpts)
                done += len(rcpts)

    def message(self, content, n, date, rcpts):
        rng = self.rng
        if rng.random() < 0.5:
            (first, first_d), (last, last_d) = rng.choice(FIRST), rng.choice(LAST)
            sender = ("%s %s" % (first_d, last_d), "%s.%s@%s" % (first, last, rng.choice(EXTERNAL)))
        else:
            u = rng.choice(self.users)
            sender = (u.display, u.address)
        subject = rng.choice(SUBJECTS).format(n=rng.randrange(1, 10000))
        text = content.text_body(log_size(rng, 2000, 0.9, 200, 60000))
        head = [
            "Return-Path: <%s>" % sender[1],
            "Received: from mx.%s (mx.%s [192.0.2.%d])\r\n\tby %s (Postfix) with ESMTPS id %010X\r\n"
            "\tfor <%s>; %s" % (sender[1].split("@")[1], sender[1].split("@")[1], rng.randrange(1, 255),
                                FQDN, rng.getrandbits(40), rcpts[0].address,
                                email.utils.formatdate(date)),
            "Date: %s" % email.utils.formatdate(date),
            "From: %s <%s>" % (header_text(sender[0]), sender[1]),
            "To: %s" % ", ".join("%s <%s>" % (header_text(u.display), u.address) for u in rcpts),
            "Subject: %s" % header_text(subject),
            "Message-ID: <%016x.%d@%s>" % (rng.getrandbits(64), n, sender[1].split("@")[1]),
            "MIME-Version: 1.0",
        ]
        if rng.random() < ATTACHMENT:
            boundary = "=_bm_%016x" % rng.getrandbits(64)
            head.append('Content-Type: multipart/mixed; boundary="%s"' % boundary)
            body = (b"--%s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                    b"Content-Transfer-Encoding: 8bit\r\n\r\n" % boundary.encode() + text +
                    b"--%s\r\nContent-Type: application/pdf; name=\"piece-%d.pdf\"\r\n"
                    b"Content-Transfer-Encoding: base64\r\n"
                    b"Content-Disposition: attachment; filename=\"piece-%d.pdf\"\r\n\r\n"
                    % (boundary.encode(), n, n) +
                    content.base64_block(log_size(rng, 60000, 1.0, 5000, 500000)) +
                    b"--%s--\r\n" % boundary.encode())
        else:
            head += ["Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit"]
            body = text
        return ("\r\n".join(head) + "\r\n\r\n").encode() + body, subject

    def deliver(self, message, subject, date, rcpts):
        digest = hashlib.sha1(message)
        guid = digest.hexdigest()
        entry = spool.cache_entry(message)
        first = None
        for u in rcpts:
            u.last_uid += 1
            p = spool.message_path(u.domain, u.login, u.last_uid)
            if first is None:
                self.w.file(p, message, spool.MAIL_SPOOL, date)
                first = p
            else:
                self.w.link(first, p, spool.MAIL_SPOOL)
            flags = ((spool.FLAG_SEEN if self.rng.random() < 0.75 else 0) |
                     (spool.FLAG_FLAGGED if self.rng.random() < 0.05 else 0) |
                     (spool.FLAG_ANSWERED if self.rng.random() < 0.10 else 0))
            if flags & spool.FLAG_SEEN:
                u.seen.append(u.last_uid)
            u.records += spool.pack_record(spool.Record(
                u.last_uid, date, len(message), flags, digest.digest(), u.last_uid, u.cache_size, date))
            with open(os.path.join(spool.meta_dir(u.domain, u.login), "cyrus.cache"), "ab") as fh:
                fh.write(entry)
            u.cache_size += len(entry)
            self.records.write("%s\t%d\t%s\t%d\t%s\n" % (u.uid, u.last_uid, guid, flags, iso(date)))
            self.n_records += 1
        self.bodies.write("%d\t%s\t%d\t%s\t%s\t%d\n" % (
            self.n_bodies, guid, len(message), copy_text(subject), iso(date),
            self.rng.randint(1, 3)))
        self.n_bodies += 1

    def deliver5(self, message, subject, date, rcpts, tier="live"):
        """5.x: the body once, zstd-compressed, by hash (bmsim.spool.body_path); the same rows."""
        guid = hashlib.sha1(message).hexdigest()
        top = spool.TREE["/var/spool/cyrus" if tier == "live" else "/var/spool/bm-hsm"]
        self.w.file(spool.body_path(guid, tier), spool.compress(message), top, date)
        for u in rcpts:
            u.last_uid += 1
            flags = ((spool.FLAG_SEEN if self.rng.random() < 0.75 else 0) |
                     (spool.FLAG_FLAGGED if self.rng.random() < 0.05 else 0) |
                     (spool.FLAG_ANSWERED if self.rng.random() < 0.10 else 0))
            self.records.write("%s\t%d\t%s\t%d\t%s\n" % (u.uid, u.last_uid, guid, flags, iso(date)))
            self.n_records += 1
        self.bodies.write("%d\t%s\t%d\t%s\t%s\t%d\n" % (
            self.n_bodies, guid, len(message), copy_text(subject), iso(date), self.rng.randint(1, 3)))
        self.n_bodies += 1

    def by_hash_skeleton(self):
        """SpoolStoreFactory.setupFolders: the 16 x 16 folders of both by_hash trees; bm-mail's staging."""
        for tier, top in (("live", "/var/spool/cyrus"), ("archive", "/var/spool/bm-hsm")):
            for d in spool.by_hash_dirs(tier):
                self.w.dir(d, spool.TREE[top])
        self.w.dir(spool.path(STAGING), spool.TREE["/var/spool/bm-mail"])

    def hsm5(self, content, count):
        """5.x archive tier: older messages whose bodies moved to /var/spool/bm-hsm/data/by_hash."""
        by_domain = [u for u in self.users]
        for n in range(count):
            u = self.rng.choice(by_domain)
            date = MAIL_START + self.rng.randrange(MAIL_SPAN // 4)
            message, subject = self.message(content, 100000 + n, date, [u])
            self.deliver5(message, subject, date, [u], tier="archive")

    def staging(self, content):
        """/var/spool/bm-mail/bodies (Bodies.STAGING): bodies being parsed; a few left on disk."""
        tree = spool.TREE["/var/spool/bm-mail"]
        for n in range(STAGING_FILES):
            self.w.file(spool.path("%s/%s.part" % (STAGING, "%040x" % self.rng.getrandbits(160))),
                        content.blob(self.rng.randrange(1024, 8192)), tree, self.date())

    def start_mailboxes(self):
        """Spool and metadata directories of every mailbox, and an empty cyrus.cache to append to."""
        for u in self.users:
            u.uidvalidity = self.rng.getrandbits(31) | 1
            for folder in (None,) + spool.FOLDERS:
                self.w.dir(spool.spool_dir(u.domain, u.login, folder), spool.MAIL_SPOOL)
                self.w.dir(spool.meta_dir(u.domain, u.login, folder), spool.CYRUS_LIB)
            cache = os.path.join(spool.meta_dir(u.domain, u.login), "cyrus.cache")
            spool.write_file(cache, spool.CACHE_MAGIC, spool.CYRUS_LIB, self.w.owners)

    def finish_mailboxes(self, content):
        """cyrus.index/header (and squat) of every mailbox, seen and subscription files,
        mailboxes.db. `content` is None for a fresh install (no mail, no squat, no seen state)."""
        lib, mailboxes = spool.CYRUS_LIB, []
        for u in self.users:
            last = MAIL_START + MAIL_SPAN if u.last_uid else TREE_TIME
            meta = spool.meta_dir(u.domain, u.login)
            header = spool.IndexHeader(u.last_uid, u.last_uid, u.uidvalidity, u.last_uid, last)
            self.w.file(os.path.join(meta, "cyrus.index"), spool.pack_header(header) + bytes(u.records),
                        lib, last)
            os.utime(os.path.join(meta, "cyrus.cache"), (last, last))
            self.w.count(lib, u.cache_size)
            for folder in (None,) + spool.FOLDERS:
                fmeta = spool.meta_dir(u.domain, u.login, folder)
                uniqueid = "%016x" % self.rng.getrandbits(64)
                self.w.file(os.path.join(fmeta, "cyrus.header"),
                            spool.header_file(u.domain, u.login, uniqueid), lib, TREE_TIME)
                mailboxes.append((spool.mailbox_name(u.domain, u.login, folder), u.address))
                if folder:
                    empty = spool.IndexHeader(0, 0, u.uidvalidity + 1, 0, 0)
                    self.w.file(os.path.join(fmeta, "cyrus.index"), spool.pack_header(empty), lib, TREE_TIME)
                    self.w.file(os.path.join(fmeta, "cyrus.cache"), spool.CACHE_MAGIC, lib, TREE_TIME)
            if content is None:
                continue
            self.w.file(os.path.join(meta, "cyrus.squat"), content.blob(256 + 48 * u.last_uid), lib, last)
            user_dir = spool.path("/var/lib/cyrus/domain/%s/user" % u.domain)
            seen = "%016x\t%d %d %d %s\n" % (u.uidvalidity, last, u.last_uid, last, uid_set(u.seen))
            self.w.file(os.path.join(user_dir, spool.disk_name(u.login) + ".seen"), seen.encode(), lib, last)
            subs = "".join("%s\t\n" % spool.mailbox_name(u.domain, u.login, f) for f in spool.FOLDERS)
            self.w.file(os.path.join(user_dir, spool.disk_name(u.login) + ".sub"), subs.encode(), lib, last)
        db = "".join("%s\t0 default %s lrswipkxtecdan admin0 lrswipkxtecdan\t\n" % m
                     for m in sorted(mailboxes))
        self.w.file(spool.path("/var/lib/cyrus/mailboxes.db"), db.encode(), lib, TREE_TIME)

    def cyrus_junk(self, content):
        """What Cyrus keeps besides mailboxes: its databases, and proc/, lock/, socket/ that
        BlueMind's backup excludes."""
        lib = spool.CYRUS_LIB
        for name in CYRUS_DBS:
            self.w.file(spool.path("/var/lib/cyrus/" + name), content.blob(self.rng.randrange(2048, 65536)),
                        lib, TREE_TIME)
        for _ in range(CYRUS_PROCS):
            pid = self.rng.randrange(1000, 60000)
            self.w.file(spool.path("/var/lib/cyrus/proc/%d" % pid), b"imap\t192.0.2.10\tuser\tINBOX\n",
                        lib, TREE_TIME)
        self.w.file(spool.path("/var/lib/cyrus/lock/mailboxes.db.lock"), b"", lib, TREE_TIME)
        for name in CYRUS_SOCKETS:
            self.w.socket(spool.path("/var/lib/cyrus/socket/" + name), lib, TREE_TIME)

    def sieve(self):
        tree = TREE["/var/spool/sieve"]
        for u in self.users:
            d = spool.path("/var/spool/sieve/domain/%s/%s" % (u.domain, spool.disk_name(u.login)))
            script = ('require ["fileinto", "vacation"];\n# generated by BlueMind for %s\n'
                      'if header :contains "X-Spam-Flag" "YES" {\n  fileinto "Junk";\n  stop;\n}\n'
                      % u.address)
            if self.rng.random() < 0.2:
                script += 'vacation :days 3 :subject "Absent" "Je suis absent(e).";\n'
            self.w.file(os.path.join(d, "bluemind.script"), script.encode(), tree, TREE_TIME)
            self.w.file(os.path.join(d, "bluemind.bc"),
                        b"CyrSBytecode\0\0\0\x06" + hashlib.sha1(script.encode()).digest() * 4,
                        tree, TREE_TIME)
            self.w.symlink("bluemind.bc", os.path.join(d, "defaultbc"), tree, TREE_TIME)

    def hsm(self, content, count):
        tree = TREE["/var/spool/bm-hsm"]
        for u in self.users:
            self.w.dir(spool.path("/var/spool/bm-hsm/snappy/user/%s/%s" % (u.domain, spool.disk_name(u.login))),
                       tree)
        for n in range(count):
            u = self.rng.choice(self.users)
            date = self.date()
            data = (b"\xff\x06\x00\x00sNaPpY" + b"Subject: archived %d\r\n\r\n" % n +
                    content.text_body(log_size(self.rng, 3000, 0.9, 200, 100000)))
            p = spool.path("/var/spool/bm-hsm/snappy/user/%s/%s/%s" % (
                u.domain, spool.disk_name(u.login), hashlib.sha1(data).hexdigest()))
            self.w.file(p, data, tree, date)

    def elasticsearch(self, content, count):
        tree = TREE["/var/spool/bm-elasticsearch"]
        base = "/var/spool/bm-elasticsearch/data/nodes/0"
        files = [(base + "/node.lock", 0), (base + "/_state/node-0.st", 120)]
        shards = []
        for name, n_shards in ES_INDICES:
            index = "%s/indices/%s" % (base, uuid.UUID(int=self.rng.getrandbits(128)).hex[:22])
            files.append((index + "/_state/state-1.st", 400 + len(name)))
            for shard in range(n_shards):
                s = "%s/%d" % (index, shard)
                shards.append(s)
                files += [(s + "/_state/state-1.st", 80), (s + "/index/write.lock", 0),
                          (s + "/index/segments_2", 300), (s + "/translog/translog.ckp", 48),
                          (s + "/translog/translog-1.tlog", self.rng.randrange(43, 200000))]
        segment = 0
        while len(files) < count:
            s = self.rng.choice(shards)
            for ext, size in ((".si", 360), (".cfe", 400),
                              (".cfs", log_size(self.rng, 12000, 1.2, 500, 5000000))):
                if len(files) < count:
                    files.append(("%s/index/_%s%s" % (s, base36(segment), ext), size))
            segment += 1
        for p, size in files:
            self.w.file(spool.path(p), content.blob(size), tree, self.date())

    def docs(self, content, count):
        tree = TREE["/var/spool/bm-docs"]
        for _ in range(count):
            name = self.uid()
            data = b"\x89PNG\r\n\x1a\n" + content.blob(log_size(self.rng, 8000, 0.8, 500, 300000))
            self.w.file(spool.path("/var/spool/bm-docs/%s/%s" % (name[:2], name)), data, tree, self.date())

    def filehosting(self, content, count):
        tree = TREE["/var/spool/bm-filehosting"]
        for u in self.users:
            self.w.dir(spool.path("/var/spool/bm-filehosting/%s/%s/Corbeille" % (u.domain, u.login)), tree)
        taken = set()
        for _ in range(count):
            u = self.rng.choice(self.users)
            sub = self.rng.choice(FILE_DIRS)
            name = self.rng.choice(FILE_NAMES)
            d = "/var/spool/bm-filehosting/%s/%s" % (u.domain, u.login) + ("/" + sub if sub else "")
            stem, _, ext = name.rpartition(".")
            n = 1
            while (d, name) in taken:
                n += 1
                name = "%s (%d).%s" % (stem, n, ext)
            taken.add((d, name))
            data = content.blob(log_size(self.rng, 20000, 1.3, 100, 3000000))
            self.w.file(spool.path(d + "/" + name), data, tree, self.date())

    def fresh_trees(self):
        """A freshly installed BlueMind: the admin's mailbox and sieve script, an empty ES node."""
        self.start_mailboxes()
        self.finish_mailboxes(None)
        self.sieve()
        es = TREE["/var/spool/bm-elasticsearch"]
        self.w.file(spool.path("/var/spool/bm-elasticsearch/data/nodes/0/node.lock"), b"", es, TREE_TIME)
        self.w.file(spool.path("/var/spool/bm-elasticsearch/data/nodes/0/_state/node-0.st"),
                    b"\x3f\xd7\x6c\x17\x0bnode-0", es, TREE_TIME)
        for sock in CYRUS_SOCKETS:
            self.w.socket(spool.path("/var/lib/cyrus/socket/" + sock), spool.CYRUS_LIB, TREE_TIME)
        for d in ("/var/lib/cyrus/proc", "/var/lib/cyrus/lock"):
            self.w.dir(spool.path(d), spool.CYRUS_LIB)
        self.w.dir(spool.path("/var/spool/bm-hsm/snappy/user"), TREE["/var/spool/bm-hsm"])

    def trees(self):
        wipe_trees(self.w.owners)
        self.make_users()
        if self.v5:
            self.trees5()
        elif self.fresh:
            self.fresh_trees()
        else:
            content = Content(self.rng)
            counts = self.plan()
            self.sieve()
            self.cyrus_junk(content)
            self.start_mailboxes()
            self.mail(content, counts["mail"])
            self.finish_mailboxes(content)
            self.hsm(content, counts["hsm"])
            self.elasticsearch(content, counts["es"])
            self.docs(content, counts["docs"])
            self.filehosting(content, counts["filehosting"])
            if self.w.files != self.files:
                raise AssertionError("seeded %d files, planned %d" % (self.w.files, self.files))
        self.w.finish()

    def trees5(self):
        """5.x: no Cyrus trees; bodies by hash in the live and archive tiers, bm-mail's staging."""
        self.by_hash_skeleton()
        es = TREE["/var/spool/bm-elasticsearch"]
        if self.fresh:
            self.w.file(spool.path("/var/spool/bm-elasticsearch/data/nodes/0/node.lock"), b"", es, TREE_TIME)
            self.w.file(spool.path("/var/spool/bm-elasticsearch/data/nodes/0/_state/node-0.st"),
                        b"\x3f\xd7\x6c\x17\x0bnode-0", es, TREE_TIME)
            return
        content = Content(self.rng)
        counts = self.plan()
        self.mail(content, counts["mail"])
        self.hsm5(content, counts["hsm"])
        self.staging(content)
        self.elasticsearch(content, counts["es"])
        self.docs(content, counts["docs"])
        self.filehosting(content, counts["filehosting"])
        if self.w.files != self.files:
            raise AssertionError("seeded %d files, planned %d" % (self.w.files, self.files))

    # --- databases ------------------------------------------------------------------------
    def databases(self, ini):
        ensure_databases(ini)
        with transaction(ini.get("db", "bj")) as cur:
            apply_schema(cur, "schema_extensions.sql")
            apply_schema(cur, "schema_bj.sql")
            if self.v5:
                apply_schema(cur, "schema_bj5.sql")
            self.directory_rows(cur, ini)
            if self.v5:
                self.keycloak_rows(cur)
        # Postfix as BlueMind leaves it for this directory: the repair's maps, mynetworks.
        api_postfix.install_maps(api_postfix.build_maps(*api.read_mail_directory()))
        api_postfix.apply_mynetworks(api.read_sysconf()["mynetworks"])
        with transaction("bj-data") as cur:
            apply_schema(cur, "schema_extensions.sql")
            apply_schema(cur, "schema_bjdata.sql")
            self.data_rows(cur)
            cur.execute("ANALYZE")

    def directory_rows(self, cur, ini):
        host = ini["host"]
        cur.execute("TRUNCATE t_mailbox_alias, t_directory_entry, t_domain, t_server, t_systemconf, rc_users "
                    "RESTART IDENTITY CASCADE")
        domains = [(GLOBAL_DOMAIN, GLOBAL_DOMAIN, [], True), (MAIN_DOMAIN, MAIN_DOMAIN,
                   [] if self.fresh else [MAIN_ALIAS], False)]
        if not self.fresh:
            domains.append((SECOND_DOMAIN, SECOND_DOMAIN, [], False))
        cur.executemany("INSERT INTO t_domain (name, label, aliases, global) VALUES (%s, %s, %s, %s)",
                        domains)
        cur.execute("INSERT INTO t_server (ip, fqdn, name, tags) VALUES (%s, %s, %s, %s)",
                    (host, FQDN, FQDN.split(".")[0], SERVER_TAGS))
        # BlueMind's system configuration keys (SysConfKeys: external_url, default_domain, ...),
        # with the server's own address as host and hz-member-address, as bm.ini has them.
        cur.execute("INSERT INTO t_systemconf (configuration) VALUES (hstore(ARRAY["
                    "'mynetworks', %s, 'fwAdditionalIPs', '', 'external_url', %s, 'default_domain', %s, "
                    "'host', %s, 'hz-member-address', %s]))",
                    (api_postfix.normalise_mynetworks(None, [host], api_postfix.host_ipv4_addresses()), ini.get("external-url", FQDN), MAIN_DOMAIN,
                     host, ini.get("hz-member-address", host)))
        cur.executemany("INSERT INTO t_directory_entry (uid, domain_uid, login, display_name) "
                        "VALUES (%s, %s, %s, %s)",
                        [(u.uid, u.domain, u.login, u.display) for u in self.users])
        # BlueMind's account type (an enum): every third user a simple account, the others full.
        cur.execute("UPDATE t_directory_entry SET account_type = CASE WHEN hashtext(uid) % 3 = 0 "
                    "THEN 'SIMPLE' ELSE 'FULL' END::t_directory_entry_account_type")
        cur.executemany("INSERT INTO t_mailbox_alias (domain_uid, alias, target_uid) VALUES (%s, %s, %s)",
                        [(d, a, u.uid) for d, a, u in self.aliases])
        # Webmail profiles (Roundcube's rc_users) of the users who opened the webmail: the IMAP host
        # is the server's address, as bm-webmail logs users in.
        cur.executemany("INSERT INTO rc_users (username, mail_host, language, preferences) VALUES (%s, %s, %s, %s)",
                        [(u.address, host, "en_US", 'a:1:{s:8:"timezone";s:4:"auto";}') for u in self.users])

    def keycloak_rows(self, cur):
        """5.x: users' passwords (USER_PASSWORD for all, admin0 too) and bm-keycloak's database with a
        realm and a client per domain, global.virt included, whose secrets go to bj (KeycloakHelper)."""
        cur.execute("INSERT INTO t_directory_entry (uid, domain_uid, login, display_name) "
                    "VALUES ('admin0_global.virt', %s, 'admin0', 'admin0') ON CONFLICT DO NOTHING",
                    (GLOBAL_DOMAIN,))
        uids = [u.uid for u in self.users] + ["admin0_global.virt"]
        cur.executemany("INSERT INTO t_domain_user (uid, password, password_algorithm) VALUES (%s, %s, %s)",
                        [(uid, keycloak.hash_password(USER_PASSWORD), "PBKDF2") for uid in uids])
        keycloak.ensure_database(run_psql, quote_literal, quote_ident)
        keycloak.seed_realms(cur)

    def data_rows(self, cur):
        # alone first: its truncate trigger empties the counters, which another TRUNCATE holds
        cur.execute("TRUNCATE t_container_item RESTART IDENTITY")
        cur.execute("TRUNCATE t_mailbox_record, t_message_body, t_changeset, "
                    "t_container_changelog, t_container_changeset, t_conversationreference, "
                    "t_container_acl, v_container_item_counter, t_container RESTART IDENTITY")
        if self.fresh:
            return
        target = self.files * DB_BYTES_PER_FILE
        # Incompressible filler blocks (base64 of md5 chains), so sizes on disk follow the target.
        cur.execute("CREATE TEMP TABLE seed_block (id int PRIMARY KEY, data text NOT NULL)")
        cur.execute("INSERT INTO seed_block SELECT i, replace(encode(decode(string_agg("
                    "md5(%s || ':' || i || ':' || j), '' ORDER BY j), 'hex'), 'base64'), E'\\n', '') "
                    "FROM generate_series(0, %s - 1) i, generate_series(1, %s) j GROUP BY i",
                    (str(self.seed), FILL_BLOCKS, FILL_BLOCK_CHARS * 3 // 4 // 16))
        body_blocks = max(1, round(target * BODY_SHARE / max(1, self.n_bodies) / FILL_BLOCK_CHARS / 2))
        cur.execute("CREATE TEMP TABLE seed_body (n int, guid text, size int, subject text, "
                    "created timestamptz, parts int)")
        self.bodies.seek(0)
        cur.copy_from(self.bodies, "seed_body")
        cur.execute(
            "INSERT INTO t_message_body (guid, size, subject, structure, created) "
            "SELECT guid, size, subject, json_build_object('mime', CASE parts WHEN 1 THEN 'text/plain' "
            "ELSE 'multipart/alternative' END, 'size', size, 'parts', parts, 'preview', "
            "(SELECT string_agg(b.data, '' ORDER BY k) FROM generate_series(0, %s * parts - 1) k "
            "JOIN seed_block b ON b.id = (s.n * 7 + k * 13) %% %s))::text, created "
            "FROM seed_body s ORDER BY n", (body_blocks, FILL_BLOCKS))
        self.records.seek(0)
        cur.copy_from(self.records, "t_mailbox_record",
                      columns=("mailbox_uid", "imap_uid", "message_body_guid", "system_flags",
                               "internal_date"))
        cur.execute("INSERT INTO t_changeset (container_uid, item_uid, version, type, date) "
                    "SELECT 'mbox_records_' || r.mailbox_uid, r.imap_uid::text, r.imap_uid, 0, r.internal_date "
                    "FROM t_mailbox_record r ORDER BY r.mailbox_uid, r.imap_uid")
        self.container_items(cur, target)

    def container_items(self, cur, target):
        """Calendars and address books of every user; a third of the items were updated once."""
        n_items = len(self.users) * (EVENTS_PER_USER + CONTACTS_PER_USER)
        blocks = max(1, round(target * ITEM_SHARE / n_items / FILL_BLOCK_CHARS))
        cur.execute("CREATE TEMP TABLE seed_user (n int, uid text, display text)")
        cur.executemany("INSERT INTO seed_user VALUES (%s, %s, %s)",
                        [(i, u.uid, u.display) for i, u in enumerate(self.users)])
        cur.execute(
            "INSERT INTO t_container_item (container_uid, uid, version, flags, value) "
            "SELECT c.container, md5(c.container || ':' || i)::uuid::text, 1 + (i %% 3 = 0)::int, "
            "(i %% 4 = 0)::int + 2 * (i %% 9 = 0)::int, "
            "c.head || (SELECT string_agg(b.data, '' ORDER BY k) FROM generate_series(0, %s - 1) k "
            "JOIN seed_block b ON b.id = (u.n * 31 + i * 7 + k * 13) %% %s) || c.tail "
            "FROM seed_user u CROSS JOIN LATERAL (VALUES "
            "('calendar:Default:' || u.uid, %s, 'BEGIN:VCALENDAR' || chr(10) || 'BEGIN:VEVENT' || chr(10) "
            "|| 'ORGANIZER;CN=' || u.display || chr(10) || 'DESCRIPTION:', chr(10) || 'END:VEVENT' "
            "|| chr(10) || 'END:VCALENDAR'), "
            "('book:Contacts_' || u.uid, %s, 'BEGIN:VCARD' || chr(10) || 'VERSION:3.0' || chr(10) "
            "|| 'NOTE:', chr(10) || 'END:VCARD')) AS c(container, items, head, tail) "
            "CROSS JOIN LATERAL generate_series(1, c.items) i ORDER BY u.n, c.container, i",
            (blocks, FILL_BLOCKS, EVENTS_PER_USER, CONTACTS_PER_USER))
        cur.execute("INSERT INTO t_changeset (container_uid, item_uid, version, type, date) "
                    "SELECT container_uid, uid, v, (v > 1)::int, "
                    "to_timestamp(%s + (id * 7919 + v * 86400) %% %s) "
                    "FROM t_container_item CROSS JOIN LATERAL generate_series(1, version) v "
                    "ORDER BY id, v", (MAIL_START, MAIL_SPAN))

    def summary(self, seconds, ini=None):
        out = {"scale_files": self.files, "fresh": self.fresh, "seed": self.seed,
               "files": self.w.files, "bytes": self.w.bytes, "hardlinks": self.w.hardlinks,
               "users": len(self.users), "messages": self.n_bodies, "records": self.n_records,
               "trees": self.w.per_tree}
        if ini is not None:
            out["db_bytes"] = {}
            for db in (ini.get("db", "bj"), "bj-data"):
                with transaction(db) as cur:
                    cur.execute("SELECT pg_database_size(current_database())")
                    out["db_bytes"][db] = cur.fetchone()[0]
        out["seconds"] = round(seconds, 1)
        return out


@contextlib.contextmanager
def transaction(db):
    """A cursor in one transaction of database `db` (committed at the end, closed in any case)."""
    conn = common.connect(db)
    try:
        with conn, conn.cursor() as cur:
            yield cur
    finally:
        conn.close()


def iso(ts):
    return time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime(ts))


def copy_text(value):
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def base36(n):
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if not n:
            return out


def uid_set(uids):
    """IMAP sequence set of sorted uids: 1:4,7,9:10."""
    ranges = []
    for uid in uids:
        if ranges and ranges[-1][1] == uid - 1:
            ranges[-1][1] = uid
        else:
            ranges.append([uid, uid])
    return ",".join("%d" % a if a == b else "%d:%d" % (a, b) for a, b in ranges)


def wipe_trees(owners):
    """Delete the contents of the seven trees; keep (or create) their top directories."""
    for t in spool.TREES:
        top = spool.path(t.path)
        os.makedirs(top, exist_ok=True)
        for entry in os.scandir(top):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
        os.chmod(top, t.top_mode)
        owners.lchown(top, t)


def run_psql(sql, db="postgres"):
    """psql as the postgres superuser (peer authentication) in `db`, stops on the first error."""
    return subprocess.run(["runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-tA",
                           "-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql],
                          check=True, capture_output=True, text=True).stdout.strip()


def quote_literal(value):
    return "'" + value.replace("'", "''") + "'"


def quote_ident(value):
    return '"' + value.replace('"', '""') + '"'


def ensure_databases(ini):
    """Role bj (superuser, as BlueMind's install makes it) and databases bj, bj-data (UTF8, the
    en_US.UTF-8 locale, GMT). A database left by an older seed with another locale, or with an
    extension outside the schema BlueMind puts it in, is dropped and made again."""
    role, password = ini.get("user", "bj"), ini.get("password", "bj")
    verb = "ALTER" if run_psql("SELECT 1 FROM pg_roles WHERE rolname = %s" % quote_literal(role)) \
        else "CREATE"
    run_psql("%s ROLE %s LOGIN SUPERUSER PASSWORD %s" % (verb, quote_ident(role), quote_literal(password)))
    for db in (ini.get("db", "bj"), "bj-data"):
        locale = run_psql("SELECT datcollate || ' ' || datctype FROM pg_database WHERE datname = %s"
                          % quote_literal(db))
        if locale and (locale != "%s %s" % (DB_LOCALE, DB_LOCALE) or misplaced_extensions(db)):
            run_psql("DROP DATABASE %s WITH (FORCE)" % quote_ident(db))
            locale = ""
        if not locale:
            run_psql("CREATE DATABASE %s OWNER %s ENCODING 'UTF8' TEMPLATE template0 LC_COLLATE %s "
                     "LC_CTYPE %s" % (quote_ident(db), quote_ident(role), quote_literal(DB_LOCALE),
                                      quote_literal(DB_LOCALE)))
        run_psql("ALTER DATABASE %s OWNER TO %s" % (quote_ident(db), quote_ident(role)))
        run_psql("ALTER DATABASE %s SET TIMEZONE TO 'GMT'" % quote_ident(db))


def misplaced_extensions(db):
    """Extensions of `db` that BlueMind puts in pg_catalog but that sit elsewhere (older seeds)."""
    return run_psql("SELECT e.extname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
                    "WHERE e.extname IN ('hstore', 'btree_gin', 'ltree', 'unaccent') "
                    "AND n.nspname <> 'pg_catalog'", db).split()


def apply_schema(cur, name):
    with open(os.path.join(os.path.dirname(__file__), name), encoding="utf-8") as fh:
        cur.execute(fh.read())


def parse_scale(value):
    if value in SCALES:
        return SCALES[value]
    if value.isdigit() and int(value) > 0:
        return int(value)
    raise argparse.ArgumentTypeError("scale is s, m, l or a number of files, not %r" % value)


def address_files(host, cyrus=True):
    """What names the server's address outside bm.ini and the database: the 4.x Cyrus replication
    settings (core_sync_host, the core that receives the replicated mail) and the backup spool,
    /var/backups/bluemind/dp_spool/rsync/<server address> (dataprotect's BackupPath)."""
    if not cyrus:
        if os.path.exists(CYRUS_REPLICATION):
            os.unlink(CYRUS_REPLICATION)
    else:
        common.write_atomic(CYRUS_REPLICATION, "# bm-cyrus-replication (simulated: only the key the "
                            "address change touches)\ncore_sync_host: %s\n" % host)
    shutil.rmtree(BACKUP_SPOOL, ignore_errors=True)  # a reseed starts over (a migration renames it)
    spool_dir = os.path.join(BACKUP_SPOOL, host)
    os.makedirs(os.path.join(spool_dir, "bm", "core"), exist_ok=True)
    common.write_atomic(os.path.join(spool_dir, "bm", "core", "generation.txt"), "1\n")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python3 -m bmsim.seed", description=__doc__.split("\n")[0])
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--scale", type=parse_scale, default="s",
                      help="s (5k files), m (100k), l (1M) or a number of files (default s)")
    kind.add_argument("--fresh", action="store_true", help="a freshly installed BlueMind (the target)")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument("--files-only", action="store_true",
                        help="only the trees (under BMSIM_ROOT); no database, no postfix")
    args = parser.parse_args(argv)
    started = time.monotonic()
    os.umask(0o022)
    seeder = Seeder(args.seed, 0 if args.fresh else args.scale, args.fresh)
    seeder.trees()
    ini = None
    if not args.files_only:
        ini = common.read_bm_ini()
        if "host" not in ini:
            parser.error("%s has no host in [global]: is this a lab host?" % common.BM_INI)
        seeder.databases(ini)
        if not seeder.v5:  # 5.x has no Cyrus replication (no Cyrus)
            address_files(ini["host"])
        else:
            address_files(ini["host"], cyrus=False)
        # Beside the trees: hollowed spool, nginx vhosts, firewall script, plugin packages.
        domains = [MAIN_DOMAIN] if args.fresh else [MAIN_DOMAIN, SECOND_DOMAIN]
        settings = [(MAIN_DOMAIN, ini.get("external-url", FQDN))]
        settings += [] if args.fresh else [(SECOND_DOMAIN, "mail." + SECOND_DOMAIN)]
        common.log_event("seed", event="extras", **extras.seed(ini, domains, settings, args.seed))
    summary = seeder.summary(time.monotonic() - started, ini)
    common.log_event("seed", **summary)
    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    sys.exit(main())
