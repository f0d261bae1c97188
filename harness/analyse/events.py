"""Events named in timing expectations -> the moment they were observed, with its uncertainty.

An event's subject is a host (its first connection and its whole step log, as always) or a named
socket (its own incarnation's segments, its states, the calls made on it). "sends" is kernel time,
when the host's TCP handed the segment to its interface; "transmits" is when it left the host's
link (the interface capture, after the link's own egress delay); "receives" when it arrived."""
from __future__ import annotations

from dataclasses import dataclass

from harness.analyse.connection import Observation
from harness.analyse.segments import Segment, of_connection
from harness.analyse.states import StateSpan
from harness.model import Event, StepRecord


@dataclass(frozen=True)
class Moment:
    """The event happened in (t - uncertainty_s, t]: exact for packets and calls, one sampling gap for states."""
    t: float
    uncertainty_s: float
    source: str


@dataclass(frozen=True)
class Subject:
    """What an event's subject offers to look in."""
    host: str                               # the host it is, or the socket's host
    states: list[StateSpan]
    segments: list[Segment]                 # at the host's interface
    kernel: list[Segment] | None            # sent, at kernel time (None: the run has no kernel-time capture)
    me: tuple[str, int] | None
    calls: list[StepRecord]


def subject_of(obs: Observation, name: str) -> Subject:
    view = obs.view(name)
    if view is not None:
        kernel = view.kernel_segments if view.host in obs.kernel_segments else None
        return Subject(view.host, view.states, view.segments, kernel, view.local, view.steps)
    kernel = None
    if name in obs.kernel_segments:
        kernel = of_connection(obs.kernel_segments[name], obs.client, obs.server) if obs.client and obs.server else []
    return Subject(name, obs.states.get(name, []), obs.segments.get(name, []), kernel, obs.address(name),
                   obs.steps.get(name, []))


def _has_flags(flags: str, wanted: str) -> bool:
    """`sends F`: a segment carrying at least these flags (FIN+ACK is a FIN)."""
    return set(wanted) <= set(flags)


def _state_moment(event: Event, who: Subject) -> Moment | str:
    spans = [s for s in who.states if s.state == event.what]
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


def _where(event: Event, who: Subject) -> tuple[list[Segment], str, str, str]:
    """The segments an event is looked up in, their source, what the capture is called, the verb's word."""
    if event.verb == "receives":
        return who.segments, f"capture at {who.host}", f"{event.host}'s capture", "received"
    if event.verb == "sends" and who.kernel is not None:
        return who.kernel, f"kernel-time capture at {who.host}", f"{event.host}'s kernel-time capture", "sent"
    if event.verb == "sends":
        return (who.segments, f"capture at {who.host}'s interface (no kernel-time capture in this run)",
                f"{event.host}'s capture", "sent")
    return who.segments, f"capture at {who.host}'s interface", f"{event.host}'s capture", "transmitted"


def _segment_moment(event: Event, who: Subject) -> Moment | str:
    pool, source, capture, word = _where(event, who)
    end = (lambda s: (s.dst, s.dport)) if event.verb == "receives" else (lambda s: (s.src, s.sport))
    segs = [s for s in pool if _has_flags(s.flags, event.what) and end(s) == who.me]
    if len(segs) < event.nth:
        return f"{capture} shows {len(segs)} segment(s) with {event.what} {word}"
    return Moment(segs[event.nth - 1].t, 0.0, source)


def _call_moment(event: Event, who: Subject) -> Moment | str:
    calls = [e for e in who.calls if e.action == event.what]
    if len(calls) < event.nth:
        return f"{event.host} made {len(calls)} {event.what} call(s)"
    entry = calls[event.nth - 1]
    if event.verb == "returns" and entry.blocked:
        return f"{event.host}'s {event.what} had not returned when the run ended"
    return Moment(entry.start if event.verb == "calls" else entry.end, 0.0, "step log")


def find_moment(event: Event, obs: Observation) -> Moment | str:
    """The observed moment, or a sentence saying why it was not observed."""
    who = subject_of(obs, event.host)
    if event.verb in ("enters", "leaves"):
        return _state_moment(event, who)
    if event.verb in ("sends", "transmits", "receives"):
        return _segment_moment(event, who)
    return _call_moment(event, who)


def caused_by(start: Event, end: Event) -> bool:
    """True when `end` cannot come before `start`: a host's state change after its own call (the
    call is logged before it is made; the change it causes comes later), so a sampling window for
    the interval between them starts at 0, never below."""
    return start.verb == "calls" and end.verb in ("enters", "leaves") and start.host == end.host
