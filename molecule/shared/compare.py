"""Comparisons of origin and target for the scenarios' testinfra verifiers, and the fault helpers
(a playbook in the background, the controller killed at an observable sign, a slowed link)."""
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import testinfra

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "lab"))
from delivery_rows import content_explained, count_explained  # noqa: E402  (what the smoke message writes)

TREES = ["/var/spool/cyrus", "/var/lib/cyrus", "/var/spool/bm-hsm", "/var/spool/sieve",
         "/var/spool/bm-elasticsearch", "/var/spool/bm-docs", "/var/spool/bm-filehosting"]
# BlueMind's own backup skips these; the migration does too.
EXCLUDED = ["cyrus.squat", "/var/lib/cyrus/proc/", "/var/lib/cyrus/lock/", "/var/lib/cyrus/socket/"]


def host(name):
    return testinfra.get_host(f"ansible://{name}", ansible_inventory=os.environ["MOLECULE_INVENTORY_FILE"])


def tree_listing(h, tree, skip=()):
    """One line per entry: path, type, mode, owner and group NAMES, size, link count, content digest.

    Hard links show as the same digest with a link count > 1; owners by name, since uids differ.
    """
    cmd = (f"cd {tree} && find . -mindepth 1 -printf '%P\\t%y\\t%m\\t%u\\t%g\\t%s\\t%n\\t%l\\n' | sort")
    lines = []
    for line in h.check_output(cmd).splitlines():
        rel = line.split("\t", 1)[0]
        full = f"{tree}/{rel}"
        if any(full.startswith(x) or full == x.rstrip("/") if x.endswith("/") else x in full for x in EXCLUDED):
            continue
        if any(s in full for s in skip):
            continue
        fields = line.split("\t")
        if fields[1] == "d":  # a directory's link count is its number of subdirectories: not content
            fields[6] = ""
        lines.append("\t".join(fields))
    digest = h.check_output(f"cd {tree} && find . -type f -exec md5sum {{}} + | sort -k2")
    sums = {l.split("  ", 1)[1][2:]: l.split()[0] for l in digest.splitlines()}
    return [f"{l}\t{sums.get(l.split(chr(9), 1)[0], '')}" for l in lines]


def hardlink_groups(h, tree):
    """Sets of paths that share an inode (the single-instance store)."""
    out = h.check_output(f"cd {tree} && find . -type f -links +1 -printf '%i %P\\n' | sort")
    groups = {}
    for line in out.splitlines():
        inode, rel = line.split(" ", 1)
        groups.setdefault(inode, set()).add(rel)
    return sorted(sorted(g) for g in groups.values())


# Every ordinary table of a database (partitions included, not their partitioned parents: which of
# those pg_stat_user_tables lists changed between PostgreSQL 13 and 15), as schemaname, relname.
USER_TABLES = ("(SELECT n.nspname AS schemaname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
               "WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')) u")


def table_counts(h, db):
    """Exact row count of every table of `db`."""
    sql = ("SELECT string_agg(format('SELECT %L, count(*) FROM %I.%I', schemaname||'.'||relname, "
           "schemaname, relname), ' UNION ALL ') FROM " + USER_TABLES)
    psql = "runuser -u postgres -- psql -X -At -d %s -c %s"
    query = h.check_output(psql, db, sql)
    out = h.check_output(psql, db, query)
    return dict(line.rsplit("|", 1) for line in out.splitlines())


def table_rows(h, db):
    """Every table of `db`: the md5 of each row's text (rendered in UTC on both servers), as a multiset.

    Two round trips a database, whatever its number of tables (BlueMind's partitions are hundreds)."""
    import collections
    # The time zone from the environment (PGTZ), not a SET before the query: psql 15 and later print
    # the result of every statement of a -c string ("SET" too), older ones only the last one's.
    psql = "runuser -u postgres -- env PGTZ=UTC psql -X -At -d %s -c %s"
    tables = h.check_output(psql, db, "SELECT quote_ident(schemaname) || '.' || quote_ident(relname) FROM " + USER_TABLES)
    out = {table: collections.Counter() for table in tables.split()}
    if not out:
        return out
    query = " UNION ALL ".join("SELECT %s, md5(t::text) FROM %s t" % ("'" + table.replace("'", "''") + "'", table)
                               for table in sorted(out))
    for line in h.check_output(psql, db, query).splitlines():
        table, digest = line.rsplit("|", 1)
        out[table][digest] += 1
    return out


