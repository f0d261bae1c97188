"""The kernel send capture's check (analyse.kernel_check) and the commands that set it up."""
from __future__ import annotations

import shlex
import shutil
import subprocess

import pytest

from harness.analyse.kernel_check import check_kernel_sends, tolerance_s
from harness.analyse.segments import Segment
from harness.model import Impairment
from harness.analyse.connection import kernel_pcap_path
from harness.record.kernel_sends import mirror_command, mirror_problems, setup_commands, tx_device

CLIENT, SERVER = "10.0.0.1", "10.0.0.2"


def seg(t: float, flags: str, seq: int, src: str = CLIENT, tsval: int | None = 7, length: int = 0) -> Segment:
    dst = SERVER if src == CLIENT else CLIENT
    sport, dport = (40000, 5001) if src == CLIENT else (5001, 40000)
    return Segment(t, src, sport, dst, dport, flags, seq, 0, length, tsval)


def check(at_interface, kernel, egress=Impairment(delay_s=0.025)):
    return check_kernel_sends("client", CLIENT, at_interface, kernel, egress)


def test_sends_earlier_by_the_delay_pass_and_incoming_segments_are_not_asked_for():
    wire = [seg(1.025, "S", 100), seg(1.100, "SA", 500, src=SERVER), seg(1.125, "A", 101)]
    kernel = [seg(1.000, "S", 100), seg(1.1003, "A", 101)]
    assert check(wire, kernel) == []


def test_a_send_missing_from_the_kernel_capture_is_named():
    problems = check([seg(1.025, "S", 100), seg(2.025, "F", 101)], [seg(1.0, "S", 100)])
    assert len(problems) == 1 and "F 10.0.0.1:40000 > 10.0.0.2:5001 seq 101" in problems[0]
    assert "not in it" in problems[0]


def test_a_different_field_is_a_different_segment():
    assert check([seg(1.025, "S", 100)], [seg(1.0, "S", 101)]) != []
    assert check([seg(1.025, "S", 100)], [seg(1.0, "S", 100, length=1)]) != []
    assert check([seg(1.025, "S", 100)], [seg(1.0, "SA", 100)]) != []


def test_a_kernel_copy_stamped_after_the_interface_is_refused():
    problems = check([seg(1.000, "S", 100)], [seg(1.002, "S", 100)], Impairment())
    assert len(problems) == 1 and "later" in problems[0]


def test_the_gap_must_be_at_least_the_delay_within_the_tolerance():
    assert tolerance_s(0.025) == 0.001 and abs(tolerance_s(0.1) - 0.002) < 1e-12
    assert check([seg(1.0241, "S", 100)], [seg(1.0, "S", 100)]) == []
    problems = check([seg(1.0230, "S", 100)], [seg(1.0, "S", 100)])
    assert len(problems) == 1 and "only 23.000 ms earlier" in problems[0] and "25 ms" in problems[0]
    assert check([seg(1.0, "S", 100)], [seg(1.0, "S", 100)]) != []       # no gap at all on a 25 ms link


def test_no_delay_means_the_same_moment():
    assert check([seg(1.0, "S", 100)], [seg(1.0, "S", 100)], None) == []
    assert check([seg(1.0, "S", 100)], [seg(1.001, "S", 100)], Impairment()) != []     # later: refused


def test_jitter_or_a_rate_limit_only_asks_for_presence_and_order():
    for egress in (Impairment(delay_s=0.025, jitter_s=0.005), Impairment(delay_s=0.025, bw_mbit=1.0)):
        assert check([seg(1.040, "S", 100)], [seg(1.0, "S", 100)], egress) == []
        assert check([seg(1.040, "S", 100)], [seg(1.05, "S", 100)], egress) != []


def test_a_segment_dropped_by_the_hosts_own_netem_is_only_in_the_kernel_capture():
    # the first SYN lost on the client's link, its retransmission (another tsval) went through
    kernel = [seg(1.0, "S", 100, tsval=1), seg(2.0, "S", 100, tsval=1001)]
    assert check([seg(2.025, "S", 100, tsval=1001)], kernel, Impairment(delay_s=0.025, loss_pct=50)) == []


def test_each_kernel_copy_is_used_once():
    # two identical copies at the interface (no timestamps) need two in the kernel capture
    wire = [seg(1.025, "S", 100, tsval=None), seg(2.025, "S", 100, tsval=None)]
    assert check(wire, [seg(1.0, "S", 100, tsval=None), seg(2.0, "S", 100, tsval=None)]) == []
    problems = check(wire, [seg(1.0, "S", 100, tsval=None)])
    assert len(problems) == 1 and "at 2.025000" in problems[0]


