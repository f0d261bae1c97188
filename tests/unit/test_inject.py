"""`network: inject`: the step as written (and refused), the figures followed from a capture, the
frames built, and the check of a recorded run (tests/fixtures/inject_vm: issue 14's inject
fixtures run in the 6.1 VM, with the capture of s1-eth1, the switch port facing the client)."""
import json
from dataclasses import replace
from pathlib import Path

import dpkt
import pytest

from harness.analyse.figures import ConnRef, EventWatch, FigureTracker, Unseen, conn_refs, injected_fields
from harness.analyse.injected import check_injection, read_icmp, read_log
from harness.analyse.segments import Segment, frame_segment, read_segments
from harness.errors import UserError
from harness.lab.injector import build_frame, live_segment, tcp_options
from harness.load import load_experiment
from harness.model import ConnTerm, Event, InjectSpec

REPO = Path(__file__).resolve().parents[2]
RECORDED = REPO / "tests" / "fixtures" / "inject_vm"
RUN = RECORDED / "rst"
PORT = RUN / "pcap" / "s1-eth1.pcap"
PORTS = {"rst": "s1-eth1", "after": "s1-eth1", "icmp": "s1-eth1", "ts": "s1-eth2"}     # the port facing to:
TOPOLOGY = "name: t\nhosts: [client, server]\nswitches: [s1]\nlinks:\n  - {a: client, b: s1, delay: 25ms}\n  - {a: server, b: s1, delay: 25ms}\n"
BASE = ("  - {at: 0s, on: server, listen: 5001}\n"
        "  - {at: 0.2s, on: client, connect: server:5001, as: a}\n"
        "  - {on: server, accept: 5001, as: s1}\n")


def load(tmp_path, inject: str, more: str = ""):
    (tmp_path / "t.yaml").write_text(TOPOLOGY)
    path = tmp_path / "e.yaml"
    path.write_text(f"name: e\ntopology: t.yaml\nduration: 5s\nsteps:\n{BASE}{more}  - {inject}\n"
                    "expect:\n  client: {states: [SYN-SENT, ESTAB]}\n")
    return load_experiment(path)


def injected(tmp_path, inject: str, more: str = "") -> InjectSpec:
    (step,) = load(tmp_path, inject, more).network
    assert step.action == "inject"
    return step.inject


# -- load ------------------------------------------------------------------------------------------

def test_an_inject_step_as_written(tmp_path):
    spec = injected(tmp_path, '{at: 1s, network: inject, from: server, to: client, socket: a, flags: A, '
                              'seq: "a.rcv_nxt", ack: "a.snd_nxt - 1", window: 0, ttl: 3}')
    assert spec.seq == ConnTerm("a", "rcv_nxt", 0, "a.rcv_nxt")
    assert spec.ack == ConnTerm("a", "snd_nxt", -1, "a.snd_nxt - 1")
    assert (spec.flags, spec.window, spec.ttl, spec.after, spec.length) == ("A", 0, 3, None, 0)


def test_the_one_connection_between_the_hosts_is_the_default(tmp_path):
    assert injected(tmp_path, "{at: 1s, network: inject, from: server, to: client, flags: R}").socket == "a"


def test_after_an_event_with_a_wait(tmp_path):
    spec = injected(tmp_path, '{after: "client receives FA#2", wait: 10ms, network: inject, from: server, '
                              'to: client, flags: A}')
    assert spec.after == Event("client", "receives", "FA", 2, "client receives FA#2") and spec.wait_s == 0.01


def test_payload_options_and_icmp(tmp_path):
    spec = injected(tmp_path, '{at: 1s, network: inject, from: client, to: server, socket: s1, flags: PA, '
                              'payload: "hello", options: {ts: true, mss: 1000, sackok: false}}')
    assert (spec.payload, spec.length, spec.options) == ("hello", 5, (("ts", None), ("mss", 1000)))
    spec = injected(tmp_path, "{at: 1s, network: inject, from: server, to: client, icmp: frag-needed, mtu: 1200}")
    assert (spec.icmp, spec.mtu, spec.socket) == ("frag-needed", 1200, "a")


def test_a_segment_on_no_connection_with_its_own_ports(tmp_path):
    spec = injected(tmp_path, "{at: 1s, network: inject, from: client, to: server, sport: 40000, dport: 5001, "
                              "flags: S, seq: 1000}")
    assert (spec.socket, spec.sport, spec.dport, spec.seq.offset) == (None, 40000, 5001, 1000)


