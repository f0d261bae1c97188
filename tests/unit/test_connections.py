"""Observation and judging per connection: incarnations of a four-tuple, named sockets' views,
states by socket cookie, per-socket verdicts, socket-subject events, kernel vs wire send time, lanes.

The synthetic run is laid out as a real one would be (times on one clock, pcaps written with dpkt,
samples in the sampler's row format): client 10.0.0.1:40000 (bound) connects twice to server:5001.
Socket a is incarnation 1 (closed, left in TIME-WAIT); b reuses the four-tuple with a new ISN while
a's TIME-WAIT row is still there; the server's listener accepts server:5001#1, and an accept step
names the second connection s2. The client's link delays its sends by 20 ms (kernel capture 20 ms
before its interface's); the path's other one-way part is 50 ms. A held copy of a's first SYN (its
ISN) reaches the server at 3.5 s, during b's incarnation."""
import json
from dataclasses import replace
from pathlib import Path

import pytest
from test_kernel_check import _write_pcap      # one pcap writer for the tests (tests/unit is on sys.path)

from harness.analyse.connection import observe
from harness.analyse.events import Moment, find_moment
from harness.analyse.incarnations import declared_sockets, split
from harness.analyse.segments import Segment
from harness.judge import judge_all
from harness.judge.states import judge_states
from harness.model import (Event, Expectations, PacketPattern, SeqTerm, StateExpectation, StepRecord)
from harness.report.timeline import lanes, timeline

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CLIENT, SERVER = ("10.0.0.1", 40000), ("10.0.0.2", 5001)
IPS = {"client": "10.0.0.1", "server": "10.0.0.2"}
INTF = {"client": "client-eth0", "server": "server-eth0"}
CLIENT_LINK_S, PATH_S = 0.020, 0.050
A_ISN, B_ISN, S1_ISN, S2_ISN = 1000, 900000, 5000, 7000


def seg(t: float, frm: tuple, to: tuple, flags: str, seq: int, ack: int = 0, length: int = 0) -> Segment:
    return Segment(round(t, 6), *frm, *to, flags, seq, ack, length)


def sends():
    """(kernel time, sender, flags, seq, ack, len) of every segment of the run, in order."""
    c, s = "client", "server"
    return [(1.0001, c, "S", A_ISN, 0, 0), (1.0702, s, "SA", S1_ISN, A_ISN + 1, 0),
            (1.1203, c, "A", A_ISN + 1, S1_ISN + 1, 0), (1.2000, c, "PA", A_ISN + 1, S1_ISN + 1, 100),
            (1.2701, s, "A", S1_ISN + 1, A_ISN + 101, 0), (2.0000, c, "FA", A_ISN + 101, S1_ISN + 1, 0),
            (2.0701, s, "A", S1_ISN + 1, A_ISN + 102, 0), (2.2000, s, "FA", S1_ISN + 1, A_ISN + 102, 0),
            (2.2501, c, "A", A_ISN + 102, S1_ISN + 2, 0),
            (3.0001, c, "S", B_ISN, 0, 0), (3.0702, s, "SA", S2_ISN, B_ISN + 1, 0),
            (3.1203, c, "A", B_ISN + 1, S2_ISN + 1, 0), (3.2000, c, "PA", B_ISN + 1, S2_ISN + 1, 50),
            (3.2701, s, "A", S2_ISN + 1, B_ISN + 51, 0)]


