"""The agent runs each socket's steps in its own lane, names sockets and sets them up (issue 13).
Real agents on loopback (no root): what is asserted is the order of calls and their results,
never how long they took."""
from __future__ import annotations

import errno
import json
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from harness.drive.agent import Host, RunEnded, Starter, _never_blocks, cookie_of, lanes_of, new_socket, perform
from harness.judge.schedule import judge_schedule, late_steps
from harness.model import BLOCKED, AgentStep, Step, StepRecord

REPO = Path(__file__).resolve().parents[2]
LO = "127.0.0.1"
START_MARGIN_S = 0.3


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LO, 0))
        return probe.getsockname()[1]


def run_agents(tmp_path: Path, plans: dict[str, list[AgentStep]], duration: float) -> dict[str, list[StepRecord]]:
    """Each host's agent as its own process, all given one t0; their logs read back as the runner does."""
    procs = {}
    try:
        for host, steps in plans.items():
            procs[host] = subprocess.Popen([sys.executable, "-m", "harness.drive.agent"], stdin=subprocess.PIPE,
                                           stdout=subprocess.PIPE, text=True, cwd=REPO)
            plan = {"host": host, "steps": [s.to_json() for s in steps], "duration": duration,
                    "log": str(tmp_path / f"{host}.jsonl")}
            procs[host].stdin.write(json.dumps(plan) + "\n")
            procs[host].stdin.flush()
        for proc in procs.values():
            assert proc.stdout.readline().strip() == "ready"
        t0 = time.time() + START_MARGIN_S
        for proc in procs.values():
            proc.stdin.write(f"{t0}\n")
            proc.stdin.flush()
        for proc in procs.values():
            assert proc.stdout.readline().strip() == "done"
    finally:
        for proc in procs.values():
            proc.stdin.close()
            proc.wait(timeout=60)
    assert all(proc.returncode == 0 for proc in procs.values())
    return {host: [r for line in (tmp_path / f"{host}.jsonl").read_text().splitlines()
                   if not (r := StepRecord.from_json(json.loads(line))).snapshot]      # the calls (and accepts)
            for host in plans}


def snapshots_at_end(tmp_path: Path, host: str) -> list[StepRecord]:
    """The log's lines of sockets still open at the run's end (run_agents leaves them out)."""
    records = [StepRecord.from_json(json.loads(line)) for line in (tmp_path / f"{host}.jsonl").read_text().splitlines()]
    return [r for r in records if r.snapshot]


def by_socket(records: list[StepRecord], action: str) -> dict[str, StepRecord]:
    return {r.socket: r for r in records if r.action == action}


def listen(port: int, index: int = 1, **kw) -> AgentStep:
    return AgentStep("listen", index, 0.0, port, LO, socket=f"server:{port}", **kw)


def connect(name: str, port: int, at: float | None, index: int = 2, **kw) -> AgentStep:
    return AgentStep("connect", index, at, port, LO, LO, socket=name, **kw)


# --- lanes ------------------------------------------------------------------------------------

def test_a_blocked_call_holds_back_only_its_own_socket(tmp_path):
    """Lane a blocks in a recv until the run ends; lane b's connect, due meanwhile, runs on time.
    Were the host's steps one sequence, b's connect would start after a's recv returned."""
    port = free_port()
    logs = run_agents(tmp_path, {
        "server": [listen(port)],
        "client": [connect("a", port, 0.1), AgentStep("recv", 3, size=10, socket="a"),
                   connect("b", port, 0.3, index=4), AgentStep("send", 5, size=7, socket="b")]}, duration=1.5)
    client = logs["client"]
    recv_a, connect_b = by_socket(client, "recv")["a"], by_socket(client, "connect")["b"]
    assert by_socket(client, "connect")["a"].result == "ok"
    assert recv_a.blocked and not connect_b.blocked and connect_b.result == "ok"
    assert connect_b.start < recv_a.end
    assert by_socket(client, "send")["b"].nbytes == 7
    assert [r.socket for r in client if r.action == "recv"] == ["a"]


