"""Scale: the cold window of both arms (bench/downtime.py) against file count and database size.

  .venv/bin/python bench/scale.py [--points s,30000,m] [--runs 1] [--reuse/--no-reuse]
                                  [--points s,m=downtime-m-d57a0d6.json,l]
                                  [--points m=downtime-m-d57a0d6.json,l=downtime-l-<b>.json+downtime-l-<a+b>.json]

For each point (a scale name or a number of files; the seeder gives the database ~10 kB a file), the
medians of bench/results/downtime-<point>.json are reused when that file holds both arms and was
measured on the checked-out commit, otherwise `--runs` interleaved runs of each arm are made (and
saved as downtime-<point>.json). A point written `<point>=<file>` reuses that results file whatever
commit it was measured on (the table names each point's commit); `<point>=<file>+<file>` takes each arm
from the first of those files that holds a run of it (no baseline ratio then: not one run). Prints a table with the collection's
window at each point over its window at m, writes bench/results/scale.json and the plot
bench/results/scale.svg (hand-written SVG, no plotting library needed).
"""
import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import downtime  # noqa: E402
import lib  # noqa: E402

DEFAULT_POINTS = {"s": "2000,s", "m": "s,30000,m", "l": "s,30000,m,l"}


def point(spec, runs, reuse, commit):
    """One point's medians: `spec` is a point, or `<point>=<results file>[+<results file>...]` to reuse
    those files as they are, each arm from the first file that holds a run of it (a collection-only run
    beside an earlier run of both arms); a results file of another `commit` than the checked-out one is
    measured again unless named. The baseline ratio is given only when both arms come from one run."""
    p, _, named = spec.partition("=")
    names = named.split("+") if named else ["downtime-%s.json" % p]
    for name in names:
        if named and not (lib.RESULTS / name).exists():
            raise SystemExit("scale point %s: no results file %s" % (p, lib.RESULTS / name))
    path = lib.RESULTS / names[0]
    data = json.loads(path.read_text()) if path.exists() and (reuse or named) else None
    if data and not named and data.get("machine", {}).get("commit") != commit:
        data = None  # measured on another version of the collection: measured again
    files = [data] + [json.loads((lib.RESULTS / name).read_text()) for name in names[1:]] if data else []
    arms = dict((arm, next((i for i, one in enumerate(files) if one.get("summary", {}).get(arm, {}).get("n")), None))
                for arm in "ab")
    if None in arms.values():
        if named:
            raise SystemExit("scale point %s: %s do(es) not hold a run of each arm" % (p, "+".join(names)))
        lib.log("scale point %s: measuring (%d run(s) a arm)" % (p, runs))  # downtime.main starts the lab
        downtime.main(["--scale", str(p), "--runs", str(runs)])
        files, arms = [json.loads(path.read_text())], {"a": 0, "b": 0}
    else:
        lib.log("scale point %s: reusing %s" % (p, "+".join(names)))
    # the same definition of the window for every point
    summaries = [downtime.summarize(one["runs"]) for one in files]
    seed = files[arms["b"]]["runs"][0]["seed"]
    commits = dict((arm, (files[i].get("machine", {}).get("commit") or "")[:7]) for arm, i in arms.items())
    return {"point": str(p), "files": seed["files"], "tree_bytes": seed["bytes"],
            "db_bytes": sum(seed["db_bytes"].values()), "a": summaries[arms["a"]]["a"], "b": summaries[arms["b"]]["b"],
            "ratio": summaries[0].get("ratio_b_over_a") if arms["a"] == arms["b"] else None,
            "source": "+".join(names[i] for i in sorted(set(arms.values()))),
            "commit": commits["b"] if commits["a"] == commits["b"] else "b %s, a %s" % (commits["b"], commits["a"])}


