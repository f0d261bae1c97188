"""Topology YAML -> Topology model, refusing topologies that cannot work or would touch the machine."""
from __future__ import annotations

import re
from dataclasses import replace
from ipaddress import IPv4Interface, ip_address, ip_network
from pathlib import Path
from typing import Callable

from harness.errors import UserError
from harness.load.interfaces import clash, machine_interfaces
from harness.load.units import MAX_QUEUE, bounded_int, parse_mbit, parse_percent, parse_seconds
from harness.load.yaml_lines import LineDict, check_keys, expect_type, item_line, load_yaml
from harness.load.routing import RouteSpec, RoutingError, computed_routes, interfaces_of, with_overrides
from harness.model import Impairment, Link, Topology

IMPAIRMENT_KEYS = ("delay", "jitter", "loss", "bw", "queue")
_IMPAIRMENT_KEYS = set(IMPAIRMENT_KEYS)
SWITCH_KINDS = ("bridge", "ovs")
WORDS = {"all": "the sysctls' and matrix's word for every host", "links": "the matrix's word for every link",
         "repeat": "a matrix key"}
TOPOLOGY_KEYS = ("name", "hosts", "switches", "routers", "switch", "links", "routes")
TOPOLOGY_REQUIRED = ("name", "hosts", "links")
LINK_KEYS = ("a", "b", "a_to_b", "b_to_a", "mtu", "cost", "addresses")           # plus IMPAIRMENT_KEYS
ROUTE_KEYS = ("to", "via")
NODE_KINDS = (("hosts", "host"), ("switches", "switch"), ("routers", "router"))
MIN_MTU, MAX_MTU = 576, 9000        # IPv4's least every host must take (RFC 791); a jumbo frame
MAX_COST = 65535
MIN_PREFIX, MAX_PREFIX = 8, 31       # a given LAN: no wider than 10.0.0.0/8, at least two addresses
MAX_ROUTERS_ON_PATH = 63             # a TTL of 64 crosses 63 routers
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
    for key, _ in NODE_KINDS:
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
    for key, kind in NODE_KINDS:
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
    taken = {str(n) for key, _ in NODE_KINDS for n in data.get(key, []) if isinstance(n, str)}
    return next(f"{prefix}{n}" for n in range(1, 10**6)
                if f"{prefix}{n}" not in taken and clash(f"{prefix}{n}", links, existing) is None)


def _shape(hosts: list, switches: list, routers: list, links: list[Link], path: Path, hosts_line: int) -> None:
    """Refuse what Mininet would build but cannot carry a connection: self-links, hosts with no
    link or two (hosts do not route), islands, and loops inside a LAN (bridges run with STP off, so
    a loop is a broadcast storm; a loop through routers is routing, and fine)."""
    degree = {n: 0 for n in [*hosts, *switches, *routers]}
    lan = _UnionFind(degree)
    whole = _UnionFind(degree)
    pairs: set[frozenset] = set()
    for link in links:
        _one_link(link, pairs, degree, hosts, routers, path)
        if link.a not in routers and link.b not in routers:
            if lan.find(link.a) == lan.find(link.b):
                raise UserError(f"the link {link.a} - {link.b} closes a loop inside a LAN: the switches run without "
                                "STP, so a loop floods every broadcast around forever.", file=str(path), line=link.line,
                                fix="remove this link (between two nodes of a LAN there must be exactly one path), "
                                    "or put a router in the loop.")
            lan.join(link.a, link.b)
        whole.join(link.a, link.b)
    for node in [*hosts, *routers]:
        if degree[node] == 0:
            raise UserError(f"{'host' if node in hosts else 'router'} {node} has no link.", file=str(path), line=hosts_line,
                            fix=f"add a link: {{a: {node}, b: {switches[0] if switches else 's1'}}}.")
    groups = whole.groups()
    if len(groups) > 1:
        parts = "; ".join(", ".join(g) for g in groups)
        raise UserError(f"the topology falls apart into {len(groups)} unconnected parts ({parts}).", file=str(path),
                        line=hosts_line, fix=f"add a link between a switch or router of one part and one of the other "
                                              f"(e.g. {{a: {_joint(groups[0], hosts)}, b: {_joint(groups[1], hosts)}}}), "
                                              "or remove the unused nodes.")


def _one_link(link: Link, pairs: set[frozenset], degree: dict[str, int], hosts: list, routers: list,
              path: Path) -> None:
    """A link on its own: not to itself, not a second one between a pair with a router, not a host's second."""
    if link.a == link.b:
        raise UserError(f"the link joins {link.a} to itself.", file=str(path), line=link.line,
                        fix="link it to another node (a host to a switch: {a: client, b: s1}).")
    pair = frozenset((link.a, link.b))
    if pair in pairs and (link.a in routers or link.b in routers):      # within a LAN: a loop (_shape)
        raise UserError(f"a second link between {link.a} and {link.b}: paths, ports and network steps are named "
                        "by the nodes they join, so two links between one pair cannot be told apart.",
                        file=str(path), line=link.line,
                        fix="keep one link; for a second path between them put a router or switch in it.")
    pairs.add(pair)
    for end in (link.a, link.b):
        degree[end] += 1
        if end in hosts and degree[end] > 1:
            raise UserError(f"host {end} has a second link: hosts do not forward between their interfaces.",
                            file=str(path), line=link.line,
                            fix=f"give {end} one link, to a switch or a router; a node that joins two networks "
                                "is a router (list it under routers:).")


