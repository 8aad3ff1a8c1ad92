"""User activity on the simulated mail store, to make a delta between two synchronisations.

  python3 -m bmsim.activity [--flags N] [--delete N] [--seed S]

--flags N: N messages get \\Flagged toggled and \\Seen set. Their cyrus.index record and header
  are rewritten in place (the file keeps its size, its mtime changes), t_mailbox_record.system_flags
  follows and t_changeset gets a type 1 (updated) row.
--delete N: N other messages are deleted and expunged: the spool file is unlinked, cyrus.index is
  rewritten without them (a new file renamed over the old one), the rows go (the t_message_body
  row too when no mailbox keeps the message) and t_changeset gets a type 2 (deleted) row.
On 5.x (no Cyrus) the flags change in t_mailbox_record only, and a deleted message's body file
(/var/spool/cyrus/data/by_hash/.../<guid>.zst, or bm-hsm's) goes with its t_message_body row when no
mailbox keeps it (when the real core purges orphan bodies is unconfirmed: lab/FIDELITY.md 5x-bodies).
A JSON summary on stdout says which files changed, with sizes and mtimes before and after.

  python3 -m bmsim.activity --until-stopped [--flags N] [--every S]   (unit bm-sim-activity)

--until-stopped: users keep changing flags, N messages (default 2) every S seconds (default 0.25), each
  change one transaction with its files, until SIGTERM (the unit is part of bluemind.target, so that
  `bmctl stop` stops it as it stops the services through which real users change flags): a change
  under way ends before the process does, so the stopped origin holds every change it made, whole.
  The messages are drawn from a sample of the mailboxes' records taken at the start (their flags read
  again at each change). Each change is logged to /var/log/bm-sim/activity.jsonl.
"""
import argparse
import json
import os
import random
import signal
import time

from bmsim import common, spool
from bmsim.seed import transaction


def file_state(path):
    st = os.stat(path)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino}


def pick(cur_data, rng, count):
    """`count` random (mailbox_uid, imap_uid, flags, guid) of t_mailbox_record."""
    cur_data.execute("SELECT mailbox_uid, imap_uid, system_flags, message_body_guid "
                     "FROM t_mailbox_record ORDER BY mailbox_uid, imap_uid")
    rows = cur_data.fetchall()
    return rng.sample(rows, min(count, len(rows)))


def by_mailbox(rows):
    out = {}
    for row in rows:
        out.setdefault(row[0], []).append(row)
    return out


def changeset(cur, mailbox_uid, imap_uid, kind):
    container = "mbox_records_" + mailbox_uid
    cur.execute("INSERT INTO t_changeset (container_uid, item_uid, version, type, date) "
                "SELECT %s, %s, coalesce(max(version), 0) + 1, %s, now() FROM t_changeset "
                "WHERE container_uid = %s", (container, str(imap_uid), kind, container))


def change_flags5(cur, rows):
    messages = []
    for mailbox_uid, uid, flags, _ in rows:
        new = (flags ^ spool.FLAG_FLAGGED) | spool.FLAG_SEEN
        cur.execute("UPDATE t_mailbox_record SET system_flags = %s "
                    "WHERE mailbox_uid = %s AND imap_uid = %s", (new, mailbox_uid, uid))
        changeset(cur, mailbox_uid, uid, 1)
        messages.append({"mailbox": mailbox_uid, "uid": uid, "flags": [flags, new]})
    return [], messages


def delete5(cur, rows):
    removed = []
    for mailbox_uid, uid, _, _ in rows:
        cur.execute("DELETE FROM t_mailbox_record WHERE mailbox_uid = %s AND imap_uid = %s", (mailbox_uid, uid))
        changeset(cur, mailbox_uid, uid, 2)
    cur.execute("DELETE FROM t_message_body b WHERE guid = ANY(%s) AND NOT EXISTS "
                "(SELECT 1 FROM t_mailbox_record r WHERE r.message_body_guid = b.guid) RETURNING guid",
                (sorted({row[3] for row in rows}),))
    for (guid,) in cur.fetchall():
        for tier in ("live", "archive"):
            p = spool.body_path(guid, tier)
            if os.path.exists(p):
                os.unlink(p)
                removed.append(p)
    return removed, [], cur.rowcount


def change_flags(cur, owners, mailboxes, rows):
    changed, messages = [], []
    for mailbox_uid, group in by_mailbox(rows).items():
        domain, login = mailboxes[mailbox_uid]
        index = spool.index_path(domain, login)
        with spool.MailboxLock(domain, login, owners):
            before = file_state(index)
            for _, uid, flags, _ in group:
                new = (flags ^ spool.FLAG_FLAGGED) | spool.FLAG_SEEN
                spool.set_flags(index, uid, new, int(time.time()))
                cur.execute("UPDATE t_mailbox_record SET system_flags = %s "
                            "WHERE mailbox_uid = %s AND imap_uid = %s", (new, mailbox_uid, uid))
                changeset(cur, mailbox_uid, uid, 1)
                messages.append({"mailbox": mailbox_uid, "uid": uid, "flags": [flags, new]})
            changed.append({"path": index, "before": before, "after": file_state(index)})
    return changed, messages


