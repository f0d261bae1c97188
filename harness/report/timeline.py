"""A readable account of one run: the segments at the client's interface and each side's state
changes, in time order, with seq/ack relative to each side's ISN (as Wireshark shows them). A run
with several connections gets a lane per connection: each line names its connection by the
sockets at its two ends (a⇄server:5001#1), seq/ack relative to that incarnation's ISNs.

timeline.txt holds all of it; only the terminal copy is shortened (terminal_copy), saying where
the rest is. When nothing of the connection was captured, it says what did happen: which calls
ran, whether the ping before the run was answered, and where the segments must have been lost."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.analyse.connection import Observation, SocketView
from harness.analyse.incarnations import CONNECTING, unique
from harness.analyse.segments import Segment
from harness.analyse.states import StateSpan
from harness.model import StepRecord, flag_set

TERMINAL_LINES = 40
DEAD_PING = "the ping before the run got no answer: the path is dead (100% loss?)"


def _call_text(entry: StepRecord) -> str:
    took = entry.end - entry.start if entry.end is not None else None
    result = entry.result or "?"
    if entry.errno:
        result += f" ({entry.errno})"
    return f"calls {entry.action} → {result}" + (f" after {took:.3f} s" if took and took >= 0.0005 else "")


def _silence(obs: Observation, dead_ping: bool) -> list[str]:
    """Why the client's interface shows nothing: no connect ran, or its calls ran and nothing
    got past its own link (outgoing segments are captured after the interface's qdisc)."""
    notes = [DEAD_PING] if dead_ping else []
    if obs.client is None:
        return notes + ["no connect call ran (or none got as far as a socket), so there is no connection to show; "
                        "the calls and states were:"]
    seen_elsewhere = {h: len(s) for h, s in obs.segments.items() if s and h != obs.client_host}
    text = f"nothing of the connection was captured at {obs.client_host}'s interface although its connect ran"
    if seen_elsewhere:
        text += "; " + ", ".join(f"{h}'s interface saw {n} segment(s) of it" for h, n in seen_elsewhere.items())
    else:
        text += (": nothing it sent (SYN or ARP) got past its own link's netem, which drops before the capture "
                 "point, and nothing came back (the link's loss is 100%?)")
    return notes + [text + ". The calls and states were:"]


def _segment_events(segs: list[Segment], name: dict, isn: dict, label: str = "") -> list[tuple[float, str]]:
    """One line per segment (a burst of data segments from one sender collapsed into one), seq/ack
    relative to each side's ISN; `label` names the connection when there are several."""
    prefix = f"{label}  " if label else ""
    events: list[tuple[float, str]] = []
    run = None   # (sender, count, bytes, first line index, next seq) for collapsing data bursts
    sent_up_to: dict[tuple[str, int], int] = {}     # each sender's highest seq + len so far
    for s in segs:
        sender = name.get((s.src, s.sport), f"{s.src}:{s.sport}")
        receiver = name.get((s.dst, s.dport), f"{s.dst}:{s.dport}")
        end = s.seq + s.length
        again = s.length and (s.src, s.sport) in sent_up_to and (sent_up_to[(s.src, s.sport)] - end) % 2**32 < 2**31
        sent_up_to[(s.src, s.sport)] = end if not again else sent_up_to[(s.src, s.sport)]
        if s.length and not again and flag_set(s.flags) == "A" and run and run[0] == sender and run[4] == s.seq:
            run = (sender, run[1] + 1, run[2] + s.length, run[3], end)
            events[run[3]] = (events[run[3]][0], f"{prefix}{sender} → {receiver}  {run[1]} data segments, {run[2]} bytes")
            continue
        seq = (s.seq - isn.get((s.src, s.sport), 0)) % 2**32
        ack = (s.ack - isn.get((s.dst, s.dport), 0)) % 2**32 if "A" in s.flags else None
        text = f"{prefix}{sender} → {receiver}  {s.flags:<3} seq={seq}" + (f" ack={ack}" if ack is not None else "")
        if s.length:
            text += f" len={s.length}" + (" (again: bytes sent before)" if again else "")
        events.append((s.t, text))
        run = (sender, 1, s.length, len(events) - 1, end) if s.length and not again else None
    return events


def _state_events(who: str, spans: list[StateSpan]) -> list[tuple[float, str]]:
    """Each state's start — traced, or its first sample (a listener's LISTEN left out) — and a
    TIME-WAIT timer's due moment."""
    events = []
    for span in spans:
        if span.state != "LISTEN":
            how = {"trace": "traced", "samples": "first sample"}.get(span.start_source, span.start_source)
            events.append((span.first_seen, f"{'':>4}{who} is {span.state} ({how})"))
        ended_early = span.sample_after is not None and span.sample_after < (span.timer_due or 0) - 0.5
        if span.state == "TIME-WAIT" and span.timer_due and not ended_early:
            rearmed = (f"; the kernel re-armed it {span.timer_rearmed} time(s), this is the last"
                       if span.timer_rearmed else "")
            events.append((span.timer_due, f"{'':>4}{who}'s TIME-WAIT timer due, by the kernel's own count "
                                           f"({span.timer_due - span.first_seen:.3f} s after TIME-WAIT was "
                                           f"{'entered' if span.start_source == 'trace' else 'first sampled'}{rearmed})"))
    return events


@dataclass
class Lane:
    """One connection (an incarnation of a four-tuple): the sockets at its ends, its segments as
    the connecting host's interface saw them, and the ISNs its seq/ack are counted from."""
    views: list[SocketView]
    segments: list[Segment]
    isn: dict[tuple[str, int], int]
    label: str          # the sockets at its two ends (a⇄server:5001#1); no socket at the far end: its host


def _same_connection(a: SocketView, b: SocketView) -> bool:
    """Two ends of one incarnation: the four-tuple reversed and an ISN both saw (neither saw a
    segment: the four-tuple alone)."""
    if (a.local, a.peer) != (b.peer, b.local):
        return False
    return bool(set(a.isn.items()) & set(b.isn.items())) if a.isn or b.isn else True


def lanes(obs: Observation) -> list[Lane]:
    """Every connection the sockets made, in the order their sockets were named."""
    groups: list[list[SocketView]] = []
    for view in (v for v in unique(obs.sockets) if v.kind in CONNECTING):
        group = next((g for g in groups if len(g) == 1 and _same_connection(view, g[0])), None)
        if group is None:
            groups.append([view])
        else:
            group.append(view)
    out = []
    for group in groups:
        group.sort(key=lambda v: v.kind != "connect")       # the connecting end first
        isn = {k: v for view in reversed(group) for k, v in view.isn.items()}
        ends = [v.shown for v in group]
        if len(ends) == 1:
            peer = group[0].peer
            ends.append(obs.host_of(peer) or (f"{peer[0]}:{peer[1]}" if peer else "?"))
        out.append(Lane(group, group[0].segments, isn, "⇄".join(ends)))
    return out


def _names(obs: Observation) -> dict[tuple[str, int], str]:
    """Each socket's address -> its host's name (the peer's too, by the plan's addresses)."""
    name = {}
    for view in unique(obs.sockets):
        for address in (view.local, view.peer):
            host = obs.host_of(address) if address else None
            if host and address[0] != "0.0.0.0":
                name.setdefault(tuple(address), host)
    return name


def _lanes_timeline(obs: Observation, found: list[Lane], dead_ping: bool) -> list[str]:
    """Several connections: every line names its connection, seq/ack relative to its incarnation's ISNs."""
    name = _names(obs)
    events: list[tuple[float, str]] = []
    for lane in found:
        events += _segment_events(lane.segments, name, lane.isn, lane.label)
    segs = [s for lane in found for s in lane.segments]
    for view in unique(obs.sockets):
        events += _state_events(view.shown, view.states)
    return _told(obs, events, segs, dead_ping,
                 f"what happened, {len(found)} connections (each line names its connection by the sockets at its "
                 "two ends; segments as the connecting host's interface saw them, so a host's sends are stamped "
                 "at its interface, after its own link delay; seq/ack relative to each incarnation's ISNs; "
                 f"{_states_from(obs)}):")


def _states_from(obs: Observation) -> str:
    return ("states from the kernel's trace, request and TIME-WAIT sockets' from the samples" if obs.trace
            else "states from the samples")


def _call_events(obs: Observation) -> list[tuple[float, str]]:
    return [(e.start, f"{'':>4}{host} {_call_text(e)}") for host, entries in obs.steps.items()
            for e in entries if e.start is not None and not e.accepted and not e.snapshot]


def timeline(obs: Observation, dead_ping: bool = False) -> list[str]:
    """Every line of the account (the file gets all of them). `dead_ping`: the ping between the
    connecting hosts before the run got no answer. A run with several connections gets a lane each."""
    found = lanes(obs)
    if len(found) > 1:
        return _lanes_timeline(obs, found, dead_ping)
    segs = obs.segments.get(obs.client_host, []) if obs.client_host else []
    name = {obs.client: obs.client_host, obs.server: obs.server_host}
    isn = {}
    for s in segs:
        if "S" in s.flags:
            isn.setdefault((s.src, s.sport), s.seq)
    events = _segment_events(segs, name, isn)
    for host, spans in obs.states.items():
        events += _state_events(host, spans)
    return _told(obs, events, segs, dead_ping,
                 f"what happened (segments as {obs.client_host}'s interface saw them, outgoing ones after its own link "
                 f"delay; seq/ack relative to each side's ISN; {_states_from(obs)}):")


def _told(obs: Observation, events: list[tuple[float, str]], segs: list[Segment], dead_ping: bool,
          header: str) -> list[str]:
    """The events in time order from the first segment, under `header`; with no segment the calls
    tell the story, after why nothing was captured."""
    if not segs:
        events = events + _call_events(obs)
    if not events:
        return (_silence(obs, dead_ping) if not segs else []) + ["nothing was observed at all"]
    events.sort(key=lambda e: e[0])
    t0 = min(s.t for s in segs) if segs else events[0][0]
    lines = [f"{e[0] - t0:+9.3f} s  {e[1]}" for e in events]
    if not segs:
        return _silence(obs, dead_ping) + lines
    return ([DEAD_PING] if dead_ping else []) + [header] + lines


def terminal_copy(story: list[str], path: Path, limit: int = TERMINAL_LINES) -> list[str]:
    """The timeline as printed: its first lines, then where the whole of it is."""
    if len(story) <= limit:
        return story
    return story[:limit - 1] + [f"  ... {len(story) - limit + 1} more lines: the whole timeline is in {path}"]