def _joint(group: list[str], hosts: list) -> str:
    """A node of a part that can take another link (not a host)."""
    return next((n for n in group if n not in hosts), group[0])


class _UnionFind:
    def __init__(self, nodes) -> None:
        self.parent = {n: n for n in nodes}

    def find(self, n: str) -> str:
        while self.parent[n] != n:
            self.parent[n] = self.parent[self.parent[n]]
            n = self.parent[n]
        return n

    def join(self, a: str, b: str) -> None:
        self.parent[self.find(a)] = self.find(b)

    def groups(self) -> list[list[str]]:
        out: dict[str, list[str]] = {}
        for node in self.parent:
            out.setdefault(self.find(node), []).append(node)
        return list(out.values())


def _node_list(data: LineDict, key: str, path: Path, example: str) -> list:
    return expect_type(data.get(key, []), list, path, data.line_of(key), key, example)


def _link(item: object, line: int | None, nodes: set[str], path: Path, degree: dict[str, int],
          given: dict) -> Link:
    """One `links:` entry: its ends, impairments per direction, MTU, cost and given addresses."""
    item = expect_type(item, LineDict, path, line, "a link", "{a: client, b: s1, delay: 25ms}")
    check_keys(item, set(LINK_KEYS) | _IMPAIRMENT_KEYS, {"a", "b"}, path, "a link")
    for end in ("a", "b"):
        if not isinstance(item[end], str) or item[end] not in nodes:
            raise UserError(f"link end {item[end]!r} is not a host, switch or router of this topology.",
                            file=str(path), line=item.line_of(end), fix=f"use one of: {', '.join(sorted(nodes))}.")
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
    mtu = _bounded(item, "mtu", MIN_MTU, MAX_MTU, path, "mtu: 1400 (bytes of IP packet, 576 to 9000)")
    cost = _bounded(item, "cost", 1, MAX_COST, path, "cost: 10 (routes take the cheapest sum; 1 per link by default)")
    return Link(item["a"], item["b"], directed["a_to_b"], directed["b_to_a"], mtu, cost or 1, item.line)


def _bounded(item: LineDict, key: str, low: int, high: int, path: Path, example: str) -> int | None:
    if key not in item:
        return None
    try:
        return bounded_int(item[key], low, high)
    except ValueError as exc:
        raise UserError(f"bad {key} value: {exc}.", file=str(path), line=item.line_of(key), fix=f"write {example}.")


def _usable(iface: IPv4Interface, text: str) -> None:
    """A unicast address a LAN can carry, with its prefix (/8 to /31)."""
    if "/" not in text:
        raise ValueError("it needs a prefix")
    if not MIN_PREFIX <= iface.network.prefixlen <= MAX_PREFIX:
        raise ValueError(f"the prefix must be /{MIN_PREFIX} to /{MAX_PREFIX}")
    ip = iface.ip
    if ip.is_loopback or ip.is_multicast or ip.is_unspecified or ip.is_link_local or ip.is_reserved:
        raise ValueError("it is not a unicast address a router forwards (loopback, multicast, link-local or reserved)")
    if iface.network.prefixlen < 31 and ip in (iface.network.network_address, iface.network.broadcast_address):
        raise ValueError("it is the subnet's own or broadcast address")


def _given_addresses(item: LineDict, index: int, path: Path, given: dict, hosts: list, routers: list) -> None:
    """`addresses: {r1: 192.168.5.1/30}` on a link: an end's address with its prefix."""
    raw = expect_type(item.get("addresses", LineDict()), LineDict, path, item.line_of("addresses"), "addresses",
                      "addresses: {r1: 192.168.5.1/30, r2: 192.168.5.2/30}")
    for end, value in raw.items():
        if end not in (item["a"], item["b"]):
            raise UserError(f"addresses: {end!r} is not an end of this link.", file=str(path), line=raw.line_of(end),
                            fix=f"key the addresses by {item['a']} or {item['b']}.")
        if end not in hosts and end not in routers:
            raise UserError(f"addresses: {end} is a switch, and a switch port has no address.", file=str(path),
                            line=raw.line_of(end), fix="give the address to the host or router at the LAN's edge.")
        try:
            iface = IPv4Interface(str(value))
            _usable(iface, str(value))
        except ValueError as exc:
            raise UserError(f"addresses: {end}: {value!r} is not a host address with its prefix ({exc}).", file=str(path),
                            line=raw.line_of(end), fix="write an IPv4 address and prefix, e.g. 10.1.0.1/24.") from None
        given[(end, index)] = iface


