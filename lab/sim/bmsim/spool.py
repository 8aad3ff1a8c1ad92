"""Layout of the simulated data trees, shared by the seeder, LMTP delivery and user activity.

Cyrus 2.x with `virtdomains: userid`, `unixhierarchysep: 1` and a metadata partition:
- message files: /var/spool/cyrus/data/<domain>/<user>/<uid>.  (a message delivered to several
  mailboxes is one inode hard-linked into each: single instance store)
- per-mailbox metadata: /var/lib/cyrus/meta/<domain>/<user>[/<folder>]/cyrus.{header,index,cache,squat}
- per-mailbox lock files: /var/lib/cyrus/lock/<domain>/<user>.lock (lock/ is excluded by backups)
A dot in a user name is stored as `^` on disk, as Cyrus does with the unix hierarchy separator.

cyrus.index is a fixed-size header followed by fixed-size records (one per message, by uid): a
flag change rewrites one record and the header in place (same file size, new mtime); an expunge
rewrites the whole file under a new name and renames it over the old one, as Cyrus does.

BMSIM_ROOT (default "/") prefixes every tree path, so trees can be built in a scratch directory.
"""
import collections
import fcntl
import grp
import os
import pwd
import struct

from bmsim import common

ROOT = os.environ.get("BMSIM_ROOT", "/")

Tree = collections.namedtuple("Tree", "path user group top_mode dir_mode file_mode")

# The seven trees of the migration procedure, with BlueMind's owners and Cyrus-like modes.
TREES_4 = (
    Tree("/var/spool/cyrus", "cyrus", "mail", 0o750, 0o700, 0o600),
    Tree("/var/lib/cyrus", "cyrus", "mail", 0o750, 0o700, 0o600),
    Tree("/var/spool/bm-hsm", "cyrus", "mail", 0o750, 0o700, 0o600),
    Tree("/var/spool/sieve", "cyrus", "mail", 0o750, 0o700, 0o600),
    Tree("/var/spool/bm-elasticsearch", "elasticsearch", "elasticsearch", 0o750, 0o755, 0o644),
    Tree("/var/spool/bm-docs", "root", "root", 0o755, 0o755, 0o644),
    Tree("/var/spool/bm-filehosting", "root", "root", 0o755, 0o755, 0o644),
)
# BlueMind 5.x (bluemindfork master): no Cyrus, so no /var/lib/cyrus nor /var/spool/sieve. Message
# bodies are zstd files by hash under /var/spool/cyrus/data/by_hash (live) and
# /var/spool/bm-hsm/data/by_hash (archive tier) (SpoolBackingStore.livePath/archivePath);
# /var/spool/bm-mail/bodies is a staging folder. Owners and modes on 5.x are unconfirmed
# (lab/FIDELITY.md row 5x-layout): the lab keeps the 4.x ones, so owner mapping stays tested.
TREES_5 = (
    Tree("/var/spool/cyrus", "cyrus", "mail", 0o750, 0o700, 0o600),
    Tree("/var/spool/bm-hsm", "cyrus", "mail", 0o750, 0o700, 0o600),
    Tree("/var/spool/bm-mail", "root", "root", 0o755, 0o755, 0o644),
    Tree("/var/spool/bm-elasticsearch", "elasticsearch", "elasticsearch", 0o750, 0o755, 0o644),
    Tree("/var/spool/bm-docs", "root", "root", 0o755, 0o755, 0o644),
    Tree("/var/spool/bm-filehosting", "root", "root", 0o755, 0o755, 0o644),
)
MAJOR = common.major()
TREES = TREES_5 if MAJOR >= 5 else TREES_4
TREE = {t.path: t for t in TREES_4 + TREES_5}
MAIL_SPOOL = TREE["/var/spool/cyrus"]
CYRUS_LIB = TREE["/var/lib/cyrus"]

FOLDERS = ("Sent", "Trash", "Drafts")  # besides INBOX; they keep no messages in the lab

