"""Retransmissions and resets as timing events (`client retransmits S#1`, `client resets`,
`server is reset`), found the way the judge finds them, on runs recorded in the VM with the kernel
trace (6.1 and 6.12, virtual clock; tests/fixtures/trace_events/<experiment>_<kernel>: steps,
samples, the four host pcaps and trace/ of /tmp/r18a's runs)."""
import dataclasses
import json
from pathlib import Path

import pytest

from harness.analyse.connection import observe
from harness.analyse.events import Moment, find_moment
from harness.errors import UserError
from harness.judge import judge_all
from harness.judge.timing import judge_timing
from harness.load import load_experiment
from harness.load.expectations import parse_event
from harness.load.experiment import with_facts
from harness.load.facts import RunFacts
from harness.load.matrix import load_cells
from harness.load.sockets import socket_table
from harness.load.units import parse_time_spec
from harness.model import StepRecord

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "trace_events"
HOSTS = {"client": "client-eth0", "server": "server-eth0"}
IPS = {"client": "10.0.0.1", "server": "10.0.0.2"}
KERNELS = {"6.1": "6.1.0-57-amd64", "6.12": "6.12.118+deb12-amd64"}
LINEAR = {"6.1": None, "6.12": "4"}          # net.ipv4.tcp_syn_linear_timeouts as read back (6.1 lacks it)
SYN_RETRANSMISSIONS = {"6.1": 3, "6.12": 7}  # tcp_syn_retries = 3; 6.12 adds the 4 linear ones
RTT_S = 0.1                                  # two_hosts: 25 ms each way on both links
NEAR_S = 1e-5                                # the trace's stamp and the kernel capture's differ by ~5 µs


def observed(name: str):
    run = FIXTURES / name
    steps = {h: [StepRecord.from_json(json.loads(line)) for line in (run / "steps" / f"{h}.jsonl").read_text().splitlines()]
             for h in HOSTS}
    return observe(run, steps, HOSTS, IPS)


def experiment(name: str, kernel: str):
    """A shipped experiment as the runner judges it on that kernel (its let: values worked out)."""
    (cell,) = load_cells(REPO / "experiments" / f"{name}.yaml")
    facts = RunFacts(KERNELS[kernel], {"client": {"net.ipv4.tcp_syn_linear_timeouts": LINEAR[kernel],
                                                  "net.ipv4.tcp_syn_retries": "3"}})
    return with_facts(cell.experiment, facts)


def event(text: str, name: str = "abort"):
    """`text` parsed as the loader parses a timing's from:/to: in experiments/<name>.yaml."""
    exp = load_experiment(REPO / "experiments" / f"{name}.yaml")
    hosts = exp.topology.hosts
    return parse_event(text, hosts, Path(f"{name}.yaml"), 7, socket_table(exp.steps, hosts))


def moment(obs, text: str, name: str = "abort") -> Moment | str:
    return find_moment(event(text, name), obs)


def sent(obs, host: str, flags: str) -> list[float]:
    """When the host's TCP sent segments with exactly these flags (its kernel-time capture)."""
    return [s.t for s in obs.kernel_segments[host] if s.flags == flags]


# --- the loader ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text, verb, what, nth", [
    ("client retransmits S#1", "retransmits", "S", 1),
    ("client retransmits S", "retransmits", "S", 1),
    ("server:5001#1 retransmits SA#2", "retransmits", "SA", 2),
    ("client retransmits FA", "retransmits", "FA", 1),
    ("client resets", "resets", "R", 1),
    ("client#1 resets#2", "resets", "R", 2),
    ("server is reset", "is reset", "R", 1),
])
def test_the_new_verbs_parse(text, verb, what, nth):
    parsed = event(text)
    assert (parsed.verb, parsed.what, parsed.nth, parsed.text) == (verb, what, nth, text)


@pytest.mark.parametrize("text, says", [
    ("client retransmits R", "never retransmits a RST"),
    ("client retransmits S#0", "#0 is not between"),
    ("client resets#0", "#0 is not between"),
    ("client retransmits X", "not an event this tool can observe"),
    ("client retransmits", "not an event this tool can observe"),
    ("client is reset R", "not an event this tool can observe"),
    ("client gets reset", "not an event this tool can observe"),
    ("server:5001 retransmits SA", "is a listener"),
    ("server:5001 resets", "is a listener"),
])
def test_the_loader_refuses_with_file_and_line(text, says):
    with pytest.raises(UserError) as refused:
        event(text)
    assert says in str(refused.value) and "abort.yaml:7" in str(refused.value)


