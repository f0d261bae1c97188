"""A verdict: one expectation, what was expected, what was observed, and whether they agree."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    name: str
    expected: str
    observed: str
    passed: bool
    value: float | None = None     # the measured figure (seconds, for timings), for comparisons
