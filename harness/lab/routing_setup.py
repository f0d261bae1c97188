"""Routers, addresses, routes and MTU of a lab: the commands that set them and the read-back that
proves them. Mininet only prints what fails (and a veth silently drops frames over its MTU), so a
lab whose kernel state differs from the plan (harness.load.routing) is refused before any run.

Pure pieces (what to set, how to read `ip -j` and `sysctl` output) are apart from the two
functions that touch the lab (configure, verify), so they are tested on recorded outputs."""
from __future__ import annotations

import functools
import json
import shlex
from dataclasses import dataclass, field
from ipaddress import ip_network

from harness.errors import RunFailed
from harness.load.routing import segment_mtu, segments_of
from harness.model import Topology
from harness.runlog import node_pexec

KERNEL_MTU = 1500      # what a veth and a bridge port have unless told otherwise
# a router forwards and answers with ICMP as Linux does, but never redirects a host to a shorter
# path (that would change the planned path) nor drops a packet for arriving on the "wrong" port
# (asymmetric routes are the point); hosts in a routed lab ignore redirects for the same reason
ROUTER_SYSCTLS = {"rp_filter": "0", "send_redirects": "0", "accept_redirects": "0"}
HOST_SYSCTLS = {"rp_filter": "0", "accept_redirects": "0"}

Ports = dict[tuple[str, int], str]     # (node, index of the link in Topology.links) -> interface name


@functools.cache
def router_class():
    """The Mininet node class of a router: a host (own shell, own network namespace) that the
    lab recognises; forwarding is switched on by configure() so run.log shows it."""
    from mininet.node import Host

    class Router(Host):
        """A Linux router of the topology (net.ipv4.ip_forward=1 once configured)."""

    return Router


def is_router(node) -> bool:
    return isinstance(node, router_class())


@dataclass
class NodePlan:
    """What one host or router must have, by interface name."""
    name: str
    router: bool
    addresses: dict[str, tuple[str, int]] = field(default_factory=dict)     # interface -> (address, prefix len)
    subnets: dict[str, str] = field(default_factory=dict)                   # interface -> its subnet
    mtus: dict[str, int] = field(default_factory=dict)                      # interface -> MTU (all, 1500 unless set)
    routes: list[tuple[str, str, str]] = field(default_factory=list)        # (prefix, via, interface)
    sysctls: dict[str, str] = field(default_factory=dict)


def node_sysctls(router: bool, interfaces: list[str]) -> dict[str, str]:
    """The forwarding settings of a node of a routed lab: on all, default and each interface (the
    kernel takes the larger of all and the interface for rp_filter, and needs both off for redirects)."""
    wanted = ROUTER_SYSCTLS if router else HOST_SYSCTLS
    out = {"net.ipv4.ip_forward": "1"} if router else {}
    for scope in ("all", "default", *interfaces):
        out.update({f"net.ipv4.conf.{scope}.{name}": value for name, value in wanted.items()})
    return out


def node_plans(topology: Topology, ports: Ports) -> list[NodePlan]:
    """Each host's and router's addresses, MTUs, routes and (routed labs only) sysctls."""
    routed = bool(topology.routers)
    plans = {n: NodePlan(n, n in topology.routers) for n in (*topology.hosts, *topology.routers)}
    for i in topology.interfaces:
        name, plan = ports[(i.node, i.link)], plans[i.node]
        plan.addresses[name] = (i.address, i.prefix_len)
        plan.subnets[name] = str(ip_network(i.subnet))
        plan.mtus[name] = i.mtu or KERNEL_MTU
    for r in topology.routes:
        plans[r.node].routes.append((r.prefix, r.via, ports[(r.node, r.link)]))
    if routed:
        for plan in plans.values():
            plan.sysctls = node_sysctls(plan.router, list(plan.addresses))
    return list(plans.values())


def switch_port_mtus(topology: Topology, ports: Ports) -> dict[str, int]:
    """Every switch port's MTU: its LAN's (a bridge forwards frames whole), else the kernel's 1500."""
    out = {}
    for seg in segments_of(topology.hosts, topology.routers, topology.links):
        mtu = segment_mtu(seg, topology.links) or KERNEL_MTU
        for i in seg.links:
            link = topology.links[i]
            out.update({ports[(end, i)]: mtu for end in (link.a, link.b) if end in topology.switches})
    return out


