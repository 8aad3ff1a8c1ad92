# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The report as one self-contained HTML page: the key figures, the timeline inline, the Markdown
report rendered simply. Nothing in it fetches anything (no URL, no src): it opens offline."""

from __future__ import annotations

DOCUMENTATION = r"""
name: report_html
short_description: The migration report as one self-contained HTML page
version_added: 1.2.0
description:
  - Builds one HTML page from the migration report, its timeline (the output of
    P(bluemind.migration.report_timeline_svg#filter)) and its Markdown text.
  - The page holds the key figures as a table (downtime, hot sync runs, the seconds of each step of
    the cold window), the timeline inline, then the Markdown report rendered simply (headings, lists,
    tables, bold text; its image link becomes a note, the picture being inline).
  - Self-contained, so that it opens offline and can be mailed. The CSS is inline and the page
    names no URL and loads nothing. Every text is escaped.
positional: svg, markdown
options:
  _input:
    description: The report (the fact C(bluemind_state), with C(target) and C(downtime_seconds)).
    type: dict
    required: true
  svg:
    description: The timeline, as P(bluemind.migration.report_timeline_svg#filter) draws it.
    type: str
    required: true
  markdown:
    description: The Markdown report.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Write the HTML report next to the others
  ansible.builtin.copy:
    dest: "reports/{{ inventory_hostname }}.html"
    content: "{{ bluemind_report | bluemind.migration.report_html(timeline_svg, report_markdown) }}"
    mode: "0644"
  delegate_to: localhost
"""

RETURN = r"""
_value:
  description: The HTML document (UTF-8 text).
  type: str
"""

import html
import re

from ansible_collections.bluemind.migration.plugins.module_utils import state as migration_state

STYLE = """
body { font-family: "DejaVu Sans", "Liberation Sans", Arial, sans-serif; color: #1a202c; margin: 2em auto;
       max-width: 1000px; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.5em; } h3 { font-size: 1.05em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #cbd5e0; padding: 0.2em 0.6em; text-align: left; }
th { background: #edf2f7; }
td.number { text-align: right; }
figure { margin: 1em 0; overflow-x: auto; }
"""
# The SVG's namespace, needless inline in HTML: left out so that the page names no URL at all.
SVG_NAMESPACE = ' xmlns="http://www.w3.org/2000/svg"'
IMAGE_LINE = re.compile(r"^\s*!\[([^\]]*)\]\([^)]*\)\s*$")


def _text(value):
    return html.escape(str(value), quote=True)


def _inline(text):
    """One line of Markdown: escaped, then **bold**."""
    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", _text(text))


def _cells(line):
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def markdown_to_html(markdown):
    """The Markdown the report template writes, as HTML: headings, paragraphs, lists (with their
    indented continuation lines), tables. An image line becomes a note: the page holds the picture inline."""
    out, table, items = [], None, None

    def close():
        nonlocal table, items
        if table is not None:
            head, rows = table[0], table[1:]
            out.append("<table><thead><tr>%s</tr></thead><tbody>%s</tbody></table>" % (
                "".join("<th>%s</th>" % _inline(c) for c in head),
                "".join("<tr>%s</tr>" % "".join("<td>%s</td>" % _inline(c) for c in row) for row in rows)))
        if items is not None:
            out.append("<ul>%s</ul>" % "".join("<li>%s</li>" % _inline(" ".join(item)) for item in items))
        table = items = None

    for line in (markdown or "").splitlines():
        stripped = line.strip()
        if items is not None and line.startswith("  ") and stripped:
            items[-1].append(stripped)
            continue
        if stripped.startswith("|"):
            if items is not None:
                close()
            table = table if table is not None else []
            if not re.match(r"^\|[\s|:-]*\|$", stripped):  # the row under the header
                table.append(_cells(stripped))
            continue
        if stripped.startswith("- "):
            if table is not None:
                close()
            items = items if items is not None else []
            items.append([stripped[2:]])
            continue
        close()
        heading = re.match(r"^(#{1,4})\s+(.*)$", stripped)
        if heading:
            level = min(len(heading.group(1)) + 1, 4)  # the page's own title is the only h1
            out.append("<h%d>%s</h%d>" % (level, _inline(heading.group(2)), level))
        elif IMAGE_LINE.match(stripped):  # the picture itself is inline in the page
            out.append("<p><em>%s: drawn at the top of this page</em></p>" % _inline(IMAGE_LINE.match(stripped).group(1)))
        elif stripped:
            out.append("<p>%s</p>" % _inline(stripped))
    close()
    return "\n".join(out)


def _figures(report):
    timeline = migration_state.timeline(report)
    downtime = report.get("downtime_seconds") or (timeline["downtime"] or {}).get("seconds")
    predicted = (report.get("cold_sync") or {}).get("predicted_seconds")
    rows = [("Target", report.get("target") or "?"), ("Origin", report.get("origin") or "?"),
            ("BlueMind version", report.get("version") or "?"),
            ("Downtime (origin stopped to target serving)", "%.1f s" % downtime if downtime else "not ended"),
            ("Downtime predicted before the window", "%.1f s" % predicted if predicted is not None else "not predicted"),
            ("Complete", "yes" if report.get("complete") else "no"),
            ("Hot sync runs", str(len(timeline["hot_sync_runs"])))]
    rows += [("Window step: %s" % step["label"], "%.1f s" % step["seconds"]) for step in timeline["steps"]]
    return "<table class=\"figures\"><tbody>%s</tbody></table>" % "".join(
        "<tr><th>%s</th><td>%s</td></tr>" % (_text(name), _text(value)) for name, value in rows)


def report_html(report, svg, markdown):
    report = report or {}
    title = "BlueMind migration report: %s to %s" % (report.get("origin") or "?", report.get("target") or "?")
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en">',
        '<head><meta charset="utf-8"><title>%s</title><style>%s</style></head>' % (_text(title), STYLE),
        "<body>",
        "<h1>%s</h1>" % _text(title),
        _figures(report),
        '<figure class="timeline">%s</figure>' % (svg or "").strip().replace(SVG_NAMESPACE, "", 1),
        '<section class="report">%s</section>' % markdown_to_html(markdown),
        "</body>",
        "</html>",
    ]) + "\n"


class FilterModule:
    def filters(self):
        return {"report_html": report_html}
