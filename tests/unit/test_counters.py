"""counters: and tcp_info: end to end on recorded data: the MIB files of the 6.1 VM kernel and of
this host's 6.18, and a VM run of tests/fixtures/counters_syn_retrans.yaml (two SYNs dropped)
with its step logs carrying tcp_info."""
import json
import socket
import struct
from dataclasses import replace
from pathlib import Path

import pytest

from harness.analyse.connection import observe
from harness.errors import UserError
from harness.judge import judge_all
from harness.judge.counters import judge_counter, moment
from harness.load import load_experiment
from harness.model import TCP_INFO_LAYOUT, TCP_INFO_AT_END, CountExpectation, StepRecord
from harness.record.counters import counters_result, deltas, parse_mib, parse_tcp_info, read_tcp_info

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
RUN = FIXTURES / "counters_syn_retrans_vm"          # a VM run (kernel 6.1) of counters_syn_retrans.yaml
HOST_618 = FIXTURES / "counters_host_6.18"          # /proc/net/{netstat,snmp} of this host's 6.18
HOSTS = {"client": "client-eth0", "server": "server-eth0"}
IPS = {"client": "10.0.0.1", "server": "10.0.0.2"}


def mib(folder: Path, prefix: str = "") -> dict[str, int]:
    return {**parse_mib((folder / f"{prefix}netstat").read_text()), **parse_mib((folder / f"{prefix}snmp").read_text())}


def snap(when: str, t: float) -> dict:
    """A snapshot as record.counters.snapshot makes it, from the run's counters/<host>.<when>.<file>."""
    return {"t": t, "kernel": "6.1.0-57-amd64",
            "texts": {h: {n: (RUN / "counters" / f"{h}.{when}.{n}").read_text() for n in ("netstat", "snmp")} for h in HOSTS}}


@pytest.fixture(scope="module")
def counters() -> dict:
    return counters_result(snap("before", 99.0), snap("after", 106.0), 100.0)


@pytest.fixture(scope="module")
def run():
    experiment = load_experiment(FIXTURES / "counters_syn_retrans.yaml")
    steps = {h: [StepRecord.from_json(json.loads(line)) for line in (RUN / "steps" / f"{h}.jsonl").read_text().splitlines()]
             for h in HOSTS}
    t0 = json.loads((RUN / "counters.json").read_text())["t0"]      # result.json's counters
    return experiment, observe(RUN, steps, HOSTS, IPS), t0


# --- parsing the MIB files -----------------------------------------------------------------

def test_both_kernels_files_parse_into_nstat_names():
    for folder, prefix in ((HOST_618, ""), (RUN / "counters", "client.before.")):
        counters = mib(folder, prefix)
        assert {"TcpExtTCPTimeouts", "TcpExtTCPChallengeACK", "TcpExtPAWSEstab", "TcpRetransSegs", "TcpActiveOpens",
                "IpExtInOctets", "IpForwarding", "IcmpInErrors", "UdpInDatagrams"} <= set(counters)
        assert counters["TcpMaxConn"] == -1        # the one negative field: parsed, not refused
        lines = (folder / f"{prefix}netstat").read_text().splitlines()
        assert len([n for n in counters if n.startswith("TcpExt")]) == len(lines[0].split()) - 1


def test_the_kernels_differ_in_what_they_count():
    """6.1 has no TcpExtPAWSOldAck (added later); 6.18 has it: a name is only known at judge time."""
    assert "TcpExtPAWSOldAck" in mib(HOST_618) and "TcpExtPAWSOldAck" not in mib(RUN / "counters", "client.before.")


def test_out_of_step_lines_are_refused():
    with pytest.raises(ValueError, match="out of step"):
        parse_mib("TcpExt: A B\nIpExt: 1 2\n")


def test_deltas_over_the_recorded_run(counters):
    client, server = counters["deltas"]["client"], counters["deltas"]["server"]
    assert (client["TcpExtTCPSynRetrans"], client["TcpRetransSegs"], client["TcpExtTCPTimeouts"]) == (2, 2, 2)
    assert (server["TcpPassiveOpens"], server["TcpRetransSegs"]) == (1, 0)
    # the agent's throw-away loopback connect before ready is in the first snapshot, not the delta
    assert counters["before"]["hosts"]["client"]["TcpActiveOpens"] == 1 and client["TcpActiveOpens"] == 1
    assert deltas({"a": 1, "b": 5}, {"a": 4, "c": 1}) == {"a": 3}
    # IcmpMsg lists a type only once counted (6.1's client: InType0 InType8 OutType0 OutType8)
    assert deltas({"IcmpMsgInType0": 6}, {"IcmpMsgInType0": 6, "IcmpMsgInType3": 2}) == {"IcmpMsgInType0": 0, "IcmpMsgInType3": 2}
    assert (counters["before"]["at_s"], counters["after"]["at_s"]) == (-1.0, 6.0)


