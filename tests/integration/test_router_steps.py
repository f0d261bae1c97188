"""Network steps at a router, on the kernel this runs on: a routed lab of four namespaces built
here with `ip netns` and veth pairs (client - r1 - r2 - server, one /24 per link, static routes,
ip_forward on the routers), and the real PacketRules (family ip, in r1's namespace) and Injector
(a socket in r1's namespace) acting on r1's port towards r2, as the runner places a step whose
first node on the path is a router. What arrives is read from tcpdump captures.
- drop: the client's first SYN is dropped at r1, the retransmitted one connects (~1 s later);
- duplicate: the SYN reaches the server twice, both routed (r2's MAC as source, TTL 62 = 64 less
  two routers): `dup to` the next hop, not to a device, or the copy would keep r1's MAC and TTL;
- inject: an RST on the client's four-tuple sent from r1 leaves r1's port with r1's MAC, r2's MAC
  and TTL 63, is forwarded by r2 and resets the server's socket;
- hold and delay need sch_netem: skipped where tc does not know it (the host's 6.18 here); all
  of the above passed in the 6.1 VM (virtme-ng, `pytest tests/integration/test_router_steps.py`);
- the last test runs tests/fixtures/steps_at_routers.yaml through run-experiment (the VM where
  this kernel lacks netem): hold, drop, duplicate and inject at routers in one experiment.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import dpkt
import pytest

from harness.analyse.figures import ConnRef
from harness.errors import RunFailed
from harness.lab.injector import Injection, Injector, InjectorPlan, router_link
from harness.lab.packet_rules import NetworkRules, PacketRules, PlacedStep
from harness.model import ConnTerm, Impairment, InjectSpec, NetworkStep, PacketMatch

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="building namespaces needs root")]

CLIENT, SERVER = "10.1.0.11", "10.3.0.11"
R2_LEFT = "10.2.0.2"


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, check=check, timeout=30)


class Netns:
    """A named namespace with a process in it (its pid is what nsenter/setns need), and Mininet's
    node face (name, pid, pexec, cmd) that PacketRules and router_link use."""

    def __init__(self, name: str) -> None:
        self.name = name
        sh("ip", "netns", "add", name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        self.keeper = subprocess.Popen(["ip", "netns", "exec", name, "sleep", "infinity"])
        self.pid = self.keeper.pid
        deadline = time.time() + 5
        while os.stat(f"/proc/{self.pid}/ns/net").st_ino != os.stat(f"/run/netns/{name}").st_ino:
            assert time.time() < deadline, "the keeper process never entered its namespace"
            time.sleep(0.01)

    def pexec(self, args):
        done = subprocess.run(["ip", "netns", "exec", self.name, *args], capture_output=True, text=True, timeout=30)
        return done.stdout, done.stderr, done.returncode

    def cmd(self, text: str) -> str:
        return self.pexec(["sh", "-c", text])[0]

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(["ip", "netns", "exec", self.name, *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def mac(self, intf: str) -> str:
        return json.loads(self.pexec(["ip", "-j", "link", "show", "dev", intf])[0])[0]["address"]

    def remove(self) -> None:
        self.keeper.kill()
        self.keeper.wait()
        sh("ip", "netns", "delete", self.name, check=False)


@dataclass
class RoutedLab:
    nodes: dict[str, Netns]

    def __getitem__(self, name: str) -> Netns:
        return self.nodes[name]


@pytest.fixture
def lab():
    tag = uuid.uuid4().hex[:6]
    nodes: dict[str, Netns] = {}
    try:
        for name in ("client", "r1", "r2", "server"):
            nodes[name] = Netns(f"rs{tag}{name}")
        ns = {name: node.name for name, node in nodes.items()}
        for a, ai, b, bi in (("client", "client-eth0", "r1", "r1-eth0"), ("r1", "r1-eth1", "r2", "r2-eth0"),
                             ("r2", "r2-eth1", "server", "server-eth0")):
            sh("ip", "link", "add", ai, "netns", ns[a], "type", "veth", "peer", "name", bi, "netns", ns[b])
        for name, intf, addr in (("client", "client-eth0", CLIENT + "/24"), ("r1", "r1-eth0", "10.1.0.1/24"),
                                 ("r1", "r1-eth1", "10.2.0.1/24"), ("r2", "r2-eth0", R2_LEFT + "/24"),
                                 ("r2", "r2-eth1", "10.3.0.2/24"), ("server", "server-eth0", SERVER + "/24")):
            sh("ip", "-n", ns[name], "addr", "add", addr, "dev", intf)
            sh("ip", "-n", ns[name], "link", "set", intf, "up")
        for router in ("r1", "r2"):
            for key, value in (("ip_forward", 1), ("conf.all.rp_filter", 0), ("conf.all.send_redirects", 0)):
                sh("ip", "netns", "exec", ns[router], "sysctl", "-qw", f"net.ipv4.{key}={value}")
        for name, prefix, via in (("client", "10.2.0.0/24", "10.1.0.1"), ("client", "10.3.0.0/24", "10.1.0.1"),
                                  ("r1", "10.3.0.0/24", R2_LEFT), ("r2", "10.1.0.0/24", "10.2.0.1"),
                                  ("server", "10.1.0.0/24", "10.3.0.2"), ("server", "10.2.0.0/24", "10.3.0.2")):
            sh("ip", "-n", ns[name], "route", "add", prefix, "via", via)
        sh("ip", "netns", "exec", ns["client"], "ping", "-c", "1", "-W", "2", SERVER)     # neighbours known
        yield RoutedLab(nodes)
    finally:
        for node in nodes.values():
            node.remove()


class Ledger:
    """PacketRules records bridge tables only; a router's table goes with its namespace."""
    def __init__(self):
        self.tables = []

    def add(self, nft_tables=()):
        self.tables += list(nft_tables)


