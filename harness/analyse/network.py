"""Did each network step hit exactly the segments it should, and did they come out as it said?

Compares the segments arriving at the switch (capture on the port facing the sender) with those
leaving the rule's port (captured after its qdisc), and with the rule's own counter. A duplicated
segment must leave exactly twice, both copies after the link's delay: the copy is made before the
port's qdisc, so it must not skip the link."""
from __future__ import annotations

from dataclasses import dataclass, field

from harness.analyse.segments import Segment, segment_fits
from harness.model import NetworkStep

TOLERANCE_S = 0.005


@dataclass
class PickedSegment:
    """A segment the step's rule was to pick: when it arrived at the switch, when each copy left."""
    flags: str
    seq: int
    tsval: int | None
    arrived: float
    left: list[float]
    held_s: float | None = None                 # hold/delay: time it spent beyond the link's delay
    copies_after_s: list[float] | None = None   # duplicate: each copy's time from arriving to leaving

    def to_json(self) -> dict:
        out = {"flags": self.flags, "seq": self.seq, "tsval": self.tsval, "arrived": self.arrived, "left": self.left}
        if self.held_s is not None:
            out["held_s"] = self.held_s
        if self.copies_after_s is not None:
            out["copies_after_s"] = self.copies_after_s
        return out


@dataclass
class NetworkCheck:
    """What one network step did: segments matching it at the switch, picked by the capture's
    count and by its rule's counter, each picked one's fate, and every disagreement with the file."""
    line: int                    # the step's line in the experiment file
    action: str
    sender: str
    receiver: str
    matching: int
    picked: int
    counted: int
    segments: list[PickedSegment] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    injected: list[dict] = field(default_factory=list)   # inject: the injector's record (harness.analyse.injected)

    @property
    def passed(self) -> bool:
        return not self.problems

    def problem_lines(self) -> list[str]:
        """Each problem, naming the step's line (how the run's error lists them)."""
        return [f"line {self.line} ({self.action} {self.sender} → {self.receiver}): {p}" for p in self.problems]

    def to_json(self) -> dict:
        """result.json's `network` entry (the shape it had as a dict: from/to, segments as objects)."""
        return {"line": self.line, "action": self.action, "from": self.sender, "to": self.receiver,
                "matching": self.matching, "picked": self.picked, "counted": self.counted,
                "segments": [s.to_json() for s in self.segments], "problems": list(self.problems)} \
            | ({"injected": self.injected} if self.injected else {})


def matches(step: NetworkStep, seg: Segment, src_ip: str, dst_ip: str) -> bool:
    """Does the step's match pick this segment, as its nft rule does (harness.lab.packet_rules):
    direction, ports, then flags, len: and options: as packet patterns take them (segment_fits)."""
    if (seg.src, seg.dst) != (src_ip, dst_ip):
        return False
    match = step.match
    if match.sport is not None and seg.sport != match.sport:
        return False
    if match.dport is not None and seg.dport != match.dport:
        return False
    return segment_fits(seg, match.flags, match.length, match.options)


def _key(seg: Segment) -> tuple:
    return (seg.sport, seg.dport, seg.flags, seg.seq, seg.ack, seg.length, seg.tsval)


def check_step(step: NetworkStep, counted: int, arriving: list[Segment], leaving: list[Segment],
               src_ip: str, dst_ip: str, link_delay_s: float,
               switched_on: tuple[float, float] | None = None) -> NetworkCheck:
    """A report: what the rule picked, when each picked segment left, and any problem.
    `switched_on`: (before, after) a timed step's rule went in; only segments reaching the switch
    after it are the step's (one arriving while nft ran could have gone either way: a problem)."""
    seen = every = [s for s in arriving if matches(step, s, src_ip, dst_ip)]    # every: twins before the rule too
    problems: list[str] = []
    if switched_on is not None:
        before, after = switched_on
        unsure = [s for s in seen if before <= s.t < after]
        if unsure:
            problems.append(f"{len(unsure)} matching segment(s) reached its switch or router while its rule was being switched on "
                            f"({after - before:.3f} s window): nothing else should be in flight then")
        seen = [s for s in seen if s.t >= after]
    if step.nth:
        picked = seen[step.nth - 1:step.nth]
    elif step.count:
        picked = seen[:step.count]
    else:
        picked = seen
    out = [s for s in leaving if matches(step, s, src_ip, dst_ip)]
    details: list[PickedSegment] = []
    if not seen:
        problems.append("no segment it matches reached its switch or router, so it acted on nothing")
    if counted != len(picked):
        problems.append(f"its rule picked {counted} segment(s) but the capture shows {len(picked)} to pick "
                        f"out of {len(seen)} matching")
    for seg in picked:
        # A retransmission without timestamps is byte for byte the segment it repeats: count the
        # twins that were not picked (each leaves once, on time) and judge the copy nearest to
        # when the picked one should have left.
        copies = [o for o in out if _key(o) == _key(seg)]
        unpicked_twins = sum(1 for s in every if _key(s) == _key(seg) and s not in picked)
        entry = PickedSegment(seg.flags, seg.seq, seg.tsval, seg.t, [o.t for o in copies])
        details.append(entry)
        twins_note = f" (with {unpicked_twins} identical unpicked copy)" if unpicked_twins else ""
        if step.action == "drop":
            if len(copies) > unpicked_twins:
                problems.append(f"{seg.flags} seq={seg.seq} was to be dropped but left its switch or router{twins_note}")
            continue
        want = (2 if step.action == "duplicate" else 1) * sum(1 for s in picked if _key(s) == _key(seg)) + unpicked_twins
        if len(copies) != want:
            problems.append(f"{seg.flags} seq={seg.seq} left its switch or router {len(copies)} time(s), expected {want}{twins_note}")
            continue
        expected = link_delay_s + (step.extra_s or 0.0)
        # Its own copies are the ones nearest to when it should have left (twins leave at their
        # own time): one for a hold or delay, two for a duplicate, each carrying the link's delay.
        own = sorted((o.t - seg.t for o in copies), key=lambda d: abs(d - expected))[:2 if step.action == "duplicate" else 1]
        if step.action == "duplicate":
            entry.copies_after_s = sorted(own)
        else:
            entry.held_s = own[0] - link_delay_s
        for late in own:
            if abs(late - expected) > max(TOLERANCE_S, 0.02 * expected):
                what = "a copy of " if step.action == "duplicate" else ""
                problems.append(f"{what}{seg.flags} seq={seg.seq} left {late:.3f} s after it arrived, expected {expected:.3f} s")
    return NetworkCheck(step.index, step.action, step.sender, step.receiver, len(seen), len(picked), counted,
                        details, problems)
