"""Faults on the target at a chosen point of a module's work, and the documented recovery (issue 11's
matrix, rows 3 and 4), module by module:

- the target's disk full during a pull (bluemind_sync) and during a database pass
  (bluemind_db_transfer), a whole copy and a row sync: something filled the disk after prereq's
  estimate passed;
- the target's PostgreSQL killed (SIGKILL of the postmaster) in the middle of a whole copy and of a
  row sync.

Each test checks that (a) the run fails and its message says what happened and what to do, (b) the
origin is as it was, (c) once the fault is gone the documented recovery, the same task with the same
arguments, converges: the module's own verification passes, and every file (with its checksum) and
every row (a hash of each table) of the origin is on the target, and (d) the target was left
consistent meanwhile: the files that arrived are whole, a failed row sync changed nothing, a failed
whole copy left no half database under the database's name nor ids in the state file.

The disk is a small tmpfs with a filler file: mounted on the pulled tree's parent (filled before the
pull), and under PostgreSQL's ``base`` (the databases' files; the WAL stays on its disk) for the
database passes, where the filler is made at a chosen point: once the target's ``pg_stat_activity``
shows the COPY into the big table running and the database grown by a set amount since. PostgreSQL
is killed at such a point too. "Freeing space" removes the filler. The data lives under /srv/bmfault
and in databases bmfault*, made here and removed afterwards; PostgreSQL's files go back to its own
disk at the end, and the lab is as it was.
"""

import json
import shlex
import subprocess
import time

import pytest

ROOT = "/srv/bmfault"
TREE = ROOT + "/spool"
PG_DISK = "/srv/bmfault-pg"  # on the target: the tmpfs holding PostgreSQL's base/ during the database tests
DB, SMALL = "bmfault", "bmfault-small"
STATE = "/var/tmp/bmfault-db-sync.json"
WATCH_PID = "/run/bmfault-watch.pid"
CONVERGED = {}  # the target's copy of bmfault and its ids as the last converged pass left them
MIB = 1024 * 1024


def free_bytes(host, path):
    return int(host.run("df -B1 --output=avail %s | tail -1" % path).stdout)


def fill(host, mount, leave):
    """A filler file on ``mount`` that leaves ``leave`` bytes free there."""
    host.run("fallocate -l %d %s/filler" % (free_bytes(host, mount) - leave, mount))
    assert abs(free_bytes(host, mount) - leave) < MIB


def tree_listing(host, tree):
    """Every entry (type, mode, owner, time to the nanosecond, name) and every file's links, size and md5."""
    return host.run("cd %s && find . -printf '%%y %%m %%u:%%g %%T@ %%P\\n' | sort && "
                    "find . -type f -printf '%%n %%s %%P\\n' | sort && "
                    "find . -type f -print0 | sort -z | xargs -0 -r md5sum" % tree).stdout


def file_sums(host, tree):
    return set(host.run("cd %s && find . -type f -print0 | xargs -0 -r md5sum" % tree).stdout.splitlines())


@pytest.fixture
def small_disk_tree(lab):
    """24 MiB of mail on the origin; on the target, the tree's parent is a 32 MiB filesystem."""
    lab.origin.run(
        "rm -rf {root} && mkdir -p {tree}/user/a/sub && cd {tree}/user/a "
        "&& for i in $(seq 1 24); do head -c 1048576 /dev/urandom > $i.; done "
        "&& printf 'message' > sub/1. && ln sub/1. sub/2. && printf 'index' > cyrus.index "
        "&& chown -R cyrus:mail {tree}".format(root=ROOT, tree=TREE))
    lab.target.run("rm -rf {root} && mkdir -p {root} && mount -t tmpfs -o size=32m bmfault {root}".format(root=ROOT))
    yield
    lab.target.run("umount %s; rm -rf %s" % (ROOT, ROOT), check=False)
    lab.origin.run("rm -rf %s" % ROOT)


def test_a_pull_into_a_full_disk_fails_says_so_and_the_same_pull_then_converges(
        lab, run_task, ssh_trust, small_disk_tree):
    origin_before = tree_listing(lab.origin, TREE)
    fill(lab.target, ROOT, 8 * MIB)
    args = dict(ssh_trust, trees=[TREE])

    failed = run_task("target", "bluemind_sync", args)
    assert failed.get("failed") is True, failed
    msg = failed["msg"]
    assert "no space left on device on the target's %s" % TREE in msg, msg
    assert "filesystem %s" % ROOT in msg and "free space there and run the pull again" in msg, msg
    assert tree_listing(lab.origin, TREE) == origin_before  # nothing written on the origin
    # what arrived is whole: each file on the target is one of the origin's; no partial or temporary file
    arrived = file_sums(lab.target, TREE)
    assert arrived and arrived < file_sums(lab.origin, TREE)
    assert lab.target.run("find %s -name '.*'" % TREE).stdout == ""

    lab.target.run("rm %s/filler" % ROOT)
    rerun = run_task("target", "bluemind_sync", args)
    assert not rerun.get("failed") and rerun["changed"] is True, rerun.get("msg")
    verify = run_task("target", "bluemind_sync", dict(args, verify=True))
    assert not verify.get("failed"), verify.get("msg")
    assert tree_listing(lab.target, TREE) == origin_before


