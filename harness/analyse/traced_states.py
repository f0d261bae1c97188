"""A socket's states from the kernel's tracepoints, completed and cross-checked by the samples.

While a full socket exists, the trace has every change of its state at the kernel's moment: those
spans replace the sampled ones, and their edges carry no sampling window. The samples still give
what the trace cannot see (analyse.kernel_trace): the request socket's SYN-RECV before an accepted
socket exists, and the TIME-WAIT (or orphaned FIN-WAIT-2) socket that replaces a full socket at
its traced "close", until it ends. And each sampled state of a traced socket (its first and last
sample) must be one the trace says it had then; one that is not is a disagreement, which fails the run:
two observers of one kernel that contradict each other support no verdict.
"""
from __future__ import annotations

from dataclasses import replace

from harness.analyse.kernel_trace import NO_ADDRESS, KernelTrace, TracedSocket
from harness.analyse.states import StateSpan

# A sample's time is taken after its sock_diag dump, which reads the tables a little earlier:
# a change within this much (plus the dump's own duration, samples' "d") before a sample's time
# may or may not show in it.
SAMPLE_SLACK_S = 0.01
TIME_WAIT_SOCKET_STATES = ("FIN-WAIT-2", "TIME-WAIT")   # what a full socket's TIME-WAIT successor shows
TRACE, SAMPLES = "trace", "samples"
# An accepted socket's own SYN-RECV lasts microseconds (it is made as the final ACK arrives); the
# connection's SYN-RECV began with the request socket, which only the samples see. Where they did
# not, when it began is unknown: this edge says so (analyse.events).
REQUEST_UNSEEN = "request not sampled"
# what a sample may show of a four-tuple just before a traced socket of it exists
BEFORE_A_SOCKET = {"SYN-RECV", "CLOSED", *TIME_WAIT_SOCKET_STATES}


def _traced(sock: TracedSocket, until: float) -> list[StateSpan]:
    """One span per traced state, edges exact; a final CLOSED span starts at the close; a state
    still held when tracing stopped was last seen at `until` (the last sample)."""
    spans = []
    for tr, nxt in zip(sock.transitions, sock.transitions[1:] + [None]):
        end = nxt.t if nxt else None
        spans.append(StateSpan(tr.new, tr.t, end if end is not None else max(until, tr.t), tr.t, end,
                               start_source=TRACE, end_source=TRACE if end is not None else SAMPLES))
    first = sock.transitions[0]
    if first.old == "LISTEN" and first.new == "SYN-RECV":
        spans[0] = replace(spans[0], start_source=REQUEST_UNSEEN)
    return spans


def _inside(span: StateSpan, sock: TracedSocket) -> bool:
    """The sampled span began while the traced socket existed. (One that began before it is the
    request socket that stood for it, or an earlier socket of the same four-tuple: kept as it is.)"""
    end = sock.end if sock.end is not None else float("inf")
    return sock.start <= span.first_seen <= end


def _states_around(sock: TracedSocket, t: float, slack: float) -> set[str]:
    """The states the socket had at some moment in [t - slack, t] (what a sample at t may show)."""
    states = {sock.state_at(t - slack)} | {tr.new for tr in sock.transitions if t - slack < tr.t <= t}
    return {s for s in states if s is not None}


def _disagreement(span: StateSpan, sock: TracedSocket, times: tuple[float, ...], dumps: dict[float, float]) -> str | None:
    """Why the sampled span's samples at `times` contradict the traced socket (None: they agree).
    `dumps`: how long each sample's dump took (the tables were read within it)."""
    for t in times:
        if t < sock.start:
            continue                                               # before it existed
        slack = SAMPLE_SLACK_S + dumps.get(t, 0.0)
        allowed = _states_around(sock, t, slack)
        if sock.end is not None and t >= sock.end - slack:
            allowed |= {"CLOSED", *TIME_WAIT_SOCKET_STATES}       # its successor, or gone
        if t < sock.start + slack:
            allowed |= BEFORE_A_SOCKET                             # read just before it was made
        if span.state not in allowed:
            had = " or ".join(sorted(allowed)) or "no socket"
            return f"a sample at {t:.6f} shows {span.state} where the kernel trace has {had}"
    return None


def _successor_start(closed: StateSpan, nxt: StateSpan, before: StateSpan | None) -> StateSpan:
    """The sampled TIME-WAIT/FIN-WAIT-2 span of the socket that took over at the traced close: it
    began no earlier than the close; from CLOSING the kernel goes straight to TIME-WAIT, so there it
    began exactly then."""
    if before is not None and before.state == "CLOSING" and nxt.state == "TIME-WAIT":
        return replace(nxt, first_seen=closed.first_seen, sample_before=closed.first_seen, start_source=TRACE)
    start = max(nxt.sample_before if nxt.sample_before is not None else closed.first_seen, closed.first_seen)
    return replace(nxt, sample_before=start)


