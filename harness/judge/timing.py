"""Timing expectations: the handshake built-ins and any interval between two observed events."""
from __future__ import annotations

import dataclasses

from harness.analyse.connection import Observation, SocketView
from harness.analyse.events import TRACE_VERBS, Moment, caused_by, find_moment
from harness.judge.verdict import Marks, Verdict
from harness.model import HandshakeExpectation, TimingExpectation


def handshake_timing(obs: Observation, at: str) -> float | None:
    """Client: SYN sent -> final ACK sent. Server: SYN received -> final ACK received.

    Both measured at the host's own interface, so both equal one path RTT (outgoing packets are
    captured after the interface's own netem delay, incoming ones on arrival).
    """
    interval = handshake_interval(obs, at)
    return interval[1] - interval[0] if interval else None


def handshake_interval(obs: Observation, at: str) -> tuple[float, float] | None:
    """handshake_timing's two moments: the SYN and the final ACK at the host's interface."""
    host = obs.client_host if at == "client" else obs.server_host
    segs = obs.segments.get(host, [])
    syn = next((s for s in segs if s.flags == "S" and (s.src, s.sport) == obs.client), None)
    synack = next((s for s in segs if s.flags == "SA" and syn and s.t >= syn.t), None)
    ack = next((s for s in segs if synack and s.t >= synack.t and "A" in s.flags and "S" not in s.flags
                and (s.src, s.sport) == obs.client), None)
    return (syn.t, ack.t) if syn and ack else None


def _seconds(value: float) -> str:
    return f"{value * 1e3:.1f} ms" if abs(value) < 1 else f"{value:.3f} s"


def expected_time(exp: TimingExpectation | HandshakeExpectation, rtt_s: float) -> tuple[float, float, str]:
    """The expected value, its tolerance and how to say it (every value was parsed at load,
    harness/load/units.py: only the RTT is filled in here)."""
    if exp.between:
        low_ok, high_ok = (b.resolve(rtt_s) for b in exp.between)
        expected, tol = (low_ok + high_ok) / 2, (high_ok - low_ok) / 2
        text = f"{_seconds(low_ok)} to {_seconds(high_ok)}"
        specs = exp.between
    else:
        expected = exp.equals.resolve(rtt_s)
        tol = exp.within.of(expected)
        text = f"{_seconds(expected)} ± {_seconds(tol)}"
        specs = (exp.equals,)
    if any(spec.rtts is not None for spec in specs):
        text += f" (RTT {rtt_s * 1e3:g} ms)"
    return expected, tol, text


def socket_handshake(view: SocketView, obs: Observation) -> tuple[float, float] | None:
    """A socket's own handshake, its two moments: at a connecting end its SYN sent -> its final
    ACK sent (kernel time when the run has it), at an accepted end the SYN received -> the final
    ACK received."""
    if view.kind == "connect":
        pool, sender = (view.kernel_segments if view.host in obs.kernel_segments else view.segments), view.local
    else:
        pool, sender = view.segments, view.peer
    ours = [s for s in pool if (s.src, s.sport) == sender]
    syn = next((s for s in ours if s.flags == "S"), None)
    ack = next((s for s in ours if syn and s.t >= syn.t and "A" in s.flags and "S" not in s.flags), None)
    return (syn.t, ack.t) if syn and ack else None


def judge_handshake(name: str, exp: HandshakeExpectation, obs: Observation, rtt_s: float) -> Verdict:
    """`handshake:` under a socket: its own handshake time against the expected one."""
    expected, tol, _ = expected_time(exp, rtt_s)
    return dataclasses.replace(_handshake(name, exp, obs, rtt_s), expected_range=(expected - tol, expected + tol))


def _handshake(name: str, exp: HandshakeExpectation, obs: Observation, rtt_s: float) -> Verdict:
    expected, tol, text = expected_time(exp, rtt_s)
    view = obs.sockets.get(name)
    interval = socket_handshake(view, obs) if view is not None else None
    if interval is None:
        return Verdict(f"{name} handshake", text, "no complete handshake in the capture", False, marks=Marks((name,)))
    measured = interval[1] - interval[0]
    return Verdict(f"{name} handshake", text, _seconds(measured), abs(measured - expected) <= tol, measured,
                   marks=Marks((name,), interval))


def judge_timing(exp: TimingExpectation, obs: Observation, rtt_s: float) -> Verdict:
    """A timing between two moments (or a built-in handshake) against its expected value; the
    verdict carries the accepted range in seconds."""
    expected, tol, _ = expected_time(exp, rtt_s)
    return dataclasses.replace(_timing(exp, obs, rtt_s), expected_range=(expected - tol, expected + tol))


def _not_traced(exp: TimingExpectation, start: Moment, end: Moment) -> str:
    """Where a retransmission or reset was read from the captures instead of the kernel trace
    (an old run, --observer samples, a reset 6.1 does not trace), the verdict says so."""
    notes = [f"{event.text}: {moment.source}" for event, moment in ((exp.start, start), (exp.end, end))
             if event.verb in TRACE_VERBS and not moment.source.startswith("kernel trace")]
    return f" ({'; '.join(notes)})" if notes else ""


def _timing(exp: TimingExpectation, obs: Observation, rtt_s: float) -> Verdict:
    expected, tol, text = expected_time(exp, rtt_s)
    if exp.builtin is not None:
        host = obs.client_host if exp.builtin == "client" else obs.server_host
        interval = handshake_interval(obs, exp.builtin)
        if interval is None:
            return Verdict(exp.name, text, "no complete handshake in the capture", False)
        measured = interval[1] - interval[0]
        return Verdict(exp.name, text, _seconds(measured), abs(measured - expected) <= tol, measured,
                       marks=Marks((host,) if host else (), interval))
    name = f"{exp.name} ({exp.start.text} → {exp.end.text})"
    start, end = find_moment(exp.start, obs), find_moment(exp.end, obs)
    for moment in (start, end):
        if not isinstance(moment, Moment):
            return Verdict(name, text, f"not observed: {moment}", False)
    measured = end.t - start.t
    marks = Marks(tuple(dict.fromkeys((exp.start.host, exp.end.host))), (start.t, end.t))
    # start lies in (start.t - u1, start.t], end in (end.t - u2, end.t]
    low, high = measured - end.uncertainty_s + 0.0, measured + start.uncertainty_s   # + 0.0: no "-0.0 ms"
    low = max(low, 0.0) if measured >= 0 and caused_by(exp.start, exp.end) else low   # no effect before its cause
    observed = _seconds(measured)
    if start.uncertainty_s or end.uncertainty_s:
        observed += f" (true value in [{_seconds(low)}, {_seconds(high)}]: sampling gaps)"
    observed += _not_traced(exp, start, end)
    if high - low > 2 * tol:
        return Verdict(name, text, observed + "; the sampling gaps are wider than the allowed range: too coarse to judge",
                       False, measured, marks=marks)
    return Verdict(name, text, observed, abs(measured - expected) <= tol, measured, marks=marks)