def test_the_schema_names_the_verbs():
    schema = json.loads((REPO / "harness" / "schema" / "experiment.schema.json").read_text())
    (pattern,) = [alt["pattern"] for alt in schema["$defs"]["event"]["anyOf"] if "pattern" in alt]
    assert "|retransmits)" in pattern and "(resets|is reset)" in pattern


# --- retransmissions ----------------------------------------------------------------------------

@pytest.mark.parametrize("kernel", ["6.1", "6.12"])
def test_each_syn_retransmission_is_a_traced_one(kernel):
    obs = observed(f"syn_loss_{kernel}")
    syns, count = sent(obs, "client", "S"), SYN_RETRANSMISSIONS[kernel]
    assert len(syns) == count + 1
    for n in range(1, count + 1):
        found = moment(obs, f"client retransmits S#{n}", "syn_loss")
        assert isinstance(found, Moment), found
        assert found.source == "kernel trace (tcp_retransmit_skb)" and found.uncertainty_s == 0
        assert 0 <= found.t - syns[n] < NEAR_S          # the tracepoint fires right after the send
    assert moment(obs, f"client retransmits S#{count + 1}", "syn_loss") == \
        f"the kernel trace shows {count} retransmission(s) of S by client"
    # the socket's own name finds the same; flags must be carried, four-tuples must match
    assert moment(obs, "client#1 retransmits S#2", "syn_loss") == moment(obs, "client retransmits S#2", "syn_loss")
    assert moment(obs, "client retransmits SA", "syn_loss") == "the kernel trace shows 0 retransmission(s) of SA by client"
    assert moment(obs, "server retransmits S", "syn_loss") == "the kernel trace shows 0 retransmission(s) of S by server"


@pytest.mark.parametrize("kernel, times", [("6.1", 1), ("6.12", 2)])
def test_a_request_socket_retransmits_its_synack(kernel, times):
    """6.1 answers the client's retransmitted SYN with the SYN+ACK again; 6.12 also resends it on
    the request timer just before: tcp_retransmit_synack both times."""
    obs = observed(f"synack_loss_{kernel}")
    synacks = sent(obs, "server", "SA")
    assert len(synacks) == times + 1
    for n in range(1, times + 1):
        found = moment(obs, f"server retransmits SA#{n}", "synack_loss")
        assert found.source == "kernel trace (tcp_retransmit_synack)"
        assert 0 <= found.t - synacks[n] < NEAR_S
        assert moment(obs, f"server:5001#1 retransmits SA#{n}", "synack_loss") == found
    assert moment(obs, f"server retransmits SA#{times + 1}", "synack_loss").startswith(f"the kernel trace shows {times} ")
    client = moment(obs, "client retransmits S", "synack_loss")
    assert client.source == "kernel trace (tcp_retransmit_skb)" and 0 <= client.t - sent(obs, "client", "S")[1] < NEAR_S


def test_a_sockets_events_are_those_of_its_own_incarnation():
    """Several incarnations may share a four-tuple: a socket counts only the traced events whose
    segment is one of its own. Here the accepted socket is made to own only the first SYN+ACK (as
    if the retransmission had been another incarnation's): the host still sees it, the socket not."""
    obs = observed("synack_loss_6.12")
    view = obs.sockets["server:5001#1"]
    first_only = dataclasses.replace(view, kernel_segments=view.kernel_segments[:1])
    obs.sockets = {name: (first_only if v is view else v) for name, v in obs.sockets.items()}
    assert moment(obs, "server:5001#1 retransmits SA", "synack_loss") == \
        "the kernel trace shows 0 retransmission(s) of SA by server:5001#1"
    assert isinstance(moment(obs, "server retransmits SA#2", "synack_loss"), Moment)


@pytest.mark.parametrize("offset_s", [-0.001, 0.001])
def test_the_segment_is_the_last_one_sent_before_the_tracepoint(offset_s):
    """tcp_retransmit_skb fires right after the send in the same call: another segment 1 ms before
    it (an earlier send) or 1 ms after (the next send) is not the one retransmitted."""
    obs = observed("syn_loss_6.1")
    syn = sent(obs, "client", "S")[1]
    (first,) = [s for s in obs.kernel_segments["client"] if s.t == syn]
    other = dataclasses.replace(first, t=syn + offset_s, flags="FA", seq=first.seq + 1)
    obs.kernel_segments["client"] = sorted(obs.kernel_segments["client"] + [other], key=lambda s: s.t)
    found = moment(obs, "client retransmits S#1", "syn_loss")
    assert found.source == "kernel trace (tcp_retransmit_skb)" and 0 <= found.t - syn < NEAR_S
    assert moment(obs, "client retransmits F", "syn_loss") == "the kernel trace shows 0 retransmission(s) of F by client"


