"""A readable account of one run: the segments at the client's interface and each side's state
changes, in time order, with seq/ack relative to each side's ISN (as Wireshark shows them).

timeline.txt holds all of it; only the terminal copy is shortened (terminal_copy), saying where
the rest is. When nothing of the connection was captured, it says what did happen: which calls
ran, whether the ping before the run was answered, and where the segments must have been lost."""
from __future__ import annotations

from pathlib import Path

from harness.analyse.connection import Observation
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


def timeline(obs: Observation, dead_ping: bool = False) -> list[str]:
    """Every line of the account (the file gets all of them). `dead_ping`: the ping between the
    connecting hosts before the run got no answer."""
    segs = obs.segments.get(obs.client_host, []) if obs.client_host else []
    name = {obs.client: obs.client_host, obs.server: obs.server_host}
    isn = {}
    for s in segs:
        if "S" in s.flags:
            isn.setdefault((s.src, s.sport), s.seq)
    events: list[tuple[float, str]] = []
    run = None   # (sender, count, bytes, first line index) for collapsing data bursts
    for s in segs:
        sender = name.get((s.src, s.sport), f"{s.src}:{s.sport}")
        receiver = name.get((s.dst, s.dport), f"{s.dst}:{s.dport}")
        if s.length and flag_set(s.flags) == "A" and run and run[0] == sender:
            run = (sender, run[1] + 1, run[2] + s.length, run[3])
            events[run[3]] = (events[run[3]][0], f"{sender} → {receiver}  {run[1]} data segments, {run[2]} bytes")
            continue
        seq = (s.seq - isn.get((s.src, s.sport), 0)) % 2**32
        ack = (s.ack - isn.get((s.dst, s.dport), 0)) % 2**32 if "A" in s.flags else None
        text = f"{sender} → {receiver}  {s.flags:<3} seq={seq}" + (f" ack={ack}" if ack is not None else "")
        if s.length:
            text += f" len={s.length}"
        events.append((s.t, text))
        run = (sender, 1, s.length, len(events) - 1) if s.length else None
    if not segs:       # no packets to tell the story: the calls do
        events += [(e.start, f"{'':>4}{host} {_call_text(e)}") for host, entries in obs.steps.items()
                   for e in entries if e.start is not None and not e.accepted]
    for host, spans in obs.states.items():
        for span in spans:
            if span.state != "LISTEN":
                events.append((span.first_seen, f"{'':>4}{host} is {span.state} (first sample)"))
            ended_early = span.sample_after is not None and span.sample_after < (span.timer_due or 0) - 0.5
            if span.state == "TIME-WAIT" and span.timer_due and not ended_early:
                rearmed = (f"; the kernel re-armed it {span.timer_rearmed} time(s), this is the last"
                           if span.timer_rearmed else "")
                events.append((span.timer_due, f"{'':>4}{host}'s TIME-WAIT timer due, by the kernel's own count "
                                               f"({span.timer_due - span.first_seen:.3f} s after the first TIME-WAIT sample{rearmed})"))
    if not events:
        return (_silence(obs, dead_ping) if not segs else []) + ["nothing was observed at all"]
    events.sort(key=lambda e: e[0])
    t0 = segs[0].t if segs else events[0][0]
    lines = [f"{e[0] - t0:+9.3f} s  {e[1]}" for e in events]
    if not segs:
        return _silence(obs, dead_ping) + lines
    head = [DEAD_PING] if dead_ping else []
    return head + [f"what happened (segments as {obs.client_host}'s interface saw them, outgoing ones after its own link "
                   "delay; seq/ack relative to each side's ISN; states from the samples):"] + lines


def terminal_copy(story: list[str], path: Path, limit: int = TERMINAL_LINES) -> list[str]:
    """The timeline as printed: its first lines, then where the whole of it is."""
    if len(story) <= limit:
        return story
    return story[:limit - 1] + [f"  ... {len(story) - limit + 1} more lines: the whole timeline is in {path}"]
