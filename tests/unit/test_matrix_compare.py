"""Matrix cells, ${...} expressions, and the comparison of a real sweep (3 cells in the 6.1 VM)."""
import csv
import json
from pathlib import Path

import pytest

from harness.errors import UserError
from harness.load import load_cells
from harness.load.experiment import with_facts
from harness.load.expressions import evaluate
from harness.load.facts import RunFacts
from harness.report.compare import load_rows, main as compare_main, summarise, write_comparison

REPO = Path(__file__).resolve().parents[2]
SWEEP = REPO / "tests" / "fixtures" / "syn_retries_sweep_vm"
LINEAR = "net.ipv4.tcp_syn_linear_timeouts"


def test_sweep_expands_to_one_checked_experiment_per_value():
    cells = load_cells(REPO / "experiments" / "syn_retries_sweep.yaml")
    assert [c.label for c in cells] == [f"tcp_syn_retries={r}@client" for r in (1, 2, 3)]
    assert [c.experiment.sysctls["client"]["net.ipv4.tcp_syn_retries"] for c in cells] == ["1", "2", "3"]
    assert [c.experiment.duration_s for c in cells] == [9.5, 13.5, 21.5]
    # the schedule follows net.ipv4.tcp_syn_linear_timeouts as read back in the lab (6.1 lacks it)
    for facts, gives_up, syns in ((RunFacts("6.1.0-57-amd64", {"client": {LINEAR: None}}), (3, 7, 15), (2, 3, 4)),
                                  (RunFacts("6.12.118", {"client": {LINEAR: "4"}}), (3, 7, 19), (3, 6, 8))):
        experiments = [with_facts(c.experiment, facts) for c in cells]
        assert [float(str(next(t for t in e.expect.timing if t.name == "gives_up").between[0])[:-1]) for e in experiments
                ] == list(gives_up)
        assert [next(t for t in e.expect.timing if t.name == "last_syn").end.nth for e in experiments] == list(syns)


def test_a_file_without_matrix_is_one_cell():
    (cell,) = load_cells(REPO / "experiments" / "handshake.yaml")
    assert cell.label == "" and cell.experiment.name == "handshake"


def test_repeats_and_all_hosts(tmp_path):
    text = (REPO / "experiments" / "syn_retries_sweep.yaml").read_text().replace(
        "  client: {net.ipv4.tcp_syn_retries: [1, 2, 3]}", "  net.ipv4.tcp_syn_retries: [1, 2]\n  repeat: 2")
    (tmp_path / "s.yaml").write_text(text)
    cells = load_cells(tmp_path / "s.yaml")
    assert [c.label for c in cells] == ["tcp_syn_retries=1#1", "tcp_syn_retries=1#2", "tcp_syn_retries=2#1", "tcp_syn_retries=2#2"]
    assert cells[0].experiment.sysctls["all"] == {"net.ipv4.tcp_syn_retries": "1"}


def test_expressions_are_arithmetic_only():
    assert evaluate("2**(r+1)-1", {"r": 3}) == 15
    with pytest.raises(ValueError):
        evaluate("__import__('os')", {})
    with pytest.raises(ValueError):
        evaluate("x + 1", {"r": 1})


def test_a_bad_expression_names_the_line(tmp_path):
    text = (REPO / "experiments" / "syn_retries_sweep.yaml").read_text().replace("2**(tcp_syn_retries + 1) - 1", "2**retries")
    (tmp_path / "s.yaml").write_text(text)
    with pytest.raises(UserError) as info:
        load_cells(tmp_path / "s.yaml")
    line = next(i for i, l in enumerate(text.splitlines(), 1) if "limit:" in l)
    assert "retries" in str(info.value) and info.value.line == line


def test_comparison_of_the_recorded_sweep(tmp_path):
    runs = sorted(p for p in SWEEP.iterdir() if p.is_dir())
    rows = load_rows(runs)
    assert [r["passed"] for r in rows] == [True, True, True]
    gives_up = [r["figures"]["gives_up"] for r in rows]
    assert gives_up == sorted(gives_up) and gives_up[0] == pytest.approx(3.04, abs=0.01) and gives_up[2] == pytest.approx(15.31, abs=0.01)
    (one,) = summarise(rows[:1])
    assert one["figures"]["gives_up"]["n"] == 1
    text = write_comparison(tmp_path, runs)
    assert "tcp_syn_retries=3@client" in text and "15.3108" in text
    with open(tmp_path / "comparison.csv") as f:
        table = list(csv.DictReader(f))
    assert [row["settings"] for row in table] == [r.name for r in runs]
    assert json.loads((tmp_path / "comparison.json").read_text())["summary"][0]["runs"] == 1
    assert (tmp_path / "comparison.png").read_bytes()[:4] == b"\x89PNG"


def test_repeats_are_summarised_min_median_max():
    rows = [{"settings": "a", "kernel": "k", "passed": True, "figures": {"t": v}} for v in (1.0, 3.0, 2.0)]
    (s,) = summarise(rows)
    assert s["figures"]["t"] == {"min": 1.0, "median": 2.0, "max": 3.0, "n": 3} and s["passed"] == 3


def test_compare_runs_command(tmp_path, capsys):
    assert compare_main([str(SWEEP), "--out", str(tmp_path)]) == 0
    assert "comparison of 3 run(s)" in capsys.readouterr().out
    assert compare_main([str(tmp_path / "nothing-here")]) == 2


def test_link_parameters_are_a_dimension(tmp_path):
    text = (REPO / "experiments" / "handshake.yaml").read_text().replace(
        "topology: two_hosts\n", "topology: two_hosts\nmatrix:\n  links: {delay: [10ms, 40ms], loss: ['0%', '1%']}\n")
    (tmp_path / "h.yaml").write_text(text)
    cells = load_cells(tmp_path / "h.yaml")
    assert [c.label for c in cells] == ["delay=10ms,loss=0%", "delay=10ms,loss=1%", "delay=40ms,loss=0%", "delay=40ms,loss=1%"]
    for cell, delay, loss in zip(cells, (0.01, 0.01, 0.04, 0.04), (0, 1, 0, 1)):
        for link in cell.experiment.topology.links:
            assert (link.a_to_b.delay_s, link.b_to_a.delay_s) == (delay, delay)
            assert link.a_to_b.loss_pct == loss
        assert cell.experiment.sysctls.get("links") is None
    (tmp_path / "bad.yaml").write_text(text.replace("loss:", "colour:"))
    with pytest.raises(UserError, match="'colour' is not a link parameter"):
        load_cells(tmp_path / "bad.yaml")


def test_vm_items_share_vms_one_kernel_each():
    from harness.targets.batch import BatchItem, vm_groups
    items = [BatchItem(Path(f"{k}{i}"), f"{k}{i}", "vm", kernel=Path(k)) for k in ("a", "b") for i in range(4)]
    groups = vm_groups(items, 2)
    assert [[i.name for i in g] for g in groups] == [["a0", "a1", "a2", "a3"], ["b0", "b1", "b2", "b3"]]
    assert len(vm_groups(items, 4)) == 4
    assert [[i.name for i in g] for g in vm_groups(items[:4], 2)] == [["a0", "a2"], ["a1", "a3"]]
    assert len(vm_groups(items[:1], 8)) == 1
