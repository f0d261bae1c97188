"""One walk over a topology's links (harness.model.Topology.path): the node path that network steps
are placed on and the configured RTT that timings are judged against both come from it."""
from pathlib import Path

from harness.load.topology import load_topology
from harness.model import Experiment
from harness.plan.paths import hop_path, path_rtt_s, rule_placement

CHAIN = """name: chain
hosts: [client, server]
switches: [s1, s2, s3]
links:
  - {a: s2, b: s3, delay: 5ms}
  - {a: client, b: s1, a_to_b: {delay: 1ms}, b_to_a: {delay: 2ms}}
  - {a: s1, b: s2, delay: 10ms}
  - {a: server, b: s3, delay: 20ms}
"""


def chain(tmp_path: Path) -> Experiment:
    (tmp_path / "t.yaml").write_text(CHAIN)
    topology = load_topology(tmp_path / "t.yaml", existing=frozenset())
    return Experiment("e", topology, 1.0, [], {}, None, tmp_path / "e.yaml")


def test_the_path_crosses_every_switch_in_order_both_ways(tmp_path):
    exp = chain(tmp_path)
    assert hop_path(exp, "client", "server") == ["client", "s1", "s2", "s3", "server"]
    assert hop_path(exp, "server", "client") == ["server", "s3", "s2", "s1", "client"]
    assert hop_path(exp, "client", "client") == ["client"]
    assert rule_placement(exp, "server", "client") == ("s3", "server", "s2")


def test_the_rtt_adds_both_directions_of_every_link_on_the_path(tmp_path):
    exp = chain(tmp_path)
    assert path_rtt_s(exp, "client", "server") == path_rtt_s(exp, "server", "client")
    assert abs(path_rtt_s(exp, "client", "server") - (0.003 + 0.020 + 0.010 + 0.040)) < 1e-12
    assert path_rtt_s(exp, "client", "client") == 0.0
