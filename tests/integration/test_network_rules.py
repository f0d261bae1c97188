"""Network-step rules on a real kernel (the 6.1 VM where this one lacks netem), two experiments in
one VM boot:
- several steps on one match: three drop steps on the client's SYN, written nth 2, nth 3, nth 1.
  Each rule must count every SYN reaching the switch, so SYNs #1-#3 are dropped and #4 (7 s of
  backoff later) connects. When drop rules sat in one chain each counted only what the rules before
  it let through: measured in the VM, #1 and #2 were dropped, the nth-3 rule counted nothing and
  #3 connected at 3 s (exit 3);
- len:, options: and P in matches: each rule (hold, drop, delay, duplicate) picks exactly what the
  analysis picks from the capture.
The cli fixture bounds the wall time and checks that nothing is left behind."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="building a lab needs root")]

EXPERIMENTS = ["tests/fixtures/drop_second_and_third_syn.yaml", "tests/fixtures/drop_len_options_match.yaml"]


def test_network_rules_count_every_match_and_pick_by_length_and_options(cli, tmp_path: Path):
    run = cli(EXPERIMENTS + ["--jobs", "1"])
    code, out, err = run.finish()
    results = {name: json.loads(next(tmp_path.glob(f"{name}/*/result.json")).read_text())
               for name in ("drop_second_and_third_syn", "drop_len_options_match")}
    assert code == 0 and all(r["passed"] for r in results.values()), out[-4000:] + err[-2000:]

    drops = results["drop_second_and_third_syn"]
    steps = {s["line"]: s for s in drops["network"]}
    syns = sorted(s["segments"][0]["arrived"] for s in steps.values())
    text = (Path(__file__).resolve().parents[2] / EXPERIMENTS[0]).read_text().splitlines()   # its steps by line
    lines = {nth: next(i for i, row in enumerate(text, 1) if f"nth: {nth}}}" in row) for nth in (1, 2, 3)}
    for line, nth in ((lines[2], 2), (lines[3], 3), (lines[1], 1)):       # each took its own SYN of the four
        step = steps[line]
        assert step["problems"] == [] and (step["matching"], step["picked"], step["counted"]) == (4, 1, 1), step
        (syn,) = step["segments"]
        assert syn["left"] == [] and syn["arrived"] == syns[nth - 1]
    assert sum(s["flags"] == "S" for s in drops["observation"]["segments"]["client"]) == 4

    picked = results["drop_len_options_match"]["network"]
    assert [(s["action"], s["matching"], s["picked"], s["counted"], s["problems"]) for s in picked] == [
        ("hold", 1, 1, 1, []), ("drop", 4, 1, 1, []), ("delay", 1, 1, 1, []), ("duplicate", 2, 1, 1, [])]
