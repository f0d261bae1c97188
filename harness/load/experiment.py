"""Experiment YAML -> Experiment model (with its topology loaded)."""
from __future__ import annotations

from pathlib import Path

from harness.errors import UserError
from harness.load.expectations import load_expectations
from harness.load.steps import load_steps
from harness.load.topology import load_topology
from harness.load.units import parse_seconds
from harness.load.yaml_lines import LineDict, check_keys, expect_type, load_yaml
from harness.model import Experiment

REPO = Path(__file__).resolve().parents[2]


def resolve_experiment_path(name: str) -> Path:
    """'handshake.yaml' or 'handshake' -> experiments/handshake.yaml when not a path that exists."""
    path = Path(name)
    if path.exists():
        return path
    for candidate in (REPO / "experiments" / name, REPO / "experiments" / f"{name}.yaml"):
        if candidate.exists():
            return candidate
    known = ", ".join(sorted(p.name for p in (REPO / "experiments").glob("*.yaml")))
    raise UserError(f"no experiment file '{name}' here or in experiments/.", file=name,
                    fix=f"give a path, or one of: {known}.")


def load_experiment(path: Path) -> Experiment:
    """One experiment file without a matrix (see load_cells for files with one)."""
    data = load_yaml(path)
    if "matrix" in data:
        raise UserError("this experiment has a matrix: it is a set of cells.", file=str(path), line=data.line_of("matrix"),
                        fix="load it with harness.load.load_cells (run-experiment does).")
    return experiment_from_data(data, path)


def experiment_from_data(data: LineDict, path: Path) -> Experiment:
    check_keys(data, {"name", "about", "topology", "duration", "steps", "sysctls", "expect"},
               {"name", "topology", "steps", "expect"}, path, "an experiment")
    topo_ref = str(data["topology"])
    topo_path = next((p for p in (path.parent / topo_ref, path.parent / f"{topo_ref}.yaml", REPO / "topologies" / topo_ref,
                                  REPO / "topologies" / f"{topo_ref}.yaml") if p.is_file()), None)
    if topo_path is None:
        raise UserError(f"topology '{topo_ref}' not found next to the experiment or in topologies/.",
                        file=str(path), line=data.line_of("topology"), fix="name a file in topologies/ (without .yaml).")
    topology = load_topology(topo_path)
    steps, network = load_steps(expect_type(data["steps"], list, path, data.line_of("steps"), "steps", "a list of steps"), topology.hosts, path)
    try:
        duration = parse_seconds(data.get("duration", "2s"))
    except ValueError as exc:
        raise UserError(f"duration: {exc}.", file=str(path), line=data.line_of("duration"))
    last_at = max((s.at_s for s in (*steps, *network) if s.at_s is not None), default=0.0)
    if duration <= last_at:
        raise UserError("duration ends before the last timed step.", file=str(path), line=data.line_of("duration"),
                        fix=f"make it longer than {last_at:g}s.")
    sysctls = {}
    for host, values in expect_type(data.get("sysctls", LineDict()), LineDict, path, data.line_of("sysctls"), "sysctls", "{all: {net.ipv4.tcp_timestamps: 1}}").items():
        if host != "all" and host not in topology.hosts:
            raise UserError(f"sysctls for unknown host '{host}'.", file=str(path), line=data["sysctls"].line_of(host),
                            fix=f"use all or one of: {', '.join(topology.hosts)}.")
        sysctls[host] = {str(k): str(v) for k, v in values.items()}
    expect = load_expectations(expect_type(data["expect"], LineDict, path, data.line_of("expect"), "expect", "a mapping"), topology.hosts, path)
    if network and topology.switch_kind != "bridge":
        raise UserError("network steps need Linux bridge switches (their rules are nftables bridge rules, "
                        "which Open vSwitch's datapath bypasses).", file=str(path), line=network[0].index,
                        fix="use a topology with switch: bridge.")
    return Experiment(str(data["name"]), topology, duration, steps, sysctls, expect, path, network,
                      str(data.get("about", "")).strip())
