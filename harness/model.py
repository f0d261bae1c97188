"""Plain data passed between pipeline stages (no behaviour that touches the kernel)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


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


@dataclass(frozen=True)
class Step:
    """One socket call an agent makes at a time offset from the run's start."""
    at_s: float
    host: str
    action: str            # listen | connect | close
    port: int | None = None
    peer: str | None = None


@dataclass(frozen=True)
class PacketPattern:
    sender: str
    flags: str
    seq: str | None = None
    ack: str | None = None


@dataclass(frozen=True)
class TimingExpectation:
    name: str              # handshake_client | handshake_server
    equals: str            # "1rtt" or a duration as written
    within: str            # "5%" or a duration


@dataclass(frozen=True)
class Expectations:
    states: dict[str, tuple[str, ...]] = field(default_factory=dict)
    packets: tuple[PacketPattern, ...] = ()
    timing: tuple[TimingExpectation, ...] = ()


@dataclass(frozen=True)
class Experiment:
    name: str
    topology: Topology
    duration_s: float
    steps: tuple[Step, ...]
    sysctls: dict[str, dict[str, str]]       # host (or "all") -> {name: value}
    expect: Expectations
    source: Path
