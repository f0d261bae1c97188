"""index.html of a sweep, a batch and compare-runs, built from recorded run folders (copies in
tmp_path): a row and a working relative link per run, the accepted range shaded where the
expectation gives one, the runs' order as numbers, and nothing fetched from outside the page."""
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest

from harness.report.compare import expected_range, main as compare_main
from harness.report.index import ladder_pair, nice_ticks, short_labels, write_index

REPO = Path(__file__).resolve().parents[2]
SWEEP = REPO / "tests" / "fixtures" / "syn_retries_sweep_vm"
RECORDED = REPO / "tests" / "fixtures" / "report"        # whole runs (pcaps too), for the ladders


class _Page(HTMLParser):
    """Every start tag of the page with its attributes, and the text of each table cell."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def having(self, tag: str, css: str) -> list[dict]:
        return [a for t, a in self.tags if t == tag and css in (a.get("class") or "").split()]


def _sweep(tmp_path: Path, kernels=("6.1.0-26-amd64",), shift: float = 0.0) -> list[Path]:
    """The recorded sweep's cells copied per kernel (RESULTS/<exp>/<id>/kernel-K/<cell>/), the
    second kernel's figures moved by `shift` seconds."""
    runs = []
    for n, kernel in enumerate(kernels):
        for cell in sorted(SWEEP.iterdir()):
            run = tmp_path / "syn_retries_sweep" / "20261204-100000-abcd" / f"kernel-{kernel}" / cell.name
            shutil.copytree(cell, run)
            result = json.loads((run / "result.json").read_text())
            result["kernel"] = kernel
            for verdict in result["expectations"]:
                if verdict.get("value") is not None:
                    verdict["value"] += n * shift
            (run / "result.json").write_text(json.dumps(result))
            runs.append(run)
    return runs


def _external(text: str) -> list[str]:
    """URLs the page would fetch or lead to outside itself (an SVG's xmlns names, never fetches)."""
    text = re.sub(r'xmlns(:\w+)?="[^"]*"', "", text)
    return re.findall(r"(?:https?:|ftp:)?//[\w.-]+\.\w+[^\s\"')]*", text)


def _links(page: Path) -> list[Path]:
    return [page.parent / unquote(a["href"]) for t, a in _Page(page.read_text()).tags if t == "a" and "href" in a]


def test_expected_ranges_are_read_from_both_texts_and_numbers():
    assert expected_range({"expected": "3.050 s to 3.060 s"}) == pytest.approx([3.05, 3.06])
    assert expected_range({"expected": "100.0 ms ± 12.5 ms (RTT 100 ms)"}) == pytest.approx([0.0875, 0.1125])
    assert expected_range({"expected": "800.0 ms to 2.000 s"}) == pytest.approx([0.8, 2.0])
    assert expected_range({"expected": "SYN-SENT → CLOSED"}) is None
    assert expected_range({"expected": "0 connection(s)"}) is None
    assert expected_range({"expected": "x", "expected_range": [1, 2.5]}) == [1.0, 2.5]


def test_a_sweep_index_has_a_row_and_a_working_link_per_run(tmp_path):
    runs = _sweep(tmp_path)
    (runs[1] / "report.html").write_text("<html></html>")          # one run has its report: linked
    page = write_index(tmp_path / "out", runs, "syn_retries_sweep")
    parsed = _Page(page.read_text())
    rows = parsed.having("tr", "run")
    assert len(rows) == 3 and all("pass" in r["class"] for r in rows)
    links = _links(page)
    assert len(links) == 3 and all(link.exists() for link in links)
    assert [link.name for link in links] == ["result.json", "report.html", "result.json"]
    assert [link.parent.resolve() for link in links] == [r.resolve() for r in runs]
    assert _external(page.read_text()) == []
    assert not list((tmp_path / "out").glob(".*tmp"))                # written whole, the temp file renamed


def test_the_accepted_range_is_shaded_where_the_expectation_gives_one(tmp_path):
    page = write_index(tmp_path, _sweep(tmp_path), "syn_retries_sweep")
    parsed = _Page(page.read_text())
    plots = {a["data-figure"] for a in parsed.having("svg", "figure-plot")}
    assert plots == {"gives_up", "last_syn"}           # the timings; states and errors have no figure
    bands = parsed.having("rect", "expected")
    assert len(bands) == 6                              # two figures x three cells
    gives_up = [(b["data-x"], float(b["data-low"]), float(b["data-high"])) for b in bands if float(b["data-low"]) >= 3]
    assert gives_up[0] == ("tcp_syn_retries=1@client", 3.0, 3.6)
    points = parsed.having("g", "pt")
    assert len(points) == 6 and all("pass" in p["class"].split() for p in points)


def test_a_failed_figure_and_a_run_without_result_show(tmp_path):
    runs = _sweep(tmp_path)
    result = json.loads((runs[0] / "result.json").read_text())
    result["expectations"][-1].update(passed=False, value=4.2)
    result["passed"] = False
    (runs[0] / "result.json").write_text(json.dumps(result))
    lost = tmp_path / "syn_retries_sweep" / "20261204-100000-abcd" / "kernel-x" / "tcp_syn_retries=4@client"
    lost.mkdir(parents=True)
    page = write_index(tmp_path / "out", runs + [lost], "t")
    parsed = _Page(page.read_text())
    assert [r["class"].split()[1] for r in parsed.having("tr", "run")] == ["fail", "pass", "pass", "none"]
    assert "<thead><tr><th>run</th><th>kernel</th>" in page.read_text()     # one experiment: no column for it
    assert "<td>x</td>" in page.read_text()                  # the lost cell's kernel, from its folder
    assert [p["data-x"] for p in parsed.having("g", "fail")] == ["tcp_syn_retries=1@client"]
    assert "3 of 4 passed" not in page.read_text() and "2 of 4 passed, 1 failed, 1 without a result" in page.read_text()


