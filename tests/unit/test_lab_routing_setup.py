"""The routed lab's set-up and read-back (harness.lab.routing_setup), on outputs recorded from a
lab built on this machine's kernel (6.18): tests/fixtures/lab_routing_host_6.18 holds the
topology, the interface names Mininet gave, and each node's `ip -j addr`, `ip -j route`, the
switch ports' `ip -j link` and two nodes' `sysctl` read-back as the built lab had them."""
from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from harness.lab.network import _host_ip, _interface_ips
from harness.lab.routing_setup import (
    NodePlan, address_problems, batch_command, batch_lines, link_mtu_problems, node_plans, node_sysctls, parse_readback,
    parse_sysctls, qdisc_texts, readback_command, route_problems, switch_port_mtus, sysctl_problems)
from harness.load.topology import load_topology

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "lab_routing_host_6.18"
NODES = ("client1", "client2", "server", "r1", "r2")


@pytest.fixture(scope="module")
def topology():
    return load_topology(FIX / "topology.yaml")


@pytest.fixture(scope="module")
def ports() -> dict[tuple[str, int], str]:
    return {(k.split()[0], int(k.split()[1])): v for k, v in json.loads((FIX / "ports.json").read_text()).items()}


@pytest.fixture(scope="module")
def plans(topology, ports) -> dict[str, NodePlan]:
    return {p.name: p for p in node_plans(topology, ports)}


def recorded(node: str, what: str) -> list[dict]:
    return json.loads((FIX / f"{node}.ip-{what}.json").read_text())


def test_the_plan_gives_each_interface_its_address_mtu_and_routes(plans):
    r1 = plans["r1"]
    assert r1.router and r1.addresses == {"r1-eth0": ("10.1.0.1", 24), "r1-eth1": ("10.2.0.1", 24)}
    assert r1.mtus == {"r1-eth0": 1450, "r1-eth1": 1400}       # a LAN's MTU reaches every end of it
    assert r1.routes == [("10.3.0.0/24", "10.2.0.2", "r1-eth1")]
    assert plans["client2"].mtus == {"client2-eth0": 1450} and plans["server"].mtus == {"server-eth0": 1500}
    assert plans["client1"].routes == [("10.2.0.0/24", "10.1.0.1", "client1-eth0"),
                                       ("10.3.0.0/24", "10.1.0.1", "client1-eth0")]


def test_routers_forward_and_nobody_redirects_or_filters_by_source(plans):
    r1, client = plans["r1"].sysctls, plans["client1"].sysctls
    assert r1["net.ipv4.ip_forward"] == "1" and "net.ipv4.ip_forward" not in client
    for scope in ("all", "default", "r1-eth0", "r1-eth1"):
        assert r1[f"net.ipv4.conf.{scope}.rp_filter"] == r1[f"net.ipv4.conf.{scope}.send_redirects"] == "0"
    for scope in ("all", "default", "client1-eth0"):
        assert client[f"net.ipv4.conf.{scope}.accept_redirects"] == client[f"net.ipv4.conf.{scope}.rp_filter"] == "0"
    assert node_sysctls(False, []) == {f"net.ipv4.conf.{s}.{n}": "0" for s in ("all", "default")
                                       for n in ("rp_filter", "accept_redirects")}


def test_a_flat_lab_sets_no_sysctls_and_has_no_routes(ports):
    flat = load_topology(Path(__file__).resolve().parents[2] / "topologies" / "two_hosts.yaml")
    plans = node_plans(flat, {(i.node, i.link): f"{i.node}-eth0" for i in flat.interfaces})
    assert [(p.name, p.sysctls, p.routes, p.addresses) for p in plans] == [
        ("client", {}, [], {"client-eth0": ("10.0.0.1", 8)}), ("server", {}, [], {"server-eth0": ("10.0.0.2", 8)})]


def test_every_switch_port_of_a_lan_gets_its_mtu(topology, ports):
    assert switch_port_mtus(topology, ports) == {"s1-eth1": 1450, "s1-eth2": 1450, "s1-eth3": 1450}


