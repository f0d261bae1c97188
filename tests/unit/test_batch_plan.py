"""The batch plan decides, before anything runs, where each item runs (one rule, shared with
--check) and every local item's RunPlan (without making a folder)."""
from __future__ import annotations

import argparse
from pathlib import Path

from harness.lab import preflight
from harness.load import load_cells
from harness.plan.batch_plan import choose_target, plan_batch

REPO = Path(__file__).resolve().parents[2]
HANDSHAKE = REPO / "experiments" / "handshake.yaml"


def test_choose_target_asks_the_probe_it_is_given():
    exp = load_cells(HANDSHAKE)[0].experiment
    assert choose_target("auto", False, exp, lambda e: ["sch_netem"])[0] == "vm"
    assert choose_target("auto", False, exp, lambda e: []) == ("local", "this kernel has what the experiment needs")
    assert choose_target("local", False, exp, lambda e: ["sch_netem"]) == ("local", "as asked")


def test_check_and_the_run_pick_the_target_by_one_rule(monkeypatch):
    """--check asks the same question without loading modules; the run may load them."""
    from harness import cli
    asked = []

    def missing(experiment, load=True):
        asked.append(load)
        return ["sch_netem"]
    monkeypatch.setattr(preflight, "missing_kernel_features", missing)
    args = cli.parse_args(["--check", str(HANDSHAKE)])
    _, targets = cli._check_file(args, HANDSHAKE)
    assert targets == {"vm"} and asked == [False]
    assert choose_target("auto", False, load_cells(HANDSHAKE)[0].experiment)[0] == "vm" and asked == [False, True]


def test_every_local_item_gets_its_run_plan_before_anything_runs_and_nothing_is_made(tmp_path):
    sweep = REPO / "experiments" / "syn_retries_sweep.yaml"
    plan = plan_batch({HANDSHAKE: load_cells(HANDSHAKE), sweep: load_cells(sweep)}, tmp_path, "local", None)
    assert len(plan.items) > 2
    for item in plan.items:
        assert item.run_plan is not None and item.run_plan.experiment is item.experiment
        assert item.run_dir is None or item.run_plan.final_dir == item.run_dir
    assert list(tmp_path.iterdir()) == []            # folders are made when each run starts
    assert len({i.run_plan.final_dir for i in plan.items}) == len(plan.items)


def test_the_read_only_module_check_never_runs_modprobe(monkeypatch):
    ran = []
    monkeypatch.setattr(preflight, "run_command", lambda args, **kw: ran.append(args))
    preflight.kernel_has_module.cache_clear()
    preflight.kernel_has_module("no_such_module_tcptestbed", load=False)
    assert ran == []
    preflight.kernel_has_module.cache_clear()


def test_the_modules_a_run_needs_are_loaded_by_one_modprobe(monkeypatch):
    """harness.lab.preflight.load_modules: one process for every module not loaded yet (each
    costs 0.1-0.3 s under emulation); dummy (it needs an argument) and loaded ones left out."""
    from harness.lab import preflight
    ran = []
    monkeypatch.setattr(preflight, "run_command", lambda args, **kw: ran.append(args))
    monkeypatch.setattr(preflight.shutil, "which", lambda *a, **kw: "/sbin/modprobe")
    loaded = {"sch_ingress"}
    monkeypatch.setattr(preflight, "Path", lambda p: type("P", (), {"exists": lambda self: p.rsplit("/", 1)[1] in loaded})())
    preflight.load_modules(["sch_ingress", "act_mirred", "dummy", "sch_netem", "cls_fw"])
    assert ran == [["modprobe", "-q", "-a", "act_mirred", "sch_netem", "cls_fw"]]
    ran.clear()
    preflight.load_modules(["sch_ingress", "act_mirred"])          # one left: kernel_has_module's own modprobe
    assert ran == []
