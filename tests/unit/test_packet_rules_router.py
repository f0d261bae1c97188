"""Network steps at a router, the pure parts: rule texts of family ip, where the rules go, the next
hop and the MACs read from the router (on `ip -j` output recorded from a routed lab of namespaces on
the host's 6.18: tests/fixtures/router_steps), and the injected segment's TTL. The real kernel
side is tests/integration/test_router_steps.py."""
from __future__ import annotations

import json
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest

from harness.errors import RunFailed
from harness.lab.injector import neighbour_mac, routed_ttl
from harness.lab.packet_rules import (NetworkRules, PacketRules, PlacedStep, nft_rule, route_next_hop, rule_groups,
                                      rule_home)
from harness.model import Impairment, NetworkStep, PacketMatch

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "router_steps"
SYN = NetworkStep("drop", "client", "server", PacketMatch("S", None, 5001), 13, nth=1)


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def at(step: NetworkStep, node: str = "r1", port: str = "r1-eth1", ingress: str = "r1-eth0") -> PlacedStep:
    return PlacedStep(step, port, Impairment(delay_s=0.01), "10.1.0.11", "10.3.0.11", ingress, node=node)


def test_a_duplicate_at_a_router_is_routed_to_the_next_hop_out_of_the_egress_port():
    rule = nft_rule(replace(SYN, action="duplicate"), "r1-eth1", "10.1.0.11", "10.3.0.11", 16, next_hop="10.2.0.2")
    assert rule.startswith('oifname "r1-eth1" ip saddr 10.1.0.11 ip daddr 10.3.0.11 ip protocol tcp ')
    assert rule.endswith('counter dup to 10.2.0.2 device "r1-eth1" comment "step-13"')
    assert "mark" not in rule
    # at a switch the copy still goes straight to the port (a netdev ingress chain: no oifname)
    assert nft_rule(replace(SYN, action="duplicate"), "s1-eth2", "10.0.0.1", "10.0.0.2", 16).startswith("ip saddr")


def test_at_a_router_every_rule_sits_in_the_ip_tables_forward_chain():
    steps = [at(replace(SYN, action="duplicate")), at(SYN), at(replace(SYN, action="duplicate"), ingress="r1-eth2")]
    assert rule_home(steps, "ip") == [("ip", "rules")] * 3
    assert rule_home(steps) == [("netdev", "in0"), ("bridge", "rules"), ("netdev", "in1")]


@pytest.mark.parametrize("name, hop, dev", [("route_get_via_gateway.json", "10.2.0.2", "r1-eth1"),
                                            ("route_get_on_link.json", "10.3.0.11", "r2-eth1")])
def test_the_next_hop_is_the_gateway_or_else_the_destination_itself(name, hop, dev):
    assert route_next_hop(fixture(name), "10.3.0.11") == (hop, dev)


def test_no_route_is_said():
    with pytest.raises(RunFailed, match="the router has no route to 10.9.0.1"):
        route_next_hop("[]", "10.9.0.1")


@pytest.mark.parametrize("name, address, mac", [("neigh_known.json", "10.2.0.2", "9e:2e:52:d5:91:18"),
                                                ("neigh_known.json", "10.2.0.9", None),
                                                ("neigh_unknown.json", "10.2.0.9", None),
                                                ("neigh_failed.json", "10.2.0.9", None)])
def test_the_next_hops_mac_only_when_the_router_knows_it(name, address, mac):
    assert neighbour_mac(fixture(name), address) == mac


def test_an_injected_segment_has_the_ttl_a_routed_one_would():
    assert routed_ttl(64, 0) == 64          # at a switch: as sent
    assert routed_ttl(64, 1) == 63          # at the first router
    assert routed_ttl(1, 2) == 0            # never below zero


def test_switch_steps_share_one_bridge_table_and_each_router_has_its_own():
    placed = [at(SYN, node="s1", port="s1-eth2"), at(SYN, node="r1"), at(SYN, node="s2", port="s2-eth1"),
              at(SYN, node="r2", port="r2-eth1")]
    groups = rule_groups(placed, {"r1", "r2"})
    assert list(groups) == ["s1", "r1", "r2"]
    assert [p.port for p in groups["s1"]] == ["s1-eth2", "s2-eth1"]
    assert rule_groups([at(SYN, node="s1", port="s1-eth2")], set()) == {"s1": [placed[0]]}