def test_a_hundred_lanes_each_connect_and_close_once_and_all_are_accepted(tmp_path):
    port = free_port()
    names = [f"c{i}" for i in range(100)]
    steps = [connect(name, port, 0.2, index=i + 2) for i, name in enumerate(names)]
    steps += [AgentStep("close", 200 + i, 0.6, socket=name) for i, name in enumerate(names)]
    logs = run_agents(tmp_path, {"server": [listen(port)], "client": steps}, duration=3.0)
    connects, closes = by_socket(logs["client"], "connect"), by_socket(logs["client"], "close")
    assert sorted(closes) == sorted(names) and all(r.result == "ok" and r.start >= r.scheduled for r in closes.values())
    # each close (begun by the starter, 100 due together) carries the tcp_info read just before it
    assert {r.tcp_info["state"] for r in closes.values()} == {"ESTAB"}
    assert sorted(connects) == sorted(names)
    assert all(r.result == "ok" and r.start >= r.scheduled for r in connects.values())
    assert len({r.cookie for r in connects.values()}) == 100 and None not in {r.cookie for r in connects.values()}
    accepted = [r for r in logs["server"] if r.accepted]
    assert [r.socket for r in accepted] == [f"server:{port}#{n}" for n in range(1, 101)]
    assert {r.peer for r in accepted} == {r.local for r in connects.values()}


def test_accept_steps_take_connections_in_order_and_name_them(tmp_path):
    port = free_port()
    server = [listen(port), AgentStep("accept", 2, port=port, socket="s1"), AgentStep("accept", 3, port=port, socket="s2"),
              AgentStep("send", 4, message="hi!", socket="s1"), AgentStep("recv", 5, size=5, socket=f"server:{port}#2")]
    client = [connect("a", port, 0.1), AgentStep("recv", 7, size=3, socket="a"),
              connect("b", port, 0.4, index=8), AgentStep("send", 9, size=5, socket="b")]
    logs = run_agents(tmp_path, {"server": server, "client": client}, duration=2.0)
    accepted = [r for r in logs["server"] if r.accepted]
    accepts = by_socket(logs["server"], "accept")
    connects = by_socket(logs["client"], "connect")
    assert [r.socket for r in accepted] == [f"server:{port}#1", f"server:{port}#2"]
    assert [accepted[0].peer, accepted[1].peer] == [connects["a"].local, connects["b"].local]
    assert (accepts["s1"].alias, accepts["s2"].alias) == (f"server:{port}#1", f"server:{port}#2")
    assert (accepts["s1"].cookie, accepts["s2"].cookie) == (accepted[0].cookie, accepted[1].cookie)
    assert accepts["s1"].peer == connects["a"].local and accepts["s1"].local == accepted[0].local
    cookies = [r.cookie for r in accepted] + [connects["a"].cookie, connects["b"].cookie]
    assert None not in cookies and len(set(cookies)) == 4
    assert by_socket(logs["client"], "recv")["a"].nbytes == 3
    assert by_socket(logs["server"], "recv")[f"server:{port}#2"].nbytes == 5
    listened = by_socket(logs["server"], "listen")[f"server:{port}"]
    assert listened.cookie is not None and listened.cookie not in cookies


def test_a_step_on_a_socket_that_never_comes_is_blocked_at_the_end(tmp_path):
    port = free_port()
    logs = run_agents(tmp_path, {"server": [listen(port), AgentStep("recv", 2, size=1, socket=f"server:{port}#1"),
                                            AgentStep("wait", 3, 0.1, seconds=0.05, socket="other")]}, duration=0.8)
    recv, wait = by_socket(logs["server"], "recv")[f"server:{port}#1"], by_socket(logs["server"], "wait")["other"]
    t0 = by_socket(logs["server"], "listen")[f"server:{port}"].scheduled
    assert recv.start >= t0          # a lane's first step without at: starts at t0, not when t0 was told
    assert recv.blocked and recv.result == BLOCKED and not wait.blocked and wait.result == "ok"


def test_steps_without_sockets_are_one_lane_as_before():
    steps = [AgentStep("listen", 1, 0.0, 5001), AgentStep("recv", 2), connect("a", 5001, 0.0, index=3),
             AgentStep("close", 4, socket="a")]
    assert {name: [s.index for s in lane] for name, lane in lanes_of(steps).items()} == {"": [1, 2], "a": [3, 4]}


def test_the_starter_begins_due_calls_in_time_then_file_order_and_wakes_their_lanes_after_all_began():
    starter = Starter()
    threading.Thread(target=starter.serve, daemon=True).start()
    began: list[tuple[str, bool]] = []
    jobs = {}

    def begin(name: str, other: str):
        def run():
            began.append((name, jobs[other].done.is_set()))
            if name == "bad":
                raise OSError(errno.EADDRINUSE, "in use")
        return run

    due = time.time() + 0.2
    with starter.changed:          # all three queued before the starter looks
        jobs["a"] = starter.run_at(due, begin("a", "bad"), line=5)
        jobs["bad"] = starter.run_at(due, begin("bad", "a"), line=3)     # same moment, earlier line: first
        jobs["first"] = starter.run_at(due - 0.1, begin("first", "a"))
    jobs["a"].wait()
    with pytest.raises(OSError) as raised:
        jobs["bad"].wait()
    assert raised.value.errno == errno.EADDRINUSE
    assert began == [("first", False), ("bad", False), ("a", False)]