def test_many_problems_are_capped_and_counted():
    problems = check([seg(1.0 + i, "A", 100 + i) for i in range(8)], [])
    assert len(problems) == 6 and problems[-1] == "… and 3 more such segment(s)"


def test_set_up_mirrors_every_interface_to_the_hosts_device():
    commands = setup_commands("client", ["client-eth0", "client-eth1"], "dummy", "matchall")
    assert commands[0] == ["ip", "link", "add", "client-tx", "type", "dummy"]
    assert ["ip", "link", "set", "client-tx", "up", "arp", "off"] in commands
    for intf in ("client-eth0", "client-eth1"):
        assert ["tc", "qdisc", "add", "dev", intf, "clsact"] in commands
        assert ["tc", "filter", "add", "dev", intf, "egress", "matchall", "action", "mirred", "egress", "mirror",
                "dev", "client-tx"] in commands
    # the filter comes after the device it names, and after its interface's clsact
    assert commands.index(["tc", "qdisc", "add", "dev", "client-eth0", "clsact"]) < len(commands) - 3


def test_set_up_without_dummy_or_matchall_uses_a_veth_pair_and_u32():
    commands = setup_commands("server", ["server-eth0"], "veth", "u32")
    assert commands[0] == ["ip", "link", "add", "server-tx", "type", "veth", "peer", "name", "server-txp"]
    assert ["ip", "link", "set", "server-txp", "up", "arp", "off"] in commands
    assert commands[-1][-8:] == ["0", "0", "action", "mirred", "egress", "mirror", "dev", "server-tx"]
    assert "u32" in commands[-1] and "all" in commands[-1]


# `tc -j -batch` of `filter show dev X egress` for two interfaces mirrored by u32 (recorded on this
# host's 6.18 in a namespace: one JSON array per interface, in the order shown)
U32_SHOWN = """[{"protocol":"all","pref":49152,"kind":"u32","chain":0},{"protocol":"all","pref":49152,"kind":"u32","chain":0,"options":{"fh":"800:","ht_divisor":1}},{"protocol":"all","pref":49152,"kind":"u32","chain":0,"options":{"fh":"800::800","order":2048,"key_ht":"800","bkt":"0","not_in_hw":true,"match":{"value":"0","mask":"0","offmask":"","off":0},"actions":[{"order":1,"kind":"mirred","mirred_action":"mirror","direction":"egress","to_dev":"x-tx","control_action":{"type":"pipe"},"index":1,"ref":1,"bind":1}]}}]
[]
"""


def test_the_whole_mirror_is_one_process_with_every_line_in_its_command():
    args = mirror_command("client", ["client-eth0", "client-eth1"], "dummy", "matchall")
    assert args[:2] == ["sh", "-c"] and args[3] == "kernel-sends"
    assert args[2].endswith('pick ip "$@" | ip -batch - && pick tc "$@" | tc -j -batch -')
    assert args[4:] == [f"{c[0]}: {shlex.join(c[1:])}" for c in setup_commands("client", ["client-eth0", "client-eth1"],
                                                                              "dummy", "matchall")] + [
        "tc: filter show dev client-eth0 egress", "tc: filter show dev client-eth1 egress"]


@pytest.mark.skipif(shutil.which("sh") is None, reason="needs a POSIX shell")
def test_the_shell_feeds_each_program_its_own_lines(tmp_path):
    """The command's shell, run with `ip` and `tc` stand-ins that print what they are fed."""
    for program in ("ip", "tc"):
        (tmp_path / program).write_text(f"#!/bin/sh\nsed 's/^/{program} /'\n")
        (tmp_path / program).chmod(0o755)
    args = mirror_command("server", ["server-eth0"], "dummy", "matchall")
    done = subprocess.run(args, capture_output=True, text=True, env={"PATH": f"{tmp_path}:/usr/bin:/bin"})
    assert done.returncode == 0 and done.stdout.splitlines() == [
        "ip link add server-tx type dummy", "ip link set server-tx up arp off", "tc qdisc add dev server-eth0 clsact",
        "tc filter add dev server-eth0 egress matchall action mirred egress mirror dev server-tx",
        "tc filter show dev server-eth0 egress"]


def test_the_filters_read_back_name_an_interface_without_its_mirror():
    assert mirror_problems("x", ["xa"], U32_SHOWN.split("\n")[0]) == []
    problems = mirror_problems("x", ["xa", "xb"], U32_SHOWN)
    assert problems == ["no mirred filter to x-tx on xb's egress (tc shows: [])"]
    assert mirror_problems("y", ["xa"], U32_SHOWN.split("\n")[0])[0].startswith("no mirred filter to y-tx on xa's egress")
    assert mirror_problems("x", ["xa", "xb"], "") == ["tc showed 0 filter lists for 2 interfaces: nothing"]


