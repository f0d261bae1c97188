"""Named sockets at load (issue 13): as:/accept:/socket:, socket set-up, the socket every step acts on,
per-socket expectations and events, the plan's agent steps, and the schema agreeing with the loader."""
import json
from pathlib import Path

import jsonschema
import pytest

from harness.errors import UserError
from harness.load import load_experiment
from harness.model import Event, HandshakeExpectation, PacketPattern, StateExpectation, TimeSpec, Tolerance
from harness.plan.run_plan import agent_plans

REPO = Path(__file__).resolve().parents[2]
TOPOLOGY = ("name: t\nhosts: [client, other, server]\nswitches: [s1]\nlinks:\n  - {a: client, b: s1, delay: 25ms}\n"
            "  - {a: other, b: s1, delay: 25ms}\n  - {a: server, b: s1, delay: 25ms}\n")


def write(tmp_path: Path, steps: str, expect: str = "  server: {accepted: 1}\n") -> Path:
    """An experiment on client, other and server; `steps` and `expect` are the lines under each key."""
    (tmp_path / "t.yaml").write_text(TOPOLOGY)
    path = tmp_path / "e.yaml"
    path.write_text(f"name: e\ntopology: t.yaml\nduration: 5s\nsteps:\n{steps}expect:\n{expect}")
    return path


def refused(tmp_path: Path, steps: str, expect: str = "  server: {accepted: 1}\n") -> UserError:
    with pytest.raises(UserError) as info:
        load_experiment(write(tmp_path, steps, expect))
    assert info.value.file == str(tmp_path / "e.yaml") and info.value.fix
    return info.value


LISTEN = "  - {at: 0s, on: server, listen: 5001}\n"                 # line 5
FULL = LISTEN + """  - {at: 0.5s, on: client, connect: server:5001, as: a}
  - {at: 0.5s, on: client, connect: server:5001, as: b, bind: 40000, reuseaddr: true, reuseport: true, options: {TCP_USER_TIMEOUT: 2s, SO_LINGER: 0, TCP_NODELAY: true, TCP_SYNCNT: 2, SO_RCVBUF: 4096B}, wait: false}
  - {on: server, accept: 5001, as: s1}
  - {at: 1s, on: client, send: 1000B, socket: a}
  - {at: 2s, on: client, close: true, socket: a}
  - {on: server, close: true, socket: "server:5001#2"}
  - {on: client, wait: connected, socket: b}
  - {after: 1s, on: client, abort: true, socket: b}
"""


def test_the_spec_example_loads_with_every_socket_resolved(tmp_path):
    exp = load_experiment(write(tmp_path, FULL))
    got = [(s.host, s.action, s.socket, s.index) for s in exp.steps]
    assert got == [("server", "listen", "server:5001", 5), ("client", "connect", "a", 6), ("client", "connect", "b", 7),
                   ("server", "accept", "s1", 8), ("client", "send", "a", 9), ("client", "close", "a", 10),
                   ("server", "close", "server:5001#2", 11), ("client", "wait", "b", 12),
                   ("client", "wait", "b", 13), ("client", "abort", "b", 13)]   # after: waits on the step's socket
    a, b, accept = exp.steps[1], exp.steps[2], exp.steps[3]
    assert (a.blocking, a.local_port, a.reuseaddr, a.reuseport, a.options) == (True, None, False, False, ())
    assert (b.blocking, b.local_port, b.reuseaddr, b.reuseport) == (False, 40000, True, True)
    assert b.options == (("TCP_USER_TIMEOUT", 2000), ("SO_LINGER", 0), ("TCP_NODELAY", 1), ("TCP_SYNCNT", 2),
                         ("SO_RCVBUF", 4096))
    assert (accept.port, accept.peer) == (5001, None)


def test_wait_true_beside_connect_is_the_blocking_default(tmp_path):
    exp = load_experiment(write(tmp_path, LISTEN + "  - {at: 0.5s, on: client, connect: server:5001, wait: true}\n"))
    assert [(s.action, s.blocking) for s in exp.steps] == [("listen", True), ("connect", True)]


def test_listen_takes_reuseport_and_options(tmp_path):
    exp = load_experiment(write(tmp_path, "  - {at: 0s, on: server, listen: 5001, reuseport: true, "
                                          "options: {TCP_DEFER_ACCEPT: 2s, SO_RCVBUF: 64KiB}}\n"))
    assert (exp.steps[0].reuseport, exp.steps[0].options) == (True, (("TCP_DEFER_ACCEPT", 2), ("SO_RCVBUF", 65536)))


# --- the default socket -------------------------------------------------------------------------

