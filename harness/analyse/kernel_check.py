"""Check a host's kernel send capture against its interface capture (pure: segments in, problems out).

Why: "X sends F" is read from the kernel capture (pcap/<host>.kernel.pcap, mirrored before the
root qdisc); a capture that missed a segment, or stamped it at the wrong moment, would move a
verdict without a word. The interface capture is the reference: every TCP segment it shows leaving
the host must be in the kernel capture (same ports, seq, ack, flags, length, TCP timestamp), not
later, and, where the link's egress impairment is a plain delay (no jitter, no rate limit), earlier
by at least that delay less max(1 ms, 2 %) (netem never releases early; it may release late, on an
emulated CPU's host clock, which is the link's slop, not the capture's). A segment only in the kernel capture is allowed: the host's own
netem dropped it (loss, a full queue) or still held it when the captures stopped.
"""
from __future__ import annotations

from collections import defaultdict

from harness.analyse.segments import Segment
from harness.model import Impairment

MIN_TOLERANCE_S = 0.001
RELATIVE_TOLERANCE = 0.02
MAX_PROBLEMS = 5          # per interface; the rest are counted


def tolerance_s(delay_s: float) -> float:
    """How much shorter than the link's egress delay a kernel-to-interface gap may be."""
    return max(MIN_TOLERANCE_S, RELATIVE_TOLERANCE * delay_s)


def _key(s: Segment) -> tuple:
    """What makes two captures' records the same segment (tsval tells retransmissions apart)."""
    return (s.src, s.sport, s.dst, s.dport, s.flags, s.seq, s.ack, s.length, s.tsval)


def _describe(s: Segment) -> str:
    return f"{s.flags} {s.src}:{s.sport} > {s.dst}:{s.dport} seq {s.seq} ack {s.ack} len {s.length} at {s.t:.6f}"


def exact_delay_s(egress: Impairment | None) -> float | None:
    """The one delay every frame gets on this egress, or None when it varies (jitter, a rate limit)."""
    if egress is None:
        return 0.0
    if egress.jitter_s or egress.bw_mbit:
        return None
    return egress.delay_s


def check_kernel_sends(host: str, address: str, at_interface: list[Segment], kernel: list[Segment],
                       egress: Impairment | None) -> list[str]:
    """Problems with `host`'s kernel capture for the segments leaving it by one of its interfaces
    (`at_interface`: that interface's capture, both directions; `egress`: its impairment)."""
    delay = exact_delay_s(egress)
    pool: dict[tuple, list[Segment]] = defaultdict(list)
    for s in kernel:
        pool[_key(s)].append(s)
    problems = []
    for s in sorted((s for s in at_interface if s.src == address), key=lambda s: s.t):
        problem = _match(s, pool[_key(s)], delay)
        if problem:
            problems.append(f"{host}'s kernel capture: {problem}")
    return _capped(problems)


def _match(s: Segment, candidates: list[Segment], delay: float | None) -> str | None:
    """Take the kernel copy of `s` (the one nearest its expected moment, never later than `s`)
    out of `candidates`; say what is wrong with it, or None."""
    if not candidates:
        return f"{_describe(s)} left the interface but is not in it"
    earlier = [k for k in candidates if k.t <= s.t]
    if not earlier:
        return f"{_describe(s)} is stamped later in it ({min(k.t for k in candidates) - s.t:+.6f} s)"
    expected = s.t - (delay or 0.0)
    best = min(earlier, key=lambda k: abs(k.t - expected))
    candidates.remove(best)
    if delay is None:
        return None
    gap = s.t - best.t
    if gap >= delay - tolerance_s(delay):
        # A longer gap is the link's, not the capture's: netem's timer fired late (an emulated CPU
        # on the host clock: 1-30 ms), which the wire times show as they are.
        return None
    return (f"{_describe(s)} is only {gap * 1e3:.3f} ms earlier in it, the link's egress delay is "
            f"{delay * 1e3:g} ms (tolerance {tolerance_s(delay) * 1e3:g} ms): netem never lets a frame go early, "
            "so the kernel capture stamped it late or holds another copy")


def _capped(problems: list[str]) -> list[str]:
    if len(problems) <= MAX_PROBLEMS:
        return problems
    return problems[:MAX_PROBLEMS] + [f"… and {len(problems) - MAX_PROBLEMS} more such segment(s)"]
