"""Shapes of runs the analysis must take without raising or misleading: no connect, no listener,
a dead path, a long timeline, a re-armed TIME-WAIT timer, sampling windows and gaps that causality
bounds, and steps that started late."""
import json
from dataclasses import replace
from pathlib import Path

import pytest

from harness.analyse.connection import Observation, observe
from harness.analyse.segments import Segment
from harness.analyse.states import socket_spans
from harness.judge import judge_all
from harness.judge.schedule import judge_schedule, late_steps, tolerance_s
from harness.judge.states import judge_states
from harness.judge.timing import judge_timing
from harness.load import load_experiment
from harness.model import NetworkStep, PacketMatch, StateExpectation, Step, StepRecord
from harness.report.timeline import DEAD_PING, terminal_copy, timeline

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REPO = Path(__file__).resolve().parents[2]
INTF = {"client": "client-eth0", "server": "server-eth0"}
IPS = {"client": "10.0.0.1", "server": "10.0.0.2"}


def steps_of(fixture: str) -> dict[str, list[dict]]:
    return {h: [StepRecord.from_json(json.loads(l)) for l in (FIXTURES / fixture / "steps" / f"{h}.jsonl").read_text().splitlines()]
            for h in ("client", "server")}


def test_no_connect_is_observed_not_raised():
    steps = steps_of("handshake_vm")
    steps["client"] = []
    obs = observe(FIXTURES / "handshake_vm", steps, INTF, IPS)
    assert obs.client is None and obs.client_host is None and obs.segments == {"client": [], "server": []}
    assert [s.state for s in obs.states["server"]] == ["LISTEN"]
    story = timeline(obs)
    assert "no connect call ran" in story[0] and any("server calls listen" in line for line in story)
    exp = load_experiment(REPO / "experiments" / "handshake.yaml")
    verdicts = {v.name: v for v in judge_all(exp.expect, obs, 0.1)}
    assert not verdicts["packets"].passed and not verdicts["client states"].passed
    assert json.dumps(obs.to_json())


def test_a_connect_nobody_listened_for_is_observed():
    steps = steps_of("handshake_vm")
    steps["server"] = []
    obs = observe(FIXTURES / "handshake_vm", steps, INTF, IPS)
    assert obs.client_host == "client" and obs.server_host == "server"   # found by its address
    assert [s.flags for s in obs.segments["client"]][:3] == ["S", "SA", "A"]
    bare = observe(FIXTURES / "handshake_vm", steps, INTF)               # addresses unknown
    assert bare.server_host is None and bare.client_host == "client"
    exp = load_experiment(REPO / "experiments" / "handshake.yaml")
    assert judge_all(exp.expect, bare, 0.1)


def test_a_dead_path_says_what_happened():
    obs = observe(FIXTURES / "dead_path_vm", steps_of("dead_path_vm"), INTF, IPS)
    story = timeline(obs, dead_ping=True)
    text = "\n".join(story)
    assert story[0] == DEAD_PING
    assert "although its connect ran" in text and "own link's netem" in text
    assert "client calls connect → error: No route to host (EHOSTUNREACH) after 3.052 s" in text
    assert "client is SYN-SENT" in text


def segment(i: int) -> Segment:
    client, server = ("10.0.0.1", 40000), ("10.0.0.2", 5001)
    src, dst = (client, server) if i % 2 == 0 else (server, client)
    return Segment(100.0 + i * 0.01, *src, *dst, "S" if i == 0 else "A", 1000 + i, 2000 + i, 0)


def test_timeline_file_holds_everything_and_only_the_terminal_copy_is_short(tmp_path):
    segs = [segment(i) for i in range(150)]
    obs = Observation("client", "server", ("10.0.0.1", 40000), ("10.0.0.2", 5001), {"client": segs}, {}, {})
    story = timeline(obs)
    assert len(story) == 151
    shown = terminal_copy(story, tmp_path / "timeline.txt")
    assert len(shown) == 40 and story[:39] == shown[:39]
    assert "112 more lines" in shown[-1] and str(tmp_path / "timeline.txt") in shown[-1]
    assert terminal_copy(story[:10], tmp_path / "timeline.txt") == story[:10]


def tw_sample(t: float, remaining_ms: int) -> dict:
    return {"t": t, "s": [["TIME-WAIT", "10.0.0.1", 40000, "10.0.0.2", 5001, 3, remaining_ms, 0]]}


def test_a_re_armed_time_wait_timer_shows_its_last_due_time():
    # tcp_rfc1337=1: a SYN+ACK at +10 s restarts TIME-WAIT; the kernel's timer then says 60 s again
    samples = [tw_sample(0.0, 60000), tw_sample(5.0, 55000), tw_sample(10.0, 60000), tw_sample(69.9, 100),
               tw_sample(70.2, 0), tw_sample(70.5, 0), {"t": 71.0, "s": []}]
    (tw, closed) = socket_spans(samples, ("10.0.0.1", 40000), ("10.0.0.2", 5001))
    assert tw.timer_due == pytest.approx(70.0) and tw.timer_rearmed == 1 and closed.state == "CLOSED"
    obs = Observation("client", "server", ("10.0.0.1", 40000), ("10.0.0.2", 5001), {"client": [segment(0)]},
                      {"client": [tw, closed]}, {})
    (line,) = [l for l in timeline(obs) if "timer due" in l]
    assert "70.000 s after TIME-WAIT was first sampled" in line and "re-armed it 1 time" in line


def test_an_expired_timer_waiting_for_the_wheel_is_not_a_re_arm():
    samples = [tw_sample(0.0, 60000), tw_sample(60.0, 0), tw_sample(60.5, 0), {"t": 60.7, "s": []}]
    (tw, _) = socket_spans(samples, ("10.0.0.1", 40000), ("10.0.0.2", 5001))
    assert tw.timer_due == pytest.approx(60.0) and tw.timer_rearmed == 0


