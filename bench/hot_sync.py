"""Hot sync: the collection's bluemind_sync module against plain `rsync -aH` of the same trees over
the same SSH (the migration key and pinned host key that prereq sets up), on the bench lab.

  .venv/bin/python bench/hot_sync.py [--scale s|m|l|<files>] [--reps 3] [--no-reset]

For each method: a first full pull into emptied target trees, then a pull with nothing changed.
Methods, interleaved (the order rotates every repetition so that load on the shared controller hits
them alike):
  plain        rsync -aH, the seven trees one after the other (what an operator types)
  plain-par4   the same, four trees at a time (xargs -P4): what parallelism alone gives
  module       bluemind_sync as the role runs it: workers chosen by the module (half the target's
               processors, 1 to 4), the first pull by checksum, the next one by size and time plus a
               content comparison of the files modified since the first began (checksum_since)
  module-par4  the same with 4 workers
The module runs in a one-task playbook on the target; its own `seconds` (rsync time, without
ansible's start-up) and the playbook's wall time are both kept. Memory: every 50 ms a sampler on
the target sums VmRSS (and PSS) of the module's process tree (the AnsiballZ python, its rsync
workers and their ssh) or of the plain rsync's; the peaks are reported.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lib  # noqa: E402

KEY = "/root/.ssh/bluemind_migration_ed25519"
KH = "/root/.ssh/bluemind_migration_known_hosts"
SSH = "ssh -i %s -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=%s" % (KEY, KH)
MARK = "bmbench-mark"
SAMPLER = r"""
import json, os, sys, time
marker = sys.argv[1]
peak = {"rss_kib": 0, "pss_kib": 0, "root_rss_kib": 0, "procs": 0}
def field(pid, name, fname='status'):
    try:
        for l in open('/proc/%s/%s' % (pid, fname)):
            if l.startswith(name):
                return int(l.split()[1])
    except OSError:
        pass
    return 0
while not os.path.exists('/tmp/bmbench.stop'):
    children, roots = {}, []
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            stat = open('/proc/%s/stat' % pid).read()
            ppid = stat.rsplit(')', 1)[1].split()[1]
            cmd = open('/proc/%s/cmdline' % pid, 'rb').read()
        except OSError:
            continue
        children.setdefault(ppid, []).append(pid)
        if marker.encode() in cmd and b'sampler' not in cmd:
            roots.append(pid)
    tree, todo = set(), list(roots)
    while todo:
        p = todo.pop()
        if p not in tree:
            tree.add(p)
            todo += children.get(p, [])
    if tree:
        rss = sum(field(p, 'VmRSS:') for p in tree)
        pss = sum(field(p, 'Pss:', 'smaps_rollup') for p in tree)
        root = max([field(p, 'VmRSS:') for p in roots] or [0])
        if rss > peak['rss_kib']:
            peak.update(rss_kib=rss, procs=len(tree))
        peak['pss_kib'] = max(peak['pss_kib'], pss)
        peak['root_rss_kib'] = max(peak['root_rss_kib'], root)
    time.sleep(0.05)
print(json.dumps(peak))
"""


def sampled(marker, action):
    """Run action() while sampling the memory of the process trees whose root's cmdline holds marker."""
    lib.sh(lib.TARGET, "rm -f /tmp/bmbench.stop")
    sampler = subprocess.Popen(["docker", "exec", "-i", lib.TARGET, "python3", "-c", SAMPLER, marker, "sampler"],
                               stdout=subprocess.PIPE, text=True)
    time.sleep(0.3)
    start = time.monotonic()
    try:
        extra = action()
        seconds = time.monotonic() - start
    finally:
        lib.sh(lib.TARGET, "touch /tmp/bmbench.stop")
        peak = json.loads(sampler.communicate(timeout=30)[0])
    return {"wall": round(seconds, 2), "peak": peak, **(extra or {})}


def wipe():
    lib.sh(lib.TARGET, " ; ".join("find %s -mindepth 1 -delete" % t for t in lib.TREES))