def test_todays_single_connection_form_gets_automatic_names(tmp_path):
    exp = load_experiment(write(tmp_path, LISTEN + """  - {at: 0.5s, on: client, connect: server:5001}
  - {on: client, send: 100B}
  - {on: server, recv: 100B}
  - {after: 0.5s, on: server, close: true}
  - {on: other, wait: 1s}
"""))
    assert [s.socket for s in exp.steps] == ["server:5001", "client#1", "client#1", "server:5001#1", "server:5001#1",
                                            "server:5001#1", None]   # other has no socket at all


def test_unnamed_connects_are_numbered_per_host_and_named_ones_take_no_number(tmp_path):
    exp = load_experiment(write(tmp_path, LISTEN + """  - {at: 0.5s, on: client, connect: server:5001}
  - {at: 0.5s, on: client, connect: server:5001, as: x}
  - {at: 0.5s, on: other, connect: server:5001}
  - {at: 0.5s, on: client, connect: server:5001}
  - {on: client, close: true, socket: "client#2"}
""", expect="  client: {received: 0B}\n"))
    assert [s.socket for s in exp.steps] == ["server:5001", "client#1", "x", "other#1", "client#2", "client#2"]


def test_a_server_with_one_accept_step_defaults_to_it(tmp_path):
    exp = load_experiment(write(tmp_path, LISTEN + """  - {at: 0.5s, on: client, connect: server:5001}
  - {on: server, accept: 5001, as: s1}
  - {on: server, recv: all}
""", expect="  server: {states: [LISTEN, SYN-RECV, ESTAB]}\n"))   # one connection: host-level states allowed
    assert exp.steps[-1].socket == "s1"


def test_several_sockets_without_socket_are_refused_with_the_candidates(tmp_path):
    error = refused(tmp_path, LISTEN + """  - {at: 0.5s, on: client, connect: server:5001, as: a}
  - {at: 0.5s, on: client, connect: server:5001, as: b}
  - {at: 1s, on: client, close: true}
""")
    assert error.line == 8 and "client has several sockets (a, b): say which with socket: a" in error.message


def test_several_listeners_without_a_connection_are_ambiguous(tmp_path):
    error = refused(tmp_path, LISTEN + "  - {at: 0s, on: server, listen: 5002}\n  - {at: 1s, on: server, close: true}\n")
    assert error.line == 7 and "server:5001#1, server:5002#1" in error.message


@pytest.mark.parametrize("name, words", [
    ("nosuch", "no socket of the experiment"),
    ("a", "a socket of client"),                         # another host's socket
    ("'server:5002#1'", "no socket of the experiment"),  # a port server does not listen on
    ("'server:5001#0'", "no socket of the experiment"),
    ("'client#1'", "no socket of the experiment"),       # client's only connect is named a
])
def test_a_socket_naming_none_of_the_hosts_sockets_is_refused(tmp_path, name, words):
    error = refused(tmp_path, LISTEN + "  - {at: 0.5s, on: client, connect: server:5001, as: a}\n"
                                       f"  - {{at: 1s, on: server, close: true, socket: {name}}}\n")
    assert error.line == 7 and words in error.message and "server:5001" in error.fix


def test_a_listener_and_its_nth_connection_are_sockets_of_the_host(tmp_path):
    exp = load_experiment(write(tmp_path, LISTEN + """  - {at: 1s, on: server, close: true, socket: "server:5001"}
  - {at: 1s, on: server, close: true, socket: "server:5001#7"}
"""))
    assert [s.socket for s in exp.steps[1:]] == ["server:5001", "server:5001#7"]


# --- every bad value: file, line and a fix ------------------------------------------------------

CONNECT = "  - {at: 0.5s, on: client, connect: server:5001, %s}\n"      # line 6


@pytest.mark.parametrize("extra, words", [
    ("as: A", "not a socket name"), ("as: 1a", "not a socket name"), ("as: [a]", "not a socket name"),
    ("as: " + "a" * 32, "not a socket name"), ("as: server", "is the name of a host"),
    ("bind: 70000", "bind: 70000 is outside 0 to 65535"), ("bind: -1", "bind:"), ("bind: 1.5", "not a whole number"),
    ("bind: '40000'", "not a whole number"), ("reuseaddr: 1", "reuseaddr has the wrong form"),
    ("reuseport: yes", "reuseport has the wrong form"), ("options: [TCP_NODELAY]", "options has the wrong form"),
    ("wait: 1s", "beside connect: takes true or false"), ("socket: a", "socket: does not belong on a connect step"),
    ("options: {TCP_NODELAY: 2}", "option TCP_NODELAY: 2 is not true or false"),
    ("options: {TCP_USER_TIMEOUT: 1.5ms}", "not a whole number of milliseconds"),
    ("options: {TCP_USER_TIMEOUT: 2000}", "not a duration"),
    ("options: {TCP_KEEPIDLE: 1.5s}", "not a whole number of seconds"),
    ("options: {TCP_SYNCNT: 200}", "200 is outside 1 to 127"), ("options: {TCP_SYNCNT: 0}", "outside 1 to 127"),
    ("options: {IP_TTL: 256}", "outside 1 to 255"), ("options: {SO_RCVBUF: 4096X}", "not a byte count"),
    ("options: {SO_LINGER: -1}", "outside 0 to 2147483647"), ("options: {SO_LINGER: 0.5s}", "whole number of seconds"),
    ("options: {TCP_KEEPCNT: 2147483648}", "outside 1 to 127"), ("options: {TCP_MAXSEG: 3000000000}", "more than 64 MiB"),
])
def test_bad_socket_set_up_names_its_line_and_a_fix(tmp_path, extra, words):
    error = refused(tmp_path, LISTEN + CONNECT % extra)
    assert error.line == 6 and words in error.message, error


