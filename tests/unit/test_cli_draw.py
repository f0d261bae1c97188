"""`run-experiment --draw TOPOLOGY`: an SVG of the topology, nothing run, bad input one paragraph."""
from __future__ import annotations

import pytest

from harness.cli import main


def test_draw_writes_the_topology_svg_and_runs_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["--draw", "dumbbell"]) == 0
    svg = (tmp_path / "dumbbell.svg").read_text()
    assert svg.startswith("<?xml") and "10.2.0.0/24" in svg and "r1" in svg
    assert main(["--draw", "routed", "-o", str(tmp_path / "r.svg")]) == 0 and (tmp_path / "r.svg").is_file()
    assert main(["--draw", "no_such"]) == 2 and "no topology file 'no_such'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--draw", "routed", "handshake"])
    with pytest.raises(SystemExit):
        main([])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dumbbell.svg", "r.svg"]     # no results/ folder
