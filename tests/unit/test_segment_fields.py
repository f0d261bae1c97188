"""`len:` and `options:` on packet patterns and network-step matches, and `PA` needing data:
parsed once (harness.load.segment_fields), matched once (segment_fits), judged on segments
recorded in the 6.1 VM (tests/fixtures/abort_vm: a handshake, a bare ACK, 100 bytes, a RST)."""
import json
from pathlib import Path

import pytest

from harness.analyse.connection import observe
from harness.analyse.segments import read_segments, segment_fits
from harness.errors import UserError
from harness.judge import judge_all
from harness.judge.packets import describe, match_packets
from harness.load import load_experiment
from harness.load.segment_fields import needs_data, parse_length, parse_options
from harness.load.yaml_lines import load_yaml
from harness.model import LengthSpec, OptionSpec, PacketPattern, SeqTerm, StepRecord

REPO = Path(__file__).resolve().parents[2]
ABORT = REPO / "tests" / "fixtures" / "abort_vm"
CLIENT, SERVER = ("10.0.0.1", 60427), ("10.0.0.2", 5001)      # the abort run's connection
ADDR = {"client": CLIENT, "server": SERVER}
HERE = Path("e.yaml")

def experiment(tmp_path: Path, network: str = "{}", packets: str = "[{from: client, flags: S}]",
               socket_packets: str = "[{from: a, flags: S}]") -> Path:
    """A small experiment whose match (line 7), packets (line 11) and a's packets (line 12) are as given."""
    path = tmp_path / "e.yaml"
    path.write_text(f"""name: e
topology: two_hosts
duration: 5s
steps:
  - {{at: 0s, on: server, listen: 5001}}
  - {{at: 0.5s, on: client, connect: server:5001, as: a}}
  - {{at: 0s, network: drop, from: client, to: server, match: {network}}}
  - {{on: client, send: 100B, socket: a}}
expect:
  server: {{received: 100B}}
  packets: {packets}
  a: {{packets: {socket_packets}}}
""")
    return path


@pytest.fixture(scope="module")
def segments():
    """The client's interface capture of the abort run: S, SA, A (bare), PA 100 bytes, A, RA."""
    return read_segments(ABORT / "pcap" / "client-eth0.pcap")


# --- parsing --------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, low, high", [
    (0, 0, 0), (1000, 1000, 1000), ("1000", 1000, 1000), (">0", 1, None), (">=100", 100, None),
    ("<100", 0, 99), ("<=100", 0, 100), ("1-1448", 1, 1448), (" > 0 ", 1, None), (65495, 65495, 65495),
])
def test_lengths_as_written(value, low, high):
    spec = parse_length(value, HERE, 3)
    assert (spec.low, spec.high) == (low, high) and spec.text == str(value).strip()


@pytest.mark.parametrize("value, says", [
    (-1, "negative"), ("-1", "negative"), (65496, "65495"), ("70000", "65495"), (">65495", "65495"),
    ("5-3", "allows no length"), ("<0", "allows no length"), ("abc", "not a payload length"),
    ("1000B", "no unit"), (True, "not a payload length"), (1.5, "not a payload length"), (None, "not a payload length"),
    ([1], "not a payload length"), ("", "not a payload length"), ("1-", "not a payload length"),
])
def test_lengths_refused_with_their_line(value, says):
    with pytest.raises(UserError) as err:
        parse_length(value, HERE, 7)
    assert err.value.line == 7 and err.value.fix and says in str(err.value)


def test_options_in_the_order_written(tmp_path):
    (tmp_path / "o.yaml").write_text("options: {ts: true, sackok: false, mss: 1460, wscale: 9, sack: 2}\n")
    raw = load_yaml(tmp_path / "o.yaml")
    assert parse_options(raw["options"], HERE, 1) == (
        OptionSpec("ts"), OptionSpec("sackok", False), OptionSpec("mss", True, 1460), OptionSpec("wscale", True, 9),
        OptionSpec("sack", True, 2))