class Router:
    """A router's node face: records the commands PacketRules runs in its namespace, and answers
    `ip route get` as the recorded router r1 did."""
    name, pid = "r1", 4242

    def __init__(self):
        self.commands: list[str] = []

    def pexec(self, args):
        joined = " ".join(args)      # each nft command on its own (several run ' ; '-separated in one nft)
        self.commands += [f"nft {c}" for c in joined[4:].split(" ; ")] if joined.startswith("nft ") else [joined]
        if args[:4] == ["ip", "-j", "route", "get"]:
            return fixture("route_get_via_gateway.json"), "", 0
        return json.dumps({"nftables": []}), "", 0

    def cmd(self, text):
        return "qdisc prio 1: root"


class Ledger:
    def __init__(self):
        self.tables: list[str] = []

    def add(self, nft_tables=()):
        self.tables += list(nft_tables)

    def forget(self, nft_tables=()):
        self.tables = [t for t in self.tables if t not in nft_tables]


def test_at_a_router_the_tables_are_family_ip_in_its_namespace_and_not_in_the_ledger(monkeypatch):
    from harness.lab import packet_rules
    outside: list[list[str]] = []

    def run(args, **kw):
        outside.append(list(args))
        return subprocess.CompletedProcess(args, 0, "", "")
    monkeypatch.setattr(packet_rules, "run_command", run)
    router, ledger = Router(), Ledger()
    steps = [at(SYN), at(replace(SYN, action="duplicate", index=14)), at(replace(SYN, action="hold", index=15, extra_s=1.0)),
             at(replace(SYN, index=16, at_s=0.01))]
    rules = PacketRules(steps, router, ledger, family="ip")
    t = rules.table
    rules.install_untimed()
    rules.start(time.time())
    for timer in list(rules.timers):
        timer.join(10)
    rules.close()
    assert ledger.tables == []                 # the table goes with the router's namespace
    assert router.commands[:2] == [f"nft add table ip {t}",
                                   f"nft add chain ip {t} rules {{ type filter hook forward priority 0; policy accept; }}"]
    assert "ip -j route get 10.3.0.11" in router.commands and rules.next_hops == {14: "10.2.0.2"}
    added = [c for c in router.commands if c.startswith(f"nft add rule ip {t} rules ")]
    assert len(added) == 3 and 'dup to 10.2.0.2 device "r1-eth1"' in added[1]
    assert not any("netdev" in c for c in router.commands)
    assert "| tc -batch - tc-batch qdisc replace dev r1-eth1 root handle 1: prio bands 2 priomap" in " ".join(router.commands)
    # the timed rule (on a timer thread) and the clean-up run outside node.pexec: in its namespace too
    timed = nft_rule(steps[3].step, "r1-eth1", "10.1.0.11", "10.3.0.11", 0x13)
    assert outside == [["nsenter", "-t", "4242", "-n", "nft", f"add rule ip {t} rules {timed}"],
                       ["nsenter", "-t", "4242", "-n", "nft", "delete", "table", "ip", t]]
    assert 16 in rules.switched_on and rules.failed == []


def test_a_router_that_sends_the_segments_elsewhere_stops_the_set_up():
    router = Router()
    with pytest.raises(RunFailed, match="line 14: the router sends 10.3.0.11 out of r1-eth1, not r1-eth0"):
        PacketRules([at(replace(SYN, action="duplicate", index=14), port="r1-eth0")], router, Ledger(), family="ip")
    assert not any("add rule ip" in c and "rules" in c for c in router.commands)


def test_network_rules_make_one_packet_rules_per_node_and_read_them_as_one(monkeypatch):
    from harness.lab import packet_rules
    monkeypatch.setattr(packet_rules, "run_command", lambda args, **kw: subprocess.CompletedProcess(args, 0, "", ""))
    nodes = {"r1": Router(), "s1": Router()}
    placed = [at(SYN, node="s1", port="s1-eth2"), at(replace(SYN, index=14)),
              at(replace(SYN, action="inject", index=15))]
    with NetworkRules(placed, nodes.__getitem__, ("r1",), Ledger()) as rules:
        assert [(p.family, p.node) for p in rules.parts] == [("bridge", nodes["s1"]), ("ip", nodes["r1"])]
        assert rules.counters() == {}
        assert [n["family"] for n in rules.summary()["nodes"]] == ["bridge", "ip"]
    assert nodes["s1"].commands[0].startswith("nft add table bridge ")
    assert nodes["r1"].commands[0].startswith("nft add table ip ")


def test_a_family_that_is_neither_is_refused():
    with pytest.raises(ValueError, match="family must be one of"):
        PacketRules([], Router(), Ledger(), family="inet")