TOP = Path(__file__).resolve().parents[2]


def _playbook_command(playbook, *args):
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(TOP / ".venv/collections"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.default"}
    argv = [str(TOP / ".venv/bin/ansible-playbook"), "-i", os.environ["MOLECULE_INVENTORY_FILE"],
            str(TOP / "playbooks" / playbook), *args]
    return argv, env


def ansible_playbook(playbook, *args):
    """Run one of the collection's playbooks against the scenario's hosts; returns the CompletedProcess."""
    argv, env = _playbook_command(playbook, *args)
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=900, check=False)


def start_playbook(playbook, *args):
    """The same in the background, in its own process group (to be killed whole, as a controller dies).
    Its output goes to a file (a pipe nobody reads would stall it): `said(proc)` reads it."""
    argv, env = _playbook_command(playbook, *args)
    out = tempfile.NamedTemporaryFile(prefix="playbook-", suffix=".log", delete=False)
    proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    out.close()
    proc.output = out.name
    return proc


def said(proc):
    """What a playbook started by start_playbook printed so far."""
    with open(proc.output, encoding="utf-8", errors="replace") as fh:
        return fh.read()


def wait_for(proc, sign, what, timeout=180):
    """Poll `sign()` until true while `proc` runs; fail saying `what` never happened."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sign():
            return
        assert proc.poll() is None, "the run ended (exit %s) before %s:\n%s" % (proc.returncode, what, said(proc)[-3000:])
        time.sleep(0.2)
    raise AssertionError("%s did not happen within %d s:\n%s" % (what, timeout, said(proc)[-3000:]))


def kill_controller(proc):
    """SIGKILL ansible-playbook's whole process group: the controller dies without a word."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def kill_controller_when(proc, sign, what, timeout=180):
    """SIGKILL the controller once `sign()` holds; killed too when it never does (a run left going on
    would carry the migration past the point the next steps expect)."""
    try:
        wait_for(proc, sign, what, timeout)
    finally:
        if proc.poll() is None:
            kill_controller(proc)


def quick(name, cmd):
    """One shell command in the container `name`, straight through docker: a look every 0.2 s must be
    cheap (testinfra's ansible backend takes about a second a command). Returns its standard output."""
    return subprocess.run(["docker", "exec", name, "sh", "-c", cmd], capture_output=True, text=True,
                          timeout=30, check=False).stdout


def writing(h, folder, name):
    """rsync is writing `name` in `folder` on `h` (its temporary file .name.XXXXXX is there)."""
    partial = quick(h.backend.get_hostname(), "ls -a %s | grep -c '^\\.%s\\.' || true" % (folder, name)).strip()
    return partial not in ("", "0")


def watcher(log, *signs, then):
    """A shell script for a host: follows `log` from its end and runs `then` as soon as it has seen each
    of `signs` (substrings of a line) in that order. The command runs inside the reading loop, at once:
    a `tail | grep -q` pipeline would only end at the next line the log gets, which may come too late."""
    steps = "\n".join('    %d) case "$line" in *%s*) n=%d;; esac;;' % (i, _sh_quote(sign), i + 1)
                      for i, sign in enumerate(signs))
    return ("n=0\ntail -n0 -F %s 2>/dev/null | while IFS= read -r line; do\n  case $n in\n%s\n  esac\n"
            "  if [ $n -eq %d ]; then\n    %s\n    exit 0\n  fi\ndone\n" % (log, steps, len(signs), then))


def _sh_quote(text):
    return "'" + text.replace("'", "'\\''") + "'"


def kill_controller_mid_pull(proc, target, folder, name, also=lambda: True):
    """SIGKILL the controller once the pull is writing `name` in `folder` on the target."""
    kill_controller_when(proc, lambda: writing(target, folder, name) and also(), "the pull writing %s" % name)


def big_file(h, path, megabytes):
    h.check_output("dd if=/dev/urandom of=%s bs=1M count=%s status=none", path, str(megabytes))


def slow_link(h, rate="80mbit"):
    """The host's link slowed (tbf): a big file takes seconds to move."""
    h.check_output("tc qdisc replace dev eth0 root tbf rate %s burst 64kb latency 400ms", rate)