def test_a_window_after_a_call_never_starts_before_it():
    obs = observe(FIXTURES / "abort_vm", steps_of("abort_vm"), INTF, IPS)
    exp = load_experiment(REPO / "experiments" / "abort.yaml")
    (gone,) = [t for t in exp.expect.timing if t.name == "client_gone"]
    call = next(e for e in obs.steps["client"] if e.action == "abort")
    # the first CLOSED sample 6.5 ms after the call, the one before it 3.6 ms before the call
    spans = [s for s in obs.states["client"]]
    closed = next(i for i, s in enumerate(spans) if s.state == "CLOSED")
    spans[closed] = replace(spans[closed], first_seen=call.start + 0.0065, sample_before=call.start - 0.0036)
    verdict = judge_timing(gone, replace(obs, states=dict(obs.states, client=spans)), 0.1)
    assert "true value in [0.0 ms, 6.5 ms]" in verdict.observed, verdict.observed


def test_a_state_gap_beside_a_listener_is_never_negative():
    obs = observe(FIXTURES / "handshake_vm", steps_of("handshake_vm"), INTF, IPS)
    without = [s for s in obs.states["server"] if s.state != "SYN-RECV"]     # LISTEN runs on beside ESTAB
    verdict = judge_states("server", tuple(map(StateExpectation.parse, ("LISTEN", "SYN-RECV", "ESTAB"))), replace(obs, states={"server": without}))
    assert not verdict.passed and "SYN-RECV not seen: no sample between LISTEN and ESTAB for " in verdict.observed
    assert "for -" not in verdict.observed


def log_entry(action: str, line: int, at: float | None, start: float, end: float) -> StepRecord:
    return StepRecord(action, start, end, index=line, scheduled=at, result="ok")


def test_a_step_blocked_by_its_hosts_previous_call_fails_the_run():
    t0 = 1000.0
    steps = [Step("client", "wait", 5, 0.0, seconds=2.0), Step("client", "connect", 6, 0.5, peer="server"),
             Step("server", "listen", 7, 0.0, port=5001)]
    log = {"client": [log_entry("wait", 5, t0, t0, t0 + 2.0), log_entry("connect", 6, t0 + 0.5, t0 + 2.001, t0 + 2.1)],
           "server": [log_entry("listen", 7, t0, t0 + 0.001, t0 + 0.002)]}
    late = late_steps(steps, (), log, t0)
    assert [(s.action, round(s.late_s, 3)) for s in late] == [("connect", 1.501)]
    verdict = judge_schedule(late)
    assert not verdict.passed and "still in its previous step, wait (line 5), which ran until +2.000 s" in verdict.observed


def test_a_late_step_that_overtakes_a_later_event_fails_and_one_that_does_not_is_only_reported():
    t0 = 0.0
    steps = [Step("server", "listen", 3, 0.0, port=5001), Step("client", "connect", 4, 0.5, peer="server")]
    hold = NetworkStep("hold", "client", "server", PacketMatch(flags="S"), 2, at_s=0.2)
    log = {"server": [log_entry("listen", 3, 0.0, 0.098, 0.1)], "client": [log_entry("connect", 4, 0.5, 0.5001, 0.6)]}
    late = late_steps(steps, (), log, t0)
    assert len(late) == 1 and judge_schedule(late).passed and "order the file sets was kept" in judge_schedule(late).observed
    overtaken = late_steps(steps, (replace(hold, at_s=0.05),), log, t0)
    assert not judge_schedule(overtaken).passed and "the network hold step (at: 0.05s)" in judge_schedule(overtaken).observed
    assert judge_schedule(late_steps(steps, (), {"server": [log_entry("listen", 3, 0.0, 0.003, 0.004)]}, t0)) is None


def test_tolerance_is_4_ms_or_1_percent_of_at():
    assert tolerance_s(0.0) == 0.004 and tolerance_s(60.0) == pytest.approx(0.6)


def test_the_recorded_runs_kept_their_timelines():
    for fixture, name in (("teardown_vm", "teardown"), ("trace_events/abort_6.1", "abort"),
                          ("server_closes_first_vm", "server_closes_first"), ("handshake_vm", "handshake")):
        steps = steps_of(fixture)
        t0 = min(e.scheduled for entries in steps.values() for e in entries if e.scheduled is not None)
        exp = load_experiment(REPO / "experiments" / f"{name}.yaml")
        assert judge_schedule(late_steps(exp.steps, exp.network, steps, t0)) is None, fixture


def test_the_full_socket_dying_into_its_time_wait_socket_is_not_a_closed_state():
    """Recorded in CI on 6.12 (time_wait_reack): one sample caught the client's full socket in
    CLOSE with port 0 — tcp_time_wait() replacing it by its TIME-WAIT socket, which keeps the
    cookie — between FIN-WAIT-1 and FIN-WAIT-2. By address that is a CLOSED row; by cookie the
    socket is back 10 ms later, so that sample is left out and the change is bracketed by the
    samples on either side."""
    from harness.analyse.states import cookie_spans, read_samples
    samples = read_samples(FIXTURES / "states_tw_handover" / "client.jsonl")
    assert any(row[0] == "CLOSED" and row[2] == 0 for s in samples for row in s["s"])
    spans = cookie_spans(samples, 8)
    assert [s.state for s in spans] == ["SYN-SENT", "ESTAB", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT"]
    fw1, fw2 = spans[2], spans[3]
    assert fw2.sample_before == fw1.last_seen and fw1.sample_after == fw2.first_seen
    assert fw2.first_seen - fw1.last_seen == pytest.approx(0.0201, abs=0.002)      # the gap holds the left-out sample