@pytest.mark.parametrize("written, line, says", [
    ("{ts: true,\n    ecn: true}", 2, "unknown TCP option"),
    ("{ts: 5}", 1, "only present or absent"), ("{sackok: 1}", 1, "only present or absent"),
    ("{wscale: 15}", 1, "0 to 14"), ("{mss: 0}", 1, "1 to 65535"), ("{sack: 5}", 1, "1 to 4"),
    ("{mss: \"1460\"}", 1, "1 to 65535"), ("{mss: 1460.5}", 1, "1 to 65535"), ("{}", 1, "not a mapping"),
    ("[ts]", 1, "not a mapping"), ("ts", 1, "not a mapping"),
])
def test_options_refused_with_their_line(tmp_path, written, line, says):
    (tmp_path / "o.yaml").write_text(f"options: {written}\n")
    raw = load_yaml(tmp_path / "o.yaml")
    with pytest.raises(UserError) as err:
        parse_options(raw["options"], HERE, 1)
    assert err.value.line == line and err.value.fix and says in str(err.value)


def test_flags_written_with_p_need_data():
    assert needs_data("PA") and needs_data("FPA") and not needs_data("A") and not needs_data("FA")


# --- the loader: matches and patterns, top level and per socket ------------------------------------

def test_the_loader_reads_len_and_options_in_both_places(tmp_path):
    exp = load_experiment(experiment(tmp_path, network="{flags: PA, len: \">0\", options: {ts: true, sack: false}}",
                                     packets="[{from: client, flags: PA, len: 100, options: {ts: true}}]",
                                     socket_packets="[{from: a, flags: S, options: {mss: 1460, wscale: 9}}]"))
    (step,) = exp.network
    assert step.match.flags == "PA" and (step.match.length.low, step.match.length.high) == (1, None)
    assert step.match.options == (OptionSpec("ts"), OptionSpec("sack", False))
    (pattern,) = exp.expect.packets
    assert pattern.length == LengthSpec(100, 100, "100") and pattern.options == (OptionSpec("ts"),)
    (own,) = exp.expect.socket_packets["a"]
    assert own.options == (OptionSpec("mss", True, 1460), OptionSpec("wscale", True, 9)) and own.length is None


@pytest.mark.parametrize("where, line", [
    ({"network": "{flags: A, len: -5}"}, 7),
    ({"network": "{flags: S, options: {ecn: true}}"}, 7),
    ({"packets": "[{from: client, flags: A, len: \"1-\"}]"}, 11),
    ({"packets": "[{from: client, flags: S, options: {wscale: 20}}]"}, 11),
    ({"socket_packets": "[{from: a, flags: PA, len: 1000B}]"}, 12),
    ({"socket_packets": "[{from: a, flags: S, options: {timestamps: true}}]"}, 12),
])
def test_the_loader_refuses_bad_fields_at_their_line(tmp_path, where, line):
    with pytest.raises(UserError) as err:
        load_experiment(experiment(tmp_path, **where))
    assert err.value.line == line and err.value.file.endswith("e.yaml") and err.value.fix


def test_match_flags_take_p(tmp_path):
    assert load_experiment(experiment(tmp_path, network="{flags: PA}")).network[0].match.flags == "PA"
    with pytest.raises(UserError, match="not TCP flag letters"):
        load_experiment(experiment(tmp_path, network="{flags: PX}"))


# --- one matcher, on recorded segments ----------------------------------------------------------------

def test_the_recorded_segments_are_what_the_tests_assume(segments):
    assert [(s.flags, s.length) for s in segments] == [("S", 0), ("SA", 0), ("A", 0), ("PA", 100), ("A", 0), ("RA", 0)]


def test_options_on_the_recorded_syn(segments):
    syn = segments[0]
    assert segment_fits(syn, "S", None, (OptionSpec("mss", True, 1460), OptionSpec("sackok"), OptionSpec("ts"),
                                         OptionSpec("wscale", True, 9)))
    assert segment_fits(syn, "S", None, (OptionSpec("sack", False),))       # no SACK blocks on a SYN
    assert not segment_fits(syn, "S", None, (OptionSpec("ts", False),))
    assert not segment_fits(syn, "S", None, (OptionSpec("mss", True, 1400),))
    assert not segment_fits(syn, "S", None, (OptionSpec("wscale", True, 7),))
    bare = segments[2]
    assert segment_fits(bare, "A", None, (OptionSpec("ts"), OptionSpec("mss", False), OptionSpec("sackok", False)))
    assert not segment_fits(bare, "A", None, (OptionSpec("wscale"),))


