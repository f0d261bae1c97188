"""Segment patterns, in order, against the segments seen at the client's interface.

Names bind on first use (`seq: x`), later terms must agree (`ack: x+1`). A pattern matches the
next segment from its sender that fits its flags (PSH ignored, but flags written with P need
data), len: and options: (harness.analyse.segments.segment_fits) and whose bound terms agree; an
`either` tries its named alternatives and the report says which one happened."""
from __future__ import annotations

from harness.analyse.segments import Segment, needs_data, segment_fits, shape_misses, shown_options   # needs_data: harness.load.segment_fields's
from harness.judge.verdict import Marks
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
    """Position after the match, the segment (None if no match), and a note on the nearest miss:
    the first segment of the same flags whose seq and ack agreed (only its len/options did not),
    else the first of the same flags."""
    miss = only_shape = ""
    for i in range(pos, len(segments)):
        seg = segments[i]
        if (seg.src, seg.sport) != addr.get(pattern.sender) or flag_set(seg.flags) != flag_set(pattern.flags):
            continue
        why = _agrees(pattern, seg, env)
        if why is None and segment_fits(seg, pattern.flags, pattern.length, pattern.options):
            _bind(pattern, seg, env)
            return i + 1, seg, ""
        shape = "; ".join(shape_misses(seg, pattern.flags, pattern.length, pattern.options))
        seen = f"{pattern.sender} {seg.flags} seq={seg.seq} ack={seg.ack}"
        if why is None:
            only_shape = only_shape or f" (nearest: {seen}, only its length/options differ: {shape})"
        miss = miss or f" (nearest: {seen}: {why}" + (f"; {shape}" if shape else "") + ")"
    return pos, None, only_shape or miss


def _sequence(patterns, segments, pos, env, addr, lines, matched) -> tuple[bool, int]:
    for pattern in patterns:
        if isinstance(pattern, PacketChoice):
            for name, option in pattern.options:
                trial_env, trial_lines, trial_matched = dict(env), [], []
                ok, trial_pos = _sequence(option, segments, pos, trial_env, addr, trial_lines, trial_matched)
                if ok:
                    env.update(trial_env)
                    matched += trial_matched
                    lines.append(f"[{name}] " + "; ".join(trial_lines))
                    pos = trial_pos
                    break
            else:
                lines.append(f"none of: {', '.join(name for name, _ in pattern.options)}")
                return False, pos
            continue
        pos, seg, miss = _one(pattern, segments, pos, env, addr)
        if seg is None:
            lines.append(f"{_shown(pattern)}: not seen{miss}")
            return False, pos
        matched.append(seg)
        lines.append(f"{pattern.sender} {seg.flags} seq={seg.seq} ack={seg.ack}"
                     + (f" len={seg.length}" if pattern.length is not None or needs_data(pattern.flags) else "")
                     + (f" options={shown_options(seg)}" if pattern.options else ""))
    return True, pos


def match_packets(patterns: tuple, segments: list[Segment], addr: dict[str, tuple[str, int]]) -> tuple[bool, str, Marks]:
    """Whether the patterns match in order, what was seen, and the segments they matched."""
    lines: list[str] = []
    matched: list[Segment] = []
    ok, _ = _sequence(patterns, segments, 0, {}, addr, lines, matched)
    return ok, "; ".join(lines), Marks(segments=tuple((s.src, s.sport, s.t) for s in matched))


def describe(patterns: tuple) -> str:
    parts = []
    for p in patterns:
        if isinstance(p, PacketChoice):
            parts.append("either " + " | ".join(f"[{name}] {describe(option)}" for name, option in p.options))
        else:
            parts.append(_shown(p))
    return "; ".join(parts)


def _shown(p: PacketPattern) -> str:
    """A pattern as the verdict's expected side says it: `client PA ack=x+1 len=1000 options=[ts, no sack]`."""
    return (f"{p.sender} {p.flags}" + (f" seq={p.seq}" if p.seq else "") + (f" ack={p.ack}" if p.ack else "")
            + (f" len={p.length}" if p.length is not None else "")
            + (f" options=[{', '.join(map(str, p.options))}]" if p.options else ""))
