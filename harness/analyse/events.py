"""Events named in timing expectations -> the moment they were observed, with its uncertainty.

An event's subject is a host (its first connection and its whole step log, as always) or a named
socket (its own incarnation's segments, its states, the calls made on it). "sends" is kernel time,
when the host's TCP handed the segment to its interface; "transmits" is when it left the host's
link (the interface capture, after the link's own egress delay); "receives" when it arrived.
"retransmits", "resets" and "is reset" come from the kernel trace where the run has one (see
_traced), else from the captures."""
from __future__ import annotations

from dataclasses import dataclass

from harness.analyse.connection import Observation
from harness.analyse.incarnations import split
from harness.analyse.journeys import Journey, mark_retransmissions
from harness.analyse.kernel_trace import KernelTrace, SocketEvent
from harness.analyse.segments import Segment, of_connection
from harness.analyse.states import StateSpan
from harness.analyse.traced_states import REQUEST_UNSEEN
from harness.model import Event, StepRecord

# A tracepoint names a four-tuple, not a segment: the segment is the one the host's kernel-time
# capture holds from that four-tuple at the same moment. tcp_retransmit_skb, tcp_retransmit_synack
# and tcp_send_reset fire in the call that sent it, right after the send; the capture stamps the
# frame as it is mirrored, so on the VM runs (6.1, 6.12) the frame's stamp is 5 µs *before* the
# event's. The last such segment at or before the event within PAIR_S is taken (else the first
# after, should a clock order them the other way); 5 ms is far more than that gap and far less
# than any retransmission timer (200 ms at least), so no other send of the four-tuple is near.
PAIR_S = 0.005
TRACE_VERBS = ("retransmits", "resets", "is reset")


@dataclass(frozen=True)
class Moment:
    """The event happened in (t - uncertainty_s, t]: exact for packets, calls and traced state
    changes, one sampling gap for sampled ones."""
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
    peer: tuple[str, int] | None = None
    socket: bool = False                    # a named socket: only its own incarnation's segments count


def subject_of(obs: Observation, name: str) -> Subject:
    view = obs.view(name)
    if view is not None:
        kernel = view.kernel_segments if view.host in obs.kernel_segments else None
        return Subject(view.host, view.states, view.segments, kernel, view.local, view.steps, view.peer, True)
    kernel = None
    if name in obs.kernel_segments:
        kernel = of_connection(obs.kernel_segments[name], obs.client, obs.server) if obs.client and obs.server else []
    me = obs.address(name)
    peer = obs.server if me is not None and me == obs.client else obs.client if me is not None else None
    return Subject(name, obs.states.get(name, []), obs.segments.get(name, []), kernel, me,
                   obs.steps.get(name, []), peer)


def _has_flags(flags: str, wanted: str) -> bool:
    """`sends F`: a segment carrying at least these flags (FIN+ACK is a FIN)."""
    return set(wanted) <= set(flags)


def _state_moment(event: Event, who: Subject) -> Moment | str:
    spans = [s for s in who.states if s.state == event.what]
    if len(spans) < event.nth:
        return f"{event.host} was seen in {event.what} {len(spans)} time(s)" if spans else f"{event.host} was never seen in {event.what}"
    span = spans[event.nth - 1]
    if event.verb == "enters":
        if span.start_source == REQUEST_UNSEEN:
            return (f"{event.host}'s request socket (its SYN-RECV from the SYN on) was not sampled, so when it "
                    f"entered {event.what} is unknown (the trace has only the accepted socket, made at the final ACK)")
        if span.sample_before is None:
            return f"{event.host} was already in {event.what} at the first sample"
        return Moment(span.first_seen, span.first_seen - span.sample_before, _state_source(span.start_source))
    if span.sample_after is None:
        return f"{event.host} was still in {event.what} when the run ended"
    return Moment(span.sample_after, span.sample_after - span.last_seen, _state_source(span.end_source))


def _state_source(edge: str) -> str:
    """A state change's source as a verdict names it: exact from the trace, or between samples."""
    return "kernel trace (inet_sock_set_state)" if edge == "trace" else "samples"


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


def _consumes(seg: Segment) -> bool:
    """A segment that takes sequence space: the only kind TCP retransmits."""
    return seg.length > 0 or "S" in seg.flags or "F" in seg.flags


def _pair(t: float, pool: list[Segment], taken: set[int]) -> Segment | None:
    """The segment a tracepoint at `t` reported (see PAIR_S), each segment paired once."""
    near = [s for s in pool if abs(s.t - t) <= PAIR_S and id(s) not in taken]
    before = [s for s in near if s.t <= t]
    found = before[-1] if before else (near[0] if near else None)
    if found is not None:
        taken.add(id(found))
    return found


def _traced(events: list[SocketEvent], pool: list[Segment], who: Subject) -> list[tuple[SocketEvent, Segment | None]]:
    """Each traced event with its segment. A named socket's event counts only when its segment is
    one of the socket's own: several incarnations may share the four-tuple, and the socket's pool
    holds its incarnation's segments alone. A host follows the whole four-tuple, unpaired too."""
    taken: set[int] = set()
    out = []
    for e in sorted(events, key=lambda e: e.t):
        seg = _pair(e.t, pool, taken)
        if seg is not None or not who.socket:
            out.append((e, seg))
    return out


def _trace_of(obs: Observation, who: Subject, tracepoint: str) -> tuple[KernelTrace | None, str]:
    """The run's trace when it can answer: the tracepoint was on, the subject has a four-tuple and
    the host a kernel-time capture to name the segments; else None and why (the captures answer)."""
    trace = obs.trace
    if trace is None:
        return None, "no kernel trace"
    if not trace.has(tracepoint):
        return None, f"the kernel trace has no {tracepoint}"
    if who.kernel is None:
        return None, "no kernel-time capture to pair the kernel trace with"
    if who.me is None or who.peer is None:
        return None, "no connection"
    return trace, ""


