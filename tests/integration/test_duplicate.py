"""`network: duplicate` on a real kernel: Debian 12's 6.1 refuses a duplicating netem beside the
link's own netem ("netem: cannot mix duplicating netems with other netems in tree"), so the step
duplicates with nftables `dup` at the switch's ingress port. One cheap run of the shipped
experiment (one VM boot where this kernel lacks netem): the copy must exist, carry the link's
delay, pass the three-way check, and the server must answer it as Linux does."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="building a lab needs root")]


def test_duplicate_syn_is_delivered_twice_and_answered_once_more(cli, tmp_path: Path):
    run = cli(["experiments/duplicate_syn.yaml"])
    code, out, err = run.finish()
    assert "cannot mix duplicating netems" not in out + err
    (path,) = tmp_path.glob("duplicate_syn/*/result.json")
    result = json.loads(path.read_text())
    assert code == 0 and result["passed"], out[-4000:] + err[-2000:]
    (step,) = result["network"]
    assert step["action"] == "duplicate" and step["problems"] == []
    assert (step["matching"], step["picked"], step["counted"]) == (1, 1, 1)
    (syn,) = step["segments"]
    assert len(syn["left"]) == 2                                   # leaving the port: twice
    assert syn["copies_after_s"] == [pytest.approx(0.025, abs=0.005)] * 2   # both after the link's delay
    # the server's interface: the SYN twice, then the same SYN+ACK twice (one request, not two)
    server = [s for s in result["observation"]["segments"]["server"]]
    flags = [s["flags"].replace("P", "") for s in server]
    assert flags[:4] == ["S", "S", "SA", "SA"], flags
    assert server[2]["seq"] == server[3]["seq"] and server[2]["ack"] == server[3]["ack"]
