# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The report's picture: the hot syncs over the days and the cold window step by step, as SVG drawn
on the controller with the standard library. Only recorded times are drawn (state.timeline says
which); the same report gives the same bytes."""

from __future__ import annotations

DOCUMENTATION = r"""
name: report_timeline_svg
short_description: The migration's timeline as an SVG picture
version_added: 1.2.0
description:
  - Draws two lanes from the migration report (the state, as C(reports/<target>.json) holds it). The
    first shows the hot syncs over the days, one mark per run from its start to its end, and where the
    cold window began. The second zooms on the cold window, one labelled bar per step (stop, final
    pull, verification, database pass, configuration copy, start on the target, admin actions and
    smoke checks) with its seconds, and the downtime (from the stop of the origin to the target
    serving) shaded, its length written.
  - Draws only the times the state recorded. A step whose start or end is missing (a run that stopped
    after the hot syncs, a state written by an older version) is named under the lanes as not recorded.
  - Pure standard library, no network; every text is escaped; the same report gives the same bytes.
options:
  _input:
    description: The report (the fact C(bluemind_state), with C(target)).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Write the timeline next to the report
  ansible.builtin.copy:
    dest: "reports/{{ inventory_hostname }}.svg"
    content: "{{ bluemind_report | bluemind.migration.report_timeline_svg }}"
    mode: "0644"
  delegate_to: localhost
"""

RETURN = r"""
_value:
  description: The SVG document (UTF-8 text, no XML declaration).
  type: str
"""

import datetime
import html
import math

from ansible_collections.bluemind.migration.plugins.module_utils import state as migration_state

WIDTH = 960
LABELS = 210  # the left column: the steps' names
RIGHT = 90  # room for the seconds written after the last bar
PLOT = WIDTH - LABELS - RIGHT
ROW = 26
FONT = "DejaVu Sans, Liberation Sans, Arial, sans-serif"
COLOURS = dict(hot="#2b6cb0", step="#2f855a", downtime="#fed7d7", downtime_edge="#c53030", axis="#718096",
               text="#1a202c", muted="#4a5568")
# Tick steps, in seconds: the hot syncs' lane (hours to weeks), the window's (seconds to hours).
HOT_TICKS = (60, 300, 600, 1800) + tuple(3600 * h for h in (1, 2, 3, 6, 12, 24, 48, 168))
WINDOW_TICKS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200)


def _text(value):
    return html.escape(str(value), quote=True)


def _epoch(value):
    return migration_state.parse_stamp(value).timestamp()


def _utc(epoch, pattern):
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime(pattern)


def _seconds(value, short=False):
    """Seconds in words: 42.5 s, 3 min 12.0 s, 1 h 02 min; ``short``: 42 s, 3 min, 1 h 02 min."""
    value = float(value)
    if short and value < 3600:
        return "%d s" % round(value) if value < 60 else "%d min" % round(value / 60)
    if value < 60:
        return "%.1f s" % value
    if value < 3600:
        return "%d min %.1f s" % (value // 60, value % 60)
    return "%d h %02d min" % (value // 3600, (value % 3600) // 60)


class _Scale:
    """Maps times (epoch seconds) onto the plot's width."""

    def __init__(self, start, end, pad):
        self.start, self.end = start - pad, end + pad

    def x(self, epoch):
        return LABELS + (epoch - self.start) / (self.end - self.start) * PLOT

    def ticks(self, steps, most, anchor):
        """A round step with at most ``most`` ticks, and the ticks: ``anchor`` plus whole steps."""
        step = next((s for s in steps if (self.end - self.start) / s <= most), steps[-1])
        count = math.ceil((self.start - anchor) / step)
        ticks = []
        while anchor + count * step <= self.end:
            ticks.append(anchor + count * step)
            count += 1
        return step, ticks


def _svg(tag, attrs, body=None):
    rendered = " ".join('%s="%s"' % (k.replace("_", "-"), _text(v if isinstance(v, str) else "%.1f" % v))
                        for k, v in attrs)
    if body is None:
        return "<%s %s/>" % (tag, rendered)
    return "<%s %s>%s</%s>" % (tag, rendered, body, tag)


def _label(x, y, words, anchor="start", size=12, colour="text", weight="normal", name=None):
    attrs = [("x", x), ("y", y), ("font_size", str(size)), ("fill", COLOURS[colour]), ("text_anchor", anchor)]
    if weight != "normal":
        attrs.append(("font_weight", weight))
    if name:
        attrs.append(("class", name))
    return _svg("text", attrs, _text(words))


def _axis(scale, y, steps, most, anchor, words):
    step, ticks = scale.ticks(steps, most, anchor)
    out = [_svg("line", [("x1", LABELS), ("y1", y), ("x2", LABELS + PLOT), ("y2", y), ("stroke", COLOURS["axis"])])]
    for tick in ticks:
        x = scale.x(tick)
        out.append(_svg("line", [("x1", x), ("y1", y), ("x2", x), ("y2", y + 4), ("stroke", COLOURS["axis"])]))
        out.append(_label(x, y + 16, words(tick, step), anchor="middle", size=10, colour="muted"))
    return out