def test_an_unknown_option_lists_the_known_ones(tmp_path):
    error = refused(tmp_path, LISTEN + "  - {at: 0.5s, on: client, connect: server:5001,\n"
                                       "     options: {TCP_NODELAY: true,\n               SO_NOSUCH: 1}}\n")
    assert error.line == 8 and "unknown socket option 'SO_NOSUCH'" in error.message
    assert "TCP_USER_TIMEOUT" in error.fix and "SO_LINGER" in error.fix


BAD_STEPS = [   # (steps, line, words); test_bad_steps_name_their_line_and_a_fix
    (LISTEN + "  - {on: server, accept: 5001}\n", 6, "accept step needs as:"),
    (LISTEN + "  - {on: server, accept: 5002, as: s1}\n", 6, "does not listen"),
    (LISTEN + "  - {on: client, accept: 5001, as: s1}\n", 6, "does not listen"),     # another host's listener
    (LISTEN + "  - {on: server, accept: 0, as: s1}\n", 6, "accept: 0 is outside 1 to 65535"),
    (LISTEN + CONNECT % "as: a" + "  - {on: server, accept: 5001, as: a}\n", 7, "as: a names a second socket"),
    (LISTEN + "  - {on: client, wait: false}\n", 6, "only goes beside connect"),
    (LISTEN + "  - {on: server, listen: 5002, reuseaddr: true}\n", 6, "reuseaddr: does not belong on a listen step"),
    (LISTEN + "  - {on: server, listen: 5002, socket: x}\n", 6, "socket: does not belong on a listen step"),
    (LISTEN + "  - {on: server, listen: 5002, as: x}\n", 6, "as: does not belong on a listen step"),
    (LISTEN + "  - {on: server, close: true, bind: 1}\n", 6, "bind: does not belong on a close step"),
    (LISTEN + "  - {on: server, recv: all, options: {TCP_NODELAY: true}}\n", 6, "options: does not belong"),
    (LISTEN + "  - {on: server, close: true, socket: 5}\n", 6, "socket has the wrong form"),
]


@pytest.mark.parametrize("name, written, value", [
    ("TCP_NODELAY", "true", 1), ("TCP_NODELAY", "false", 0), ("TCP_NODELAY", "1", 1), ("SO_KEEPALIVE", "0", 0),
    ("TCP_SYNCNT", "127", 127), ("TCP_KEEPCNT", "1", 1), ("IP_TTL", "64", 64), ("SO_SNDBUF", "64KiB", 65536),
    ("TCP_MAXSEG", "536", 536), ("TCP_WINDOW_CLAMP", "1MB", 10**6), ("TCP_KEEPIDLE", "2min", 120),
    ("TCP_LINGER2", "5s", 5), ("TCP_USER_TIMEOUT", "1500ms", 1500), ("TCP_USER_TIMEOUT", "0.1s", 100),
    ("TCP_USER_TIMEOUT", "2s", 2000), ("SO_LINGER", "0", 0), ("SO_LINGER", "5", 5), ("SO_LINGER", "3s", 3),
    ("TCP_QUICKACK", "true", 1), ("TCP_DEFER_ACCEPT", "0s", 0),
])
def test_options_become_the_ints_the_kernel_takes(tmp_path, name, written, value):
    exp = load_experiment(write(tmp_path, LISTEN + CONNECT % f"options: {{{name}: {written}}}"))
    assert exp.steps[1].options == ((name, value),)


# --- expectations per socket, and the host-level forms a host with several connections refuses ------

TWO_CLIENTS = LISTEN + """  - {at: 0.5s, on: client, connect: server:5001, as: a}
  - {at: 0.5s, on: other, connect: server:5001}
"""


