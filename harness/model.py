"""Plain data passed between pipeline stages (no behaviour that touches the kernel)."""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

# The kernel's TCP state numbers (include/net/tcp_states.h) under ss's names; 7, TCP_CLOSE, is the
# CLOSED of the expectations. Shared by the state sampler and the agents' state waits.
TCP_STATE_NAMES = {1: "ESTAB", 2: "SYN-SENT", 3: "SYN-RECV", 4: "FIN-WAIT-1", 5: "FIN-WAIT-2", 6: "TIME-WAIT",
                   7: "CLOSED", 8: "CLOSE-WAIT", 9: "LAST-ACK", 10: "LISTEN", 11: "CLOSING"}


@dataclass(frozen=True)
class Impairment:
    """What netem/htb apply to one direction of a link."""
    delay_s: float = 0.0
    jitter_s: float = 0.0
    loss_pct: float = 0.0
    bw_mbit: float | None = None
    queue: int | None = None

    @property
    def needs_netem(self) -> bool:
        return bool(self.delay_s or self.jitter_s or self.loss_pct or self.queue)


@dataclass(frozen=True)
class Link:
    a: str
    b: str
    a_to_b: Impairment
    b_to_a: Impairment


@dataclass(frozen=True)
class Topology:
    name: str
    hosts: tuple[str, ...]
    switches: tuple[str, ...]
    links: tuple[Link, ...]
    source: Path
    switch_kind: str = "bridge"     # bridge (Linux bridge) | ovs (Open vSwitch, standalone): no controller

    def path(self, a: str, b: str) -> list[str]:
        """The nodes from a to b (breadth-first over the links), or [] if b is unreachable. The loader
        refuses loops, so this is the only path."""
        adj: dict[str, list[str]] = {}
        for link in self.links:
            adj.setdefault(link.a, []).append(link.b)
            adj.setdefault(link.b, []).append(link.a)
        previous: dict[str, str | None] = {a: None}
        queue = deque([a])
        while queue:
            node = queue.popleft()
            for nxt in adj.get(node, []):
                if nxt not in previous:
                    previous[nxt] = node
                    queue.append(nxt)
        if b not in previous:
            return []
        path = [b]
        while path[-1] != a:
            path.append(previous[path[-1]])
        return path[::-1]


@dataclass(frozen=True)
class Step:
    """One thing a host's agent does: at t0 + at_s if given, else when its previous step returns."""
    host: str
    action: str                 # listen | connect | send | recv | shutdown | close | abort | wait
    index: int                  # position in the experiment file, as reported in the step log
    at_s: float | None = None
    port: int | None = None
    peer: str | None = None
    size: int | None = None     # send/recv: bytes (recv None: until EOF)
    message: str | None = None  # send: this text instead of `size` bytes
    how: str | None = None      # shutdown: write | read | both
    until: str | None = None    # wait: connected | peer-closed | state:NAME
    seconds: float | None = None  # wait: a duration


@dataclass(frozen=True)
class PacketMatch:
    """Which segments a network step acts on (every field given must match)."""
    flags: str | None = None    # exact set of S F R A U (PSH ignored), e.g. S, SA, A
    sport: int | None = None
    dport: int | None = None


@dataclass(frozen=True)
class NetworkStep:
    """The network acting on chosen segments from `sender` to `receiver`, at the egress port of
    the first switch on the path (never in the sender's own qdisc: Linux would not retransmit a
    segment still queued on its host)."""
    action: str                 # hold | drop | delay | duplicate
    sender: str
    receiver: str
    match: PacketMatch
    index: int                  # the step's line in the experiment file
    at_s: float | None = None   # when the rule is switched on (None: before the timeline starts)
    nth: int | None = None      # only the Nth matching segment...
    count: int | None = None    # ...or the first N; neither: every one
    extra_s: float | None = None  # hold/delay: time added on top of the link's own delay


@dataclass(frozen=True)
class PacketPattern:
    sender: str
    flags: str
    seq: str | None = None
    ack: str | None = None


@dataclass(frozen=True)
class PacketChoice:
    """Alternative segment sequences (e.g. a four- or three-segment close); the report names the one seen."""
    options: tuple[tuple[str, tuple[PacketPattern, ...]], ...]


@dataclass(frozen=True)
class Event:
    """Something observed at a moment: `client enters TIME-WAIT`, `server sends F#2`, `client calls close`."""
    host: str
    verb: str              # enters | leaves | sends | receives | calls | returns
    what: str              # a state, TCP flags, or a step action
    nth: int = 1
    text: str = ""


@dataclass(frozen=True)
class TimeSpec:
    """A time as an expectation writes it: fixed seconds, or N times the path RTT, which is known
    only when the run's topology is (parsed once at load; the judge only resolves it)."""
    seconds: float = 0.0
    rtts: float | None = None   # `N rtt`: seconds is then unused
    text: str = ""              # as written, for reports

    def resolve(self, rtt_s: float) -> float:
        return self.rtts * rtt_s if self.rtts is not None else self.seconds

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Tolerance:
    """`within:` of an expected time: a fixed duration or a percentage of the expected value."""
    seconds: float | None = None
    percent: float | None = None
    text: str = ""

    def of(self, expected_s: float) -> float:
        return abs(expected_s) * self.percent / 100 if self.percent is not None else float(self.seconds or 0.0)

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class TimingExpectation:
    name: str                   # handshake_client | handshake_server | any name with start/end events
    equals: TimeSpec | None     # a duration or N rtt, with `within`...
    within: Tolerance | None
    start: Event | None = None
    end: Event | None = None
    between: tuple[TimeSpec, TimeSpec] | None = None   # ...or a range [low, high]


@dataclass(frozen=True)
class Expectations:
    states: dict[str, tuple[str, ...]] = field(default_factory=dict)   # "(FIN-WAIT-1)" = optional
    packets: tuple[PacketPattern | PacketChoice, ...] = ()
    timing: tuple[TimingExpectation, ...] = ()
    received: dict[str, int] = field(default_factory=dict)             # host -> bytes its reads got
    accepted: dict[str, int] = field(default_factory=dict)             # host -> connections it accepted
    errors: dict[str, tuple[str, ...]] = field(default_factory=dict)   # host -> errno names its calls got


@dataclass(frozen=True)
class Experiment:
    name: str
    topology: Topology
    duration_s: float
    steps: tuple[Step, ...]
    sysctls: dict[str, dict[str, str]]       # host (or "all") -> {name: value}
    expect: Expectations
    source: Path
    network: tuple[NetworkStep, ...] = ()
    about: str = ""                          # what the experiment shows, printed with the verdicts