def captures() -> dict[str, list[Segment]]:
    """Each capture of the run: both interfaces, and each host's kernel-time sends."""
    out = {"client-eth0": [], "server-eth0": [], "client.kernel": [], "server.kernel": []}
    for t, sender, flags, seq, ack, length in sends():
        if sender == "client":
            out["client.kernel"].append(seg(t, CLIENT, SERVER, flags, seq, ack, length))
            out["client-eth0"].append(seg(t + CLIENT_LINK_S, CLIENT, SERVER, flags, seq, ack, length))
            out["server-eth0"].append(seg(t + CLIENT_LINK_S + PATH_S, CLIENT, SERVER, flags, seq, ack, length))
        else:
            for name, at in (("server.kernel", t), ("server-eth0", t), ("client-eth0", t + PATH_S)):
                out[name].append(seg(at, SERVER, CLIENT, flags, seq, ack, length))
    # a's first SYN, held in the network, arrives during b's incarnation: the server's ESTAB socket answers it
    out["server-eth0"] += [seg(3.5, CLIENT, SERVER, "S", A_ISN), seg(3.5001, SERVER, CLIENT, "A", S2_ISN + 1, B_ISN + 51)]
    out["client-eth0"].append(seg(3.5501, SERVER, CLIENT, "A", S2_ISN + 1, B_ISN + 51))
    return {k: sorted(v, key=lambda s: s.t) for k, v in out.items()}


# (cookie, local, peer, [(state, from, until)]): each socket's life as its host's sampler sees it
CLIENT_SOCKETS = [(11, CLIENT, SERVER, [("SYN-SENT", 1.0, 1.12), ("ESTAB", 1.12, 2.0), ("FIN-WAIT-1", 2.0, 2.12),
                                        ("FIN-WAIT-2", 2.12, 2.25), ("TIME-WAIT", 2.25, 3.03)]),
                  (12, CLIENT, SERVER, [("SYN-SENT", 3.0, 3.12), ("ESTAB", 3.12, 9.0)])]
SERVER_SOCKETS = [(1, ("0.0.0.0", 5001), ("0.0.0.0", 0), [("LISTEN", 0.5, 9.0)]),
                  (21, SERVER, CLIENT, [("SYN-RECV", 1.07, 1.19)]),
                  (22, SERVER, CLIENT, [("ESTAB", 1.19, 2.07), ("CLOSE-WAIT", 2.07, 2.2), ("LAST-ACK", 2.2, 2.32)]),
                  (31, SERVER, CLIENT, [("SYN-RECV", 3.07, 3.19)]), (32, SERVER, CLIENT, [("ESTAB", 3.19, 9.0)])]


def samples(sockets: list, cookies: bool = True) -> list[dict]:
    """A sample every 50 ms (at x.xx5 s), each socket's row while it lives (TIME-WAIT's timer pending)."""
    out = []
    for i in range(80):
        t = round(0.905 + i * 0.05, 3)
        rows = []
        for cookie, local, peer, life in sockets:
            for state, since, until in life:
                if since <= t < until:
                    timer = [3, int((2.25 + 60 - t) * 1e3), 0] if state == "TIME-WAIT" else [0, 0, 0]
                    rows.append([state, *local, *peer, *timer] + ([cookie] if cookies else []))
        out.append({"t": t, "s": rows})
    return out


def step_logs() -> dict[str, list[StepRecord]]:
    client = [StepRecord("connect", 1.0, 1.1203, index=10, scheduled=1.0, local=CLIENT, peer=SERVER, result="ok",
                         socket="a", cookie=11),
              StepRecord("send", 1.2, 1.2001, index=11, nbytes=100, result="ok", socket="a"),
              StepRecord("close", 2.0, 2.0001, index=12, scheduled=2.0, result="ok", socket="a"),
              StepRecord("connect", 3.0, 3.1203, index=13, scheduled=3.0, local=CLIENT, peer=SERVER, result="ok",
                         socket="b", cookie=12),
              StepRecord("send", 3.2, 3.2001, index=14, nbytes=50, result="ok", socket="b")]
    server = [StepRecord("listen", 0.5, 0.501, index=5, scheduled=0.5, local=("0.0.0.0", 5001), result="ok",
                         socket="server:5001", cookie=1),
              StepRecord("accepted", 1.1904, 1.1904, local=SERVER, peer=CLIENT, result="ok", socket="server:5001#1", cookie=22),
              StepRecord("recv", 0.6, 1.2702, index=6, nbytes=100, result="ok", socket="server:5001#1"),
              StepRecord("close", 2.2, 2.2001, index=7, scheduled=2.2, result="ok", socket="server:5001#1"),
              StepRecord("accept", 2.5, 3.1905, index=8, scheduled=2.5, local=SERVER, peer=CLIENT, result="ok",
                         socket="s2", cookie=32, alias="server:5001#2"),
              StepRecord("accepted", 3.1904, 3.1904, local=SERVER, peer=CLIENT, result="ok", socket="server:5001#2", cookie=32),
              StepRecord("recv", 3.1906, 3.2702, index=9, nbytes=50, result="ok", socket="s2")]
    return {"client": client, "server": server}


