"""The report as users open it: the bluemind role's report tasks run for real on the controller
(ansible-playbook on localhost) write the SVG and the HTML next to the JSON and the Markdown, and the
HTML page opens in a headless Chromium, which draws the timeline with every step of the window.

Chromium comes from Debian's archive (scripts/bootstrap.sh system installs it): without it these
tests fail, saying so, rather than skip."""
import collections
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from ansible_collections.bluemind.migration.plugins.filter.report_timeline_svg import report_timeline_svg
from ansible_collections.bluemind.migration.plugins.module_utils import state as st

from .report_fixture import report

TOP = Path(__file__).resolve().parents[2]
TARGET = "bm-new"
# The colours the timeline draws its bars with (report_timeline_svg's COLOURS): step, hot sync, downtime.
STEP_GREEN, HOT_BLUE, DOWNTIME_PINK = (0x2F, 0x85, 0x5A), (0x2B, 0x6C, 0xB0), (0xFE, 0xD7, 0xD7)


def chromium():
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("chromium is not installed: run `make system` (scripts/bootstrap.sh system installs it from "
                    "Debian's archive) or `apt-get install -y chromium`", pytrace=False)
    return found


def browse(tmp_path, url, *args):
    """Chromium headless on ``url``, nothing but the page: no profile of the user, no network."""
    command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               "--disable-background-networking", "--host-resolver-rules=MAP * ~NOTFOUND",
               "--user-data-dir=%s" % (tmp_path / "profile"), *args, url]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """The report folder after the role's report tasks ran on a state that went through the whole migration."""
    work = tmp_path_factory.mktemp("report")
    state = {k: v for k, v in report(target=TARGET).items() if k not in ("target", "downtime_seconds")}
    (work / "state.json").write_text(json.dumps(state))
    play = [{"hosts": TARGET, "gather_facts": False,
             "vars": {"bluemind_report_dir": str(work / "reports"), "ansible_python_interpreter": sys.executable},
             "tasks": [{"name": "Read the migration state", "bluemind.migration.bluemind_state": {"path": str(work / "state.json")}},
                       {"name": "Write the report", "ansible.builtin.include_role": {
                           "name": "bluemind.migration.bluemind", "tasks_from": "report"}}]}]
    (work / "play.json").write_text(json.dumps(play))
    (work / "ansible.cfg").write_text("[defaults]\n")
    collections = Path(sys.modules["ansible_collections"].__path__[0]).parent  # conftest's link to the checkout
    env = dict(os.environ, ANSIBLE_CONFIG=str(work / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=str(collections))
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "%s," % TARGET, "-c", "local",
                           str(work / "play.json")], capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return work / "reports"


def test_the_role_writes_the_svg_and_the_html_next_to_the_json_and_the_markdown(written):
    assert sorted(p.name for p in written.iterdir()) == ["%s.%s" % (TARGET, ext) for ext in ("html", "json", "md", "svg")]
    json_report = json.loads((written / ("%s.json" % TARGET)).read_text())
    svg = (written / ("%s.svg" % TARGET)).read_text()
    # the picture is the JSON report's: anyone can draw it again from the JSON alone
    assert svg == report_timeline_svg(json_report)
    assert "![timeline](%s.svg)" % TARGET in (written / ("%s.md" % TARGET)).read_text()
    page = (written / ("%s.html" % TARGET)).read_text()
    assert "<svg " in page and "Hot sync runs" in page and "## " not in page


def test_the_browser_draws_every_step_of_the_window(written, tmp_path):
    dom = browse(tmp_path, (written / ("%s.html" % TARGET)).as_uri(), "--dump-dom")
    # the DOM Chromium built: the SVG inline, its step labels as text elements, in the window's order
    svg = dom[dom.index("<svg"):dom.index("</svg>")]
    positions = [svg.index('class="step-label">%s</text>' % label.replace("&", "&amp;")) for label in dict(st.WINDOW_STEPS).values()]
    assert positions == sorted(positions)
    assert "downtime 2 min 40.0 s (origin stopped to target serving)" in svg


def png_colours(data):
    """(width, height, how many pixels of each RGB colour) of an 8-bit non-interlaced PNG, as Chromium writes."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            chunks.append(body)
        pos += 12 + length
    width, height, depth, colour, interlace = header[0], header[1], header[2], header[3], header[6]
    assert depth == 8 and colour in (2, 6) and interlace == 0, header
    channels = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(b"".join(chunks)), width * channels
    counts, previous = collections.Counter(), bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if kind == 2:  # up: the most common, done at once
            line = bytearray((a + b) & 0xFF for a, b in zip(line, previous))
        elif kind:
            for i in range(stride):
                left = line[i - channels] if i >= channels else 0
                up, corner = previous[i], previous[i - channels] if i >= channels else 0
                if kind == 1:
                    line[i] = (line[i] + left) & 0xFF
                elif kind == 3:
                    line[i] = (line[i] + (left + up) // 2) & 0xFF
                else:
                    guess = left + up - corner
                    pa, pb, pc = abs(guess - left), abs(guess - up), abs(guess - corner)
                    line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        counts.update(zip(line[0::channels], line[1::channels], line[2::channels]))
        previous = line
    return width, height, counts


def test_the_screenshot_shows_the_bars_of_the_timeline(written, tmp_path):
    shot = tmp_path / "page.png"
    browse(tmp_path, (written / ("%s.html" % TARGET)).as_uri(), "--window-size=1040,1000", "--screenshot=%s" % shot)
    width, height, counts = png_colours(shot.read_bytes())
    assert (width, height) == (1040, 1000)
    assert len(counts) > 20, "a blank page"
    # the bars in their colours: seven steps (hundreds of pixels each), six hot syncs, the downtime's shade
    assert counts.get(STEP_GREEN, 0) > 7 * 200
    assert counts.get(HOT_BLUE, 0) > 6 * 20  # marks of 3 px by 18
    assert counts.get(DOWNTIME_PINK, 0) > 10000