@pytest.mark.parametrize("kernel", ["6.1", "6.12"])
def test_without_a_trace_the_capture_tells_retransmissions(kernel):
    """Old runs and --observer samples: a send of sequence space already sent (the ladder's rule)."""
    obs = dataclasses.replace(observed(f"syn_loss_{kernel}"), trace=None)
    syns, count = sent(obs, "client", "S"), SYN_RETRANSMISSIONS[kernel]
    found = [moment(obs, f"client retransmits S#{n}", "syn_loss") for n in range(1, count + 1)]
    assert [m.t for m in found] == syns[1:]
    assert found[0].source == "kernel-time capture at client: a resend of sequence space already sent, no kernel trace"
    assert moment(obs, f"client retransmits S#{count + 1}", "syn_loss") == \
        f"client's kernel-time capture (no kernel trace) shows {count} retransmission(s) of S by client"
    synack = moment(dataclasses.replace(observed(f"synack_loss_{kernel}"), trace=None), "server retransmits SA", "synack_loss")
    assert synack.source.startswith("kernel-time capture at server")


def test_without_a_kernel_capture_the_interface_capture_tells_them():
    obs = dataclasses.replace(observed("syn_loss_6.1"), trace=None, kernel_segments={})
    found = moment(obs, "client retransmits S#3", "syn_loss")
    wire = [s.t for s in obs.segments["client"] if s.flags == "S"]
    assert found.t == wire[3] and found.source.startswith("capture at client's interface")


def test_a_trace_without_the_tracepoint_is_not_read_as_none_seen():
    obs = observed("syn_loss_6.12")
    obs.trace = dataclasses.replace(obs.trace, enabled=tuple(e for e in obs.trace.enabled if "retransmit_skb" not in e))
    found = moment(obs, "client retransmits S#7", "syn_loss")
    assert found.source == ("kernel-time capture at client: a resend of sequence space already sent, "
                            "the kernel trace has no tcp_retransmit_skb")


# --- resets -------------------------------------------------------------------------------------

@pytest.mark.parametrize("kernel", ["6.1", "6.12"])
def test_an_abort_resets_and_the_peer_is_reset(kernel):
    obs = observed(f"abort_{kernel}")
    rst = moment(obs, "client resets")
    assert rst.source == "kernel trace (tcp_send_reset)" and 0 <= rst.t - sent(obs, "client", "RA")[0] < NEAR_S
    taken = moment(obs, "server is reset")
    assert taken.source == "kernel trace (tcp_receive_reset)"
    assert taken.t - rst.t == pytest.approx(RTT_S / 2, abs=0.0002)
    assert moment(obs, "client#1 resets") == rst and moment(obs, "server:5001#1 is reset") == taken
    assert moment(obs, "client is reset") == "the kernel trace shows 0 reset(s) taken by client"
    assert moment(obs, "server resets") == "the kernel trace and kernel-time capture show 0 reset(s) sent by server"
    assert moment(obs, "client resets#2") == "the kernel trace and kernel-time capture show 1 reset(s) sent by client"


def test_a_sockets_resets_are_those_of_its_own_incarnation():
    """A reset counts for a socket when its RST is one of the socket's own segments (sent: its
    kernel-time capture; taken: its interface capture); made to own none, it has none, while the
    host (the whole four-tuple) still has them."""
    obs = observed("abort_6.1")
    client, server = obs.sockets["client#1"], obs.sockets["server:5001#1"]
    cut = {id(client): dataclasses.replace(client, kernel_segments=[s for s in client.kernel_segments if "R" not in s.flags]),
           id(server): dataclasses.replace(server, segments=[s for s in server.segments if "R" not in s.flags])}
    obs.sockets = {name: cut.get(id(v), v) for name, v in obs.sockets.items()}
    assert moment(obs, "client#1 resets") == "the kernel trace and kernel-time capture show 0 reset(s) sent by client#1"
    assert moment(obs, "server:5001#1 is reset") == "the kernel trace shows 0 reset(s) taken by server:5001#1"
    assert isinstance(moment(obs, "client resets"), Moment) and isinstance(moment(obs, "server is reset"), Moment)


def test_another_peers_events_at_the_same_address_are_not_the_connections():
    obs = observed("abort_6.12")
    (taken,) = obs.trace.of("reset-received", obs.server)
    obs.trace = dataclasses.replace(obs.trace, events=[dataclasses.replace(taken, peer=("10.0.0.3", taken.peer[1]))])
    assert moment(obs, "server is reset") == "the kernel trace shows 0 reset(s) taken by server"


