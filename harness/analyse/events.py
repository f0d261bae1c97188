"""Events named in timing expectations -> the moment they were observed, with its uncertainty."""
from __future__ import annotations

from dataclasses import dataclass

from harness.analyse.connection import Observation
from harness.model import Event


@dataclass(frozen=True)
class Moment:
    """The event happened in (t - uncertainty_s, t]: exact for packets and calls, one sampling gap for states."""
    t: float
    uncertainty_s: float
    source: str


def _has_flags(flags: str, wanted: str) -> bool:
    """`sends F`: a segment carrying at least these flags (FIN+ACK is a FIN)."""
    return set(wanted) <= set(flags)


def find_moment(event: Event, obs: Observation) -> Moment | str:
    """The observed moment, or a sentence saying why it was not observed."""
    if event.verb in ("enters", "leaves"):
        spans = [s for s in obs.states.get(event.host, []) if s.state == event.what]
        if len(spans) < event.nth:
            return f"{event.host} was seen in {event.what} {len(spans)} time(s)" if spans else f"{event.host} was never seen in {event.what}"
        span = spans[event.nth - 1]
        if event.verb == "enters":
            if span.sample_before is None:
                return f"{event.host} was already in {event.what} at the first sample"
            return Moment(span.first_seen, span.first_seen - span.sample_before, "samples")
        if span.sample_after is None:
            return f"{event.host} was still in {event.what} when the run ended"
        return Moment(span.sample_after, span.sample_after - span.last_seen, "samples")
    if event.verb in ("sends", "receives"):
        me = obs.address(event.host)
        segs = [s for s in obs.segments.get(event.host, []) if _has_flags(s.flags, event.what)
                and ((s.src, s.sport) == me if event.verb == "sends" else (s.dst, s.dport) == me)]
        if len(segs) < event.nth:
            return f"{event.host}'s capture shows {len(segs)} segment(s) with {event.what} {'sent' if event.verb == 'sends' else 'received'}"
        return Moment(segs[event.nth - 1].t, 0.0, f"capture at {event.host}")
    calls = [e for e in obs.steps.get(event.host, []) if e.action == event.what]
    if len(calls) < event.nth:
        return f"{event.host} made {len(calls)} {event.what} call(s)"
    entry = calls[event.nth - 1]
    if event.verb == "returns" and entry.blocked:
        return f"{event.host}'s {event.what} had not returned when the run ended"
    return Moment(entry.start if event.verb == "calls" else entry.end, 0.0, "step log")


def caused_by(start: Event, end: Event) -> bool:
    """True when `end` cannot come before `start`: a host's state change after its own call (the
    call is logged before it is made; the change it causes comes later), so a sampling window for
    the interval between them starts at 0, never below."""
    return start.verb == "calls" and end.verb in ("enters", "leaves") and start.host == end.host
