"""report.html from recorded run folders (copies, so the fixtures stay as recorded): one
self-contained file (no URL of any kind but the SVG namespace), a verdict row per expectation
whose marks all exist, the topology naming every node, the time-sequence view only for runs that
carried data, failed and old runs shown as such, and the file written whole (no temp file left)."""
from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET
from html import escape, unescape
from html.parser import HTMLParser
from pathlib import Path

import pytest

from harness.analyse.segments import read_segments
from harness.errors import UserError
from harness.report import browser
from harness.report.page import LONG, REPORT, network_note, write_report
from harness.report.topology_svg import columns, topology_svg
from harness.report.tseq_svg import data_directions, direction_series, nice_ticks, tseq_svg

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
LADDER_RUNS = ("stale_syn", "teardown", "two_clients", "duplicate_syn", "simultaneous_close", "steps_at_routers")
RUNS = {**{name: FIXTURES / "report" / name for name in LADDER_RUNS},
        "half_close": FIXTURES / "report_page" / "half_close"}
SVG_NS = "http://www.w3.org/2000/svg"


class Page(HTMLParser):
    """Elements (tag, attributes) in order, and the text inside each <svg class=...> by its class."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, dict[str, str]]] = []
        self.svg_text: dict[str, list[str]] = {}
        self._svg: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        self.found.append((tag, a))
        if tag == "svg":
            self._svg.append(a.get("class", ""))

    def handle_endtag(self, tag):
        if tag == "svg" and self._svg:
            self._svg.pop()

    def handle_data(self, data):
        if self._svg and data.strip():
            self.svg_text.setdefault(self._svg[0], []).append(data.strip())

    def tagged(self, tag: str, cls: str | None = None) -> list[dict[str, str]]:
        return [a for t, a in self.found if t == tag and (cls is None or cls in a.get("class", "").split())]

    def ids(self) -> set[str]:
        return {a["id"] for _, a in self.found if "id" in a}


def need_chromium() -> None:
    """The browser tests need Debian's chromium (scripts/setup --tests); a machine without it skips them."""
    try:
        browser.find_chromium()
    except UserError:
        pytest.skip("no chromium on PATH (scripts/setup --tests installs it)")


def copy_run(name: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(RUNS[name], tmp_path / name))


def report(name: str, tmp_path: Path, change=None) -> tuple[Path, str, dict]:
    """write_report on a copy of a fixture run, after `change(result)` edited its result.json."""
    run = copy_run(name, tmp_path)
    result = json.loads((run / "result.json").read_text())
    if change:
        change(result)
        (run / "result.json").write_text(json.dumps(result))
    path = write_report(run)
    return path, path.read_text(), result


@pytest.mark.parametrize("name", sorted(RUNS))
def test_the_page_names_no_url_but_the_svg_namespace(name, tmp_path):
    _, html, _ = report(name, tmp_path)
    urls = re.findall(r"(?:https?:)?//[^\s\"'<>)]*", html)
    assert set(urls) <= {SVG_NS, "http://www.w3.org/1999/xlink"}, sorted(set(urls))[:10]
    assert not re.search(r"<(link|img|iframe|object|embed)\b", html), "an element that loads a file"
    assert not re.search(r"<[^>]*\ssrc\s*=|@import|url\((?!#)", html), "something loaded by reference"


@pytest.mark.parametrize("name", sorted(RUNS))
def test_one_verdict_row_per_expectation_and_every_mark_exists(name, tmp_path):
    _, html, result = report(name, tmp_path)
    page = Page(html)
    rows = page.tagged("tr", "verdict")
    assert len(rows) == len(result["expectations"]) > 0
    ids = page.ids()
    for i, (row, e) in enumerate(zip(rows, result["expectations"])):
        assert row["id"] == f"verdict-{i}" and row["tabindex"] == "0"
        assert ("pass" if e["passed"] else "fail") in row["class"].split()
        assert [m for m in row["data-marks"].split() if m not in ids] == []
    (body,) = page.tagged("body")
    assert body["data-ready"] == "0" and body["data-errors"] == ""