def write_run(folder: Path, cookies: bool = True, kernel: bool = True) -> Path:
    (folder / "pcap").mkdir(parents=True)
    (folder / "samples").mkdir()
    for name, segments in captures().items():
        if kernel or not name.endswith(".kernel"):
            _write_pcap(folder / "pcap" / f"{name}.pcap", segments)
    for host, sockets in (("client", CLIENT_SOCKETS), ("server", SERVER_SOCKETS)):
        (folder / "samples" / f"{host}.jsonl").write_text(
            "".join(json.dumps(s) + "\n" for s in samples(sockets, cookies)))
    return folder


@pytest.fixture
def run(tmp_path):
    return observe(write_run(tmp_path / "run"), step_logs(), INTF, IPS)


def recorded_logs(fixture: str) -> dict[str, list[StepRecord]]:
    run = FIXTURES / fixture
    return {h: [StepRecord.from_json(json.loads(l)) for l in (run / "steps" / f"{h}.jsonl").read_text().splitlines()]
            for h in ("client", "server")}


def states(*written: str) -> tuple[StateExpectation, ...]:
    return tuple(StateExpectation.parse(s) for s in written)


def seen(spans) -> list[str]:
    return [s.state for s in spans]


# --- incarnations -----------------------------------------------------------------------------

def test_a_new_isn_splits_the_four_tuple_and_an_old_duplicate_syn_stays_in_its_own():
    server_side = captures()["server-eth0"]
    (runs,) = split(server_side).values()
    assert [r.number for r in runs] == [1, 2]
    first, second = runs
    assert first.isn == {CLIENT: A_ISN, SERVER: S1_ISN} and second.isn == {CLIENT: B_ISN, SERVER: S2_ISN}
    # the held SYN (a's ISN) came at 3.5 s, in b's lifetime, yet belongs to a's incarnation...
    assert [(s.flags, s.seq) for s in first.segments if s.t > 3] == [("S", A_ISN)]
    # ...while the server's answer to it is part of the incarnation it was sent in
    assert [(s.flags, s.t) for s in second.segments][-1] == ("A", 3.5001)
    assert len(first.segments) == 10 and len(second.segments) == 6


def test_a_retransmitted_syn_and_the_peers_syn_in_a_simultaneous_open_stay_in_one_incarnation():
    b_end = ("10.0.0.2", 6000)
    segments = [seg(1.0, CLIENT, b_end, "S", 10), seg(1.001, b_end, CLIENT, "S", 20), seg(2.0, CLIENT, b_end, "S", 10),
                seg(2.05, CLIENT, b_end, "SA", 10, 21), seg(2.05, b_end, CLIENT, "SA", 20, 11)]
    (runs,) = split(segments).values()
    assert len(runs) == 1 and runs[0].isn == {CLIENT: 10, b_end: 20}
    (again,) = split(segments + [seg(5.0, CLIENT, b_end, "S", 99), seg(5.05, b_end, CLIENT, "SA", 500, 100)]).values()
    assert [len(r.segments) for r in again] == [5, 2]


