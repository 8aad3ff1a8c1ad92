"""Shared helpers of the benchmarks: the bench lab, ansible runs, the independent loss check,
statistics, tables, the machine's description.

The benchmarks run on their own lab (BMLAB_NAME=bmbench, BMLAB_NET=172.30.97 by default), never on
the lab of the tests (bmlab-*). Everything here talks only to the two lab containers (docker exec, and
the lab's addresses from the controller).
"""
import collections
import datetime
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lab"))
from delivery_rows import content_explained, count_explained  # noqa: E402  (what the smoke message writes)

TOP = Path(__file__).resolve().parent.parent
BENCH = TOP / "bench"
RESULTS = BENCH / "results"
NAME = os.environ.get("BMLAB_NAME", "bmbench")
TESTS_LAB = "bmlab"  # lab.sh's default lab, the tests' (its inventory is lab/inventory.yml)
NET = os.environ.get("BMLAB_NET", "172.30.97")
INVENTORY = TOP / "lab" / ("inventory-%s.yml" % NAME)
STATE = TOP / "lab" / (".state-%s" % NAME)
ORIGIN, TARGET = NAME + "-origin", NAME + "-target"
ORIGIN_IP, TARGET_IP = NET + ".10", NET + ".20"
TREES = ["/var/spool/cyrus", "/var/lib/cyrus", "/var/spool/bm-hsm", "/var/spool/sieve",
         "/var/spool/bm-elasticsearch", "/var/spool/bm-docs", "/var/spool/bm-filehosting"]
# BlueMind's own backup leaves these out (runtime state, a search index Cyrus rebuilds); the
# collection excludes them too. The check reports them apart, never as a loss.
EXCLUDED = re.compile(r"(^|/)cyrus\.squat$|^/var/lib/cyrus/(proc|lock|socket)(/|$)")
SCALES = {"s": 5000, "m": 100000, "l": 1000000}
# Where the target's configuration lives (what the vendor's scp list and the config copy overwrite):
# saved once from the fresh target, put back before every run.
TARGET_CONFIG = ["/etc/bm", "/etc/bm-hps", "/etc/bm-webmail", "/etc/ssl/certs", "/var/lib/bm-ca",
                 "/usr/share/bm-elasticsearch/config", "/etc/postfix", "/etc/imapd.conf", "/etc/cyrus.conf"]
PRISTINE = "/root/bmbench-pristine-config.tar"
VENDOR_KEY = "/root/.ssh/bmbench_vendor_ed25519"


def log(*args):
    print("[%s]" % time.strftime("%H:%M:%S"), *args, file=sys.stderr, flush=True)


def files_of(scale):
    return SCALES[scale] if scale in SCALES else int(scale)


