"""run-experiment: the command line. User mistakes print one paragraph, never a traceback."""
from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from harness.errors import RunFailed, UserError

EPILOG = """exit codes: 0 every expectation passed; 1 an expectation failed; 2 bad input or missing
tool; 3 the run could not support a result (impairment not applied, capture lost packets...).
Results go to RESULTS_DIR/<experiment>/<run-id>/ (result.json, pcap/, samples/, steps/)."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="run-experiment", epilog=EPILOG,
                                     description="Run a TCP experiment on a real Linux kernel and judge it.")
    parser.add_argument("experiments", nargs="+", metavar="EXPERIMENT",
                        help="experiment YAML: a path, a name in experiments/ (handshake.yaml), or a folder of them. "
                             "Several run in one go: in VMs side by side (see --jobs), locally one after another")
    parser.add_argument("--target", default="auto", metavar="TARGET",
                        help="auto (default): this kernel when it has every module the experiment needs (netem...), "
                             "else vm; local: this kernel; vm: a kernel under QEMU via virtme-ng; "
                             "ssh://user@host[:port]: a Linux machine with the test bed set up (results come back here); "
                             "vagrant: this checkout's Vagrant VM")
    parser.add_argument("--kernel", metavar="PATH", action="append",
                        help="kernel image for the vm target (default: newest installed /boot/vmlinuz-* whose modules "
                             "include sch_netem). Give it several times to run everything on each kernel and compare")
    parser.add_argument("--vm-clock", choices=["virtual", "host"], default="virtual",
                        help="vm target only. virtual (default): guest time counts executed instructions and skips "
                             "idle time, so timers fire exactly on time (measured: 100 ms RTT handshake = 100.0 ms); "
                             "host: guest time follows the host clock and emulation makes timers late by 1-30 ms")
    parser.add_argument("--jobs", type=int, metavar="N",
                        help="VMs run side by side when several experiments are given (default: the CPU count; "
                             "a VM on the virtual clock uses one)")
    parser.add_argument("--inner-plan", help=argparse.SUPPRESS)      # the VM target's inner run
    parser.add_argument("--results-dir", metavar="DIR", default="results", help="where results go (default: results)")
    args = parser.parse_args(argv)
    if args.target not in ("auto", "local", "vm", "vagrant") and not args.target.startswith("ssh://"):
        parser.error(f"--target {args.target}: give auto, local, vm, vagrant or ssh://user@host[:port]")
    return args


def _say(message: str) -> None:
    """Flushed at once: the VM target's output interleaves with ours on the same terminal."""
    print(message, flush=True)


def _terminate(signum, frame):
    raise KeyboardInterrupt


def _experiment_paths(names: list[str]) -> list[Path]:
    from harness.load import resolve_experiment_path
    paths: list[Path] = []
    for name in names:
        if Path(name).is_dir():
            found = sorted(Path(name).glob("*.yaml"))
            if not found:
                raise UserError(f"the folder '{name}' holds no *.yaml experiments.", fix="give experiment files or another folder.")
            paths += found
        else:
            paths.append(resolve_experiment_path(name))
    return paths


def _choose_target(args: argparse.Namespace, experiment) -> tuple[str, str]:
    from harness.lab.preflight import missing_kernel_features
    if args.target != "auto":
        return args.target, "as asked"
    if args.kernel:
        return "vm", "a kernel image was given"
    missing = missing_kernel_features(experiment)
    if missing:
        return "vm", f"kernel {os.uname().release} lacks {', '.join(missing)}"
    return "local", "this kernel has what the experiment needs"


def _run_plan(plan_file: Path, results: Path) -> int:
    """Inside a VM: run each planned item (a file and, for a matrix, a cell) one after another,
    marking each with @@start / @@done lines for the host."""
    import json
    import time
    from harness.load import load_cells
    from harness.runner import run_local
    worst = 0
    for index, entry in enumerate(json.loads(plan_file.read_text())):
        _say(f"@@start {index}")
        began, run_dir = time.time(), None
        try:
            cell = load_cells(Path(entry["path"]))[entry["cell"]]
            code, run_dir = run_local(cell.experiment, results, log=_say,
                                      run_dir=Path(entry["run_dir"]) if entry["run_dir"] else None)
        except UserError as exc:
            _say(f"run-experiment: {exc}")
            code = 2
        except RunFailed as exc:
            _say(f"run-experiment: the run failed and gives no verdict: {exc}")
            code = 3
        worst = max(worst, code)
        _say(f"@@done {index} {code} {time.time() - began:.1f} {run_dir or ''}")
    return worst


