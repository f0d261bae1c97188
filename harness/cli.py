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
    parser.add_argument("--target", choices=["auto", "local", "vm"], default="auto",
                        help="local: this kernel; vm: a kernel under QEMU via virtme-ng; auto (default): local "
                             "when this kernel has every module the experiment needs (netem...), else vm")
    parser.add_argument("--kernel", metavar="PATH", help="kernel image for the vm target (default: newest "
                        "installed /boot/vmlinuz-* whose modules include sch_netem)")
    parser.add_argument("--vm-clock", choices=["virtual", "host"], default="virtual",
                        help="vm target only. virtual (default): guest time counts executed instructions and skips "
                             "idle time, so timers fire exactly on time (measured: 100 ms RTT handshake = 100.0 ms); "
                             "host: guest time follows the host clock and emulation makes timers late by 1-30 ms")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, metavar="N",
                        help="VMs run side by side when several experiments are given (default: the CPU count; "
                             "a VM on the virtual clock uses one)")
    parser.add_argument("--cell", type=int, help=argparse.SUPPRESS)      # the VM target's inner run
    parser.add_argument("--run-dir", help=argparse.SUPPRESS)
    parser.add_argument("--results-dir", metavar="DIR", default="results", help="where results go (default: results)")
    return parser.parse_args(argv)


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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    try:
        from harness.load import load_cells
        from harness.plan import cell_folder, run_id
        if args.jobs < 1:
            raise UserError(f"--jobs {args.jobs} runs nothing.", fix="give --jobs 1 or more.")
        paths = _experiment_paths(args.experiments)
        results = Path(args.results_dir)
        from harness.runner import run_local
        if args.cell is not None:      # inside the VM: one cell of a matrix, into the folder given
            cell = load_cells(paths[0])[args.cell]
            return run_local(cell.experiment, results, log=_say, run_dir=Path(args.run_dir))[0]
        from harness.targets.batch import BatchItem, run_batch
        items, matrices = [], {}
        for path in paths:             # every file and every cell checked before anything runs
            cells = load_cells(path)
            matrix_dir = results / cells[0].experiment.name / run_id() if cells[0].label else None
            for index, cell in enumerate(cells):
                target, why = _choose_target(args, cell.experiment)
                name = cell.experiment.name + (f"[{cell.label}]" if cell.label else "")
                run_dir = matrix_dir / cell_folder(cell.label) if matrix_dir else None
                items.append(BatchItem(path, name, target, cell.experiment, index if matrix_dir else None, run_dir, why))
            if matrix_dir:
                matrices[matrix_dir] = cells
        if any(item.target == "vm" for item in items):
            if os.geteuid() != 0:
                raise UserError("the VM target needs root here.", fix="run it with sudo.")
            from harness.targets.vm import pick_kernel, run_in_vm
            kernel = pick_kernel(args.kernel)

        def inner_args(item) -> list[str]:
            return ["--cell", str(item.cell), "--run-dir", str(item.run_dir.resolve())] if item.cell is not None else []

        if len(items) == 1:
            item = items[0]
            _say(f"target: {item.target} ({item.why})")
            if item.target == "vm":
                return run_in_vm(kernel, item.path, results, args.vm_clock, log=_say, extra=inner_args(item))
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

        def vm_item(item, prefix, log, started):
            return run_in_vm(kernel, item.path, results, args.vm_clock, log=log, prefix=prefix, started=started,
                             extra=inner_args(item))

        code = run_batch(items, local_item, vm_item, args.jobs, _say)
        if matrices:
            from harness.report.compare import write_comparison
            for matrix_dir, cells in matrices.items():
                _say("\n" + write_comparison(matrix_dir, [matrix_dir / cell_folder(c.label) for c in cells]))
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


if __name__ == "__main__":
    sys.exit(main())