def test_the_batch_sets_mtus_before_routes_and_leaves_1500_alone(plans):
    lines = batch_lines(plans["r1"].mtus, plans["r1"].routes)
    assert lines == ["link set dev r1-eth0 mtu 1450", "link set dev r1-eth1 mtu 1400",
                     "route replace 10.3.0.0/24 via 10.2.0.2 dev r1-eth1"]
    assert batch_lines(plans["server"].mtus, []) == []


def test_the_pending_command_hands_ip_each_line_whole():
    from harness.lab.routing_setup import Pending
    lines = ["route replace default via 10.1.0.1 dev c-eth0", "a line with 'quotes' and $dollars"]
    command = Pending(planned=lines).command()
    assert command[:2] == ["sh", "-c"] and command[-2:] == [f"ip: {line}" for line in lines]
    shown = subprocess.run([*command[:2], command[2].replace("ip -batch -", "cat"), *command[3:]],
                           capture_output=True, text=True, check=True).stdout
    assert shown.splitlines() == lines


@pytest.mark.parametrize("node", ["client1", "r1"])
def test_one_readback_process_gives_addresses_routes_and_sysctls(plans, node):
    """readback_command's output as r1 and client1 gave it (recorded), split and judged as planned."""
    assert readback_command(list(plans[node].sysctls))[2].startswith(
        "echo '#qdisc' && tc qdisc show && echo '#ip' && printf 'addr show\\nroute show\\n' | ip -j -batch - && ")
    got = parse_readback((FIX / f"{node}.readback.txt").read_text())
    assert address_problems(plans[node], json.loads(got["addr"])) == []
    assert route_problems(plans[node], json.loads(got["route"])) == []
    assert sysctl_problems(plans[node], parse_sysctls(got["sysctl"])) == [] and plans[node].sysctls
    assert [e["ifname"] for e in json.loads(got["addr"])] == ["lo", *plans[node].addresses]


def test_a_readback_without_a_section_gives_it_empty():
    assert parse_readback("#addr\n[]\n#route\n[]\n") == {"qdisc": "", "addr": "[]", "route": "[]", "sysctl": "", "link": ""}
    assert readback_command([]) == ["sh", "-c", "echo '#qdisc' && tc qdisc show && echo '#ip' && "
                                    "printf 'addr show\\nroute show\\n' | ip -j -batch -"]
    assert readback_command([], switches=True) == ["sh", "-c", "echo '#qdisc' && tc qdisc show && echo '#link' && ip -j link show"]


@pytest.mark.parametrize("node", ["client1", "r1"])
def test_the_ip_batch_section_reads_as_the_two_recorded_ones(node):
    """`ip -j -batch` of `addr show` and `route show` prints the two JSON documents one after the
    other (as on this host's iproute2): split, they are what `ip -j addr` and `ip -j route` gave."""
    addr, route = (FIX / f"{node}.ip-addr.json").read_text(), (FIX / f"{node}.ip-route.json").read_text()
    got = parse_readback(f"#qdisc\nqdisc noqueue 0: dev lo root refcnt 2\n#ip\n{addr.strip()}\n{route.strip()}\n#sysctl\na = 1\n")
    assert json.loads(got["addr"]) == json.loads(addr) and json.loads(got["route"]) == json.loads(route)
    assert got["sysctl"] == "a = 1" and got["qdisc"] == "qdisc noqueue 0: dev lo root refcnt 2"


@pytest.mark.parametrize("ip_section", [
    "Warning: something odd\n[]\n[]",                         # a warning on stdout before the JSON
    "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue\n    inet 127.0.0.1/8 scope host lo",   # no -j
    "[]\nnot json after the first"])