def _joined(first: StateSpan, second: StateSpan) -> StateSpan:
    """One state seen as two adjacent spans (the request's SYN-RECV and the child's; the full
    socket's FIN-WAIT-2 and its orphan's): the first's start, the second's end and timer."""
    return replace(first, last_seen=second.last_seen, sample_after=second.sample_after, end_source=second.end_source,
                   timer_due=second.timer_due if second.timer_due is not None else first.timer_due,
                   timer_rearmed=first.timer_rearmed + second.timer_rearmed)


def _with_timers(spans: list[StateSpan], sampled: list[StateSpan]) -> list[StateSpan]:
    """Traced spans take the kernel timer the samples read in the same state (the tracepoint has none)."""
    out = []
    for span in spans:
        same = [s for s in sampled if s.state == span.state and s.timer_due is not None
                and s.last_seen >= span.first_seen and (span.sample_after is None or s.first_seen <= span.sample_after)]
        if span.start_source == TRACE and same and span.timer_due is None:
            span = replace(span, timer_due=same[-1].timer_due, timer_rearmed=same[-1].timer_rearmed)
        out.append(span)
    return out


def _ordered(spans: list[StateSpan]) -> list[StateSpan]:
    """Spans in time order, the trace's "close" replaced by the sampled successor where one
    followed, adjacent spans of one state joined."""
    out: list[StateSpan] = []
    for span in sorted(spans, key=lambda s: (s.first_seen, s.start_source != TRACE)):
        prev = out[-1] if out else None
        if prev is not None and prev.state == "CLOSED" and prev.start_source == TRACE and span.state in TIME_WAIT_SOCKET_STATES:
            out.pop()            # not closed: handed over to its TIME-WAIT socket
            span = _successor_start(prev, span, out[-1] if out else None)
            prev = out[-1] if out else None
            if prev is not None and prev.state != span.state:
                out[-1] = prev = replace(prev, sample_after=span.first_seen, end_source=span.start_source)
        if prev is not None and prev.state == span.state:
            out[-1] = _joined(prev, span)
        else:
            out.append(span)
    return out


def merged_spans(sampled: list[StateSpan], traced: list[TracedSocket], who: str,
                 dumps: dict[float, float] | None = None) -> tuple[list[StateSpan], list[str]]:
    """The spans to judge (traced where a full socket existed, sampled around it) and the
    disagreements between the two, each naming `who` and both sequences. No traced socket: the
    samples as they are."""
    if not traced:
        return sampled, []
    problems, outside = [], []
    until = max((s.last_seen for s in sampled), default=0.0)
    for span in sampled:
        owners = [sock for sock in traced if _inside(span, sock)]
        # a span that began before a socket and was still seen after it was made: its last sample
        straddled = [sock for sock in traced if span.first_seen < sock.start <= span.last_seen]
        said = [_disagreement(span, sock, (span.first_seen, span.last_seen), dumps or {}) for sock in owners]
        said += [_disagreement(span, sock, (span.last_seen,), dumps or {}) for sock in straddled]
        if said and all(said):   # agreeing with one of the four-tuple's sockets is enough
            problems.append(said[0])
        if not owners:
            outside.append(span)
            continue
        if any(sock.end is not None and span.state in TIME_WAIT_SOCKET_STATES and span.last_seen > sock.end
               for sock in owners):
            end = max(sock.end for sock in owners if sock.end is not None)
            outside.append(replace(span, first_seen=max(span.first_seen, end), sample_before=end))
    exact = [s for sock in traced for s in _traced(sock, until)]
    spans = _with_timers(_ordered(exact + outside), sampled)
    if problems:
        traced_seq = " → ".join(s.state for s in exact)
        sampled_seq = " → ".join(s.state for s in sampled)
        problems = [f"{who}: {p}; traced: {traced_seq}; sampled: {sampled_seq}" for p in problems]
    return spans, problems


def listeners_traced(trace: KernelTrace, local: tuple[str, int], listening_hosts: int) -> list[TracedSocket]:
    """The traced listeners on `local`'s port. The trace has no namespace: a listener bound to
    0.0.0.0 is only known to be this host's when no other host listens on that port."""
    found = trace.listeners_on(local)
    if listening_hosts > 1 and any(s.local[0] == NO_ADDRESS for s in found):
        return []
    return found


def connection_traced(trace: KernelTrace, local: tuple[str, int], peer: tuple[str, int], cookie: int | None,
                      seen: tuple[float, float] | None) -> list[TracedSocket]:
    """The traced full socket(s) of one connection: its cookie where the trace printed one, else
    the four-tuple's sockets whose life overlaps `seen` (when its samples and segments were seen)."""
    found = trace.sockets_of(local, peer)
    if cookie is not None and any(s.cookie == cookie for s in found):
        return [s for s in found if s.cookie == cookie]
    if seen is None:
        return found if len(found) == 1 else []
    low, high = seen
    return [s for s in found if s.start <= high + SAMPLE_SLACK_S and (s.end is None or s.end >= low - SAMPLE_SLACK_S)]