# --- socket set-up ----------------------------------------------------------------------------

OPTIONS = (("TCP_NODELAY", 1), ("SO_LINGER", 0), ("TCP_USER_TIMEOUT", 2000), ("TCP_SYNCNT", 2), ("SO_RCVBUF", 4096))


def test_a_new_socket_has_the_steps_options():
    with new_socket(AgentStep("connect", 1, options=OPTIONS, reuseaddr=True, reuseport=True)) as sock:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert struct.unpack("ii", sock.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 8)) == (1, 0)
        assert sock.getsockopt(socket.IPPROTO_TCP, 18) == 2000
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_SYNCNT) == 2
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == 2 * 4096     # the kernel doubles it
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 1
        assert sock.getsockopt(socket.SOL_SOCKET, 15) == 1
    with new_socket(AgentStep("connect", 1)) as plain:
        assert plain.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 0
        assert plain.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0


def test_only_calls_that_return_at_once_are_left_to_the_starter():
    host = in_process_host()
    plain, lingering, closed = socket.socket(), socket.socket(), socket.socket()
    lingering.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 5))
    closed.close()
    host.register(["plain"], plain)
    host.register(["lingering"], lingering)
    host.register(["closed"], closed)
    assert _never_blocks(AgentStep("close", 1, socket="plain"), host)
    assert _never_blocks(AgentStep("abort", 1, socket="lingering"), host)
    assert _never_blocks(AgentStep("shutdown", 1, how="write", socket="lingering"), host)
    assert not _never_blocks(AgentStep("close", 1, socket="lingering"), host)
    assert not _never_blocks(AgentStep("close", 1, socket="closed"), host)
    assert not _never_blocks(AgentStep("close", 1, socket="missing"), host)
    assert not _never_blocks(AgentStep("send", 1, size=1, socket="plain"), host)
    plain.close()
    lingering.close()


def in_process_host(duration: float = 5.0) -> Host:
    host = Host("client", lambda entry: None)
    host.t0 = time.time()
    host.deadline = host.t0 + duration
    return host


def test_a_connect_sets_its_options_before_binding_to_its_port():
    port, local = free_port(), free_port()
    host = in_process_host()
    entry = StepRecord("connect", time.time())
    with socket.create_server((LO, port)):
        perform(connect("a", port, None, options=OPTIONS, local_port=local, reuseaddr=True), host, entry)
    sock = host.named["a"]
    assert entry.local == (LO, local) and entry.peer == (LO, port) and entry.cookie == cookie_of(sock)
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_SYNCNT) == 2
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 1
    sock.close()


def test_a_step_on_a_missing_socket_ends_with_the_run():
    host = in_process_host(duration=0.05)
    with pytest.raises(RunEnded):
        perform(AgentStep("send", 1, size=1, socket="nobody"), host, StepRecord("send", time.time()))


def test_a_non_blocking_connect_returns_ok_and_its_wait_reports_the_refusal(tmp_path):
    port = free_port()      # nobody listens there
    logs = run_agents(tmp_path, {"client": [connect("a", port, 0.0, blocking=False),
                                            AgentStep("wait", 3, until="connected", socket="a")]}, duration=2.0)
    records = logs["client"]
    assert [(r.action, r.result, r.errno) for r in records] == [("connect", "ok", None),
                                                                ("wait", "error: Connection refused", "ECONNREFUSED")]


def test_a_non_blocking_connect_then_wait_then_data(tmp_path):
    port = free_port()
    logs = run_agents(tmp_path, {
        "server": [listen(port), AgentStep("recv", 2, size=4, socket=f"server:{port}#1")],
        "client": [connect("a", port, 0.1, blocking=False), AgentStep("wait", 3, until="connected", socket="a"),
                   AgentStep("send", 4, size=4, socket="a")]}, duration=2.0)
    assert [(r.action, r.result) for r in logs["client"]] == [("connect", "ok"), ("wait", "ok"), ("send", "ok")]
    assert by_socket(logs["server"], "recv")[f"server:{port}#1"].nbytes == 4
    # tcp_info after each call, and for each connection still open at the run's end (its listener has none)
    assert logs["client"][-1].tcp_info["state"] == "ESTAB"
    (end,) = snapshots_at_end(tmp_path, "client")
    assert end.socket == "a" and end.tcp_info["bytes_sent"] == 4 and end.tcp_info["bytes_acked"] == 5 and end.start >= logs["client"][-1].end + 1.5
    assert [r.socket for r in snapshots_at_end(tmp_path, "server")] == [f"server:{port}#1"]


