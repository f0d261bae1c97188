"""counters: and tcp_info: on a real kernel (the 6.1 VM where this one lacks netem): the first two
SYNs dropped, the client's MIB counts both retransmissions and its socket's tcp_info keeps them.
(Named _vm: tests/unit/test_counters.py has the basename test_counters.)"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="building a lab needs root")]

from harness.load import load_experiment
from harness.targets.vm import BOOT_LIMIT_S, item_limit_s

REPO = Path(__file__).resolve().parents[2]
EXPERIMENT = REPO / "tests" / "fixtures" / "counters_syn_retrans.yaml"


def test_counters_and_tcp_info_of_two_lost_syns(cli, tmp_path: Path):
    # one run-experiment call, given the VM target's own limits (a boot, then the item's, which grows
    # with its timeline); the cli fixture kills what is left and checks nothing stays behind
    run = cli([str(EXPERIMENT)], tmp_path)
    out, err = run.proc.communicate(timeout=BOOT_LIMIT_S + item_limit_s(load_experiment(EXPERIMENT)))
    out, err, code = out.decode(errors="replace"), err.decode(errors="replace"), run.proc.returncode
    results = list(tmp_path.glob("counters_syn_retrans/*/result.json"))
    assert code == 0 and len(results) == 1, out[-4000:] + err[-2000:]
    path = results[0]
    result = json.loads(path.read_text())
    assert result["passed"], [v for v in result["expectations"] if not v["passed"]]
    counters = result["counters"]
    assert counters["deltas"]["client"]["TcpExtTCPSynRetrans"] == 2 and counters["deltas"]["server"]["TcpRetransSegs"] == 0
    assert counters["before"]["at_s"] < 0 < counters["after"]["at_s"]
    raw = path.parent / "counters"
    assert sorted(p.name for p in raw.iterdir()) == sorted(f"{h}.{w}.{f}" for h in ("client", "server")
                                                           for w in ("before", "after") for f in ("netstat", "snmp"))
    steps = [json.loads(line) for line in (path.parent / "steps" / "client.jsonl").read_text().splitlines()]
    connect = next(s for s in steps if s["action"] == "connect")
    assert connect["tcp_info"]["total_retrans"] == 2 and connect["tcp_info"]["state"] == "ESTAB"
    (end,) = [s for s in steps if s["action"] == "tcp_info"]        # the socket still open at the end
    assert end["socket"] == "a" and end["tcp_info"]["bytes_acked"] == 1001
    verdicts = {v["name"]: v for v in result["expectations"]}
    assert verdicts["a tcp_info.total_retrans"]["observed"].startswith("2 (at the run's end at +6.0")
    assert not result["late_steps"]
