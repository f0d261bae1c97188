"""compare-runs on synthetic result.json files: which experiment a row is, enough digits to tell
100.0 ms from 100.1 ms, and settings in numeric order."""
import csv
import json
import shutil
from pathlib import Path

from harness.report.compare import main as compare_main, natural_key, write_comparison


def _run(folder: Path, experiment: str, figures: dict[str, float], kernel: str = "6.1.0-26-amd64") -> Path:
    folder.mkdir(parents=True)
    expectations = [{"name": f"{name} (a → b)", "passed": True, "value": value} for name, value in figures.items()]
    (folder / "result.json").write_text(json.dumps({"experiment": experiment, "kernel": kernel, "passed": True,
                                                    "expectations": expectations}))
    return folder


def _table_lines(text: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith("---"))
    return lines[start - 1:start] + [l for l in lines[start + 1:] if l and not l.startswith(("(", "written"))]


def test_runs_of_different_experiments_are_told_apart(tmp_path):
    a = _run(tmp_path / "alpha" / "r1" / "delay=10ms", "alpha", {"t": 0.5})
    b = _run(tmp_path / "beta" / "r1" / "delay=10ms", "beta", {"t": 0.7})
    text = write_comparison(tmp_path / "out", [a, b])
    head, *rows = _table_lines(text)
    assert head.split()[0] == "experiment"
    assert [r.split()[0] for r in rows] == ["alpha", "beta"]        # two rows, not one merged "delay=10ms"
    with open(tmp_path / "out" / "comparison.csv") as f:
        assert [r["experiment"] for r in csv.DictReader(f)] == ["alpha", "beta"]


def test_one_experiment_is_named_once(tmp_path):
    runs = [_run(tmp_path / f"r={i}", "alpha", {"t": 0.1}) for i in (1, 2)]
    text = write_comparison(tmp_path / "out", runs)
    assert "of alpha" in text.splitlines()[0]
    assert _table_lines(text)[0].split()[0] == "settings"


def test_a_tenth_of_a_millisecond_shows(tmp_path):
    runs = [_run(tmp_path / "x=1", "e", {"rtt": 0.1000, "total": 15.3108}),
            _run(tmp_path / "x=2", "e", {"rtt": 0.1001, "total": 15.3109})]
    head, *rows = _table_lines(write_comparison(tmp_path / "out", runs))
    assert "rtt [ms]" in head and "total [s]" in head
    assert "100.0" in rows[0] and "100.1" in rows[1]
    assert "15.3108" in rows[0] and "15.3109" in rows[1]


def test_repeats_show_median_and_range_in_the_column_unit(tmp_path):
    runs = [_run(tmp_path / f"x=1#{i}", "e", {"rtt": v}) for i, v in enumerate((0.0999, 0.1002, 0.1000), 1)]
    (row,) = _table_lines(write_comparison(tmp_path / "out", runs))[1:]
    assert "100.0 [99.9-100.2]" in row


def test_settings_sort_numerically(tmp_path, capsys):
    for n in (10, 20, 5, 100, 1):
        _run(tmp_path / f"tcp_syn_retries={n}@client", "e", {"t": n / 10})
    _run(tmp_path / "delay=0.5s", "f", {"t": 1.0})
    _run(tmp_path / "delay=0.25s", "f", {"t": 1.0})
    assert compare_main([str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    rows = _table_lines(capsys.readouterr().out)[1:]
    assert [r.split()[1] for r in rows] == [f"tcp_syn_retries={n}@client" for n in (1, 5, 10, 20, 100)] + [
        "delay=0.25s", "delay=0.5s"]


def test_natural_key_mixes_text_and_numbers():
    names = ["a10", "a9", "b", "a", "a9.5", "10", "9"]
    assert sorted(names, key=natural_key) == ["9", "10", "a", "a9", "a9.5", "a10", "b"]


def test_redraw_draws_each_runs_report_again(tmp_path, capsys):
    run = tmp_path / "stale_syn" / "20261204-100000-0000"
    shutil.copytree(Path(__file__).resolve().parents[1] / "fixtures" / "report" / "stale_syn", run)
    assert not (run / "report.html").exists()
    assert compare_main([str(tmp_path), "--out", str(tmp_path / "out"), "--redraw"]) == 0
    assert (run / "report.html").exists() and f"drawn: {run / 'report.html'}" in capsys.readouterr().out