# --- running things --------------------------------------------------------------------------
def sh(host, cmd, input=None, check=True, timeout=None):
    """bash -c in a lab container; stdout."""
    proc = subprocess.run(["docker", "exec", "-i", host, "bash", "-c", cmd], input=input,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError("%s: %r exited %d: %s" % (host, cmd[:200], proc.returncode,
                                                     (proc.stderr or proc.stdout)[-2000:]))
    return proc.stdout


def lab_up():
    return (STATE / "lab.json").exists() and INVENTORY.exists() and \
        subprocess.run(["docker", "inspect", ORIGIN, TARGET], capture_output=True).returncode == 0


def ensure_lab(scale):
    """Start the bench lab when it is not up (lab.sh up reuses running containers). Never the tests' lab: a run
    reseeds its origin and leaves writers going when it stops early."""
    if NAME == TESTS_LAB:
        raise SystemExit("bench: BMLAB_NAME=%s is the tests' lab; the benchmarks run on a lab of their own "
                         "(bmbench by default, or another name and BMLAB_NET)" % NAME)
    if lab_up():
        return
    log("starting the bench lab %s on %s.0/24" % (NAME, NET))
    env = dict(os.environ, BMLAB_NAME=NAME, BMLAB_NET=NET)
    subprocess.run(["bash", str(TOP / "lab" / "lab.sh"), "up", str(scale)], env=env, check=True)


def ansible_env(extra=None):
    env = dict(os.environ, ANSIBLE_CONFIG=str(TOP / "ansible.cfg"), PROFILE_TASKS_SORT_ORDER="none",
               PROFILE_TASKS_TASK_OUTPUT_LIMIT="all", ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1")
    env.update(extra or {})
    return env


def playbook(args, logfile, env=None):
    """ansible-playbook on the bench inventory from the repository's root; (rc, seconds, output)."""
    cmd = [str(TOP / ".venv/bin/ansible-playbook"), "-i", str(INVENTORY)] + args
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=TOP, env=ansible_env(env), capture_output=True, text=True)
    seconds = time.monotonic() - start
    Path(logfile).parent.mkdir(parents=True, exist_ok=True)
    Path(logfile).write_text(proc.stdout + "\n--- stderr\n" + proc.stderr)
    return proc.returncode, seconds, proc.stdout


PROFILE_LINE = re.compile(r"^(?P<name>.*?)\s-{2,}\s+(?P<sec>\d+\.\d+)s\s*$")


def profile_tasks(output):
    """[(task, seconds)] from ansible.posix.profile_tasks' summary, in run order."""
    lines = output.splitlines()
    # the summary is the last block, after the recap
    try:
        start = max(i for i, l in enumerate(lines) if l.startswith("PLAY RECAP"))
    except ValueError:
        start = 0
    out = []
    for line in lines[start:]:
        m = PROFILE_LINE.match(line.strip())
        if m:
            out.append((m.group("name").strip(), float(m.group("sec"))))
    return out


# --- the target serving again ----------------------------------------------------------------
def serving(ip=TARGET_IP):
    """Core state running on :8090 and SMTP answering 220 on :25."""
    try:
        with urllib.request.urlopen("http://%s:8090/api/system/installation/state" % ip, timeout=1) as r:
            if json.loads(r.read().decode()) != "CORE_STATE_RUNNING":
                return False
    except Exception:
        return False
    try:
        with socket.create_connection((ip, 25), timeout=1) as s:
            s.settimeout(2)
            return s.recv(64).startswith(b"220")
    except Exception:
        return False


class Watch(threading.Thread):
    """Polls ``sign()`` from the controller every ``interval`` seconds (50 ms: the issue's independent
    clock); ``.at`` is the monotonic time it first held in ``confirm`` polls in a row (one slow answer
    of a serving host is not its stop)."""

    def __init__(self, sign, interval=0.05, confirm=1):
        super().__init__(daemon=True)
        self.sign, self.interval, self.confirm = sign, interval, confirm
        self.at, self.stop = None, threading.Event()

    def run(self):
        first, hits = None, 0
        while not self.stop.is_set():
            now = time.monotonic()
            if self.sign():
                first, hits = (first if hits else now), hits + 1
                if hits >= self.confirm:
                    self.at = first
                    return
            else:
                hits = 0
            time.sleep(self.interval)


def ServingWatch(ip=TARGET_IP):
    """The target serving again (core running and SMTP answering)."""
    return Watch(lambda: serving(ip))


def DownWatch(ip=ORIGIN_IP):
    """The origin no longer serving (its core or its SMTP gone): the window's start, both arms alike."""
    return Watch(lambda: not serving(ip), confirm=3)


# --- resetting the lab to the same starting point ---------------------------------------------
def save_pristine_target():
    """Keep the fresh target's configuration once, to put it back before every run."""
    if sh(TARGET, "test -s %s && echo yes || true" % PRISTINE).strip() == "yes":
        return
    paths = " ".join(p for p in TARGET_CONFIG)
    sh(TARGET, "tar -cpf %s --ignore-failed-read %s 2>/dev/null; test -s %s" % (PRISTINE, paths, PRISTINE))


def vendor_trust():
    """What the vendor's prerequisites ask for: root on the target logs in as root on the origin with
    a key. The origin is reached as origsrv.domain.tld (an /etc/hosts entry), its host key pinned."""
    sh(TARGET, "test -s {k} || ssh-keygen -q -t ed25519 -N '' -C bmbench-vendor -f {k}".format(k=VENDOR_KEY))
    pub = sh(TARGET, "cat %s.pub" % VENDOR_KEY).strip()
    sh(ORIGIN, "grep -qF '%s' /root/.ssh/authorized_keys || echo '%s' >> /root/.ssh/authorized_keys" % (pub, pub))
    hostkey = " ".join(sh(ORIGIN, "cat /etc/ssh/ssh_host_ed25519_key.pub").split()[:2])
    sh(TARGET, "sed -i '/origsrv/d' /etc/hosts; echo '%s origsrv.domain.tld origsrv' >> /etc/hosts" % ORIGIN_IP)
    sh(TARGET, "echo 'origsrv.domain.tld,origsrv,%s %s' > /root/.ssh/bmbench_vendor_known_hosts" % (ORIGIN_IP, hostkey))
    config = ("# bmbench: the vendor procedure's origsrv\nHost origsrv origsrv.domain.tld\n  User root\n"
              "  IdentityFile %s\n  IdentitiesOnly yes\n  UserKnownHostsFile /root/.ssh/bmbench_vendor_known_hosts\n"
              "  StrictHostKeyChecking yes\n  BatchMode yes\n" % VENDOR_KEY)
    sh(TARGET, "cat > /root/.ssh/config && chmod 600 /root/.ssh/config", input=config)
    sh(TARGET, "ssh root@origsrv.domain.tld true")


def trust_lab_ca():
    """Both hosts trust the lab CA system-wide, as a real server whose certificate comes from a
    trusted CA would. (Until d1eee83, prereq did not pass ca_path to bluemind_info and failed with
    CERTIFICATE_VERIFY_FAILED against the lab's CA; this made the bench independent of that.)"""
    for host in (ORIGIN, TARGET):
        sh(host, "cp /var/lib/bm-ca/cacert.pem /usr/local/share/ca-certificates/bmlab-ca.crt && "
                 "update-ca-certificates >/dev/null 2>&1; true")


def reset(scale, seed=42):
    """Origin as seeded at `scale` (same seed: same data; put back from its copy after the first
    seed) and serving; target fresh, configuration as after its install, no migration state; the
    bench's SSH trust for the vendor commands. The seed's summary, with how the origin was reset."""
    save_pristine_target()
    sh(ORIGIN, "systemctl stop bm-sim-load bm-sim-activity 2>/dev/null; systemctl enable -q postfix bluemind.target; "
               "systemctl start postgresql postfix; bmctl start >/dev/null; postsuper -d ALL >/dev/null 2>&1; true")
    sh(TARGET, "systemctl stop bm-sim-load bm-sim-activity 2>/dev/null; bmctl stop >/dev/null; systemctl stop postfix; "
               "postsuper -d ALL >/dev/null 2>&1; "
               "rm -rf /var/lib/bluemind-migration /var/backups/bluemind-migration /tmp/db.sql /tmp/db-data.sql "
               "/root/.ssh/bluemind_migration_* /tmp/vendor_cold.log; "
               "rm -rf %s; tar -xpf %s -C /; true" % (" ".join(TARGET_CONFIG), PRISTINE))
    # The origin put back from its seeded copy when it has one for this scale, seed and seeder (see
    # PRISTINE_ORIGIN); else both seeders at once (they are independent hosts) and the copy made.
    key = pristine_key(scale, seed)
    restore = not RESEED and sh(ORIGIN, "cat %s/key 2>/dev/null || true" % PRISTINE_ORIGIN).strip() == key
    seeders = [["docker", "exec", TARGET, "bm-sim", "seed", "--fresh"]]
    if not restore:
        seeders.append(["docker", "exec", ORIGIN, "bm-sim", "seed", "--scale", str(scale), "--seed", str(seed)])
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for cmd in seeders]
    restored = restore_origin() if restore else None
    outs = [p.communicate() for p in procs]
    for p, (out, err) in zip(procs, outs):
        if p.returncode != 0:
            raise RuntimeError("seed failed: %s" % err[-2000:])
    summary = restored if restore else json.loads(outs[1][0].strip().splitlines()[-1])
    if not restore and not RESEED:
        save_pristine_origin(key, summary)
    for host in (ORIGIN, TARGET):
        sh(host, "su postgres -c \"psql -X -q -d bj -c 'DROP TABLE IF EXISTS bmbench_delta'\"")
    sh(TARGET, "systemctl enable -q postfix bluemind.target; systemctl start postfix; bmctl start >/dev/null; true")
    sh(ORIGIN, "bmctl start >/dev/null; systemctl start postfix")
    trust_lab_ca()
    vendor_trust()
    return dict(summary, reset="restored" if restore else "seeded")