# IMAP system flags, as Cyrus stores them (also t_mailbox_record.system_flags).
FLAG_ANSWERED, FLAG_FLAGGED, FLAG_DELETED, FLAG_DRAFT, FLAG_SEEN = 1, 2, 4, 8, 16

INDEX_MAGIC = b"BMSIMIDX"
INDEX_VERSION = 1
# magic, version, header size, record size, records, last uid, uidvalidity, highest modseq,
# last append date
HEADER = struct.Struct(">8sIIIIIIQQ16x")
# uid, internal date, size, system flags, guid (sha1), modseq, cache offset, last updated
RECORD = struct.Struct(">IQII20sQQQ")
IndexHeader = collections.namedtuple(
    "IndexHeader", "records last_uid uidvalidity modseq last_append")
Record = collections.namedtuple(
    "Record", "uid internal_date size flags guid modseq cache_offset last_updated")

CACHE_MAGIC = struct.pack(">I", 1)  # cyrus.cache starts with its generation number
HEADER_TEXT = (
    b"\xa1\x02\x8b\x0d"
    b"Cyrus mailbox header\n"
    b"\"The best thing about this system was that it had lots of goals.\"\n"
    b"\t--Jim Morris on Andrew\n"
)


def path(abs_path):
    """Where an absolute tree path lives under BMSIM_ROOT."""
    return os.path.join(ROOT, abs_path.lstrip("/"))


def disk_name(login):
    return login.replace(".", "^")


def mailbox_name(domain, login, folder=None):
    """Cyrus' internal name: lab.test!user.jean^dupont[.Sent]."""
    name = "%s!user.%s" % (domain, disk_name(login))
    return name + "." + folder if folder else name


def spool_dir(domain, login, folder=None):
    parts = ["/var/spool/cyrus/data", domain, disk_name(login)] + ([folder] if folder else [])
    return path("/".join(parts))


def meta_dir(domain, login, folder=None):
    parts = ["/var/lib/cyrus/meta", domain, disk_name(login)] + ([folder] if folder else [])
    return path("/".join(parts))


def message_path(domain, login, uid):
    return os.path.join(spool_dir(domain, login), "%d." % uid)


def index_path(domain, login):
    return os.path.join(meta_dir(domain, login), "cyrus.index")


def cache_path(domain, login):
    return os.path.join(meta_dir(domain, login), "cyrus.cache")


class Owners:
    """uid/gid by name (they differ between origin and target); chown only when running as root."""

    def __init__(self):
        self._ids = {}
        self.active = os.geteuid() == 0

    def ids(self, tree):
        key = (tree.user, tree.group)
        if key not in self._ids:
            self._ids[key] = (pwd.getpwnam(tree.user).pw_uid, grp.getgrnam(tree.group).gr_gid)
        return self._ids[key]

    def fchown(self, fd, tree):
        if self.active:
            os.fchown(fd, *self.ids(tree))

    def lchown(self, p, tree):
        if self.active:
            os.lchown(p, *self.ids(tree))


def make_dirs(p, tree, owners, created=None):
    """mkdir -p inside a tree with the tree's owner and directory mode; `created` collects new dirs."""
    if os.path.isdir(p):
        return
    make_dirs(os.path.dirname(p), tree, owners, created)
    os.mkdir(p, tree.dir_mode)
    os.chmod(p, tree.dir_mode)  # whatever the umask
    owners.lchown(p, tree)
    if created is not None:
        created.append(p)


def write_file(p, data, tree, owners, mtime=None):
    """Create a file (it must not exist) with the tree's owner and mode; mtime None = now."""
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, tree.file_mode)
    try:
        os.fchmod(fd, tree.file_mode)
        os.write(fd, data)
        owners.fchown(fd, tree)
        if mtime is not None:
            os.utime(fd, (mtime, mtime))
    finally:
        os.close(fd)