def test_an_ip_section_that_is_not_json_is_a_one_paragraph_failure(ip_section):
    """Not a ValueError's traceback (the run ending as a bug): RunFailed quoting the output's start."""
    from harness.errors import RunFailed
    with pytest.raises(RunFailed) as failed:
        parse_readback(f"#qdisc\n#ip\n{ip_section}\n#sysctl\n")
    message = str(failed.value)
    assert message.startswith("the lab's read-back of addresses and routes") and "\n" not in message
    assert repr(ip_section.splitlines()[0])[1:-1] in message and "Fix: " in message


def test_a_link_section_that_is_not_json_is_a_one_paragraph_failure(topology, ports):
    from harness.errors import RunFailed
    from harness.lab.routing_setup import verify
    got = {node: {"addr": (FIX / f"{node}.ip-addr.json").read_text(), "route": (FIX / f"{node}.ip-route.json").read_text(),
                  "sysctl": ""} for node in NODES}
    got[topology.switches[0]] = {"link": "Warning: odd\n[]"}
    with pytest.raises(RunFailed, match=r"read-back of the switch ports \(ip -j link show\) is not JSON .*'Warning: odd \| \[\]'"):
        verify(None, topology, ports, got)


def test_one_qdisc_show_gives_each_interface_as_its_own_show_would():
    shown = ("qdisc noqueue 0: dev lo root refcnt 2 \n"
             "qdisc prio 1: dev s1-eth2 root refcnt 2 bands 2 priomap 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
             "qdisc netem 10: dev s1-eth2 parent 1:1 limit 1000 delay 25ms\n"
             "qdisc netem 10: dev s1-eth1 root refcnt 2 limit 1000 delay 25ms loss 1%\n")
    assert qdisc_texts(shown) == {
        "lo": "qdisc noqueue 0: root refcnt 2",
        "s1-eth2": "qdisc prio 1: root refcnt 2 bands 2 priomap 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
                   "qdisc netem 10: parent 1:1 limit 1000 delay 25ms",
        "s1-eth1": "qdisc netem 10: root refcnt 2 limit 1000 delay 25ms loss 1%"}


def test_a_batch_shows_every_line_as_an_argument():
    assert batch_command(["tc", "-batch", "-"], ["qdisc add dev a root netem", "qdisc show"]) == [
        "sh", "-c", 'printf "%s\\n" "$@" | tc -batch -', "tc-batch", "qdisc add dev a root netem", "qdisc show"]


@pytest.mark.parametrize("node", NODES)
def test_the_recorded_lab_reads_back_as_planned(plans, node):
    assert address_problems(plans[node], recorded(node, "addr")) == []
    assert route_problems(plans[node], recorded(node, "route")) == []


def test_a_wrong_address_mtu_or_missing_interface_is_named(plans):
    plan = replace(plans["r1"], addresses={**plans["r1"].addresses, "r1-eth1": ("10.2.0.9", 24), "r1-eth7": ("10.9.0.1", 24)},
                   mtus={**plans["r1"].mtus, "r1-eth0": 1500, "r1-eth7": 1500})
    assert address_problems(plan, recorded("r1", "addr")) == [
        "r1 r1-eth0: MTU 1450, planned 1500", "r1 r1-eth1: IPv4 address 10.2.0.1/24, planned 10.2.0.9/24",
        "r1 r1-eth7: no such interface"]


def test_an_unplanned_interface_with_an_address_is_named(plans):
    plan = replace(plans["r1"], addresses={"r1-eth0": ("10.1.0.1", 24)})
    assert address_problems(plan, recorded("r1", "addr")) == ["r1 r1-eth1: unplanned interface with IPv4 address 10.2.0.1"]


def test_a_down_interface_is_named(plans):
    entries = recorded("server", "addr")
    for e in entries:
        e["flags"] = [f for f in e["flags"] if f != "LOWER_UP"]
    assert address_problems(plans["server"], entries) == ["server server-eth0: not up (flags BROADCAST,MULTICAST,UP)"]


