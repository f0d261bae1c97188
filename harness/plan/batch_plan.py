"""Several experiments (and matrix cells, and kernels) in one invocation: which items run, where,
and into which folders, decided before anything runs."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from harness.errors import UserError
from harness.load.names import cell_folder
from harness.plan.folders import run_id
from harness.plan.kernels import pick_kernel, release_of
from harness.plan.run_plan import GuestSettings, RunPlan, plan_run

Probe = Callable[[object], list[str]]     # an experiment -> what this kernel lacks for it


@dataclass
class BatchItem:
    path: Path
    name: str
    target: str                  # local | vm
    experiment: object = None    # the loaded Experiment
    cell: int | None = None      # index of a matrix cell in its file
    run_dir: Path | None = None  # a matrix cell's folder
    why: str = ""                # why this target
    kernel: Path | None = None   # the vm target's kernel image
    code: int | None = None      # the outcome, filled in by harness.targets.batch
    seconds: float = 0.0
    results: str = ""
    note: str = ""               # why an item has no verdict (its time limit, the VM died...)
    run_plan: RunPlan | None = None              # a local item's plan, made with the batch's
    plan_error: Exception | None = None          # why a local item could not be planned (its own failure)


@dataclass
class BatchPlan:
    items: list[BatchItem]
    matrices: dict[Path, list[Path]] = field(default_factory=dict)   # matrix folder -> its cells' folders

    @property
    def needs_vm(self) -> bool:
        return any(item.target == "vm" for item in self.items)


def choose_target(target: str, kernels_given: bool, experiment, missing_features: Probe | None = None) -> tuple[str, str]:
    """Where one experiment runs, and why (`target` as given on the command line). The one rule
    for the run and for --check, which passes a read-only `missing_features` (default: the
    preflight's, which may load modules)."""
    if missing_features is None:
        from harness.lab.preflight import missing_kernel_features as missing_features
    if target != "auto":
        return target, "as asked"
    if kernels_given:
        return "vm", "a kernel image was given"
    missing = missing_features(experiment)
    if missing:
        return "vm", f"kernel {os.uname().release} lacks {', '.join(missing)}"
    return "local", "this kernel has what the experiment needs"


def plan_batch(loaded: dict[Path, list], results: Path, target: str, kernel_args: list[str] | None,
               observer: str = "trace") -> BatchPlan:
    """Every item of every file (a matrix: one per cell, and per kernel when several are given),
    with its target, kernel and folder: RESULTS/<experiment>/<run-id>/[kernel-<release>/]<cell>/
    for a matrix or several kernels, else chosen when the run starts."""
    kernels: list[Path | None] = [None]
    if kernel_args or target == "vm":
        kernels = [pick_kernel(k) for k in (kernel_args or [None])]
        if len({release_of(k) for k in kernels}) < len(kernels):
            raise UserError("the same kernel was given twice.", fix="give each --kernel once.")
    plan = BatchPlan([])
    for path, cells in loaded.items():
        _plan_file(plan, path, cells, results, target, kernel_args, kernels)
    _plan_runs(plan, results, observer)
    if plan.needs_vm:
        if os.geteuid() != 0:
            raise UserError("the VM target needs root here.", fix="run it with sudo.")
        if kernels == [None]:
            default = pick_kernel(None)
            for item in plan.items:
                item.kernel = default if item.target == "vm" else None
    return plan


def _plan_runs(plan: BatchPlan, results: Path, observer: str = "trace") -> None:
    """Every local item's RunPlan, now, before anything is built (plan_run makes no folder; the
    runner does, with RunPlan.make_folders). A VM plans its items itself, in the guest."""
    for item in plan.items:
        if item.target == "local":
            try:
                item.run_plan = plan_run(item.experiment, results, item.run_dir, GuestSettings(observer=observer))
            except Exception as exc:       # one item's failure must not cost the others their verdicts
                item.plan_error = exc


def _plan_file(plan: BatchPlan, path: Path, cells: list, results: Path, target: str,
               kernel_args: list[str] | None, kernels: list[Path | None]) -> None:
    compared = bool(cells[0].label) or len(kernels) > 1
    matrix_dir = results / cells[0].experiment.name / run_id() if compared else None
    folders = []
    for kernel in kernels:
        for index, cell in enumerate(cells):
            where, why = choose_target(target, bool(kernel_args), cell.experiment)
            name = cell.experiment.name + (f"[{cell.label}]" if cell.label else "")
            run_dir = None
            if matrix_dir:
                run_dir = matrix_dir / cell_folder(cell.label or cell.experiment.name)
                if len(kernels) > 1:
                    run_dir = matrix_dir / f"kernel-{release_of(kernel)}" / run_dir.name
                    name += f"@{release_of(kernel)}"
                folders.append(run_dir)
            plan.items.append(BatchItem(path, name, where, cell.experiment, index, run_dir, why,
                                        kernel if where == "vm" else None))
    if matrix_dir:
        plan.matrices[matrix_dir] = folders
