"""Paths through the topology: configured RTTs, where a network step acts, the hosts' addresses."""
from __future__ import annotations

from harness.errors import UserError
from harness.model import Experiment


def host_addresses(experiment: Experiment) -> dict[str, str]:
    """Each host's IPv4 address as the loader planned it (harness.load.routing): 10.0.0.N in the
    topology's host order when it has no routers, else its address on its subnet."""
    return {host: experiment.topology.address(host) for host in experiment.topology.hosts}


def hop_path(experiment: Experiment, a: str, b: str) -> list[str]:
    """The nodes a segment from a to b crosses, following the routes, or [] if it cannot."""
    return experiment.topology.path(a, b)


def one_way_s(experiment: Experiment, a: str, b: str) -> float:
    """The configured delay from a to b: each link's delay in the direction the path crosses it."""
    delays = {}
    for link in experiment.topology.links:
        delays[(link.a, link.b)], delays[(link.b, link.a)] = link.a_to_b.delay_s, link.b_to_a.delay_s
    path = hop_path(experiment, a, b)
    return sum((delays[hop] for hop in zip(path, path[1:])), 0.0)


def path_rtt_s(experiment: Experiment, a: str, b: str) -> float:
    """Configured RTT between two hosts: there along a's routes, back along b's (they may differ)."""
    return one_way_s(experiment, a, b) + one_way_s(experiment, b, a)


def rule_placement(experiment: Experiment, sender: str, receiver: str) -> tuple[str, str, str]:
    """(switch or router, node it receives from, node it sends to) for a network step: the first
    one on the path, so the sender's own stack never sees the segment held (it would not retransmit)."""
    topology = experiment.topology
    path = hop_path(experiment, sender, receiver)
    if len(path) < 3 or path[1] not in (*topology.switches, *topology.routers):
        raise UserError(f"a network step from {sender} to {receiver} needs a switch or router between them "
                        f"(the path is {' - '.join(path) or 'missing'}).", file=str(experiment.source),
                        fix="connect the hosts through a switch or router in the topology.")
    return path[1], path[0], path[2]
