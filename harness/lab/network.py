"""Build the Mininet network for a topology, verify its impairments, and always tear it down."""
from __future__ import annotations

import functools
import os
import re
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from harness.errors import RunFailed
from harness.lab.leftovers import Ledger
from harness.load.units import parse_seconds
from harness.lab.routing_setup import (batch_command, batched_classes, is_router, lab_batch, plan_into_pending, qdisc_texts,
                                       reapply_switch_qdiscs,
                                       read_lab, router_class, verify)
from harness.model import ADDRESS_PREFIX_LEN, Experiment, Impairment, Topology
from harness.runlog import log_command, node_cmd, node_pexec, route_mininet, run_command, say

def tc_params(imp: Impairment) -> dict:
    """Mininet TCIntf keywords for one direction (units always explicit: tc reads bare numbers as µs)."""
    params: dict = {}
    if imp.delay_s:
        params["delay"] = f"{imp.delay_s * 1e3:.3f}ms"
    if imp.jitter_s:
        params["jitter"] = f"{imp.jitter_s * 1e3:.3f}ms"
    if imp.loss_pct:
        params["loss"] = imp.loss_pct
    if imp.bw_mbit:
        params["bw"] = imp.bw_mbit
    if imp.queue:
        params["max_queue_size"] = imp.queue
    return params


def netem_delay_s(tc_output: str) -> float | None:
    """The delay of the netem qdisc in `tc qdisc show` output, or None if there is no netem."""
    if "netem" not in tc_output:
        return None
    m = re.search(r"delay ([0-9.]+(?:us|ms|s))\b", tc_output)
    return parse_seconds(m.group(1)) if m else 0.0


@dataclass(frozen=True)
class Lab:
    """A built network, as the run uses it."""
    net: Any                                         # the Mininet object
    interfaces: dict[str, tuple[str, Impairment]]    # every link interface -> (its node, its egress impairment)
    ports: dict[tuple[str, str], str]                # (node, the node at the other end) -> interface
    qdiscs: dict[str, str]                           # interface -> its `tc qdisc show` text, as built
    host_interfaces: dict[str, str]                  # host -> its default interface
    link_ports: dict[tuple[str, int], str] = field(default_factory=dict)   # (node, link index) -> interface

    def node(self, name: str):
        return self.net.get(name)

    def port(self, node: str, towards: str) -> str:
        """The interface of `node` that leads to `towards`."""
        return self.ports[(node, towards)]


@contextmanager
def mininet_lab(experiment: Experiment, ledger: Ledger, addresses: dict[str, str] | None = None,
                prefix_len: int = ADDRESS_PREFIX_LEN) -> Iterator[Lab]:
    """Build the topology (hosts get `addresses`, as planned, else Mininet's own), verify it, yield
    it as a Lab; teardown runs on any exit."""
    from mininet.link import TCLink
    from mininet.log import setLogLevel
    from mininet.net import Mininet
    from mininet.node import OVSBridge

    setLogLevel("error")
    route_mininet()        # Mininet's debug lines (every tc, ip, ethtool it runs) into run.log
    topo = experiment.topology
    ovs = topo.switch_kind == "ovs"
    _check_tools_in_python(ovs)
    started_ovs = ensure_ovs_running() if ovs and topo.switches else False
    if ovs and topo.switches:
        _ovs_checked()
    switch_cls = OVSBridge if ovs else bridge_class()
    net = Mininet(switch=switch_cls, controller=None, link=TCLink, build=False, autoSetMacs=True)
    try:
        _add_nodes(net, topo, ledger, {h: _host_ip(topo, h, addresses, prefix_len) for h in topo.hosts}, switch_cls)
        egress, ports, link_ports = _add_links(net, topo, ledger)
        say(f"building {len(topo.hosts)} hosts, {len(topo.routers)} routers, {len(topo.switches)} "
            f"{'Open vSwitch' if ovs else 'Linux bridge'} switches, {len(topo.links)} links")
        net.build()
        if topo.interfaces:      # the loader's plan (a hand-made Topology in a test may have none)
            plan_into_pending(net, topo, link_ports)     # the plan's sysctls, MTUs and routes, set with the links
        lab_batch(net, [*topo.hosts, *topo.routers], list(topo.switches))    # one process per node sets its links
        net.start()
        if ovs and topo.switches:
            reapply_switch_qdiscs(net, list(topo.switches))
        _disable_bridge_netfilter()
        got = read_lab(net, topo, link_ports)      # one process per namespace reads back all of it
        qdiscs = verify_impairments(egress, _interface_qdiscs(topo, egress, got))
        if topo.interfaces:
            verify(net, topo, link_ports, got)
        wrong = {h: net.get(h).IP() for h in addresses or {} if net.get(h).IP() != addresses[h]}
        if wrong:        # the agents' plans name the planned addresses: a lab that differs would mislead them
            raise RunFailed(f"hosts did not get their planned addresses: {wrong} (planned {addresses}).")
        yield Lab(net, egress, ports, qdiscs, {h: net.get(h).defaultIntf().name for h in topo.hosts}, link_ports)
    finally:
        try:
            _stop(net)
        finally:
            ledger.close()
            if started_ovs:
                run_command([OVS_CTL, "stop"])


