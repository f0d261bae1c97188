"""Loading and validation: errors name file, line and a fix; good files load."""
from pathlib import Path

import pytest

from harness.errors import UserError
from harness.load import load_experiment
from harness.load.units import parse_seconds
from harness.model import StateExpectation

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "t.yaml").write_text("name: t\nhosts: [client, server]\nswitches: [s1]\n"
                                     "links:\n  - {a: client, b: s1, delay: 25ms}\n  - {a: server, b: s1, delay: 25ms}\n")
    path = tmp_path / "e.yaml"
    path.write_text(text)
    return path


GOOD = """name: e
topology: t.yaml
steps:
  - {at: 0s, on: server, listen: 5001}
  - {at: 0.5s, on: client, connect: server:5001}
expect:
  client: {states: [SYN-SENT, ESTAB]}
"""


def test_shipped_handshake_loads():
    exp = load_experiment(REPO / "experiments" / "handshake.yaml")
    assert [s.action for s in exp.steps] == ["listen", "connect"]
    assert exp.steps[0].host == "server"          # 'on' must not turn into True (YAML 1.1)
    assert exp.topology.links[0].a_to_b.delay_s == pytest.approx(0.025)
    # the built-in timings say at load which end they are measured at: the judge reads no names
    assert {t.name: t.builtin for t in exp.expect.timing} == {"handshake_client": "client", "handshake_server": "server"}


def test_good_file(tmp_path):
    exp = load_experiment(write(tmp_path, GOOD))
    assert exp.expect.states == {"client": (StateExpectation("SYN-SENT"), StateExpectation("ESTAB"))}


@pytest.mark.parametrize("bad, line, words", [
    (GOOD.replace("listen: 5001", "lisen: 5001"), 4, "unknown key 'lisen'"),
    (GOOD.replace("SYN-SENT", "SYN_SENT"), 7, "unknown TCP state"),
    (GOOD.replace("SYN-SENT", "'(SYN-SENT'"), 7, "unknown TCP state"),
    (GOOD.replace("SYN-SENT", "'((SYN-SENT))'"), 7, "unknown TCP state"),
    (GOOD.replace("server:5001", "nowhere:5001"), 5, "not host:port"),
    (GOOD.replace("0.5s", "0.5"), 5, "not a duration"),
    (GOOD.replace("steps:", "steps: [").replace("expect:", "]expect:"), None, "not valid YAML"),
])
def test_errors_name_line_and_fix(tmp_path, bad, line, words):
    with pytest.raises(UserError) as info:
        load_experiment(write(tmp_path, bad))
    assert words in info.value.message
    if line:
        assert info.value.line == line
    assert str(tmp_path / "e.yaml") in str(info.value)


def test_bare_number_duration_refused():
    with pytest.raises(ValueError):
        parse_seconds("25")
    assert parse_seconds("25ms") == pytest.approx(0.025)


TEARDOWN = GOOD.replace("expect:", """  - {on: client, send: 100B}
  - {at: 1s, on: client, close: true}
  - {on: server, wait: peer-closed}
  - {after: 0.5s, on: server, close: true}
expect:""").replace("{states: [SYN-SENT, ESTAB]}", "{states: [SYN-SENT, ESTAB, (FIN-WAIT-1), TIME-WAIT]}") + """  timing:
    tw: {from: client enters TIME-WAIT, to: client leaves TIME-WAIT, between: [60s, 62.1s]}
    gone: {from: server calls close, to: server enters CLOSED, equals: 1rtt, within: 20ms}
"""


def test_teardown_steps_and_event_timings(tmp_path):
    exp = load_experiment(write(tmp_path, TEARDOWN))
    assert [(s.host, s.action) for s in exp.steps] == [("server", "listen"), ("client", "connect"), ("client", "send"),
                                                       ("client", "close"), ("server", "wait"), ("server", "wait"),
                                                       ("server", "close")]
    assert exp.steps[2].size == 100 and exp.steps[4].until == "peer-closed" and exp.steps[5].seconds == 0.5
    assert exp.steps[3].at_s == 1.0 and exp.steps[2].at_s is None
    assert exp.expect.states["client"] == (StateExpectation("SYN-SENT"), StateExpectation("ESTAB"),
                                           StateExpectation("FIN-WAIT-1", optional=True), StateExpectation("TIME-WAIT"))
    assert [t.builtin for t in exp.expect.timing] == [None, None]
    tw, gone = exp.expect.timing
    assert (tw.start.host, tw.start.verb, tw.start.what) == ("client", "enters", "TIME-WAIT") and tuple(b.seconds for b in tw.between) == (60, 62.1)
    assert (gone.start.verb, gone.start.what, gone.end.what) == ("calls", "close", "CLOSED")


def test_every_shipped_experiment_loads():
    names = [p.stem for p in (REPO / "experiments").glob("*.yaml")]
    assert {"handshake", "teardown", "half_close", "server_closes_first", "simultaneous_close", "abort"} <= set(names)
    from harness.load import load_cells
    for name in names:
        assert load_cells(REPO / "experiments" / f"{name}.yaml")


@pytest.mark.parametrize("change, words", [
    (("send: 100B", "send: []"), "not a byte count"),
    (("wait: peer-closed", "wait: forever"), "neither a duration nor an event"),
    (("{after: 0.5s, on: server", "{at: 1s, after: 0.5s, on: server"), "either at:"),
    (("client enters TIME-WAIT", "client enters TIME_WAIT"), "not an event"),
    (("client enters TIME-WAIT", "nobody enters TIME-WAIT"), "not an event"),
    (("between: [60s, 62.1s]", "between: [60s]"), "two bounds"),
    (("equals: 1rtt, within: 20ms", "equals: 1rtt"), "equals + within"),
    (("(FIN-WAIT-1)", "(FIN-WAIT-9)"), "unknown TCP state"),
    (("  - {on: client, send: 100B}\n", "  - {on: client, send: 100B}\n  - {on: client, send: 1B, on: server}\n"), "duplicate key 'on'"),
])
def test_teardown_errors(tmp_path, change, words):
    text = TEARDOWN.replace(*change)
    assert text != TEARDOWN
    with pytest.raises(UserError) as info:
        load_experiment(write(tmp_path, text))
    assert words in str(info.value) and info.value.line