def _run_remote(args: argparse.Namespace, paths: list[Path], results: Path) -> int:
    """Every file is checked here first (a typo fails before anything connects), then run remotely."""
    from harness.load import load_cells
    from harness.targets.ssh import parse_ssh_target, run_over_ssh, vagrant_remote
    experiments = [(path, load_cells(path)[0].experiment.topology.source) for path in paths]
    remote = vagrant_remote() if args.target == "vagrant" else parse_ssh_target(args.target)
    passthrough = ["--vm-clock", args.vm_clock] + (["--jobs", str(args.jobs)] if args.jobs else [])
    passthrough += [f"--kernel={k}" for k in args.kernel or []]
    return run_over_ssh(remote, experiments, passthrough, results, _say)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    try:
        from harness.load import load_cells
        from harness.plan import cell_folder, run_id
        if args.inner_plan:
            return _run_plan(Path(args.inner_plan), Path(args.results_dir))
        if args.jobs is not None and args.jobs < 1:
            raise UserError(f"--jobs {args.jobs} runs nothing.", fix="give --jobs 1 or more.")
        paths = _experiment_paths(args.experiments)
        results = Path(args.results_dir)
        if args.target == "vagrant" or args.target.startswith("ssh://"):
            return _run_remote(args, paths, results)
        args.jobs = args.jobs or os.cpu_count() or 1
        from harness.runner import run_local
        kernels = [None]
        if args.kernel or args.target == "vm":
            from harness.targets.vm import pick_kernel, release_of
            kernels = [pick_kernel(k) for k in (args.kernel or [None])]
            if len({release_of(k) for k in kernels}) < len(kernels):
                raise UserError("the same kernel was given twice.", fix="give each --kernel once.")
        from harness.targets.batch import BatchItem, run_batch
        items, matrices = [], {}
        for path in paths:             # every file and every cell checked before anything runs
            cells = load_cells(path)
            compared = bool(cells[0].label) or len(kernels) > 1
            matrix_dir = results / cells[0].experiment.name / run_id() if compared else None
            folders = []
            for kernel in kernels:
                for index, cell in enumerate(cells):
                    target, why = _choose_target(args, cell.experiment)
                    name = cell.experiment.name + (f"[{cell.label}]" if cell.label else "")
                    run_dir = None
                    if matrix_dir:
                        run_dir = matrix_dir / cell_folder(cell.label or cell.experiment.name)
                        if len(kernels) > 1:
                            run_dir = matrix_dir / f"kernel-{release_of(kernel)}" / run_dir.name
                            name += f"@{release_of(kernel)}"
                        folders.append(run_dir)
                    items.append(BatchItem(path, name, target, cell.experiment, index, run_dir, why,
                                           kernel if target == "vm" else None))
            if matrix_dir:
                matrices[matrix_dir] = folders
        if any(item.target == "vm" for item in items):
            if os.geteuid() != 0:
                raise UserError("the VM target needs root here.", fix="run it with sudo.")
            from harness.targets.vm import pick_kernel, run_in_vm
            if kernels == [None]:
                kernels = [pick_kernel(None)]
                for item in items:
                    item.kernel = kernels[0] if item.target == "vm" else None

        def plan_of(group) -> list[dict]:
            return [{"path": str(i.path.resolve()), "cell": i.cell, "run_dir": str(i.run_dir.resolve()) if i.run_dir else None}
                    for i in group]

        if len(items) == 1:
            item = items[0]
            _say(f"target: {item.target} ({item.why})")
            if item.target == "vm":
                return run_in_vm(item.kernel, plan_of([item]), results, args.vm_clock, on_line=_say_unmarked)
            return run_local(item.experiment, results, log=_say, run_dir=item.run_dir)[0]

        def local_item(item):
            try:
                return run_local(item.experiment, results, log=_say, run_dir=item.run_dir)
            except UserError as exc:
                _say(f"run-experiment: {exc}")
                return 2, None
            except RunFailed as exc:
                _say(f"run-experiment: {item.name}: the run failed and gives no verdict: {exc}")
                return 3, None

        def vm_group(group, on_line, started):
            return run_in_vm(group[0].kernel, plan_of(group), results, args.vm_clock, on_line=on_line, started=started)

        code = run_batch(items, local_item, vm_group, args.jobs, _say)
        if matrices:
            from harness.report.compare import write_comparison
            for matrix_dir, folders in matrices.items():
                _say("\n" + write_comparison(matrix_dir, folders))
        return code
    except UserError as exc:
        print(f"run-experiment: {exc}", file=sys.stderr)
        return 2
    except RunFailed as exc:
        print(f"run-experiment: the run failed and gives no verdict: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("run-experiment: interrupted; the lab was torn down.", file=sys.stderr)
        return 130


def _say_unmarked(line: str) -> None:
    if not line.startswith("@@"):
        _say(line)


if __name__ == "__main__":
    sys.exit(main())
