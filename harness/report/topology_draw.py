"""The topology as result.json's `lab` section, and `run-experiment --draw`: one dict maker for the
runner and the command, so the drawing of a topology file and the report of a run on it are the
same picture (the run's adds the lab's interface names and where network steps acted)."""
from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from harness.errors import UserError
from harness.load.topology import load_topology
from harness.model import Impairment, Topology
from harness.report.evidence import atomic_write
from harness.report.topology_svg import topology_svg
from harness.shipped import topologies_dir


def _impairment(imp: Impairment) -> dict:
    return {"delay_s": imp.delay_s, "jitter_s": imp.jitter_s, "loss_pct": imp.loss_pct,
            "bw_mbit": imp.bw_mbit, "queue": imp.queue}


def _default_addresses(topology: Topology) -> dict[str, str]:
    """Each host's address from the topology's address plan (none for a hand-made Topology)."""
    if not topology.interfaces:
        return {}
    return {h: topology.address(h) for h in topology.hosts if any(i.node == h for i in topology.interfaces)}


def _steps(steps: Iterable, ports: dict[tuple[str, str], str]) -> list[dict]:
    """Where each network step acted (a plan's StepPlacement: .step, .switch, .ingress_node, .egress_node)."""
    return [{"line": p.step.index, "action": p.step.action, "sender": p.step.sender, "receiver": p.step.receiver,
             "switch": p.switch, "ingress": ports.get((p.switch, p.ingress_node)),
             "egress": ports.get((p.switch, p.egress_node))} for p in steps]


def topology_dict(topology: Topology, addresses: dict[str, str] | None = None,
                  host_interfaces: dict[str, str] | None = None, ports: dict[tuple[str, str], str] | None = None,
                  steps: Iterable = ()) -> dict:
    """result.json's `lab`: hosts (address, interface), switches, routers, links (interfaces, MTU,
    cost, settings per direction), interfaces, routes, network steps. The lab's values (addresses,
    interface names, (node, neighbour) -> port, step placements) are optional: without a lab, the
    topology's own address plan and no interface names."""
    addresses = _default_addresses(topology) if addresses is None else addresses
    host_interfaces, ports = host_interfaces or {}, ports or {}
    return {"hosts": {h: {"ip": addresses.get(h), "interface": host_interfaces.get(h)} for h in topology.hosts},
            "switches": list(topology.switches),
            "routers": list(topology.routers),
            "links": [{"a": link.a, "b": link.b, "a_interface": ports.get((link.a, link.b)),
                       "b_interface": ports.get((link.b, link.a)), "mtu": link.mtu, "cost": link.cost,
                       "a_to_b": _impairment(link.a_to_b), "b_to_a": _impairment(link.b_to_a)}
                      for link in topology.links],
            "interfaces": [{"node": i.node, "link": i.link, "peer": i.peer, "address": i.address,
                            "prefix_len": i.prefix_len, "subnet": i.subnet, "mtu": i.mtu} for i in topology.interfaces],
            "routes": [{"node": r.node, "prefix": r.prefix, "via": r.via, "via_node": r.via_node, "given": r.given}
                       for r in topology.routes],
            "network_steps": _steps(steps, ports)}


def topology_file(path: Path) -> Path:
    """A path that exists, else a name in topologies/ ('dumbbell' or 'dumbbell.yaml'). Only .yaml
    files are read: an error must never quote some other file's content."""
    path = Path(path)
    shipped = topologies_dir()
    name = str(path)
    candidates = [path] + ([shipped / name, shipped / f"{name}.yaml"]
                           if "\0" not in name and not path.is_absolute() and ".." not in path.parts else [])
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        known = ", ".join(sorted(p.stem for p in shipped.glob("*.yaml")))
        raise UserError(f"no topology file '{name[:80]}' here or in topologies/.", file=name[:200],
                        fix=f"give a path, or one of: {known}.")
    if found.suffix not in (".yaml", ".yml"):
        raise UserError("a topology file's name ends in .yaml.", file=name[:200], fix="give the topology's .yaml file.")
    return found


def draw_topology(path: Path, out: Path | None = None) -> Path:
    """`run-experiment --draw TOPOLOGY [--out FILE]`: the topology's SVG, by default
    ./<topology name>.svg; returns where it went. A bad file is a UserError, as for a run; this
    machine's interface names are not refused (nothing is built)."""
    topology = load_topology(topology_file(path), existing=frozenset())
    target = Path(out) if out is not None else Path.cwd() / (re.sub(r"[^\w.-]+", "_", topology.name).strip(".") + ".svg")
    svg = topology_svg(topology_dict(topology))
    try:
        atomic_write(target, '<?xml version="1.0" encoding="UTF-8"?>\n' + svg + "\n")
    except OSError as error:
        raise UserError(f"cannot write the drawing to {target}: {error.strerror or error}.",
                        fix="give --out a file in a folder that exists and you can write to.") from error
    return target
