"""Downtime: the cold window of the vendor's commands (baseline) against the collection's.

  .venv/bin/python bench/downtime.py [--scale s|m|l|<files>] [--runs 3] [--out downtime-<scale>.json]

Each run starts from the same point: the origin reseeded with the same seed at the scale, a fresh
target, one hot sync by the collection (prereq,hot_sync) for BOTH arms; then the same scripted delta
on the origin (mail through SMTP, flag changes that rewrite index files in place, deletions,
database writes). The window runs from the stop of services on the origin to the target serving
again (core state CORE_STATE_RUNNING on :8090 and SMTP answering 220 on :25), measured by an
independent clock for both arms: the controller polls the origin until it stops serving (its core or
its SMTP gone) and the target until it serves, every 50 ms:
  (a) baseline: `bmctl stop; service postfix stop` on the origin then the target, then
      bench/vendor_cold.sh on the target (the procedure's cold sync and restore verbatim, then start);
  (b) collection: playbooks/migrate.yml --tags cold_sync,db_migrate,config_copy,cutover (its clock
      starts at the launch of ansible-playbook, a little before it stops the origin);
  (c) with --arms abc: the collection with -e $BENCH_ABLATE (default cold_sync_db_beside=false), one
      step switched off to measure what it gives.
Writes go on until the stop (BENCH_LIVE=0 turns it off): from LIVE_LEAD_SECONDS before the window, mail
through SMTP at BENCH_LIVE_RATE (5) a second and users changing flags (units bm-sim-load and
bm-sim-activity, part of bluemind.target: the stop of the origin's BlueMind ends them, as it ends
BlueMind's own services); the check then also wants the mail left in the origin's postfix queues on the
target, delivered or queued.
BENCH_CATCH_UP=1 measures the window as the README tells an operator to open it: (b) runs
playbooks/migrate.yml with every phase (prereq and a hot sync, then the window, in one run: the
hot sync catches up with the origin's writes right before the stop), and (a) gets the same hot sync
just before its stop (the vendor's "hot sync, as often as wanted"); the window is still measured from
the origin's stop. Without it (the default), the window starts from the last delta as it stands.
Both end with the same check (bench/lib.py compare): the origin's seven trees (content, owners,
modes, times, hard links) and every table's rows against the target's; an arm that loses data is
reported as such. Runs are interleaved a, b, a, b, ...
"""
import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lib  # noqa: E402

ARMS = {"a": "baseline (vendor commands)", "b": "collection", "c": "collection, ablated"}
# Arm c: the collection with these extra variables (one step switched off, to measure what it gives).
ABLATE = os.environ.get("BENCH_ABLATE", "cold_sync_db_beside=false")
# The downtime's prediction needs a hot sync after the first (which copies everything): each run makes
# a second hot sync after the delta, then the same delta again (another seed) before the window, as an
# operator syncs again before the window. BENCH_REHEARSE=0 keeps one hot sync (the older protocol).
REHEARSE = os.environ.get("BENCH_REHEARSE", "1") != "0"
# The window as the README's one command opens it: a hot sync right before the stop (see the docstring).
CATCH_UP = os.environ.get("BENCH_CATCH_UP", "0") == "1"
# Writes until the stop: mail through SMTP at this rate and users changing flags on the origin from a
# few seconds before the window until its BlueMind stops (BENCH_LIVE=0: the origin is quiet at the stop).
LIVE = os.environ.get("BENCH_LIVE", "1") != "0"
LIVE_RATE = float(os.environ.get("BENCH_LIVE_RATE", "5"))
LIVE_LEAD_SECONDS = 3
WINDOW_TAGS = "cold_sync,db_migrate,config_copy,cutover"
# What the prediction adds for the steps no hot phase measures (bluemind_window_fixed_seconds): the role's
# default unless BENCH_WINDOW_FIXED says otherwise (the start on the target is measured by the hot sync).
FIXED_SECONDS = os.environ.get("BENCH_WINDOW_FIXED")