def test_a_missing_wrong_or_unplanned_route_is_named(plans):
    client = plans["client1"]
    missing = replace(client, routes=[*client.routes, ("default", "10.1.0.1", "client1-eth0")])
    assert route_problems(missing, recorded("client1", "route")) == [
        "client1: route default via 10.1.0.1 dev client1-eth0 planned, the kernel has none"]
    wrong = replace(client, routes=[("10.2.0.0/24", "10.1.0.2", "client1-eth0"), client.routes[1]])
    assert route_problems(wrong, recorded("client1", "route")) == [
        "client1: route 10.2.0.0/24 via 10.1.0.2 dev client1-eth0 planned, the kernel has via 10.1.0.1 dev client1-eth0"]
    fewer = replace(client, routes=client.routes[:1])
    assert route_problems(fewer, recorded("client1", "route")) == [
        "client1: unplanned route 10.3.0.0/24 via 10.1.0.1 dev client1-eth0"]


def test_a_subnet_not_reached_directly_is_named(plans):
    plan = replace(plans["r2"], subnets={**plans["r2"].subnets, "r2-eth0": "10.7.0.0/24"})
    assert route_problems(plan, recorded("r2", "route")) == ["r2 r2-eth0: no direct route to its subnet 10.7.0.0/24"]


def test_a_host_route_printed_bare_matches_its_32_prefix():
    plan = NodePlan("h", False, routes=[("10.5.0.7/32", "10.1.0.1", "h-eth0")])
    assert route_problems(plan, [{"dst": "10.5.0.7", "gateway": "10.1.0.1", "dev": "h-eth0"}]) == []


@pytest.mark.parametrize("node", ["client1", "r1"])
def test_the_recorded_sysctls_read_back_as_planned(plans, node):
    values = parse_sysctls((FIX / f"{node}.sysctl.txt").read_text())
    assert set(values) == set(plans[node].sysctls)
    assert sysctl_problems(plans[node], values) == []
    values["net.ipv4.conf.all.rp_filter"] = "2"
    del values["net.ipv4.conf.default.rp_filter"]
    assert len(sysctl_problems(plans[node], values)) == 2
    assert f"{node}: sysctl net.ipv4.conf.all.rp_filter = 2, planned 0" in sysctl_problems(plans[node], values)


def test_switch_port_mtus_read_back(topology, ports):
    links = json.loads((FIX / "switches.ip-link.json").read_text())
    wanted = switch_port_mtus(topology, ports)
    assert link_mtu_problems(wanted, links) == []
    assert link_mtu_problems({**wanted, "s1-eth2": 1500, "s1-eth9": 1500}, links) == [
        "switch port s1-eth2: MTU 1450, planned 1500", "switch port s1-eth9: missing"]


def test_hosts_keep_the_flat_address_form_and_routed_ones_take_their_subnet(topology):
    flat = load_topology(Path(__file__).resolve().parents[2] / "topologies" / "two_hosts.yaml")
    assert _host_ip(flat, "server", {"client": "10.0.0.1", "server": "10.0.0.2"}, 8) == {"ip": "10.0.0.2/8"}
    assert _host_ip(flat, "server", None, 8) == {} and _interface_ips(flat) == {}
    assert _host_ip(topology, "client2", {"client2": "10.1.0.12"}, 8) == {"ip": "10.1.0.12/24"}
    assert _interface_ips(topology)[("r2", 3)] == {"ip": "10.2.0.2/24"}


