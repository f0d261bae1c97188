"""report.html as a reader's browser shows it: real runs (stale_syn, and two_clients for several
connections) opened from file:// in headless Chromium. From the DOM after the page's scripts ran:
the page finished its setup without errors, every segment of every capture of the run is drawn
(exactly once), every state change has its band edge, every expectation its verdict row, and
every element a verdict points at exists; the console stayed silent and the page asked for
nothing from the network. A screenshot of each page is kept in tests/artifacts/.

The checks themselves are shown to fail on a recorded run's page broken on purpose (no root, no
VM), and the browser to be killed, with all it started, at its wall-time limit."""
from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import tempfile
import time
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest

from harness.analyse.segments import read_segments
from harness.errors import UserError
from harness.report import browser

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts" / "report-browser"
RECORDED = REPO / "tests" / "fixtures" / "report" / "stale_syn"
EXPERIMENTS = ("stale_syn.yaml", "two_clients.yaml")
SHOT = (1400, 2400)             # CSS pixels: the header, the ladder and the verdicts of these runs

pytestmark = pytest.mark.integration


def require_chromium() -> None:
    """Skip only where the distribution has no chromium package; where it has one, a missing
    browser is a setup that was not run, and fails."""
    try:
        browser.find_chromium()
    except UserError as missing:
        policy = subprocess.run(["apt-cache", "policy", "chromium"], capture_output=True, text=True).stdout
        if "Candidate: (none)" in policy or "Candidate:" not in policy:
            pytest.skip("this distribution's package lists have no chromium (apt-cache policy chromium)")
        pytest.fail(str(missing))


class Elements(HTMLParser):
    """Every element of the dumped DOM as (tag, attributes), in document order."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, dict[str, str]]] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, {k: v or "" for k, v in attrs}))

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)

    def with_class(self, name: str) -> list[dict[str, str]]:
        return [a for _, a in self.found if name in a.get("class", "").split()]

    def tagged(self, tag: str) -> list[dict[str, str]]:
        return [a for t, a in self.found if t == tag]

    def ids(self) -> set[str]:
        return {a["id"] for _, a in self.found if "id" in a}


def captured(run: Path) -> Counter:
    """'stem:t' (%.6f) of every segment in every capture of the run, counted."""
    seen: Counter = Counter()
    for pcap in sorted((run / "pcap").glob("*.pcap")):
        stem = pcap.name[:-len(".pcap")]
        seen.update(f"{stem}:{seg.t:.6f}" for seg in read_segments(pcap))
    return seen


def state_changes(result: dict) -> list[tuple[str, str, float, float]]:
    """(socket, new state, earliest, latest moment of the change) for every span after a socket's first."""
    changes = []
    for name, sock in result["observation"]["sockets"].items():
        for span in sock["states"][1:]:
            earliest = span["sample_before"] if span["sample_before"] is not None else span["first_seen"]
            changes.append((name, span["state"], earliest, span["first_seen"]))
    return changes


def check_segments(run: Path, dom: Elements) -> None:
    drawn = Counter(token for seg in dom.with_class("seg") for token in seg.get("data-seen", "").split())
    pcaps = captured(run)
    assert sum(pcaps.values()) > 0, f"{run}: the run captured nothing"
    missing, extra = pcaps - drawn, drawn - pcaps
    assert not missing, f"captured segments with no arrow (or fewer than captured): {sorted(missing)[:20]}"
    assert not extra, f"arrows claiming captures no pcap has (or a segment drawn twice): {sorted(extra)[:20]}"


def check_band_edges(result: dict, dom: Elements) -> None:
    edges = [(e.get("data-socket"), e.get("data-state"), float(e.get("data-t", "nan"))) for e in dom.with_class("band-edge")]
    for socket, state, earliest, latest in state_changes(result):
        match = [e for e in edges if e[:2] == (socket, state) and earliest - 1e-6 <= e[2] <= latest + 1e-6]
        assert match, (f"no band edge for {socket} entering {state} between {earliest:.6f} and {latest:.6f}; "
                       f"edges of {socket}: {[e for e in edges if e[0] == socket]}")
        edges.remove(match[0])


def check_verdicts(result: dict, dom: Elements) -> None:
    rows = [tr for tr in dom.tagged("tr") if "verdict" in tr.get("class", "").split()]
    expectations = result["expectations"]
    assert len(rows) == len(expectations), f"{len(rows)} verdict rows for {len(expectations)} expectations"
    ids = dom.ids()
    for i, (row, expectation) in enumerate(zip(rows, expectations)):
        assert row.get("id") == f"verdict-{i}", row
        assert ("pass" if expectation["passed"] else "fail") in row["class"].split(), (expectation["name"], row)
        unknown = [m for m in row.get("data-marks", "").split() if m not in ids]
        assert not unknown, f"verdict {i} ({expectation['name']}) marks elements the page lacks: {unknown}"