SYN = PacketMatch("S", None, 5001)


def placed(step: NetworkStep) -> PlacedStep:
    """The step as the runner places it when r1 is the first node on the client's path."""
    return PlacedStep(step, "r1-eth1", Impairment(), CLIENT, SERVER, "r1-eth0", node="r1")


class Capture:
    """tcpdump on one interface of one namespace, read back as (dpkt Ethernet, time) pairs."""

    def __init__(self, node: Netns, intf: str, path: Path) -> None:
        self.path = path
        self.proc = node.popen("tcpdump", "-U", "--immediate-mode", "-n", "-i", intf, "-w", str(path), "tcp")
        deadline = time.time() + 10
        while "listening" not in self.proc.stderr.readline():
            assert time.time() < deadline and self.proc.poll() is None, "tcpdump did not start"

    def frames(self) -> list[dpkt.ethernet.Ethernet]:
        time.sleep(0.3)
        self.proc.terminate()
        self.proc.wait(10)
        with open(self.path, "rb") as f:
            return [dpkt.ethernet.Ethernet(buf) for _, buf in dpkt.pcap.Reader(f)]


def serve(lab: RoutedLab, hold_s: float = 3.0) -> subprocess.Popen:
    """A server on 5001 that accepts one connection, reads until it ends, and says how it ended."""
    code = ("import socket,sys\n"
            f"s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(('{SERVER}',5001));s.listen()\n"
            "print('listening',flush=True)\n"
            f"s.settimeout(60);c,_=s.accept();c.settimeout({hold_s})\n"
            "try:\n  print('eof' if c.recv(100)==b'' else 'data',flush=True)\n"
            "except ConnectionResetError: print('reset',flush=True)\n"
            "except socket.timeout: print('timeout',flush=True)\n")
    server = lab["server"].popen("python3", "-c", code)
    assert server.stdout.readline().strip() == "listening"
    return server


def client(lab: RoutedLab, hold_s: float = 0.0) -> subprocess.Popen:
    """A client that connects, prints how long connect() took and its port, and keeps the socket
    open hold_s."""
    code = ("import socket,time\n"
            f"t=time.time();c=socket.create_connection(('{SERVER}',5001),timeout=10);print(time.time()-t,c.getsockname()[1],flush=True)\n"
            f"time.sleep({hold_s})\n")
    return lab["client"].popen("python3", "-c", code)


