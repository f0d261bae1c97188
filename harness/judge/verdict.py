"""A verdict: one expectation, what was expected, what was observed, and whether they agree.
Like packetdrill's errors, it names the line of the experiment file the expectation is on."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Marks:
    """What a verdict judged, so a report can point at it: the hosts or sockets it is about, the
    interval it measured (absolute times, the captures' clock), the segments it matched
    ((source address, source port, capture time) at the capture it read)."""
    subjects: tuple[str, ...] = ()
    interval: tuple[float, float] | None = None
    segments: tuple[tuple[str, int, float], ...] = ()

    def __or__(self, other: Marks | None) -> Marks:
        """Both verdicts' marks (a group's verdict marks what each member's did)."""
        if other is None:
            return self
        interval = self.interval or other.interval
        if self.interval and other.interval:
            interval = (min(self.interval[0], other.interval[0]), max(self.interval[1], other.interval[1]))
        return Marks(self.subjects + tuple(s for s in other.subjects if s not in self.subjects), interval,
                     self.segments + other.segments)


@dataclass(frozen=True)
class Verdict:
    name: str
    expected: str
    observed: str
    passed: bool
    value: float | None = None     # the measured figure (seconds, for timings), for comparisons
    line: int | None = None        # the expectation's line in the experiment file (None: an automatic verdict)
    marks: Marks | None = None     # what it judged (report.html highlights it)
    expected_range: tuple[float, float] | None = None   # a timing's accepted values, seconds (for plots)

    @property
    def title(self) -> str:
        """The verdict's name as the table prints it: 'client states (line 14)'."""
        return self.name + (f" (line {self.line})" if self.line else "")
