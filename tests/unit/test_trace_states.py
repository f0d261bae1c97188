"""States from the kernel's tracepoints, completed and cross-checked by the samples, on recorded
runs (6.1 and 6.12 VMs, virtual clock; tests/fixtures/trace_states/: steps, gzipped samples, the
hosts' pcaps and trace/kernel.trace as the kernel wrote it)."""
import gzip
import json
import shutil
from pathlib import Path

import pytest

from harness.analyse.kernel_trace import kernel_trace, parse_trace, read_kernel_trace
from harness.analyse.traced_states import merged_spans
from harness.judge.states import judge_states
from harness.model import StateExpectation
from test_recorded_connections import observed     # one way to observe a recorded two-host run (tests/unit is on sys.path)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "trace_states"


def states(spans) -> list[str]:
    return [s.state for s in spans]


def test_the_trace_is_parsed_on_both_kernels_connects_and_children_attributed():
    for name, kernel in (("teardown_6_1", "6.1.0"), ("simultaneous_close_6_12", "6.12.")):
        trace = read_kernel_trace(FIXTURES / name)
        assert trace.kernel.startswith(kernel)
        client = trace.sockets_of(("10.0.0.1", _client_port(trace)), ("10.0.0.2", 5001))
        assert len(client) == 1
        # the connect's CLOSE -> SYN-SENT carries port 0: it is still this socket's first change
        assert client[0].transitions[0].old == "CLOSED" and client[0].transitions[0].new == "SYN-SENT"
        server = trace.sockets_of(("10.0.0.2", 5001), ("10.0.0.1", _client_port(trace)))
        # the accepted socket's LISTEN -> SYN-RECV (zero peer on 6.1) is its first change
        assert [t.new for t in server[0].transitions][:2] == ["SYN-RECV", "ESTAB"]
        assert trace.listeners_on(("10.0.0.2", 5001))


def _client_port(trace) -> int:
    return next(s.local[1] for s in trace.sockets if s.local[0] == "10.0.0.1" and s.peer)


def test_a_trace_line_keeps_its_fields_and_clock_offset():
    line = ("  ksoftirqd/0-14  [000] ..s1. 1796401490.223460: inet_sock_set_state: family=AF_INET protocol=IPPROTO_TCP "
            "sport=5001 dport=32900 saddr=10.0.0.2 daddr=10.0.0.1 saddrv6=::ffff:10.0.0.2 daddrv6=::ffff:10.0.0.1 "
            "oldstate=TCP_FIN_WAIT1 newstate=TCP_CLOSING")
    (event,) = parse_trace("# tracer: nop\n" + line, offset_s=0.5)
    assert event.name == "inet_sock_set_state" and event.task == "ksoftirqd/0" and event.cpu == 0
    assert event.t == pytest.approx(1796401489.723460) and event.fields["newstate"] == "TCP_CLOSING"
    (sock,) = kernel_trace([event]).sockets
    assert (sock.local, sock.peer, sock.transitions[0].new) == (("10.0.0.2", 5001), ("10.0.0.1", 32900), "CLOSING")


