"""Addresses, subnets and routes worked out at load (harness.load.routing), on the shipped routed
topologies and on topologies the loader must refuse, each refusal naming its file and line."""
from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import UserError
from harness.load.experiment import load_experiment
from harness.load.topology import load_topology
from harness.plan.paths import one_way_s, path_rtt_s, rule_placement

REPO = Path(__file__).resolve().parents[2]
TOPOLOGIES = REPO / "topologies"


def _load(name: str):
    return load_topology(TOPOLOGIES / f"{name}.yaml", existing=set())


def _addresses(topology) -> dict[tuple[str, str], str]:
    return {(i.node, i.peer): f"{i.address}/{i.prefix_len}" for i in topology.interfaces}


def _routes(topology) -> set[tuple[str, str, str]]:
    return {(r.node, r.prefix, r.via_node) for r in topology.routes}


def test_routed_chain_has_a_subnet_per_link_and_routes_both_ways():
    topo = _load("routed")
    assert _addresses(topo) == {("client", "r1"): "10.1.0.11/24", ("r1", "client"): "10.1.0.1/24",
                                ("r1", "r2"): "10.2.0.1/24", ("r2", "r1"): "10.2.0.2/24",
                                ("r2", "server"): "10.3.0.1/24", ("server", "r2"): "10.3.0.11/24"}
    assert _routes(topo) == {("client", "10.2.0.0/24", "r1"), ("client", "10.3.0.0/24", "r1"),
                             ("r1", "10.3.0.0/24", "r2"), ("r2", "10.1.0.0/24", "r1"),
                             ("server", "10.1.0.0/24", "r2"), ("server", "10.2.0.0/24", "r2")}
    assert {r.via for r in topo.routes if r.node == "r1"} == {"10.2.0.2"}
    assert topo.path("client", "server") == ["client", "r1", "r2", "server"]
    assert topo.path("server", "client") == ["server", "r2", "r1", "client"]


def test_asymmetric_routes_send_requests_via_r1_and_answers_via_r2():
    topo = _load("asymmetric")
    assert _addresses(topo)[("client", "s1")] == "10.1.0.11/24"
    assert _addresses(topo)[("server", "s2")] == "10.2.0.11/24"
    assert {(i.node, i.subnet) for i in topo.interfaces if i.node == "r2"} == {("r2", "10.1.0.0/24"), ("r2", "10.2.0.0/24")}
    given = {(r.node, r.prefix, r.via) for r in topo.routes if r.given}
    assert given == {("client", "10.2.0.0/24", "10.1.0.1"), ("server", "10.1.0.0/24", "10.2.0.2")}
    assert topo.path("client", "server") == ["client", "s1", "r1", "s2", "server"]
    assert topo.path("server", "client") == ["server", "s2", "r2", "s1", "client"]


def test_asymmetric_rtt_and_one_way_delays_follow_the_real_paths():
    experiment = load_experiment(REPO / "experiments" / "asymmetric_handshake.yaml")
    assert one_way_s(experiment, "client", "server") == pytest.approx(0.015)
    assert one_way_s(experiment, "server", "client") == pytest.approx(0.065)
    assert path_rtt_s(experiment, "client", "server") == pytest.approx(0.080)
    assert rule_placement(experiment, "client", "server") == ("s1", "client", "r1")


def test_dumbbell_shares_one_bottleneck_subnet():
    topo = _load("dumbbell")
    subnets = {i.node: i.subnet for i in topo.interfaces if i.node.startswith(("client", "server"))}
    assert subnets == {"client1": "10.1.0.0/24", "client2": "10.1.0.0/24",
                       "server1": "10.3.0.0/24", "server2": "10.3.0.0/24"}
    assert [i.address for i in topo.interfaces if i.node.startswith("client")] == ["10.1.0.11", "10.1.0.12"]
    for client in ("client1", "client2"):
        for server in ("server1", "server2"):
            assert topo.path(client, server) == [client, "s1", "r1", "r2", "s2", server]


def test_a_topology_without_routers_keeps_the_flat_plan():
    topo = _load("three_hosts")
    assert [(i.node, i.address, i.prefix_len) for i in topo.interfaces] == [
        ("client1", "10.0.0.1", 8), ("client2", "10.0.0.2", 8), ("server", "10.0.0.3", 8)]
    assert topo.routes == ()


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "t.yaml"
    path.write_text(text)
    return path


def _refusal(tmp_path: Path, text: str) -> UserError:
    with pytest.raises(UserError) as info:
        load_topology(_write(tmp_path, text), existing=set())
    return info.value


CHAIN = "name: t\nhosts: [client, server]\nrouters: [r1, r2]\nlinks:\n  - {a: client, b: r1}\n"