def delete(cur, owners, mailboxes, rows):
    removed, rewritten = [], []
    for mailbox_uid, group in by_mailbox(rows).items():
        domain, login = mailboxes[mailbox_uid]
        index = spool.index_path(domain, login)
        uids = [uid for _, uid, _, _ in group]
        with spool.MailboxLock(domain, login, owners):
            before = file_state(index)
            for uid in uids:
                path = spool.message_path(domain, login, uid)
                os.unlink(path)
                removed.append(path)
                changeset(cur, mailbox_uid, uid, 2)
            spool.expunge(index, set(uids), owners)
            cur.execute("DELETE FROM t_mailbox_record WHERE mailbox_uid = %s AND imap_uid = ANY(%s)",
                        (mailbox_uid, uids))
            rewritten.append({"path": index, "before": before, "after": file_state(index)})
    cur.execute("DELETE FROM t_message_body b WHERE guid = ANY(%s) AND NOT EXISTS "
                "(SELECT 1 FROM t_mailbox_record r WHERE r.message_body_guid = b.guid)",
                (sorted({row[3] for row in rows}),))
    return removed, rewritten, cur.rowcount


def mailbox_names():
    """{mailbox uid: (domain, login)} of the directory."""
    with transaction(common.read_bm_ini().get("db", "bj")) as cur:
        cur.execute("SELECT uid, domain_uid, login FROM t_directory_entry")
        return {uid: (domain, login) for uid, domain, login in cur.fetchall()}


# How many records the loop draws its changes from (one read at its start, not one a change).
LOOP_SAMPLE = 2000


def until_stopped(flags, every, seed):
    """Change the flags of ``flags`` messages every ``every`` seconds until SIGTERM; the change under way
    when the signal comes ends first (its files and its transaction)."""
    stopping = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
    signal.signal(signal.SIGINT, lambda signum, frame: stopping.append(signum))
    rng = random.Random(seed)
    owners = spool.Owners()
    mailboxes = mailbox_names()
    with transaction("bj-data") as cur:
        keys = [row[:2] for row in pick(cur, rng, LOOP_SAMPLE)]
    common.log_event("activity", event="started", every=every, flags=flags, sample=len(keys))
    changes = 0
    started = time.monotonic()
    while not stopping and keys:
        chosen = rng.sample(keys, min(flags, len(keys)))
        with transaction("bj-data") as cur:
            cur.execute("SELECT mailbox_uid, imap_uid, system_flags, message_body_guid FROM t_mailbox_record "
                        "WHERE (mailbox_uid, imap_uid) IN (SELECT * FROM unnest(%s::text[], %s::int[])) "
                        "ORDER BY mailbox_uid, imap_uid",
                        ([key[0] for key in chosen], [key[1] for key in chosen]))
            rows = cur.fetchall()
            if spool.MAJOR >= 5:
                change_flags5(cur, rows)
            else:
                change_flags(cur, owners, mailboxes, rows)
        changes += 1
        common.log_event("activity", event="flags", messages=len(rows))
        delay = started + changes * every - time.monotonic()
        if delay > 0 and not stopping:
            time.sleep(delay)
    summary = {"changes": changes, "seconds": round(time.monotonic() - started, 1)}
    common.log_event("activity", event="stopped", **summary)
    print(json.dumps(summary, sort_keys=True))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python3 -m bmsim.activity", description=__doc__.split("\n")[0])
    parser.add_argument("--flags", type=int, default=None, metavar="N", help="messages whose flags change")
    parser.add_argument("--delete", type=int, default=0, metavar="N", help="messages deleted and expunged")
    parser.add_argument("--seed", type=int, help="random seed (default: a new one each run)")
    parser.add_argument("--until-stopped", action="store_true", help="change flags until SIGTERM (see above)")
    parser.add_argument("--every", type=float, default=0.25, metavar="S", help="seconds between two changes")
    args = parser.parse_args(argv)
    if args.until_stopped:
        if args.delete or args.every <= 0:
            parser.error("--until-stopped changes flags only, at a positive --every")
        return until_stopped(2 if args.flags is None else args.flags, args.every, args.seed)
    args.flags = args.flags or 0
    started = time.monotonic()
    rng = random.Random(args.seed)
    owners = spool.Owners()
    mailboxes = mailbox_names()
    with transaction("bj-data") as cur:
        rows = pick(cur, rng, args.flags + args.delete)
        if spool.MAJOR >= 5:
            changed, messages = change_flags5(cur, rows[:args.flags])
            removed, rewritten, bodies = delete5(cur, rows[args.flags:])
        else:
            changed, messages = change_flags(cur, owners, mailboxes, rows[:args.flags])
            removed, rewritten, bodies = delete(cur, owners, mailboxes, rows[args.flags:])
    deleted = len(rows[args.flags:]) if spool.MAJOR >= 5 else len(removed)  # 5.x: records, not files
    summary = {"flags": len(messages), "deleted": deleted, "bodies_deleted": bodies,
               "changed": changed, "removed": removed, "rewritten": rewritten, "messages": messages,
               "seconds": round(time.monotonic() - started, 2)}
    common.log_event("activity", flags=len(messages), deleted=deleted, bodies_deleted=bodies)
    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    main()