def test_a_new_syn_into_a_live_connection_that_gets_a_challenge_ack_stays_in_it():
    """RFC 5961 4.2: a SYN (any sequence) into ESTABLISHED is answered by an ACK; no new connection."""
    b_end = ("10.0.0.2", 6000)
    live = [seg(1.0, CLIENT, b_end, "S", 10), seg(1.05, b_end, CLIENT, "SA", 20, 11), seg(1.1, CLIENT, b_end, "A", 11, 21)]
    injected = [seg(2.0, CLIENT, b_end, "S", 5000), seg(2.0, b_end, CLIENT, "A", 21, 11)]
    (runs,) = split(live + injected).values()
    assert [len(r.segments) for r in runs] == [5]
    closed = live + [seg(1.5, CLIENT, b_end, "R", 11)]
    (after_reset,) = split(closed + injected).values()     # the same SYN after a RST: a new connection
    assert [len(r.segments) for r in after_reset] == [4, 2]
    ignored = live + [seg(1.5, CLIENT, b_end, "R", 500), seg(1.5, b_end, CLIENT, "A", 21, 11)]   # in-window, not at rcv_nxt
    (challenged,) = split(ignored + injected).values()     # a challenge ACK: the connection went on
    assert [len(r.segments) for r in challenged] == [7]


# --- views --------------------------------------------------------------------------------------

def test_every_socket_gets_a_view_and_an_accept_names_the_connection_it_took(run):
    assert set(run.sockets) == {"a", "b", "server:5001", "server:5001#1", "server:5001#2", "s2"}
    assert run.sockets["s2"] is run.sockets["server:5001#2"] and run.sockets["s2"].aliases == ("s2",)
    a, b, s1, s2 = (run.sockets[n] for n in ("a", "b", "server:5001#1", "s2"))
    assert (a.kind, a.incarnation, b.incarnation, s1.incarnation, s2.incarnation) == ("connect", 1, 2, 1, 2)
    assert [s.seq for s in b.segments if s.flags == "S"] == [B_ISN] and len(a.segments) == 9
    assert [e.action for e in a.steps] == ["connect", "send", "close"]
    assert [e.action for e in s2.steps] == ["accept", "recv"]
    assert run.sockets["server:5001"].kind == "listen" and seen(run.sockets["server:5001"].states) == ["LISTEN"]