def plain(parallel=1):
    def action():
        if parallel == 1:
            cmd = " && ".join("rsync -aH -e '%s' root@%s:%s/ %s/" % (SSH, lib.ORIGIN_IP, t, t) for t in lib.TREES)
        else:
            cmd = ("printf '%%s\\n' %s | xargs -P%d -I{} rsync -aH -e '%s' root@%s:{}/ {}/"
                   % (" ".join(lib.TREES), parallel, SSH, lib.ORIGIN_IP))
        lib.sh(lib.TARGET, "%s; : %s" % (cmd, MARK))
    return action


class Module:
    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="bmbench-hot-"))

    def __call__(self, workers, checksum, since=None):
        args = dict(origin_host=lib.ORIGIN_IP, ssh_key=KEY, known_hosts=KH, trees=lib.TREES, workers=workers,
                    checksum=checksum)
        if since is not None:
            args["checksum_since"] = since
        play = [{"hosts": "target", "gather_facts": False, "tasks": [{"bluemind.migration.bluemind_sync": args}]}]
        path = self.dir / "play.json"
        path.write_text(json.dumps(play))

        def action():
            cmd = [str(lib.TOP / ".venv/bin/ansible-playbook"), "-i", str(lib.INVENTORY), str(path)]
            env = lib.ansible_env({"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", "ANSIBLE_PIPELINING": "False"})
            proc = subprocess.run(cmd, cwd=lib.TOP, env=env, capture_output=True, text=True)
            try:
                # the JSON document, without profile_tasks' recap that ansible.cfg adds after it
                doc = proc.stdout[proc.stdout.index("{"):proc.stdout.rindex("}") + 1]
                res = next(iter(json.loads(doc)["plays"][0]["tasks"][0]["hosts"].values()))
            except Exception as exc:  # noqa: BLE001
                raise RuntimeError("module run failed: %s %s %s" % (exc, proc.stdout[-1500:], proc.stderr[-1500:]))
            if res.get("failed"):
                raise RuntimeError("bluemind_sync failed: %s" % res.get("msg"))
            return {"module_seconds": res.get("seconds"), "changed": res.get("changed"),
                    "files": res.get("files"), "bytes": res.get("bytes"), "workers": res.get("workers"),
                    "origin_clock_start": res.get("origin_clock_start"),
                    "recent": sum(t.get("recent", 0) for t in res.get("trees", []))}
        return action


METHODS = ("plain", "plain-par4", "module", "module-par4")


def measure(method, module):
    if not method.startswith("module"):
        action = plain(1) if method == "plain" else plain(4)
        wipe()
        return {"first": sampled(MARK, action), "nochange": sampled(MARK, action)}
    marker, workers = "AnsiballZ_bluemind_sync", 4 if method == "module-par4" else 0
    wipe()
    first = sampled(marker, module(workers, True))
    again = sampled(marker, module(workers, False, first["origin_clock_start"] - 2))
    return {"first": first, "nochange": again}


def seconds_of(m):
    return m.get("module_seconds") if m.get("module_seconds") is not None else m["wall"]


def summarize(runs):
    out = {}
    for method in METHODS:
        rs = [r for r in runs if r["method"] == method]
        if not rs:
            continue
        out[method] = {
            "first": lib.summary([seconds_of(r["first"]) for r in rs]),
            "first_wall": lib.summary([r["first"]["wall"] for r in rs]),
            "nochange": lib.summary([seconds_of(r["nochange"]) for r in rs]),
            "nochange_wall": lib.summary([r["nochange"]["wall"] for r in rs]),
            "peak_rss_mib": round(max(max(r[k]["peak"]["rss_kib"] for k in ("first", "nochange")) for r in rs) / 1024, 1),
            "peak_pss_mib": round(max(max(r[k]["peak"]["pss_kib"] for k in ("first", "nochange")) for r in rs) / 1024, 1),
            "peak_root_rss_mib": round(max(max(r[k]["peak"]["root_rss_kib"] for k in ("first", "nochange"))
                                           for r in rs) / 1024, 1),
            "peak_procs": max(max(r[k]["peak"]["procs"] for k in ("first", "nochange")) for r in rs),
        }
    base = out.get("plain")
    if base:
        for method, s in out.items():
            s["first_ratio"] = round(s["first"]["median"] / base["first"]["median"], 3)
            s["first_wall_ratio"] = round(s["first_wall"]["median"] / base["first_wall"]["median"], 3)
            s["nochange_ratio"] = round(s["nochange"]["median"] / base["nochange"]["median"], 3)
            s["nochange_wall_ratio"] = round(s["nochange_wall"]["median"] / base["nochange_wall"]["median"], 3)
    return out


