"""run-experiment: the command line. User mistakes print one paragraph, never a traceback."""
from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from harness.errors import RunFailed, UserError
from harness.load.matrix import MAX_CELLS

BUG = 70          # EX_SOFTWARE: an exception nobody anticipated; never 1, which means "an expectation failed"
EPILOG = """exit codes: 0 every expectation passed; 1 an expectation failed; 2 bad input or missing
tool; 3 the run could not support a result (impairment not applied, capture lost packets...);
70 a bug in the test bed (one line says where its traceback was saved); 130 interrupted.
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
    parser.add_argument("--check", action="store_true",
                        help="only load and check the files (every matrix cell, topology, the tools the run would "
                             "need): exit 0 or 2 within about a second, creating nothing; root not needed")
    parser.add_argument("--max-cells", type=int, default=MAX_CELLS, metavar="N",
                        help=f"refuse a matrix of more than N cells (default {MAX_CELLS}); the cells are counted before "
                             "any is loaded")
    args = parser.parse_args(argv)
    if args.target not in ("auto", "local", "vm", "vagrant") and not args.target.startswith("ssh://"):
        parser.error(f"--target {args.target}: give auto, local, vm, vagrant or ssh://user@host[:port]")
    return args


def _say(message: str) -> None:
    """Flushed at once: the VM target's output interleaves with ours on the same terminal."""
    print(message, flush=True)


def _terminate(signum, frame):
    raise KeyboardInterrupt


def _is_topology(path: Path) -> bool:
    """A topology that sits next to experiments (the README allows it): hosts:/links:, no steps:."""
    from harness.load.yaml_lines import load_yaml
    try:
        data = load_yaml(path)
    except UserError:
        return False            # loaded again as an experiment, which reports it with its line
    return "steps" not in data and ("hosts" in data or "links" in data)


def _experiment_paths(names: list[str]) -> list[Path]:
    from harness.load import resolve_experiment_path
    paths: list[Path] = []
    for name in names:
        if Path(name).is_dir():
            found = [p for p in sorted(Path(name).glob("*.yaml")) if not _is_topology(p)]
            if not found:
                raise UserError(f"the folder '{name}' holds no *.yaml experiments.", fix="give experiment files or another folder.")
            paths += found
        else:
            paths.append(resolve_experiment_path(name))
    return paths


def _check_only(args: argparse.Namespace, paths: list[Path]) -> int:
    """--check: every file, every cell, and what the preflight can say without building or
    loading anything into the kernel. Creates nothing (no results folder, no ledger)."""
    from harness.lab.preflight import check_tools, kernel_module_present, needed_modules
    from harness.load import load_cells
    for path in paths:
        remote = args.target == "vagrant" or args.target.startswith("ssh://")
        cells = load_cells(path, args.max_cells, frozenset() if remote else None)
        targets = set()
        for cell in cells:
            target = args.target
            if target == "auto":
                lacking = [m for m in needed_modules(cell.experiment) if not kernel_module_present(m)]
                target = "vm" if args.kernel or lacking else "local"
            if target == "local":
                check_tools(cell.experiment)
            targets.add(target)
        if "vm" in targets:
            from harness.targets.vm import pick_kernel
            for kernel in args.kernel or [None]:
                pick_kernel(kernel)
        where = ", ".join(sorted(targets))
        _say(f"{path}: ok ({len(cells)} cell{'s' if len(cells) != 1 else ''}; target {where})")
    return 0


def _save_traceback(exc: BaseException, folder: Path | None) -> str:
    """Keep an unexpected exception's traceback (the run folder, else the results folder, else a
    fresh file in the temp folder) and say where it went."""
    import tempfile
    import time
    import traceback
    text = "".join(traceback.format_exception(exc))
    for place in (getattr(exc, "run_dir", None), folder):
        if place is None:
            continue
        try:
            target = Path(place) / f"traceback-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt"
            if Path(place).is_dir():
                target.write_text(text)
                return str(target)
        except OSError:
            pass
    fd, name = tempfile.mkstemp(prefix="tcp-testbed-traceback-", suffix=".txt")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return name