def test_names_fit_the_kernel_and_the_analysis_finds_the_file(tmp_path):
    assert len(tx_device("a" * 9) + "p") <= 15
    assert kernel_pcap_path(tmp_path, "server") == tmp_path / "pcap" / "server.kernel.pcap"


def _write_pcap(path, segments: list[Segment]) -> None:
    """A pcap of Ethernet/IPv4/TCP frames for `segments` (as tcpdump would write them)."""
    import socket

    import dpkt
    bits = {"S": dpkt.tcp.TH_SYN, "F": dpkt.tcp.TH_FIN, "R": dpkt.tcp.TH_RST, "P": dpkt.tcp.TH_PUSH, "A": dpkt.tcp.TH_ACK}
    with open(path, "wb") as f:
        writer = dpkt.pcap.Writer(f)
        for s in segments:
            tcp = dpkt.tcp.TCP(sport=s.sport, dport=s.dport, seq=s.seq, ack=s.ack, data=b"x" * s.length,
                               flags=sum(bits[c] for c in s.flags))
            ip = dpkt.ip.IP(src=socket.inet_aton(s.src), dst=socket.inet_aton(s.dst), p=dpkt.ip.IP_PROTO_TCP, data=tcp)
            writer.writepkt(bytes(dpkt.ethernet.Ethernet(data=ip)), ts=s.t)


def test_the_runner_checks_each_hosts_kernel_pcap_against_its_interfaces(tmp_path):
    """The files the runner reads (pcap/<intf>.pcap, pcap/<host>.kernel.pcap) and what it says."""
    from types import SimpleNamespace

    from harness.runner import Recording, _kernel_send_problems
    (tmp_path / "pcap").mkdir()
    _write_pcap(tmp_path / "pcap" / "client-eth0.pcap", [seg(1.025, "S", 100, tsval=None), seg(2.025, "F", 101, tsval=None)])
    _write_pcap(tmp_path / "pcap" / "client.kernel.pcap", [seg(1.0, "S", 100, tsval=None)])
    _write_pcap(tmp_path / "pcap" / "server-eth0.pcap", [seg(1.05, "SA", 500, src=SERVER, tsval=None)])
    _write_pcap(tmp_path / "pcap" / "server.kernel.pcap", [seg(1.05, "SA", 500, src=SERVER, tsval=None)])
    plan = SimpleNamespace(work_dir=tmp_path, addresses={"client": CLIENT, "server": SERVER},
                           experiment=SimpleNamespace(topology=SimpleNamespace(hosts=("client", "server"))))
    rec = Recording(egress={"client-eth0": ("client", Impairment(delay_s=0.025)), "s1-eth1": ("s1", Impairment()),
                                  "server-eth0": ("server", Impairment())})
    problems = _kernel_send_problems(plan, rec)
    assert len(problems) == 1 and problems[0].startswith("client's kernel capture: F ") and "not in it" in problems[0]


def test_a_late_netem_is_the_links_slop_not_the_captures():
    """On the host clock netem's timer fires 1-30 ms late: the kernel capture is still right."""
    assert check([seg(1.040, "S", 100)], [seg(1.0, "S", 100)]) == []
    late_capture = check([seg(1.010, "S", 100)], [seg(1.0, "S", 100)])
    assert len(late_capture) == 1 and "stamped it late" in late_capture[0]


@pytest.mark.parametrize("shown", ["Warning: old tc\n[]", "filter protocol all pref 49152 matchall chain 0"])
def test_filter_shows_that_are_not_json_are_a_problem_said_not_a_traceback(shown):
    problems = mirror_problems("x", ["xa"], shown)
    assert len(problems) == 1 and problems[0].startswith("tc's output is not the JSON filter lists asked for")
    assert shown.splitlines()[0] in problems[0]


def test_install_mirror_ends_the_run_in_one_paragraph_when_tc_prints_no_json(monkeypatch):
    from harness.errors import RunFailed
    from harness.record import kernel_sends
    monkeypatch.setattr(kernel_sends, "send_capture_kinds", lambda: ("dummy", "matchall"))
    monkeypatch.setattr(kernel_sends, "node_pexec", lambda node, args: ("Warning: something\n[]\n", "", 0))
    with pytest.raises(RunFailed) as failed:
        kernel_sends.install_mirror(object(), "x", ["xa"])
    assert str(failed.value).startswith("the kernel send capture of x: tc's output is not the JSON filter lists")
    assert "'Warning: something | []'" in str(failed.value) and "\n" not in str(failed.value)