def test_costs_choose_the_cheaper_path_and_mtu_applies_to_the_whole_lan(tmp_path):
    text = ("name: t\nhosts: [client, server]\nswitches: [s1]\nrouters: [r1, r2, r3]\nlinks:\n"
            "  - {a: client, b: s1, mtu: 1400}\n  - {a: s1, b: r1}\n  - {a: r1, b: r2, cost: 5}\n"
            "  - {a: r1, b: r3}\n  - {a: r3, b: r2}\n  - {a: r2, b: server}\n")
    topo = load_topology(_write(tmp_path, text), existing=set())
    assert topo.path("client", "server") == ["client", "s1", "r1", "r3", "r2", "server"]
    assert {i.node: i.mtu for i in topo.interfaces if i.subnet == "10.1.0.0/24"} == {"client": 1400, "r1": 1400}
    assert {i.mtu for i in topo.interfaces if i.subnet != "10.1.0.0/24"} == {None}


def test_given_addresses_are_kept_and_the_rest_of_the_lan_numbered_around_them(tmp_path):
    text = CHAIN + ("  - {a: r1, b: r2, addresses: {r1: 192.168.9.1/30, r2: 192.168.9.2/30}}\n"
                    "  - {a: r2, b: server}\n")
    topo = load_topology(_write(tmp_path, text), existing=set())
    assert _addresses(topo)[("r1", "r2")] == "192.168.9.1/30"
    assert _addresses(topo)[("server", "r2")] == "10.2.0.11/24"     # 10.1 is the client's LAN, 10.2 the next free


@pytest.mark.parametrize("text, line, words", [
    ("name: t\nhosts: [client, server]\nswitches: [s1, s2]\nlinks:\n  - {a: client, b: s1}\n  - {a: server, b: s2}\n",
     2, "falls apart into 2 unconnected parts"),
    ("name: t\nhosts: [client, server]\nswitches: [s1, s2]\nlinks:\n  - {a: client, b: s1}\n  - {a: s1, b: s2}\n"
     "  - {a: s2, b: s1}\n  - {a: server, b: s2}\n", 7, "closes a loop inside a LAN"),
    ("name: t\nhosts: [client, server]\nswitches: [s1, s2, s3]\nlinks:\n  - {a: client, b: s1}\n  - {a: s1, b: s2}\n"
     "  - {a: s2, b: s3}\n  - {a: s3, b: s1}\n  - {a: server, b: s2}\n", 8, "closes a loop inside a LAN"),
    ("name: t\nhosts: [client, server]\nrouters: [eth0]\nlinks:\n  - {a: client, b: eth0}\n  - {a: eth0, b: server}\n",
     3, "names starting with 'eth'"),
    ("name: t\nhosts: [client, server]\nrouters: [client]\nlinks:\n  - {a: client, b: server}\n", 3, "invalid or repeated"),
    (CHAIN + "  - {a: r1, b: r2}\n  - {a: r2, b: server}\nroutes:\n  client: [{to: server, via: r2}]\n",
     9, "shares no LAN with r2"),
    (CHAIN + "  - {a: r1, b: r2}\n  - {a: r2, b: server}\nroutes:\n  r1: [{to: server, via: 10.1.0.11}]\n",
     9, "hosts do not forward"),
    (CHAIN + "  - {a: r1, b: r2}\n  - {a: r2, b: server}\nroutes:\n  r1: [{to: server, via: 10.2.0.1}]\n",
     9, "is r1 itself"),
    ("name: t\nhosts: [client, server]\nrouters: [r1, r2, r3]\nlinks:\n  - {a: client, b: r1}\n  - {a: r1, b: r2}\n"
     "  - {a: r2, b: r3}\n  - {a: r3, b: server}\nroutes:\n  r2: [{to: server, via: r1}]\n", 10, "go round in a loop"),
    (CHAIN + "  - {a: r1, b: r2}\n  - {a: r2, b: server}\nroutes:\n  r2: [{to: server, via: r1}]\n",
     9, "a LAN r2 is on"),
    (CHAIN + "  - {a: r1, b: r2}\n  - {a: r2, b: server}\nroutes:\n  r2: [{to: 10.3.0.0/25, via: r1}]\n",
     9, "10.3.0.0/25 overlaps 10.3.0.0/24"),
    (CHAIN + "  - {a: r1, b: r2, delay: 5ms}\n  - {a: r1, b: r2, delay: 50ms, cost: 5}\n  - {a: r2, b: server}\n",
     7, "a second link between r1 and r2"),
    ("name: t\nhosts: [client, server]\nswitches: [s1, s2]\nrouters: [r1]\nlinks:\n  - {a: client, b: s1}\n"
     "  - {a: s1, b: s2}\n  - {a: s1, b: r1}\n  - {a: r1, b: s2}\n  - {a: r1, b: server}\n", 9, "two links into one LAN"),
    (CHAIN + "  - {a: r1, b: r2, addresses: {r1: 10.9.0.1/24, r2: 10.9.0.1/24}}\n  - {a: r2, b: server}\n",
     6, "both given 10.9.0.1"),
    ("name: t\nhosts: [client, server]\nswitches: [s1]\nrouters: [r1]\nlinks:\n"
     "  - {a: client, b: s1, addresses: {s1: 10.5.0.11/24}}\n  - {a: s1, b: r1}\n  - {a: r1, b: server}\n",
     6, "a switch port has no address"),
    (CHAIN + "  - {a: r1, b: r2, addresses: {r1: 127.0.0.9/24}}\n  - {a: r2, b: server}\n", 6, "loopback"),
    (CHAIN + "  - {a: r1, b: r2, addresses: {r1: 10.0.0.1/0}}\n  - {a: r2, b: server}\n", 6, "/8 to /31"),
    (CHAIN + "  - {a: r1, b: r2, addresses: {r1: 10.1.0.1/16}}\n  - {a: r2, b: server, addresses: {r2: 10.1.9.1/24}}\n",
     7, "overlap but are different LANs"),
    (CHAIN + "  - {a: r1, b: r2, mtu: 100}\n  - {a: r2, b: server}\n", 6, "bad mtu value"),
    ("name: t\nhosts: [client, server]\nswitches: [s1]\nrouters: [r1]\nlinks:\n  - {a: client, b: s1, mtu: 1400}\n"
     "  - {a: s1, b: r1, mtu: 1500}\n  - {a: r1, b: server}\n", 7, "different MTUs"),
    (CHAIN + "  - {a: r1, b: r2, addresses: {r1: 10.9.0.1/24, r2: 10.8.0.2/24}}\n  - {a: r2, b: server}\n",
     6, "different subnets"),
    ("name: t\nhosts: [client, server]\nswitches: [s1]\nlinks:\n  - {a: client, b: s1}\n  - {a: s1, b: server}\n"
     "routes:\n  client: [{to: server, via: s1}]\n", 7, "routes: without routers"),
    (CHAIN + "  - {a: r1, b: r2}\n  - {a: r2, b: server}\n  - {a: client, b: r2}\n", 8, "second link"),
])
def test_unworkable_topologies_are_refused_with_their_line(tmp_path, text, line, words):
    error = _refusal(tmp_path, text)
    assert words in str(error)
    assert error.line == line and error.file == str(tmp_path / "t.yaml")
    assert error.fix


