"""The report's picture and page: what the timeline draws from the recorded times, and an HTML page
that loads nothing."""
import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

from ansible_collections.bluemind.migration.plugins.filter.report_html import markdown_to_html, report_html
from ansible_collections.bluemind.migration.plugins.filter.report_timeline_svg import report_timeline_svg
from ansible_collections.bluemind.migration.plugins.module_utils import state as st

from ..report_fixture import report

NS = {"svg": "http://www.w3.org/2000/svg"}
LABELS = list(dict(st.WINDOW_STEPS).values())


def drawn(svg):
    """The SVG parsed (it must be well-formed XML)."""
    return ET.fromstring(svg)


def texts(root, name):
    return [t.text for t in root.iterfind(".//svg:text", NS) if t.get("class") == name]


def rects(root, prefix):
    return [r for r in root.iterfind(".//svg:rect", NS) if (r.get("class") or "").startswith(prefix)]


def test_each_window_step_is_a_labelled_bar_in_order_with_its_seconds():
    root = drawn(report_timeline_svg(report()))
    assert texts(root, "step-label") == LABELS
    bars = rects(root, "step ")
    assert [b.get("class") for b in bars] == ["step step-%s" % name for name in dict(st.WINDOW_STEPS)]
    # each bar's tooltip and the words after it give its seconds (stop: 14 s, start on the target: 85 s)
    tips = [b.find("svg:title", NS).text for b in bars]
    assert tips[0].startswith("stop BlueMind and postfix: ") and tips[0].endswith(", 14.0 s")
    assert tips[5].endswith(", 1 min 25.0 s")
    widths = [float(b.get("width")) for b in bars]
    assert widths[5] > widths[0] > widths[4]  # 85 s > 14 s > 8 s: drawn to scale
    assert not texts(root, "missing")


def test_the_downtime_is_shaded_from_the_stop_to_the_target_serving_and_its_length_written():
    root = drawn(report_timeline_svg(report()))
    assert texts(root, "downtime-label") == ["downtime 2 min 40.0 s (origin stopped to target serving)"]
    (shade,) = rects(root, "downtime")
    bars = {b.get("class"): b for b in rects(root, "step ")}
    stop, start = bars["step step-stop"], bars["step step-start"]
    # the downtime begins with the stop and ends when the target serves, the end of its start
    assert float(shade.get("x")) == float(stop.get("x"))
    assert abs(float(shade.get("x")) + float(shade.get("width"))
               - float(start.get("x")) - float(start.get("width"))) < 0.2
    # the admin actions come after it: the target serves while they run
    assert float(bars["step step-admin"].get("x")) > float(shade.get("x")) + float(shade.get("width"))


def test_each_hot_sync_is_a_mark_in_time_order_before_the_window():
    root = drawn(report_timeline_svg(report()))
    marks = rects(root, "hot-sync")
    assert len(marks) == 6
    xs = [float(m.get("x")) for m in marks]
    assert xs == sorted(xs) and len(set(xs)) == 6
    assert marks[0].find("svg:title", NS).text.startswith("hot sync #1: 2026-11-20T11:24:00.000000Z to ")
    assert texts(root, "hot-sync-label")[0] == "#1 10 min"


def test_every_text_is_escaped():
    nasty = "<b>o&'\"</b>"
    svg = report_timeline_svg(report(origin=nasty, target="t<script>"))
    assert "<b>" not in svg and "<script>" not in svg
    assert drawn(svg).find("svg:title", NS).text == "BlueMind migration timeline: %s to t<script>" % nasty
    page = report_html(report(origin=nasty, target="t<script>"), svg, "# x %s\n- **a** <i>" % nasty)
    assert "<script>" not in page and "<b>" not in page and "<i>" not in page
    assert "&lt;b&gt;o&amp;&#x27;&quot;&lt;/b&gt;" in page


def test_a_run_that_stopped_after_the_hot_syncs_draws_them_and_no_window():
    root = drawn(report_timeline_svg(report(until=("hot_sync", "done"))))
    assert len(rects(root, "hot-sync")) == 1
    assert not rects(root, "step ") and not rects(root, "downtime")
    assert "the cold window has not started" in ET.tostring(root, encoding="unicode")


