"""Was the experiment's timeline kept? Each step with `at:` against when its agent really started it.

A host runs its steps one after another, so a step whose `at:` comes while the host's previous call
still blocks starts late (100 connects 10 ms apart slipped by up to 3.9 s). The tolerance is
packetdrill's default (4 ms), widened to 1 % of `at:` for long schedules: a sleep of a minute on an
emulated CPU may end a few ms late without anything being wrong.

A late step is always reported. It fails the run (the automatic verdict "steps started on time")
when the experiment depends on it: the step waited for its own host's previous call (the file
asks for something the host cannot do, every run) or it started after an event scheduled later
than it (another step, a network step), so the order the file sets did not happen."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from harness.judge.verdict import Verdict
from harness.model import NetworkStep, Step, StepRecord

TOLERANCE_S = 0.004
TOLERANCE_SHARE = 0.01


def tolerance_s(at_s: float) -> float:
    return max(TOLERANCE_S, TOLERANCE_SHARE * at_s)


@dataclass(frozen=True)
class LateStep:
    host: str
    action: str
    line: int | None
    at_s: float          # scheduled, from t0
    start_s: float       # really started, from t0
    blocked_by: str | None = None      # "wait (line 11), which ran until +2.001 s"
    overtaken: tuple[str, ...] = ()    # events scheduled after it that came first

    @property
    def late_s(self) -> float:
        return self.start_s - self.at_s

    @property
    def breaks_order(self) -> bool:
        return bool(self.blocked_by or self.overtaken)

    def to_json(self) -> dict:
        """result.json's late_steps entry: the fields and how late it was."""
        return asdict(self) | {"late_s": self.late_s}

    def describe(self) -> str:
        text = (f"{self.host}'s {self.action}" + (f" (line {self.line})" if self.line else "")
                + f" started at {self.start_s:+.3f} s, {self.late_s * 1e3:.1f} ms after its at: {self.at_s:g}s")
        if self.blocked_by:
            text += f": {self.host} was still in its previous step, {self.blocked_by}"
        if self.overtaken:
            text += f"; it came after {', '.join(self.overtaken)}, scheduled later than it"
        return text


def late_steps(steps: tuple[Step, ...] | list[Step], network: tuple[NetworkStep, ...] | list[NetworkStep],
               steps_log: dict[str, list[StepRecord]], t0: float) -> list[LateStep]:
    """Every step that started later than its at: by more than the tolerance."""
    scheduled = [(s.at_s, f"{s.host}'s {s.action} (at: {s.at_s:g}s)") for s in steps if s.at_s is not None]
    scheduled += [(n.at_s, f"the network {n.action} step (at: {n.at_s:g}s)") for n in network if n.at_s is not None]
    late = []
    for host, entries in steps_log.items():
        calls = [e for e in entries if not e.accepted]
        for i, entry in enumerate(calls):
            if entry.scheduled is None or entry.start is None:
                continue
            at_s, start_s = entry.scheduled - t0, entry.start - t0
            tol = tolerance_s(at_s)
            if start_s - at_s <= tol:
                continue
            previous = calls[i - 1] if i else None
            blocked = None
            if previous and (previous.end or 0) - t0 > at_s + tol:
                blocked = (previous.action + (f" (line {previous.index})" if previous.index else "")
                           + f", which ran until {previous.end - t0:+.3f} s")
            overtaken = tuple(what for when, what in scheduled if at_s + tol < when < start_s)
            late.append(LateStep(host, entry.action, entry.index, at_s, start_s, blocked, overtaken))
    return sorted(late, key=lambda s: s.at_s)


def judge_schedule(late: list[LateStep]) -> Verdict | None:
    """The automatic verdict, present only when a step was late (there is then something to say)."""
    if not late:
        return None
    expected = f"each step starts within max({TOLERANCE_S * 1e3:g} ms, {TOLERANCE_SHARE:.0%} of at:) of its at:"
    failed = any(s.breaks_order for s in late)
    observed = "; ".join(s.describe() for s in late)
    if not failed:
        observed += " (no later event came first: the order the file sets was kept)"
    return Verdict("steps started on time", expected, observed, not failed)