@pytest.mark.parametrize("inject, words", [
    ("{network: inject, from: server, to: client, flags: R}", "needs at:"),
    ('{at: 1s, after: "client receives S", network: inject, from: server, to: client, flags: R}', "one of them"),
    ('{after: "client sends S", network: inject, from: server, to: client, flags: R}', "not an event an injection"),
    ("{at: 1s, wait: 1s, network: inject, from: server, to: client, flags: R}", "wait: goes with after:"),
    ("{at: 1s, network: inject, from: server, to: client}", "TCP segment (flags:) or an ICMP error"),
    ("{at: 1s, network: inject, from: server, to: client, flags: RR}", "not TCP flag letters"),
    ("{at: 1s, network: inject, from: server, to: client, flags: R, seq: a.snd_max}", "not a figure"),
    ("{at: 1s, network: inject, from: server, to: client, flags: R, seq: 4294967296}", "not a 32-bit"),
    ("{at: 1s, network: inject, from: server, to: client, flags: R, ack: 5}", "only with the A flag"),
    ("{at: 1s, network: inject, from: server, to: client, flags: PA, len: 5, payload: x}", "not both"),
    ("{at: 1s, network: inject, from: server, to: client, flags: PA, len: 2000}", "1420"),
    ("{at: 1s, network: inject, from: server, to: client, flags: S, options: {sack: 1}}", "cannot carry option"),
    ("{at: 1s, network: inject, from: server, to: client, flags: S, options: {wscale: 15}}", "0 to 14"),
    ("{at: 1s, network: inject, from: server, to: client, flags: S, options: {ts: x}}", "a TSval"),
    ("{at: 1s, network: inject, from: server, to: client, flags: S, options: {ts: 4294967296}}", "a TSval"),
    ("{at: 1s, network: inject, from: server, to: client, flags: S, options: {sackok: 1}}", "true or false"),
    ("{at: 1s, network: inject, from: server, to: client, icmp: frag-needed}", "frag-needed needs it"),
    ("{at: 1s, network: inject, from: server, to: client, icmp: host-unreachable, mtu: 1200}", "only with icmp: frag"),
    ("{at: 1s, network: inject, from: server, to: client, icmp: host-unreachable, flags: R}", "belongs to a TCP"),
    ("{at: 1s, network: inject, from: server, to: client, icmp: redirect}", "not an ICMP error"),
    ("{at: 1s, network: inject, from: server, to: client, socket: b, flags: R}", "names no socket"),
    ("{at: 1s, network: inject, from: server, to: client, flags: R, seq: b.snd_nxt}", "names no socket"),
    ("{at: 1s, network: inject, from: server, to: client, ttl: 0, flags: R}", "1 to 255"),
    ("{at: 1s, network: inject, from: server, to: client, flags: R, match: {flags: S}}", "unknown key 'match'"),
])
def test_refusals_name_the_line_and_the_fix(tmp_path, inject, words):
    with pytest.raises(UserError) as err:
        load(tmp_path, inject)
    assert words in str(err.value) and err.value.line == 8 and err.value.fix


def test_several_connections_need_socket(tmp_path):
    more = "  - {at: 0.3s, on: client, connect: server:5001, as: b}\n"
    with pytest.raises(UserError) as err:
        load(tmp_path, "{at: 1s, network: inject, from: server, to: client, flags: R}", more)
    assert "2 connection(s) (a, b)" in str(err.value) and "socket: a" in err.value.fix


def test_conn_refs_find_sockets_by_their_syn(tmp_path):
    experiment = load(tmp_path, '{at: 1s, network: inject, from: server, to: client, socket: "server:5001#1", flags: R}')
    refs = conn_refs(experiment, {"client": "10.0.0.1", "server": "10.0.0.2"})
    assert refs["a"] == ConnRef("a", "10.0.0.1", "10.0.0.2", 5001, 1, "client")
    assert replace(refs["s1"], name="x") == replace(refs["server:5001#1"], name="x") == \
        ConnRef("x", None, "10.0.0.2", 5001, 1, "server")


# -- figures, from the recorded capture -------------------------------------------------------------

def tracked(until: float | None = None) -> tuple[FigureTracker, list[Segment]]:
    tracker = FigureTracker()
    segs = [s for s in read_segments(PORT) if until is None or s.t < until]
    for seg in segs:
        tracker.feed(seg)
    return tracker, segs