# The origin's seeded data (its seven trees and its PostgreSQL cluster), copied inside the container
# once seeded: the next resets put it back with rsync, which moves only what a run changed (the delta,
# the writes until the stop, the pages PostgreSQL wrote), a minute at m where the seeder takes 8 to 10
# on a slow disk. It doubles the origin's data on disk: BENCH_RESEED=1 seeds every reset instead.
PRISTINE_ORIGIN = "/var/lib/bmbench-pristine"
RESEED = os.environ.get("BENCH_RESEED", "0") == "1"
ORIGIN_SERVICES = "bluemind.target postfix postgresql 'postgresql@*'"


def pristine_key(scale, seed):
    """What the origin's copy was seeded with: scale, seed and the seeder's code (a lab.sh sync changes it)."""
    code = sh(ORIGIN, "find /opt/bmsim -type f \\( -name '*.py' -o -name '*.sql' \\) | sort | xargs cat | md5sum").split()[0]
    return "%s %s %s" % (scale, seed, code)


def origin_data_paths():
    """The trees and the PostgreSQL cluster's folder, relative to / (rsync -R keeps them so)."""
    pgdata = sh(ORIGIN, "runuser -u postgres -- psql -X -At -c 'SHOW data_directory'").strip()
    return [p.lstrip("/") for p in TREES + [pgdata]]


