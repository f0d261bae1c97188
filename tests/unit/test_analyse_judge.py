"""Analysis and judging on artifacts recorded from a real run (6.1 kernel in the VM, RTT 100 ms)."""
import json
from dataclasses import replace
from pathlib import Path

import pytest

from harness.analyse.connection import observe
from harness.analyse.segments import read_segments
from harness.judge import judge_all
from harness.judge.packets import match_packets
from harness.judge.timing import handshake_timing
from harness.lab.network import netem_delay_s
from harness.load import load_experiment
from harness.load.units import parse_time_spec, parse_tolerance
from harness.model import SeqTerm, StateExpectation, StepRecord, TimingExpectation

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "handshake_vm"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def obs():
    steps = {h: [StepRecord.from_json(json.loads(l)) for l in (FIX / "steps" / f"{h}.jsonl").read_text().splitlines()] for h in ("client", "server")}
    return observe(FIX, steps, {"client": "client-eth0", "server": "server-eth0"})


def test_segments_of_handshake(obs):
    flags = [s.flags for s in obs.segments["client"]]
    assert flags[:3] == ["S", "SA", "A"]
    syn, synack, ack = obs.segments["client"][:3]
    assert synack.ack == syn.seq + 1 and ack.seq == syn.seq + 1 and ack.ack == synack.seq + 1


def test_state_sequences(obs):
    assert [s.state for s in obs.states["client"]] == ["SYN-SENT", "ESTAB"]
    assert [s.state for s in obs.states["server"]] == ["LISTEN", "SYN-RECV", "ESTAB"]
    assert obs.sampling["client"].max_interval_s < 0.05


def test_handshake_timing_is_one_rtt_at_both_ends(obs):
    # Recorded in the emulated VM: ~8 ms of QEMU timer slop over the configured 100 ms.
    assert handshake_timing(obs, "client") == pytest.approx(0.108, abs=0.002)
    assert handshake_timing(obs, "server") == pytest.approx(0.1076, abs=0.002)


def test_judge_passes_and_fails(obs):
    exp = load_experiment(REPO / "experiments" / "handshake.yaml")
    verdicts = {v.name: v for v in judge_all(exp.expect, obs, 0.1)}
    assert verdicts["client states"].passed and verdicts["server states"].passed and verdicts["packets"].passed
    tight = replace(exp.expect, timing=(TimingExpectation("handshake_client", parse_time_spec("50ms"), parse_tolerance("5%"),
                                                            builtin="client"),))
    (bad,) = [v for v in judge_all(tight, obs, 0.1) if v.name == "handshake_client"]
    assert not bad.passed and "50.0 ms" in bad.expected and "108" in bad.observed


def test_packet_relation_mismatch_is_reported(obs):
    exp = load_experiment(REPO / "experiments" / "handshake.yaml")
    broken = list(exp.expect.packets)
    broken[2] = replace(broken[2], ack=SeqTerm.parse("y+2"))
    ok, text, _ = match_packets(tuple(broken), obs.segments["client"], {"client": obs.client, "server": obs.server})
    assert not ok and "ack should be y+2" in text


def test_state_mismatch_names_sampling(obs):
    exp = load_experiment(REPO / "experiments" / "handshake.yaml")
    wrong = replace(exp.expect, states={"client": tuple(map(StateExpectation, ("SYN-SENT", "SYN-RECV", "ESTAB")))}, packets=(), timing=())
    (v,) = judge_all(wrong, obs, 0.1)
    assert not v.passed and "each change seen within" in v.observed


def test_switch_capture_has_the_same_handshake():
    segs = read_segments(FIX / "pcap" / "s1-eth1.pcap")
    assert [s.flags for s in segs if s.dport == 5001 or s.sport == 5001][:3] == ["S", "SA", "A"]


@pytest.mark.parametrize("text, value", [
    ("qdisc netem 10: root refcnt 2 limit 1000 delay 25ms", 0.025),
    ("qdisc netem 10: root refcnt 2 limit 1000 delay 1.5s  2ms", 1.5),
    ("qdisc noqueue 0: root refcnt 2", None),
])
def test_netem_delay_parsing(text, value):
    assert netem_delay_s(text) == (pytest.approx(value) if value else None)


def test_verdicts_mark_what_they_judged(obs):
    """report.html highlights a verdict's segments, subjects and interval: the marks must name
    exactly the segments matched and the handshake's own two moments."""
    exp = load_experiment(REPO / "experiments" / "handshake.yaml")
    verdicts = {v.name: v for v in judge_all(exp.expect, obs, 0.1)}
    syn, synack, ack = obs.segments["client"][:3]
    assert verdicts["packets"].marks.segments[:3] == ((syn.src, syn.sport, syn.t), (synack.src, synack.sport, synack.t),
                                                      (ack.src, ack.sport, ack.t))
    assert verdicts["client states"].marks.subjects == ("client",)
    timed = replace(exp.expect, timing=(TimingExpectation("handshake_client", parse_time_spec("100ms"),
                                                          parse_tolerance("10%"), builtin="client"),))
    (hs,) = [v for v in judge_all(timed, obs, 0.1) if v.name == "handshake_client"]
    assert hs.marks.interval == (syn.t, ack.t) and hs.marks.interval[1] - hs.marks.interval[0] == hs.value


def test_a_timing_verdict_carries_its_accepted_range_in_seconds(obs):
    """index.html shades the accepted range from these numbers (the text is for people)."""
    exp = load_experiment(REPO / "experiments" / "handshake.yaml")
    timed = replace(exp.expect, timing=(TimingExpectation("handshake_client", parse_time_spec("100ms"),
                                                          parse_tolerance("10%"), builtin="client"),))
    (hs,) = [v for v in judge_all(timed, obs, 0.1) if v.name == "handshake_client"]
    assert hs.expected_range == pytest.approx((0.09, 0.11))
    assert all(v.expected_range is None for v in judge_all(timed, obs, 0.1) if v.name != "handshake_client")
