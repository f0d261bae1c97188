"""A routed lab on the real kernel (this machine's: no netem needed, so no delays): client — r1 —
r2 — server with a 1400-byte link between the routers. It must build as the loader planned it
(addresses, routes, MTU, forwarding read back), carry pings and a TCP stream across both routers,
answer a too-big DF packet with "Frag needed" from r1, refuse a lab whose kernel state drifts
from the plan, and leave nothing behind (interfaces, namespaces, processes)."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from harness.errors import RunFailed
from harness.lab.leftovers import Ledger, LocalLock
from harness.lab.network import mininet_lab, ping_rtt_s, warm_up
from harness.lab.routing_setup import verify
from harness.load.topology import load_topology
from harness.model import Expectations, Experiment
from harness.runlog import node_pexec

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="building a lab needs root")]

CHAIN = """name: routed_chain
hosts: [client, server]
routers: [r1, r2]
links:
  - {a: client, b: r1}
  - {a: r1, b: r2, mtu: 1400}
  - {a: r2, b: server}
"""
NODES = ("client", "r1", "r2", "server")
LISTENER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 5001)); s.listen(1); print("ready", flush=True)
c, _ = s.accept(); n = 0
while (b := c.recv(65536)): n += len(b)
print(n, flush=True)
"""
SENDER = """
import socket, sys
c = socket.create_connection((sys.argv[1], 5001), timeout=20); c.sendall(b"x" * 200000); c.close()
"""


def _ip_json(node, *args: str) -> list[dict]:
    out, err, code = node_pexec(node, ["ip", "-j", *args])
    assert code == 0, err
    return json.loads(out)


def _machine_interfaces() -> set[str]:
    return {e["ifname"] for e in json.loads(subprocess.run(["ip", "-j", "link"], capture_output=True, text=True).stdout)}


def _tcp_bytes_across(lab, server_ip: str) -> int:
    """Bytes the server read from one connection the client made across both routers."""
    listener = lab.node("server").popen(["python3", "-c", LISTENER, server_ip], stdout=subprocess.PIPE, text=True)
    try:
        assert listener.stdout.readline().strip() == "ready"
        out, err, code = node_pexec(lab.node("client"), ["python3", "-c", SENDER, server_ip])
        assert code == 0, err
        return int(listener.stdout.readline())
    finally:
        listener.kill()
        listener.wait()


def _check_lab(lab, topo) -> list[int]:
    """Everything a run relies on, read from the kernel independently of the lab's own read-back."""
    assert {k for k in lab.interfaces} == {"client-eth0", "r1-eth0", "r1-eth1", "r2-eth0", "r2-eth1", "server-eth0"}
    assert lab.port("r1", "r2") == "r1-eth1" and lab.port("r2", "server") == "r2-eth1"
    r1 = {e["ifname"]: e for e in _ip_json(lab.node("r1"), "addr", "show")}
    assert r1["r1-eth1"]["mtu"] == 1400 and r1["r1-eth0"]["mtu"] == 1500
    assert [a["local"] for a in r1["r1-eth1"]["addr_info"] if a["family"] == "inet"] == ["10.2.0.1"]
    client_routes = {e["dst"]: e.get("gateway") for e in _ip_json(lab.node("client"), "route", "show")}
    assert client_routes == {"10.1.0.0/24": None, "10.2.0.0/24": "10.1.0.1", "10.3.0.0/24": "10.1.0.1"}
    server_ip = topo.address("server")
    warm_up(lab.net)
    assert ping_rtt_s(lab.net, "client", "server", count=2) is not None
    out, _, _ = node_pexec(lab.node("client"), ["ping", "-c1", "-W2", "-M", "do", "-s", "1472", server_ip])
    assert "From 10.1.0.1" in out and "Frag needed" in out and "mtu = 1400" in out, out
    out, _, _ = node_pexec(lab.node("client"), ["ip", "route", "get", server_ip])
    assert "mtu 1400" in out, out          # the client learned the path MTU from r1's answer
    assert _tcp_bytes_across(lab, server_ip) == 200000
    return [lab.node(n).pid for n in NODES]


def test_a_routed_chain_builds_as_planned_carries_traffic_and_leaves_nothing(tmp_path: Path):
    (tmp_path / "chain.yaml").write_text(CHAIN)
    topo = load_topology(tmp_path / "chain.yaml")
    experiment = Experiment("routed_chain", topo, 1.0, (), {}, Expectations(), tmp_path / "chain.yaml")
    before = _machine_interfaces()
    lock = LocalLock()        # one local lab at a time (other tests' runs wait, as runs do)
    try:
        with mininet_lab(experiment, Ledger(), {h: topo.address(h) for h in topo.hosts}) as lab:
            shells = _check_lab(lab, topo)
            node_pexec(lab.node("r2"), ["ip", "route", "replace", "10.1.0.0/24", "via", "10.3.0.11", "dev", "r2-eth1"])
            with pytest.raises(RunFailed, match=r"r2: route 10\.1\.0\.0/24 via 10\.2\.0\.1 dev r2-eth0 planned, "
                                                r"the kernel has via 10\.3\.0\.11 dev r2-eth1"):
                verify(lab.net, topo, {(i.node, i.link): lab.port(i.node, i.peer) for i in topo.interfaces})
    finally:
        lock.release()
    assert not [pid for pid in shells if Path(f"/proc/{pid}").exists()], "a node's shell (and its namespace) outlived the lab"
    assert _machine_interfaces() - before == set()
