"""Network steps: the nft rules written for them, and the check of what they did, on a real run
(stale_syn in the 6.1 VM: the first SYN held 3 s at s1-eth2)."""
import json
from dataclasses import replace
from pathlib import Path

import pytest

from harness.analyse.connection import observe
from harness.analyse.network import check_step
from harness.analyse.segments import read_segments
from harness.judge import judge_all
from harness.lab.packet_rules import nft_rule
from harness.load import load_experiment
from harness.model import NetworkStep, PacketMatch

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "tests" / "fixtures" / "stale_syn_vm"
HOLD = NetworkStep("hold", "client", "server", PacketMatch("S", None, 5001), 17, 0.0, nth=1, extra_s=3.0)


def test_nft_rule_picks_only_the_nth_match_and_counts():
    rule = nft_rule(HOLD, "s1-eth2", "10.0.0.1", "10.0.0.2", 16)
    assert rule.startswith('oifname "s1-eth2" ip saddr 10.0.0.1 ip daddr 10.0.0.2 ip protocol tcp tcp dport 5001')
    assert "tcp flags & (fin|syn|rst|ack|urg) == (syn)" in rule
    assert "numgen inc mod 4000000000 == 0 counter meta mark set 16" in rule and rule.endswith('comment "step-17"')


def test_nft_rule_for_drops_and_counts():
    drop_all = replace(HOLD, action="drop", nth=None, extra_s=None, match=PacketMatch("SA", 5001, None))
    rule = nft_rule(drop_all, "s1-eth1", "10.0.0.2", "10.0.0.1", 16)
    assert "tcp sport 5001" in rule and "== (syn|ack)" in rule and "numgen" not in rule and "counter drop" in rule
    first_two = replace(HOLD, nth=None, count=2)
    assert "numgen inc mod 4000000000 < 2 counter" in nft_rule(first_two, "p", "a", "b", 16)


def segments():
    return read_segments(RUN / "pcap" / "s1-eth1.pcap"), read_segments(RUN / "pcap" / "s1-eth2.pcap")


def test_the_hold_did_exactly_what_it_said():
    arriving, leaving = segments()
    report = check_step(HOLD, 1, arriving, leaving, "10.0.0.1", "10.0.0.2", 0.025)
    assert report["problems"] == []
    assert (report["matching"], report["picked"]) == (2, 1)
    (held,) = report["segments"]
    assert held["flags"] == "S" and held["held_s"] == pytest.approx(3.0, abs=0.001)


@pytest.mark.parametrize("step, counted, words", [
    (HOLD, 0, "its rule picked 0 segment(s) but the capture shows 1"),
    (replace(HOLD, extra_s=2.0), 1, "expected 2.025 s"),
    (replace(HOLD, action="drop", extra_s=None), 1, "was to be dropped but left the switch"),
    (replace(HOLD, action="duplicate", extra_s=None), 1, "left the switch 1 time(s), expected 2"),
    (replace(HOLD, match=PacketMatch("F", None, 5001)), 0, "no segment it matches reached the switch"),
])
def test_a_step_that_did_otherwise_is_caught(step, counted, words):
    arriving, leaving = segments()
    report = check_step(step, counted, arriving, leaving, "10.0.0.1", "10.0.0.2", 0.025)
    assert any(words in p for p in report["problems"]), report["problems"]


def test_stale_syn_expectations_on_the_recorded_run():
    steps = {h: [json.loads(l) for l in (RUN / "steps" / f"{h}.jsonl").read_text().splitlines()] for h in ("client", "server")}
    obs = observe(RUN, steps, {"client": "client-eth0", "server": "server-eth0"})
    exp = load_experiment(REPO / "experiments" / "stale_syn.yaml")
    verdicts = judge_all(exp.expect, obs, 0.1)
    assert all(v.passed for v in verdicts), [v for v in verdicts if not v.passed]
    assert [s.state for s in obs.states["server"]] == ["LISTEN", "SYN-RECV", "ESTAB", "CLOSED", "SYN-RECV", "CLOSED"]


def test_a_held_syn_is_told_from_its_identical_retransmission():
    """tcp_timestamps=0 (recorded on the 6.1 VM): the retransmitted SYN is byte for byte the held
    one; the check must not count it as the held SYN leaving twice, but must still time the hold."""
    from harness.load import load_cells
    fix = REPO / "tests" / "fixtures" / "stale_syn_no_timestamps_vm"
    cell = load_cells(REPO / "experiments" / "timestamps_stale_syn.yaml")[0]
    step = cell.experiment.network[0]
    arriving, leaving = read_segments(fix / "s1-eth1.pcap"), read_segments(fix / "s1-eth2.pcap")
    report = check_step(step, 1, arriving, leaving, "10.0.0.1", "10.0.0.2", 0.025)
    assert report["problems"] == [] and abs(report["segments"][0]["held_s"] - 3.0) < 0.005
    shorter = check_step(replace(step, extra_s=2.0), 1, arriving, leaving, "10.0.0.1", "10.0.0.2", 0.025)
    assert any("expected 2.025 s" in p for p in shorter["problems"])
    dropped = check_step(replace(step, action="drop"), 1, arriving, leaving, "10.0.0.1", "10.0.0.2", 0.025)
    assert any("was to be dropped but left" in p for p in dropped["problems"])