def test_sockets_have_their_own_expectations(tmp_path):
    exp = load_experiment(write(tmp_path, TWO_CLIENTS, expect="""  a: {states: [SYN-SENT, ESTAB], received: 0B, errors: [ECONNRESET],
      packets: [{from: a, flags: S, seq: x}, {from: server, flags: SA, ack: x+1}]}
  "server:5001#2": {states: [SYN-RECV, ESTAB]}
  "other#1": {received: 10B}
  client: {states: [SYN-SENT, ESTAB], received: 0B}
  server: {accepted: 2, received: 0B, errors: []}
  packets: [{from: "server:5001#1", flags: SA}]
"""))
    e = exp.expect
    assert list(e.states) == ["client", "a", "server:5001#2"]        # hosts first, as before; then sockets
    assert e.states["a"] == (StateExpectation("SYN-SENT"), StateExpectation("ESTAB"))
    assert (e.received, e.accepted, e.errors["a"]) == ({"a": 0, "other#1": 10, "client": 0, "server": 0},
                                                       {"server": 2}, ("ECONNRESET",))
    assert [p.sender for p in e.socket_packets["a"]] == ["a", "server"] and set(e.socket_packets) == {"a"}
    assert e.packets == (PacketPattern("server:5001#1", "SA"),)
    assert {k: e.lines[k] for k in ("a.states", "a.packets", "server:5001#2.states", "other#1.received")} == \
        {"a.states": 9, "a.packets": 10, "server:5001#2.states": 11, "other#1.received": 12}


BAD_SOCKET_EXPECT = [   # (expect, line, words) on TWO_CLIENTS; test_bad_expectations_are_refused
    ("  server: {states: [LISTEN, SYN-RECV]}\n", 9, "server has several connections (server:5001#1, server:5001#2)"),
    ("  a: {accepted: 1}\n", 9, "unknown key 'accepted' in expect.a"),
    ("  a: {packets: [{from: nobody, flags: S}]}\n", 9, "packet sender 'nobody' is not a host or a socket"),
    ("  b: {states: [ESTAB]}\n", 9, "unknown key 'b' in expect"),
    ("  \"server:5002#1\": {states: [ESTAB]}\n", 9, "unknown key 'server:5002#1' in expect"),
    ("  server: {packets: []}\n", 9, "unknown key 'packets' in expect.server"),
    ("  timing:\n    t: {from: server enters ESTAB, to: a enters ESTAB, between: [0s, 1s]}\n", 10,
     "server has several connections"),
    ("  timing:\n    t: {from: a sends S, to: server receives S#2, between: [0s, 1s]}\n", 10, "several connections"),
    ("  timing:\n    t: {from: a sends S, to: b sends S, between: [0s, 1s]}\n", 10, "not an event"),
]


def test_the_several_connections_refusal_names_the_sockets_to_use(tmp_path):
    error = refused(tmp_path, LISTEN + CONNECT % "as: a" + CONNECT % "as: b" + "  - {on: client, close: true, socket: a}\n",
                    "  client: {states: [SYN-SENT]}\n")
    assert "client has several connections (a, b)" in error.message and "a: {states: [...]}" in error.fix


def test_fixes_quote_automatic_names_as_yaml_needs_them(tmp_path):
    assert refused(tmp_path, TWO_CLIENTS, "  server: {states: [LISTEN]}\n").fix == \
        'say which connection: "server:5001#1": {states: [...]}.'
    error = refused(tmp_path, TWO_CLIENTS, "  timing:\n    t: {from: server leaves ESTAB, to: a sends S, between: [0s, 1s]}\n")
    assert error.fix == 'say which connection: "server:5001#1 leaves ESTAB".'
    error = refused(tmp_path, LISTEN + "  - {at: 0s, on: server, listen: 5002}\n  - {at: 1s, on: server, close: true}\n")
    assert error.line == 7 and error.fix == 'add socket: "server:5001#1" (or another of them) to this close step.'


def test_host_totals_and_calls_stay_allowed_on_a_host_with_several_connections(tmp_path):
    exp = load_experiment(write(tmp_path, TWO_CLIENTS, expect="""  server: {accepted: 2, received: 0B}
  timing:
    t: {from: server calls close, to: "server:5001#1 enters CLOSED", between: [0s, 1s]}
"""))
    assert exp.expect.timing[0].start == Event("server", "calls", "close", 1, "server calls close")