def check_page(run: Path, page: browser.PageLoad) -> None:
    """Everything the DOM contract promises for one run folder's report.html."""
    dom = Elements(page.dom)
    result = json.loads((run / "result.json").read_text())
    (body,) = dom.tagged("body")
    assert body.get("data-ready") == "1", f"the page's script did not finish its setup: {body}"
    assert body.get("data-errors", "") == "", f"script errors: {body['data-errors']}"
    assert not page.console, f"the page wrote to the console: {page.console}"
    assert not page.requests, f"the page reached for the network: {page.requests}"
    assert any("ladder" in s.get("class", "").split() and s.get("id") == "ladder" for s in dom.tagged("svg"))
    check_segments(run, dom)
    check_band_edges(result, dom)
    check_verdicts(result, dom)


@pytest.mark.skipif(os.geteuid() != 0, reason="building a lab needs root")
def test_report_renders_every_segment_state_and_verdict(cli, tmp_path):
    require_chromium()
    code, out, err = cli(["--jobs", "1", *EXPERIMENTS], tmp_path).finish()
    folders = sorted(p.parent for p in tmp_path.glob("*/*/result.json"))
    assert len(folders) == len(EXPERIMENTS), out[-3000:] + err[-3000:]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for run in folders:
        report = run / "report.html"
        assert report.exists(), f"run-experiment wrote no {report}:\n{out[-2000:]}"
        began = time.monotonic()
        png = browser.screenshot(report, ARTIFACTS / f"{run.parent.name}.png", *SHOT)
        shot_s = time.monotonic() - began
        page = browser.load_page(report)
        print(f"{report}: DOM in {page.seconds:.2f} s, screenshot in {shot_s:.2f} s: {png} ({png.stat().st_size} bytes)")
        check_page(run, page)


@pytest.fixture
def recorded_report(tmp_path) -> Path:
    """A copy of a recorded stale_syn run folder with its report.html written."""
    from harness.report.page import write_report
    run = tmp_path / "stale_syn"
    shutil.copytree(RECORDED, run)
    write_report(run)
    return run


BREAKAGES = [   # (a pattern in report.html, its replacement once, what the checks must then say)
    ('data-seen="', 'data-unseen="', "captured segments with no arrow"),
    (r'(<line class="band-edge"[^>]*data-state=")ESTAB"', r'\1GONE"', "no band edge for"),
    ('<tr class="verdict ', '<tr class="row ', "verdict rows for"),
    ("</body>", "<script>no_such_function()</script></body>", "script errors|the page wrote to the console"),
    ("</body>", "<script>console.log('drawn')</script></body>", "the page wrote to the console"),
    ("</body>", '<img src="https://cdn.example.com/logo.png"></body>', "the page reached for the network"),
]


def test_a_recorded_runs_page_passes_the_checks(recorded_report):
    require_chromium()
    check_page(recorded_report, browser.load_page(recorded_report / "report.html"))


@pytest.mark.parametrize("pattern, replacement, complaint", BREAKAGES, ids=[b[2].split("|")[0] for b in BREAKAGES])
def test_the_checks_catch_a_broken_page(recorded_report, pattern, replacement, complaint):
    require_chromium()
    report = recorded_report / "report.html"
    broken, changes = re.subn(pattern, replacement, report.read_text(encoding="utf-8"), count=1)
    assert changes == 1, f"the page no longer has {pattern!r}: this breakage tests nothing"
    report.write_text(broken, encoding="utf-8")
    with pytest.raises(AssertionError, match=complaint):
        check_page(recorded_report, browser.load_page(report))


def test_the_ladder_alone_is_a_png_at_its_own_size(recorded_report, tmp_path):
    require_chromium()
    report = recorded_report / "report.html"
    width, height = browser.svg_size(browser.element_svg(report.read_text(encoding="utf-8")))
    png = browser.ladder_png(report, tmp_path / "ladder.png", scale=2)
    head = png.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", head[16:24]) == (2 * width, 2 * height)


def test_a_page_that_never_finishes_is_killed_with_all_it_started(tmp_path, monkeypatch):
    require_chromium()
    page = tmp_path / "hang.html"
    page.write_text("<html><body><script>while (true) {}</script></body></html>")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))         # the browser's profile and HOME go here
    began = time.monotonic()
    with pytest.raises(browser.BrowserFailed, match="did not finish within 3 s"):
        browser.load_page(page, limit_s=3)
    assert time.monotonic() - began < 3 + browser.SETTLE_S + 5
    assert not browser._processes_naming(str(scratch)), "a browser process outlived its limit"
    assert not list(scratch.iterdir()), "its profile folder was left"