def test_teardown_full_socket_changes_are_exact_and_time_wait_sampled():
    obs = observed(FIXTURES / "teardown_6_1")
    assert obs.disagreements == []
    client = obs.states["client"]
    assert states(client) == ["SYN-SENT", "ESTAB", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT", "CLOSED"]
    for span in client[:4]:                      # traced: exact, no sampling window
        assert span.start_source == "trace" and span.sample_before == span.first_seen
    time_wait = client[4]
    # the orphan's FIN-WAIT-2 then TIME-WAIT are the TIME-WAIT socket's: sampled, bracketed
    assert time_wait.start_source == "samples" and time_wait.sample_before < time_wait.first_seen
    assert time_wait.timer_due is not None
    server = obs.states["server"]
    assert states(server) == ["LISTEN", "SYN-RECV", "ESTAB", "CLOSE-WAIT", "LAST-ACK", "CLOSED"]
    syn_recv = server[1]
    # the request socket's SYN-RECV begins sampled; it ends exactly when the child is made
    assert syn_recv.start_source == "samples" and syn_recv.end_source == "trace"
    assert server[2].first_seen == syn_recv.sample_after


def test_closing_to_time_wait_is_exact_in_a_simultaneous_close():
    obs = observed(FIXTURES / "simultaneous_close_6_12")
    assert obs.disagreements == []
    for host in ("client", "server"):
        spans = obs.states[host]
        assert states(spans)[-4:] == ["FIN-WAIT-1", "CLOSING", "TIME-WAIT", "CLOSED"]
        closing, time_wait = spans[-3], spans[-2]
        assert time_wait.start_source == "trace" and time_wait.first_seen == closing.sample_after
        assert closing.last_seen - closing.first_seen == pytest.approx(0.05, abs=0.002)   # one 50 ms crossing


def test_request_sockets_outside_the_trace_stay_sampled():
    obs = observed(FIXTURES / "stale_syn_6_1")
    assert obs.disagreements == []
    server = obs.states["server"]
    assert states(server) == ["LISTEN", "SYN-RECV", "ESTAB", "CLOSED", "SYN-RECV", "CLOSED"]
    assert server[4].start_source == "samples"         # the stale SYN's request: no full socket, no trace
    assert server[2].start_source == "trace"


def test_simultaneous_open_syn_recv_of_a_full_socket_is_traced():
    obs = observed(FIXTURES / "simultaneous_open_6_12")
    assert obs.disagreements == []
    a = obs.view("a")
    assert states(a.states)[:3] == ["SYN-SENT", "SYN-RECV", "ESTAB"]
    assert all(s.start_source == "trace" for s in a.states[:3])


def test_states_verdict_says_which_changes_were_traced():
    obs = observed(FIXTURES / "teardown_6_1")
    expected = tuple(StateExpectation(s) for s in ["SYN-SENT", "ESTAB", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT", "CLOSED"])
    verdict = judge_states("client", expected, obs)
    assert verdict.passed
    assert "4 changes traced by the kernel" in verdict.observed and "each sampled change seen within" in verdict.observed


def _copy(name: str, tmp_path: Path) -> Path:
    run = tmp_path / name
    shutil.copytree(FIXTURES / name, run)
    return run


def test_a_sample_contradicting_the_trace_is_a_disagreement_naming_both_sequences(tmp_path):
    run = _copy("teardown_6_1", tmp_path)
    path = run / "samples" / "client.jsonl.gz"
    samples = [json.loads(line) for line in gzip.decompress(path.read_bytes()).decode().splitlines()]
    changed = 0
    for sample in samples:           # the client said CLOSE-WAIT while the trace has it ESTABLISHED
        for row in sample["s"]:
            if row[0] == "ESTAB" and row[1] == "10.0.0.1" and changed < 3:
                row[0] = "CLOSE-WAIT"
                changed += 1
    path.write_bytes(gzip.compress("\n".join(json.dumps(s) for s in samples).encode()))
    obs = observed(run)
    assert changed and obs.disagreements
    said = obs.disagreements[0]
    assert "CLOSE-WAIT" in said and "kernel trace has ESTAB" in said
    assert "traced: SYN-SENT → ESTAB → FIN-WAIT-1" in said and "sampled: SYN-SENT → CLOSE-WAIT → ESTAB" in said


def test_without_a_trace_the_states_are_the_samples(tmp_path):
    run = _copy("teardown_6_1", tmp_path)
    shutil.rmtree(run / "trace")
    obs = observed(run)
    assert obs.trace is None
    assert all(s.start_source == "samples" for spans in obs.states.values() for s in spans)


def test_merging_with_no_traced_socket_changes_nothing():
    obs = observed(FIXTURES / "teardown_6_1")
    spans = obs.states["client"]
    assert merged_spans(spans, [], "client") == (spans, [])


def test_a_traced_state_change_is_an_exact_moment_and_a_sampled_one_is_not():
    from harness.analyse.events import Moment, find_moment
    from harness.model import Event
    obs = observed(FIXTURES / "teardown_6_1")
    fin_wait_1 = find_moment(Event("client", "enters", "FIN-WAIT-1"), obs)
    assert isinstance(fin_wait_1, Moment) and fin_wait_1.uncertainty_s == 0.0
    assert fin_wait_1.source == "kernel trace (inet_sock_set_state)"
    time_wait = find_moment(Event("client", "enters", "TIME-WAIT"), obs)
    assert time_wait.source == "samples" and time_wait.uncertainty_s > 0


def test_this_machines_kernel_traces_children_with_addresses_and_refused_connects_get_a_cookie():
    """6.18 (tests/integration/test_kernel_tracer.py's kind of run, kept): the child's first change
    already has its four-tuple; a connect refused by RST is known by its cookie from the reset."""
    trace = kernel_trace(parse_trace((FIXTURES / "host_6_18.trace").read_text()))
    (child,) = trace.sockets_of(("10.99.0.2", 5001), ("10.99.0.1", 48900))
    assert [t.new for t in child.transitions] == ["SYN-RECV", "ESTAB", "FIN-WAIT-1", "FIN-WAIT-2", "CLOSED"]
    (refused,) = trace.sockets_of(("10.99.0.1", 42692), ("10.99.0.2", 5002))
    assert refused.cookie == 0x1002 and [t.new for t in refused.transitions] == ["SYN-SENT", "CLOSED"]
    (reset,) = trace.of("reset-sent", ("10.99.0.2", 5002))
    assert reset.reason == "NO_SOCKET" and reset.peer == ("10.99.0.1", 42692)


def _span(state, first, last, before, after):
    from harness.analyse.states import StateSpan
    return StateSpan(state, first, last, before, after)


def test_an_earlier_socket_of_the_same_four_tuple_is_not_checked_against_the_next():
    """tw_reuse / time_wait_old_duplicate: a's socket closes, its four-tuple stays in TIME-WAIT,
    then b connects from the same port. The samples of a's TIME-WAIT, the last one 5 ms before b's
    connect, belong to no traced socket: kept, and no disagreement (a reviewer's reproduction)."""
    from harness.analyse.kernel_trace import TracedSocket, Transition as T
    here, there = ("10.0.0.1", 40000), ("10.0.0.2", 5001)
    a = TracedSocket(here, there, [T(.5, "CLOSED", "SYN-SENT"), T(.6, "SYN-SENT", "ESTAB"), T(1.2, "ESTAB", "FIN-WAIT-1"),
                                   T(1.3, "FIN-WAIT-1", "FIN-WAIT-2"), T(1.3, "FIN-WAIT-2", "CLOSED")])
    b = TracedSocket(here, there, [T(3.0, "CLOSED", "SYN-SENT"), T(3.1, "SYN-SENT", "ESTAB")])
    sampled = [_span("SYN-SENT", .51, .59, .5, .61), _span("ESTAB", .61, 1.19, .59, 1.21), _span("FIN-WAIT-1", 1.21, 1.29, 1.19, 1.31),
               _span("FIN-WAIT-2", 1.31, 1.35, 1.29, 1.36), _span("TIME-WAIT", 1.36, 2.995, 1.35, 3.004),
               _span("SYN-SENT", 3.004, 3.09, 2.995, 3.11), _span("ESTAB", 3.11, 3.5, 3.09, None)]
    spans, problems = merged_spans(sampled, [a, b], "client")
    assert problems == []
    assert states(spans) == ["SYN-SENT", "ESTAB", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT", "SYN-SENT", "ESTAB"]
    assert spans[4].last_seen == 2.995 and spans[5].first_seen == 3.0 and spans[5].start_source == "trace"
    # the last state b still held when tracing stopped was seen until the last sample
    assert spans[-1].last_seen == 3.5 and spans[-1].sample_after is None


def test_an_unsampled_request_socket_leaves_syn_recv_s_start_unknown_not_exact(tmp_path):
    from harness.analyse.events import Moment, find_moment
    from harness.model import Event
    run = _copy("teardown_6_1", tmp_path)
    path = run / "samples" / "server.jsonl.gz"
    samples = [json.loads(line) for line in gzip.decompress(path.read_bytes()).decode().splitlines()]
    for sample in samples:
        sample["s"] = [row for row in sample["s"] if row[0] != "SYN-RECV"]
    path.write_bytes(gzip.compress("\n".join(json.dumps(s) for s in samples).encode()))
    obs = observed(run)
    assert states(obs.states["server"])[:3] == ["LISTEN", "SYN-RECV", "ESTAB"]       # the child's instant, traced
    said = find_moment(Event("server", "enters", "SYN-RECV"), obs)
    assert not isinstance(said, Moment) and "was not sampled" in said
    assert isinstance(find_moment(Event("server", "leaves", "SYN-RECV"), obs), Moment)


def test_connects_whose_port_the_trace_does_not_print_are_named_by_their_syn():
    """A connects and stays in SYN-SENT (its SYN lost); B connects to the same peer later and is
    established first. By order alone B's first change would be taken for A's; the SYN each sent
    microseconds after its CLOSE -> SYN-SENT (kernel-time capture) names its port."""
    from harness.analyse.kernel_trace import TraceEvent

    def change(t, sport, old, new):
        return TraceEvent(t, "inet_sock_set_state", {"sport": str(sport), "dport": "5001", "saddr": "10.0.0.1",
                                                      "daddr": "10.0.0.2", "oldstate": old, "newstate": new})
    events = [change(0.5, 0, "TCP_CLOSE", "TCP_SYN_SENT"), change(2.0, 0, "TCP_CLOSE", "TCP_SYN_SENT"),
              change(2.1, 40002, "TCP_SYN_SENT", "TCP_ESTABLISHED"), change(3.5, 40001, "TCP_SYN_SENT", "TCP_ESTABLISHED")]
    syns = {("10.0.0.1", ("10.0.0.2", 5001)): [(0.50002, 40001), (2.00002, 40002)]}
    trace = kernel_trace(events, syns=syns)
    (a,) = trace.sockets_of(("10.0.0.1", 40001), ("10.0.0.2", 5001))
    (b,) = trace.sockets_of(("10.0.0.1", 40002), ("10.0.0.2", 5001))
    assert (a.start, b.start) == (0.5, 2.0)
    assert [t.t for t in a.transitions] == [0.5, 3.5] and [t.t for t in b.transitions] == [2.0, 2.1]
    by_order = kernel_trace(events)            # without the capture: in order, which is wrong here
    assert by_order.sockets_of(("10.0.0.1", 40002), ("10.0.0.2", 5001))[0].start == 0.5
