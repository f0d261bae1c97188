"""Loading and validation: errors name file, line and a fix; good files load."""
from pathlib import Path

import pytest

from harness.errors import UserError
from harness.load import load_experiment
from harness.load.units import parse_seconds

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


def test_good_file(tmp_path):
    exp = load_experiment(write(tmp_path, GOOD))
    assert exp.expect.states == {"client": ("SYN-SENT", "ESTAB")}


@pytest.mark.parametrize("bad, line, words", [
    (GOOD.replace("listen: 5001", "lisen: 5001"), 4, "unknown key 'lisen'"),
    (GOOD.replace("SYN-SENT", "SYN_SENT"), 7, "unknown TCP state"),
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