def _mark_the_held_syn(result):
    """Give expectation 4 (held) marks as a new run has them: its subject, interval and the SYN it matched."""
    step = result["network"][0]["segments"][0]
    client = result["observation"]["client"]
    result["expectations"][4]["marks"] = {"subjects": ["client"], "interval": [step["arrived"], step["left"][0]],
                                          "segments": [[client[0], client[1], step["arrived"]]]}


def test_the_ladder_is_in_the_page_and_a_verdict_marks_its_elements(tmp_path):
    _, html, _ = report("stale_syn", tmp_path, _mark_the_held_syn)
    page = Page(html)
    assert [s["id"] for s in page.tagged("svg", "ladder")] == ["ladder"]
    assert "ladder-problem" not in page.ids()
    assert {"export-svg", "export-png"} <= page.ids()
    rows = page.tagged("tr", "verdict")
    marked = rows[4]["data-marks"].split()
    assert any(m.startswith("seg-") for m in marked) and any(m.startswith("bracket-") for m in marked), marked
    assert set(marked) <= page.ids()
    assert all(r["data-marks"] == "" for i, r in enumerate(rows) if i != 4), "marks where result.json has none"


def test_a_long_verdict_text_scrolls_in_its_cell_whole(tmp_path):
    _, html, result = report("stale_syn", tmp_path)
    observed = result["expectations"][3]["observed"]
    assert len(observed) > LONG and f'<div class="long">{escape(observed)}</div>' in html
    assert html.count('<div class="long">') == sum(len(str(e[k])) > LONG for e in result["expectations"]
                                                  for k in ("expected", "observed"))


def test_the_time_sequence_view_only_for_a_run_with_data(tmp_path):
    _, with_data, _ = report("half_close", tmp_path)
    _, without, _ = report("stale_syn", tmp_path)
    views = Page(with_data).tagged("svg", "tseq")
    assert len(views) == 1, "half_close: the server sends, the client sends nothing"
    assert "server → client" in " ".join(Page(with_data).svg_text["tseq"])
    assert Page(without).tagged("svg", "tseq") == [] and 'class="tseq"' not in without


def test_the_topology_drawing_names_every_host_and_switch(tmp_path):
    for name in ("two_clients", "stale_syn"):
        _, html, result = report(name, tmp_path / name)
        lab = result["lab"]
        texts = set(Page(html).svg_text["topology"])
        assert set(lab["hosts"]) | set(lab["switches"]) <= texts, texts
        for host, info in lab["hosts"].items():
            assert info["ip"] in texts
        steps = {t for t in texts if "(line " in t}
        assert steps == ({"hold client → server (line 17)"} if name == "stale_syn" else set()), steps


def test_the_topology_svg_is_valid_xml_with_a_line_per_link_and_both_delays(tmp_path):
    lab = json.loads((copy_run("two_clients", tmp_path) / "result.json").read_text())["lab"]
    root = ET.fromstring(topology_svg(lab, "server"))
    lines = root.findall(f".//{{{SVG_NS}}}line")
    assert len(lines) == len(lab["links"]) == 3
    delays = [t.text for t in root.iter(f"{{{SVG_NS}}}text") if "ms" in (t.text or "")]
    assert delays.count("→ 25 ms") == 3 and delays.count("← 25 ms") == 3, delays


def test_topology_columns_put_the_server_right_and_clients_left():
    chain = {"hosts": {"client": {}, "server": {}}, "switches": ["s1", "s2"],
             "links": [{"a": "client", "b": "s1"}, {"a": "s2", "b": "s1"}, {"a": "server", "b": "s2"}]}
    assert columns(chain) == {"client": 0, "server": 3, "s1": 1, "s2": 2}
    star = {"hosts": {"client1": {}, "client2": {}, "server": {}}, "switches": ["s1"],
            "links": [{"a": h, "b": "s1"} for h in ("client1", "client2", "server")]}
    assert columns(star) == {"client1": 0, "client2": 0, "server": 2, "s1": 1}
    assert columns(star, server="client1") == {"client1": 2, "client2": 0, "server": 0, "s1": 1}