def test_states_follow_the_cookie_through_time_wait_and_a_new_syn_sent_on_the_same_four_tuple(run):
    assert seen(run.sockets["a"].states) == ["SYN-SENT", "ESTAB", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT", "CLOSED"]
    assert seen(run.sockets["b"].states) == ["SYN-SENT", "ESTAB"]
    # the request socket's SYN-RECV (its own cookie) counts for the connection it became
    assert seen(run.sockets["server:5001#1"].states) == ["SYN-RECV", "ESTAB", "CLOSE-WAIT", "LAST-ACK", "CLOSED"]
    assert seen(run.sockets["s2"].states) == ["SYN-RECV", "ESTAB"]
    # by address alone the host-level view mixes the two incarnations (why the loader refuses it then)
    assert seen(run.states["client"]) != seen(run.sockets["a"].states)


def test_rows_without_cookies_are_told_apart_by_each_sockets_time_window(tmp_path):
    obs = observe(write_run(tmp_path / "old", cookies=False), step_logs(), INTF, IPS)
    assert seen(obs.sockets["a"].states) == ["SYN-SENT", "ESTAB", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT"]
    assert seen(obs.sockets["b"].states) == ["SYN-SENT", "ESTAB"]


def test_logs_without_socket_names_get_the_loaders_automatic_names():
    logs = {h: [replace(e, socket=None, cookie=None, alias=None) for e in entries if e.action != "accept"]
            for h, entries in step_logs().items()}
    views = declared_sockets(logs)
    assert set(views) == {"client#1", "client#2", "server:5001", "server:5001#1", "server:5001#2"}
    # a host with several connections: a call that names none belongs to none of them
    assert all(e.action == "connect" for e in views["client#1"].steps)


# --- judging ----------------------------------------------------------------------------------

def test_per_socket_expectations_pass_and_each_fails_when_the_socket_did_otherwise(run):
    b_handshake = (PacketPattern("b", "S", SeqTerm.parse("x")), PacketPattern("s2", "SA", ack=SeqTerm.parse("x+1")),
                   PacketPattern("client", "A", SeqTerm.parse("x+1")))
    expect = Expectations(states={"a": states("SYN-SENT", "ESTAB", "(FIN-WAIT-1)", "FIN-WAIT-2", "TIME-WAIT", "CLOSED"),
                                  "s2": states("SYN-RECV", "ESTAB")},
                          received={"s2": 50, "server": 150}, errors={}, socket_packets={"b": b_handshake},
                          lines={"a.states": 20, "b.packets": 21})
    verdicts = {v.name: v for v in judge_all(expect, run, 0.1)}
    assert all(v.passed for v in verdicts.values()), verdicts
    assert verdicts["a states"].line == 20 and verdicts["b packets"].line == 21
    assert f"b S seq={B_ISN}" in verdicts["b packets"].observed
    wrong = Expectations(states={"b": states("SYN-SENT", "ESTAB", "TIME-WAIT")}, received={"server:5001#1": 50},
                         socket_packets={"a": (PacketPattern("a", "S", SeqTerm.parse(str(B_ISN))),)})
    verdicts = {v.name: v for v in judge_all(wrong, run, 0.1)}
    assert not any(v.passed for v in verdicts.values()), verdicts
    assert verdicts["b states"].observed.startswith("SYN-SENT → ESTAB")
    assert verdicts["server:5001#1 received"].observed == "100 bytes"
    assert f"nearest: a S seq={A_ISN}" in verdicts["a packets"].observed


def test_top_level_packets_may_name_a_socket_as_sender(run):
    expect = Expectations(packets=(PacketPattern("a", "S", SeqTerm.parse("x")),
                                   PacketPattern("server:5001#1", "SA", ack=SeqTerm.parse("x+1")),
                                   PacketPattern("b", "S", SeqTerm.parse(str(B_ISN)))))
    (verdict,) = judge_all(expect, run, 0.1)
    assert verdict.passed, verdict.observed
    (verdict,) = judge_all(replace(expect, packets=expect.packets + (PacketPattern("b", "R"),)), run, 0.1)
    assert not verdict.passed and "b R: not seen" in verdict.observed


def test_a_socket_named_in_an_expectation_that_was_never_made_fails():
    obs = observe(FIXTURES / "handshake_vm", {"client": [], "server": []}, {})
    (verdict,) = judge_all(Expectations(socket_packets={"zz": (PacketPattern("zz", "S"),)}), obs, 0.1)
    assert not verdict.passed and "no socket named zz" in verdict.observed


# --- events -----------------------------------------------------------------------------------

def moment(obs, text: str) -> Moment:
    """The moment of `SUBJECT VERB WHAT[#N]`, which must have been observed."""
    subject, verb, what = text.split(" ")
    what, _, nth = what.partition("#")
    found = find_moment(Event(subject, verb, what, int(nth or 1)), obs)
    assert isinstance(found, Moment), found
    return found


def test_sends_is_kernel_time_and_transmits_is_the_wire_a_link_delay_later(run):
    sent, wired = moment(run, "b sends S"), moment(run, "b transmits S")
    assert sent.t == pytest.approx(3.0001) and wired.t - sent.t == pytest.approx(CLIENT_LINK_S, abs=1e-6)
    assert sent.source == "kernel-time capture at client"
    # the server answers at once: the SYN's arrival to its SYN+ACK sent is ~0, not the client's link delay
    assert moment(run, "s2 sends SA").t - moment(run, "s2 receives S").t == pytest.approx(0.0001, abs=1e-6)
    # host subjects: the first connection (a's SYN), at kernel time too
    assert moment(run, "client sends S").t == pytest.approx(1.0001)
    assert moment(run, "a sends F").t == pytest.approx(2.0)


def test_socket_subject_events_use_its_own_states_and_calls(run):
    enter = moment(run, "a enters TIME-WAIT")
    assert 2.25 < enter.t <= 2.3 and enter.uncertainty_s == pytest.approx(0.05)
    assert moment(run, "b enters SYN-SENT").t == pytest.approx(3.005)
    assert find_moment(Event("b", "enters", "TIME-WAIT"), run) == "b was never seen in TIME-WAIT"
    assert find_moment(Event("s2", "returns", "accept"), run).t == pytest.approx(3.1905)
    assert find_moment(Event("server:5001#2", "calls", "recv"), run).t == pytest.approx(3.1906)
    assert find_moment(Event("s2", "calls", "close"), run) == "s2 made 0 close call(s)"
    assert moment(run, "server:5001#1 receives F").t == pytest.approx(2.07)


def test_without_a_kernel_capture_sends_falls_back_to_the_interface_and_says_so(tmp_path):
    obs = observe(write_run(tmp_path / "old", kernel=False), step_logs(), INTF, IPS)
    assert obs.kernel_segments == {}
    sent = moment(obs, "b sends S")
    assert sent.t == pytest.approx(3.0201) and "no kernel-time capture in this run" in sent.source
    recorded = observe(FIXTURES / "teardown_vm", recorded_logs("teardown_vm"), INTF, IPS)
    fin = moment(recorded, "client sends F")
    assert fin.source == "capture at client's interface (no kernel-time capture in this run)"
    assert fin.t == moment(recorded, "client transmits F").t == moment(recorded, "client#1 sends F").t


# --- recorded runs ----------------------------------------------------------------------------

@pytest.mark.parametrize("fixture, client_states, server_states", [
    ("teardown_vm", ["SYN-SENT", "ESTAB", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT", "CLOSED"],
     ["SYN-RECV", "ESTAB", "CLOSE-WAIT", "LAST-ACK", "CLOSED"]),
    ("handshake_vm", ["SYN-SENT", "ESTAB"], ["SYN-RECV", "ESTAB"]),
])
def test_recorded_runs_get_views_under_the_automatic_names(fixture, client_states, server_states):
    logs = recorded_logs(fixture)
    obs = observe(FIXTURES / fixture, logs, INTF, IPS)
    client, server = obs.sockets["client#1"], obs.sockets["server:5001#1"]
    assert seen(client.states) == seen(obs.states["client"]) == client_states
    assert seen(server.states) == server_states and client.segments == obs.segments["client"]
    assert judge_states("client#1", states(*client_states), obs).passed
    failing = judge_states("server:5001#1", states("LISTEN", *server_states), obs)
    assert not failing.passed and failing.name == "server:5001#1 states"
    assert [e.action for e in server.steps] == [e.action for e in logs["server"] if e.action not in ("listen", "accepted")]


# --- timeline ---------------------------------------------------------------------------------

def test_several_connections_get_a_lane_each_with_seq_relative_to_their_own_isns(run):
    assert [lane.label for lane in lanes(run)] == ["a⇄server:5001#1", "b⇄s2"]
    story = timeline(run)
    assert "2 connections" in story[0] and "at its interface" in story[0]
    assert any(line.endswith("a⇄server:5001#1  client → server  S   seq=0") for line in story)
    assert any(line.endswith("b⇄s2  client → server  S   seq=0") for line in story)
    assert any(line.endswith("b⇄s2  server → client  SA  seq=0 ack=1") for line in story)
    assert any("a is TIME-WAIT (first sample)" in line for line in story)
    assert any("s2 is ESTAB (first sample)" in line for line in story)
    assert timeline(run) == story           # a pure function of the observation


def test_a_connection_whose_far_end_made_no_socket_is_named_by_its_host(run):
    refused = replace(run.sockets["b"], name="c", segments=[], isn={}, incarnation=0)
    obs = replace(run, sockets={**run.sockets, "c": refused})
    assert [lane.label for lane in lanes(obs)] == ["a⇄server:5001#1", "b⇄s2", "c⇄server"]


def test_one_connection_prints_as_it_always_has():
    story = timeline(observe(FIXTURES / "handshake_vm", recorded_logs("handshake_vm"), INTF, IPS))
    assert story[0].startswith("what happened (segments as client's interface saw them")
    assert [line.split(" s  ", 1)[1] for line in story[1:5]] == [
        "    client is SYN-SENT (first sample)", "client → server  S   seq=0", "    server is SYN-RECV (first sample)",
        "server → client  SA  seq=0 ack=1"]


def test_a_sockets_own_handshake_and_a_group_judged_as_one_verdict_naming_who_differs(run):
    from harness.load.units import parse_time_spec, parse_tolerance
    from harness.model import HandshakeExpectation
    one_rtt = HandshakeExpectation(parse_time_spec("1rtt"), parse_tolerance("5%"))
    expect = Expectations(states={"x#*": states("SYN-SENT", "ESTAB")}, handshakes={"x#*": one_rtt, "s2": one_rtt},
                          received={"x#*": 50}, groups={"x#*": ("a", "b")}, lines={"x#*.handshake": 30})
    verdicts = {v.name: v for v in judge_all(expect, run, 0.12)}
    # kernel time at the connecting ends (the client's 20 ms link adds nothing), arrivals at the accepted one
    assert verdicts["x#* handshake"].passed and verdicts["x#* handshake"].line == 30
    assert verdicts["x#* handshake"].value == pytest.approx(0.1202, abs=1e-5)
    assert verdicts["s2 handshake"].passed and verdicts["s2 handshake"].value == pytest.approx(0.1202, abs=1e-5)
    states_verdict = verdicts["x#* states"]
    assert not states_verdict.passed and states_verdict.observed.startswith("1 of 2 did otherwise: a: SYN-SENT → ESTAB → FIN-WAIT-1")
    assert "b:" not in states_verdict.observed
    assert not verdicts["x#* received"].passed and "2 of 2 did otherwise" in verdicts["x#* received"].observed
    tight = replace(expect, handshakes={"x#*": HandshakeExpectation(parse_time_spec("100ms"), parse_tolerance("1%"))})
    assert not next(v for v in judge_all(tight, run, 0.12) if v.name == "x#* handshake").passed


def test_the_timeline_shows_retransmissions_instead_of_counting_them_as_new_data():
    """user_timeout's five copies of one 1000-byte segment read '5 data segments, 5000 bytes'."""
    from harness.report.timeline import _segment_events
    from harness.analyse.segments import Segment

    def seg(t, seq, length):
        return Segment(t, "10.0.0.1", 40000, "10.0.0.2", 5001, "PA", seq, 7, length)
    names = {("10.0.0.1", 40000): "client", ("10.0.0.2", 5001): "server"}
    syn = Segment(0.0, "10.0.0.1", 40000, "10.0.0.2", 5001, "S", 100, 0, 0)
    lines = [text for _, text in _segment_events([syn, seg(1.0, 101, 1000), seg(1.3, 101, 1000), seg(1.6, 101, 1000)],
                                                 names, {("10.0.0.1", 40000): 100})]
    assert len(lines) == 4 and all("again" in line for line in lines[2:]) and "again" not in lines[1]
    burst = [text for _, text in _segment_events([syn, seg(1.0, 101, 1000), seg(1.0, 1101, 1000), seg(1.0, 2101, 500)],
                                                 names, {("10.0.0.1", 40000): 100})]
    assert burst[1].endswith("3 data segments, 2500 bytes") and len(burst) == 2
