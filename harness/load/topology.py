"""Topology YAML -> Topology model."""
from __future__ import annotations

import re
from pathlib import Path

from harness.errors import UserError
from harness.load.units import parse_mbit, parse_percent, parse_seconds
from harness.load.yaml_lines import LineDict, check_keys, expect_type, load_yaml
from harness.model import Impairment, Link, Topology

_IMPAIRMENT_KEYS = {"delay", "jitter", "loss", "bw", "queue"}
_NAME_RE = r"^[a-z][a-z0-9]{0,8}$"   # Mininet makes '<node>-eth<N>': interface names <= 15 chars


def impairment_from(spec: LineDict, path: Path, base: Impairment | None = None) -> Impairment:
    base = base or Impairment()
    values = dict(delay_s=base.delay_s, jitter_s=base.jitter_s, loss_pct=base.loss_pct,
                  bw_mbit=base.bw_mbit, queue=base.queue)
    parsers = {"delay": ("delay_s", parse_seconds), "jitter": ("jitter_s", parse_seconds),
               "loss": ("loss_pct", parse_percent), "bw": ("bw_mbit", parse_mbit),
               "queue": ("queue", int)}
    for key, (attr, parse) in parsers.items():
        if key in spec:
            try:
                values[attr] = parse(spec[key])
            except ValueError as exc:
                raise UserError(f"bad {key} value: {exc}.", file=str(path), line=spec.line_of(key))
    imp = Impairment(**values)
    if imp.jitter_s and not imp.delay_s:
        raise UserError("jitter without delay is not a valid netem setting.", file=str(path),
                        line=spec.line, fix="add a delay at least as large as the jitter.")
    return imp


def load_topology(path: Path) -> Topology:
    data = load_yaml(path)
    check_keys(data, {"name", "hosts", "switches", "switch", "links"}, {"name", "hosts", "links"}, path, "a topology")
    kind = data.get("switch", "bridge")
    if kind not in ("bridge", "ovs"):
        raise UserError(f"switch: {kind!r} is not a kind of switch this tool builds.", file=str(path),
                        line=data.line_of("switch"), fix="write switch: bridge (Linux bridge) or switch: ovs (Open vSwitch).")
    hosts = expect_type(data["hosts"], list, path, data.line_of("hosts"), "hosts", "hosts: [client, server]")
    switches = expect_type(data.get("switches", []), list, path, data.line_of("switches"), "switches", "switches: [s1]")
    nodes = set()
    for name in [*hosts, *switches]:
        if not isinstance(name, str) or not re.match(_NAME_RE, name) or name in nodes:
            raise UserError(f"node name {name!r} is invalid or repeated.", file=str(path),
                            line=data.line_of("hosts" if name in hosts else "switches"),
                            fix="use unique names of 1-9 lower-case letters/digits starting with a letter.")
        nodes.add(name)
    links = []
    for item in expect_type(data["links"], list, path, data.line_of("links"), "links", "links: [{a: client, b: s1}]"):
        item = expect_type(item, LineDict, path, data.line_of("links"), "a link", "{a: client, b: s1, delay: 25ms}")
        check_keys(item, {"a", "b", "a_to_b", "b_to_a"} | _IMPAIRMENT_KEYS, {"a", "b"}, path, "a link")
        for end in ("a", "b"):
            if item[end] not in nodes:
                raise UserError(f"link end '{item[end]}' is not a host or switch of this topology.",
                                file=str(path), line=item.line_of(end),
                                fix=f"use one of: {', '.join(sorted(nodes))}.")
        both = impairment_from(item, path)
        directed = {}
        for key in ("a_to_b", "b_to_a"):
            spec = item.get(key, LineDict())
            if not isinstance(spec, LineDict):
                raise UserError(f"{key} must be a mapping.", file=str(path), line=item.line_of(key),
                                fix=f"write {key}: {{delay: 10ms}}.")
            if spec:
                check_keys(spec, _IMPAIRMENT_KEYS, set(), path, key)
            directed[key] = impairment_from(spec, path, both) if spec else both
        links.append(Link(item["a"], item["b"], directed["a_to_b"], directed["b_to_a"]))
    return Topology(str(data["name"]), tuple(hosts), tuple(switches), tuple(links), path, kind)