def copy_origin_data(rsync, input=None):
    """`rsync` (a format of {copy}, the copy's folder, and {paths}, the data's paths relative to /) run on
    the origin with BlueMind, postfix and PostgreSQL stopped; PostgreSQL started again after it."""
    paths = " ".join(origin_data_paths())
    # postgresql.service's stop returns before its clusters' own (postgresql@<major>-main): the copy waits for
    # the server's last process.
    sh(ORIGIN, "systemctl stop %s; while pgrep -x postgres >/dev/null; do sleep 0.1; done" % ORIGIN_SERVICES)
    sh(ORIGIN, rsync.format(copy=PRISTINE_ORIGIN, paths=paths), input=input)
    sh(ORIGIN, "systemctl start postgresql")


def save_pristine_origin(key, summary):
    """One rsync for all the paths: hard links that span two trees stay links. The key is written last:
    a copy cut short is never taken for a whole one."""
    copy_origin_data("rm -rf {copy} && mkdir -p {copy}/data && cd / && rsync -aHR --numeric-ids {paths} {copy}/data/ && "
                     "cat > {copy}/summary.json && echo '%s' > {copy}/key" % key, input=json.dumps(summary))


def restore_origin():
    """The origin's trees and cluster as seeded; the seed's summary."""
    copy_origin_data("cd {copy}/data && rsync -aHR --delete --numeric-ids {paths} /")
    return json.loads(sh(ORIGIN, "cat %s/summary.json" % PRISTINE_ORIGIN))


# --- the independent loss check ---------------------------------------------------------------
SNAPSHOT = r"""
import hashlib, json, os, pwd, grp, stat, sys
trees = json.loads(sys.argv[1])
users, groups, inodes = {}, {}, {}
def uname(u):
    if u not in users:
        try: users[u] = pwd.getpwuid(u).pw_name
        except KeyError: users[u] = str(u)
    return users[u]
def gname(g):
    if g not in groups:
        try: groups[g] = grp.getgrgid(g).gr_name
        except KeyError: groups[g] = str(g)
    return groups[g]
out = {}
for tree in trees:
    for root, dirs, files in os.walk(tree):
        for name in dirs + files:
            p = os.path.join(root, name)
            st = os.lstat(p)
            e = [stat.S_IFMT(st.st_mode) >> 12, stat.S_IMODE(st.st_mode), uname(st.st_uid), gname(st.st_gid)]
            if stat.S_ISREG(st.st_mode):
                h = hashlib.sha1()
                with open(p, 'rb') as f:
                    for b in iter(lambda: f.read(1 << 20), b''): h.update(b)
                e += [st.st_size, st.st_mtime_ns, h.hexdigest()]
                if st.st_nlink > 1: inodes.setdefault(st.st_ino, []).append(p)
            elif stat.S_ISLNK(st.st_mode):
                e += [0, st.st_mtime_ns, os.readlink(p)]
            elif stat.S_ISDIR(st.st_mode):
                e += [0, st.st_mtime_ns, '']
            else:
                e += [0, st.st_mtime_ns, '']
            out[p] = e
for paths in inodes.values():
    first = min(paths)
    for p in paths: out[p].append(first)
json.dump(out, sys.stdout)
"""

