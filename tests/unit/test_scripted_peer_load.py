"""Issue 14's experiments (the network as a scripted peer) load as written: each injection, length,
count and per-cell figure reaches the model as the file means it (the run itself is
tests/integration/test_scripted_peer.py)."""
from pathlib import Path

import pytest

from harness.load import load_cells
from harness.model import ConnTerm, LengthSpec

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
SCRIPTED_PEER = ["time_wait_assassination", "challenge_ack", "close_with_unread_data", "fin_behind_data",
                 "data_fin_retransmit", "icmp_unreachable_in_syn_sent"]


def cells(name: str) -> dict:
    """label -> experiment, for every cell of the file."""
    return {cell.label: cell.experiment for cell in load_cells(EXPERIMENTS / f"{name}.yaml")}


def counts(experiment, host: str) -> dict[str, tuple[int, int | None]]:
    return {c.name: (c.low, c.high) for c in experiment.expect.counters[host]}


def injects(experiment) -> list:
    return [step.inject for step in experiment.network if step.action == "inject"]


@pytest.mark.parametrize("name", SCRIPTED_PEER)
def test_each_loads_with_an_about_that_names_the_kernel_function(name):
    for experiment in cells(name).values():
        assert experiment.name == name and experiment.topology.name == "two_hosts"
        assert "tcp_" in experiment.about and len(experiment.about) > 400


def test_time_wait_assassination_sweeps_rfc1337_and_expects_a_short_or_a_full_time_wait():
    by_cell = cells("time_wait_assassination")
    assert sorted(by_cell) == ["tcp_rfc1337=0@client", "tcp_rfc1337=1@client"]
    for label, experiment in by_cell.items():
        rfc1337 = int(label.split("=")[1][0])
        assert experiment.sysctls["client"]["net.ipv4.tcp_rfc1337"] == str(rfc1337)
        assert counts(experiment, "client")["TcpExtTW"] == (3, 3)        # counted as made, in both cells
        a_time_wait = next(t for t in experiment.expect.timing if t.name == "a_time_wait")
        low, high = (spec.seconds for spec in a_time_wait.between)
        assert (low, high) == ((60.0, 62.1) if rfc1337 else (0.40, 0.45))
    a, b, c = injects(by_cell["tcp_rfc1337=0@client"])
    assert (a.socket, a.flags, a.seq) == ("a", "R", None)            # seq: the default, a's rcv_nxt
    assert (b.socket, b.flags) == ("b", "RA")
    assert c.seq == ConnTerm("c", "rcv_nxt", 1, "c.rcv_nxt + 1")


def test_challenge_ack_expects_the_rate_limit_only_with_tcp_invalid_ratelimit_500():
    by_cell = cells("challenge_ack")
    limited, unlimited = by_cell["tcp_invalid_ratelimit=500@server"], by_cell["tcp_invalid_ratelimit=0@server"]
    assert counts(limited, "server")["TcpExtTCPChallengeACK"] == (2, 2)
    assert counts(limited, "server")["TcpExtTCPACKSkippedChallenge"] == (2, 2)
    assert counts(unlimited, "server")["TcpExtTCPChallengeACK"] == (4, 4)
    assert counts(unlimited, "server")["TcpExtTCPACKSkippedChallenge"] == (0, 0)
    flags = [(i.flags, i.seq.text if i.seq else None, i.window) for i in injects(limited)]
    assert flags == [("S", "a.snd_nxt + 1000", None), ("S", "a.isn", 2000), ("S", "a.isn", 3000), ("R", "a.snd_nxt + 1", None),
                     ("R", None, None)]
    # the challenge ACK is told from a data segment by len: 0
    assert [p.length for p in limited.expect.socket_packets["s1"] if p.flags == "A"] == [LengthSpec(0, 0, "0")] * 2


def test_the_close_experiments_pin_lengths_and_counters():
    unread = cells("close_with_unread_data")[""]
    assert counts(unread, "server")["TcpExtTCPAbortOnClose"] == (1, 1)
    rst = unread.expect.socket_packets["s1"][-1]
    assert (rst.flags, str(rst.seq), str(rst.ack)) == ("RA", "y+1", "x+1001")
    fin = cells("fin_behind_data")[""]
    assert [(p.flags, p.length.low) for s in ("a", "b") for p in fin.expect.socket_packets[s] if p.flags == "FPA"] == \
        [("FPA", 1000), ("FPA", 2000)]
    retransmit = cells("data_fin_retransmit")[""]
    assert [p.length.low for p in retransmit.expect.packets if p.flags == "FPA"] == [1000, 1000]
    assert counts(retransmit, "client")["TcpExtTCPAbortOnClose"] == (0, 0)


def test_icmp_unreachable_sends_three_codes_into_syn_sent():
    experiment = cells("icmp_unreachable_in_syn_sent")[""]
    assert [(i.socket, i.icmp) for i in injects(experiment)] == [
        ("a", "host-unreachable"), ("b", "net-unreachable"), ("c", "port-unreachable")]
    assert experiment.expect.errors == {"a": ("EHOSTUNREACH",), "b": ("ENETUNREACH",), "c": ("ECONNREFUSED",)}
