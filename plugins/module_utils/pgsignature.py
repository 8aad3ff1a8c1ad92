# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which tables provably did not change, on either side, since the last database pass.

A later pass (see :mod:`pgsync`) lists every row of every table on both sides; at BlueMind's size
(hundreds of tables and partitions in ``bj-data``, most untouched between the last hot pass and the
window) that cost grows with the database, not with what changed. This module finds the tables that
need no listing, from PostgreSQL's cumulative statistics, and gives up (every table is listed, as
before) whenever the proof is missing.

**A table's signature** on one server: ``[oid, relfilenode, n_tup_ins, n_tup_upd, n_tup_del]``.
Every row that an INSERT, COPY, UPDATE (HOT ones included), DELETE or MERGE writes is counted in
these counters, the ones of aborted transactions and subtransactions too (over-counting only costs
a listing). A TRUNCATE, a VACUUM FULL, a CLUSTER or a rewriting ALTER TABLE is not counted there
but gives the table a new ``relfilenode``; a table dropped and created again has a new ``oid``.

**What invalidates every counter** of a server (the *epoch*): ``pg_postmaster_start_time()`` (a
restart, clean or not), the database's ``stats_reset`` (``pg_stat_reset()`` and the reset of a single
table set it), ``pg_stat_bgwriter.stats_reset`` (set when the statistics are thrown away after a
crash, which restarts the server's processes but not the postmaster: PostgreSQL 15+ resets every
fixed-numbered kind then, 13 and 14 start the collector without a stats file), the server's version
and ``track_counts`` (off: nothing is counted). Any change of the epoch: no proof for that side.

**When counters are visible.** A backend counts a transaction's rows in its own memory and adds
them to the shared totals only after the transaction ended (after it became visible to new
snapshots), at most once a second while it works (PGSTAT_MIN_INTERVAL; up to 10 s when it then goes
idle, PGSTAT_IDLE_INTERVAL), and always when it exits: PostgreSQL 15+ flushes in a
``before_shmem_exit`` hook, before the backend leaves ``pg_stat_activity``. PostgreSQL 13 and 14 send
the counts over a local UDP socket to the statistics collector (every 500 ms at most, and at exit,
before leaving ``pg_stat_activity``), which writes them to a file that readers accept up to 500 ms
old; a datagram that finds the collector's socket full is dropped, and counted in that socket's
``drops`` in ``/proc/net/udp``.

**The argument.** Pass *k* reads the origin's signatures (its *mark*) *before* it exports the
snapshot it copies, and the target's signatures once its changes are applied (the *record*, read
when no other session is connected to the database, so that the pass's own writes are counted).
Both are kept with the pass's ids in the state. Pass *k+1*, after exporting its snapshot, reads both
sides again (the *check*) and skips a table whose two signatures equal the ones kept.

* A transaction T that wrote a table and is not in pass *k*'s snapshot ended after the snapshot was
  taken, so after the mark was read: the mark does not count it.
* Pass *k+1*'s check waits (1 s at most) until no session but autovacuum's and the module's own
  (``application_name`` ``bluemind-migration``, which never write on the origin) is connected to the
  database: every session that wrote has exited, so its counts are in the shared totals (15+) or were
  sent (13, 14). On 13 and 14 the check then waits for a statistics file written at least 100 ms
  after that moment, and reads the statistics socket's ``drops``, which must be what the mark (or the
  record) saw: no count was lost between the two readings.
* So every write between the two snapshots (or on the target after the record) is counted in the
  check and not in the mark: the signature differs and the table is listed. A table that looks
  unchanged holds on both sides what pass *k* verified equal.

A session that connects after the snapshot was exported and writes is either still connected at the
check (no proof: every table is listed) or gone, its counts in the check (the table is listed); its
rows, which the snapshot does not see, are not in this pass's mark either, so the next pass's check
counts them. A pass during the hot phase (``origin_serving``) does not check at all (BlueMind's
sessions are connected) but keeps its mark and record for the window's pass.