COUNTS_SQL = ("SELECT n.nspname || '.' || c.relname, (xpath('/row/c/text()', query_to_xml(format("
              "'SELECT count(*) AS c FROM %I.%I', n.nspname, c.relname), false, true, '')))[1]::text "
              "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') "
              "AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1")
SETTINGS_SQL = ("SELECT coalesce(array_to_string(s.setconfig, ','), '') || ' enc=' || pg_encoding_to_char(d.encoding) "
                "|| ' owner=' || pg_get_userbyid(d.datdba) FROM pg_database d LEFT JOIN pg_db_role_setting s "
                "ON s.setdatabase = d.oid AND s.setrole = 0 WHERE d.datname = current_database()")


def row_hashes(host, db, tables):
    """Every row's md5 (of its text, rendered the same way on both servers), per table: the content
    check, independent of the collection's own (which compares by key and transaction id)."""
    script = "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY'; SET extra_float_digits = 3;\n"
    for table in tables:
        schema, name = table.split(".", 1)
        script += "\\echo ==%s\nCOPY (SELECT md5(t::text) FROM \"%s\".\"%s\" t) TO STDOUT;\n" % (table, schema, name)
    out = sh(host, "su postgres -c \"psql -X -q -At -v ON_ERROR_STOP=1 -d '%s'\"" % db, input=script)
    hashes, current = {}, None
    for line in out.splitlines():
        if line.startswith("=="):
            current = hashes.setdefault(line[2:], [])
        elif current is not None and line:
            current.append(line)
    return hashes


def snapshot(host):
    """Every entry of the seven trees (type, mode, owner names, size, mtime, sha1, hard-link group)
    and every table's row count, database settings, encoding and owner."""
    files = json.loads(sh(host, "python3 - '%s'" % json.dumps(TREES), input=SNAPSHOT))
    dbs = {}
    for db in ("bj", "bj-data"):
        rows = sh(host, "su postgres -c \"psql -X -At -F '|' -d '%s'\"" % db, input=COUNTS_SQL + ";\n")
        settings = sh(host, "su postgres -c \"psql -X -At -d '%s'\"" % db, input=SETTINGS_SQL + ";\n").strip()
        tables = dict((l.split("|")[0], int(l.split("|")[1])) for l in rows.splitlines() if "|" in l)
        dbs[db] = {"tables": tables, "settings": settings, "rows": row_hashes(host, db, tables)}
    return {"files": files, "db": dbs}


def smoke_paths(host):
    """Files on the target that hold the cutover's smoke message, and their mailbox folders."""
    out = sh(host, "grep -rlF 'X-BlueMind-Migration: bluemind-migration-smoke' /var/spool/cyrus 2>/dev/null || true")
    return [l for l in out.splitlines() if l]