def svg(points, path):
    W, H, L, R, T, B = 720, 420, 70, 30, 40, 80
    xs = [math.log10(p["files"]) for p in points]
    ys = [v for p in points for v in (p["a"]["max"], p["b"]["max"])]
    x0, x1 = min(xs) - 0.15, max(xs) + 0.15
    y1 = max(ys) * 1.15 or 1

    def X(v):
        return L + (v - x0) / (x1 - x0) * (W - L - R)

    def Y(v):
        return H - B - v / y1 * (H - T - B)
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">' % (W, H),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%d" y="22" font-size="15">Cold window against scale (origin stopped to target serving)</text>' % L]
    step = 10 ** math.floor(math.log10(y1 / 2)) if y1 > 2 else 1
    tick = 0
    while tick <= y1:
        out.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>' % (L, W - R, Y(tick), Y(tick)))
        out.append('<text x="%d" y="%.1f" text-anchor="end">%g</text>' % (L - 6, Y(tick) + 4, tick))
        tick += step if y1 / step < 12 else step * 2
    out.append('<text x="16" y="%d" transform="rotate(-90 16 %d)" text-anchor="middle">seconds (median, bar: min-max)</text>'
               % ((H - B + T) // 2, (H - B + T) // 2))
    for p, x in zip(points, xs):
        out.append('<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#eee"/>' % (X(x), X(x), T, H - B))
        out.append('<text x="%.1f" y="%d" text-anchor="middle">%s files</text>' % (X(x), H - B + 18, format(p["files"], ",")))
        out.append('<text x="%.1f" y="%d" text-anchor="middle" fill="#555">db %.0f MB, trees %.0f MB</text>'
                   % (X(x), H - B + 34, p["db_bytes"] / 1e6, p["tree_bytes"] / 1e6))
    out.append('<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="black"/>' % (L, W - R, H - B, H - B))
    out.append('<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="black"/>' % (L, L, T, H - B))
    for arm, colour, label in (("a", "#c0392b", "baseline: vendor commands"), ("b", "#2471a3", "collection")):
        pts = [(X(x), Y(p[arm]["median"])) for p, x in zip(points, xs)]
        out.append('<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>'
                   % (colour, " ".join("%.1f,%.1f" % q for q in pts)))
        for p, x in zip(points, xs):
            out.append('<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="%s"/>'
                       % (X(x), X(x), Y(p[arm]["min"]), Y(p[arm]["max"]), colour))
            out.append('<circle cx="%.1f" cy="%.1f" r="4" fill="%s"/>' % (X(x), Y(p[arm]["median"]), colour))
            out.append('<text x="%.1f" y="%.1f" fill="%s" dx="7">%.1f</text>'
                       % (X(x), Y(p[arm]["median"]) + 4, colour, p[arm]["median"]))
    ly = H - 22
    out.append('<rect x="%d" y="%d" width="14" height="4" fill="#c0392b"/><text x="%d" y="%d">baseline: vendor commands verbatim</text>'
               % (L, ly - 4, L + 20, ly + 1))
    out.append('<rect x="%d" y="%d" width="14" height="4" fill="#2471a3"/><text x="%d" y="%d">collection (cold_sync .. cutover serving)</text>'
               % (L + 300, ly - 4, L + 320, ly + 1))
    out.append("</svg>")
    Path(path).write_text("\n".join(out) + "\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", default="s", help="largest scale: picks the default points")
    ap.add_argument("--points")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--no-reuse", action="store_true")
    args = ap.parse_args(argv)
    points = (args.points or DEFAULT_POINTS.get(args.scale, "s,%s" % args.scale)).split(",")
    machine = lib.machine()
    rows = [point(p, args.runs, not args.no_reuse, machine.get("commit")) for p in points]
    rows.sort(key=lambda r: r["files"])
    m = next((r for r in rows if r["files"] == lib.SCALES["m"]), None)
    for r in rows:  # the collection's median window over its median window at m
        r["b_over_m"] = r["b"]["median"] / m["b"]["median"] if m else None
    lib.save("scale.json", {"benchmark": "scale", "machine": machine, "points": rows,
                            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    svg(rows, lib.RESULTS / "scale.svg")
    table = [(r["point"], format(r["files"], ","), "%.0f" % (r["db_bytes"] / 1e6), "%.0f" % (r["tree_bytes"] / 1e6),
              "%.1f (n=%d)" % (r["a"]["median"], r["a"]["n"]), "%.1f (n=%d)" % (r["b"]["median"], r["b"]["n"]),
              "%.2f" % r["ratio"] if r["ratio"] else "-",
              "%.2f" % r["b_over_m"] if r["b_over_m"] is not None else "-", r["commit"]) for r in rows]
    print("cold window against scale (median seconds)")
    print(lib.table(["point", "files", "db MB", "trees MB", "baseline", "collection", "coll/base", "coll/m",
                     "commit"], table))
    for r in rows:
        if r["point"] == "l" and r["b_over_m"] is not None:
            print("collection l/m = %.2f (target <= 1.5)" % r["b_over_m"])
    print("plot: %s" % (lib.RESULTS / "scale.svg"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
