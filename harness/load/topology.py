"""Topology YAML -> Topology model, refusing topologies that cannot work or would touch the machine."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

from harness.errors import UserError
from harness.load.interfaces import clash, machine_interfaces
from harness.load.units import MAX_QUEUE, bounded_int, parse_mbit, parse_percent, parse_seconds
from harness.load.yaml_lines import LineDict, check_keys, expect_type, item_line, load_yaml
from harness.model import Impairment, Link, Topology

IMPAIRMENT_KEYS = ("delay", "jitter", "loss", "bw", "queue")
_IMPAIRMENT_KEYS = set(IMPAIRMENT_KEYS)
SWITCH_KINDS = ("bridge", "ovs")
WORDS = {"all": "the sysctls' and matrix's word for every host", "links": "the matrix's word for every link",
         "repeat": "a matrix key"}
TOPOLOGY_KEYS = ("name", "hosts", "switches", "switch", "links")
TOPOLOGY_REQUIRED = ("name", "hosts", "links")
LINK_KEYS = ("a", "b", "a_to_b", "b_to_a")           # plus IMPAIRMENT_KEYS
NAME_RE = r"^[a-z][a-z0-9]{0,8}$"   # Mininet makes '<node>-eth<N>': interface names <= 15 chars
MAX_LINK_DELAY_S = 60.0             # netem: a longer one-way delay is a typo, and holds every segment that long


def _queue(value: object) -> int:
    return bounded_int(value, 1, MAX_QUEUE)


def _link_seconds(value: object) -> float:
    return parse_seconds(value, limit=MAX_LINK_DELAY_S)


PARSERS: dict[str, tuple[str, Callable]] = {"delay": ("delay_s", _link_seconds), "jitter": ("jitter_s", _link_seconds),
                                            "loss": ("loss_pct", parse_percent), "bw": ("bw_mbit", parse_mbit),
                                            "queue": ("queue", _queue)}


def impairment_from(spec: LineDict, path: Path, base: Impairment | None = None) -> Impairment:
    base = base or Impairment()
    values = dict(delay_s=base.delay_s, jitter_s=base.jitter_s, loss_pct=base.loss_pct,
                  bw_mbit=base.bw_mbit, queue=base.queue)
    for key, (attr, parse) in PARSERS.items():
        if key in spec:
            try:
                values[attr] = parse(spec[key])
            except ValueError as exc:
                raise UserError(f"bad {key} value: {exc}.", file=str(path), line=spec.line_of(key),
                                fix={"queue": f"write queue: 100 (packets, 1 to {MAX_QUEUE})."}.get(key))
    imp = Impairment(**values)
    if imp.jitter_s and not imp.delay_s:
        raise UserError("jitter without delay is not a valid netem setting.", file=str(path),
                        line=spec.line, fix="add a delay at least as large as the jitter.")
    return imp


def _names(data: LineDict, path: Path) -> None:
    """Names are unique and short: Mininet's `<node>-eth<N>` must fit the kernel's 15 characters."""
    seen: set[str] = set()
    for key in ("hosts", "switches"):
        names = data.get(key, [])
        for i, name in enumerate(names):
            line = item_line(names, i, data.line_of(key))
            if not isinstance(name, str) or not re.match(NAME_RE, name) or name in seen:
                raise UserError(f"node name {name!r} is invalid or repeated.", file=str(path), line=line,
                                fix="use unique names of 1-9 lower-case letters/digits starting with a letter.")
            if name in WORDS:
                raise UserError(f"'{name}' is {WORDS[name]}, so it cannot name a node.", file=str(path), line=line,
                                fix="pick another name.")
            seen.add(name)


def _clashes(data: LineDict, path: Path, existing: set[str], degree: dict[str, int]) -> None:
    """No kernel object Mininet makes for a node may clash with the machine's interfaces."""
    for key, kind in (("hosts", "host"), ("switches", "switch")):
        names = data.get(key, [])
        for i, name in enumerate(names):
            why = clash(name, degree.get(name, 0), existing)
            if why:
                raise UserError(f"the {kind} name '{name}' is refused: {why}.", file=str(path),
                                line=item_line(names, i, data.line_of(key)),
                                fix=f"rename it (e.g. {_free_name(kind[0], data, existing, degree.get(name, 0))}): "
                                    "node names become interfaces in the machine's own network namespace.")


def _free_name(prefix: str, data: LineDict, existing: set[str], links: int) -> str:
    """A name to suggest: the prefix and the first number that no node and no interface uses."""
    taken = {str(n) for key in ("hosts", "switches") for n in data.get(key, []) if isinstance(n, str)}
    return next(f"{prefix}{n}" for n in range(1, 10**6)
                if f"{prefix}{n}" not in taken and clash(f"{prefix}{n}", links, existing) is None)