def compare(origin, target, smoke=()):
    """What the target lacks or holds differently. 'lost' is data loss; 'metadata' differences of
    mode/owner/time/hard links are reported apart; what the smoke message adds is ignored."""
    smoke = set(smoke)
    # the smoke message's mailbox: its spool folder and its Cyrus metadata folder (cyrus.index, ...)
    smoke_dirs = set(os.path.dirname(p) for p in smoke)
    smoke_dirs |= set(d.replace("/var/spool/cyrus/data/", "/var/lib/cyrus/meta/", 1) for d in list(smoke_dirs))
    lost, extra, content, meta, excluded = [], [], [], [], []
    of, tf = origin["files"], target["files"]
    for p, e in of.items():
        if EXCLUDED.search(p):
            excluded.append(p)
            continue
        t = tf.get(p)
        if t is None:
            lost.append(p)
            continue
        in_smoke_box = os.path.dirname(p) in smoke_dirs or p in smoke_dirs
        if e[0] != t[0] or (e[0] == 8 and (e[4] != t[4] or e[6] != t[6])) or (e[0] == 10 and e[6] != t[6]):
            if in_smoke_box and os.path.basename(p).startswith("cyrus."):
                continue
            content.append(p)
            continue
        if e[1:4] != t[1:4] or (e[0] != 4 and e[5] != t[5]) or (len(e) > 7) != (len(t) > 7) \
                or (len(e) > 7 and e[7] != t[7]):
            if not in_smoke_box:
                meta.append(p)
    for p in tf:
        if p not in of and p not in smoke and not EXCLUDED.search(p):
            extra.append(p)
    rows = []
    for db in origin["db"]:
        o, t = origin["db"][db]["tables"], target["db"][db]["tables"]
        for table in sorted(set(o) | set(t)):
            a, b = o.get(table), t.get(table)
            if a == b:
                continue
            # the smoke message's rows (lab/delivery_rows.py)
            if a is not None and b is not None and smoke and count_explained(table, a, b, len(smoke)):
                continue
            rows.append({"db": db, "table": table, "origin": a, "target": b})
    # Row contents: every origin row must be on the target, as is; the target may hold the smoke
    # message's rows and, by design, its own address in bj's t_server and t_systemconf (My Networks),
    # and as every webmail user's IMAP host (rc_users: the same rows, mail_host rewritten).
    contents = []
    for db in origin["db"]:
        o, t = origin["db"][db].get("rows", {}), target["db"][db].get("rows", {})
        for table in sorted(set(o) | set(t)):
            a, b = collections.Counter(o.get(table, [])), collections.Counter(t.get(table, []))
            missing, added = sum((a - b).values()), sum((b - a).values())
            if not missing and not added:
                continue
            by_design = db == "bj" and (table in ("public.t_server", "public.t_systemconf") and missing <= 2
                                        or table == "public.rc_users" and missing == added)
            smoke_rows = bool(smoke) and content_explained(table, missing, added, len(smoke))
            if not (by_design or smoke_rows):
                contents.append({"db": db, "table": table, "origin_rows_missing_or_changed": missing,
                                 "target_rows_extra_or_changed": added})
    settings = [{"db": db, "origin": origin["db"][db]["settings"], "target": target["db"][db]["settings"]}
                for db in origin["db"] if origin["db"][db]["settings"] != target["db"][db]["settings"]]
    ok = not (lost or content or extra or rows or contents)
    settings_lost = [s["db"] for s in settings if s["origin"].split(" enc=")[0] not in s["target"]]
    return {"ok": ok, "files_origin": len(of), "lost_files": len(lost), "changed_content": len(content),
            "extra_files": len(extra), "metadata_diffs": len(meta), "excluded_by_design": len(excluded),
            "rows_differ": rows, "row_contents_differ": contents, "db_settings_differ": settings,
            "db_settings_lost": settings_lost, "smoke_files": sorted(smoke),
            "examples": {"lost": lost[:5], "content": content[:5], "extra": extra[:5], "metadata": meta[:5]}}


def check(smoke=True, queued=False):
    """The same check for both arms: the origin (stopped) against the target (serving). With ``queued``
    (writes until the stop), the mail left in the origin's postfix queues must be on the target too,
    delivered or queued: its deliveries there are explained as the smoke message's are."""
    delivered, mail = [], None
    if queued:
        mail = queued_mail()
        delivered = mail.pop("delivered_paths")
    o = snapshot(ORIGIN)
    t = snapshot(TARGET)
    result = compare(o, t, (smoke_paths(TARGET) if smoke else []) + delivered)
    if mail is not None:
        result["queued"] = mail
        result["ok"] = result["ok"] and not mail["lost"]
    return result


# The load's messages (lab/sim/bmsim/load.py) by their Message-ID, in a queue file or a mailbox.
LOAD_ID = r"load\.[0-9a-f]+\.[0-9]+@bmsim\.lab\.test"
QUEUES = "/var/spool/postfix/{maildrop,incoming,active,deferred,hold}"


def queued_ids(host):
    out = sh(host, "grep -rahoE '%s' %s 2>/dev/null | sort -u; true" % (LOAD_ID, QUEUES))
    return [line for line in out.split() if line]


