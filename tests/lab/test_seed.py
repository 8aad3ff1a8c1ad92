"""The seeder (`bm-sim seed`, bmsim.seed) in the lab: reproducible trees and rows at scale s,
Cyrus-like layout (hard links, owners by name, modes, special files), rows consistent with files,
databases as BlueMind's install makes them, and the fresh target."""
import json

import pytest

pytestmark = pytest.mark.bluemind(4, reason='the Cyrus spool, metadata and sieve trees')

TREES = ("/var/spool/cyrus", "/var/lib/cyrus", "/var/spool/bm-hsm", "/var/spool/sieve",
         "/var/spool/bm-elasticsearch", "/var/spool/bm-docs", "/var/spool/bm-filehosting")
CYRUS_TREES = TREES[:4]
SEED_S_FILES = 5000

# Every entry of the trees (type, mode, owner by name, size, mtime, link target, link count; no
# size for directories: it depends on their history) and a checksum of every regular file.
LISTING = (
    "cd / && find {trees} \\( -type d -printf '%p d %m %u %g %T@\\n' \\) "
    "-o -printf '%p %y %m %u %g %s %T@ %l %n\\n' | LC_ALL=C sort && "
    "find {trees} -type f -print0 | LC_ALL=C sort -z | xargs -0 sha1sum"
).format(trees=" ".join(t.lstrip("/") for t in TREES))

DB_DIGEST = {
    "bj": ["t_domain", "t_server", "t_systemconf", "t_directory_entry", "t_mailbox_alias"],
    "bj-data": ["t_message_body", "t_mailbox_record", "t_container_item", "t_changeset"],
}

# Run inside the host: per mailbox, spool files == cyrus.index records == t_mailbox_record rows.
CONSISTENCY = r"""
import json, os, sys
sys.path.insert(0, "/opt/bmsim")
from bmsim import common, spool
db = {}
with common.connect("bj") as c, c.cursor() as cur:
    cur.execute("SELECT uid, domain_uid, login FROM t_directory_entry")
    users = cur.fetchall()
with common.connect("bj-data") as c, c.cursor() as cur:
    cur.execute("SELECT mailbox_uid, imap_uid, system_flags, message_body_guid FROM t_mailbox_record")
    for mailbox, uid, flags, guid in cur.fetchall():
        db.setdefault(mailbox, {})[uid] = (flags, guid)
bad = []
for uid, domain, login in users:
    files = sorted(int(n[:-1]) for n in os.listdir(spool.spool_dir(domain, login)) if n.endswith("."))
    header, records = spool.read_index(spool.index_path(domain, login))
    index = {r.uid: (r.flags, r.guid.hex()) for r in records}
    rows = db.get(uid, {})
    if not (files == sorted(index) == sorted(rows) and index == rows and header.records == len(files)):
        bad.append("%s@%s: %d files, %d records, %d rows" % (login, domain, len(files), len(index), len(rows)))
print(json.dumps({"users": len(users), "bad": bad}))
"""


def psql(host, db, sql):
    out = host.run("PGPASSWORD=bj psql -X -h 127.0.0.1 -U bj -d %s -tA -v ON_ERROR_STOP=1 -c \"%s\""
                   % (db, sql.replace('"', '\\"')))
    return out.stdout.strip()


def db_digest(host):
    return {db: {t: psql(host, db, "SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) "
                                   "FROM %s t" % t) for t in tables}
            for db, tables in DB_DIGEST.items()}