def _stop(net) -> None:
    """net.stop(), also after a Ctrl-C that came while a node's shell ran a command: Mininet then
    leaves the node `waiting`, and every later cmd() on it (stop() deletes the links through it)
    fails an assertion — the interrupt would end as a crash instead of a clean stop. With Linux
    bridges the links and bridges go first, in one process (_delete_links)."""
    for node in [*net.hosts, *net.switches]:
        if getattr(node, "waiting", False):
            node.waiting = False
    if all(isinstance(switch, bridge_class()) for switch in net.switches):
        _delete_links(net)
    net.stop()


def _delete_links(net) -> None:
    """Delete every link and bridge the way net.stop() would (`ip link del` per link end, in the
    end's node, twice per link; `ifconfig down` and `brctl delbr` per bridge: 0.1-0.3 s of wall
    time apiece in the VM), in one `ip -force -batch` per namespace: a link is deleted by its end
    in the machine's namespace if it has one (a switch port), else by its first end in that node's
    namespace. Then Mininet is told the links are gone, so net.stop() only ends the nodes' shells.
    -force goes on past a failing line (one already gone); what remains, the ledger removes."""
    by_node: dict[Any, list[str]] = {}
    for link in net.links:
        end = next((i for i in (link.intf1, link.intf2) if not i.node.inNamespace), link.intf1)
        by_node.setdefault(None if not end.node.inNamespace else end.node, []).append(f"link del dev {end.name}")
    by_node.setdefault(None, []).extend(f"link del dev {switch.name}" for switch in net.switches)
    for node, lines in by_node.items():
        if node is None:
            if lines:
                run_command(["ip", "-force", "-batch", "-"], input="\n".join(lines) + "\n")
        else:
            node_pexec(node, batch_command(["ip", "-force", "-batch", "-"], lines))
    for link in net.links:
        for intf in (link.intf1, link.intf2):
            intf.node.delIntf(intf)
    net.links = []
    for switch in net.switches:
        switch.deleted = True


@functools.cache
def bridge_class():
    """Mininet's LinuxBridge, started by one `ip -batch` (the bridge made, its ports enslaved, up)
    instead of `ifconfig down`, `brctl delbr`, `brctl addbr`, `brctl addif` per port and `ifconfig
    up`: the same kernel calls (br_add_bridge, br_add_if), one process. STP stays Mininet's (brctl)."""
    from mininet.nodelib import LinuxBridge

    class Bridge(LinuxBridge):
        deleted = False

        def start(self, controllers):
            if self.stp:
                return super().start(controllers)
            lines = [f"link del dev {self.name}"] if Path(f"/sys/class/net/{self.name}").exists() else []
            lines += [f"link add name {self.name} type bridge"]
            lines += [f"link set dev {intf} master {self.name}" for intf in self.intfList() if self.name in intf.name]
            done = run_command(["ip", "-batch", "-"], input="\n".join(lines + [f"link set dev {self.name} up"]) + "\n")
            if done.returncode:
                raise RunFailed(f"the bridge {self.name} could not be made: {done.stderr.strip()[-400:]}")
            return None

        def stop(self, deleteIntfs=True):
            """Deleted already by _delete_links (else as Mininet does)."""
            if not self.deleted:
                return super().stop(deleteIntfs)
            return super(LinuxBridge, self).stop(deleteIntfs)

    return Bridge


def _add_nodes(net, topo: Topology, ledger: Ledger, host_ips: dict[str, dict], switch_cls) -> None:
    """Hosts, routers and switches, each recorded in the ledger as it starts (its name before it exists)."""
    ovs = topo.switch_kind == "ovs"
    host_class, _ = batched_classes()
    for host in topo.hosts:    # each host's shell and network namespace, recorded as it starts
        shell = net.addHost(host, cls=host_class, **host_ips[host]).pid
        ledger.add(pids=[shell], netns=[shell])
    for router in topo.routers:    # a router is a host whose kernel forwards: recorded the same way
        shell = net.addHost(router, cls=router_class(), ip=None).pid
        ledger.add(pids=[shell], netns=[shell])
    for switch in topo.switches:
        ledger.add(pids=[net.addSwitch(switch, cls=switch_cls, stp=False, **({"failMode": "standalone"} if ovs else {})).pid])
        # recorded before it exists: a killed run's bridge is removed, and the loader knows it is ours
        ledger.add(**({"ovs_bridges": [switch]} if ovs else {"interfaces": [switch]}))


