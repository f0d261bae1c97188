"""A verdict: one expectation, what was expected, what was observed, and whether they agree.
Like packetdrill's errors, it names the line of the experiment file the expectation is on."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    name: str
    expected: str
    observed: str
    passed: bool
    value: float | None = None     # the measured figure (seconds, for timings), for comparisons
    line: int | None = None        # the expectation's line in the experiment file (None: an automatic verdict)

    @property
    def title(self) -> str:
        """The verdict's name as the table prints it: 'client states (line 14)'."""
        return self.name + (f" (line {self.line})" if self.line else "")