def test_length_and_p_on_the_recorded_acks(segments):
    bare, data = segments[2], segments[3]
    assert segment_fits(bare, "A") and segment_fits(data, "A")             # A: with or without data
    assert not segment_fits(bare, "PA") and segment_fits(data, "PA")       # PA: data only
    assert segment_fits(bare, "A", parse_length(0, HERE, 1)) and not segment_fits(data, "A", parse_length(0, HERE, 1))
    assert segment_fits(bare, "PA", parse_length(0, HERE, 1))             # an explicit len: rules over P
    assert segment_fits(data, "A", parse_length("1-1448", HERE, 1)) and not segment_fits(data, "A", parse_length(">100", HERE, 1))
    assert segment_fits(data, None, parse_length(100, HERE, 1))           # a match without flags
    assert not segment_fits(data, "S")


# --- the judge ------------------------------------------------------------------------------------

def _p(sender: str, flags: str, length: object = None, options: tuple = (), seq: str | None = None) -> PacketPattern:
    return PacketPattern(sender, flags, SeqTerm.parse(seq) if seq else None, None,
                         parse_length(length, HERE, 1) if length is not None else None, options)


def test_pa_no_longer_binds_the_bare_ack(segments):
    """The issue's bug on the abort run: the bare ACK of the handshake and the 100 bytes carry the
    same seq, so `client PA seq: x` bound the bare ACK and a second `client PA seq: x` the data:
    two data segments were "seen" where one was sent, and the verdict PASSed."""
    ok, text, _ = match_packets((_p("client", "PA", seq="x"), _p("client", "PA", seq="x")), segments, ADDR)
    assert not ok and text.startswith(f"client PA seq={segments[3].seq} ack={segments[3].ack} len=100;")
    assert "client PA seq=x: not seen" in text
    ok, text, _ = match_packets((_p("client", "PA", seq="x"), _p("client", "RA", seq="x+100")), segments, ADDR)
    assert ok and "len=100" in text                                       # abort.yaml's patterns: the data


def test_a_whole_run_with_len_and_options(segments):
    syn_options = (OptionSpec("mss", True, 1460), OptionSpec("sackok"), OptionSpec("ts"), OptionSpec("wscale", True, 9))
    patterns = (_p("client", "S", options=syn_options), _p("server", "SA", options=syn_options),
                _p("client", "A", 0), _p("client", "PA", 100, (OptionSpec("ts"),)), _p("server", "A", 0),
                _p("client", "RA", 0))
    ok, text, _ = match_packets(patterns, segments, ADDR)
    assert ok, text
    assert f"client S seq={segments[0].seq} ack=0 options=[mss=1460, sackok, ts, wscale=9]" in text
    assert "len=100 options=[ts]" in text and text.count("len=0") == 3
    assert describe(patterns[:4]) == ("client S options=[mss=1460, sackok, ts, wscale=9]; server SA options=[mss=1460, "
                                      "sackok, ts, wscale=9]; client A len=0; client PA len=100 options=[ts]")


@pytest.mark.parametrize("pattern, note", [
    (_p("client", "PA", 50), "only its length/options differ: len=100, should be 50"),
    (_p("client", "PA", options=(OptionSpec("sack"),)), "only its length/options differ: options=[ts], should have sack"),
    (_p("client", "A", ">0", seq="x"), "seq should be x"),        # x is bound by the SYN: the data is x+1
])
def test_the_nearest_miss_says_what_differed(segments, pattern, note):
    ok, text, _ = match_packets((_p("client", "S", seq="x"), _p("server", "SA"), _p("client", "A", 0), pattern), segments, ADDR)
    assert not ok and "not seen (nearest: client PA" in text and note in text


def test_a_bare_ack_written_pa_is_named_in_the_miss(segments):
    ok, text, _ = match_packets((_p("client", "S"), _p("client", "PA", seq="y"), _p("client", "PA", seq="y")), segments[:3], ADDR)
    assert not ok and "len=0, and PA (written with P) needs data" in text


def test_the_shipped_abort_still_passes_on_its_run():
    """abort.yaml's `PA seq: x` is its 100 bytes: it passes on the recorded run, bound to the data."""
    steps = {h: [StepRecord.from_json(json.loads(l)) for l in (ABORT / "steps" / f"{h}.jsonl").read_text().splitlines()]
             for h in ("client", "server")}
    obs = observe(ABORT, steps, {"client": "client-eth0", "server": "server-eth0"}, {"client": "10.0.0.1", "server": "10.0.0.2"})
    verdicts = {v.name: v for v in judge_all(load_experiment(REPO / "experiments" / "abort.yaml").expect, obs, 0.1)}
    assert verdicts["packets"].passed and "len=100" in verdicts["packets"].observed