def test_events_name_sockets_and_the_new_verbs(tmp_path):
    exp = load_experiment(write(tmp_path, LISTEN + CONNECT % "as: a" + "  - {on: server, accept: 5001, as: s1}\n", """  timing:
    t1: {from: a sends S, to: a transmits S, between: [0s, 1s]}
    t2: {from: "server:5001#1 receives S", to: server calls accept, between: [0s, 1s]}
    t3: {from: s1 returns from accept, to: "server:5001 leaves LISTEN", between: [0s, 1s]}
    t4: {from: client transmits S#2, to: server enters ESTAB, between: [0s, 1s]}
"""))
    events = [(t.start, t.end) for t in exp.expect.timing]
    assert [(e.host, e.verb, e.what, e.nth) for pair in events for e in pair] == [
        ("a", "sends", "S", 1), ("a", "transmits", "S", 1), ("server:5001#1", "receives", "S", 1),
        ("server", "calls", "accept", 1), ("s1", "returns", "accept", 1), ("server:5001", "leaves", "LISTEN", 1),
        ("client", "transmits", "S", 2), ("server", "enters", "ESTAB", 1)]   # one connection each: host forms allowed


def test_every_shipped_file_keeps_its_single_connection_meaning():
    """Every shipped file: steps on the connect's client#1 and the listener's first connection."""
    from harness.load import load_cells
    for path in sorted([*(REPO / "experiments").glob("*.yaml"), *(REPO / "tests" / "fixtures").glob("*.yaml")]):
        text = path.read_text()
        if "connect:" not in text or " as: " in text or "socket:" in text or "accept:" in text:
            continue                      # the new experiments of issue 13 name their sockets
        exp = load_cells(path)[0].experiment
        for step in exp.steps:
            auto = {"connect": f"{step.host}#1", "listen": f"{step.host}:{step.port}"}
            assert step.socket == auto.get(step.action, step.socket) and step.socket in (
                "client#1", "server:5001", "server:5001#1"), (path.name, step)
        if '"server:5001#1":' not in text:       # a file may judge the accepted socket's own capture (pmtu)
            assert not exp.expect.socket_packets


# --- the plan --------------------------------------------------------------------------------

def test_agent_plans_carry_the_socket_and_its_set_up(tmp_path):
    exp = load_experiment(write(tmp_path, FULL))
    agents = agent_plans(exp, {"client": "10.0.0.1", "other": "10.0.0.3", "server": "10.0.0.2"})
    b = next(s for s in agents["client"] if s.socket == "b" and s.action == "connect")
    assert (b.local_port, b.reuseaddr, b.reuseport, b.blocking, b.bind, b.address) == (40000, True, True, False,
                                                                                        "10.0.0.1", "10.0.0.2")
    assert dict(b.options) == {"TCP_USER_TIMEOUT": 2000, "SO_LINGER": 0, "TCP_NODELAY": 1, "TCP_SYNCNT": 2,
                               "SO_RCVBUF": 4096}
    assert [(s.action, s.socket) for s in agents["server"]] == [("listen", "server:5001"), ("accept", "s1"),
                                                                ("close", "server:5001#2")]
    assert type(b).from_json(json.loads(json.dumps(b.to_json()))) == b


# --- the schema says the same ------------------------------------------------------------------

def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads((REPO / "harness/schema/experiment.schema.json").read_text()))


def _doc(path: Path) -> dict:
    from harness.load.yaml_lines import load_yaml
    return json.loads(json.dumps(load_yaml(path)))


def test_the_schema_accepts_the_named_socket_forms(tmp_path):
    path = write(tmp_path, FULL, expect="""  a: {states: [SYN-SENT, ESTAB], packets: [{from: a, flags: S}], errors: [ECONNRESET], received: 1B}
  "server:5001#2": {states: [SYN-RECV]}
  timing:
    t: {from: a sends S, to: "server:5001#1 transmits SA#1", between: [0s, 1s]}
""")
    assert load_experiment(path)
    assert not [e.message for e in _validator().iter_errors(_doc(path))]


@pytest.mark.parametrize("steps, expect", [
    (LISTEN + "  - {on: server, accept: 5001}\n", "  server: {accepted: 1}\n"),
    (LISTEN + CONNECT % "wait: 1s", "  server: {accepted: 1}\n"),
    (LISTEN + "  - {on: client, wait: false}\n", "  server: {accepted: 1}\n"),
    (LISTEN + CONNECT % "options: {SO_NOSUCH: 1}", "  server: {accepted: 1}\n"),
    (LISTEN + CONNECT % "options: {TCP_SYNCNT: 200}", "  server: {accepted: 1}\n"),
    (LISTEN + CONNECT % "options: {TCP_NODELAY: 2}", "  server: {accepted: 1}\n"),
    (LISTEN + CONNECT % "bind: 70000", "  server: {accepted: 1}\n"),
    (LISTEN + CONNECT % "as: Upper", "  server: {accepted: 1}\n"),
    (LISTEN + "  - {on: server, listen: 5002, bind: 1}\n", "  server: {accepted: 1}\n"),
    # (`a: {accepted: 1}` the schema cannot tell from a host's: it may say less than the loader)
    (LISTEN + CONNECT % "as: a", "  \"server:5001#1\": {accepted: 1}\n"),
    (LISTEN + CONNECT % "as: a", "  timing:\n    t: {from: a phones S, to: a sends S, between: [0s, 1s]}\n"),
])
def test_schema_and_loader_both_refuse_bad_named_socket_forms(tmp_path, steps, expect):
    path = write(tmp_path, steps, expect)
    assert list(_validator().iter_errors(_doc(path))), "the schema accepts it"
    with pytest.raises(UserError):
        load_experiment(path)