def batch_lines(mtus: dict[str, int], routes: list[tuple[str, str, str]]) -> list[str]:
    """`ip -batch` lines: MTUs first (a route's interface must carry its packets), then the routes."""
    return ([f"link set dev {intf} mtu {mtu}" for intf, mtu in mtus.items() if mtu != KERNEL_MTU]
            + [f"route replace {prefix} via {via} dev {intf}" for prefix, via, intf in routes])


def setup_command(sysctls: dict[str, str], lines: list[str]) -> list[str] | None:
    """One process per node for all it needs set (exec is what costs in an emulated VM, ~0.1 s
    each): its sysctls, then one `ip -batch` of MTUs and routes (ip stops at the first failing
    line and names it, -:N). Every value and line is in the command run.log shows. None: nothing to set."""
    parts = [shlex.join(sysctl_command(sysctls))] if sysctls else []
    parts += ['printf "%s\\n" "$@" | ip -batch -'] if lines else []
    return ["sh", "-c", " && ".join(parts), "setup", *lines] if parts else None


def sysctl_command(values: dict[str, str]) -> list[str]:
    return ["sysctl", "-q", "-w", *(f"{k}={v}" for k, v in values.items())]


READBACK = ("addr", "route", "sysctl")


def readback_command(sysctl_names: list[str]) -> list[str]:
    """One process per node reading back its interfaces, routes and (if any) sysctls, each after a
    marker line (#addr, #route, #sysctl) that parse_readback splits on."""
    parts = ["echo '#addr'", "ip -j addr show", "echo '#route'", "ip -j route show"]
    parts += ["echo '#sysctl'", shlex.join(["sysctl", "-e", *sysctl_names])] if sysctl_names else []
    return ["sh", "-c", " && ".join(parts)]


def parse_readback(out: str) -> dict[str, str]:
    """readback_command's output by section; a section missing is empty."""
    sections: dict[str, list[str]] = {name: [] for name in READBACK}
    current = None
    for line in out.splitlines():
        if line.startswith("#") and line[1:] in sections:
            current = line[1:]
        elif current is not None:
            sections[current].append(line)
    return {name: "\n".join(lines) for name, lines in sections.items()}


def parse_sysctls(out: str) -> dict[str, str]:
    """`sysctl NAME...` output (`name = value` lines) as a dict, whitespace in values squeezed."""
    return {k: " ".join(v.split()) for k, v in (line.split(" = ", 1) for line in out.splitlines() if " = " in line)}


def address_problems(plan: NodePlan, ip_addr: list[dict]) -> list[str]:
    """What `ip -j addr show` in the node says that differs from the plan: missing interfaces, down
    ones, another IPv4 address (or an unplanned interface with one), another MTU."""
    problems, seen = [], {entry.get("ifname"): entry for entry in ip_addr}
    for intf in plan.addresses:
        problems += _interface_problems(plan, intf, seen.get(intf))
    for name, entry in seen.items():
        extra = _inet(entry)
        if name not in plan.addresses and name != "lo" and extra:
            problems.append(f"{plan.name} {name}: unplanned interface with IPv4 address "
                            f"{', '.join(a.split('/')[0] for a in extra)}")
    return problems


def _inet(entry: dict) -> list[str]:
    return [f"{a['local']}/{a['prefixlen']}" for a in entry.get("addr_info", []) if a.get("family") == "inet"]


def _interface_problems(plan: NodePlan, intf: str, entry: dict | None) -> list[str]:
    """One planned interface against its `ip -j addr` entry."""
    if entry is None:
        return [f"{plan.name} {intf}: no such interface"]
    problems, address, flags = [], "/".join(map(str, plan.addresses[intf])), entry.get("flags", [])
    if _inet(entry) != [address]:
        problems.append(f"{plan.name} {intf}: IPv4 address {', '.join(_inet(entry)) or 'none'}, planned {address}")
    if entry.get("mtu") != plan.mtus[intf]:
        problems.append(f"{plan.name} {intf}: MTU {entry.get('mtu')}, planned {plan.mtus[intf]}")
    if not {"UP", "LOWER_UP"} <= set(flags):
        problems.append(f"{plan.name} {intf}: not up (flags {','.join(flags)})")
    return problems


