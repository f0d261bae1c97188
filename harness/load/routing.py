"""Subnets, addresses and static routes of a topology, worked out once at load (pure: no kernel).

A topology without routers is one subnet, 10.0.0.0/8, hosts 10.0.0.N in `hosts:` order: every
shipped topology before routers existed, unchanged. With routers, each L2 segment (hosts and
switches joined without a router between them, or a link between two routers alone) is a subnet,
10.K.0.0/24 with K = 1, 2 ... in the order of the first link that touches it, unless an address on
one of its interfaces is given (`addresses:` on a link); routers take .1, .2 ... in `routers:`
order, hosts .11, .12 ... in `hosts:` order. Every host and router gets a route to each subnet it
is not on, through the neighbour that starts its cheapest path there (cost summed over the links
crossed, 1 per link unless `cost:` says otherwise; ties go to the earlier router in `routers:`);
`routes:` overrides replace the computed route with the same prefix or add one.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, ip_address

from harness.model import Interface, Link, Route

FLAT_NETWORK = IPv4Network("10.0.0.0/8")
ROUTED_PREFIX_LEN = 24
FIRST_ROUTER, FIRST_HOST = 1, 11
MAX_SUBNETS = 254


class RoutingError(ValueError):
    """A topology whose addresses or routes cannot work; `link` / `node` say where (for file:line)."""

    def __init__(self, message: str, fix: str = "", link: int | None = None, node: str | None = None,
                 route: int | None = None) -> None:
        super().__init__(message)
        self.fix, self.link, self.node, self.route = fix, link, node, route


@dataclass
class Segment:
    """One L2 segment: the links it is made of and the host/router ends on it."""
    links: list[int] = field(default_factory=list)
    ends: list[tuple[str, int]] = field(default_factory=list)     # (host or router, link index)
    network: IPv4Network | None = None

    def nodes(self) -> list[str]:
        return [node for node, _ in self.ends]


@dataclass(frozen=True)
class RouteSpec:
    """A `routes:` entry as written: to a host name, a prefix or default, via a router or an address."""
    node: str
    to: str
    via: str
    line: int | None = None


def segments_of(hosts: tuple[str, ...], routers: tuple[str, ...], links: tuple[Link, ...]) -> list[Segment]:
    """The L2 segments in order of their first link: routers split them, switches and hosts do not."""
    parent: dict[str, str] = {}

    def root(n: str) -> str:
        parent.setdefault(n, n)
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    for link in links:
        if link.a not in routers and link.b not in routers:
            parent[root(link.a)] = root(link.b)
    by_key: dict[object, Segment] = {}
    ordered: list[Segment] = []
    seen: dict[tuple[str, object], int] = {}
    for i, link in enumerate(links):
        key: object = ("link", i) if link.a in routers and link.b in routers else \
            root(link.b if link.a in routers else link.a)
        if key not in by_key:
            by_key[key] = Segment()
            ordered.append(by_key[key])
        seg = by_key[key]
        seg.links.append(i)
        for end in (link.a, link.b):
            if end in hosts or end in routers:
                if (end, key) in seen:
                    other = links[seen[(end, key)]]
                    raise RoutingError(f"{end} has two links into one LAN (this one and {other.a} - {other.b}): it "
                                       "would have two addresses in one subnet and two routes to it.", link=i,
                                       fix="remove one of the links (a LAN needs one link per node).")
                seen[(end, key)] = i
                seg.ends.append((end, i))
    return ordered


def _given(segment: Segment, given: dict[tuple[str, int], IPv4Interface]) -> IPv4Network | None:
    """The network the given addresses on a segment agree on (None when none is given)."""
    nets = {given[end].network: end for end in segment.ends if end in given}
    if len(nets) > 1:
        (n1, e1), (n2, e2) = list(nets.items())[:2]
        raise RoutingError(f"{e1[0]} ({given[e1]}) and {e2[0]} ({given[e2]}) share a LAN but their addresses are in "
                           f"different subnets ({n1}, {n2}).", link=e2[1],
                           fix="give every address on one LAN the same prefix, e.g. 10.1.0.1/24 and 10.1.0.11/24.")
    return next(iter(nets), None)


def assign_networks(segments: list[Segment], given: dict[tuple[str, int], IPv4Interface], routed: bool) -> None:
    """Each segment's network: its given addresses', else the next free 10.K.0.0/24 (10.0.0.0/8 when flat)."""
    if not routed:
        for seg in segments:
            seg.network = _given(seg, given) or FLAT_NETWORK
        return
    taken = [(n, seg) for n, seg in ((_given(seg, given), seg) for seg in segments) if n is not None]
    _apart(taken, given)
    nets = [n for n, _ in taken]
    k = 0
    for seg in segments:
        seg.network = _given(seg, given)
        if seg.network is None:
            k, seg.network = _next_free(k, nets, seg)


def _apart(taken: list[tuple[IPv4Network, Segment]], given: dict[tuple[str, int], IPv4Interface]) -> None:
    """Given subnets of different LANs must not overlap."""
    for i, (net, _) in enumerate(taken):
        for other, seg in taken[i + 1:]:
            if net.overlaps(other):
                raise RoutingError(f"the given subnets {net} and {other} overlap but are different LANs.",
                                   link=next(link for end, link in seg.ends if (end, link) in given),
                                   fix="give each LAN (each switch's hosts, each router-router link) its own subnet.")


def _next_free(k: int, nets: list[IPv4Network], seg: Segment) -> tuple[int, IPv4Network]:
    """The first 10.K.0.0/24 after K that no given subnet overlaps."""
    while True:
        k += 1
        if k > MAX_SUBNETS:
            raise RoutingError(f"more than {MAX_SUBNETS} subnets of 10.0.0.0/8 to number automatically (the given "
                               "subnets take some of them).", link=seg.links[0],
                               fix="give some links addresses: (addresses: {r1: 172.16.0.1/30}).")
        candidate = IPv4Network(f"10.{k}.0.0/{ROUTED_PREFIX_LEN}")
        if not any(candidate.overlaps(n) for n in nets):
            return k, candidate


def _candidates(network: IPv4Network, start: int) -> list[IPv4Address]:
    """Free-to-use addresses of a subnet from .start on, then the lower ones (a /30 has no .11; a
    /31's two addresses are both usable, RFC 3021)."""
    usable = list(network) if network.prefixlen >= 31 else list(network.hosts())
    if not usable:
        return []
    first = network.network_address + start
    return [a for a in usable if a >= first] + [a for a in usable if a < first]


def _given_on(seg: Segment, given: dict[tuple[str, int], IPv4Interface]) -> dict[tuple[str, int], IPv4Address]:
    """The addresses given to a segment's ends, each used once."""
    out: dict[tuple[str, int], IPv4Address] = {}
    for end in (e for e in seg.ends if e in given):
        twin = next((e for e, a in out.items() if a == given[end].ip), None)
        if twin:
            raise RoutingError(f"{end[0]} and {twin[0]} are both given {given[end].ip}.", link=end[1],
                               fix="give each interface of a LAN its own address.")
        out[end] = given[end].ip
    return out


def _numbered(seg: Segment, hosts: tuple[str, ...], routers: tuple[str, ...], routed: bool,
              given: dict[tuple[str, int], IPv4Interface]) -> dict[tuple[str, int], IPv4Address]:
    """Addresses of a segment's ends: given ones kept, routers .1.., hosts .11.. (or the lowest free
    where the subnet is smaller); flat: hosts .1.. in order."""
    assert seg.network is not None
    out = _given_on(seg, given)
    hosts_first = sorted((e for e in seg.ends if e not in given and e[0] in hosts), key=lambda e: hosts.index(e[0]))
    routers_first = sorted((e for e in seg.ends if e not in given and e[0] in routers), key=lambda e: routers.index(e[0]))
    if not routed:       # the flat plan: host N of hosts: is 10.0.0.N, whichever switch it hangs on
        return out | {end: seg.network.network_address + hosts.index(end[0]) + 1 for end in hosts_first}
    used = set(out.values())
    for group, start in ((routers_first, FIRST_ROUTER), (hosts_first, FIRST_HOST)):
        for end in group:
            address = next((a for a in _candidates(seg.network, start) if a not in used), None)
            if address is None:
                raise RoutingError(f"the subnet {seg.network} has no address left for {end[0]}.", link=end[1],
                                   fix="give the LAN a larger prefix in addresses: (e.g. /24).")
            used.add(address)
            out[end] = address
    return out


def interfaces_of(hosts: tuple[str, ...], routers: tuple[str, ...], links: tuple[Link, ...],
                  given: dict[tuple[str, int], IPv4Interface] | None = None) -> tuple[list[Segment], tuple[Interface, ...]]:
    """Every host and router interface with its address, subnet and MTU (link order, end a first)."""
    given = given or {}
    routed = bool(routers)
    segs = segments_of(hosts, routers, links)
    assign_networks(segs, given, routed)
    by_end: dict[tuple[str, int], tuple[IPv4Address, Segment]] = {}
    for seg in segs:
        for end, address in _numbered(seg, hosts, routers, routed, given).items():
            by_end[end] = (address, seg)
    mtus = {id(seg): segment_mtu(seg, links) for seg in segs}
    out = []
    for i, link in enumerate(links):
        for node, peer in ((link.a, link.b), (link.b, link.a)):
            if (node, i) in by_end:
                address, seg = by_end[(node, i)]
                assert seg.network is not None
                out.append(Interface(node, i, peer, str(address), seg.network.prefixlen, str(seg.network), mtus[id(seg)]))
    return segs, tuple(out)


def segment_mtu(seg: Segment, links: tuple[Link, ...]) -> int | None:
    """A LAN has one MTU: a bridge forwards frames without fragmenting, and a veth drops what exceeds its own."""
    mtus = {links[i].mtu for i in seg.links if links[i].mtu is not None}
    if len(mtus) > 1:
        i = next(i for i in seg.links if links[i].mtu is not None and links[i].mtu != min(mtus))
        raise RoutingError(f"one LAN has links with different MTUs ({', '.join(str(m) for m in sorted(mtus))}): a switch "
                           "forwards frames without fragmenting, so the larger ones would be dropped silently.", link=i,
                           fix="give every link of the LAN the same mtu:, or put a router between the two parts.")
    return next(iter(mtus), None)


# --- routes ---------------------------------------------------------------------------------------

def _l3_graph(segs: list[Segment], links: tuple[Link, ...]) -> dict[str, list[tuple[int, str, int]]]:
    """node -> [(cost, neighbour, link index of node's interface)] for hosts and routers sharing a LAN;
    cost = the links' costs along the L2 path between them (a segment is a tree: one path)."""
    graph: dict[str, list[tuple[int, str, int]]] = {}
    for seg in segs:
        adj: dict[str, list[tuple[str, int]]] = {}
        for i in seg.links:
            adj.setdefault(links[i].a, []).append((links[i].b, i))
            adj.setdefault(links[i].b, []).append((links[i].a, i))
        for node, link in seg.ends:
            cost = _costs_from(node, link, adj, links, {n for n, _ in seg.ends})
            for other, other_link in seg.ends:
                if (other, other_link) != (node, link) and other in cost:
                    graph.setdefault(node, []).append((cost[other], other, link))
    return graph


def _costs_from(node: str, link: int, adj: dict[str, list[tuple[str, int]]], links: tuple[Link, ...],
                endpoints: set[str]) -> dict[str, int]:
    """Cost from `node` (leaving by `link`) to every other end of the segment, walking through switches."""
    first = links[link].b if links[link].a == node else links[link].a
    cost = {first: links[link].cost}
    todo = [first] if first not in endpoints else []
    while todo:
        here = todo.pop()
        for nxt, i in adj.get(here, []):
            if nxt not in cost and nxt != node:
                cost[nxt] = cost[here] + links[i].cost
                if nxt not in endpoints:
                    todo.append(nxt)
    return cost


def _first_hops(source: str, graph: dict[str, list[tuple[int, str, int]]], routers: tuple[str, ...],
                ) -> dict[str, tuple[int, str, int]]:
    """Dijkstra from `source` through routers only: node -> (cost, first hop, link it leaves source by)."""
    rank = {r: i for i, r in enumerate(routers)}
    best: dict[str, tuple[int, str, int]] = {}
    heap: list[tuple[int, int, str, str, int]] = []
    for cost, nxt, link in graph.get(source, []):
        heapq.heappush(heap, (cost, rank.get(nxt, len(rank)), nxt, nxt, link))
    while heap:
        cost, r, node, hop, link = heapq.heappop(heap)
        if node in best or node == source:
            continue
        best[node] = (cost, hop, link)
        if node in rank:            # only routers forward
            for step, nxt, _ in graph.get(node, []):
                if nxt not in best:
                    heapq.heappush(heap, (cost + step, rank.get(hop, len(rank)), nxt, hop, link))
    return best


def computed_routes(segs: list[Segment], interfaces: tuple[Interface, ...], links: tuple[Link, ...],
                    routers: tuple[str, ...]) -> list[Route]:
    """For each host and router, a route to every subnet it is not on, via the start of its cheapest path."""
    graph = _l3_graph(segs, links)
    address = {(i.node, i.link): i.address for i in interfaces}
    on_subnet: dict[str, set[str]] = {}
    for i in interfaces:
        on_subnet.setdefault(i.node, set()).add(i.subnet)
    routes = []
    for node in dict.fromkeys(i.node for i in interfaces):
        hops = _first_hops(node, graph, routers)
        for seg in segs:
            subnet = str(seg.network)
            if subnet in on_subnet[node]:
                continue
            # the cost to a router on the LAN, plus its own link into it: the links a packet crosses
            reach = [(hops[r][0] + links[i].cost, *hops[r][1:]) for r, i in seg.ends if r in routers and r in hops]
            if not reach:
                continue
            cost, hop, link = min(reach, key=lambda c: (c[0], routers.index(c[1]) if c[1] in routers else 0))
            hop_link = next(i.link for i in interfaces if i.node == hop and i.subnet == _subnet_of(interfaces, node, link))
            routes.append(Route(node, subnet, address[(hop, hop_link)], hop, link, False))
    return routes


def _subnet_of(interfaces: tuple[Interface, ...], node: str, link: int) -> str:
    return next(i.subnet for i in interfaces if i.node == node and i.link == link)


def with_overrides(routes: list[Route], specs: list[RouteSpec], interfaces: tuple[Interface, ...],
                   hosts: tuple[str, ...], routers: tuple[str, ...]) -> list[Route]:
    """The computed routes with each `routes:` entry replacing the route to the same prefix (or added)."""
    out = list(routes)
    for n, spec in enumerate(specs):
        prefix = _prefix(spec, interfaces, hosts, routers, n)
        own = next((i.subnet for i in interfaces if i.node == spec.node and prefix != "default"
                    and IPv4Network(i.subnet).overlaps(IPv4Network(prefix))), None)
        if own:
            raise RoutingError(f"{prefix} overlaps {own}, a LAN {spec.node} is on: the kernel would send part of its "
                               "own LAN elsewhere (the longest prefix wins), or the route would replace its own.",
                               node=spec.node, route=n, fix="remove this entry, or route a subnet outside its LANs.")
        hop = _next_hop(spec, interfaces, routers, n)
        out = [r for r in out if not (r.node == spec.node and r.prefix == prefix)]
        out.append(Route(spec.node, prefix, hop.address, hop.node, _shared_link(spec, hop, interfaces, n), True, spec.line))
    return out


def _prefix(spec: RouteSpec, interfaces: tuple[Interface, ...], hosts: tuple[str, ...], routers: tuple[str, ...],
            n: int) -> str:
    if spec.to == "default":
        return "default"
    if spec.to in hosts:
        return next(i.subnet for i in interfaces if i.node == spec.to)
    if spec.to in routers:
        raise RoutingError(f"to: {spec.to} names a router, which is on several subnets.", node=spec.node, route=n,
                           fix="write the subnet you mean (to: 10.2.0.0/24), or a host's name.")
    try:
        return str(IPv4Network(spec.to, strict=True))
    except ValueError:
        raise RoutingError(f"to: {spec.to!r} is neither a host of this topology, a subnet (10.2.0.0/24) nor default.",
                           node=spec.node, route=n, fix=f"use one of: {', '.join(hosts)}, a subnet, or default.") from None


def _next_hop(spec: RouteSpec, interfaces: tuple[Interface, ...], routers: tuple[str, ...], n: int) -> Interface:
    """The neighbour's interface on a subnet `spec.node` is on (via: a router's name or one of its addresses)."""
    mine = {i.subnet for i in interfaces if i.node == spec.node}
    candidates = [i for i in interfaces if i.subnet in mine and (i.node == spec.via if spec.via in routers
                                                                  else i.address == _address(spec, routers, n))]
    if not candidates:
        raise RoutingError(f"{spec.node} shares no LAN with {spec.via}, so it cannot send to it directly.", node=spec.node,
                           route=n, fix=f"name a router on one of {spec.node}'s subnets ({', '.join(sorted(mine))}).")
    if candidates[0].node == spec.node:
        raise RoutingError(f"via: {spec.via} is {spec.node} itself.", node=spec.node, route=n,
                           fix="name the neighbouring router the segments go to next.")
    if spec.via not in routers and candidates[0].node not in routers:
        raise RoutingError(f"via: {spec.via} is {candidates[0].node}'s address, and hosts do not forward.", node=spec.node,
                           route=n, fix="route via a router.")
    return candidates[0]


def _address(spec: RouteSpec, routers: tuple[str, ...], n: int) -> str:
    try:
        return str(ip_address(spec.via))
    except ValueError:
        raise RoutingError(f"via: {spec.via!r} is neither a router of this topology nor an address.", node=spec.node,
                           route=n, fix=f"use one of: {', '.join(routers) or '(no routers)'}.") from None


def _shared_link(spec: RouteSpec, hop: Interface, interfaces: tuple[Interface, ...], n: int) -> int:
    return next(i.link for i in interfaces if i.node == spec.node and i.subnet == hop.subnet)