def connected(proc: subprocess.Popen) -> tuple[float, int]:
    """(seconds connect() took, the client's port), once it says so."""
    line = proc.stdout.readline().split()
    assert line, proc.communicate(timeout=30)[1]
    return float(line[0]), int(line[1])


def connect(lab: RoutedLab) -> tuple[float, int]:
    proc = client(lab)
    try:
        return connected(proc)
    finally:
        proc.wait(30)


def syns(frames, sport=None) -> list:
    return [f for f in frames if isinstance(f.data, dpkt.ip.IP) and isinstance(f.data.data, dpkt.tcp.TCP)
            and f.data.data.flags & dpkt.tcp.TH_SYN and not f.data.data.flags & dpkt.tcp.TH_ACK
            and (sport is None or f.data.data.sport == sport)]


def test_drop_at_a_router_takes_the_first_syn_and_the_retransmission_connects(lab):
    server = serve(lab)
    drop = NetworkStep("drop", "client", "server", SYN, 11, nth=1)
    with NetworkRules([placed(drop)], {"r1": lab["r1"]}.__getitem__, ("r1", "r2"), Ledger()) as rules:
        assert [p.family for p in rules.parts] == ["ip"]
        rules.wait_ready()
        rules.start(time.time())
        took, _ = connect(lab)
        counts = rules.counters()
        listed = lab["r1"].cmd("nft list ruleset")
    server.kill()
    assert counts == {11: 1}
    assert 0.9 < took < 3.0, took                       # the SYN retransmitted after ~1 s got through
    assert "table ip tcptestbed_" in listed and "hook forward" in listed and 'oifname "r1-eth1"' in listed
    assert "tcptestbed_" not in lab["r1"].cmd("nft list ruleset")        # stop() removed it


def test_a_duplicate_at_a_router_is_routed_like_the_original(lab, tmp_path):
    server = serve(lab)
    capture = Capture(lab["server"], "server-eth0", tmp_path / "server.pcap")
    dup = NetworkStep("duplicate", "client", "server", SYN, 12, nth=1)
    with PacketRules([placed(dup)], lab["r1"], Ledger(), family="ip") as rules:
        assert rules.next_hops == {12: R2_LEFT}
        rules.wait_ready()
        _, port = connect(lab)
        counts = rules.counters()
    server.kill()
    frames = syns(capture.frames(), port)
    assert counts == {12: 1}
    assert len(frames) == 2, frames
    r2_mac, server_mac = lab["r2"].mac("r2-eth1"), lab["server"].mac("server-eth0")
    for frame in frames:
        assert (dpkt.utils.mac_to_str(frame.src), dpkt.utils.mac_to_str(frame.dst)) == (r2_mac, server_mac)
        assert frame.data.ttl == 62                      # 64, less r1 and r2
    assert frames[0].data.data.seq == frames[1].data.data.seq


def test_the_plan_and_the_routes_must_agree_on_the_port(lab):
    dup = NetworkStep("duplicate", "client", "server", SYN, 13, nth=1)
    wrong = PlacedStep(dup, "r1-eth0", Impairment(), CLIENT, SERVER, "r1-eth1", node="r1")
    with pytest.raises(RunFailed, match=r"line 13: the router sends 10.3.0.11 out of r1-eth1, not r1-eth0"):
        PacketRules([wrong], lab["r1"], Ledger(), family="ip")
    assert "tcptestbed_" not in lab["r1"].cmd("nft list ruleset")        # nothing left half-made