# --- judging counters ----------------------------------------------------------------------

def count(name: str, low: int, high: int | None, text: str) -> CountExpectation:
    return CountExpectation(name, low, high, text)


def test_a_counter_passes_and_fails_on_its_delta(counters):
    ok = judge_counter("client", count("TcpExtTCPSynRetrans", 2, 2, "2"), counters)
    assert ok.passed and ok.observed.startswith("2 (0 before t0 → 2 after the timeline, at +6.000 s)")
    assert not judge_counter("client", count("TcpExtTCPSynRetrans", 3, None, ">=3"), counters).passed
    assert not judge_counter("server", count("TcpRetransSegs", 1, 3, "1-3"), counters).passed


def test_a_counter_the_kernel_lacks_fails_saying_so(counters):
    v = judge_counter("server", count("TcpExtPAWSOldAck", 0, 0, "0"), counters)
    assert not v.passed and "kernel 6.1.0-57-amd64 has no counter TcpExtPAWSOldAck" in v.observed
    assert not judge_counter("server", count("TcpRetransSegs", 0, 0, "0"), None).passed   # no snapshots: never a pass


def test_an_icmp_type_never_seen_is_zero_not_unknown(counters):
    assert "IcmpMsgInType3" not in counters["after"]["hosts"]["client"]
    zero = judge_counter("client", count("IcmpMsgInType3", 0, 0, "0"), counters)
    assert zero.passed and zero.observed.startswith("0 (0 before t0 → 0 after")
    assert not judge_counter("client", count("IcmpMsgInType3", 1, None, ">=1"), counters).passed


# --- tcp_info ------------------------------------------------------------------------------

def test_tcp_info_is_parsed_by_the_length_the_kernel_returns():
    values = [i % 200 for i in range(len(TCP_INFO_LAYOUT))]
    values[0], values[5], values[6], values[7] = 1, 1 | 2 | 4, 7 | (9 << 4), 1 | (2 << 1)    # ESTAB, options, wscale, flags
    raw = struct.pack("=" + "".join(c for _, c, _ in TCP_INFO_LAYOUT), *values)
    full = parse_tcp_info(raw + b"\0" * 48)           # a newer kernel's longer struct: the known part
    assert len(raw) == 232 and full["state"] == "ESTAB" and full["options"] == ["ts", "sack", "wscale"]
    assert (full["snd_wscale"], full["rcv_wscale"], full["delivery_rate_app_limited"], full["fastopen_client_fail"]) == (7, 9, 1, 2)
    assert full["snd_wnd"] == values[-1] and full["total_retrans"] == values[31]
    old = parse_tcp_info(raw[:104])                    # a 4.x kernel's struct ended at total_retrans
    assert old["total_retrans"] == values[31] and "pacing_rate" not in old and "snd_wnd" not in old


