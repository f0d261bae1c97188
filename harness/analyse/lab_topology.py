"""A harness.model.Topology rebuilt from a result.json's "lab" section.

Why: the way a segment took through a recorded run is the way the routes sent it (an asymmetric
path, routers in a loop), and Topology.path is the one walk that follows them (longest-prefix
route per node, L2 through the switches of a LAN). The report reads only the run folder, so the
lab it recorded is turned back into a Topology. A lab recorded before "interfaces"/"routes" (a
flat topology) gives a Topology without an address plan: its path is the one through the switches."""
from __future__ import annotations

from ipaddress import ip_address, ip_network
from pathlib import Path

from harness.model import Impairment, Interface, Link, Route, Topology

IMPAIRMENT_FIELDS = ("delay_s", "jitter_s", "loss_pct", "bw_mbit", "queue")


def _impairment(way: dict | None) -> Impairment:
    way = way or {}
    return Impairment(**{k: way[k] for k in IMPAIRMENT_FIELDS if way.get(k) is not None})


def _link(link: dict) -> Link:
    return Link(link["a"], link["b"], _impairment(link.get("a_to_b")), _impairment(link.get("b_to_a")),
                mtu=link.get("mtu"), cost=link.get("cost") or 1)


def _interface(i: dict) -> Interface:
    return Interface(i["node"], i["link"], i["peer"], i["address"], i["prefix_len"], i["subnet"], i.get("mtu"))


def _route(r: dict, interfaces: tuple[Interface, ...]) -> Route:
    """A recorded route; the link it leaves by is that of its node's interface on the next hop's subnet."""
    link = next((i.link for i in interfaces if i.node == r["node"]
                 and ip_address(r["via"]) in ip_network(i.subnet, strict=False)), -1)
    return Route(r["node"], r["prefix"], r["via"], r["via_node"], link, bool(r.get("given")))


def lab_topology(lab: dict) -> Topology:
    """The Topology a result.json's lab section describes (hosts, switches, routers, links in
    order, interfaces and routes when recorded)."""
    interfaces = tuple(_interface(i) for i in lab.get("interfaces") or [])
    routes = tuple(_route(r, interfaces) for r in lab.get("routes") or []) if interfaces else ()
    return Topology(name=lab.get("name", "recorded"), hosts=tuple(lab.get("hosts") or {}),
                    switches=tuple(lab.get("switches") or []), links=tuple(_link(k) for k in lab.get("links") or []),
                    source=Path("result.json"), routers=tuple(lab.get("routers") or []),
                    interfaces=interfaces, routes=routes)
