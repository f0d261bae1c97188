"""Segment patterns, in order, against the segments seen at the client's interface.

Names bind on first use (`seq: x`), later terms must agree (`ack: x+1`). A pattern matches the
next segment from its sender with the same flags (PSH ignored) whose bound terms agree; an
`either` tries its named alternatives and the report says which one happened."""
from __future__ import annotations

from harness.analyse.segments import Segment
from harness.model import PacketChoice, PacketPattern, flag_set


def _agrees(pattern: PacketPattern, seg: Segment, env: dict[str, int]) -> str | None:
    """None if the segment fits the pattern under env, else what disagrees."""
    for field in ("seq", "ack"):
        term = getattr(pattern, field)
        if term is None or term.binds and term.name not in env:
            continue
        want = term.value(env)
        if want != getattr(seg, field):
            return f"{field} should be {term} = {want}"
    return None


def _bind(pattern: PacketPattern, seg: Segment, env: dict[str, int]) -> None:
    for field in ("seq", "ack"):
        term = getattr(pattern, field)
        if term and term.binds and term.name not in env:
            env[term.name] = getattr(seg, field)


def _one(pattern: PacketPattern, segments: list[Segment], pos: int, env: dict[str, int],
         addr: dict[str, tuple[str, int]]) -> tuple[int, Segment | None, str]:
    """Position after the match, the segment (None if no match), and a note on the nearest miss."""
    miss = ""
    for i in range(pos, len(segments)):
        seg = segments[i]
        if (seg.src, seg.sport) != addr.get(pattern.sender) or flag_set(seg.flags) != flag_set(pattern.flags):
            continue
        why = _agrees(pattern, seg, env)
        if why is None:
            _bind(pattern, seg, env)
            return i + 1, seg, ""
        miss = miss or f" (nearest: {pattern.sender} {seg.flags} seq={seg.seq} ack={seg.ack}: {why})"
    return pos, None, miss


def _sequence(patterns, segments, pos, env, addr, lines) -> tuple[bool, int]:
    for pattern in patterns:
        if isinstance(pattern, PacketChoice):
            for name, option in pattern.options:
                trial_env, trial_lines = dict(env), []
                ok, trial_pos = _sequence(option, segments, pos, trial_env, addr, trial_lines)
                if ok:
                    env.update(trial_env)
                    lines.append(f"[{name}] " + "; ".join(trial_lines))
                    pos = trial_pos
                    break
            else:
                lines.append(f"none of: {', '.join(name for name, _ in pattern.options)}")
                return False, pos
            continue
        pos, seg, miss = _one(pattern, segments, pos, env, addr)
        if seg is None:
            lines.append(f"{pattern.sender} {pattern.flags}"
                         + "".join(f" {f}={getattr(pattern, f)}" for f in ("seq", "ack") if getattr(pattern, f))
                         + f": not seen{miss}")
            return False, pos
        lines.append(f"{pattern.sender} {seg.flags} seq={seg.seq} ack={seg.ack}")
    return True, pos


def match_packets(patterns: tuple, segments: list[Segment], addr: dict[str, tuple[str, int]]) -> tuple[bool, str]:
    lines: list[str] = []
    ok, _ = _sequence(patterns, segments, 0, {}, addr, lines)
    return ok, "; ".join(lines)


def describe(patterns: tuple) -> str:
    parts = []
    for p in patterns:
        if isinstance(p, PacketChoice):
            parts.append("either " + " | ".join(f"[{name}] {describe(option)}" for name, option in p.options))
        else:
            parts.append(f"{p.sender} {p.flags}" + (f" seq={p.seq}" if p.seq else "") + (f" ack={p.ack}" if p.ack else ""))
    return "; ".join(parts)