def test_accepted_takes_a_count_a_matrix_worked_out(tmp_path):
    path = write(tmp_path, LISTEN + CONNECT % "as: a",
                 "  server: {accepted: '${1 + tcp_tw_reuse}'}\n").read_text()
    (tmp_path / "e.yaml").write_text(path + "matrix: {client: {net.ipv4.tcp_tw_reuse: [0, 2]}}\n")
    from harness.load import load_cells
    assert [c.experiment.expect.accepted for c in load_cells(tmp_path / "e.yaml")] == [{"server": 1}, {"server": 3}]
    assert not list(_validator().iter_errors(_doc(tmp_path / "e.yaml")))


# --- groups: times: N connects, socket: "c#*", per-member and per-group expectations (issue 13) --------

GROUP = LISTEN + "  - {at: 0.5s, on: client, connect: server:5001, as: c, times: 3}\n"   # line 6: c#1 ... c#3


def test_times_expands_into_n_connects_at_the_same_moment(tmp_path):
    exp = load_experiment(write(tmp_path, LISTEN + "  - {at: 0.5s, on: client, connect: server:5001, as: c, times: 3,\n"
                                "     options: {TCP_NODELAY: true}, wait: false}\n"))
    connects = exp.steps[1:]
    assert [(s.action, s.socket, s.at_s, s.index) for s in connects] == [
        ("connect", f"c#{k}", 0.5, 6) for k in (1, 2, 3)]
    assert {(s.peer, s.port, s.options, s.blocking) for s in connects} == {("server", 5001, (("TCP_NODELAY", 1),), False)}


def test_a_step_on_the_group_runs_once_per_member_and_a_member_alone(tmp_path):
    exp = load_experiment(write(tmp_path, GROUP + """  - {at: 1s, on: client, send: 10B, socket: "c#2"}
  - {at: 2s, on: client, close: true, socket: "c#*"}
  - {after: 1s, on: client, abort: true, socket: "c#*"}
"""))
    assert [(s.action, s.socket, s.at_s, s.index) for s in exp.steps[4:]] == [
        ("send", "c#2", 1.0, 7), ("close", "c#1", 2.0, 8), ("close", "c#2", 2.0, 8), ("close", "c#3", 2.0, 8),
        ("wait", "c#1", None, 9), ("wait", "c#2", None, 9), ("wait", "c#3", None, 9),
        ("abort", "c#1", None, 9), ("abort", "c#2", None, 9), ("abort", "c#3", None, 9)]


def test_a_host_with_a_times_connect_has_several_sockets_even_times_1(tmp_path):
    error = refused(tmp_path, LISTEN + "  - {at: 0.5s, on: client, connect: server:5001, as: c, times: 1}\n"
                                       "  - {at: 1s, on: client, close: true}\n")
    assert error.line == 7 and "client has several sockets (c#*)" in error.message and 'socket: "c#*"' in error.fix


def test_a_times_connect_counts_as_n_connections(tmp_path):
    error = refused(tmp_path, GROUP, "  server: {states: [LISTEN, SYN-RECV]}\n")
    assert "server has several connections (server:5001#1, server:5001#2, server:5001#3)" in error.message
    error = refused(tmp_path, GROUP, "  client: {states: [SYN-SENT]}\n")
    assert "client has several connections (c#1, c#2, c#3)" in error.message and error.fix.startswith('say which connection: "c#*"')
    exp = load_experiment(write(tmp_path, GROUP, '  "server:5001#3": {states: [SYN-RECV, ESTAB]}\n'))
    assert "server:5001#3" in exp.expect.states