def _hot_lane(timeline, top):
    """The hot syncs over the days; returns (elements, height)."""
    runs, downtime = timeline["hot_sync_runs"], timeline["downtime"]
    out = [_label(10, top + 14, "Hot syncs (%d), over the days (UTC)" % len(runs), size=14, weight="bold")]
    if not runs:
        out.append(_label(LABELS, top + 44, "no hot sync recorded", colour="muted"))
        return out, 60
    spans = [(_epoch(r["start"] or r["end"]), _epoch(r["end"]), r) for r in runs]
    times = [t for span in spans for t in span[:2]] + ([_epoch(downtime["start"])] if downtime else [])
    first, last = min(times), max(times)
    scale = _Scale(first, last, max((last - first) * 0.04, 60))
    lane = top + 30
    out.append(_label(LABELS - 8, lane + 13, "hot sync runs", anchor="end"))
    last_label = None
    for start, end, run in spans:
        x = scale.x(start)
        width = max(scale.x(end) - x, 3)
        tip = "hot sync #%d: %s to %s, %s, %d files, %d bytes" % (
            run["number"], run["start"] or "?", run["end"], _seconds(run["seconds"]), run["files"], run["bytes"])
        out.append(_svg("rect", [("class", "hot-sync"), ("x", x), ("y", lane), ("width", width), ("height", 18),
                                 ("fill", COLOURS["hot"])], "<title>%s</title>" % _text(tip)))
        if last_label is None or x - last_label >= 64:  # the words of close runs would overlap
            out.append(_label(x + width / 2, lane - 3, "#%d %s" % (run["number"], _seconds(run["seconds"], short=True)),
                              anchor="middle", size=10, colour="muted", name="hot-sync-label"))
            last_label = x
    if downtime:
        x = scale.x(_epoch(downtime["start"]))
        out.append(_svg("line", [("x1", x), ("y1", lane - 8), ("x2", x), ("y2", lane + 26),
                                 ("stroke", COLOURS["downtime_edge"]), ("stroke_width", "2")]))
        out.append(_label(x + 4, lane + 30, "cold window", size=10, colour="text"))
    out += _axis(scale, lane + 40, HOT_TICKS, 8, 0,
                 lambda tick, step: _utc(tick, "%Y-%m-%d" if step >= 86400 else "%H:%M" if step < 3600 else "%m-%d %H:%M"))
    return out, 100


def _window_lane(timeline, top):
    """The cold window, step by step, the downtime shaded; returns (elements, height)."""
    steps, downtime = timeline["steps"], timeline["downtime"]
    out = [_label(10, top + 14, "The cold window, step by step", size=14, weight="bold")]
    if not steps and not downtime:
        out.append(_label(LABELS, top + 44, "the cold window has not started", colour="muted"))
        return out, 60
    times = [_epoch(s[k]) for s in steps for k in ("start", "end")]
    if downtime:
        times += [_epoch(downtime[k]) for k in ("start", "end") if downtime[k]]
    origin, last = min(times), max(times)
    scale = _Scale(origin, last, max((last - origin) * 0.01, 0.5))
    rows_top = top + 44
    rows_bottom = rows_top + ROW * len(steps)
    if downtime:
        start = scale.x(_epoch(downtime["start"]))
        end = scale.x(_epoch(downtime["end"])) if downtime["end"] else LABELS + PLOT
        out.append(_svg("rect", [("class", "downtime"), ("x", start), ("y", rows_top - 6), ("width", max(end - start, 1)),
                                 ("height", rows_bottom - rows_top + 10), ("fill", COLOURS["downtime"]),
                                 ("stroke", COLOURS["downtime_edge"])]))
        words = ("downtime %s (origin stopped to target serving)" % _seconds(downtime["seconds"])
                 if downtime["end"] else "downtime under way since %s: the target does not serve yet" % downtime["start"])
        out.append(_label(start, rows_top - 10, words, size=12, colour="text", weight="bold", name="downtime-label"))
    for i, step in enumerate(steps):
        y = rows_top + ROW * i
        x = scale.x(_epoch(step["start"]))
        width = max(scale.x(_epoch(step["end"])) - x, 2)
        out.append(_label(LABELS - 8, y + 13, step["label"], anchor="end", name="step-label"))
        tip = "%s: %s to %s, %s" % (step["label"], step["start"], step["end"], _seconds(step["seconds"]))
        out.append(_svg("rect", [("class", "step step-%s" % step["name"]), ("x", x), ("y", y), ("width", width),
                                 ("height", 18), ("fill", COLOURS["step"])], "<title>%s</title>" % _text(tip)))
        out.append(_label(x + width + 4, y + 13, _seconds(step["seconds"]), size=11, colour="muted"))
    out += _axis(scale, rows_bottom + 6, WINDOW_TICKS, 10, origin,
                 lambda tick, step: "+%d s" % round(tick - origin) if step < 60 else "+%d min" % round((tick - origin) / 60))
    note = _utc(origin, "starts %Y-%m-%d %H:%M:%S UTC")
    out.append(_label(LABELS, rows_bottom + 40, note, size=10, colour="muted"))
    height = rows_bottom + 44 - top
    if timeline["missing"]:
        labels = dict(migration_state.WINDOW_STEPS)
        out.append(_label(LABELS, rows_bottom + 58, "not recorded: %s" % ", ".join(labels[n] for n in timeline["missing"]),
                          size=10, colour="muted", name="missing"))
        height += 18
    return out, height


def report_timeline_svg(report):
    report = report or {}
    timeline = migration_state.timeline(report)
    title = "BlueMind migration timeline: %s to %s" % (report.get("origin") or "?", report.get("target") or "?")
    body = [_label(10, 24, title, size=16, weight="bold", name="title")]
    hot, hot_height = _hot_lane(timeline, 40)
    window, window_height = _window_lane(timeline, 40 + hot_height + 20)
    height = 40 + hot_height + 20 + window_height + 10
    head = ('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" '
            'font-family="%s"><title>%s</title>' % (WIDTH, height, WIDTH, height, _text(FONT), _text(title)))
    background = _svg("rect", [("x", 0), ("y", 0), ("width", WIDTH), ("height", height), ("fill", "#ffffff")])
    return "\n".join([head, background] + body + hot + window + ["</svg>"]) + "\n"


class FilterModule:
    def filters(self):
        return {"report_timeline_svg": report_timeline_svg}