def render(scale, files, summ):
    rows = []
    for method, s in summ.items():
        rows.append((method, s["first"]["n"], "%.1f" % s["first"]["median"], "%.1f-%.1f" % (s["first"]["min"], s["first"]["max"]),
                     "%.2f" % s.get("first_ratio", 0), "%.1f" % s["first_wall"]["median"], "%.2f" % s.get("first_wall_ratio", 0),
                     "%.1f" % s["nochange"]["median"], "%.2f" % s.get("nochange_ratio", 0),
                     "%.1f" % s["nochange_wall"]["median"], "%.1f" % s["peak_rss_mib"], "%.1f" % s["peak_pss_mib"],
                     "%.1f" % s["peak_root_rss_mib"]))
    text = ("hot sync at scale %s (%d files): seconds (module: its own rsync time; wall: with ansible's start-up), "
            "peak memory of the process tree on the target\n" % (scale, files))
    text += lib.table(["method", "reps", "first", "range", "x plain", "first wall", "x plain",
                       "no-change", "x plain", "no-chg wall", "RSS MiB", "PSS MiB", "py RSS"], rows)
    text += "\ntargets: first pull within 10% of plain (x plain <= 1.10), no-change no slower (<= 1.00), " \
            "module memory < 100 MB"
    return text


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", default="s")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--no-reset", action="store_true", help="keep the origin as it is (already seeded)")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    lib.ensure_lab(args.scale)
    if not args.no_reset:
        lib.log("reset at scale %s" % args.scale)
        lib.reset(args.scale)
    workdir = lib.RESULTS / "work" / ("hot_sync-" + time.strftime("%Y%m%dT%H%M%S"))
    rc, _s, _o = lib.playbook(["playbooks/migrate.yml", "--tags", "prereq"], workdir / "prereq.log")
    if rc != 0:
        raise SystemExit("prereq failed: see %s" % (workdir / "prereq.log"))
    lib.sh(lib.TARGET, "bmctl stop >/dev/null; systemctl stop postfix")
    # warm the origin's page cache once, so that no method pays for a cold read alone
    lib.sh(lib.ORIGIN, "tar -cf - %s 2>/dev/null | cat >/dev/null" % " ".join(lib.TREES))
    files = int(lib.sh(lib.ORIGIN, "find %s ! -type d | wc -l" % " ".join(lib.TREES)).strip())
    methods = args.methods.split(",")
    module = Module()
    data = {"benchmark": "hot_sync", "scale": str(args.scale), "files": files, "machine": lib.machine(), "runs": []}
    out = args.out or "hot_sync-%s.json" % args.scale
    for rep in range(args.reps):
        order = methods[rep % len(methods):] + methods[:rep % len(methods)]
        for method in order:
            lib.log("rep %d %s" % (rep + 1, method))
            r = measure(method, module)
            r.update(method=method, rep=rep + 1, loadavg=os.getloadavg())
            data["runs"].append(r)
            data["summary"] = summarize(data["runs"])
            lib.save(out, data)
    wipe()
    print(render(args.scale, files, data["summary"]))
    print("raw figures: %s" % (lib.RESULTS / out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