BAD_GROUP_STEPS = [   # (steps, line, words)
    (LISTEN + CONNECT % "times: 3", 6, "times: needs as:"),
    (LISTEN + CONNECT % "as: c, times: 0", 6, "times: 0 is outside 1 to 1000"),
    (LISTEN + CONNECT % "as: c, times: 1001", 6, "outside 1 to 1000"),
    (LISTEN + CONNECT % "as: c, times: 2.5", 6, "not a whole number"),
    (LISTEN + CONNECT % "as: c, times: 2, bind: 40000", 6, "2 sockets cannot share one bound port"),
    (LISTEN + "  - {on: server, accept: 5001, as: s, times: 2}\n", 6, "times: does not belong on a accept step"),
    (GROUP + '  - {at: 1s, on: client, close: true, socket: "c#4"}\n', 7, "group c#* has c#1 ... c#3"),
    (GROUP + '  - {at: 1s, on: client, close: true, socket: "d#*"}\n', 7, "names no group of sockets"),
    (GROUP + '  - {at: 1s, on: client, close: true, socket: "c"}\n', 7, "group c#* has c#1 ... c#3"),
    (GROUP + '  - {at: 1s, on: server, close: true, socket: "c#*"}\n', 7, "is a group of client's sockets, not of server's"),
    (GROUP + '  - {at: 1s, on: server, close: true, socket: "c#1"}\n', 7, "is a socket of client, not of server"),
]


@pytest.mark.parametrize("steps, line, words", BAD_STEPS + BAD_GROUP_STEPS)
def test_bad_steps_name_their_line_and_a_fix(tmp_path, steps, line, words):
    error = refused(tmp_path, steps)
    assert error.line == line and words in error.message, error


def test_times_with_bind_needs_reuseport(tmp_path):
    exp = load_experiment(write(tmp_path, LISTEN + CONNECT % "as: c, times: 2, bind: 40000, reuseport: true"))
    assert [(s.socket, s.local_port, s.reuseport) for s in exp.steps[1:]] == [("c#1", 40000, True), ("c#2", 40000, True)]


def test_groups_and_handshakes_in_the_expectations(tmp_path):
    exp = load_experiment(write(tmp_path, GROUP + "  - {on: server, accept: 5001, as: s1}\n", """  "c#*": {states: [SYN-SENT, ESTAB], received: 0B, errors: [],
          handshake: {equals: 1rtt, within: 5%}}
  "c#2": {handshake: {between: [40ms, 2rtt]}, packets: [{from: "c#2", flags: S}]}
  s1: {handshake: {equals: 50ms, within: 1ms}}
  server: {accepted: 3}
  timing:
    t: {from: c#3 sends S, to: "c#3 receives SA", between: [0s, 1s]}
"""))
    e = exp.expect
    assert e.groups == {"c#*": ("c#1", "c#2", "c#3")}
    assert (e.states["c#*"], e.received["c#*"], e.errors["c#*"]) == (
        (StateExpectation("SYN-SENT"), StateExpectation("ESTAB")), 0, ())
    assert e.handshakes["c#*"] == HandshakeExpectation(TimeSpec(rtts=1.0, text="1rtt"), Tolerance(percent=5.0, text="5%"))
    assert e.handshakes["c#2"].between == (TimeSpec(0.04, text="40ms"), TimeSpec(rtts=2.0, text="2rtt"))
    assert e.handshakes["s1"] == HandshakeExpectation(TimeSpec(0.05, text="50ms"), Tolerance(0.001, text="1ms"))
    assert set(e.socket_packets) == {"c#2"} and e.timing[0].start == Event("c#3", "sends", "S", 1, "c#3 sends S")
    assert {k: e.lines[k] for k in ("c#*.states", "c#*.handshake", "c#2.handshake", "s1.handshake")} == \
        {"c#*.states": 9, "c#*.handshake": 10, "c#2.handshake": 11, "s1.handshake": 12}


BAD_GROUP_EXPECT = [   # (expect, line, words) on GROUP
    ('  "c#*": {packets: [{from: client, flags: S}]}\n', 8, "packets: under the group c#* would be one verdict"),
    ('  "c#*": {accepted: 1}\n', 8, "unknown key 'accepted' in expect.c#*"),
    ('  "d#*": {states: [ESTAB]}\n', 8, "unknown key 'd#*' in expect"),
    ('  "c#4": {states: [ESTAB]}\n', 8, "unknown key 'c#4' in expect (group c#* has c#1 ... c#3)"),
    ("  client: {handshake: {equals: 1rtt, within: 5%}}\n", 8, "handshake: goes under a socket or a group"),
    ('  "c#1": {handshake: {equals: 1rtt}}\n', 8, "the handshake of c#1 needs either equals + within, or between"),
    ('  "c#1": {handshake: {equals: 1rtt, within: 5%, between: [0s, 1s]}}\n', 8, "needs either"),
    ('  "c#1": {handshake: {between: [2rtt]}}\n', 8, "between takes two bounds"),
    ('  "c#1": {handshake: {equals: 1rtt, within: 5}}\n', 8, "within:"),
    ('  "c#1": {handshake: {from: c#1 sends S, equals: 1rtt, within: 5%}}\n', 8, "unknown key 'from'"),
    ('  "c#1": {handshake: 1rtt}\n', 8, "c#1's handshake has the wrong form"),
    ("  timing:\n    t: {from: c#* sends S, to: server receives S, between: [0s, 1s]}\n", 9,
     "an event happens on one socket, not on the group c#*"),
    ('  packets: [{from: "c#*", flags: S}]\n', 8, "packet sender 'c#*' is not a host or a socket"),
]


