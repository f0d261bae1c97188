"""Was the experiment's timeline kept? Each step with `at:` against when its agent really started it.

Each socket is its own lane in its host's agent (harness.drive.agent): its steps run one after
another, while steps on other sockets of the same host run beside them. So a step whose `at:`
comes while the previous call on ITS socket still blocks starts late; calls on other sockets never
delay it (before lanes, 100 connects 10 ms apart on one host slipped by up to 3.9 s). Step logs
written before sockets had names carry none: there the lane is the whole host, as it then was.
The tolerance is packetdrill's default (4 ms), widened to 1 % of `at:` for long schedules: a sleep
of a minute on an emulated CPU may end a few ms late without anything being wrong.

A late step is always reported. It fails the run (the automatic verdict "steps started on time")
when the experiment depends on it: the step waited for its own lane's previous call (the file
asks for something the socket cannot do, every run) or it started after an event scheduled later
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
    socket: str | None = None          # its lane: the socket it acts on (None: a log without names)

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
            who = f"{self.host}'s socket {self.socket}" if self.socket else self.host
            text += f": {who} was still in its previous step, {self.blocked_by}"
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
        previous: dict[str | None, StepRecord] = {}     # lane -> its last call so far (the log is in order per lane)
        for entry in entries:
            if entry.accepted:
                continue
            before, previous[entry.socket] = previous.get(entry.socket), entry
            if entry.scheduled is None or entry.start is None:
                continue
            at_s, start_s = entry.scheduled - t0, entry.start - t0
            tol = tolerance_s(at_s)
            if start_s - at_s <= tol:
                continue
            overtaken = tuple(what for when, what in scheduled if at_s + tol < when < start_s)
            late.append(LateStep(host, entry.action, entry.index, at_s, start_s, _blocker(before, at_s + tol, t0),
                                 overtaken, entry.socket))
    return sorted(late, key=lambda s: s.at_s)


def _blocker(previous: StepRecord | None, due_s: float, t0: float) -> str | None:
    """The lane's previous call, if it still ran when the step was due (what held it back)."""
    if previous is None or (previous.end or 0) - t0 <= due_s:
        return None
    return (previous.action + (f" (line {previous.index})" if previous.index else "")
            + f", which ran until {previous.end - t0:+.3f} s")


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
