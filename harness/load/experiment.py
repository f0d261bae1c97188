"""Experiment YAML -> Experiment model (with its topology loaded)."""
from __future__ import annotations

import re
from pathlib import Path

from harness.errors import UserError
from harness.load.topology import load_topology
from harness.load.units import parse_seconds
from harness.load.yaml_lines import LineDict, check_keys, expect_type, load_yaml
from harness.model import Expectations, Experiment, PacketPattern, Step, TimingExpectation

REPO = Path(__file__).resolve().parents[2]
STATES = {"LISTEN", "SYN-SENT", "SYN-RECV", "ESTAB", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT",
          "CLOSE-WAIT", "LAST-ACK", "CLOSING", "CLOSED"}
TIMINGS = {"handshake_client", "handshake_server"}
ACTIONS = {"listen", "connect", "close"}
_TERM = r"[a-z]\w*([+-][0-9]+)?|[0-9]+"


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


def _seconds(value: object, path: Path, line: int, what: str) -> float:
    try:
        return parse_seconds(value)
    except ValueError as exc:
        raise UserError(f"{what}: {exc}.", file=str(path), line=line)


def _steps(raw: list, hosts: tuple[str, ...], path: Path) -> tuple[Step, ...]:
    steps = []
    for item in raw:
        if not isinstance(item, LineDict):
            raise UserError("a step must be a mapping.", file=str(path), fix="write {at: 0s, on: server, listen: 5001}.")
        check_keys(item, {"at", "on"} | ACTIONS, {"at", "on"}, path, "a step")
        actions = [a for a in ACTIONS if a in item]
        if len(actions) != 1:
            raise UserError("a step needs exactly one action.", file=str(path), line=item.line,
                            fix=f"add one of: {', '.join(sorted(ACTIONS))}.")
        action, host = actions[0], item["on"]
        if host not in hosts:
            raise UserError(f"step runs on '{host}', which is not a host of the topology.", file=str(path),
                            line=item.line_of("on"), fix=f"use one of: {', '.join(hosts)}.")
        at = _seconds(item["at"], path, item.line_of("at"), "at")
        value = item[action]
        if action == "listen":
            port = expect_type(value, int, path, item.line_of(action), "listen", "listen: 5001")
            steps.append(Step(at, host, action, port=port))
        elif action == "connect":
            m = re.fullmatch(r"([a-z]\w*):([0-9]+)", str(value))
            if not m or m.group(1) not in hosts:
                raise UserError(f"connect target {value!r} is not host:port.", file=str(path),
                                line=item.line_of(action), fix="write connect: server:5001.")
            steps.append(Step(at, host, action, port=int(m.group(2)), peer=m.group(1)))
        else:
            steps.append(Step(at, host, action))
    return tuple(sorted(steps, key=lambda s: s.at_s))