def test_figures_follow_the_connection_as_the_port_saw_it():
    record = read_log(RUN / "network" / "inject.jsonl")[0]
    tracker, segs = tracked(record["sent"])     # what the injector had seen when it sent the RST
    (conn,) = tracker.connections
    syn, synack = segs[0], segs[1]
    assert (conn.client.isn, conn.server.isn) == (syn.seq, synack.seq)
    data = next(s for s in segs if s.length)
    assert conn.server.snd_nxt == (data.seq + data.length) % 2**32       # the server sent 100 bytes
    assert conn.figure(conn.client, "rcv_nxt") == conn.server.snd_nxt
    assert conn.client.snd_una == (syn.seq + 1) % 2**32 and conn.server.snd_una == conn.server.snd_nxt
    assert conn.figure(conn.client, "peer_isn") == synack.seq
    assert conn.server.window == data.window and conn.server.tsval == data.tsval
    # the RST the injector sent: seq = the server side's snd_nxt (= the client's rcv_nxt)
    assert record["seq"] == conn.server.snd_nxt and record["sport"] == 5001 and record["dport"] == syn.sport


def test_a_new_syn_on_the_same_ports_is_a_new_connection_but_a_retransmission_is_not():
    tracker = FigureTracker()
    syn = Segment(0.0, "10.0.0.1", 40000, "10.0.0.2", 5001, "S", 100, 0, 0)
    for seg in (syn, replace(syn, t=1.0), replace(syn, t=2.0, seq=5000)):
        tracker.feed(seg)
    assert [c.client.isn for c in tracker.connections] == [100, 5000]
    second = ConnRef("c", "10.0.0.1", "10.0.0.2", 5001, 2, "client")
    assert tracker.find(second) is tracker.connections[1]
    assert tracker.find(replace(second, nth=3)) is None


def test_sequence_numbers_wrap():
    tracker = FigureTracker()
    tracker.feed(Segment(0.0, "10.0.0.1", 40000, "10.0.0.2", 5001, "S", 2**32 - 1, 0, 0))
    tracker.feed(Segment(0.1, "10.0.0.1", 40000, "10.0.0.2", 5001, "PA", 0, 1, 10))
    tracker.feed(Segment(0.2, "10.0.0.1", 40000, "10.0.0.2", 5001, "A", 2**32 - 1, 1, 0))   # an old one
    assert tracker.connections[0].client.snd_nxt == 10


def refs() -> dict[str, ConnRef]:
    return {"a": ConnRef("a", "10.0.0.1", "10.0.0.2", 5001, 1, "client")}


def test_fields_default_to_the_sender_sides_figures():
    tracker, _ = tracked()
    conn = tracker.connections[0]
    spec = InjectSpec(socket="a", flags="A", ack=ConnTerm("a", "snd_nxt", -1, "a.snd_nxt - 1"), options=(("ts", None),))
    fields = injected_fields(spec, "10.0.0.2", "10.0.0.1", refs(), tracker)
    assert (fields["seq"], fields["ack"]) == (conn.server.snd_nxt, (conn.client.snd_nxt - 1) % 2**32)
    assert fields["options"] == [["ts", [conn.server.tsval, conn.client.tsval]]]
    assert fields["window"] == conn.server.window and (fields["sport"], fields["dport"]) == (5001, conn.client.port)
    assert injected_fields(replace(spec, ack=None, flags="R"), "10.0.0.2", "10.0.0.1", refs(), tracker)["ack"] == 0
    for written, tsval in ((200000, 200000), ("+200000", conn.server.tsval + 200000), ("-1", conn.server.tsval - 1)):
        moved = injected_fields(replace(spec, options=(("ts", written),)), "10.0.0.2", "10.0.0.1", refs(), tracker)
        assert moved["options"] == [["ts", [tsval, conn.client.tsval]]]


def test_a_tsval_as_written(tmp_path):
    spec = injected(tmp_path, '{at: 1s, network: inject, from: server, to: client, flags: FA, options: {ts: "+200000"}}')
    assert spec.options == (("ts", "+200000"),)
    spec = injected(tmp_path, "{at: 1s, network: inject, from: server, to: client, flags: FA, options: {ts: 200000}}")
    assert spec.options == (("ts", 200000),)