def replace_file(p, data, tree, owners):
    """Write a file under a temporary name and rename it over `p` (a new inode, as Cyrus does)."""
    tmp = p + ".NEW"
    if os.path.exists(tmp):
        os.unlink(tmp)
    write_file(tmp, data, tree, owners)
    os.rename(tmp, p)


class MailboxLock:
    """Exclusive lock of one mailbox (flock on its file in /var/lib/cyrus/lock), across processes."""

    def __init__(self, domain, login, owners):
        self.path = path("/var/lib/cyrus/lock/%s/%s.lock" % (domain, disk_name(login)))
        self.owners = owners
        self.fd = None

    def __enter__(self):
        make_dirs(os.path.dirname(self.path), CYRUS_LIB, self.owners)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, CYRUS_LIB.file_mode)
        self.owners.fchown(self.fd, CYRUS_LIB)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        os.close(self.fd)  # releases the lock


# --- cyrus.index -----------------------------------------------------------------------------

def pack_header(h):
    return HEADER.pack(INDEX_MAGIC, INDEX_VERSION, HEADER.size, RECORD.size, h.records,
                       h.last_uid, h.uidvalidity, h.modseq, h.last_append)


def unpack_header(data):
    magic, version, hsize, rsize, records, last_uid, uidvalidity, modseq, last_append = \
        HEADER.unpack_from(data)
    if magic != INDEX_MAGIC or version != INDEX_VERSION or (hsize, rsize) != (HEADER.size, RECORD.size):
        raise ValueError("not a simulator cyrus.index (magic %r, version %d)" % (magic, version))
    return IndexHeader(records, last_uid, uidvalidity, modseq, last_append)


def pack_record(r):
    return RECORD.pack(r.uid, r.internal_date, r.size, r.flags, r.guid, r.modseq,
                       r.cache_offset, r.last_updated)


def index_bytes(header, records):
    return pack_header(header) + b"".join(pack_record(r) for r in records)


def read_index(p):
    """(IndexHeader, [Record]) of a cyrus.index file."""
    with open(p, "rb") as fh:
        data = fh.read()
    header = unpack_header(data)
    records = [Record(*RECORD.unpack_from(data, HEADER.size + i * RECORD.size))
               for i in range(header.records)]
    return header, records


def read_index_header(p):
    with open(p, "rb") as fh:
        return unpack_header(fh.read(HEADER.size))


def append_record(p, record):
    """Append one record and update the header in place (the caller holds the mailbox lock)."""
    with open(p, "r+b") as fh:
        h = unpack_header(fh.read(HEADER.size))
        fh.seek(HEADER.size + h.records * RECORD.size)
        fh.write(pack_record(record))
        fh.truncate()
        fh.seek(0)
        fh.write(pack_header(h._replace(records=h.records + 1, last_uid=max(h.last_uid, record.uid),
                                        modseq=max(h.modseq, record.modseq),
                                        last_append=record.internal_date)))


def set_flags(p, uid, flags, now):
    """Rewrite the record of `uid` in place with new flags and a new modseq; returns the old flags.
    The file keeps its size; its mtime changes. The caller holds the mailbox lock."""
    with open(p, "r+b") as fh:
        h = unpack_header(fh.read(HEADER.size))
        for i in range(h.records):
            offset = HEADER.size + i * RECORD.size
            fh.seek(offset)
            r = Record(*RECORD.unpack(fh.read(RECORD.size)))
            if r.uid == uid:
                modseq = h.modseq + 1
                fh.seek(offset)
                fh.write(pack_record(r._replace(flags=flags, modseq=modseq, last_updated=now)))
                fh.seek(0)
                fh.write(pack_header(h._replace(modseq=modseq)))
                return r.flags
    raise KeyError("uid %d not in %s" % (uid, p))


def expunge(p, uids, owners):
    """Drop the records of `uids` by rewriting the index (new file renamed over the old one)."""
    h, records = read_index(p)
    kept = [r for r in records if r.uid not in uids]
    replace_file(p, index_bytes(h._replace(records=len(kept), modseq=h.modseq + 1), kept),
                 CYRUS_LIB, owners)


