"""Several network steps on one match, on a real kernel (the 6.1 VM where this one lacks netem):
three drop steps on the client's SYN, written nth 2, nth 3, nth 1. Each rule must count every SYN
reaching the switch, so SYNs #1-#3 are dropped and #4 (7 s of backoff later) connects. When drop
rules sat in one chain, each counted only what the rules before it let through: measured in the VM,
#1 and #2 were dropped, the nth-3 rule counted nothing and #3 connected at 3 s (exit 3)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="building a lab needs root")]

EXPERIMENT = "tests/fixtures/drop_second_and_third_syn.yaml"


def test_each_drop_step_counts_every_syn_on_its_match(cli, tmp_path: Path):
    run = cli([EXPERIMENT])             # the cli fixture limits the wall time and cleans up
    code, out, err = run.finish()
    (path,) = tmp_path.glob("drop_second_and_third_syn/*/result.json")
    result = json.loads(path.read_text())
    assert code == 0 and result["passed"], out[-4000:] + err[-2000:]
    steps = {s["line"]: s for s in result["network"]}
    assert sorted(steps) == [13, 14, 15]
    syns = sorted({s["segments"][0]["arrived"] for s in steps.values()})
    # each step picked one SYN of the four that reached the switch (1 of 4 matching), by its nth
    for line, nth in ((13, 2), (14, 3), (15, 1)):
        step = steps[line]
        assert step["problems"] == [] and (step["matching"], step["picked"], step["counted"]) == (4, 1, 1), step
        (syn,) = step["segments"]
        assert syn["left"] == [] and syn["arrived"] == syns[nth - 1]
    client = [s for s in result["observation"]["segments"]["client"] if s["flags"] == "S"]
    assert len(client) == 4