@pytest.mark.parametrize("steps, expect, line, words", [(TWO_CLIENTS, *row) for row in BAD_SOCKET_EXPECT]
                         + [(GROUP, *row) for row in BAD_GROUP_EXPECT])
def test_bad_expectations_are_refused(tmp_path, steps, expect, line, words):
    error = refused(tmp_path, steps, expect)
    assert error.line == line and words in error.message, error


def test_the_handshake_fix_under_a_host_names_the_builtin_timings(tmp_path):
    error = refused(tmp_path, GROUP, "  client: {handshake: {equals: 1rtt, within: 5%}}\n")
    assert "handshake_client" in error.fix and "handshake_server" in error.fix


def test_many_connections_loads_as_the_issue_writes_it():
    exp = load_experiment(REPO / "experiments" / "many_connections.yaml")
    connects = [s for s in exp.steps if s.action == "connect"]
    closes = [s for s in exp.steps if s.action == "close"]
    assert [s.socket for s in connects] == [f"c#{k}" for k in range(1, 101)] == [s.socket for s in closes]
    assert {s.at_s for s in connects} == {0.5} and {s.at_s for s in closes} == {2.0}
    assert exp.expect.groups["c#*"] == tuple(s.socket for s in connects) and exp.expect.accepted == {"server": 100}
    assert [b.rtts for b in exp.expect.handshakes["c#*"].between] == [1.0, 1.3]
    assert not [e.message for e in _validator().iter_errors(_doc(REPO / "experiments" / "many_connections.yaml"))]


def test_the_schema_takes_groups_and_handshakes(tmp_path):
    path = write(tmp_path, GROUP + '  - {at: 1s, on: client, close: true, socket: "c#*"}\n',
                 '  "c#*": {states: [SYN-SENT], handshake: {equals: 1rtt, within: 5%}}\n'
                 '  "c#1": {handshake: {between: [0s, 2rtt]}, packets: [{from: "c#1", flags: S}]}\n')
    assert load_experiment(path)
    assert not [e.message for e in _validator().iter_errors(_doc(path))]


@pytest.mark.parametrize("steps, expect", [
    (LISTEN + CONNECT % "times: 2", "  server: {accepted: 2}\n"),
    (LISTEN + CONNECT % "as: c, times: 0", "  server: {accepted: 2}\n"),
    (LISTEN + CONNECT % "as: c, times: 1001", "  server: {accepted: 2}\n"),
    (LISTEN + "  - {on: server, listen: 5002, times: 2}\n", "  server: {accepted: 1}\n"),
    (GROUP, '  "c#*": {packets: [{from: client, flags: S}]}\n'),
    (GROUP, '  "c#*": {handshake: {equals: 1rtt}}\n'),
    (GROUP, '  "c#1": {handshake: {equals: 1rtt, within: 5%, from: c#1 sends S}}\n'),
])
def test_schema_and_loader_both_refuse_bad_group_forms(tmp_path, steps, expect):
    path = write(tmp_path, steps, expect)
    assert list(_validator().iter_errors(_doc(path))), "the schema accepts it"
    with pytest.raises(UserError):
        load_experiment(path)


def test_a_connection_an_accept_step_names_is_refused_under_its_automatic_name(tmp_path):
    """One socket under two names would run in two lanes, in no order (a close in one would not
    stop a read blocked in the other): the accept step's name is the one to use."""
    err = refused(tmp_path, LISTEN + """  - {at: 0.5s, on: client, connect: server:5001, as: a}
  - {on: server, accept: 5001, as: s1}
  - {on: server, recv: all, socket: s1}
  - {at: 1s, on: server, close: true, socket: "server:5001#1"}
""")
    assert err.line == 9 and "s1" in err.message and "socket: s1" in err.fix
    # a connection no accept step takes keeps its automatic name
    exp = load_experiment(write(tmp_path, LISTEN + """  - {at: 0.5s, on: client, connect: server:5001, as: a}
  - {at: 0.6s, on: client, connect: server:5001, as: b}
  - {on: server, accept: 5001, as: s1}
  - {at: 1s, on: server, close: true, socket: "server:5001#2"}
""", expect="  server: {accepted: 2}\n"))
    assert exp.steps[-1].socket == "server:5001#2"