def test_the_harness_own_loopback_resets_are_not_the_connections():
    """The trace also holds resets on 127.0.0.1 (the harness's own probes): other four-tuples."""
    obs = observed("syn_loss_6.12")
    assert any(e.local[0] == "127.0.0.1" for e in obs.trace.events if e.kind.startswith("reset"))
    assert moment(obs, "client is reset", "syn_loss") == "the kernel trace shows 0 reset(s) taken by client"


def test_a_reset_the_trace_does_not_show_comes_from_the_kernel_capture():
    """6.1's tcp_send_reset shows only resets a full socket sends (not a RST for no socket): a RST
    the subject sent that no event pairs with is still its reset, from the kernel-time capture."""
    obs = observed("abort_6.1")
    obs.trace = dataclasses.replace(obs.trace, events=[e for e in obs.trace.events if e.kind != "reset-sent"])
    rst = moment(obs, "client resets")
    assert rst.t == sent(obs, "client", "RA")[0]
    assert rst.source == "kernel-time capture at client (a reset the kernel trace does not show)"


def test_without_a_trace_resets_come_from_the_captures():
    obs = dataclasses.replace(observed("abort_6.12"), trace=None)
    assert moment(obs, "client resets").source == "kernel-time capture at client (no kernel trace)"
    arrived = [s.t for s in obs.segments["server"] if "R" in s.flags]
    taken = moment(obs, "server is reset")
    assert taken.t == arrived[0] and "no kernel trace" in taken.source


# --- judged as the runner judges ----------------------------------------------------------------

def by_name(verdicts) -> dict:
    return {v.name.split(" (", 1)[0]: v for v in verdicts}


@pytest.mark.parametrize("name, kernel, names", [
    ("syn_loss", "6.1", ("first_retransmission", "last_retransmission")),
    ("syn_loss", "6.12", ("first_retransmission", "last_retransmission")),
    ("abort", "6.1", ("rst_sent_at_once", "rst_taken")),
    ("abort", "6.12", ("rst_sent_at_once", "rst_taken")),
])
def test_the_shipped_expectations_pass_on_both_kernels(name, kernel, names):
    verdicts = by_name(judge_all(experiment(name, kernel).expect, observed(f"{name}_{kernel}"), RTT_S))
    for timing in names:
        assert verdicts[timing].passed, verdicts[timing]


@pytest.mark.parametrize("name, kernel, timing, wrong", [
    # the first SYN retransmission 2 s after the SYN (a textbook 3 s RTO would be the same mistake)
    ("syn_loss", "6.1", "first_retransmission", ("2s", "2.04s")),
    # 6.12's last wait is 4 s, not the 1 s of its linear ones
    ("syn_loss", "6.12", "last_retransmission", ("1s", "1.065s")),
    # the RST is taken half an RTT later, not at once
    ("abort", "6.1", "rst_taken", ("0s", "10ms")),
    ("abort", "6.12", "rst_sent_at_once", ("40ms", "60ms")),
])
def test_they_fail_when_linux_is_said_to_behave_otherwise(name, kernel, timing, wrong):
    (exp,) = [t for t in experiment(name, kernel).expect.timing if t.name == timing]
    changed = dataclasses.replace(exp, between=tuple(parse_time_spec(w) for w in wrong))
    verdict = judge_timing(changed, observed(f"{name}_{kernel}"), RTT_S)
    assert not verdict.passed and verdict.value is not None


def test_an_event_not_observed_says_so_in_the_verdict():
    (exp,) = [t for t in experiment("synack_loss", "6.1").expect.timing if t.name == "synack_again"]
    asked = dataclasses.replace(exp, end=event("server retransmits SA#2", "synack_loss"))
    verdict = judge_timing(asked, observed("synack_loss_6.1"), RTT_S)
    assert not verdict.passed
    assert verdict.observed == "not observed: the kernel trace shows 1 retransmission(s) of SA by server"


def test_a_verdict_read_from_the_captures_says_so():
    (exp,) = [t for t in experiment("abort", "6.1").expect.timing if t.name == "rst_taken"]
    traced = judge_timing(exp, observed("abort_6.1"), RTT_S)
    assert traced.passed and traced.observed == "50.0 ms"
    untraced = judge_timing(exp, dataclasses.replace(observed("abort_6.1"), trace=None), RTT_S)
    assert untraced.passed and untraced.observed == (
        "50.0 ms (client resets: kernel-time capture at client (no kernel trace); "
        "server is reset: capture at server (no kernel trace: a RST that arrived, taken or not))")