def test_a_nodes_pending_settings_are_one_shell_in_the_order_the_kernel_needs(tmp_path):
    """Pending.command() run with stand-ins for sysctl, ip, ethtool and tc that print what they get:
    sysctls, then MACs (interfaces still down), up, addresses, the plan's MTUs and routes, each
    interface's ethtool, the qdiscs."""
    from harness.lab.routing_setup import Pending
    kept = Pending(macs={"r1-eth0": "00:00:00:00:00:03"}, addresses={"r1-eth0": "10.1.0.1/24"}, up=["r1-eth0", "lo"],
                   ethtool={"r1-eth0": ["gro", "off", "tx", "on", "rx", "on"]},
                   tc=["qdisc add dev r1-eth0 root handle 10: netem delay 25.000ms"],
                   sysctls={"net.ipv4.ip_forward": "1"}, planned=["link set dev r1-eth0 mtu 1400"])
    for program in ("ip", "tc", "ethtool", "sysctl"):
        (tmp_path / program).write_text(f'#!/bin/sh\n[ "$1" = -batch ] && sed "s/^/{program} /" || echo {program} "$@"\n')
        (tmp_path / program).chmod(0o755)
    done = subprocess.run(kept.command(), capture_output=True, text=True, env={"PATH": f"{tmp_path}:/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "sysctl -q -w net.ipv4.ip_forward=1", "ip link set dev r1-eth0 address 00:00:00:00:00:03",
        "ip link set dev r1-eth0 up", "ip link set dev lo up", "ip addr add 10.1.0.1/24 brd + dev r1-eth0",
        "ip link set dev r1-eth0 mtu 1400", "ethtool -K r1-eth0 gro off tx on rx on",
        "tc qdisc add dev r1-eth0 root handle 10: netem delay 25.000ms"]
    assert Pending().command() is None


def test_mininets_own_tc_commands_are_kept_for_the_batch():
    """BatchedIntf.config keeps TCIntf's netem command (less Mininet's extra spaces) and the
    ethtool offloads, and runs nothing."""
    from types import SimpleNamespace
    from harness.lab.routing_setup import batched_classes, pending
    _, intf_class = batched_classes()
    intf = intf_class.__new__(intf_class)
    intf.name, intf.node = "client-eth0", SimpleNamespace(pending=None)
    intf.cmd = lambda *args, **kw: pytest.fail(f"ran {args}")
    intf.config(delay="25.000ms", loss=1, max_queue_size=100, ip="10.0.0.1/8")
    kept = pending(intf.node)
    assert kept.tc == ["qdisc add dev client-eth0 root handle 10: netem delay 25.000ms loss 1.00000 limit 100"]
    assert kept.ethtool == {"client-eth0": ["gro", "off", "tx", "on", "rx", "on"]}
    assert kept.addresses == {"client-eth0": "10.0.0.1/8"} and kept.up == ["client-eth0"]
    assert (intf.ip, intf.prefixLen) == ("10.0.0.1", "8")


def test_open_vswitch_ports_get_their_qdiscs_again_once_each_after_clearing_what_ovs_left(monkeypatch):
    """Open vSwitch takes the qdiscs off the ports it adds; Mininet's TCReapply puts the links'
    settings back in Pending (twice for a port, here): set once each, after a delete per port."""
    from types import SimpleNamespace
    from harness.lab import routing_setup
    ran = []
    monkeypatch.setattr(routing_setup, "node_pexec", lambda node, args: (ran.append((node.name, args)), ("", "", 0))[1])
    s1, s2 = SimpleNamespace(name="s1", pending=None), SimpleNamespace(name="s2", pending=None)
    line = "qdisc add dev s1-eth1 root handle 10: netem delay 25.000ms"
    routing_setup.pending(s1).tc += [line, line]
    routing_setup.pending(s2).tc += ["qdisc add dev s2-eth1 root handle 10: netem delay 5.000ms"]
    net = SimpleNamespace(get={"s1": s1, "s2": s2}.get)
    routing_setup.reapply_switch_qdiscs(net, ["s1", "s2"])
    (where, args), = ran
    assert where == "s1" and args[-2:] == [line, "qdisc add dev s2-eth1 root handle 10: netem delay 5.000ms"]
    assert args[2].startswith("tc qdisc del dev s1-eth1 root 2>/dev/null; tc qdisc del dev s2-eth1 root")
    assert s1.pending is None and s2.pending is None
    ran.clear()
    routing_setup.reapply_switch_qdiscs(net, ["s1"])          # nothing left to set: no process
    assert ran == []
