"""Topologies that would touch the machine's own interfaces, or that cannot carry a connection,
are refused at load with file:line and the reason (issue 11)."""
import json
from pathlib import Path

import pytest

from harness.errors import UserError
from harness.load import load_experiment
from harness.load.interfaces import machine_interfaces
from harness.load.topology import load_topology

TWO = "name: t\nhosts: [client, server]\nswitches: [s1]\nlinks:\n  - {a: client, b: s1}\n  - {a: server, b: s1}\n"


def topo(tmp_path: Path, text: str, existing: set[str] | None = frozenset()):
    path = tmp_path / "t.yaml"
    path.write_text(text)
    return load_topology(path, existing=set(existing) if existing is not None else None)


def refused(tmp_path: Path, text: str, existing=frozenset()) -> UserError:
    with pytest.raises(UserError) as info:
        topo(tmp_path, text, existing)
    assert info.value.file and info.value.line and info.value.fix, str(info.value)
    return info.value


@pytest.mark.parametrize("name", ["eth0", "lo", "docker0", "enp3s0", "wlan0", "virbr0", "veth1", "tap0", "tun0",
                                  "vnet3", "bond0", "br0", "ovssystem", "ifb0"])
def test_switch_named_like_a_machine_interface_is_refused(tmp_path, name):
    err = refused(tmp_path, TWO.replace("s1", name))
    assert name in err.message and err.line == 3


def test_host_named_like_a_machine_interface_is_refused(tmp_path):
    err = refused(tmp_path, TWO.replace("client", "eth1"))
    assert "host name 'eth1'" in err.message and err.line == 2


def test_interface_that_exists_now_is_refused(tmp_path):
    err = refused(tmp_path, TWO, existing={"s1"})
    assert "interface called 's1'" in err.message and err.line == 3


def test_interface_mininet_would_derive_is_refused(tmp_path):
    err = refused(tmp_path, TWO, existing={"server-eth0"})
    assert "'server-eth0'" in err.message and err.line == 2


def test_names_the_machine_does_not_use_are_fine(tmp_path):
    assert topo(tmp_path, TWO, existing={"eth0", "lo", "docker0"}).switches == ("s1",)


def test_machine_interfaces_leave_out_what_a_testbed_ledger_lists(tmp_path):
    net, ledgers = tmp_path / "net", tmp_path / "run"
    for name in ("eth0", "s1", "s1-eth1", "client-eth0", "s2/brif/s2-eth1", "s3/brif/s3-eth1", "s3/brif/eth1", "s4/brif"):
        (net / name).mkdir(parents=True)
    ledgers.mkdir()
    (ledgers / "123.json").write_text(json.dumps({"interfaces": ["s1", "s1-eth1"], "pids": []}))
    (ledgers / "456.json").write_text("{not json")          # protects nothing
    (ledgers / "789.json").write_text(json.dumps({"interfaces": ["s2-eth1", "s3-eth1"]}))
    # s2: a bridge whose only port a ledger lists is a run's; s3 bridges a port of the machine; s4 has none
    assert machine_interfaces(net, ledgers) == {"eth0", "client-eth0", "s3", "s4"}


def test_this_machines_real_interfaces_are_seen():
    assert "lo" in machine_interfaces()


@pytest.mark.parametrize("text, line, words", [
    (TWO + "  - {a: s1, b: s1}\n", 7, "to itself"),
    (TWO.replace("[client, server]", "[client, server, extra]"), 2, "host extra has no link"),
    (TWO.replace("switches: [s1]", "switches: [s1, s2]").replace("{a: server, b: s1}", "{a: server, b: s2}"), 2,
     "unconnected parts"),
    (TWO.replace("switches: [s1]", "switches: [s1, s2, s3]") + "  - {a: s1, b: s2}\n  - {a: s2, b: s3}\n  - {a: s3, b: s1}\n",
     9, "closes a loop"),
    (TWO.replace("switches: [s1]", "switches: [s1, s2]") + "  - {a: s1, b: s2}\n  - {a: s2, b: s1}\n", 8, "closes a loop"),
    (TWO.replace("switches: [s1]", "switches: [s1, s2]") + "  - {a: s1, b: s2}\n  - {a: client, b: s2}\n", 8,
     "second link"),
    (TWO.replace("{a: client, b: s1}", "{a: [client], b: s1}"), 5, "link end"),
    (TWO.replace("{a: client, b: s1}", "{a: client, b: {x: 1}}"), 5, "link end"),
    (TWO.replace("links:\n", "links:\n  - 7\n"), 5, "a link has the wrong form"),
    (TWO.replace("[client, server]", "[client, [server]]"), 2, "invalid or repeated"),
    (TWO.replace("hosts: [client, server]", "hosts: []"), 2, "needs hosts"),
])
def test_topologies_that_cannot_work_are_refused(tmp_path, text, line, words):
    err = refused(tmp_path, text)
    assert words in err.message and err.line == line


def test_two_switches_in_a_line_are_fine(tmp_path):
    text = TWO.replace("switches: [s1]", "switches: [s1, s2]").replace("{a: server, b: s1}", "{a: server, b: s2}")
    assert len(topo(tmp_path, text + "  - {a: s1, b: s2}\n").links) == 3


NET = """name: e
topology: t.yaml
steps:
  - {at: 0s, on: server, listen: 5001}
  - {at: 0.5s, on: client, connect: server:5001}
  - {at: 0s, network: drop, from: client, to: server, match: {flags: S}}
expect:
  client: {states: [SYN-SENT]}
"""


@pytest.mark.parametrize("topology, step, words", [
    ("name: t\nhosts: [client, server]\nlinks:\n  - {a: client, b: server}\n", None, "needs a switch or router between them"),
    (TWO, ("to: server", "to: client"), "to itself"),
])
def test_network_step_without_a_switch_on_its_path_is_refused_at_load(tmp_path, topology, step, words):
    (tmp_path / "t.yaml").write_text(topology)
    (tmp_path / "e.yaml").write_text(NET.replace(*step) if step else NET)
    with pytest.raises(UserError) as info:
        load_experiment(tmp_path / "e.yaml")
    assert words in info.value.message and info.value.line == 6


def test_a_remote_target_does_not_check_names_against_this_machines_interfaces(tmp_path, monkeypatch, capsys):
    """The remote run checks its own machine; here an interface called s1 (another lab, say)
    must not refuse a run that will be built elsewhere — but still refuses it for a local run."""
    import harness.load.topology as topology_module
    from harness.cli import main
    monkeypatch.setattr(topology_module, "machine_interfaces", lambda: {"s1", "s1-eth1"})
    (tmp_path / "t.yaml").write_text(TWO)
    (tmp_path / "e.yaml").write_text("name: e\ntopology: t.yaml\nsteps:\n  - {at: 0s, on: server, listen: 5001}\n"
                                     "expect:\n  server: {states: [LISTEN]}\n")
    assert main(["--check", "--target", "local", str(tmp_path / "e.yaml")]) == 2
    err = capsys.readouterr().err
    assert "interface called 's1'" in err and "e.g. s2" in err     # the suggested name is free
    assert main(["--check", "--target", "ssh://someone@example.invalid", str(tmp_path / "e.yaml")]) == 0