def test_a_loop_through_routers_is_routing_not_a_storm(tmp_path):
    text = ("name: t\nhosts: [client, server]\nrouters: [r1, r2, r3]\nlinks:\n  - {a: client, b: r1}\n"
            "  - {a: r1, b: r2}\n  - {a: r2, b: r3}\n  - {a: r3, b: r1}\n  - {a: r2, b: server}\n")
    topo = load_topology(_write(tmp_path, text), existing=set())
    assert topo.path("client", "server") == ["client", "r1", "r2", "server"]
    assert len({i.subnet for i in topo.interfaces}) == 5


def test_the_last_link_into_a_lan_counts_in_the_cost(tmp_path):
    """r1's link into the server's LAN costs 100, r2's 1: the cheap way in is through r2."""
    text = ("name: t\nhosts: [client, server]\nswitches: [s1, s2]\nrouters: [r1, r2]\nlinks:\n"
            "  - {a: client, b: s1}\n  - {a: s1, b: r1}\n  - {a: s1, b: r2}\n  - {a: r1, b: s2, cost: 100}\n"
            "  - {a: r2, b: s2}\n  - {a: server, b: s2}\n")
    topo = load_topology(_write(tmp_path, text), existing=set())
    assert topo.path("client", "server") == ["client", "s1", "r2", "s2", "server"]


@pytest.mark.parametrize("prefix, addresses", [("30", ["192.168.9.1", "192.168.9.2"]),
                                               ("31", ["192.168.9.0", "192.168.9.1"])])
def test_small_given_subnets_number_their_hosts_in_what_is_left(tmp_path, prefix, addresses):
    given = "192.168.9.1" if prefix == "30" else "192.168.9.0"
    text = (f"name: t\nhosts: [client, server]\nrouters: [r1]\nlinks:\n"
            f"  - {{a: client, b: r1, addresses: {{r1: {given}/{prefix}}}}}\n  - {{a: r1, b: server}}\n")
    topo = load_topology(_write(tmp_path, text), existing=set())
    got = {i.node: i.address for i in topo.interfaces if i.link == 0}
    assert sorted(got.values()) == addresses and got["r1"] == given