def _add_links(net, topo: Topology, ledger: Ledger) -> tuple[dict, dict, dict]:
    """Every link (impairments per direction, routed ends addressed); returns interface -> (node,
    egress impairment), (node, peer) -> interface, and (node, link index) -> interface."""
    egress: dict[str, tuple[str, Impairment]] = {}
    ports: dict[tuple[str, str], str] = {}        # (node, the node at the other end) -> interface
    link_ports: dict[tuple[str, int], str] = {}   # (node, link index) -> interface: the plan's ends
    ips = _interface_ips(topo)
    for i, link in enumerate(topo.links):
        # recorded before they exist, as Mininet will name them: a run killed inside addLink leaves
        # nothing unlisted, and a run loading meanwhile knows they are tcp-testbed's, not the machine's
        planned = [f"{node}-eth{net.get(node).newPort()}" for node in (link.a, link.b)]
        ledger.add(interfaces=planned)
        made = net.addLink(link.a, link.b, params1={**tc_params(link.a_to_b), **ips.get((link.a, i), {})},
                           params2={**tc_params(link.b_to_a), **ips.get((link.b, i), {})},
                           cls1=batched_classes()[1], cls2=batched_classes()[1])    # set by lab_batch after the build
        egress[made.intf1.name] = (link.a, link.a_to_b)
        egress[made.intf2.name] = (link.b, link.b_to_a)
        ports[(link.a, link.b)], ports[(link.b, link.a)] = made.intf1.name, made.intf2.name
        link_ports[(link.a, i)], link_ports[(link.b, i)] = made.intf1.name, made.intf2.name
        if [made.intf1.name, made.intf2.name] != planned:    # Mininet named them otherwise: list those too
            ledger.add(interfaces=[made.intf1.name, made.intf2.name])
    return egress, ports, link_ports


def _host_ip(topo: Topology, host: str, addresses: dict[str, str] | None, prefix_len: int) -> dict:
    """addHost's ip: the planned address (Mininet puts it on the host's first interface at build).
    In a routed lab the prefix is the host's subnet's, and the plan must agree with `addresses`."""
    if not topo.routers:
        return {"ip": f"{addresses[host]}/{prefix_len}"} if addresses else {}
    first = next(i for i in topo.interfaces if i.node == host)
    if addresses and addresses.get(host) != first.address:
        raise RunFailed(f"{host}: the run planned address {addresses.get(host)}, the topology {first.address}.")
    return {"ip": f"{first.address}/{first.prefix_len}"}


def _interface_ips(topo: Topology) -> dict[tuple[str, int], dict]:
    """TCLink's `ip` for every host and router end of a routed lab, by (node, link index); none
    in a flat one (Mininet addresses its hosts as it always has)."""
    if not topo.routers:
        return {}
    return {(i.node, i.link): {"ip": f"{i.address}/{i.prefix_len}"} for i in topo.interfaces}


OVS_CTL = "/usr/share/openvswitch/scripts/ovs-ctl"


def ensure_ovs_running() -> bool:
    """OVS needs ovsdb-server and ovs-vswitchd (without vswitchd, add-br hangs). Start them if they
    are not running; return True if this run started them (and so stops them)."""
    if run_command(["ovs-vsctl", "--timeout=3", "show"]).returncode == 0:
        return False
    say("starting Open vSwitch (ovsdb-server, ovs-vswitchd)")
    done = run_command([OVS_CTL, "start", "--system-id=random"])
    if done.returncode or run_command(["ovs-vsctl", "--timeout=5", "show"]).returncode:
        raise RunFailed(f"Open vSwitch would not start: {(done.stderr or done.stdout).strip()[-400:]}")
    return True


def _check_tools_in_python(ovs: bool) -> None:
    """Mininet's one-time class checks exec a process each (`grep -c processor /proc/cpuinfo`,
    `which mnexec`, `which ifconfig`, `which brctl`, three `sysctl` reads of bridge netfilter):
    0.1-0.3 s of wall time apiece in the VM. The same checks here without a process; Mininet's
    own flags (numCores.ncores, isSetup) then say they were done. The bridge netfilter settings
    Mininet only warned about are set to 0 after the build (_disable_bridge_netfilter). Open
    vSwitch's check is _ovs_checked, once OVS runs."""
    from mininet import util
    from mininet.node import Host
    from mininet.nodelib import LinuxBridge

    tools = ["mnexec", "ifconfig", *([] if ovs else ["brctl"])]
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        raise RunFailed(f"Mininet needs {', '.join(missing)}, not found on PATH: {SETUP_HINT}")
    if not hasattr(util.numCores, "ncores"):
        util.numCores.ncores = os.cpu_count() or 1     # only CPU-limited hosts (not used) read it
    Host.isSetup = True          # Node.setup's pathCheck, done above; a Router is a Host
    if not ovs:
        LinuxBridge.isSetup = True