def _capture_retransmissions(pool: list[Segment]) -> list[Segment]:
    """Without a trace: the sends of sequence space already sent in that incarnation (the rule the
    ladder diagram dashes retransmissions by, journeys.mark_retransmissions)."""
    number = {id(s): inc.number for runs in split(pool).values() for inc in runs for s in inc.segments}
    journeys = [Journey("", "", "", s, (s.src, s.sport, s.dst, s.dport), s.t, None, None, None, None, None,
                        "delivered", incarnation=number.get(id(s), 1)) for s in sorted(pool, key=lambda s: s.t)]
    return [j.segment for j in mark_retransmissions(journeys) if j.retransmission]


def _traced_retransmissions(event: Event, who: Subject, trace: KernelTrace) -> list[Moment]:
    """tcp_retransmit_skb (a full socket) and tcp_retransmit_synack (a request socket's SYN+ACK),
    each with the segment it resent, kept when that carries the event's flags."""
    events = trace.of("retransmit", who.me, who.peer) + trace.of("synack-retransmit", who.me, who.peer)
    pool = [s for s in who.kernel or [] if (s.src, s.sport) == who.me and _consumes(s)]
    found = []
    for e, seg in _traced(events, pool, who):
        if seg is not None and _has_flags(seg.flags, event.what):
            found.append(Moment(e.t, 0.0, f"kernel trace (tcp_retransmit_{'skb' if e.kind == 'retransmit' else 'synack'})"))
    return found


def _retransmissions(event: Event, who: Subject, obs: Observation) -> tuple[list[Moment], str]:
    """Every retransmission by the subject carrying the event's flags, and what was looked in."""
    trace, why = _trace_of(obs, who, "tcp_retransmit_skb")
    if trace is not None:
        return _traced_retransmissions(event, who, trace), "the kernel trace shows"
    pool, source, capture, _ = _where(Event(event.host, "sends", event.what), who)
    again = _capture_retransmissions([s for s in pool if (s.src, s.sport) == who.me])
    return ([Moment(s.t, 0.0, f"{source}: a resend of sequence space already sent, {why}")
             for s in again if _has_flags(s.flags, event.what)], f"{capture} ({why}) shows")


def _resets_sent(event: Event, who: Subject, obs: Observation) -> tuple[list[Moment], str]:
    """Every RST the subject's TCP sent: traced ones at the tracepoint, and the capture's RSTs the
    trace does not show (6.1 traces only resets a full socket sends, not a reset for no socket)."""
    pool, source, capture, _ = _where(Event(event.host, "sends", "R"), who)
    rsts = [s for s in pool if "R" in s.flags and (s.src, s.sport) == who.me]
    trace, why = _trace_of(obs, who, "tcp_send_reset")
    if trace is None:
        return [Moment(s.t, 0.0, f"{source} ({why})") for s in rsts], f"{capture} ({why}) shows"
    traced = _traced(trace.of("reset-sent", who.me, who.peer), rsts, who)
    paired = {id(seg) for _, seg in traced if seg is not None}
    found = [Moment(e.t, 0.0, "kernel trace (tcp_send_reset)") for e, _ in traced]
    found += [Moment(s.t, 0.0, f"{source} (a reset the kernel trace does not show)") for s in rsts if id(s) not in paired]
    return sorted(found, key=lambda m: m.t), "the kernel trace and kernel-time capture show"


def _resets_received(event: Event, who: Subject, obs: Observation) -> tuple[list[Moment], str]:
    """Every RST the subject's TCP took (tcp_reset: an out-of-window RST is not one); without a
    trace, every RST that reached its interface."""
    rsts = [s for s in who.segments if "R" in s.flags and (s.dst, s.dport) == who.me]
    trace, why = _trace_of(obs, who, "tcp_receive_reset")
    if trace is None:
        return ([Moment(s.t, 0.0, f"capture at {who.host} ({why}: a RST that arrived, taken or not)")
                 for s in rsts], f"{event.host}'s capture ({why}) shows")
    traced = _traced(trace.of("reset-received", who.me, who.peer), rsts, who)
    return [Moment(e.t, 0.0, "kernel trace (tcp_receive_reset)") for e, _ in traced], "the kernel trace shows"


def _trace_moment(event: Event, who: Subject, obs: Observation) -> Moment | str:
    if event.verb == "retransmits":
        found, shows = _retransmissions(event, who, obs)
        what = f"retransmission(s) of {event.what} by {event.host}"
    elif event.verb == "resets":
        found, shows = _resets_sent(event, who, obs)
        what = f"reset(s) sent by {event.host}"
    else:
        found, shows = _resets_received(event, who, obs)
        what = f"reset(s) taken by {event.host}"
    if len(found) < event.nth:
        return f"{shows} {len(found)} {what}"
    return found[event.nth - 1]


def find_moment(event: Event, obs: Observation) -> Moment | str:
    """The observed moment, or a sentence saying why it was not observed."""
    who = subject_of(obs, event.host)
    if event.verb in ("enters", "leaves"):
        return _state_moment(event, who)
    if event.verb in ("sends", "transmits", "receives"):
        return _segment_moment(event, who)
    if event.verb in TRACE_VERBS:
        return _trace_moment(event, who, obs)
    return _call_moment(event, who)


def caused_by(start: Event, end: Event) -> bool:
    """True when `end` cannot come before `start`: a host's state change after its own call (the
    call is logged before it is made; the change it causes comes later), so a sampling window for
    the interval between them starts at 0, never below."""
    return start.verb == "calls" and end.verb in ("enters", "leaves") and start.host == end.host