Why not ``n_mod_since_analyze`` or ``n_live_tup``: they come from the same counters (no more proof)
and ANALYZE or VACUUM change them without any write. Why a quiet database rather than trusting that
BlueMind stopped: a session left open (a pool closing late, a monitoring agent, a logical replication
worker, a background worker) may hold counts not yet flushed; the check cannot tell a reader from a
writer, so any such session means no proof. Sources: PostgreSQL's documentation, "The Cumulative
Statistics System" (15+) and "The Statistics Collector" (13, 14), and ``src/backend/utils/activity/
pgstat.c`` (``before_shmem_exit(pgstat_shutdown_hook)``, ``pgstat_reset_after_failure``) and, before
15, ``src/backend/postmaster/pgstat.c`` (``pgstat_beshutdown_hook``, ``backend_read_statsfile``).

**The module's own reads are not counted** (UNCOUNTED_READS): its sessions on the origin, which only
read, set ``track_counts`` off when its user may (a superuser's setting; BlueMind's ``bj`` is one). A pass
reads hundreds of tables in a few sessions, and each session's end sends their counts; on 13 and 14
those messages, all at once, overflowed the collector's socket (the lab's bench lost 3 messages so
during a hot pass, and 68 with twelve such sessions), and every later check then proved nothing. Their
signatures need no read counted: ``n_tup_ins``, ``n_tup_upd`` and ``n_tup_del`` are writes. The
signatures themselves are read with the server's own settings, so that ``track_counts`` in the epoch
is the one BlueMind's sessions have.

