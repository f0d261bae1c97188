"""The plan is computed once, before anything is built: folders, addresses, agents' steps, where
network steps act, the RTTs; a batch plan lays matrices and kernels out in folders."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from harness.load import load_cells, load_experiment
from harness.plan import LOCAL, GuestSettings, plan_run
from harness.model import AgentStep
from harness.plan.batch_plan import plan_batch

REPO = Path(__file__).resolve().parents[2]


def test_a_local_plan_names_its_folder_and_addresses_without_making_anything(tmp_path):
    exp = load_experiment(REPO / "experiments" / "handshake.yaml")
    plan = plan_run(exp, tmp_path)
    assert plan.final_dir.parent == tmp_path / exp.name and plan.work_dir == plan.final_dir
    assert not plan.staged and not plan.in_vm and plan.target == "local"
    assert not (tmp_path / exp.name).exists()                       # planning makes nothing
    assert plan.addresses == {"client": "10.0.0.1", "server": "10.0.0.2"}   # Mininet's order, made explicit
    assert plan.startup_timeout_s == 120.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.target = "vm"                                          # type: ignore[misc]
    plan.make_folders()
    assert sorted(p.name for p in plan.final_dir.iterdir()) == ["pcap", "samples", "steps"]


def test_agents_get_the_planned_addresses_and_the_rtt_comes_from_the_links(tmp_path):
    exp = load_experiment(REPO / "experiments" / "handshake.yaml")
    plan = plan_run(exp, tmp_path)
    connect = next(s for s in plan.agents["client"] if s.action == "connect")
    assert connect.bind == "10.0.0.1" and connect.address == "10.0.0.2"
    # what crosses the pipe to the forked agent, and back: the socket it makes is named at load
    assert connect.to_json() == {"action": "connect", "index": connect.index, "at": 0.5, "port": 5001,
                                 "bind": "10.0.0.1", "address": "10.0.0.2", "size": None, "message": None, "how": None,
                                 "until": None, "seconds": None, "socket": "client#1", "local_port": None,
                                 "reuseaddr": False, "reuseport": False, "options": [], "blocking": True}
    assert AgentStep.from_json(connect.to_json()) == connect
    listen = plan.agents["server"][0]
    assert "address" not in listen.to_json() and AgentStep.from_json(listen.to_json()) == listen
    assert plan.connect_pair == ("client", "server")
    rtt = plan.configured_rtt_s("client", "server")
    assert rtt == plan.configured_rtt_s("server", "client") > 0
    assert plan.configured_rtt_s("client", "client") == 0.0
    assert plan.sampler_linger_s == pytest.approx(0.3 + rtt)


def test_a_network_step_is_placed_on_the_first_switch_by_node_names(tmp_path):
    exp = load_experiment(REPO / "experiments" / "stale_syn.yaml")
    plan = plan_run(exp, tmp_path)
    (placed,) = plan.network_steps
    assert (placed.switch, placed.ingress_node, placed.egress_node) == ("s1", "client", "server")
    assert (placed.src_ip, placed.dst_ip) == ("10.0.0.1", "10.0.0.2")
    assert plan.sampler_linger_s == pytest.approx(0.3 + plan.configured_rtt_s("client", "server") + 3.0)


def test_a_guest_plan_stages_in_guest_memory_and_waits_on_the_virtual_clock(tmp_path):
    exp = load_experiment(REPO / "experiments" / "handshake.yaml")
    guest = GuestSettings(stage=tmp_path / "stage", target="vm/virtual-clock")
    plan = plan_run(exp, tmp_path / "results", tmp_path / "results" / "cell", guest)
    assert plan.final_dir == tmp_path / "results" / "cell" and plan.work_dir == tmp_path / "stage" / "run"
    assert plan.staged and plan.in_vm and plan.target == "vm/virtual-clock"
    assert plan.startup_timeout_s is None
    assert plan_run(exp, tmp_path, guest=GuestSettings(tmp_path, "vm/host-clock")).startup_timeout_s == 120.0
    assert LOCAL.stage is None


def test_a_matrix_gets_one_folder_per_cell_under_one_run_id(tmp_path):
    path = REPO / "experiments" / "syn_retries_sweep.yaml"
    cells = load_cells(path)
    plan = plan_batch({path: cells}, tmp_path, "local", None)
    assert len(plan.items) == len(cells) > 1
    (matrix_dir, folders), = plan.matrices.items()
    assert matrix_dir.parent == tmp_path / cells[0].experiment.name
    assert folders == [i.run_dir for i in plan.items] and len(set(folders)) == len(folders)
    assert all(f.parent == matrix_dir for f in folders)
    assert all(i.target == "local" and i.why == "as asked" and i.kernel is None for i in plan.items)
    assert not matrix_dir.exists()


def test_a_plain_file_has_no_folder_until_it_runs(tmp_path):
    path = REPO / "experiments" / "handshake.yaml"
    plan = plan_batch({path: load_cells(path)}, tmp_path, "local", None)
    assert [i.run_dir for i in plan.items] == [None] and plan.matrices == {}


def test_the_planned_addresses_lie_in_the_subnet_the_lab_gives_its_hosts(tmp_path):
    """One prefix length for the plan's addresses and the lab's interfaces (harness.model's)."""
    import inspect
    from ipaddress import ip_address, ip_network

    from harness.lab.network import mininet_lab
    from harness.model import ADDRESS_PREFIX_LEN
    from harness.load.routing import FLAT_NETWORK

    plan = plan_run(load_experiment(REPO / "experiments" / "handshake.yaml"), tmp_path)
    subnet = ip_network(f"{FLAT_NETWORK.network_address}/{ADDRESS_PREFIX_LEN}")
    assert all(ip_address(a) in subnet for a in plan.addresses.values())
    assert inspect.signature(mininet_lab).parameters["prefix_len"].default == ADDRESS_PREFIX_LEN
