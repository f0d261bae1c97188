"""Routers, addresses, routes and MTU of a lab: the commands that set them and the read-back that
proves them. Mininet only prints what fails (and a veth silently drops frames over its MTU), so a
lab whose kernel state differs from the plan (harness.load.routing) is refused before any run.

Pure pieces (what to set, how to read `ip -j` and `sysctl` output) are apart from the functions
that touch the lab (lab_batch sets each node's Pending, read_lab and verify read it back), so
they are tested on recorded outputs."""
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
    lab recognises; forwarding is switched on by its sysctls in lab_batch's process (see
    plan_into_pending), so run.log shows it."""
    host_class, _ = batched_classes()

    class Router(host_class):
        """A Linux router of the topology (net.ipv4.ip_forward=1 once configured)."""

    return Router


def is_router(node) -> bool:
    return isinstance(node, router_class())


@dataclass
class Pending:
    """What Mininet would have set on one node's interfaces with a process per command (ifconfig
    up, ifconfig down/hw ether/up, ifconfig ADDR up, ethtool -K, tc qdisc show, tc qdisc add: ~7
    per interface, 0.1-0.3 s of wall time apiece in the VM), kept to be set in one process."""
    macs: dict[str, str] = field(default_factory=dict)          # interface -> MAC (the last asked)
    addresses: dict[str, str] = field(default_factory=dict)     # interface -> address/prefix (the last asked)
    up: list[str] = field(default_factory=list)                 # interfaces to bring up, in order
    ethtool: dict[str, list[str]] = field(default_factory=dict)    # interface -> `ethtool -K` arguments
    tc: list[str] = field(default_factory=list)                 # `tc -batch` lines (Mininet's own tc commands)
    sysctls: dict[str, str] = field(default_factory=dict)       # the plan's forwarding sysctls (routed labs)
    planned: list[str] = field(default_factory=list)            # the plan's MTUs and routes (`ip -batch` lines)

    def bring_up(self, intf: str) -> None:
        if intf not in self.up:
            self.up.append(intf)

    def ip_lines(self) -> list[str]:
        """MACs before the interfaces go up (a veth takes a new MAC only while down), then up,
        then the addresses (`brd +`: the broadcast ifconfig gives, the subnet's last address)."""
        return ([f"link set dev {intf} address {mac}" for intf, mac in self.macs.items()]
                + [f"link set dev {intf} up" for intf in self.up]
                + [f"addr add {address} brd + dev {intf}" for intf, address in self.addresses.items()]
                + self.planned)     # MTUs, then routes through the addressed interfaces

    def command(self) -> list[str] | None:
        """One shell: an `ip -batch` of the links and addresses, each interface's `ethtool -K` (its
        failure said, not fatal: Mininet never checked it either), a `tc -batch` of the qdiscs.
        Every line is in the command run.log shows. None: nothing to set."""
        ip, tc = self.ip_lines(), self.tc
        parts = [shlex.join(sysctl_command(self.sysctls))] if self.sysctls else []
        parts += ['pick ip "$@" | ip -batch -'] if ip else []
        parts += [f"{{ {shlex.join(['ethtool', '-K', intf, *args])} || echo 'ethtool -K {intf} failed' >&2; }}"
                  for intf, args in self.ethtool.items()]
        parts += ['pick tc "$@" | tc -batch -'] if tc else []
        lines = [f"ip: {line}" for line in ip] + [f"tc: {line}" for line in tc]
        return ["sh", "-c", PICK + " && ".join(parts), "lab-batch", *lines] if parts else None


# the lines of one program ("ip: link set ..." -> "link set ..."), from the shell's arguments
PICK = 'pick() { p=$1; shift; for l; do case $l in "$p: "*) printf "%s\\n" "${l#"$p: "}";; esac; done; }; '


def pending(node) -> Pending:
    """The node's Pending (made on first use)."""
    if getattr(node, "pending", None) is None:
        node.pending = Pending()
    return node.pending


@functools.cache
def batched_classes():
    """(host class, interface class) that keep what Mininet's Host.config and TCIntf.config would
    set, in Pending, for lab_batch to set in one process per node. The tc commands are Mininet's
    own (TCIntf.bwCmds, delayCmds), less the `tc qdisc show` Mininet runs first to find a qdisc to
    delete: a new veth has none (noqueue). Attributes (ip, prefixLen, mac) are kept as Mininet does."""
    from mininet.link import TCIntf
    from mininet.node import Host

    class BatchedIntf(TCIntf):
        def setMAC(self, macstr):
            self.mac = pending(self.node).macs[self.name] = macstr
            pending(self.node).bring_up(self.name)      # `ifconfig down; hw ether; up`

        def setIP(self, ipstr, prefixLen=None):
            self.ip, self.prefixLen = ipstr.split("/") if "/" in ipstr else (ipstr, prefixLen)
            pending(self.node).addresses[self.name] = f"{self.ip}/{self.prefixLen}"
            pending(self.node).bring_up(self.name)      # `ifconfig ADDR up`

        def isUp(self, setUp=False):
            if not setUp:
                return super().isUp(setUp)
            pending(self.node).bring_up(self.name)
            return True

        def config(self, bw=None, delay=None, jitter=None, loss=None, gro=False, txo=True, rxo=True,
                   max_queue_size=None, **params):
            result = super(TCIntf, self).config(**params)       # Intf.config: MAC, address, up (kept)
            pending(self.node).ethtool[self.name] = ["gro", "on" if gro else "off", "tx", "on" if txo else "off",
                                                     "rx", "on" if rxo else "off"]
            cmds, parent = self.bwCmds(bw=bw)
            netem, parent = self.delayCmds(delay=delay, jitter=jitter, loss=loss, max_queue_size=max_queue_size,
                                           parent=parent)
            pending(self.node).tc.extend(" ".join((cmd % ("", self.name)).split()) for cmd in cmds + netem)
            return result

    class BatchedHost(Host):
        def config(self, mac=None, ip=None, defaultRoute=None, lo="up", **_params):
            """Host.config, with `ifconfig lo up` kept in Pending."""
            result: dict = {}
            self.setParam(result, "setMAC", mac=mac)
            self.setParam(result, "setIP", ip=ip)
            self.setParam(result, "setDefaultRoute", defaultRoute=defaultRoute)
            if lo == "up":
                pending(self).bring_up("lo")
            else:
                self.cmd("ifconfig lo " + lo)
            return result

    return BatchedHost, BatchedIntf


def plan_into_pending(net, topology: Topology, ports: Ports) -> None:
    """The plan's settings (forwarding sysctls, MTUs, routes of every host and router; the switch
    ports' MTUs) kept in the nodes' Pending, so lab_batch sets them in the same process as the links."""
    for plan in node_plans(topology, ports):
        kept = pending(net.get(plan.name))
        kept.sysctls.update(plan.sysctls)
        kept.planned += batch_lines(plan.mtus, plan.routes)
    if topology.switches:        # switch ports live where the switches run (the machine's namespace)
        pending(net.get(topology.switches[0])).planned += batch_lines(switch_port_mtus(topology, ports), [])


def lab_batch(net, nodes: list[str], root: list[str]) -> None:
    """Set what each node's Pending holds: one process per host or router (`nodes`), one for the
    switches' ports (`root`: they all live in the machine's namespace, set from the first)."""
    for name in nodes:
        node = net.get(name)
        command = pending(node).command()
        node.pending = None
        if command:
            _run(node, command, "setting interfaces, addresses and qdiscs")
    together = Pending()
    for name in root:
        node = net.get(name)
        mine = pending(node)
        node.pending = None
        together.macs.update(mine.macs)
        together.addresses.update(mine.addresses)
        together.up += [intf for intf in mine.up if intf not in together.up]
        together.ethtool.update(mine.ethtool)
        together.tc += mine.tc
        together.planned += mine.planned
    command = together.command()
    if command:
        _run(net.get(root[0]), command, "setting the switch ports and qdiscs")


def reapply_switch_qdiscs(net, switches: list[str]) -> None:
    """Open vSwitch takes the qdiscs off the ports it adds (net.start(), after lab_batch), and
    Mininet's OVSSwitch.start puts its links' settings back (TCReapply: TCIntf.config again), which
    our interfaces keep in Pending: set them now, in one process, after deleting whatever root
    qdisc OVS left on those ports. The read-back then proves each netem is there."""
    lines: list[str] = []
    for name in switches:
        node = net.get(name)
        lines += pending(node).tc
        node.pending = None
    lines = list(dict.fromkeys(lines))      # each port's settings once (Mininet reapplies them per start)
    if not lines:
        return
    ports = sorted({line.split(" dev ", 1)[1].split()[0] for line in lines if " dev " in line})
    clear = "".join(f"tc qdisc del dev {shlex.quote(port)} root 2>/dev/null; " for port in ports)
    _run(net.get(switches[0]), ["sh", "-c", clear + 'printf "%s\\n" "$@" | tc -batch -', "ovs-qdiscs", *lines],
         "setting the switch ports' qdiscs again after Open vSwitch took them")


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


def batch_command(program: list[str], lines: list[str]) -> list[str]:
    """`program` (a `tc -batch -`, `ip -batch -`) fed `lines` on stdin, in one shell: the lines are
    its arguments, so run.log shows every one of them in the command it records."""
    return ["sh", "-c", f'printf "%s\\n" "$@" | {shlex.join(program)}', program[0] + "-batch", *lines]


def qdisc_texts(show: str) -> dict[str, str]:
    """`tc qdisc show` (every device) by device, each as `tc qdisc show dev X` prints it (the same
    lines without "dev X"): one process reads back every interface of a namespace."""
    texts: dict[str, list[str]] = {}
    for line in show.replace("\r", "").splitlines():
        words = line.split()
        if len(words) > 4 and words[0] == "qdisc" and words[3] == "dev":
            texts.setdefault(words[4], []).append(" ".join(words[:3] + words[5:]))
    return {dev: "\n".join(lines) for dev, lines in texts.items()}


def sysctl_command(values: dict[str, str]) -> list[str]:
    return ["sysctl", "-q", "-w", *(f"{k}={v}" for k, v in values.items())]


READBACK = ("qdisc", "addr", "route", "sysctl", "link")


def readback_command(sysctl_names: list[str], switches: bool = False) -> list[str]:
    """One process per node (per namespace: the switches share the machine's) reading back its
    qdiscs (every device), then a host's or router's interfaces and routes (one `ip -j -batch`)
    and (if any) sysctls, or the switch ports' links, each after a marker line (#qdisc, #ip,
    #sysctl, #link) that parse_readback splits on. In the VM each process costs 0.1-0.3 s."""
    parts = ["echo '#qdisc'", "tc qdisc show"]
    parts += (["echo '#link'", "ip -j link show"] if switches
              else ["echo '#ip'", "printf 'addr show\\nroute show\\n' | ip -j -batch -"])
    parts += ["echo '#sysctl'", shlex.join(["sysctl", "-e", *sysctl_names])] if sysctl_names else []
    return ["sh", "-c", " && ".join(parts)]


def parse_readback(out: str) -> dict[str, str]:
    """readback_command's output by section; a section missing is empty. The #ip section (`ip -j
    -batch` of addr and route: two JSON documents) is split into addr and route; a recorded
    read-back with #addr and #route sections reads the same."""
    sections: dict[str, list[str]] = {name: [] for name in (*READBACK, "ip")}
    current = None
    for line in out.replace("\r", "").splitlines():
        if line.startswith("#") and line[1:] in sections:
            current = line[1:]
        elif current is not None:
            sections[current].append(line)
    got = {name: "\n".join(lines) for name, lines in sections.items()}
    ip = got.pop("ip")
    if ip.strip():
        got["addr"], got["route"] = _two_documents(ip)
    return got


def _two_documents(text: str) -> tuple[str, str]:
    """The two JSON documents `ip -j -batch` printed for `addr show` and `route show`, as text;
    RunFailed quoting the output when it is not JSON (a warning on stdout, an ip without -j)."""
    decoder, text = json.JSONDecoder(), text.strip()
    try:
        first, end = decoder.raw_decode(text)
        rest = text[end:].strip()
        return json.dumps(first), json.dumps(decoder.raw_decode(rest)[0]) if rest else "[]"
    except ValueError as exc:
        raise not_json("addresses and routes (`ip -j -batch` of addr show, route show)", text, exc) from None


def _json(text: str, what: str):
    """A read-back section's JSON ([] when empty); RunFailed quoting it when it is not JSON."""
    try:
        return json.loads(text or "[]")
    except ValueError as exc:
        raise not_json(what, text, exc) from None


def not_json(what: str, text: str, exc: ValueError) -> RunFailed:
    """The error for a read-back that is not the JSON asked for: one paragraph with its first lines."""
    return RunFailed(f"the lab's read-back of {what} is not JSON ({exc}): {output_start(text)}, so the lab "
                     "cannot be checked. Fix: an iproute2 whose ip prints JSON with -j is needed; a warning "
                     "printed on stdout must be silenced where it comes from.")


def output_start(text: str, lines: int = 3, chars: int = 300) -> str:
    """The first lines of a command's output, on one line and quoted, for a one-paragraph error."""
    kept = text.strip().splitlines()
    head = " | ".join(line.strip() for line in kept[:lines])
    return repr(head[:chars] + ("..." if len(kept) > lines or len(head) > chars else ""))


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


def read_lab(net, topology: Topology, ports: Ports) -> dict[str, dict[str, str]]:
    """Every host's and router's read-back (qdiscs, addresses, routes, planned sysctls) and the
    switches' (qdiscs and links of the machine's namespace, under the first switch's name): one
    process per namespace."""
    got = {plan.name: parse_readback(_run(net.get(plan.name), readback_command(list(plan.sysctls)), "reading the lab back"))
           for plan in node_plans(topology, ports)}
    if topology.switches:     # switch ports live where the switches run (the machine's namespace)
        root = topology.switches[0]
        got[root] = parse_readback(_run(net.get(root), readback_command([], switches=True), "reading the switches back"))
    return got


def verify(net, topology: Topology, ports: Ports, got: dict[str, dict[str, str]] | None = None) -> None:
    """Every address, MTU, route and forwarding sysctl against the plan (read back now, or in
    `got`, read_lab's); RunFailed naming each difference."""
    got = read_lab(net, topology, ports) if got is None else got
    problems: list[str] = []
    for plan in node_plans(topology, ports):
        problems += address_problems(plan, _json(got[plan.name]["addr"], f"{plan.name}'s addresses (ip -j addr show)"))
        problems += route_problems(plan, _json(got[plan.name]["route"], f"{plan.name}'s routes (ip -j route show)"))
        problems += sysctl_problems(plan, parse_sysctls(got[plan.name]["sysctl"]))
    wanted = switch_port_mtus(topology, ports)
    if wanted:
        problems += link_mtu_problems(wanted, _json(got[topology.switches[0]]["link"], "the switch ports (ip -j link show)"))
    if problems:
        raise RunFailed("the lab is not as planned (addresses, routes, MTU, forwarding), so no run on it could be "
                        "trusted:\n  " + "\n  ".join(problems))
