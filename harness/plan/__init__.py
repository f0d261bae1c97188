"""Plan: experiment -> what each host's agent does, the path RTT, and where results go."""
from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections import deque
from pathlib import Path

from harness.errors import UserError
from harness.model import Experiment


def path_rtt_s(experiment: Experiment, a: str, b: str) -> float:
    """Configured RTT between two hosts: the sum of both directions' delays along the path."""
    topo = experiment.topology
    adj: dict[str, list] = {}
    for link in topo.links:
        adj.setdefault(link.a, []).append((link.b, link.a_to_b.delay_s + link.b_to_a.delay_s))
        adj.setdefault(link.b, []).append((link.a, link.a_to_b.delay_s + link.b_to_a.delay_s))
    best, queue = {a: 0.0}, deque([a])
    while queue:
        node = queue.popleft()
        for nxt, cost in adj.get(node, []):
            if nxt not in best:
                best[nxt] = best[node] + cost
                queue.append(nxt)
    return best.get(b, 0.0)


def hop_path(experiment: Experiment, a: str, b: str) -> list[str]:
    """The nodes from a to b (BFS over the topology's links), or [] if b is unreachable."""
    return experiment.topology.path(a, b)


def rule_placement(experiment: Experiment, sender: str, receiver: str) -> tuple[str, str, str]:
    """(switch, node it receives from, node it sends to) for a network step: the first switch on
    the path, so the sender's own stack never sees the segment held (it would not retransmit)."""
    path = hop_path(experiment, sender, receiver)
    if len(path) < 3 or path[1] not in experiment.topology.switches:
        raise UserError(f"a network step from {sender} to {receiver} needs a switch between them "
                        f"(the path is {' - '.join(path) or 'missing'}).", file=str(experiment.source),
                        fix="connect the hosts through a switch in the topology.")
    return path[1], path[0], path[2]


def run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:4]


def new_run_dir(results_root: Path, experiment: Experiment, exact: Path | None = None) -> Path:
    """results/<experiment>/<run-id>/ (or `exact`, a matrix cell's folder) with its sub-folders."""
    path = exact or results_root / experiment.name / run_id()
    for sub in ("pcap", "samples", "steps"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    return path


def cell_folder(label: str) -> str:
    """A matrix cell's folder name: its settings, safe for every filesystem (one component, never
    '.', '..', hidden or an option; long labels shortened and told apart by a hash)."""
    name = re.sub(r"[^A-Za-z0-9_.=,#@-]", "_", label).lstrip(".-") or "cell"
    if len(name) > 100:
        name = name[:90] + "-" + hashlib.sha1(label.encode()).hexdigest()[:8]
    return name


def agent_plans(experiment: Experiment, ips: dict[str, str]) -> dict[str, list[dict]]:
    """Each host's steps in file order, with addresses resolved, as the agent reads them."""
    plans: dict[str, list[dict]] = {h: [] for h in experiment.topology.hosts}
    for step in experiment.steps:
        entry = {"at": step.at_s, "action": step.action, "index": step.index, "port": step.port, "bind": ips[step.host],
                 "size": step.size, "message": step.message, "how": step.how, "until": step.until, "seconds": step.seconds}
        if step.peer:
            entry["address"] = ips[step.peer]
        plans[step.host].append(entry)
    return plans
