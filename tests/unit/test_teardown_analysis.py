"""Teardown analysis and judging on runs recorded in the 6.1 VM (virtual clock, RTT 100 ms)."""
import json
from dataclasses import replace
from pathlib import Path

import pytest

from harness.analyse.connection import observe
from harness.analyse.events import Moment, find_moment
from harness.judge import judge_all
from harness.judge.packets import match_packets
from harness.judge.states import judge_states, matches
from harness.load import load_experiment
from harness.load.units import parse_time_spec, parse_tolerance
from harness.model import Event, StateExpectation, StepRecord, TimingExpectation

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def states(*written: str) -> tuple[StateExpectation, ...]:
    return tuple(StateExpectation.parse(s) for s in written)


def observed(name: str):
    run = FIXTURES / f"{name}_vm" if (FIXTURES / f"{name}_vm").is_dir() else FIXTURES / name
    steps = {h: [StepRecord.from_json(json.loads(l)) for l in (run / "steps" / f"{h}.jsonl").read_text().splitlines()] for h in ("client", "server")}
    return observe(run, steps, {"client": "client-eth0", "server": "server-eth0"})


@pytest.fixture(scope="module")
def teardown():
    return observed("teardown")


def test_states_end_with_the_socket_gone(teardown):
    assert [s.state for s in teardown.states["client"]] == ["SYN-SENT", "ESTAB", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT", "CLOSED"]
    assert [s.state for s in teardown.states["server"]] == ["LISTEN", "SYN-RECV", "ESTAB", "CLOSE-WAIT", "LAST-ACK", "CLOSED"]


def test_time_wait_measured_within_one_sampling_gap(teardown):
    enter = find_moment(Event("client", "enters", "TIME-WAIT"), teardown)
    leave = find_moment(Event("client", "leaves", "TIME-WAIT"), teardown)
    assert isinstance(enter, Moment) and isinstance(leave, Moment)
    assert leave.t - enter.t == pytest.approx(60.70, abs=0.02)
    assert 0 < enter.uncertainty_s <= 0.02 and 0 < leave.uncertainty_s <= 0.02


def test_shipped_teardown_expectations_pass_and_a_wrong_one_fails(teardown):
    exp = load_experiment(EXPERIMENTS / "teardown.yaml")
    verdicts = judge_all(exp.expect, teardown, 0.1)
    assert all(v.passed for v in verdicts), [v for v in verdicts if not v.passed]
    tw = next(t for t in exp.expect.timing if t.name == "time_wait")
    wrong = replace(exp.expect, timing=(replace(tw, between=None, equals=parse_time_spec("30s"), within=parse_tolerance("0.5s")),))
    (verdict,) = [v for v in judge_all(wrong, teardown, 0.1) if v.name.startswith("time_wait")]
    assert not verdict.passed and verdict.expected.startswith("30.000 s") and verdict.observed.startswith("60.700 s")


def test_packets_either_reports_which_close_happened(teardown):
    three_or_four = load_experiment(EXPERIMENTS / "server_closes_first.yaml").expect.packets
    other = observed("server_closes_first")
    ok, text, _ = match_packets(three_or_four, other.segments["client"], {"client": other.client, "server": other.server})
    assert ok and "[three segments]" in text
    # The same choice, roles swapped, sees four segments in the client-closes-first run.
    swap = {"client": "server", "server": "client"}
    swapped = tuple(replace(p, sender=swap[p.sender]) if hasattr(p, "sender") else
                    replace(p, options=tuple((n, tuple(replace(q, sender=swap[q.sender]) for q in o)) for n, o in p.options))
                    for p in three_or_four)
    ok, text, _ = match_packets(swapped, teardown.segments["client"], {"client": teardown.client, "server": teardown.server})
    assert ok and "[four segments]" in text


def test_optional_states():
    assert matches(states("ESTAB", "(FIN-WAIT-1)", "TIME-WAIT"), ["ESTAB", "TIME-WAIT"])
    assert matches(states("ESTAB", "(FIN-WAIT-1)", "TIME-WAIT"), ["ESTAB", "FIN-WAIT-1", "TIME-WAIT"])
    assert not matches(states("ESTAB", "FIN-WAIT-1", "TIME-WAIT"), ["ESTAB", "TIME-WAIT"])
    assert not matches(states("ESTAB", "(FIN-WAIT-1)"), ["ESTAB", "FIN-WAIT-2"])


def test_a_state_lost_to_coarse_sampling_fails_and_says_so(teardown):
    # Drop every sample taken while the client was in FIN-WAIT-1, as a slow sampler would have.
    fw1 = next(s for s in teardown.states["client"] if s.state == "FIN-WAIT-1")
    coarse = replace(teardown, states={**teardown.states, "client": [s for s in teardown.states["client"] if s is not fw1]})
    verdict = judge_states("client", states("SYN-SENT", "ESTAB", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT", "CLOSED"), coarse)
    assert not verdict.passed
    assert "FIN-WAIT-1 not seen: no sample between ESTAB and FIN-WAIT-2" in verdict.observed and "too coarse" in verdict.observed


def test_abort_resets_the_reader():
    # a run with the kernel-time capture and the trace: abort.yaml's reset timings are kernel moments
    obs = observed("trace_events/abort_6.1")
    exp = load_experiment(EXPERIMENTS / "abort.yaml")
    verdicts = {v.name.split(" (")[0]: v for v in judge_all(exp.expect, obs, 0.1)}
    assert all(v.passed for v in verdicts.values()), verdicts
    assert verdicts["server errors"].observed == "recv: ECONNRESET"
    assert [s.state for s in obs.states["client"]] == ["SYN-SENT", "ESTAB", "CLOSED"]
    late = replace(exp.expect, errors={"server": ("ETIMEDOUT",)})
    assert not next(v for v in judge_all(late, obs, 0.1) if v.name == "server errors").passed


def test_event_not_observed_is_explained(teardown):
    never = find_moment(Event("client", "enters", "CLOSING"), teardown)
    assert never == "client was never seen in CLOSING"
    exp = TimingExpectation("x", parse_time_spec("1s"), parse_tolerance("1%"), Event("client", "sends", "R", text="client sends R"),
                            Event("client", "enters", "CLOSED", text="client enters CLOSED"))
    from harness.judge.timing import judge_timing
    verdict = judge_timing(exp, teardown, 0.1)
    assert not verdict.passed and "0 segment(s) with R sent" in verdict.observed


def test_timeline_tells_the_close_in_order(teardown):
    from harness.report.timeline import timeline
    lines = timeline(teardown)
    fin = next(i for i, l in enumerate(lines) if "client → server  FA  seq=101 ack=1" in l)
    last_ack = next(i for i, l in enumerate(lines) if "server is LAST-ACK" in l)
    final = next(i for i, l in enumerate(lines) if "client → server  A   seq=102 ack=2" in l)
    assert fin < last_ack < final
    assert lines[-1].strip().startswith("+62.") and lines[-1].endswith("client is CLOSED (first sample)")


def test_time_wait_timer_due_comes_from_the_kernel_and_the_socket_outlives_it(teardown):
    tw = next(s for s in teardown.states["client"] if s.state == "TIME-WAIT")
    assert tw.timer_due - tw.first_seen == pytest.approx(59.996, abs=0.002)   # the kernel's remaining time
    assert tw.sample_after - tw.timer_due == pytest.approx(0.70, abs=0.02)    # timer-wheel lateness
