"""Paths through the topology: configured RTTs, where a network step acts, the hosts' addresses."""
from __future__ import annotations

from ipaddress import IPv4Address

from harness.errors import UserError
from harness.model import Experiment

# Mininet's default address plan (ipBase 10.0.0.0/8, one address per host in addHost order); the
# lab passes these to addHost explicitly (with harness.model.ADDRESS_PREFIX_LEN), so the plan, not
# Mininet's counter, decides them.
ADDRESS_BASE = IPv4Address("10.0.0.0")


def host_addresses(experiment: Experiment) -> dict[str, str]:
    """Each host's IPv4 address, 10.0.0.N in the topology's host order (N from 1)."""
    return {host: str(ADDRESS_BASE + n + 1) for n, host in enumerate(experiment.topology.hosts)}


def hop_path(experiment: Experiment, a: str, b: str) -> list[str]:
    """The nodes from a to b (BFS over the topology's links), or [] if b is unreachable."""
    return experiment.topology.path(a, b)


def path_rtt_s(experiment: Experiment, a: str, b: str) -> float:
    """Configured RTT between two hosts: the sum of both directions' delays along the path."""
    delays = {}
    for link in experiment.topology.links:
        delays[(link.a, link.b)] = delays[(link.b, link.a)] = link.a_to_b.delay_s + link.b_to_a.delay_s
    path = hop_path(experiment, a, b)
    return sum((delays[hop] for hop in zip(path, path[1:])), 0.0)


def rule_placement(experiment: Experiment, sender: str, receiver: str) -> tuple[str, str, str]:
    """(switch, node it receives from, node it sends to) for a network step: the first switch on
    the path, so the sender's own stack never sees the segment held (it would not retransmit)."""
    path = hop_path(experiment, sender, receiver)
    if len(path) < 3 or path[1] not in experiment.topology.switches:
        raise UserError(f"a network step from {sender} to {receiver} needs a switch between them "
                        f"(the path is {' - '.join(path) or 'missing'}).", file=str(experiment.source),
                        fix="connect the hosts through a switch in the topology.")
    return path[1], path[0], path[2]
