"""The command line's pages: which one a run or batch shows (report.html, a batch's or sweep's
index.html), the folder a VM's done marker gives an item, and --open without a display."""
import shutil
from pathlib import Path

from harness import cli
from harness.plan.batch_plan import BatchItem, BatchPlan
from harness.targets.protocol import done_marker

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "report"


def _runs(tmp_path: Path, *names: str) -> list[Path]:
    runs = []
    for name in names:
        run = tmp_path / name / "20261204-100000-0000"
        shutil.copytree(FIXTURES / name, run)
        runs.append(run)
    return runs


def test_a_vm_items_done_marker_gives_it_its_folder(capsys):
    item = BatchItem(Path("x.yaml"), "x", "vm")
    cli._say_unmarked("building 2 hosts", item)
    cli._say_unmarked(done_marker(0, 0, 12.5, Path("/results/x/20261204-100000-0000")), item)
    assert item.results == "/results/x/20261204-100000-0000"
    assert "building 2 hosts" in capsys.readouterr().out


def test_one_run_shows_its_report_several_get_a_batch_index(tmp_path):
    stale, teardown = _runs(tmp_path, "stale_syn", "teardown")
    one = BatchPlan([BatchItem(Path("a.yaml"), "stale_syn", "vm", results=str(stale))])
    assert cli._write_indexes(one, tmp_path) == stale / "report.html"
    two = BatchPlan([BatchItem(Path("a.yaml"), "stale_syn", "vm", results=str(stale)),
                     BatchItem(Path("b.yaml"), "teardown", "vm", results=str(teardown))])
    page = cli._write_indexes(two, tmp_path)
    assert page.parent.parent == tmp_path / "batches" and page.name == "index.html"
    text = page.read_text()
    assert "stale_syn" in text and "teardown" in text
    lost = BatchItem(Path("c.yaml"), "abort", "vm", note="not run: the VM ended before reaching it")
    page = cli._write_indexes(BatchPlan(two.items + [lost]), tmp_path)
    assert "abort: not run: the VM ended before reaching it" in page.read_text()


def test_open_without_a_display_says_where_the_page_is(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    page = tmp_path / "report.html"
    page.write_text("<html></html>")
    cli._open_page(page)
    assert page.resolve().as_uri() in capsys.readouterr().out
    cli._open_page(tmp_path / "missing.html")
    assert "no page to open" in capsys.readouterr().out


def test_a_sweep_gets_its_index_next_to_its_cells_and_no_batch_index(tmp_path):
    matrix = tmp_path / "teardown" / "20261204-100000-0000"
    cells = []
    for cell in ("repeat=1", "repeat=2"):
        shutil.copytree(FIXTURES / "teardown", matrix / cell)
        cells.append(matrix / cell)
    plan = BatchPlan([BatchItem(Path("t.yaml"), f"teardown[{c.name}]", "vm", results=str(c)) for c in cells],
                     {matrix: cells})
    assert cli._write_indexes(plan, tmp_path) == matrix / "index.html"
    assert (matrix / "comparison.csv").exists() and not (tmp_path / "batches").exists()


def test_a_page_that_cannot_be_drawn_costs_the_run_nothing(tmp_path, monkeypatch, capsys):
    """The runner's _draw_report: a bug in drawing is said, its traceback kept; and when even the
    traceback cannot be written (the disk that stopped the drawing), still nothing is raised."""
    from harness import runner
    from harness.report import page

    def broken(run_dir):
        raise RuntimeError("drawing broke")
    monkeypatch.setattr(page, "write_report", broken)
    runner._draw_report(tmp_path)
    assert "drawing broke" in (tmp_path / "report-traceback.txt").read_text()
    assert "The verdict below stands" in capsys.readouterr().out
    runner._draw_report(tmp_path / "gone")             # no folder: the traceback cannot be kept
    assert "could not be kept either" in capsys.readouterr().out


def test_a_vm_runs_page_is_drawn_on_the_host_once_its_folder_is_complete(tmp_path):
    """harness.targets.vm.report_on_host: the guest publishes the folder, the host draws the page
    (natively) and says where it is; an incomplete run, or one with a page already, is left as it is."""
    import json
    from harness.targets.vm import report_on_host
    said: list[str] = []
    run = tmp_path / "run"
    shutil.copytree(FIXTURES / "teardown", run)
    (run / "report.html").unlink(missing_ok=True)
    report_on_host(str(run), said.append)
    assert said == [f"report:  {run / 'report.html'}"] and "<svg" in (run / "report.html").read_text()
    report_on_host(str(run), said.append)          # drawn already: nothing more
    assert len(said) == 1
    incomplete = tmp_path / "incomplete"
    shutil.copytree(FIXTURES / "teardown", incomplete)
    (incomplete / "report.html").unlink(missing_ok=True)
    result = json.loads((incomplete / "result.json").read_text())
    (incomplete / "result.json").write_text(json.dumps(dict(result, complete=False)))
    report_on_host(str(incomplete), said.append)
    report_on_host("", said.append)
    assert len(said) == 1 and not (incomplete / "report.html").exists()