def test_binding_a_port_in_use_without_reuseaddr_is_eaddrinuse(tmp_path):
    port = free_port()
    with socket.socket() as taken:
        taken.bind((LO, 0))
        taken.listen()
        logs = run_agents(tmp_path, {"client": [connect("a", port, 0.0, local_port=taken.getsockname()[1]),
                                                AgentStep("close", 3, socket="a")]}, duration=1.0)
    assert [(r.action, r.errno) for r in logs["client"]] == [("connect", "EADDRINUSE"), ("close", None)]


def test_close_in_syn_sent(tmp_path):
    """A listener whose accept queue is full drops the next SYN: the agent's socket stays in
    SYN-SENT, where close must work."""
    with socket.socket() as full:
        full.bind((LO, 0))
        full.listen(0)
        port = full.getsockname()[1]
        with socket.create_connection((LO, port)):
            logs = run_agents(tmp_path, {"client": [connect("a", port, 0.0, blocking=False),
                                                    AgentStep("wait", 3, until="state:SYN-SENT", socket="a"),
                                                    AgentStep("close", 4, socket="a")]}, duration=2.0)
    assert [(r.action, r.result) for r in logs["client"]] == [("connect", "ok"), ("wait", "ok"), ("close", "ok")]


# --- lateness per lane ------------------------------------------------------------------------

def call(action: str, line: int, socket_name: str | None, at: float | None, start: float, end: float) -> StepRecord:
    return StepRecord(action, start, end, index=line, scheduled=at, result="ok", socket=socket_name)


def test_a_late_step_is_blocked_only_by_its_own_sockets_previous_call():
    steps = [Step("client", "recv", 5, 0.0, socket="a"), Step("client", "connect", 6, 0.5, socket="b"),
             Step("client", "send", 7, 0.5, socket="a")]
    log = {"client": [call("connect", 6, "b", 0.5, 0.6, 0.61), call("recv", 5, "a", 0.0, 0.0, 2.0),
                      call("send", 7, "a", 0.5, 2.001, 2.002)]}
    late = late_steps(steps, (), log, 0.0)
    assert [(s.action, s.socket, s.blocked_by) for s in late] == [
        ("connect", "b", None), ("send", "a", "recv (line 5), which ran until +2.000 s")]
    verdict = judge_schedule(late)
    assert not verdict.passed and "client's socket a was still in its previous step, recv (line 5)" in verdict.observed
    only_b = late_steps(steps, (), {"client": log["client"][:2]}, 0.0)
    assert judge_schedule(only_b).passed


def test_closing_a_listener_stops_it_and_a_reset_connection_is_still_accepted_by_name(tmp_path):
    """A listener closed while its accept loop waits in accept() must stop listening (close()
    alone left it LISTEN: the next connect was accepted); an accept step taking a connection the
    peer already reset reports it (accept() gave its addresses), not ENOTCONN."""
    port, other = free_port(), free_port()
    server = [AgentStep("listen", 1, at=0.0, port=port, socket=f"h:{port}"),
              AgentStep("close", 3, at=0.2, socket=f"h:{port}"),
              AgentStep("listen", 4, at=0.0, port=other, socket=f"h:{other}"),
              AgentStep("accept", 7, at=0.6, port=other, socket="s1")]
    client = [AgentStep("connect", 2, at=0.4, port=port, bind=LO, address=LO, socket="late"),
              AgentStep("connect", 5, at=0.1, port=other, bind=LO, address=LO, socket="a"),
              AgentStep("abort", 6, at=0.3, socket="a")]
    logs = run_agents(tmp_path, {"h": server, "c": client}, 1.0)
    late = next(e for e in logs["c"] if e.socket == "late")
    assert late.errno == "ECONNREFUSED"
    taken = next(e for e in logs["h"] if e.action == "accept")
    assert taken.result == "ok" and taken.alias == f"h:{other}#1" and taken.peer and taken.peer[0] == LO


def test_waiting_for_a_connection_that_never_began_is_an_error(tmp_path):
    """A non-blocking connect that failed before its SYN (an address not on the host): `wait:
    connected` said ok on the CLOSED socket."""
    steps = [AgentStep("connect", 1, at=0.0, port=free_port(), bind="10.255.255.1", address=LO, socket="a", blocking=False),
             AgentStep("wait", 2, until="connected", socket="a")]
    (connect, wait) = run_agents(tmp_path, {"h": steps}, 0.5)["h"]
    assert connect.errno == "EADDRNOTAVAIL" and wait.errno == "ENOTCONN"