def _shape(hosts: list, switches: list, links: list[Link], lines: list[int], path: Path, hosts_line: int) -> None:
    """Refuse what Mininet would build but cannot carry a connection: self-links, hosts with no
    link or two (hosts do not route: all get 10.0.0.x), islands, and loops (bridges run with STP
    off, so a loop is a broadcast storm)."""
    degree = {n: 0 for n in [*hosts, *switches]}
    parent = {n: n for n in degree}

    def root(n: str) -> str:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    for link, line in zip(links, lines):
        if link.a == link.b:
            raise UserError(f"the link joins {link.a} to itself.", file=str(path), line=line,
                            fix="link it to another node (a host to a switch: {a: client, b: s1}).")
        degree[link.a] += 1
        degree[link.b] += 1
        for end in (link.a, link.b):
            if end in hosts and degree[end] > 1:
                raise UserError(f"host {end} has a second link: hosts do not route (every host gets one 10.0.0.x "
                                "address and nothing forwards between its interfaces).", file=str(path), line=line,
                                fix=f"give {end} one link, to a switch; connect switches to each other instead.")
        if root(link.a) == root(link.b):
            raise UserError(f"the link {link.a} - {link.b} closes a loop: the switches run without STP, so a loop "
                            "floods every broadcast around forever.", file=str(path), line=line,
                            fix="remove this link: between any two nodes there must be exactly one path.")
        parent[root(link.a)] = root(link.b)
    for host in hosts:
        if degree[host] == 0:
            raise UserError(f"host {host} has no link.", file=str(path), line=hosts_line,
                            fix=f"add a link: {{a: {host}, b: {switches[0] if switches else 's1'}}}.")
    groups: dict[str, list[str]] = {}
    for node in degree:
        groups.setdefault(root(node), []).append(node)
    if len(groups) > 1:
        parts = "; ".join(", ".join(g) for g in groups.values())
        raise UserError(f"the topology falls apart into {len(groups)} unconnected parts ({parts}).", file=str(path),
                        line=hosts_line, fix="link the parts' switches to each other (or remove the unused nodes).")


def load_topology(path: Path, existing: set[str] | frozenset[str] | None = None) -> Topology:
    """`existing`: interface names to refuse (default: this machine's now, without tcp-testbed's)."""
    data = load_yaml(path)
    check_keys(data, set(TOPOLOGY_KEYS), set(TOPOLOGY_REQUIRED), path, "a topology")
    if not isinstance(data["name"], str) or not data["name"].strip():
        raise UserError(f"the topology name {data['name']!r} is not a text.", file=str(path), line=data.line_of("name"),
                        fix="write name: two_hosts.")
    kind = data.get("switch", "bridge")
    if not isinstance(kind, str) or kind not in SWITCH_KINDS:
        raise UserError(f"switch: {kind!r} is not a kind of switch this tool builds.", file=str(path),
                        line=data.line_of("switch"), fix="write switch: bridge (Linux bridge) or switch: ovs (Open vSwitch).")
    hosts = expect_type(data["hosts"], list, path, data.line_of("hosts"), "hosts", "hosts: [client, server]")
    switches = expect_type(data.get("switches", []), list, path, data.line_of("switches"), "switches", "switches: [s1]")
    if not hosts:
        raise UserError("a topology needs hosts.", file=str(path), line=data.line_of("hosts"), fix="write hosts: [client, server].")
    raw_links = expect_type(data["links"], list, path, data.line_of("links"), "links", "links: [{a: client, b: s1}]")
    _names(data, path)
    nodes = {*hosts, *switches}
    links, lines = [], []
    degree: dict[str, int] = {}
    for i, item in enumerate(raw_links):
        line = item_line(raw_links, i, data.line_of("links"))
        item = expect_type(item, LineDict, path, line, "a link", "{a: client, b: s1, delay: 25ms}")
        check_keys(item, set(LINK_KEYS) | _IMPAIRMENT_KEYS, {"a", "b"}, path, "a link")
        for end in ("a", "b"):
            if not isinstance(item[end], str) or item[end] not in nodes:
                raise UserError(f"link end {item[end]!r} is not a host or switch of this topology.",
                                file=str(path), line=item.line_of(end),
                                fix=f"use one of: {', '.join(sorted(nodes))}.")
            degree[item[end]] = degree.get(item[end], 0) + 1
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
        lines.append(item.line)
    _clashes(data, path, machine_interfaces() if existing is None else existing, degree)
    _shape(hosts, switches, links, lines, path, data.line_of("hosts"))
    return Topology(str(data["name"]), tuple(hosts), tuple(switches), tuple(links), path, kind)