def _route_specs(data: LineDict, hosts: list, routers: list, path: Path) -> list[RouteSpec]:
    """`routes: {client: [{to: server, via: r1}]}` as written, with each entry's line."""
    raw = expect_type(data.get("routes", LineDict()), LineDict, path, data.line_of("routes"), "routes",
                      "routes: {client: [{to: server, via: r1}]}")
    specs = []
    for node, entries in raw.items():
        if node not in hosts and node not in routers:
            raise UserError(f"routes: {node!r} is not a host or router of this topology.", file=str(path),
                            line=raw.line_of(node), fix=f"use one of: {', '.join([*hosts, *routers])}.")
        entries = expect_type(entries, list, path, raw.line_of(node), f"{node}'s routes", "[{to: server, via: r1}]")
        for i, entry in enumerate(entries):
            line = item_line(entries, i, raw.line_of(node))
            entry = expect_type(entry, LineDict, path, line, "a route", "{to: server, via: r1}")
            check_keys(entry, set(ROUTE_KEYS), set(ROUTE_KEYS), path, "a route")
            specs.append(RouteSpec(node, str(entry["to"]), str(entry["via"]), entry.line))
    if specs and not routers:
        raise UserError("routes: without routers: in a topology without routers every host is on one LAN.",
                        file=str(path), line=data.line_of("routes"), fix="add routers, or remove routes:.")
    return specs


def _addressed(topology: Topology, given: dict, specs: list[RouteSpec], path: Path) -> Topology:
    """The topology with its interfaces' addresses and its routes (harness.load.routing), every
    host reaching every other host along them."""
    try:
        segs, interfaces = interfaces_of(topology.hosts, topology.routers, topology.links, given)
        routes = computed_routes(segs, interfaces, topology.links, topology.routers)
        routes = with_overrides(routes, specs, interfaces, topology.hosts, topology.routers)
    except RoutingError as exc:
        line = specs[exc.route].line if exc.route is not None else \
            topology.links[exc.link].line if exc.link is not None else None
        raise UserError(str(exc), file=str(path), line=line, fix=exc.fix or None) from None
    done = replace(topology, interfaces=interfaces, routes=tuple(routes))
    for a in done.hosts:
        for b in done.hosts:
            why = unreachable(done, a, b) if a != b else None
            if why:
                raise UserError(f"{a} cannot reach {b}: {why}.", file=str(path), line=why.line,
                                fix="change the routes: entry named, or add the link that is missing.")
    return done


class Unreachable(str):
    """Why a host's segments cannot reach another host, with the routes: line to blame (if any)."""
    line: int | None = None


def unreachable(topology: Topology, a: str, b: str) -> Unreachable | None:
    """None when segments from a get to b along the routes; else the hop where they stop."""
    hops = topology.path(a, b)
    if hops:
        crossed = [n for n in hops if n in topology.routers]
        if len(crossed) <= MAX_ROUTERS_ON_PATH:
            return None
        return Unreachable(f"the path crosses {len(crossed)} routers, and a TTL of 64 runs out after "
                           f"{MAX_ROUTERS_ON_PATH}")
    target, here, seen = topology.address(b), a, []
    while here not in seen:
        seen.append(here)
        route = topology.route_for(here, target)
        if any(i.node == here and ip_address(target) in ip_network(i.subnet) for i in topology.interfaces):
            break
        if route is None:
            why = Unreachable(f"{here} has no route to {target} ({' -> '.join(seen)})")
            return why
        here = route.via_node
    why = Unreachable(f"the routes go round in a loop ({' -> '.join(seen + [here])})")
    used = [topology.route_for(node, target) for node in seen]
    why.line = next((r.line for r in used if r is not None and r.given), None)
    return why


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
    hosts = _node_list(data, "hosts", path, "hosts: [client, server]")
    switches = _node_list(data, "switches", path, "switches: [s1]")
    routers = _node_list(data, "routers", path, "routers: [r1, r2]")
    if not hosts:
        raise UserError("a topology needs hosts.", file=str(path), line=data.line_of("hosts"), fix="write hosts: [client, server].")
    raw_links = expect_type(data["links"], list, path, data.line_of("links"), "links", "links: [{a: client, b: s1}]")
    _names(data, path)
    nodes = {*hosts, *switches, *routers}
    links: list[Link] = []
    degree: dict[str, int] = {}
    given: dict = {}
    for i, item in enumerate(raw_links):
        links.append(_link(item, item_line(raw_links, i, data.line_of("links")), nodes, path, degree, given))
        _given_addresses(item, i, path, given, hosts, routers)
    if given and not routers:
        raise UserError("addresses: on a link of a topology without routers: every host is on one LAN, 10.0.0.N/8.",
                        file=str(path), line=links[next(iter(given))[1]].line, fix="add routers, or remove addresses:.")
    specs = _route_specs(data, hosts, routers, path)
    _clashes(data, path, machine_interfaces() if existing is None else existing, degree)
    _shape(hosts, switches, routers, links, path, data.line_of("hosts"))
    topology = Topology(str(data["name"]), tuple(hosts), tuple(switches), tuple(links), path, kind, tuple(routers))
    return _addressed(topology, given, specs, path)