def _bug(exc: BaseException, folder: Path | None, what: str = "", prog: str = "run-experiment") -> int:
    """One line for an exception nobody anticipated: it is a bug (exit 70, never 1)."""
    where = _save_traceback(exc, folder)
    print(f"{prog}: {what}a bug in the test bed, not in your files: {type(exc).__name__}: "
          f"{str(exc)[:200]}; the traceback is in {where} (please report it).".replace("\n", " "), file=sys.stderr, flush=True)
    return BUG


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
            cell = load_cells(Path(entry["path"]), entry.get("max_cells", MAX_CELLS))[entry["cell"]]
            code, run_dir = run_local(cell.experiment, results, log=_say,
                                      run_dir=Path(entry["run_dir"]) if entry["run_dir"] else None)
        except UserError as exc:
            _say(f"run-experiment: {exc}")
            code = 2
        except RunFailed as exc:
            _say(f"run-experiment: the run failed and gives no verdict: {exc}")
            code = 3
        except Exception as exc:        # one item's bug must not cost the others their verdicts
            code = _bug(exc, Path(entry["run_dir"]) if entry["run_dir"] else results)
        worst = max(worst, code)
        _say(f"@@done {index} {code} {time.time() - began:.1f} {run_dir or ''}")
    return worst


def _run_remote(args: argparse.Namespace, loaded: dict, results: Path) -> int:
    """Every file was checked here first (a typo fails before anything connects), then run remotely."""
    from harness.targets.ssh import parse_ssh_target, run_over_ssh, vagrant_remote
    experiments = [(path, cells[0].experiment.topology.source) for path, cells in loaded.items()]
    remote = vagrant_remote() if args.target == "vagrant" else parse_ssh_target(args.target)
    passthrough = ["--vm-clock", args.vm_clock, f"--max-cells={args.max_cells}"] + (["--jobs", str(args.jobs)] if args.jobs else [])
    passthrough += [f"--kernel={k}" for k in args.kernel or []]
    return run_over_ssh(remote, experiments, passthrough, results, _say)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    previous = {sig: signal.signal(sig, _terminate) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        from harness.load import load_cells
        from harness.plan import cell_folder, run_id
        if args.inner_plan:
            return _run_plan(Path(args.inner_plan), Path(args.results_dir))
        if args.jobs is not None and args.jobs < 1:
            raise UserError(f"--jobs {args.jobs} runs nothing.", fix="give --jobs 1 or more.")
        if args.max_cells < 1:
            raise UserError(f"--max-cells {args.max_cells} allows nothing.", fix="give --max-cells 1 or more.")
        if args.kernel and args.target == "local":
            raise UserError("--kernel picks the VM's kernel, but --target local runs on this machine's own kernel.",
                            fix="drop --kernel, or use --target vm (or auto).")
        paths = _experiment_paths(args.experiments)
        if args.check:
            return _check_only(args, paths)
        remote = args.target == "vagrant" or args.target.startswith("ssh://")
        # every file and cell, before anything is made; a remote run checks node names against its own interfaces
        loaded = {path: load_cells(path, args.max_cells, frozenset() if remote else None) for path in paths}
        results = Path(args.results_dir)
        from harness.report.evidence import check_writable
        check_writable(results)        # before anything is built, booted or connected to
        if remote:
            return _run_remote(args, loaded, results)
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
            cells = loaded[path]
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
            from harness.targets.vm import item_limit_s
            return [{"path": str(i.path.resolve()), "cell": i.cell, "run_dir": str(i.run_dir.resolve()) if i.run_dir else None,
                     "max_cells": args.max_cells, "limit_s": item_limit_s(i.experiment)} for i in group]

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
            except Exception as exc:    # one item's bug must not cost the others their verdicts
                return _bug(exc, item.run_dir or results, f"{item.name}: "), None

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
    except KeyboardInterrupt as exc:     # Interrupted says what was stopped; a bare one came before anything started
        print(f"run-experiment: {str(exc) or 'interrupted before any lab or VM was started; nothing was left behind.'}",
              file=sys.stderr)
        return 130
    except Exception as exc:
        results_dir = Path(args.results_dir)
        return _bug(exc, None if args.check or not results_dir.is_dir() else results_dir)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def compare_runs(argv: list[str] | None = None) -> int:
    """compare-runs with run-experiment's exit-code promise: a bug is exit 70 and one line."""
    from harness.report.compare import main as compare_main
    try:
        return compare_main(argv)
    except UserError as exc:
        print(f"compare-runs: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        return _bug(exc, None, prog="compare-runs")


def _say_unmarked(line: str) -> None:
    if not line.startswith("@@"):
        _say(line)


if __name__ == "__main__":
    sys.exit(main())