def seed(host, args):
    out = host.run("bm-sim seed %s" % args, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def seeded(lab):
    """Scale s seeded twice in the origin (same seed): summaries, tree listings, table digests."""
    runs = []
    for _attempt in range(2):
        summary = seed(lab.origin, "--scale s --seed 42")
        listing = lab.origin.run(LISTING, timeout=300).stdout
        runs.append({"summary": summary, "listing": listing, "db": db_digest(lab.origin)})
    return runs


def test_seed_s_is_reproducible(seeded):
    first, second = seeded
    if first["listing"] != second["listing"]:
        diff = [line for line in first["listing"].splitlines()
                if line not in set(second["listing"].splitlines())][:10]
        pytest.fail("two seeds of scale s gave different trees, first differences: %s" % diff)
    assert first["db"] == second["db"]
    for key in ("files", "bytes", "hardlinks", "users", "messages", "records", "trees"):
        assert first["summary"][key] == second["summary"][key], key


def test_seed_s_summary(seeded):
    summary = seeded[-1]["summary"]
    assert summary["files"] == SEED_S_FILES
    assert summary["seconds"] > 0  # how long it takes is the bench's business, not a test's
    assert all(summary["trees"][t]["files"] > 0 for t in TREES)
    assert summary["db_bytes"]["bj-data"] > summary["db_bytes"]["bj"] > 0


def test_single_instance_store_hard_links(lab, seeded):
    out = lab.origin.run("find /var/spool/cyrus/data -type f -name '*.' -printf '%i %n\\n'").stdout.split("\n")
    entries = [line.split() for line in out if line]
    inodes = {inode for inode, _links in entries}
    shared = [i for i, n in entries if int(n) > 1]
    assert shared, "no message is hard-linked into several mailboxes"
    assert len(entries) - len(inodes) == seeded[-1]["summary"]["hardlinks"]


def test_owners_by_name_and_modes(lab, seeded):
    for tree in CYRUS_TREES:
        assert lab.origin.run("find %s ! -user cyrus -o ! -group mail | head -5" % tree).stdout == ""
    assert lab.origin.run("find /var/spool/bm-elasticsearch ! -user elasticsearch -o ! -group elasticsearch"
                          " | head -5").stdout == ""
    # Cyrus modes: 0600 files, 0700 directories in the mail spool
    assert lab.origin.run("find /var/spool/cyrus/data \\( -type f ! -perm 600 \\) -o "
                          "\\( -type d ! -perm 700 \\) | head -5").stdout == ""
    ids = lab.origin.run("stat -c '%U %u' /var/spool/cyrus/data; "
                         "stat -c '%U %u' /var/spool/bm-elasticsearch/data").stdout.split()
    assert ids[0] == "cyrus" and ids[2] == "elasticsearch"


def test_special_files(lab, seeded):
    run = lab.origin.run
    assert run("readlink /var/spool/sieve/domain/lab.test/admin/defaultbc").stdout.strip() == "bluemind.bc"
    assert run("find /var/lib/cyrus/socket -type s | wc -l").stdout.strip() == "2"
    for name in ("proc", "lock"):
        assert int(run("find /var/lib/cyrus/%s -type f | wc -l" % name).stdout) > 0
    assert int(run("find /var/lib/cyrus/meta -name cyrus.squat | wc -l").stdout) > 0
    assert int(run("find /var/spool/cyrus/data -type d -empty | wc -l").stdout) > 0
    names = run("find /var/spool/bm-filehosting -type f -printf '%f\\n'").stdout
    assert "Réunion budget 2026.pdf" in names and "l'équipe — organigramme.png" in names
    assert run("test -s /var/lib/cyrus/mailboxes.db && echo ok").stdout.strip() == "ok"


def test_rows_match_files(lab, seeded):
    summary = seeded[-1]["summary"]
    out = json.loads(lab.origin.run("python3 - <<'EOF'\n%s\nEOF" % CONSISTENCY).stdout)
    assert out["users"] == summary["users"]
    assert out["bad"] == []
    files = int(lab.origin.run("find /var/spool/cyrus/data -type f -name '*.' | wc -l").stdout)
    inodes = int(lab.origin.run("find /var/spool/cyrus/data -type f -name '*.' -printf '%i\\n'"
                                " | sort -u | wc -l").stdout)
    assert int(psql(lab.origin, "bj-data", "SELECT count(*) FROM t_mailbox_record")) == files
    assert int(psql(lab.origin, "bj-data", "SELECT count(*) FROM t_message_body")) == inodes
    assert int(psql(lab.origin, "bj-data", "SELECT count(*) FROM t_changeset WHERE container_uid"
                                           " LIKE 'mbox_records_%'")) == files
    assert int(psql(lab.origin, "bj-data", "SELECT count(*) FROM t_container_item")) > 0


def test_databases_as_bluemind_installs_them(lab, seeded):
    for db in ("bj", "bj-data"):
        settings = psql(lab.origin, "postgres", "SELECT s.setconfig FROM pg_db_role_setting s "
                                                "JOIN pg_database d ON d.oid = s.setdatabase "
                                                "WHERE d.datname = '%s'" % db)
        assert "TimeZone=GMT" in settings
        assert psql(lab.origin, "postgres", "SELECT pg_encoding_to_char(encoding) || ' ' || "
                    "pg_get_userbyid(datdba) FROM pg_database WHERE datname = '%s'" % db) == "UTF8 bj"
    assert psql(lab.origin, "bj", "SELECT rolsuper FROM pg_roles WHERE rolname = 'bj'") == "t"
    assert psql(lab.origin, "bj", "SELECT configuration -> 'mynetworks' FROM t_systemconf") == \
        "127.0.0.0/8, %s/32" % lab.origin.ip
    assert psql(lab.origin, "bj", "SELECT ip || ' ' || fqdn FROM t_server") == \
        "%s bluemind.lab.test" % lab.origin.ip
    assert psql(lab.origin, "bj", "SELECT count(*) FROM t_domain") == "3"
    assert int(psql(lab.origin, "bj", "SELECT count(*) FROM t_mailbox_alias")) > 0
    assert lab.origin.run("postmap -q admin@lab.test hash:/etc/postfix/virtual_mailbox").stdout.strip() == "OK"


def dx(host, db):
    """psql's \\dx of a database: {extension: schema}."""
    out = host.run("PGPASSWORD=bj psql -X -h 127.0.0.1 -U bj -d %s -tA -c '\\dx'" % db).stdout
    return dict((line.split("|")[0], line.split("|")[2]) for line in out.splitlines() if line.count("|") >= 3)


@pytest.mark.parametrize("side", ["origin", "target"])
def test_extensions_and_locale_as_bluemind_creates_them(lab, side):
    """BlueMind's schema scripts create hstore, btree_gin, ltree and unaccent in pg_catalog (and
    pg_stat_statements in the default schema) in every database; its installer makes the databases
    with the en_US.UTF-8 locale. The fresh target has the same."""
    host = getattr(lab, side)
    for db in ("bj", "bj-data"):
        extensions = dx(host, db)
        assert dict((name, extensions.get(name)) for name in ("hstore", "btree_gin", "ltree", "unaccent")) == dict(
            hstore="pg_catalog", btree_gin="pg_catalog", ltree="pg_catalog", unaccent="pg_catalog"), extensions
        assert extensions.get("pg_stat_statements") == "public"
        assert psql(host, "postgres", "SELECT datcollate || ' ' || datctype || ' ' || pg_encoding_to_char(encoding) "
                                      "FROM pg_database WHERE datname = '%s'" % db) == "en_US.UTF-8 en_US.UTF-8 UTF8"
    # a type of pg_catalog needs no schema: BlueMind's tables name hstore without one
    assert psql(host, "bj", "SELECT pg_typeof(configuration)::text FROM t_systemconf") == "hstore"
    assert psql(host, "bj", "SELECT 'a.b'::ltree || 'c'") == "a.b.c"
    assert psql(host, "bj", "SELECT unaccent('Chlo\u00e9')") == "Chloe"
    assert "en_US.utf8" in host.run("locale -a").stdout.split()


def test_fresh_target(lab):
    summary = seed(lab.target, "--fresh")
    assert summary["users"] == 1 and summary["messages"] == 0
    assert summary["files"] < 50
    assert psql(lab.target, "bj", "SELECT string_agg(login || '@' || domain_uid, ',') "
                                  "FROM t_directory_entry") == "admin@lab.test"
    assert psql(lab.target, "bj-data", "SELECT count(*) FROM t_mailbox_record") == "0"
    for tree in TREES:
        assert lab.target.run("test -d %s && echo ok" % tree).stdout.strip() == "ok"
    for tree in CYRUS_TREES:
        assert lab.target.run("find %s ! -user cyrus | head -5" % tree).stdout == ""
    assert lab.target.run("find /var/spool/bm-elasticsearch ! -user elasticsearch | head -5").stdout == ""
    assert lab.target.run("postmap -q admin@lab.test hash:/etc/postfix/virtual_mailbox").stdout.strip() == "OK"


def test_the_server_address_beyond_bm_ini(lab):
    """What the vendor's address change touches: webmail profiles, Cyrus replication, backup spool
    (the origin: the target may have been migrated already)."""
    host = lab.origin
    assert psql(host, "bj", "SELECT DISTINCT mail_host FROM rc_users") == host.ip
    assert int(psql(host, "bj", "SELECT count(*) FROM rc_users")) >= 10
    assert "core_sync_host: %s\n" % host.ip in host.run("cat /etc/cyrus-replication").stdout
    assert host.run("ls /var/backups/bluemind/dp_spool/rsync").stdout.split() == [host.ip]