def test_an_rst_injected_at_a_router_leaves_as_r1_forwards_and_resets_the_server(lab, tmp_path):
    server = serve(lab, hold_s=4.0)
    capture = Capture(lab["r1"], "r1-eth1", tmp_path / "r1.pcap")
    src_mac, dst_mac = router_link(lab["r1"], "r1-eth1", SERVER)
    assert (src_mac, dst_mac) == (lab["r1"].mac("r1-eth1"), lab["r2"].mac("r2-eth0"))
    rst = NetworkStep("inject", "client", "server", PacketMatch(), 14, at_s=0.3,
                      inject=InjectSpec(socket="a", flags="R", seq=ConnTerm("a", "snd_nxt", 0, "a.snd_nxt")))
    job = Injection(rst, "r1-eth1", CLIENT, SERVER, src_mac, dst_mac, netns_pid=lab["r1"].pid, ttl_drop=1)
    refs = {"a": ConnRef("a", CLIENT, SERVER, 5001, 1, "client")}
    log = tmp_path / "inject.jsonl"
    with Injector(InjectorPlan((job,), refs, str(log))) as injector:
        injector.wait_ready(10)
        proc = client(lab, hold_s=3.0)
        _, port = connected(proc)          # t0 once connected: starting Python in the VM takes a while
        injector.go(time.time())
        proc.wait(30)
    (record,) = [json.loads(line) for line in log.read_text().splitlines()]
    said = server.communicate(timeout=10)[0].split()
    frames = [f for f in capture.frames() if f.data.data.flags & dpkt.tcp.TH_RST and f.data.src == socket.inet_aton(CLIENT)]
    assert record["sent"] is not None and record["ttl"] == 63 and record["sport"] == port, record
    assert said == ["listening", "reset"] or said == ["reset"], said
    (frame,) = frames
    assert (dpkt.utils.mac_to_str(frame.src), dpkt.utils.mac_to_str(frame.dst)) == (src_mac, dst_mac)
    assert frame.data.ttl == 63 and frame.data.data.sport == port and frame.data.data.seq == record["seq"]


def netem_missing() -> bool:
    """Whether tc can make a netem qdisc (tried on the loopback of a namespace of its own)."""
    probe = subprocess.run(["unshare", "-n", "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "0ms"],
                           capture_output=True, text=True)
    return probe.returncode != 0


@pytest.mark.skipif(netem_missing(), reason="no sch_netem on this kernel (hold and delay bands are netem)")
@pytest.mark.parametrize("action", ["hold", "delay"])
def test_hold_and_delay_at_a_router_add_their_time_to_the_syn(lab, action):
    server = serve(lab)
    step = NetworkStep(action, "client", "server", SYN, 15, nth=1, extra_s=0.5)
    with PacketRules([placed(step)], lab["r1"], Ledger(), family="ip") as rules:
        rules.wait_ready()
        took, _ = connect(lab)
        counts = rules.counters()
        bands = rules.qdiscs["r1-eth1"]
    server.kill()
    assert counts == {15: 1} and "prio" in bands and "netem" in bands
    assert 0.5 <= took < 0.9, took                        # its extra 0.5 s, no retransmission


def test_every_network_step_at_routers_in_an_experiment(cli, tmp_path: Path):
    """The whole path, as a user writes it: topologies/routed.yaml, a hold at r1 (the client's first
    hop), a drop and an inject at r2 (the server's), a duplicate at r1; each step picks exactly its
    segment, the duplicate reaches the server twice, routed (seen on r2's port towards it)."""
    run = cli(["tests/fixtures/steps_at_routers.yaml"])
    code, out, err = run.finish()
    (path,) = tmp_path.glob("steps_at_routers/*/result.json")
    result = json.loads(path.read_text())
    assert code == 0 and result["passed"], out[-4000:] + err[-2000:]
    assert [(s["action"], s["picked"], s["counted"], s["problems"]) for s in result["network"]] == [
        ("hold", 1, 1, []), ("drop", 1, 1, []), ("duplicate", 1, 1, []), ("inject", 1, 1, [])]
    with open(path.parent / "pcap" / "r2-eth1.pcap", "rb") as f:
        acks = [dpkt.ethernet.Ethernet(buf).data for _, buf in dpkt.pcap.Reader(f)]
    acks = [ip for ip in acks if isinstance(ip, dpkt.ip.IP) and isinstance(ip.data, dpkt.tcp.TCP)
            and ip.src == socket.inet_aton(CLIENT) and ip.data.flags == dpkt.tcp.TH_ACK and not ip.data.data]
    copies = Counter((ip.data.seq, ip.data.ack, ip.data.opts) for ip in acks)
    assert sorted(copies.values()) == [1, 2] and {ip.ttl for ip in acks} == {62}, copies     # the handshake's, the data's twice