def test_two_kernels_are_two_series_in_numeric_order(tmp_path):
    runs = _sweep(tmp_path, ("6.12.118", "6.1.0-26-amd64"), shift=0.3)
    page = write_index(tmp_path, runs[::-1], "two kernels")
    points = _Page(page.read_text()).having("g", "pt")
    gives_up = [p for p in points if p["data-figure"] == "gives_up"]
    assert {p["data-kernel"] for p in gives_up} == {"6.1.0-26-amd64", "6.12.118"}
    one_kernel = [p["data-x"] for p in gives_up if p["data-kernel"] == "6.1.0-26-amd64"]
    assert one_kernel == [f"tcp_syn_retries={n}@client" for n in (1, 2, 3)]
    (left, right), why = ladder_pair([(json.loads((r / "result.json").read_text()) | {
        "settings": r.name, "passed": True}, r) for r in runs])
    assert left[0]["kernel"] != right[0]["kernel"] and left[0]["settings"] == right[0]["settings"]
    assert "two kernels" in why


def test_the_same_experiment_twice_is_not_a_ladder_pair(tmp_path):
    rows = [({"experiment": e, "settings": s, "kernel": "k", "passed": True}, tmp_path / f"{e}{s}")
            for e, s in (("a", "r1"), ("b", "r2"))]
    assert ladder_pair(rows) == ([], "")
    rows.append(({"experiment": "a", "settings": "x=2", "kernel": "k", "passed": True}, tmp_path / "a2"))
    assert [r[0]["settings"] for r in ladder_pair(rows)[0]] == ["r1", "x=2"]
    # plain runs (folders named by run id) of one experiment on two kernels: the kernels are compared
    plain = [({"experiment": "a", "settings": f"20261204-1000{n}0-abcd", "kernel": k, "passed": True}, tmp_path / k)
             for n, k in enumerate(("6.1", "6.1", "6.12"))]
    pair, why = ladder_pair(plain)
    assert [r["kernel"] for r, _ in pair] == ["6.1", "6.12"] and why == "a on two kernels"
    assert ladder_pair(plain[:2])[1] == "a: two runs"


def test_compare_runs_writes_the_index_next_to_the_comparison(tmp_path, capsys):
    runs = _sweep(tmp_path / "results")
    assert compare_main([str(tmp_path / "results"), "--out", str(tmp_path / "cmp")]) == 0
    assert capsys.readouterr().out.rstrip().endswith("comparison.png, index.html")
    links = _links(tmp_path / "cmp" / "index.html")
    assert sorted(link.parent.resolve() for link in links) == sorted(r.resolve() for r in runs)
    assert all(link.exists() for link in links)


def test_a_batch_index_links_runs_of_several_experiments(tmp_path):
    runs = _sweep(tmp_path)
    for run, name in zip(runs, ("alpha", "beta", "gamma")):
        result = json.loads((run / "result.json").read_text())
        (run / "result.json").write_text(json.dumps(result | {"experiment": name}))
    page = write_index(tmp_path / "batches" / "20261204-101010-abcd", runs, "3 runs", notes=["delta: the VM died"])
    parsed = _Page(page.read_text())
    assert len(parsed.having("tr", "run")) == 3 and len(_links(page)) == 3
    assert all(link.exists() and link.name == "result.json" for link in _links(page))
    assert "delta: the VM died" in page.read_text()
    assert parsed.having("svg", "figure-plot") == []        # each figure measured once: the table says it
    figures = parsed.having("span", "figure")               # one cell per run lists its own figures
    assert len(figures) == 6 and figures[0]["title"] == "accepted 3.0000 to 3.6000"
    assert "Ladders" not in page.read_text()                # different experiments: no pair to compare


def test_labels_lose_what_they_share_but_never_half_a_number():
    assert short_labels(["tcp_syn_retries=1@client", "tcp_syn_retries=3@client"]) == (
        ["1", "3"], "tcp_syn_retries=…@client")
    assert short_labels(["retries=10", "retries=15"]) == (["10", "15"], "retries=…")
    assert short_labels(["a", "b"]) == (["a", "b"], "")
    assert nice_ticks(3.0, 15.3) == [5, 10, 15] and nice_ticks(0.95, 1.32) == [1.0, 1.1, 1.2, 1.3]
    assert nice_ticks(0.0875, 0.1125)[0] == pytest.approx(0.09)


@pytest.mark.skipif(not (RECORDED / "stale_syn" / "pcap").exists(), reason="the recorded report runs are not here yet")
def test_two_recorded_runs_ladders_side_by_side(tmp_path):
    pytest.importorskip("harness.report.ladder_svg")
    runs = []
    for n, kernel in enumerate(("6.1.0-26-amd64", "6.12.118")):
        run = tmp_path / f"kernel-{kernel}" / "stale_syn"
        shutil.copytree(RECORDED / "stale_syn", run)
        result = json.loads((run / "result.json").read_text())
        (run / "result.json").write_text(json.dumps(result | {"kernel": kernel}))
        runs.append(run)
    text = write_index(tmp_path, runs, "stale_syn on two kernels").read_text()
    parsed = _Page(text)
    ladders = [a for t, a in parsed.tags if t == "svg" and "ladder" in (a.get("class") or "").split()]
    assert [a["id"] for a in ladders] == ["L1-ladder", "L2-ladder"]          # ids stay unique in one page
    ids = [a["id"] for _, a in parsed.tags if "id" in a]
    assert len(ids) == len(set(ids))
    assert len(parsed.having("div", "ladder-column")) == 2 and _external(text) == []