def full_speed(h):
    h.run("tc qdisc del dev eth0 root")


def snapshot(h):
    """What a failed run must leave as it was: services, SSH trust, migration state, every tree."""
    cmds = ["bmctl status", "systemctl is-active postfix", "cat /root/.ssh/authorized_keys 2>/dev/null",
            "ls -l /root/.ssh", "ls -la /var/lib/bluemind-migration 2>&1",
            "cd / && find " + " ".join(t.lstrip("/") for t in TREES)
            + " -printf '%p %s %T@ %u %g %m\\n' | sort | md5sum",
            "runuser -u postgres -- psql -X -At -c 'SELECT datname, xact_commit > 0 FROM pg_stat_database ORDER BY 1'"]
    return {c: quick(h.backend.get_hostname(), c) for c in cmds}


def assert_failed_with(proc, *texts):
    """The run failed and its output says each of `texts`; else show the end of what it said."""
    out = proc.stdout + proc.stderr
    missing = [t for t in texts if t not in out]
    assert proc.returncode != 0 and not missing, "exit %d, missing %s in:\n%s" % (proc.returncode, missing, out[-3000:])


# By design the target holds its own address in bj's t_server, in My Networks (t_systemconf) and as
# the webmail users' IMAP host (rc_users); test_target_knows_its_own_address checks them.
CHANGED_BY_DESIGN = {"bj": {"public.t_server", "public.t_systemconf", "public.rc_users"}}


# The lab's mail load (lab/sim/bmsim/load.py) by its Message-ID, in a postfix queue file or a mailbox file.
LOAD_ID = r"load\.[0-9a-f]+\.[0-9]+@bmsim\.lab\.test"
QUEUES = " ".join("/var/spool/postfix/" + name for name in ("maildrop", "incoming", "active", "deferred", "hold"))


def queued_deliveries(origin, target):
    """The load's messages that were still in the origin's postfix queues when it stopped (the mail
    load runs until the stop), which config_copy moved to the target: ``(mailboxes, delivered, lost)``,
    the mailboxes (``domain/user``) of those the target delivered, how many it delivered, and the ids of
    those neither delivered nor queued there. Their rows and files are the target's own, as the smoke
    message's are; a lost one is a failure of the migration."""
    ids = set(origin.check_output("grep -rahoE '%s' %s 2>/dev/null | sort -u; true" % (LOAD_ID, QUEUES)).split())
    if not ids:
        return (), 0, []
    pattern = "|".join(i.replace(".", "\\.") for i in sorted(ids))
    found, mailboxes = set(), set()
    for line in target.check_output("grep -roE '%s' /var/spool/cyrus/data 2>/dev/null; true" % pattern).splitlines():
        path, _colon, found_id = line.rpartition(":")
        parts = path.split("/")  # /var/spool/cyrus/data/<domain>/<user>/...
        if found_id in ids and len(parts) > 6:
            found.add(found_id)
            mailboxes.add("/".join(parts[5:7]))
    still = set(target.check_output("grep -rahoE '%s' %s 2>/dev/null | sort -u; true" % (LOAD_ID, QUEUES)).split())
    return tuple(sorted(mailboxes)), len(found), sorted(ids - found - still)


def rows_lost(db, origin_rows, target_rows, messages=1):
    """``{table: rows}`` of the origin (table_rows) not found as is on the target, beyond the rows
    changed by design and what ``messages`` smoke deliveries explain (a counter updated in place)."""
    lost = {}
    for table, rows in origin_rows.items():
        if table in CHANGED_BY_DESIGN.get(db, ()):
            continue
        ours = target_rows.get(table, {})
        missing, added = sum((rows - ours).values()), sum((ours - rows).values())
        if missing and not content_explained(table, missing, added, messages):
            lost[table] = missing
    return lost


def counts_unexplained(origin_counts, target_counts, messages=1):
    """``{table: (origin, target)}`` row counts (table_counts) that ``messages`` deliveries do not explain."""
    return {table: (rows, target_counts.get(table)) for table, rows in origin_counts.items()
            if target_counts.get(table) != rows and not count_explained(table, rows, target_counts.get(table, -1), messages)}