def _ovs_checked() -> None:
    """Mininet's own Open vSwitch check (OVSSwitch.setup) runs `ovs-vsctl -t 1 show`: a one-second
    alarm, which the VM's virtual clock can fire at once while the guest waits on the host's file
    server (the run then ended with "Error connecting to ovs-db", measured). ensure_ovs_running
    has just proved `ovs-vsctl show` answers; the version is read as Mininet reads it, and its
    check is marked done."""
    from re import findall
    from mininet.node import OVSSwitch
    version = run_command(["ovs-vsctl", "--version"])
    found = findall(r"\d+\.\d+", version.stdout or "")
    if version.returncode or not found:
        raise RunFailed(f"`ovs-vsctl --version` did not say its version: {(version.stderr or version.stdout).strip()[:300]}; "
                        f"{SETUP_HINT}")
    OVSSwitch.OVSVersion = found[0]
    OVSSwitch.isSetup = True


SETUP_HINT = "run scripts/setup (as root) to install Mininet's tools"
BRIDGE_NF = ("bridge-nf-call-iptables", "bridge-nf-call-ip6tables", "bridge-nf-call-arptables")


def _disable_bridge_netfilter() -> None:
    """With br_netfilter loaded, bridged frames would traverse iptables; keep the bridge plain.
    Written in /proc/sys from here (the machine's namespace, where the bridges are) rather than
    by three `sysctl` processes; without br_netfilter the files are absent and nothing is to do."""
    for name in BRIDGE_NF:
        path = Path("/proc/sys/net/bridge") / name
        if not path.exists():
            continue
        try:
            path.write_text("0\n")
            log_command(f"echo 0 > {path}", 0, None)
        except OSError as exc:
            log_command(f"echo 0 > {path}", 1, None, stderr=str(exc))


def _interface_qdiscs(topo: Topology, egress: dict[str, tuple[str, Impairment]],
                      got: dict[str, dict[str, str]]) -> dict[str, str]:
    """Each link interface's `tc qdisc show dev` text, from read_lab's per-namespace read-backs
    (a switch's ports are in the first switch's: the machine's namespace)."""
    texts = {}
    for node in {node for node, _ in egress.values()}:
        where = topo.switches[0] if node in topo.switches else node
        texts[node] = qdisc_texts(got[where]["qdisc"])
    return {intf: texts[node].get(intf, "") for intf, (node, _) in egress.items()}


def verify_impairments(egress: dict[str, tuple[str, Impairment]], shown: dict[str, str]) -> dict[str, str]:
    """Mininet only prints tc errors; check every qdisc read back (`shown`: interface -> its
    `tc qdisc show dev` text) and refuse to go on if one is wrong.

    Returns each interface's `tc qdisc show` text, which the run records as it really was."""
    problems, qdiscs = [], {}
    for intf, (node, imp) in egress.items():
        text = qdiscs[intf] = shown.get(intf, "").strip()
        if not imp.needs_netem:
            continue
        delay = netem_delay_s(text)
        if delay is None:
            problems.append(f"{intf}: no netem qdisc (tc shows: {text.strip() or 'nothing'})")
        elif abs(delay - imp.delay_s) > 1e-6:
            problems.append(f"{intf}: netem delay {delay * 1e3:g} ms, configured {imp.delay_s * 1e3:g} ms")
        if imp.loss_pct and f"loss {imp.loss_pct:g}%" not in text:
            problems.append(f"{intf}: loss {imp.loss_pct:g}% not applied (tc shows: {text.strip()})")
    if problems:
        raise RunFailed("the link impairments did not take effect, so no timing could be trusted:\n  "
                        + "\n  ".join(problems))
    return qdiscs


def warm_up(net) -> None:
    """Resolve ARP between all hosts first, or the first SYN would wait for ARP across the delays."""
    hosts = [h for h in net.hosts if not is_router(h)]    # routers answer along the way (ARP both ways)
    for a in hosts:
        for b in hosts:
            if a is not b:
                node_cmd(a, f"ping -c1 -W3 {b.IP()} >/dev/null 2>&1")


def ping_rtt_s(net, a: str, b: str, count: int = 5) -> float | None:
    """Average ping RTT a -> b: the network's real RTT, timer slop of an emulated CPU included."""
    out = node_cmd(net.get(a), f"ping -c{count} -i0.2 -W3 {net.get(b).IP()}")
    m = re.search(r"= [0-9.]+/([0-9.]+)/", out)
    return float(m.group(1)) / 1e3 if m else None