**What it cannot see** (documented, not detected): a session that sets ``track_counts`` off for
itself (a superuser's choice) writes without being counted; statistics altered by hand (PostgreSQL
18's ``pg_restore_relation_stats``); a stats collector of 13 or 14 that crashed alone and restarted
from an older file, if the counters then grew back to exactly the values kept.
"""

from __future__ import annotations

import json

# The application name of this module's sessions on the origin: they read, never write, and are left
# out of the check's wait for a quiet database.
APP_NAME = "bluemind-migration"
# Before PostgreSQL 15 the counters go through the statistics collector (UDP, a file 500 ms old).
SHARED_MEMORY_STATS = 150000
# The check waits this long at most for the database to have no other session, and, before 15, for a
# statistics file written at least FRESH_MARGIN seconds after the database was seen quiet.
QUIET_POLLS = 20
POLL_SECONDS = 0.05
FRESH_MARGIN = 0.1
FRESH_POLLS = 30

# The session setting of the module's reads on the origin (PGOPTIONS): nothing they read is counted, and
# no message of theirs can crowd out a writer's (see the module's documentation).
UNCOUNTED_READS = "-c track_counts=off"

_USER_TABLES = (
    "pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' "
    "AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' "
    "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass "
    "AND d.objid = c.oid AND d.deptype = 'e')"
)


def signature_sql(check, ours_excluded, legacy):
    """The psql ``-c`` text that reads one database's signatures in one round trip (one transaction).

    ``check``: wait first for the database to have no other session (the sessions named APP_NAME
    left out when ``ours_excluded``), then, ``legacy`` (before 15), for a statistics file written
    FRESH_MARGIN seconds after that. Before 15 the statistics socket's lines of ``/proc/net/udp`` are
    read last (``pg_read_file``: a superuser or pg_read_server_files; else none, so no proof).
    The last statement's JSON: ``quiet_at`` (epoch seconds, None when not quiet or not a check),
    ``stats_at``, ``epoch``, ``udp`` (text or None) and ``tables``."""
    others = ("a.datid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
              "AND a.pid <> pg_backend_pid() AND a.backend_type IS DISTINCT FROM 'autovacuum worker'")
    if ours_excluded:
        others += " AND a.application_name IS DISTINCT FROM '%s'" % APP_NAME
    body = ["DECLARE quiet timestamptz; BEGIN"]
    if check:
        body.append(
            "FOR i IN 1..%d LOOP PERFORM pg_stat_clear_snapshot(); "
            "IF NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE %s) THEN quiet := clock_timestamp(); EXIT; END IF; "
            "PERFORM pg_sleep(%s); END LOOP; "
            "PERFORM set_config('bluemind_migration.quiet_at', COALESCE(extract(epoch FROM quiet)::text, ''), false);"
            % (QUIET_POLLS, others, POLL_SECONDS))
        if legacy:
            body.append(
                "IF quiet IS NOT NULL THEN FOR i IN 1..%d LOOP PERFORM pg_stat_clear_snapshot(); "
                "EXIT WHEN pg_stat_get_snapshot_timestamp() >= quiet + interval '%d ms'; PERFORM pg_sleep(%s); "
                "END LOOP; END IF;" % (FRESH_POLLS, int(FRESH_MARGIN * 1000), POLL_SECONDS))
    else:
        body.append("PERFORM set_config('bluemind_migration.quiet_at', '', false);")
    if legacy:
        body.append(
            "BEGIN PERFORM set_config('bluemind_migration.udp', pg_read_file('/proc/net/udp') || "
            "COALESCE(pg_read_file('/proc/net/udp6', 0, 16777216, true), ''), false); "
            "EXCEPTION WHEN others THEN PERFORM set_config('bluemind_migration.udp', '', false); END;")
    else:
        body.append("PERFORM set_config('bluemind_migration.udp', '', false);")
    body.append("END")
    select = (
        "SELECT json_build_object("
        "'quiet_at', NULLIF(current_setting('bluemind_migration.quiet_at'), '')::float8, "
        "'stats_at', extract(epoch FROM pg_stat_get_snapshot_timestamp())::float8, "
        "'epoch', json_build_array(pg_postmaster_start_time()::text, "
        "(SELECT pg_stat_get_db_stat_reset_time(oid)::text FROM pg_database WHERE datname = current_database()), "
        "(SELECT stats_reset::text FROM pg_stat_bgwriter), current_setting('server_version_num'), "
        "current_setting('track_counts')), "
        "'udp', NULLIF(current_setting('bluemind_migration.udp'), ''), "
        "'tables', (SELECT COALESCE(json_object_agg(quote_ident(n.nspname) || '.' || quote_ident(c.relname), "
        "json_build_array(c.oid::bigint, c.relfilenode::bigint, pg_stat_get_tuples_inserted(c.oid), "
        "pg_stat_get_tuples_updated(c.oid), pg_stat_get_tuples_deleted(c.oid))), '{}') FROM " + _USER_TABLES + "))")
    return "DO $bm$ %s $bm$; %s" % (" ".join(body), select)


def udp_drops(text):
    """``[[inode, drops], ...]`` of the sockets connected to themselves in ``/proc/net/udp`` text (the
    statistics socket of PostgreSQL 13 and 14 is one), sorted; None without text."""
    if not text:
        return None
    sockets = []
    for line in text.splitlines():
        fields = line.split()
        # sl local rem st queues tr retrnsmt uid timeout inode ref pointer drops
        if len(fields) >= 13 and fields[0].endswith(":") and fields[1] == fields[2]:
            sockets.append([fields[9], fields[12]])
    return sorted(sockets)


def side_signatures(raw, check):
    """A side's reading from the JSON of :func:`signature_sql`: ``dict(epoch, drops, tables, proof)``;
    ``proof`` says why the reading proves nothing by itself (None when it does, or for a mark, which
    needs no quiet database)."""
    data = json.loads(raw) if isinstance(raw, str) else raw
    epoch = data["epoch"]
    legacy = int(epoch[3]) < SHARED_MEMORY_STATS
    reading = dict(epoch=epoch, drops=udp_drops(data.get("udp")) if legacy else None,
                   tables=dict((name, list(sig)) for name, sig in data["tables"].items()), proof=None)
    if epoch[4] != "on":
        reading["proof"] = "track_counts is off"
    elif legacy and reading["drops"] is None:
        reading["proof"] = "its statistics socket could not be read (pg_read_file of /proc/net/udp)"
    elif check and data.get("quiet_at") is None:
        reading["proof"] = "other sessions were connected to the database"
    elif check and legacy and (data.get("stats_at") is None or data["stats_at"] < data["quiet_at"] + FRESH_MARGIN):
        reading["proof"] = "its statistics file was not written after the database became quiet"
    return reading


def drops_text(drops):
    """``[[inode, drops], ...]`` of :func:`udp_drops` as words: "socket 8941047 lost 2 messages"."""
    if not drops:
        return "no statistics socket"
    return ", ".join("socket %s lost %s message(s)" % (inode, lost) for inode, lost in drops)


def side_problem(side, kept, now):
    """Why ``now`` (a check) proves nothing against ``kept`` (the mark or record of the last pass) on
    ``side``, or None."""
    if not kept:
        return "the last pass left no statistics of the %s" % side
    if kept.get("proof"):
        return "the last pass's statistics of the %s prove nothing (%s)" % (side, kept["proof"])
    if now.get("proof"):
        return "the %s's statistics prove nothing now (%s)" % (side, now["proof"])
    names = ("the server was restarted", "the database's statistics were reset",
             "the statistics were reset (a crash or pg_stat_reset_shared)", "the server's version changed",
             "track_counts changed")
    for name, before, after in zip(names, kept["epoch"], now["epoch"]):
        if before != after:
            return "on the %s, %s since the last pass" % (side, name)
    if kept.get("drops") != now.get("drops"):
        return "on the %s, the statistics collector lost messages or restarted since the last pass (%s, then %s)" % (
            side, drops_text(kept.get("drops")), drops_text(now.get("drops")))
    return None


def unwritten_tables(side, mark, now):
    """The tables of ``side`` whose signatures in ``now`` (a check) are the ones of ``mark`` (a reading before
    it, by the same argument as a pass's mark: every write after the mark is counted in the check), or an
    empty set when either reading proves nothing or the epoch moved between them."""
    if not mark or not now or side_problem(side, mark, now):
        return set()
    return set(name for name, sig in now["tables"].items() if mark["tables"].get(name) == sig)


def unchanged_tables(kept, origin_now, target_now):
    """``(names, why)``: the tables whose signatures on both sides are the ones the last pass kept
    (``kept``: ``dict(origin=mark, target=record)``), or an empty set and why no table can be skipped."""
    unchanged, _undeleted, _untouched, why = table_changes(kept, origin_now, target_now)
    return unchanged, why


def table_changes(kept, origin_now, target_now):
    """``(unchanged, undeleted, untouched, why)``: the tables whose signatures on both sides are the ones
    the last pass kept; the tables that deleted no row on the origin since (the same table and file, the
    same ``n_tup_del``; rows inserted or updated there, which their transaction ids find) and did not
    change on the target; the tables that did not change on the target (its side of the proof alone,
    which holds when the origin's statistics prove nothing: ``origin_now`` None when they could not be
    read); and why the first two are empty, if they are."""
    kept = kept or {}
    target_problem = side_problem("target", kept.get("target"), target_now)
    untouched = unwritten_tables("target", kept.get("target"), target_now)
    problem = ("the origin's statistics could not be read" if origin_now is None
               else side_problem("origin", kept.get("origin"), origin_now)) or target_problem
    if problem:
        return set(), set(), untouched, problem
    origin_kept = kept["origin"]["tables"]
    unchanged = set(name for name, sig in origin_now["tables"].items()
                    if origin_kept.get(name) == sig and name in untouched)
    undeleted = untouched & set(origin_now["tables"]) - losing_tables(kept["origin"], origin_now)
    return unchanged, undeleted, untouched, None


def losing_tables(kept, now):
    """The tables of ``now`` (a reading) that may have lost rows since ``kept`` (an earlier reading of the same
    side): new since, or another table or file (a TRUNCATE, a rewrite), or rows deleted. With two readings
    that prove something (:func:`table_changes`) every other table lost none; with a mark read while the
    origin serves, it is a guess (counts not flushed yet are missing), good for choosing how to count."""
    before = kept["tables"]
    return set(name for name, sig in now["tables"].items() if before.get(name) is None
               or list(before[name][:2]) != list(sig[:2]) or before[name][4] != sig[4])


def written_tables(before, after):
    """The tables of ``after`` (a reading) whose signatures are not those of ``before`` (an earlier reading of
    the same side): new, rewritten or with rows written between the two; every table of ``after`` when the
    counters started again between them (another epoch). An estimate for the downtime's prediction, not a
    proof: counts not flushed yet at ``after`` are missing (see the argument above). None without both."""
    if not before or not after:
        return None
    if list(before["epoch"]) != list(after["epoch"]):
        return set(after["tables"])
    return set(name for name, sig in after["tables"].items() if before["tables"].get(name) != sig)


def written_rows(before, after):
    """The rows written (inserted, updated or deleted) between two readings of the same side, by the tables'
    counters: a table of another oid than in ``before`` (new, or dropped and created again) counts all of its
    own, and every table does when the counters started again between them. An estimate, as
    :func:`written_tables`. None without both."""
    if not before or not after:
        return None
    same_epoch = list(before["epoch"]) == list(after["epoch"])
    total = 0
    for name, sig in after["tables"].items():
        old = before["tables"].get(name) if same_epoch else None
        now = sum(int(count) for count in sig[2:5])
        total += max(0, now - sum(int(count) for count in old[2:5])) if old and old[0] == sig[0] else now
    return total