def _prefix(dst: str) -> str:
    """A route's destination as the plan writes it (ip prints a /32 as a bare address)."""
    return dst if dst == "default" else str(ip_network(dst, strict=False))


def route_problems(plan: NodePlan, ip_route: list[dict]) -> list[str]:
    """What `ip -j route show` (the main table) says that differs: each planned route present with its
    next hop and interface, each subnet reached directly on its interface, no route via a gateway unplanned."""
    problems = []
    table = {_prefix(entry["dst"]): entry for entry in ip_route}
    for prefix, via, intf in plan.routes:
        entry = table.get(prefix)
        got = None if entry is None else (entry.get("gateway"), entry.get("dev"))
        if got != (via, intf):
            problems.append(f"{plan.name}: route {prefix} via {via} dev {intf} planned, the kernel has "
                            + ("none" if got is None else f"via {got[0] or '(direct)'} dev {got[1]}"))
    for intf, subnet in plan.subnets.items():
        entry = table.get(subnet)
        if entry is None or entry.get("gateway") or entry.get("dev") != intf:
            problems.append(f"{plan.name} {intf}: no direct route to its subnet {subnet}")
    planned = {prefix for prefix, _, _ in plan.routes}
    for prefix, entry in table.items():
        if entry.get("gateway") and prefix not in planned:
            problems.append(f"{plan.name}: unplanned route {prefix} via {entry['gateway']} dev {entry.get('dev')}")
    return problems


def sysctl_problems(plan: NodePlan, values: dict[str, str]) -> list[str]:
    return [f"{plan.name}: sysctl {name} = {values.get(name, 'missing')}, planned {want}"
            for name, want in plan.sysctls.items() if values.get(name) != want]


def link_mtu_problems(wanted: dict[str, int], ip_link: list[dict]) -> list[str]:
    """Switch ports (`ip -j link show` where the switches are) whose MTU differs from their LAN's."""
    mtus = {entry.get("ifname"): entry.get("mtu") for entry in ip_link}
    return [f"switch port {intf}: " + ("missing" if intf not in mtus else f"MTU {mtus[intf]}, planned {mtu}")
            for intf, mtu in wanted.items() if mtus.get(intf) != mtu]


def _run(node, args: list[str], what: str) -> str:
    out, err, code = node_pexec(node, args)
    if code:
        raise RunFailed(f"{what} failed in {node.name}: {(err or out).strip()[-400:]}")
    return out


def configure(net, topology: Topology, ports: Ports) -> None:
    """Set forwarding sysctls, MTUs and routes on every host and router, and the switch ports' MTUs."""
    for plan in node_plans(topology, ports):
        command = setup_command(plan.sysctls, batch_lines(plan.mtus, plan.routes))
        if command:
            _run(net.get(plan.name), command, "setting sysctls, MTUs and routes")
    command = setup_command({}, batch_lines(switch_port_mtus(topology, ports), []))
    if command:     # switch ports live where the switches run (the machine's namespace)
        _run(net.get(topology.switches[0]), command, "setting switch port MTUs")


def verify(net, topology: Topology, ports: Ports) -> None:
    """Read every address, MTU, route and forwarding sysctl back; RunFailed naming each difference."""
    problems: list[str] = []
    for plan in node_plans(topology, ports):
        got = parse_readback(_run(net.get(plan.name), readback_command(list(plan.sysctls)), "reading the lab back"))
        problems += address_problems(plan, json.loads(got["addr"] or "[]"))
        problems += route_problems(plan, json.loads(got["route"] or "[]"))
        problems += sysctl_problems(plan, parse_sysctls(got["sysctl"]))
    wanted = switch_port_mtus(topology, ports)
    if wanted:
        out = _run(net.get(topology.switches[0]), ["ip", "-j", "link", "show"], "ip link")
        problems += link_mtu_problems(wanted, json.loads(out or "[]"))
    if problems:
        raise RunFailed("the lab is not as planned (addresses, routes, MTU, forwarding), so no run on it could be "
                        "trusted:\n  " + "\n  ".join(problems))
