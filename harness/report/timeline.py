"""A readable account of one run: the segments at the client's interface and each side's state
changes, in time order, with seq/ack relative to each side's ISN (as Wireshark shows them)."""
from __future__ import annotations

from harness.analyse.connection import Observation

MAX_LINES = 60


def timeline(obs: Observation) -> list[str]:
    segs = obs.segments.get(obs.client_host, [])
    if not segs:
        return ["no segment of the connection was captured at the client's interface"]
    name = {obs.client: obs.client_host, obs.server: obs.server_host}
    isn = {}
    for s in segs:
        if "S" in s.flags:
            isn.setdefault((s.src, s.sport), s.seq)
    t0 = segs[0].t
    events: list[tuple[float, str]] = []
    run = None   # (sender, count, bytes, first line index) for collapsing data bursts
    for s in segs:
        sender = name.get((s.src, s.sport), f"{s.src}:{s.sport}")
        receiver = name.get((s.dst, s.dport), f"{s.dst}:{s.dport}")
        if s.length and s.flags.replace("P", "") == "A" and run and run[0] == sender:
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
    for host, spans in obs.states.items():
        for span in spans:
            if span.state != "LISTEN":
                events.append((span.first_seen, f"{'':>4}{host} is {span.state} (first sample)"))
            ended_early = span.sample_after is not None and span.sample_after < (span.timer_due or 0) - 0.5
            if span.state == "TIME-WAIT" and span.timer_due and not ended_early:
                events.append((span.timer_due, f"{'':>4}{host}'s TIME-WAIT timer due, by the kernel's own count "
                                               f"({span.timer_due - span.first_seen:.3f} s after the first TIME-WAIT sample)"))
    events.sort(key=lambda e: e[0])
    lines = [f"{e[0] - t0:+9.3f} s  {e[1]}" for e in events]
    if len(lines) > MAX_LINES:
        lines = lines[:MAX_LINES - 1] + [f"... {len(lines) - MAX_LINES + 1} more lines in timeline.txt"]
    return [f"what happened (segments as {obs.client_host}'s interface saw them, outgoing ones after its own link "
            "delay; seq/ack relative to each side's ISN; states from the samples):"] + lines