# --- other Cyrus metadata --------------------------------------------------------------------

def cache_entry(message):
    """cyrus.cache entry of a message: its header block, length-prefixed and padded to 4 bytes."""
    end = message.find(b"\r\n\r\n")
    headers = message[: end + 2 if end >= 0 else len(message)][:4096]
    pad = (-len(headers)) % 4
    return struct.pack(">I", len(headers)) + headers + b"\0" * pad


def append_cache(p, message):
    """Append a message's cache entry; returns its offset (the caller holds the mailbox lock)."""
    entry = cache_entry(message)
    with open(p, "ab") as fh:
        offset = fh.tell()
        fh.write(entry)
    return offset


def header_file(domain, login, uniqueid):
    """cyrus.header: the fixed banner, the quota root (the user's INBOX) and the unique id, then
    the user flag names (none)."""
    return HEADER_TEXT + ("%s\t%s\n\n" % (mailbox_name(domain, login), uniqueid)).encode()


def ensure_mailbox(domain, login, owners, uidvalidity):
    """Create a mailbox's spool dir and metadata (empty index, header, cache) when missing."""
    make_dirs(spool_dir(domain, login), MAIL_SPOOL, owners)
    meta = meta_dir(domain, login)
    make_dirs(meta, CYRUS_LIB, owners)
    empty_index = index_bytes(IndexHeader(0, 0, uidvalidity, 0, 0), [])
    for name, data in (("cyrus.header", header_file(domain, login, "%016x" % uidvalidity)),
                       ("cyrus.cache", CACHE_MAGIC), ("cyrus.index", empty_index)):
        if not os.path.exists(os.path.join(meta, name)):
            write_file(os.path.join(meta, name), data, CYRUS_LIB, owners)


# --- BlueMind 5.x bodies: zstd files by hash ---------------------------------------------------
# bluemindfork master parent/imap/net.bluemind.sds.store.cyrusspool: SpoolBackingStore writes a body
# as /var/spool/cyrus/data/by_hash/<g0>/<g1>/<guid>.zst (ZstdOutputStream, level -3), the archive
# tier as /var/spool/bm-hsm/data/by_hash/<g0>/<g1>/<guid>.zst; SpoolStoreFactory.setupFolders makes
# the 16 x 16 folders <0-9a-f>/<0-9a-f> of both. The guid is the SHA-1 of the message in hex
# (FreezableDeliveryContent: HashingOutputStream(Hashing.sha1())).
BY_HASH = {"live": "/var/spool/cyrus/data/by_hash", "archive": "/var/spool/bm-hsm/data/by_hash"}
ZSTD_LEVEL = -3
HEX = "0123456789abcdef"


def body_path(guid, tier="live"):
    return path("%s/%s/%s/%s.zst" % (BY_HASH[tier], guid[0], guid[1], guid))


def by_hash_dirs(tier="live"):
    return [path("%s/%s/%s" % (BY_HASH[tier], a, b)) for a in HEX for b in HEX]


def compress(data):
    """zstd frame of `data` (python3-zstandard, else the zstd command), at BlueMind's level -3."""
    try:
        import zstandard
    except ImportError:
        import subprocess
        return subprocess.run(["zstd", "-q", "-c", "--fast=3"], input=data, stdout=subprocess.PIPE,
                              check=True).stdout
    try:
        return zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(data)
    except zstandard.ZstdError:  # an old binding without negative levels
        return zstandard.ZstdCompressor(level=1).compress(data)


def decompress(data):
    try:
        import zstandard
    except ImportError:
        import subprocess
        return subprocess.run(["zstd", "-q", "-d", "-c"], input=data, stdout=subprocess.PIPE,
                              check=True).stdout
    return zstandard.ZstdDecompressor().decompressobj().decompress(data)
