"""Plan: experiment -> what each host's agent does, the path RTT, and where results go."""
from __future__ import annotations

import time
import uuid
from collections import deque
from pathlib import Path

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


def new_run_dir(results_root: Path, experiment: Experiment) -> Path:
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:4]
    path = results_root / experiment.name / run_id
    for sub in ("pcap", "samples", "steps"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    return path


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