def delta_plan(scale):
    """The same delta for both arms, a share of the scale up to m and m's above it: the window should
    follow the change, not the server (issue 13's l/m ratio compares windows over the same change on a
    server ten times larger). The mail arrives over about 40 s (5 messages a second)."""
    files = min(lib.files_of(scale), lib.SCALES["m"])
    messages = max(60, files // 500)
    return {"messages": messages, "rate": max(5.0, messages / 40.0), "flags": max(50, files // 100),
            "delete": max(10, files // 1000), "db_rows": max(1000, files // 10), "seed": 7}


def hot_sync(workdir, log="hot_sync.log"):
    rc, seconds, out = lib.playbook(["playbooks/migrate.yml", "--tags", "prereq,hot_sync"], workdir / log)
    if rc != 0:
        raise RuntimeError("hot sync failed (rc %d): see %s" % (rc, workdir / log))
    return seconds


def delta(plan):
    """The same scripted delta: mail load at `rate` while users change flags and delete mail, and
    database writes; then wait for the origin's queue to drain (what is left is reported)."""
    start = time.monotonic()
    script = (
        "bm-sim load --count {messages} --rate {rate} --seed {seed} >/tmp/bmbench-load.json 2>&1 & load=$!\n"
        "sleep 1\n"
        "bm-sim activity --flags {flags} --delete {delete} --seed {seed} >/tmp/bmbench-activity.json\n"
        "su postgres -c \"psql -X -q -d bj-data\" <<'SQL'\n"
        "INSERT INTO t_changeset (container_uid, item_uid, version, type, date)\n"
        "  SELECT 'bmbench_delta', g::text, g, 0, now() FROM generate_series(1, {db_rows}) g;\n"
        "SQL\n"
        "su postgres -c \"psql -X -q -d bj\" <<'SQL'\n"
        "DROP TABLE IF EXISTS bmbench_delta;\n"
        "CREATE TABLE bmbench_delta AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, {db_rows}) g;\n"
        "ALTER TABLE bmbench_delta OWNER TO bj;\n"
        "SQL\n"
        "wait $load\n"
        "for i in $(seq 60); do mailq 2>/dev/null | grep -q 'Mail queue is empty' && break; sleep 0.5; done\n"
        "mailq | tail -1\n").format(**plan)
    out = lib.sh(lib.ORIGIN, script)
    load = lib.sh(lib.ORIGIN, "tail -1 /tmp/bmbench-load.json").strip()
    return {"seconds": round(time.monotonic() - start, 1), "queue_after": out.strip().splitlines()[-1:],
            "load": load[-300:]}


def vendor_steps():
    steps = []
    for line in lib.sh(lib.TARGET, "cat /tmp/vendor_cold.rc").splitlines():
        rc, t0, t1, cmd = line.split(" ", 3)
        steps.append({"cmd": cmd, "rc": int(rc), "seconds": round(float(t1) - float(t0), 2)})
    return steps


def vendor_groups(steps, stop_seconds, start_to_serving):
    groups = {"stop services (both)": stop_seconds}
    for s in steps:
        c = s["cmd"]
        key = ("rsync (7 trees, serial)" if c.startswith("rsync") else "pg_dump to /tmp" if "pg_dump" in c
               else "scp config list" if c.startswith("scp") else
               "dropdb/createdb" if c.startswith("su - postgres") else "psql restore" if "psql" in c
               else "start (bmctl, postfix)")
        groups[key] = round(groups.get(key, 0) + s["seconds"], 2)
    groups["start -> serving (poll)"] = round(start_to_serving, 2)
    return groups


def arm_a(workdir):
    lib.sh(lib.TARGET, "cat > /root/vendor_cold.sh && chmod 755 /root/vendor_cold.sh",
           input=(lib.BENCH / "vendor_cold.sh").read_text())
    assert not lib.serving(), "the target serves before the window"
    watch, down = lib.ServingWatch(), lib.DownWatch()
    down.start()
    t0 = time.monotonic()
    lib.sh(lib.ORIGIN, "bmctl stop; service postfix stop")
    lib.sh(lib.TARGET, "bmctl stop; service postfix stop")
    t_stop = time.monotonic()
    watch.start()
    lib.sh(lib.TARGET, "/root/vendor_cold.sh >/tmp/vendor_cold.log 2>&1", check=False)
    t_end = time.monotonic()
    watch.join(300)
    down.stop.set()
    window = (watch.at - t0) if watch.at else None
    steps = vendor_steps()
    psql_errors = lib.sh(lib.TARGET, "grep -c 'ERROR' /tmp/vendor_cold.log || true").strip()
    error_lines = lib.sh(lib.TARGET, "grep -m 8 'ERROR' /tmp/vendor_cold.log || true").strip().splitlines()
    (workdir / "vendor_cold.log.tail").write_text(lib.sh(lib.TARGET, "grep -v '^[^ ]*/' /tmp/vendor_cold.log | tail -200"))
    return {"window": window, "independent_window": independent(down, watch),
            "stop_seconds": round(t_stop - t0, 2), "script_seconds": round(t_end - t_stop, 2),
            "steps": steps, "nonzero_exits": [s for s in steps if s["rc"] != 0],
            "log_error_lines": int(psql_errors or 0), "log_errors_first": error_lines,
            "groups": vendor_groups(steps, round(t_stop - t0, 2), (watch.at - t_end) if watch.at else 0)}


def independent(down, served):
    """The window by the independent clock: the origin seen down -> the target seen serving."""
    if down.at is None or served.at is None:
        return None
    return round(served.at - down.at, 2)


def parse_ts(value):
    return datetime.datetime.fromisoformat(value).timestamp()


def collection_groups(profile):
    """Seconds per step up to 'serving' (the cold window) and after it (admin actions, smoke)."""
    groups, after, served = {}, {}, False
    for name, sec in profile:
        role = name.split(" : ")[0].replace("bluemind.migration.", "") if " : " in name else "play"
        task = name.split(" : ", 1)[-1]
        bucket = after if served else groups
        key = "%s: %s" % (role, task)
        bucket[key] = round(bucket.get(key, 0) + sec, 2)
        if task.startswith("Record when the target serves again"):
            served = True
    return groups, after


def arm_b(workdir, extra_vars=()):
    report_dir = workdir / "report"
    env, play = None, "playbooks/migrate.yml"
    assert not lib.serving(), "the target serves before the window"
    watch, down = lib.ServingWatch(), lib.DownWatch()
    watch.start()
    down.start()
    wall0 = time.time()
    t0 = time.monotonic()
    rc, seconds, out = lib.playbook(
        [play] + ([] if CATCH_UP else ["--tags", WINDOW_TAGS]) + [
         "-e", "bluemind_confirm_downtime=true", "-e", "bluemind_confirm_cutover=true",
         "-e", "bluemind_report_dir=%s" % report_dir]
        + (["-e", "bluemind_window_fixed_seconds=%s" % FIXED_SECONDS] if FIXED_SECONDS else [])
        + [a for v in extra_vars for a in ("-e", v)],
        workdir / "window.log", env=env)
    watch.join(300)
    down.stop.set()
    window = (watch.at - t0) if watch.at else None
    result = {"window": window, "independent_window": independent(down, watch), "rc": rc,
              "playbook_seconds": round(seconds, 2)}
    report = report_dir / ("%s.json" % lib.TARGET)
    if report.exists():
        data = json.loads(report.read_text())
        result["report_downtime_seconds"] = data.get("downtime_seconds")
        start = data.get("cold_sync", {}).get("start")
        if start:
            result["launch_to_origin_stop"] = round(parse_ts(start) - wall0, 2)
        result["report"] = {k: data.get(k) for k in ("cold_sync", "db_migrate", "cutover")}
        result["predicted_seconds"] = (data.get("cold_sync") or {}).get("predicted_seconds")
        # its parts, as the run said them before the stop (with the last look at the origin, when it ran)
        result["prediction_text"] = (data.get("cold_sync") or {}).get("prediction")
        result["hot_sync_runs"] = data.get("hot_sync_runs")  # what it learnt from
    profile = lib.profile_tasks(out)
    result["profile"] = profile
    result["groups"], result["after_serving"] = collection_groups(profile)
    if rc != 0:
        result["error"] = "\n".join(l for l in out.splitlines() if "FAILED" in l or "fatal" in l)[-3000:]
    return result


def one_run(arm, scale, rep, workroot):
    workdir = workroot / ("%s-%s-%d" % (scale, arm, rep))
    workdir.mkdir(parents=True, exist_ok=True)
    run = {"arm": arm, "scale": str(scale), "rep": rep, "loadavg_before": os.getloadavg()}
    lib.log("run %d arm %s scale %s: reset" % (rep, arm, scale))
    t = time.monotonic()
    run["seed"] = lib.reset(scale)
    run["reset_seconds"] = round(time.monotonic() - t, 1)
    lib.log("  hot sync")
    run["hot_sync_seconds"] = round(hot_sync(workdir), 1)
    plan = delta_plan(scale)
    lib.log("  delta %s" % plan)
    run["delta"] = dict(delta(plan), plan=plan)
    if REHEARSE:
        lib.log("  hot sync again, then the same delta again")
        run["hot_sync_again_seconds"] = round(hot_sync(workdir, "hot_sync_again.log"), 1)
        again = dict(plan, seed=plan["seed"] + 1)
        run["delta_again"] = dict(delta(again), plan=again)
    if CATCH_UP and arm == "a":
        lib.log("  hot sync right before the stop")
        run["catch_up_seconds"] = round(hot_sync(workdir, "catch_up.log"), 1)
    if LIVE:
        lib.log("  writes until the stop: mail at %g/s, flag changes" % LIVE_RATE)
        lib.live_writes(LIVE_RATE)
        time.sleep(LIVE_LEAD_SECONDS)
        run["live_writes"] = {"rate": LIVE_RATE, "lead_seconds": LIVE_LEAD_SECONDS}
    lib.log("  window")
    run["protocol"] = "catch-up" if CATCH_UP else "window tags"
    before = lib.pressure()
    run.update(arm_a(workdir) if arm == "a" else arm_b(workdir, ABLATE.split() if arm == "c" else ()))
    run["pressure"] = lib.pressure_share(before, lib.pressure())
    if arm == "c":
        run["ablate"] = ABLATE
    lib.log("  window %.1f s (from the launch: %.1f s; the disk held tasks back %s of it); checking" % (
        from_stop(run) or -1, run["window"] or -1, "%.0f %%" % (100 * run["pressure"]["io"]["stalled_share"])
        if run.get("pressure") else "an unknown share"))
    if LIVE:
        lib.settle_target_queue()
    run["check"] = lib.check(queued=LIVE)
    lib.log("  check: %s" % ("nothing lost" if run["check"]["ok"] else "LOSS %s" % {
        k: run["check"].get(k) for k in ("lost_files", "changed_content", "extra_files", "rows_differ", "row_contents_differ",
                                         "queued")}))
    return run


def from_stop(run):
    """The window from the stop of the origin's services, as the issue defines it: by the independent
    clock (the origin seen down -> the target seen serving, polled every 50 ms) when it saw both ends;
    else, for older runs, the baseline's clock from just before its stop, and the collection's from the
    launch of ansible-playbook less the time to the start of the downtime it records."""
    if run.get("independent_window") is not None:
        return run["independent_window"]
    if run["arm"] == "a" or run.get("window") is None:
        return run.get("window")
    return run["window"] - (run.get("launch_to_origin_stop") or 0)


def summarize(runs):
    out = {}
    for arm in ARMS:
        rs = [r for r in runs if r["arm"] == arm]
        if not rs:
            continue
        out[arm] = dict(lib.summary([from_stop(r) for r in rs]), label=ARMS[arm],
                        from_launch=lib.summary([r["window"] for r in rs]),
                        loss_runs=sum(1 for r in rs if not r["check"]["ok"]),
                        settings_lost_runs=sum(1 for r in rs if r["check"].get("db_settings_differ")),
                        failed_runs=sum(1 for r in rs if r.get("rc")),
                        queued_lost_runs=sum(1 for r in rs if (r["check"].get("queued") or {}).get("lost")),
                        live_runs=sum(1 for r in rs if r.get("live_writes")),
                        io_stalled=lib.summary([((r.get("pressure") or {}).get("io") or {}).get("stalled_share") for r in rs]),
                        report=lib.summary([r.get("report_downtime_seconds") for r in rs]) if arm != "a" else None,
                        predicted=lib.summary([r.get("predicted_seconds") for r in rs]) if arm != "a" else None)
        groups = {}
        for r in rs:
            for k, v in r.get("groups", {}).items():
                groups.setdefault(k, []).append(v)
        out[arm]["groups_median"] = {k: round(lib.summary(v)["median"], 2) for k, v in groups.items()}
    if "a" in out and "b" in out and out["a"].get("median") and out["b"].get("median"):
        out["ratio_b_over_a"] = round(out["b"]["median"] / out["a"]["median"], 3)
        out["ratio_b_over_a_from_launch"] = round(out["b"]["from_launch"]["median"] / out["a"]["median"], 3)
    if "a" in out and "c" in out and out["a"].get("median") and out["c"].get("median"):
        out["ratio_c_over_a"] = round(out["c"]["median"] / out["a"]["median"], 3)
    return out


def render(scale, summ):
    rows = []
    for arm in ARMS:
        s = summ.get(arm)
        if not s or not s.get("n"):
            continue
        loss = "LOST DATA in %d/%d" % (s["loss_runs"], s["n"]) if s["loss_runs"] else "files+rows intact"
        if s.get("settings_lost_runs"):
            loss += "; db settings/owner lost in %d/%d" % (s["settings_lost_runs"], s["n"])
        if s.get("queued_lost_runs"):
            loss += "; the origin's queued mail lost in %d/%d" % (s["queued_lost_runs"], s["n"])
        rows.append((s["label"], s["n"], "%.1f" % s["median"], "%.1f" % s["min"], "%.1f" % s["max"],
                     "%.1f" % s["spread"], loss))
    live = any(summ.get(arm, {}).get("live_runs") for arm in ARMS)
    text = ("downtime at scale %s (seconds, the origin seen down -> the target seen serving, polled from the "
            "controller every 50 ms, both arms alike)%s%s\n" % (
                scale, "; a hot sync right before the stop (BENCH_CATCH_UP=1)" if CATCH_UP else "",
                "; mail and flag changes until the stop" if live else ""))
    text += lib.table(["arm", "runs", "median", "min", "max", "spread", "check"], rows)
    if "ratio_b_over_a" in summ:
        text += "\ncollection / baseline = %.2f (target <= 0.25)" % summ["ratio_b_over_a"]
    if "ratio_b_over_a_from_launch" in summ:
        text += "; counted from the launch of ansible-playbook (median %.1f s): %.2f" % (
            summ["b"]["from_launch"]["median"], summ["ratio_b_over_a_from_launch"])
    if "ratio_c_over_a" in summ:
        text += "\ncollection with -e %s / baseline = %.2f" % (ABLATE, summ["ratio_c_over_a"])
    if (summ.get("b", {}).get("report") or {}).get("n"):
        text += "; the report's own window (cold_sync.start -> cutover.serving): median %.1f s" % \
            summ["b"]["report"]["median"]
    predicted = (summ.get("b", {}).get("predicted") or {})
    if predicted.get("n"):
        measured = summ["b"].get("median")
        text += ("\nthe downtime predicted before the window (median): %.1f s%s, with bluemind_window_fixed_seconds=%s"
                 % (predicted["median"], " for %.1f s measured (%.1fx)" % (measured, predicted["median"] / measured)
                    if measured else "", FIXED_SECONDS or "its default"))
    elif "b" in summ:
        text += "\nno prediction: it needs a hot sync after the first (BENCH_REHEARSE=1)"
    stalls = ["%s %.0f-%.0f %%" % (ARMS[arm], 100 * summ[arm]["io_stalled"]["min"], 100 * summ[arm]["io_stalled"]["max"])
              for arm in ARMS if (summ.get(arm, {}).get("io_stalled") or {}).get("n")]
    if stalls:
        text += "\nshare of the window during which the disk held tasks back (/proc/pressure/io): " + "; ".join(stalls)
    for arm in ARMS:
        g = summ.get(arm, {}).get("groups_median")
        if g:
            top = sorted(g.items(), key=lambda kv: -kv[1])[:10]
            text += "\n  %s, slowest steps (median s): %s" % (ARMS[arm], "; ".join("%s %.1f" % kv for kv in top))
    return text


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", default="s")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--arms", default="ab")
    ap.add_argument("--out")
    ap.add_argument("--append", action="store_true", help="add the runs to those already in --out")
    args = ap.parse_args(argv)
    lib.ensure_lab(args.scale)
    workroot = lib.RESULTS / "work" / time.strftime("%Y%m%dT%H%M%S")
    data = {"benchmark": "downtime", "scale": str(args.scale), "files": lib.files_of(args.scale),
            "machine": lib.machine(), "delta": delta_plan(args.scale), "runs": [],
            "protocol": "catch-up" if CATCH_UP else "window tags",
            "live_writes": {"rate": LIVE_RATE, "lead_seconds": LIVE_LEAD_SECONDS} if LIVE else None}
    out = args.out or "downtime-%s.json" % args.scale
    first_rep = 1
    if args.append and (lib.RESULTS / out).exists():
        old = json.loads((lib.RESULTS / out).read_text())
        data["runs"] = old["runs"]
        data["earlier_machines"] = old.get("earlier_machines", []) + [old["machine"]]
        first_rep = max(r["rep"] for r in data["runs"]) + 1
    for rep in range(first_rep, first_rep + args.runs):
        for arm in args.arms:
            data["runs"].append(one_run(arm, args.scale, rep, workroot))
            data["summary"] = summarize(data["runs"])
            lib.save(out, data)
    print(render(args.scale, data["summary"]))
    print("raw figures: %s" % (lib.RESULTS / out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