def test_the_time_sequence_series_of_half_close_counts_its_bytes(tmp_path):
    run = copy_run("half_close", tmp_path)
    sent, wire = read_segments(run / "pcap/server.kernel.pcap"), read_segments(run / "pcap/server-eth0.pcap")
    (key,) = data_directions(sent)
    assert key[:2] == ("10.0.0.2", 5001)
    series = direction_series(sent, wire, key, "server → client")
    assert series.data_bytes == 100000 and series.data[0][1] == 1      # the SYN took seq 0
    assert series.acks[-1][1] == 100002                                 # data, SYN and FIN acknowledged
    assert all(t >= 0 for t, *_ in series.data) and series.window[0][1] > series.acks[0][1]
    root = ET.fromstring(tseq_svg(series))
    assert len(root.findall(f".//{{{SVG_NS}}}circle")) >= len(series.data)


def test_nice_ticks():
    assert nice_ticks(1.0) == [0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
    assert nice_ticks(100001, 5)[-1] == 100000 and nice_ticks(0) == [0.0]


def test_a_failed_run_says_fail_and_its_failed_rows_stand_out(tmp_path):
    def fail_second(result):
        result["passed"] = False
        result["expectations"][1]["passed"] = False
    _, html, result = report("teardown", tmp_path, fail_second)
    page = Page(html)
    (badge,) = [a for t, a in page.found if a.get("id") == "badge"]
    assert badge["class"].split() == ["badge", "fail"]
    classes = [r["class"].split() for r in page.tagged("tr", "verdict")]
    assert [i for i, c in enumerate(classes) if "fail" in c] == [1]
    assert len(classes) == len(result["expectations"])


def test_an_old_run_without_lab_has_no_topology_and_says_so(tmp_path):
    _, html, _ = report("stale_syn", tmp_path, lambda r: r.pop("lab"))
    page = Page(html)
    assert "no-lab" in page.ids() and page.tagged("svg", "topology") == []
    assert page.tagged("tr", "verdict")


def test_a_run_with_no_segment_still_gets_its_page(tmp_path):
    run = copy_run("stale_syn", tmp_path)
    for pcap in (run / "pcap").glob("*.pcap"):
        shutil.copy(RUNS["stale_syn"] / "pcap" / "s1-eth1.pcap", pcap)      # same header ...
        pcap.write_bytes(pcap.read_bytes()[:24])                             # ... and no record
    page = Page(write_report(run).read_text())
    assert "no-segments" in page.ids() and page.tagged("svg", "tseq") == []
    assert len(page.tagged("tr", "verdict")) == len(json.loads((run / "result.json").read_text())["expectations"])


def test_the_report_is_written_whole_with_no_temp_file_left(tmp_path):
    run = copy_run("duplicate_syn", tmp_path)
    before = {p.name for p in run.iterdir()}
    path = write_report(run)
    assert path == run / REPORT and {p.name for p in run.iterdir()} == before | {REPORT}
    first = path.read_text()
    assert first.startswith("<!DOCTYPE html>") and first.rstrip().endswith("</html>")
    write_report(run)
    assert path.read_text() == first and {p.name for p in run.iterdir()} == before | {REPORT}


def test_network_steps_are_described(tmp_path):
    _, html, result = report("stale_syn", tmp_path)
    (step,) = result["network"]
    text = network_note(step, step["segments"][0]["arrived"], result["lab"]["network_steps"][0])
    assert text.startswith("line 17: hold client → server at s1 (s1-eth1 → s1-eth2): picked 1 of 2")
    assert "held 3.000 s" in text and "reached s1 at +0.000 s" in text
    assert "held 3.000 s" in html
    # on the ladder's clock: +0 is the SYN leaving the client's TCP, 25 ms of link before the switch
    assert "reached s1 at +0.025 s (ladder time), held 3.000 s" in html


def test_late_steps_are_listed(tmp_path):
    late = {"host": "client", "action": "close", "line": 12, "at_s": 2.0, "start_s": 2.35,
            "blocked_by": "wait (line 11), which ran until +2.350 s", "overtaken": [], "socket": "client#1",
            "late_s": 0.35}
    _, html, _ = report("teardown", tmp_path, lambda r: r.update(late_steps=[late]))
    assert ("client's close (line 12) started at +2.350 s, 350.0 ms after its at: 2s: client's socket client#1 "
            "was still in its previous step, wait (line 11), which ran until +2.350 s") in unescape(html)


def test_the_page_runs_in_a_browser_without_errors(tmp_path):
    need_chromium()
    path, _, _ = report("half_close", tmp_path)
    page = browser.load_page(path)
    (body,) = Page(page.dom).tagged("body")
    assert body["data-ready"] == "1" and body["data-errors"] == "", body
    assert page.console == [] and page.requests == []


# Appended to a copy of the page: pin verdict 4, export both pictures while it is pinned, unpin;
# what it saw goes to body[data-probe] (the downloads are caught by the page's download hook).
PROBE = """<script>
(function () {
  var out = {}, body = document.body, row = document.getElementById("verdict-4");
  function done() { body.setAttribute("data-probe", JSON.stringify(out)); }
  row.click();
  out.pinned = row.classList.contains("pinned");
  out.hl = Array.prototype.map.call(document.querySelectorAll(".hl"), function (e) { return e.id; });
  out.focus = document.getElementById("ladder").classList.contains("focus");
  window.reportOnDownload = function (blob, name) {
    if (name === "ladder.svg") {
      blob.text().then(function (text) {
        out.svg = {type: blob.type, start: text.slice(0, 60), hl: /class="[^"]*\\bhl\\b/.test(text),
                   focus: /class="[^"]*\\bfocus\\b/.test(text), segs: (text.match(/class="seg\\b/g) || []).length};
        document.getElementById("export-png").click();
      });
    } else {
      out.png = {name: name, type: blob.type, size: blob.size};
      row.click();
      out.after = document.querySelectorAll(".hl").length;
      row.dispatchEvent(new KeyboardEvent("keydown", {key: "Enter", bubbles: true}));
      out.enter = row.classList.contains("pinned") && document.querySelectorAll(".hl").length;
      done();
    }
  };
  document.getElementById("export-svg").click();
})();
</script></body>"""


def test_pinning_a_verdict_highlights_its_marks_and_the_ladder_exports(tmp_path):
    need_chromium()
    path, html, _ = report("stale_syn", tmp_path, _mark_the_held_syn)
    marked = Page(html).tagged("tr", "verdict")[4]["data-marks"].split()
    probe = path.with_name("probe.html")
    probe.write_text(html.replace("</body>", PROBE))
    page = browser.load_page(probe)
    (body,) = Page(page.dom).tagged("body")
    assert body["data-errors"] == "" and page.console == [], (body, page.console)
    seen = json.loads(body["data-probe"])
    assert seen["pinned"] and seen["focus"] and sorted(seen["hl"]) == sorted(marked)
    assert seen["svg"]["type"] == "image/svg+xml" and seen["svg"]["start"].startswith("<?xml")
    assert not seen["svg"]["hl"] and not seen["svg"]["focus"], "the export carries the page's highlight"
    assert seen["svg"]["segs"] == html.count('class="seg')
    assert seen["png"]["name"] == "ladder.png" and seen["png"]["type"] == "image/png" and seen["png"]["size"] > 10000
    assert seen["after"] == 0, "a second click unpins"
    assert seen["enter"] == len(marked), "Enter on the row pins it again"


def test_the_verdicts_go_beside_the_ladder_only_where_the_window_holds_both(tmp_path):
    """A wider ladder (more lanes) needs a wider window before the verdicts move beside it."""
    import re
    widths = {}
    for name in ("stale_syn", "steps_at_routers"):
        _, html, _ = report(name, tmp_path / name)
        least = int(re.search(r'class="ladder-box" style="--min-w: (\d+)px"', html).group(1))
        side = int(re.search(r"@media \(min-width: (\d+)px\)", html).group(1))
        assert side >= least + 34 * 16, (name, least, side)
        widths[name] = (least, side)
    assert widths["steps_at_routers"][0] > widths["stale_syn"][0]
    assert widths["steps_at_routers"][1] > widths["stale_syn"][1] >= 1300