def test_tcp_info_of_a_real_socket():
    """This kernel's own struct, on loopback: ESTAB with timestamps, SACK and window scaling."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    with server, socket.create_connection(server.getsockname()) as client:
        conn, _ = server.accept()
        with conn:
            client.sendall(b"x" * 100)
            conn.recv(100)
            info = read_tcp_info(client)
    assert info["state"] == "ESTAB" and set(info["options"]) >= {"ts", "sack", "wscale"} and info["snd_mss"] > 0
    assert read_tcp_info(client) is None              # closed: nothing to ask


def test_step_records_carry_tcp_info_through_json():
    record = StepRecord("send", 1.0, 2.0, index=3, socket="a", tcp_info={"total_retrans": 2, "options": ["ts"]})
    assert StepRecord.from_json(json.loads(json.dumps(record.to_json()))) == record
    assert "tcp_info" not in StepRecord("send", 1.0).to_json()
    assert StepRecord(TCP_INFO_AT_END, 1.0).snapshot and not record.snapshot


def by_name(verdicts) -> dict:
    return {v.name: v for v in verdicts}


def test_the_recorded_run_passes_as_written(run, counters):
    experiment, obs, t0 = run
    verdicts = by_name(judge_all(experiment.expect, obs, 0.1, counters, t0))
    assert all(v.passed for v in verdicts.values()), [v for v in verdicts.values() if not v.passed]
    retrans = verdicts["a tcp_info.total_retrans"]
    assert retrans.observed == "2 (at the run's end at +6.000 s)" and retrans.line == 28
    assert verdicts["client TcpExtTCPTimeouts"].line == 23


def test_tcp_info_fails_on_another_behaviour(run, counters):
    experiment, obs, t0 = run
    other = {"a": (count("total_retrans", 1, 1, "1"), count("options", 3, 3, "[ts, sack]"),
                   count("rto", 0, 199999, "<200ms"), count("snd_wscale", 7, 7, "7")),
             "b": (count("bytes_received", 999, 999, "999"),), "nobody": (count("lost", 0, 0, "0"),)}
    verdicts = judge_all(replace(experiment.expect, tcp_info=other, counters={}), obs, 0.1, counters, t0)
    got = {v.name: v for v in verdicts if "tcp_info" in v.name}
    assert not any(v.passed for v in got.values()), got
    assert got["a tcp_info.options"].observed.startswith("[ts, sack, wscale]")
    assert got["a tcp_info.rto"].observed.startswith("304000 µs (304 ms)")
    assert got["nobody tcp_info.lost"].observed == "no socket named nobody was made"


def test_the_last_snapshot_is_judged_and_its_moment_named(run):
    _, obs, t0 = run
    a = obs.sockets["a"]
    connect = next(e for e in a.steps if e.action == "connect")
    assert connect.tcp_info["total_retrans"] == 2 and connect.tcp_info["bytes_acked"] == 1      # after the handshake
    assert moment(connect, t0).startswith("after connect (line 17) at +3.6")
    assert moment(replace(connect, action="close"), t0).startswith("just before close at +0.500 s")


# --- loading -------------------------------------------------------------------------------

def load(tmp_path: Path, expect: str) -> object:
    path = tmp_path / "x.yaml"
    path.write_text("name: x\ntopology: two_hosts_plain\nduration: 2s\nsteps:\n"
                    "  - {at: 0s, on: server, listen: 5001}\n"
                    "  - {at: 0.5s, on: client, connect: server:5001, as: a}\n"
                    "  - {at: 0.6s, on: client, connect: server:5001, as: c, times: 2}\n"
                    f"expect:\n{expect}")
    (tmp_path / "two_hosts_plain.yaml").write_text((REPO / "topologies" / "two_hosts_plain.yaml").read_text())
    path.write_text(path.read_text().replace("two_hosts_plain", "two_hosts_plain.yaml", 1))
    return load_experiment(path).expect


def test_counts_and_durations_load(tmp_path):
    expect = load(tmp_path, '  server: {counters: {TcpExtTCPChallengeACK: 1, TcpExtPAWSEstab: "<3", IcmpMsgInType3: "1-3"}}\n'
                            '  a: {tcp_info: {rto: ">=200ms", rtt: "90ms-110ms", backoff: ">0", options: []}}\n'
                            '  "c#*": {tcp_info: {total_retrans: 0}}\n')
    assert [(c.name, c.low, c.high) for c in expect.counters["server"]] == [
        ("TcpExtTCPChallengeACK", 1, 1), ("TcpExtPAWSEstab", 0, 2), ("IcmpMsgInType3", 1, 3)]
    assert [(c.name, c.low, c.high) for c in expect.tcp_info["a"]] == [
        ("rto", 200000, None), ("rtt", 90000, 110000), ("backoff", 1, None), ("options", 0, 0)]
    assert expect.groups["c#*"] == ("c#1", "c#2") and expect.lines["server.counters.IcmpMsgInType3"] == 9


@pytest.mark.parametrize("expect, message", [
    ('  server: {counters: {TCPChallengeACK: 1}}\n', "not a counter name as nstat writes it"),
    ('  server: {counters: {IcmpMsgInTyp3: 0}}\n', "not a counter name as nstat writes it"),   # would read 0 and pass
    ('  server: {counters: {IcmpMsgOutType256: 0}}\n', "not a counter name as nstat writes it"),
    ('  server: {counters: {TcpExtTCPChallengeACK: -1}}\n', "is not a count"),
    ('  server: {counters: {TcpExtTCPChallengeACK: "3-1"}}\n', "allows no value"),
    ('  server: {counters: {TcpExtTCPChallengeACK: "1ms"}}\n', "is a duration, but TcpExtTCPChallengeACK is a count"),
    ('  a: {counters: {TcpRetransSegs: 1}}\n', "counters: are the host's"),
    ('  "c#*": {counters: {TcpRetransSegs: 1}}\n', "write them under the host: client"),
    ('  a: {tcp_info: {retrans_total: 1}}\n', "unknown field 'retrans_total'"),
    ('  a: {tcp_info: {state: 1}}\n', "states:"),
    ('  a: {tcp_info: {options: [ts, mss]}}\n', "'mss' is not an option"),
    ('  client: {tcp_info: {backoff: 0}}\n', "several connections"),
])
def test_refusals_name_the_line_and_the_fix(tmp_path, expect, message):
    try:
        load(tmp_path, expect)
    except UserError as refused:
        said = f"{refused} (fix: {refused.fix})"
        assert message in said and refused.line == 9, said       # the line under expect:
    else:
        pytest.fail(f"loaded: {expect}")