def test_an_empty_report_and_an_open_window_render():
    empty = report_timeline_svg({})
    assert "no hot sync recorded" in empty and "the cold window has not started" in empty
    drawn(empty)
    under_way = drawn(report_timeline_svg(report(until=("db_migrate", "done"))))
    assert texts(under_way, "step-label") == LABELS[:4]
    assert texts(under_way, "downtime-label")[0].startswith("downtime under way since 2026-11-28T20:00:00")
    assert texts(under_way, "missing") == ["not recorded: configuration copy, start on the target, "
                                           "admin actions, smoke checks"]


def test_a_state_from_before_the_timeline_draws_what_it_has():
    old = report()
    for key in ("pull", "verify", "stopped"):
        old["cold_sync"].pop(key)
    old["db_migrate"].pop("pass")
    for run in old["hot_sync_runs"]:
        run.pop("start")
    root = drawn(report_timeline_svg(old))
    assert texts(root, "step-label") == ["configuration copy", "start on the target", "admin actions, smoke checks"]
    assert texts(root, "missing") == ["not recorded: stop BlueMind and postfix, final pull, "
                                      "verification by checksum, database pass"]
    assert len(rects(root, "hot-sync")) == 6  # a mark at each run's end


def test_the_same_report_gives_the_same_bytes():
    first = report_timeline_svg(report())
    reread = json.loads(json.dumps(report(), sort_keys=True))  # as the JSON report gives it back
    assert report_timeline_svg(reread) == first
    assert report_html(reread, first, "# r\n") == report_html(report(), first, "# r\n")


class Loads(HTMLParser):
    """Every attribute that could make a browser fetch something."""

    def __init__(self):
        super().__init__()
        self.fetching = []

    def handle_starttag(self, tag, attrs):
        self.fetching += [(tag, name) for name, value in attrs if name in ("src", "href", "srcset", "data", "poster")]
        if tag in ("script", "link", "iframe", "img", "object", "embed"):
            self.fetching.append((tag, None))


def test_the_page_is_self_contained_and_holds_the_timeline_and_the_figures():
    data = report()
    svg = report_timeline_svg(data)
    markdown = "# Report\n\n- Downtime: **160.0 s**\n  (from a to b)\n\n## Timeline\n![timeline](bm-new.svg)\n\n" \
               "| # | seconds |\n|---|---|\n| 1 | 600.0 |\n"
    page = report_html(data, svg, markdown)
    assert not re.search(r"https?://|src=|url\(|@import", page)
    loads = Loads()
    loads.feed(page)
    assert loads.fetching == []
    assert page.count("<svg ") == 1 and all(label in page for label in LABELS)
    assert "<th>Downtime (origin stopped to target serving)</th><td>160.0 s</td>" in page
    assert "<th>Window step: final pull</th><td>22.5 s</td>" in page
    assert "<th>Hot sync runs</th><td>6</td>" in page
    assert "<th>Downtime predicted before the window</th><td>not predicted</td>" in page
    data["cold_sync"]["predicted_seconds"] = 140.5
    assert "<th>Downtime predicted before the window</th><td>140.5 s</td>" in report_html(data, svg, markdown)
    assert "<li>Downtime: <strong>160.0 s</strong> (from a to b)</li>" in page
    assert "<tr><td>1</td><td>600.0</td></tr>" in page and "bm-new.svg" not in page
    assert "<h3>Timeline</h3>\n<p><em>timeline: drawn at the top of this page</em></p>" in page


def test_markdown_headings_lists_and_tables():
    assert markdown_to_html("# A\n## B\ntext\n- one\n- two\n  more\n| h |\n|---|\n| c |\n") == "\n".join([
        "<h2>A</h2>", "<h3>B</h3>", "<p>text</p>", "<ul><li>one</li><li>two more</li></ul>",
        "<table><thead><tr><th>h</th></tr></thead><tbody><tr><td>c</td></tr></tbody></table>"])