# --- the databases

def psql(host, db, sql, check=True):
    return host.run("su postgres -c 'psql -X -At -v ON_ERROR_STOP=1 -d %s'" % shlex.quote(db), input=sql,
                    check=check).stdout.strip()


def row_hashes(host, db):
    """Per table: row count and md5 of every row's text (same rendering on both servers), sorted."""
    tables = psql(host, db, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1").split()
    hashes = psql(host, db, "SET TimeZone = 'UTC';\n" + "".join(
        "SELECT count(*), md5(string_agg(h, '' ORDER BY h)) FROM (SELECT md5(t::text) AS h FROM %s t) s;\n" % table
        for table in tables)).splitlines()
    return dict(zip(tables, hashes))


def databases_like(host, prefix):
    return sorted(psql(host, "postgres", "SELECT datname FROM pg_database WHERE datname LIKE '%s%%'" % prefix).split())


def origin_rows(lab):
    return dict((name, row_hashes(lab.origin, name)) for name in (DB, SMALL))


def state_file(host):
    text = host.run("cat %s" % STATE, check=False).stdout
    return json.loads(text) if text else {}


class TargetPg(object):
    def __init__(self, host, unit, base):
        self.host, self.unit, self.base = host, unit, base

    def when_copy_grows(self, play, table, grown, action):
        """Run the shell command ``action`` in the target once a COPY into ``table`` runs there and its
        database has grown by ``grown`` bytes since the COPY was first seen, while ``play`` runs; return
        what the watch saw. The watch is a loop in the target's PostgreSQL, every 10 ms."""
        loop = """DO $$ DECLARE first bigint; size bigint; BEGIN LOOP
  PERFORM pg_stat_clear_snapshot();
  SELECT pg_database_size(datid) INTO size FROM pg_stat_activity
   WHERE state = 'active' AND pid <> pg_backend_pid() AND query ILIKE 'COPY %%%s%%FROM stdin%%' LIMIT 1;
  IF size IS NOT NULL THEN
    first := COALESCE(first, size);
    IF size - first >= %d THEN RAISE NOTICE 'bmfault-watch: at %% bytes, COPY first seen at %%', size, first; RETURN; END IF;
  END IF;
  PERFORM pg_sleep(0.01);
END LOOP; END $$;""" % (table, grown)
        watch = ("echo $$ > {pid}; PGOPTIONS='-c statement_timeout=150s' runuser -u postgres -- psql -XAtq "
                 "-v ON_ERROR_STOP=1 -c {loop} 2>&1 && rm {pid} && {action}").format(
                     pid=WATCH_PID, loop=shlex.quote(loop), action=action)
        watcher = subprocess.Popen(["docker", "exec", self.host.name, "bash", "-c", watch],
                                   stdout=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while watcher.poll() is None:
            if not play.running() or time.monotonic() > deadline:
                # the pid file is gone once the watch acts: then it is only finishing its action
                if self.host.run("test -e %s" % WATCH_PID, check=False).returncode == 0:
                    self.host.run("kill $(cat %s); rm %s; runuser -u postgres -- psql -XAtq" % (WATCH_PID, WATCH_PID),
                                  input="SELECT pg_cancel_backend(pid) FROM pg_stat_activity "
                                        "WHERE query LIKE 'DO $$%bmfault-watch%'", check=False)
                    watcher.kill()
                    raise AssertionError("the pass ended (or took 2 minutes) before a COPY into %s grew by %d "
                                         "bytes: %s" % (table, grown, play.result()))
                watcher.wait(timeout=60)
            time.sleep(0.02)
        out = watcher.communicate()[0]
        assert watcher.returncode == 0, out
        return out

    def kill(self):
        """SIGKILL the postmaster (systemd then stops what is left of the server), and wait until it is gone."""
        return ("systemctl kill -s KILL --kill-whom=main {unit}; "
                "while systemctl is-active -q {unit} || pgrep -u postgres -x postgres >/dev/null; do sleep 0.1; done"
                ).format(unit=self.unit)

    @staticmethod
    def fill(leave):
        """A filler on the databases' disk that leaves ``leave`` bytes free there (tried again while PostgreSQL's
        own writes take the space it measured)."""
        return ("for i in $(seq 20); do fallocate -l $(( $(df -B1 --output=avail {disk} | tail -1) - {leave} )) "
                "{disk}/filler 2>/dev/null && break; done; test -s {disk}/filler").format(disk=PG_DISK, leave=leave)

    def start(self):
        self.host.run("systemctl start %s && until runuser -u postgres -- psql -XAtqc 'SELECT 1' >/dev/null 2>&1; "
                      "do sleep 0.1; done" % self.unit, timeout=120)


@pytest.fixture(scope="module")
def target_pg(lab):
    """The target's PostgreSQL with its databases' files (base/) on a 160 MiB tmpfs of their own; moved back
    to its disk at the end."""
    target = lab.target
    cluster = target.run("pg_lsclusters -h | awk 'NR == 1 {print $1 \"-\" $2}'").stdout.strip()
    unit = "postgresql@%s" % cluster
    data = psql(target, "postgres", "SHOW data_directory")
    base = data + "/base"
    target.run("! mountpoint -q %s" % base)  # not a run left half done: that one is for a person to look at
    pg = TargetPg(target, unit, base)
    try:
        target.run("systemctl stop {unit} && mkdir -p {disk} && mount -t tmpfs -o size=160m bmfault-pg {disk} "
                   "&& cp -a {base} {disk}/base && mount --bind {disk}/base {base}".format(
                       base=base, unit=unit, disk=PG_DISK))
        pg.start()
        yield pg
    finally:
        # the databases' files back on their disk, whatever the setup or the tests left
        target.run("systemctl stop {unit}; if mountpoint -q {base}; then umount {base} "
                   "&& rsync -a --delete {disk}/base/ {base}/; fi; "
                   "if mountpoint -q {disk}; then umount {disk}; fi; rmdir {disk}".format(
                       base=base, unit=unit, disk=PG_DISK))
        pg.start()


@pytest.fixture(scope="module")
def fault_databases(lab, target_pg):
    """On the origin, bmfault (80,000 rows in t_big, about 13 MiB, a table without a key and a small one)
    and bmfault-small; both dropped on both sides at the end."""
    create = ("CREATE DATABASE \"%s\" OWNER bj ENCODING 'UTF8' TEMPLATE template0 LC_COLLATE 'en_US.UTF-8' "
              "LC_CTYPE 'en_US.UTF-8';\n")
    drop = "".join('DROP DATABASE IF EXISTS "%s";\n' % name for name in (DB, SMALL))
    lab.origin.run("su postgres -c 'psql -q -v ON_ERROR_STOP=1'", input=drop + create % DB + create % SMALL + """
\\connect bmfault
CREATE TABLE t_domain (name text PRIMARY KEY); INSERT INTO t_domain VALUES ('lab.test'), ('example.test');
CREATE TABLE t_big (id bigserial PRIMARY KEY, body text, n int);
INSERT INTO t_big (body, n) SELECT repeat(md5(g::text), 3), g FROM generate_series(1, 80000) g;
CREATE TABLE t_keyless (a int, b text);
INSERT INTO t_keyless SELECT g % 100, 'row ' || (g % 100) FROM generate_series(1, 1000) g;
ALTER TABLE t_domain OWNER TO bj; ALTER TABLE t_big OWNER TO bj; ALTER TABLE t_keyless OWNER TO bj;
\\connect bmfault-small
CREATE TABLE t_conf (id serial PRIMARY KEY, v text); INSERT INTO t_conf (v) SELECT 'v' || g FROM generate_series(1, 100) g;
ALTER TABLE t_conf OWNER TO bj;
""")
    lab.target.run("rm -f %s" % STATE)
    CONVERGED.clear()
    yield
    lab.origin.run("su postgres -c 'psql -q -v ON_ERROR_STOP=1'", input=drop)
    lab.target.run("rm -f %s %s/filler" % (STATE, PG_DISK))
    target_pg.start()  # a test that failed may have left it killed
    leftovers = "".join('DROP DATABASE IF EXISTS "%s";\n' % name for name in databases_like(lab.target, DB))
    lab.target.run("su postgres -c 'psql -q -v ON_ERROR_STOP=1'", input=leftovers)


@pytest.fixture
def disk_freed_after(lab):
    """The filler removed after a database test, whatever its outcome."""
    yield
    lab.target.run("rm -f %s/filler" % PG_DISK)


@pytest.fixture
def slow_origin(lab):
    """The origin's link slowed to 24 Mbit/s while a row sync's changes arrive (about 4 MiB), so that the
    fault lands in the middle of their COPY whatever the machine's load. (Not for the whole copies: a
    slow link would also hold the small database's copy behind the big one's in the tunnel.) The test
    calls the function given to go back to full speed once the fault is in; teardown does too."""
    lab.origin.run("tc qdisc replace dev eth0 root tbf rate 24mbit burst 64kb latency 400ms")

    def full_speed():
        lab.origin.run("tc qdisc del dev eth0 root 2>/dev/null || true")
    yield full_speed
    full_speed()


@pytest.fixture
def db_args(ssh_trust):
    return dict(ssh_trust, databases=[DB, SMALL], origin_db_password="bj", target_db_password="bj",
                pg_bin_dir="/usr/lib/postgresql/15/bin", state_file=STATE)


def entry(result, name=DB):
    return [d for d in result["databases"] if d["name"] == name][0]


def assert_converged(lab, result, method):
    CONVERGED.clear()
    assert not result.get("failed") and result["changed"] is True, result.get("msg")
    assert entry(result)["method"] == method, entry(result)
    hashes = {}
    for name in (DB, SMALL):
        hashes[name] = row_hashes(lab.target, name)
        assert hashes[name] == row_hashes(lab.origin, name), name
    assert sorted(state_file(lab.target)) == [DB, SMALL]  # both verified: the next pass compares ids
    CONVERGED.update(hashes=hashes[DB], ids=state_file(lab.target)[DB])


def a_verified_copy(lab, run_task, db_args):
    """The target's copy and its ids as the last pass left them: the previous test's, else a pass now."""
    if not CONVERGED:
        result = run_task("target", "bluemind_db_transfer", db_args)
        assert not result.get("failed"), result.get("msg")
        CONVERGED.update(hashes=row_hashes(lab.target, DB), ids=state_file(lab.target)[DB])
    return CONVERGED.pop("hashes"), CONVERGED.pop("ids")


def rows_written_on_the_origin(lab):
    """What BlueMind would write between two passes: a third of t_big updated, rows deleted and inserted."""
    psql(lab.origin, DB, "UPDATE t_big SET n = -n WHERE id % 3 = 0; DELETE FROM t_big WHERE id <= 100; "
                         "INSERT INTO t_big (body, n) VALUES ('new', 1), ('new', 2); "
                         "INSERT INTO t_keyless VALUES (1000, 'new');")


def test_a_whole_copy_into_a_full_disk_fails_leaves_no_half_database_and_the_same_task_converges(
        lab, run_task, start_task, db_args, fault_databases, target_pg, disk_freed_after):
    CONVERGED.clear()
    origin_before = origin_rows(lab)

    play = start_task("target", "bluemind_db_transfer", db_args)
    # the disk fills while t_big arrives (about 13 MiB): 1 MiB is left
    seen = target_pg.when_copy_grows(play, "t_big", 2 * MIB, target_pg.fill(MIB))
    failed = play.result()
    assert "bmfault-watch: at" in seen, seen
    assert failed.get("failed") is True, failed
    msg = failed["msg"]
    assert "copy of database %s failed" % DB in msg, msg
    assert "the target's PostgreSQL has no space left on device (writing %s/" % target_pg.base in msg, msg
    assert "free space there and run the task again" in msg, msg
    assert origin_rows(lab) == origin_before  # nothing written on the origin
    # no half copy under the database's name, no ids for it. The incomplete copy is dropped at once, or by the
    # rerun when the full disk fails the drop's checkpoint too. (The small one, copied beside it, was
    # verified, or failed the same way when its last writes came after the disk filled.)
    left = databases_like(lab.target, DB)
    assert DB not in left and set(left) <= {SMALL, SMALL + ".incomplete", DB + ".incomplete"}, left
    assert "The target holds no copy of %s now" % DB in msg and "the next run copies it whole" in msg, msg
    if DB + ".incomplete" in left:
        assert "(database %s.incomplete) is dropped by the next run" % DB in msg, msg
    assert sorted(state_file(lab.target)) == ([SMALL] if SMALL in left else [])

    lab.target.run("rm %s/filler" % PG_DISK)
    rerun = run_task("target", "bluemind_db_transfer", db_args)
    assert_converged(lab, rerun, "full")
    assert entry(rerun)["reason"].startswith("no copy on the target yet")


def test_a_row_sync_into_a_full_disk_changes_nothing_and_the_same_task_converges(
        lab, run_task, start_task, db_args, fault_databases, target_pg, disk_freed_after, slow_origin):
    target_before, ids_before = a_verified_copy(lab, run_task, db_args)
    rows_written_on_the_origin(lab)
    origin_before = origin_rows(lab)

    play = start_task("target", "bluemind_db_transfer", db_args)
    # the disk fills as the changed rows of t_big (about 4 MiB) begin to arrive: 1 MiB is left
    seen = target_pg.when_copy_grows(play, "t_big", 0, target_pg.fill(MIB))
    failed = play.result()
    slow_origin()
    assert "bmfault-watch: at" in seen, seen
    assert failed.get("failed") is True, failed
    msg = failed["msg"]
    assert "applying the changes to %s on the target failed" % DB in msg, msg
    assert "the target's PostgreSQL has no space left on device (writing %s/" % target_pg.base in msg, msg
    assert "free space there and run the task again" in msg, msg
    assert "The target's copy of %s is unchanged" % DB in msg, msg
    assert origin_rows(lab) == origin_before
    lab.target.run("rm %s/filler" % PG_DISK)  # (reading every row sorts on the disk too)
    # one transaction: the target's copy is as it was, and the next pass compares from the same ids
    assert row_hashes(lab.target, DB) == target_before
    assert state_file(lab.target)[DB] == ids_before

    rerun = run_task("target", "bluemind_db_transfer", db_args)
    assert_converged(lab, rerun, "rows")
    assert entry(rerun)["compared_by"] == "transaction ids" and entry(rerun)["rows_copied"] > 26000


def test_postgresql_killed_in_a_whole_copy_leaves_no_half_database_and_once_started_the_same_task_converges(
        lab, run_task, start_task, db_args, fault_databases, target_pg):
    CONVERGED.clear()
    psql(lab.origin, DB, "ALTER TABLE t_domain ADD COLUMN alias text")  # a changed schema: a whole copy
    origin_before = origin_rows(lab)

    play = start_task("target", "bluemind_db_transfer", db_args)
    seen = target_pg.when_copy_grows(play, "t_big", 4 * MIB, target_pg.kill())  # about a third of it
    failed = play.result()
    assert "bmfault-watch: at" in seen, seen
    assert failed.get("failed") is True, failed
    msg = failed["msg"]
    assert "copy of database %s failed" % DB in msg, msg
    assert "the target's PostgreSQL (127.0.0.1:5432) stopped answering" in msg, msg
    assert "start it (systemctl start postgresql), see its log, and run the task again" in msg, msg
    assert origin_rows(lab) == origin_before
    target_pg.start()
    # the previous copy was dropped (its schema was out of date); nothing half under its name, no ids kept;
    # the incomplete copy could not be dropped (the server was gone): the rerun drops it
    assert databases_like(lab.target, DB) == sorted([SMALL, DB + ".incomplete"])
    assert "The target holds no copy of %s now (the incomplete copy (database %s.incomplete) is dropped by the " \
           "next run); the next run copies it whole" % (DB, DB) in msg, msg
    assert sorted(state_file(lab.target)) == [SMALL]

    rerun = run_task("target", "bluemind_db_transfer", db_args)
    assert_converged(lab, rerun, "full")
    assert entry(rerun)["reason"] == "no copy on the target yet (the last whole copy did not finish)"
    assert databases_like(lab.target, DB) == sorted([DB, SMALL])


def test_postgresql_killed_in_a_row_sync_changes_nothing_and_once_started_the_same_task_converges(
        lab, run_task, start_task, db_args, fault_databases, target_pg, slow_origin):
    target_before, ids_before = a_verified_copy(lab, run_task, db_args)
    rows_written_on_the_origin(lab)
    origin_before = origin_rows(lab)

    play = start_task("target", "bluemind_db_transfer", db_args)
    seen = target_pg.when_copy_grows(play, "t_big", MIB // 2, target_pg.kill())
    failed = play.result()
    slow_origin()
    assert "bmfault-watch: at" in seen, seen
    assert failed.get("failed") is True, failed
    msg = failed["msg"]
    assert "applying the changes to %s on the target failed" % DB in msg, msg
    assert "the target's PostgreSQL (127.0.0.1:5432) stopped answering" in msg, msg
    assert "start it (systemctl start postgresql), see its log, and run the task again" in msg, msg
    assert "The target's copy of %s is unchanged" % DB in msg, msg
    assert origin_rows(lab) == origin_before
    target_pg.start()
    assert row_hashes(lab.target, DB) == target_before
    assert state_file(lab.target)[DB] == ids_before

    rerun = run_task("target", "bluemind_db_transfer", db_args)
    assert_converged(lab, rerun, "rows")
    assert entry(rerun)["compared_by"] == "transaction ids"