def _expectations(raw: LineDict, hosts: tuple[str, ...], path: Path) -> Expectations:
    check_keys(raw, set(hosts) | {"packets", "timing"}, set(), path, "expect")
    states = {}
    for host in hosts:
        if host in raw:
            spec = expect_type(raw[host], LineDict, path, raw.line_of(host), host, "{states: [SYN-SENT, ESTAB]}")
            check_keys(spec, {"states"}, {"states"}, path, f"expect.{host}")
            seq = expect_type(spec["states"], list, path, spec.line_of("states"), "states", "[SYN-SENT, ESTAB]")
            for state in seq:
                if state not in STATES:
                    raise UserError(f"unknown TCP state '{state}'.", file=str(path), line=spec.line_of("states"),
                                    fix=f"use ss's names: {', '.join(sorted(STATES))}.")
            states[host] = tuple(seq)
    packets = []
    for item in raw.get("packets", []):
        item = expect_type(item, LineDict, path, raw.line_of("packets"), "a packet pattern", "{from: client, flags: S, seq: x}")
        check_keys(item, {"from", "flags", "seq", "ack"}, {"from", "flags"}, path, "a packet pattern")
        if item["from"] not in hosts:
            raise UserError(f"packet sender '{item['from']}' is not a host.", file=str(path), line=item.line_of("from"))
        if not re.fullmatch(r"[SAFRPU]+", str(item["flags"])):
            raise UserError(f"flags {item['flags']!r} are not TCP flag letters.", file=str(path),
                            line=item.line_of("flags"), fix="use letters S A F R P U, e.g. SA for SYN+ACK.")
        for key in ("seq", "ack"):
            if key in item and not re.fullmatch(_TERM, str(item[key])):
                raise UserError(f"{key}: {item[key]!r} is not a name, name+N or a number.", file=str(path),
                                line=item.line_of(key), fix=f"write {key}: x or {key}: x+1.")
        packets.append(PacketPattern(item["from"], str(item["flags"]), *(str(item[k]) if k in item else None for k in ("seq", "ack"))))
    timing = []
    for name, spec in raw.get("timing", LineDict()).items():
        line = raw["timing"].line_of(name)
        if name not in TIMINGS:
            raise UserError(f"unknown timing '{name}'.", file=str(path), line=line, fix=f"use one of: {', '.join(sorted(TIMINGS))}.")
        spec = expect_type(spec, LineDict, path, line, name, "{equals: 1rtt, within: 5%}")
        check_keys(spec, {"equals", "within"}, {"equals", "within"}, path, name)
        equals, within = str(spec["equals"]), str(spec["within"])
        if not re.fullmatch(r"[0-9.]*rtt", equals):
            _seconds(equals, path, spec.line_of("equals"), "equals (a duration or N rtt)")
        if not within.endswith("%"):
            _seconds(within, path, spec.line_of("within"), "within (a duration or a percentage)")
        timing.append(TimingExpectation(name, equals.replace(" ", ""), within))
    return Expectations(states, tuple(packets), tuple(timing))


def load_experiment(path: Path) -> Experiment:
    data = load_yaml(path)
    check_keys(data, {"name", "topology", "duration", "steps", "sysctls", "expect"},
               {"name", "topology", "steps", "expect"}, path, "an experiment")
    topo_ref = str(data["topology"])
    topo_path = next((p for p in (path.parent / topo_ref, REPO / "topologies" / topo_ref,
                                  REPO / "topologies" / f"{topo_ref}.yaml") if p.is_file()), None)
    if topo_path is None:
        raise UserError(f"topology '{topo_ref}' not found next to the experiment or in topologies/.",
                        file=str(path), line=data.line_of("topology"), fix="name a file in topologies/ (without .yaml).")
    topology = load_topology(topo_path)
    steps = _steps(expect_type(data["steps"], list, path, data.line_of("steps"), "steps", "a list of steps"), topology.hosts, path)
    duration = _seconds(data.get("duration", "2s"), path, data.line_of("duration"), "duration")
    if steps and duration <= steps[-1].at_s:
        raise UserError("duration ends before the last step.", file=str(path), line=data.line_of("duration"),
                        fix=f"make it longer than {steps[-1].at_s:g}s.")
    sysctls = {}
    for host, values in expect_type(data.get("sysctls", LineDict()), LineDict, path, data.line_of("sysctls"), "sysctls", "{all: {net.ipv4.tcp_timestamps: 1}}").items():
        if host != "all" and host not in topology.hosts:
            raise UserError(f"sysctls for unknown host '{host}'.", file=str(path), line=data["sysctls"].line_of(host),
                            fix=f"use all or one of: {', '.join(topology.hosts)}.")
        sysctls[host] = {str(k): str(v) for k, v in values.items()}
    expect = _expectations(expect_type(data["expect"], LineDict, path, data.line_of("expect"), "expect", "a mapping"), topology.hosts, path)
    return Experiment(str(data["name"]), topology, duration, steps, sysctls, expect, path)