def test_a_figure_not_seen_yet_is_not_sent():
    with pytest.raises(Unseen, match="no segment of a's connection"):
        injected_fields(InjectSpec(socket="a", flags="R"), "10.0.0.2", "10.0.0.1", refs(), FigureTracker())
    tracker = FigureTracker()
    tracker.feed(Segment(0.0, "10.0.0.1", 40000, "10.0.0.2", 5001, "S", 100, 0, 0))
    with pytest.raises(Unseen, match="snd_nxt was not seen"):       # the server never answered
        injected_fields(InjectSpec(socket="a", flags="R"), "10.0.0.2", "10.0.0.1", refs(), tracker)
    unreachable = InjectSpec(socket="a", icmp="host-unreachable")
    with pytest.raises(Unseen, match="to quote"):       # the SYN was fed without its bytes
        injected_fields(unreachable, "10.0.0.2", "10.0.0.1", refs(), tracker)
    tracker.feed(Segment(1.0, "10.0.0.1", 40000, "10.0.0.2", 5001, "S", 100, 0, 0), b"E" + bytes(27))
    icmp = injected_fields(unreachable, "10.0.0.2", "10.0.0.1", refs(), tracker)
    assert (icmp["icmp"], icmp["quoted"], icmp["sport"], icmp["dport"]) == ("host-unreachable", "45" + "00" * 27, 5001, 40000)


def test_an_event_is_the_nth_segment_leaving_the_port_to_its_host():
    tracker, segs = tracked()
    watch = EventWatch(Event("client", "receives", "A", 2), "10.0.0.1")
    fired = [s for s in segs if watch.seen(s, tracker)]
    to_client = [s for s in segs if s.dst == "10.0.0.1" and "A" in s.flags]
    assert fired == [to_client[1]]


# -- frames ------------------------------------------------------------------------------------------

def test_a_built_segment_parses_back_with_valid_checksums():
    fields = {"src": "10.0.0.2", "sport": 5001, "dst": "10.0.0.1", "dport": 40000, "ttl": 7, "flags": "FPA",
              "seq": 2**32 - 1, "ack": 9, "window": 512, "len": 5, "options": [["mss", 1000], ["ts", [11, 22]]]}
    frame = build_frame(fields, "00:00:00:00:00:02", "00:00:00:00:00:01", b"hello")
    seg = frame_segment(0.0, frame)
    assert (seg.flags, seg.seq, seg.ack, seg.window, seg.length, seg.ttl) == ("FPA", 2**32 - 1, 9, 512, 5, 7)
    assert (seg.tsval, seg.tsecr, seg.option_map["mss"]) == (11, 22, 1000)
    eth = dpkt.ethernet.Ethernet(frame)
    assert eth.src == bytes.fromhex("000000000002") and eth.dst == bytes.fromhex("000000000001")
    ip = eth.data
    assert dpkt.in_cksum(bytes(ip)[:20]) == 0
    pseudo = ip.src + ip.dst + bytes([0, 6]) + len(bytes(ip.data)).to_bytes(2, "big")
    assert dpkt.in_cksum(pseudo + bytes(ip.data)) == 0 and bytes(ip.data)[-5:] == b"hello"


def test_options_are_padded_to_words():
    assert tcp_options([["sackok", None]]) == b"\x04\x02\x01\x01"
    assert len(tcp_options([["wscale", 7], ["mss", 1460], ["ts", [1, 2]]])) == 20


def test_an_icmp_error_quotes_the_segment():
    quoted = bytes.fromhex("450000340000400040060000") + bytes(8) + bytes(8)
    fields = {"src": "10.0.0.2", "sport": 5001, "dst": "10.0.0.1", "dport": 40000, "ttl": 64, "icmp": "frag-needed",
              "mtu": 1200, "quoted": quoted.hex()}
    frame = build_frame(fields, "00:00:00:00:00:02", "00:00:00:00:00:01")
    icmp = dpkt.ethernet.Ethernet(frame).data.data
    assert (icmp.type, icmp.code, icmp.data.mtu, frame[14 + 28:]) == (3, 4, 1200, quoted)    # quoted as it was
    assert dpkt.in_cksum(frame[14 + 20:]) == 0 and dpkt.in_cksum(frame[14:14 + 20]) == 0


# -- the check, on the recorded run -------------------------------------------------------------------

def recorded(name: str = "rst"):
    run = RECORDED / name
    experiment = load_experiment(run / "experiment.yaml")
    step = next(n for n in experiment.network if n.action == "inject")
    port = run / "pcap" / f"{PORTS[name]}.pcap"
    return step, read_log(run / "network" / "inject.jsonl"), read_segments(port), read_icmp(port)


@pytest.mark.parametrize("name", sorted(PORTS))
def test_the_recorded_injection_left_on_time_with_its_fields(name):
    step, log, leaving, icmp = recorded(name)
    check = check_injection(step, log, leaving, icmp, 0.025)
    assert check.problems == [] and (check.counted, check.picked) == (1, 1)
    assert check.segments[0].held_s == pytest.approx(0.0, abs=0.001)
    assert check.to_json()["injected"] == log


