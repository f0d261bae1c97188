"""State sequences: expected (typed at load, optional ones marked) against the sampled spans."""
from __future__ import annotations

import re

from harness.analyse.connection import Observation
from harness.analyse.states import StateSpan
from harness.judge.verdict import Marks, Verdict
from harness.model import StateExpectation


def matches(expected: tuple[StateExpectation, ...], seen: list[str]) -> bool:
    """True when `seen` is `expected` with some optional states left out."""
    pattern = "".join(f"(?:{re.escape(s.name)};)?" if s.optional else f"{re.escape(s.name)};" for s in expected)
    return re.fullmatch(pattern, "".join(f"{s};" for s in seen)) is not None


def blind_spots(expected: tuple[StateExpectation, ...], spans: list[StateSpan]) -> list[str]:
    """For each required state never seen, where the sampler could have missed it.

    The state must lie between the spans of its neighbours in the expected order; the gap between
    those spans is how long a state could have lasted unseen."""
    seen = [s.state for s in spans]
    notes = []
    for i, expected_state in enumerate(expected):
        state = expected_state.name
        if expected_state.optional or state in seen:
            continue
        before = next((spans[seen.index(p.name)] for p in reversed(expected[:i]) if p.name in seen), None)
        after = next((spans[seen.index(n.name)] for n in expected[i + 1:] if n.name in seen), None)
        # A listener's span runs on beside its children's: then only the gap just before `after`
        # was unsampled (never a negative "gap" from the listener's last sample).
        since = (before.last_seen if before and after and before.last_seen <= after.first_seen
                 else after.sample_before if after else None)
        if before and after and since is not None:
            gap = after.first_seen - since
            notes.append(f"{state} not seen: no sample between {before.state} and {after.state} for {gap * 1e3:.1f} ms, "
                         f"so it either did not happen or lasted less than that (sampling too coarse to tell; "
                         f"write ({state}) if it may be that short)")
        else:
            notes.append(f"{state} not seen")
    return notes


def change_resolution(spans: list[StateSpan]) -> float | None:
    """The widest sampling gap a sampled state change fell in: what bounds the observed times. (The
    sampler sleeps while nothing can change, so the gaps elsewhere say nothing about fidelity;
    a change the kernel's trace gave is exact.)"""
    gaps = [s.first_seen - s.sample_before for s in spans if s.sample_before is not None and s.start_source != "trace"]
    return max(gaps) if gaps else None


def how_seen(spans: list[StateSpan]) -> str:
    """Where the changes come from, for the verdict: traced (exact) and sampled (within a gap)."""
    traced = sum(1 for s in spans if s.start_source == "trace" and s.sample_before is not None)
    gap = change_resolution(spans)
    sampled = f"each sampled change seen within {gap * 1e3:.1f} ms" if gap is not None else ""
    if traced:
        exact = f"{traced} change{'s' if traced > 1 else ''} traced by the kernel"
        return f" ({exact}; {sampled})" if sampled else f" ({exact})"
    return f" (each change seen within {gap * 1e3:.1f} ms)" if gap is not None else ""


def judge_states(host: str, expected: tuple[StateExpectation, ...], obs: Observation) -> Verdict:
    """`host`: a host (its first connection, as always) or a named socket (that socket's own spans)."""
    view = obs.view(host)
    spans = view.states if view is not None else obs.states.get(host, [])
    seen = [span.state for span in spans]
    observed = " → ".join(seen) or "no state seen"
    passed = matches(expected, seen)
    observed += how_seen(spans)
    if not passed:
        observed += "".join(f"; {note}" for note in blind_spots(expected, spans))
    return Verdict(f"{host} states", " → ".join(map(str, expected)), observed, passed, marks=Marks((host,)))
