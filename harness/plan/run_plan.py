"""One run, decided before anything is built: folders, target, addresses, agents' steps, where
network steps act, the RTTs the judge uses. The runner only carries this out; it never plans."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from harness.model import AgentStep, Experiment, NetworkStep
from harness.plan.folders import run_id
from harness.plan.paths import host_addresses, path_rtt_s, rule_placement

STARTUP_TIMEOUT_S = 120.0     # how long a helper (tcpdump, sampler, agent) may take to start
RUN_SUBFOLDERS = ("pcap", "samples", "steps")


@dataclass(frozen=True)
class GuestSettings:
    """What a run inside a VM is told by the host (through harness.targets.protocol's plan file),
    instead of reading environment variables: where it works and what it calls its target."""
    stage: Path | None = None     # a folder in guest memory to work in; the run folder is published at the end
    target: str = "local"         # the label in result.json: local | vm/virtual-clock | vm/host-clock
    observer: str = "trace"       # trace: kernel tracepoints + a sparse sampler; samples: the sampler alone, dense

    @property
    def virtual_clock(self) -> bool:
        return self.target.endswith("virtual-clock")


LOCAL = GuestSettings()


@dataclass(frozen=True)
class StepPlacement:
    """Where a network step acts, by node names: on `switch`, for segments arriving from
    `ingress_node` and leaving towards `egress_node` (the lab maps these to its port names)."""
    step: NetworkStep
    switch: str
    ingress_node: str
    egress_node: str
    src_ip: str
    dst_ip: str


@dataclass(frozen=True)
class RunPlan:
    experiment: Experiment
    final_dir: Path                    # where the run's folder ends up
    work_dir: Path                     # where it is written during the run (final_dir unless staged)
    target: str                        # local | vm/virtual-clock | vm/host-clock
    kernel: str                        # the release the run executes on
    in_vm: bool                        # everything dies with the VM: no guardian process needed
    startup_timeout_s: float | None    # None on the virtual clock: wait for the helper or its death
    addresses: dict[str, str]          # host -> IPv4 address the lab gives it
    agents: dict[str, tuple[AgentStep, ...]]   # host -> its steps, as its agent performs them
    connect_pair: tuple[str, str] | None   # the first connect step's (client, server), pinged before the run
    rtts: dict[tuple[str, str], float] = field(repr=False)   # configured RTT of every host pair
    sampler_linger_s: float = 0.3      # how long the sampler stays dense after any activity
    in_flight_s: float = 0.0           # the longest a segment can take to cross (slowest RTT, holds)
    network_steps: tuple[StepPlacement, ...] = ()
    observer: str = "trace"            # GuestSettings.observer

    @property
    def staged(self) -> bool:
        return self.work_dir != self.final_dir

    def configured_rtt_s(self, a: str, b: str) -> float:
        """The configured RTT between two hosts (0 for one host with itself or an unknown pair)."""
        return self.rtts.get((a, b), 0.0)

    def make_folders(self) -> None:
        """The run's folders and their sub-folders, made when the run starts (not when planned)."""
        for folder in {self.final_dir, self.work_dir}:
            for sub in RUN_SUBFOLDERS:
                (folder / sub).mkdir(parents=True, exist_ok=True)


def plan_run(experiment: Experiment, results_root: Path, run_dir: Path | None = None,
             guest: GuestSettings = LOCAL) -> RunPlan:
    """Everything the runner needs, from the experiment and where its results go (`run_dir`: a
    matrix cell's exact folder, else results_root/<experiment>/<run-id>/)."""
    final_dir = run_dir or results_root / experiment.name / run_id()
    hosts = experiment.topology.hosts
    addresses = host_addresses(experiment)
    rtts = {(a, b): path_rtt_s(experiment, a, b) for a in hosts for b in hosts if a != b}
    connect = next((s for s in experiment.steps if s.action == "connect"), None)
    flight = in_flight_s(experiment, rtts)
    return RunPlan(
        experiment=experiment, final_dir=final_dir,
        work_dir=guest.stage / "run" if guest.stage else final_dir,
        target=guest.target, kernel=os.uname().release, in_vm=guest.stage is not None,
        startup_timeout_s=None if guest.virtual_clock else STARTUP_TIMEOUT_S,
        addresses=addresses, agents=agent_plans(experiment, addresses),
        connect_pair=(connect.host, connect.peer) if connect else None, rtts=rtts,
        sampler_linger_s=SAMPLER_MARGIN_S + flight, in_flight_s=flight,
        network_steps=tuple(place_network_steps(experiment, addresses)), observer=guest.observer)


def agent_plans(experiment: Experiment, ips: dict[str, str]) -> dict[str, tuple[AgentStep, ...]]:
    """Each host's steps in file order, with addresses resolved, as the agent performs them (each on
    its socket's lane, with the socket's set-up: the agent decides nothing the experiment did not say)."""
    return {host: tuple(AgentStep(step.action, step.index, step.at_s, step.port, ips[step.host],
                                  ips[step.peer] if step.peer else None, step.size, step.message, step.how,
                                  step.until, step.seconds, step.socket, step.local_port, step.reuseaddr,
                                  step.reuseport, step.options, step.blocking)
                        for step in experiment.steps if step.host == host)
            for host in experiment.topology.hosts}


def place_network_steps(experiment: Experiment, ips: dict[str, str]) -> list[StepPlacement]:
    placed = []
    for step in experiment.network:
        switch, before, after = rule_placement(experiment, step.sender, step.receiver)
        placed.append(StepPlacement(step, switch, before, after, ips[step.sender], ips[step.receiver]))
    return placed


SAMPLER_MARGIN_S = 0.3    # the sampler stays dense this long beyond a segment's crossing


def in_flight_s(experiment: Experiment, rtts: dict[tuple[str, str], float]) -> float:
    """The longest a segment can take to cross the network: the slowest path's RTT, plus any hold
    or delay step. The sampler stays dense that long after a segment or a call anywhere (plus
    SAMPLER_MARGIN_S; traced, only segments count and the margin is smaller: runner)."""
    held = [step.extra_s or 0.0 for step in experiment.network]
    return max(rtts.values(), default=0.0) + max(held, default=0.0)