def queued_mail():
    """The load's messages left in the origin's queues (stopped: its queue files stay), and where each is
    on the target: ``lost`` (neither delivered nor queued there), ``delivered_paths`` (its spool files)."""
    ids = queued_ids(ORIGIN)
    paths, found = set(), set()
    if ids:
        # one grep: each spool file holding one of them, with the id it holds ("path:id" lines)
        pattern = "|".join(re.escape(i) for i in ids)
        for line in sh(TARGET, "grep -roE '%s' /var/spool/cyrus 2>/dev/null; true" % pattern).splitlines():
            path, _colon, found_id = line.rpartition(":")
            if path:
                paths.add(path)
                found.add(found_id)
    still = set(queued_ids(TARGET))
    lost = sorted(i for i in ids if i not in found and i not in still)
    return {"origin": len(ids), "delivered_on_target": len(set(ids) & found), "queued_on_target": len(set(ids) & still),
            "lost": lost, "delivered_paths": sorted(paths)}


def live_writes(rate):
    """Mail at ``rate`` a second and users changing flags on the origin until its BlueMind stops (both
    units are part of bluemind.target: `bmctl stop` stops them as it stops BlueMind's own services)."""
    sh(ORIGIN, "echo RATE=%s >/etc/bm/sim-load.conf; systemctl start bm-sim-load bm-sim-activity" % rate)


def settle_target_queue(timeout=30):
    """Deliver what the target holds in its queues (moved from the origin) before the check reads it."""
    sh(TARGET, "postqueue -f 2>/dev/null; for i in $(seq %d); do mailq 2>/dev/null | grep -q 'Mail queue is empty' "
               "&& break; sleep 1; done; true" % timeout)


# --- the machine's pressure (PSI) -------------------------------------------------------------
def pressure():
    """``{io, cpu}``: the kernel's stall totals (microseconds some task waited, /proc/pressure) and the
    monotonic time, to say what share of a span the disk or the CPU held tasks back; {} without PSI."""
    out = {"at": time.monotonic()}
    for kind in ("io", "cpu"):
        try:
            line = Path("/proc/pressure/%s" % kind).read_text().splitlines()[0]
        except OSError:
            return {}
        fields = dict(item.split("=") for item in line.split()[1:])
        out[kind] = {"total_us": int(fields["total"]), "avg10": float(fields["avg10"])}
    return out


def pressure_share(before, after):
    """The share of the span between two :func:`pressure` reads during which some task waited for the disk
    (``io``) or the CPU (``cpu``), and the 10 s averages at its start: a window measured while the disk
    throttled says so."""
    if not before or not after:
        return None
    span = (after["at"] - before["at"]) * 1e6
    return {kind: {"stalled_share": round((after[kind]["total_us"] - before[kind]["total_us"]) / span, 3) if span > 0 else None,
                   "avg10_before": before[kind]["avg10"]} for kind in ("io", "cpu")}


# --- figures --------------------------------------------------------------------------------
def summary(values):
    values = [v for v in values if v is not None]
    if not values:
        return {"n": 0}
    return {"n": len(values), "median": statistics.median(values), "min": min(values), "max": max(values),
            "spread": max(values) - min(values)}


def machine():
    def out(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip()
        except Exception as exc:  # noqa: BLE001
            return "unknown (%s)" % exc
    mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), platform.processor())
    return {"nproc": os.cpu_count(), "cpu": cpu, "mem_total_kib": int(mem), "kernel": platform.release(),
            "docker": out(["docker", "version", "-f", "{{.Server.Version}}"]),
            "python": platform.python_version(),
            "commit": out(["git", "-C", str(TOP), "rev-parse", "HEAD"]),
            "dirty": out(["git", "-C", str(TOP), "status", "--short", "--", "roles", "plugins", "playbooks", "meta"]), "loadavg_at_start": os.getloadavg(),
            "lab": {"name": NAME, "origin": sh(ORIGIN, "cat /etc/debian_version; rsync --version | head -1; "
                                                       "psql --version").split("\n")[:3] if lab_up() else None,
                    "target": sh(TARGET, "cat /etc/debian_version; rsync --version | head -1; "
                                         "psql --version").split("\n")[:3] if lab_up() else None},
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat()}


def save(name, data):
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    return path


def table(headers, rows):
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h))
              for i, h in enumerate(headers)]
    line = "  ".join("%-*s" % (w, h) for w, h in zip(widths, headers))
    out = [line, "  ".join("-" * w for w in widths)]
    for r in rows:
        out.append("  ".join(("%*s" if isinstance(v, (int, float)) or str(v)[:1].isdigit() else "%-*s") % (w, v)
                             for w, v in zip(widths, r)))
    return "\n".join(out)