def test_the_recorded_icmp_error_quotes_the_syn_as_the_port_saw_it():
    step, log, _, icmp = recorded("icmp")
    tracker = FigureTracker()
    with open(RECORDED / "icmp" / "pcap" / "s1-eth1.pcap", "rb") as f:
        for ts, buf in dpkt.pcap.Reader(f):
            if (seg := frame_segment(float(ts), buf)) is not None and seg.t < log[0]["sent"]:
                tracker.feed(seg, buf[14:14 + 28])
    fields = injected_fields(step.inject, "10.0.0.2", "10.0.0.1", refs(), tracker)
    assert fields["quoted"] == log[0]["quoted"] == icmp[0].quoted
    assert (icmp[0].kind, icmp[0].src, icmp[0].dst) == ("host-unreachable", "10.0.0.2", "10.0.0.1")


def test_the_recorded_timestamps_are_the_senders_last_and_the_receivers_last():
    step, log, leaving, _ = recorded("ts")
    before = [s for s in leaving if s.t < log[0]["sent"]]
    client = [s for s in before if s.src == "10.0.0.1"]
    server = [s for s in before if s.src == "10.0.0.2"]
    assert log[0]["options"] == [["ts", [client[-1].tsval, server[-1].tsval]]]
    injected_seg = next(s for s in leaving if s.length == 5)
    assert (injected_seg.tsval, injected_seg.tsecr, injected_seg.flags) == (client[-1].tsval, server[-1].tsval, "PA")


@pytest.mark.parametrize("change, words", [
    ({"seq": 1}, "shows it 0 time(s)"),
    ({"window": 1}, "shows it 0 time(s)"),
    ({"due": -0.01}, "from its moment"),
    ({"sent": None, "error": "no segment of a's connection was seen yet"}, "not sent: no segment"),
])
def test_an_injection_that_did_otherwise_is_caught(change, words):
    step, log, leaving, icmp = recorded()
    rec = dict(log[0])
    for key, value in change.items():
        rec[key] = rec[key] + value if key == "due" else value
    assert any(words in p for p in check_injection(step, [rec], leaving, icmp, 0.025).problems)


def test_the_link_delay_and_a_missing_log_are_checked(tmp_path):
    step, log, leaving, icmp = recorded()
    assert "expected the link's 50 ms" in check_injection(step, log, leaving, icmp, 0.05).problems[0]
    missing = read_log(tmp_path / "inject.jsonl")
    assert "left no log" in check_injection(step, missing, leaving, icmp, 0.025).problems[0]
    assert "0 time(s), not once" in check_injection(step, [], leaving, icmp, 0.025).problems[0]
    (tmp_path / "cut.jsonl").write_text(json.dumps(log[0])[:-5])
    assert "garbled" in read_log(tmp_path / "cut.jsonl")


def test_the_recorded_after_event_is_the_data_leaving_the_port_to_the_client():
    step, log, leaving, _ = recorded("after")
    data = next(s for s in leaving if s.dst == "10.0.0.1" and s.length == 100)
    assert step.inject.after == Event("client", "receives", "PA", 1, "client receives PA")
    assert log[0]["due"] - data.t == pytest.approx(0.010, abs=1e-4)      # the same frame, stamped once for every tap


@pytest.mark.parametrize("name", sorted(PORTS))
def test_live_frames_read_as_the_capture_reads_them(name):
    """The injector's struct reader against dpkt's, on every frame of the recorded captures."""
    with open(RECORDED / name / "pcap" / f"{PORTS[name]}.pcap", "rb") as f:
        frames = list(dpkt.pcap.Reader(f))
    for ts, buf in frames:
        full = frame_segment(float(ts), buf)
        live = live_segment(float(ts), buf)
        if full is None:
            assert live is None
            continue
        assert replace(live, options=()) == replace(full, options=())
        assert ("ts" in live.option_map) == ("ts" in full.option_map)


def test_a_short_or_other_frame_is_no_segment():
    frame = build_frame({"src": "10.0.0.2", "sport": 1, "dst": "10.0.0.1", "dport": 2, "ttl": 64, "icmp": "net-unreachable",
                         "mtu": None, "quoted": "00" * 28}, "00:00:00:00:00:02", "00:00:00:00:00:01")
    assert live_segment(0.0, frame) is None and live_segment(0.0, b"\0" * 20) is None
