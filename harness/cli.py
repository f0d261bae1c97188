"""run-experiment: the command line. User mistakes print one paragraph, never a traceback."""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from harness.errors import RunFailed, UserError
from harness.load.matrix import MAX_CELLS
from harness.runlog import console, say

BUG = 70          # EX_SOFTWARE: an exception nobody anticipated; never 1, which means "an expectation failed"
EPILOG = """exit codes: 0 every expectation passed; 1 an expectation failed; 2 bad input or missing
tool; 3 the run could not support a result (impairment not applied, capture lost packets...);
70 a bug in the test bed (one line says where its traceback was saved); 130 interrupted.
Results go to RESULTS_DIR/<experiment>/<run-id>/ (report.html, result.json, pcap/, samples/, steps/).
`run-experiment claims [N...] [--kernel A --kernel B]` runs the experiments that test the seed's
claims (all 13, or those numbered) and writes claims.html and claims.md."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="run-experiment", epilog=EPILOG,
                                     description="Run a TCP experiment on a real Linux kernel and judge it.")
    parser.add_argument("experiments", nargs="*", metavar="EXPERIMENT",
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
    parser.add_argument("--observer", choices=["trace", "samples"], default="trace",
                        help="how socket states are recorded. trace (default): the kernel's tracepoints give every "
                             "change of a full socket exactly, a sparse sampler adds request and TIME-WAIT sockets and "
                             "cross-checks them; samples: the sampler alone, dense (every 10 ms around activity), as "
                             "before tracing; for comparing the observers' cost (scripts/benchmark)")
    parser.add_argument("--jobs", type=int, metavar="N",
                        help="VMs run side by side when several experiments are given (default: the CPU count; "
                             "a VM on the virtual clock uses one)")
    parser.add_argument("--warm", action="store_true",
                        help="vm target: keep the VM up after the run (until 10 min after its last run), so the next "
                             "run with the same kernel, clock and --results-dir skips the boot and Python's start "
                             "(one warm VM per kernel; runs take turns in it); replaced by a fresh one whenever the "
                             "harness code changed; stopped by --warm-stop")
    parser.add_argument("--warm-stop", action="store_true", help="stop every warm VM (see --warm), say which, and run nothing")
    parser.add_argument("--inner-plan", help=argparse.SUPPRESS)      # the VM target's inner run
    parser.add_argument("--results-dir", metavar="DIR", default="results", help="where results go (default: results)")
    parser.add_argument("--open", action="store_true",
                        help="open the run's report.html (several runs: their index.html) in a browser when done; "
                             "without a display the path is printed")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show every external command (tc, nft, sysctl, ip, tcpdump...) live on stderr; "
                             "each run's run.log has them either way")
    parser.add_argument("--check", action="store_true",
                        help="only load and check the files (every matrix cell, topology, the tools the run would "
                             "need): exit 0 or 2 within about a second, creating nothing; root not needed")
    parser.add_argument("--max-cells", type=int, default=MAX_CELLS, metavar="N",
                        help=f"refuse a matrix of more than N cells (default {MAX_CELLS}); the cells are counted before "
                             "any is loaded")
    parser.add_argument("--draw", metavar="TOPOLOGY",
                        help="only draw a topology (a .yaml path or a name in topologies/) as an SVG: hosts, switches, "
                             "routers, each link's settings per direction, subnets and addresses; nothing is run")
    parser.add_argument("-o", "--out", metavar="FILE.svg", help="with --draw: where the SVG goes (default: ./<topology name>.svg)")
    args = parser.parse_args(argv)
    if args.draw is None and not args.experiments and not args.warm_stop:
        parser.error("give an experiment file (or --draw TOPOLOGY, or --warm-stop)")
    if args.draw is not None and args.experiments:
        parser.error(f"--draw draws one topology and runs nothing: drop {' '.join(args.experiments)}, or drop --draw")
    if args.out is not None and args.draw is None:
        parser.error("--out says where --draw writes its SVG: give --draw TOPOLOGY too")
    if args.target not in ("auto", "local", "vm", "vagrant") and not args.target.startswith("ssh://"):
        parser.error(f"--target {args.target}: give auto, local, vm, vagrant or ssh://user@host[:port]")
    return args


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
    for path in paths:
        cells, targets = _check_file(args, path)
        if "vm" in targets:
            from harness.plan.kernels import pick_kernel
            for kernel in args.kernel or [None]:
                pick_kernel(kernel)
        where = ", ".join(sorted(targets))
        follows = _facts_followed(cells)
        say(f"{path}: ok ({len(cells)} cell{'s' if len(cells) != 1 else ''}; target {where}"
            + (f"; expectations follow {follows}" if follows else "") + ")")
    return 0


def _check_file(args: argparse.Namespace, path: Path) -> tuple[list, set[str]]:
    """One file's cells, and the targets they would run on (tools checked for the local ones):
    the run's rule (choose_target), asked read-only — --check promises to change nothing, and
    the run's preflight loads missing modules (modprobe) and adds an nft table to probe."""
    import functools
    from harness.lab.preflight import check_tools, missing_kernel_features
    from harness.load import load_cells
    from harness.plan.batch_plan import choose_target
    cells = load_cells(path, args.max_cells, frozenset() if _remote(args) else None)
    read_only = functools.partial(missing_kernel_features, load=False)
    targets = set()
    for cell in cells:
        target = choose_target(args.target, bool(args.kernel), cell.experiment, read_only)[0]
        if target == "local":
            check_tools(cell.experiment)
        targets.add(target)
    return cells, targets


def _facts_followed(cells: list) -> str:
    """'the kernel, client net.ipv4.tcp_syn_linear_timeouts': what the cells' expectations read once
    the lab is up (worked out per run; --check saw them with this machine's facts)."""
    kernel, sysctls = False, set()
    for cell in cells:
        source = cell.experiment.expect_source
        if source:
            kernel |= source.kernel
            sysctls |= {f"{host} {name}" for host, names in source.sysctls.items() for name in names}
    return ", ".join((["the kernel"] if kernel else []) + sorted(sysctls))


def _remote(args: argparse.Namespace) -> bool:
    return args.target == "vagrant" or args.target.startswith("ssh://")


def _save_traceback(exc: BaseException, folder: Path | None) -> str:
    """Keep an unexpected exception's traceback (the run folder, else the results folder, else a
    fresh file in the temp folder) and say where it went; when no place takes it (a full or
    unwritable temp folder), say so and where it was raised: the bug path never prints a traceback."""
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
                return f"the traceback is in {target}"
        except OSError:
            pass
    try:
        fd, name = tempfile.mkstemp(prefix="tcp-testbed-traceback-", suffix=".txt")
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
    except OSError as error:
        frames = traceback.extract_tb(exc.__traceback__)
        where = f", raised at {frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name}" if frames else ""
        last = text.strip().splitlines()[-1]
        return f"the traceback could not be saved ({error.strerror or error}): its last line is {last!r}{where}"
    return f"the traceback is in {name}"


def _bug(exc: BaseException, folder: Path | None, what: str = "", prog: str = "run-experiment") -> int:
    """One line for an exception nobody anticipated: it is a bug (exit 70, never 1)."""
    where = _save_traceback(exc, folder)
    print(f"{prog}: {what}a bug in the test bed, not in your files: {type(exc).__name__}: "
          f"{str(exc)[:200]}; {where} (please report it).".replace("\n", " "), file=sys.stderr, flush=True)
    return BUG


def _failed(exc: BaseException, folder: Path | None, name: str = "", out=None, prog: str = "run-experiment") -> int:
    """The one mapping from an exception to what the user reads and the exit code: bad input 2,
    no verdict 3, interrupted 130, anything else a bug (70). `name` says which item of several."""
    out = out or sys.stderr
    if isinstance(exc, UserError):
        print(f"{prog}: {exc}", file=out, flush=True)
        return 2
    if isinstance(exc, RunFailed):
        print(f"{prog}: {name}the run failed and gives no verdict: {exc}", file=out, flush=True)
        return 3
    if isinstance(exc, KeyboardInterrupt):      # Interrupted says what was stopped; a bare one came before anything started
        print(f"{prog}: {str(exc) or 'interrupted before any lab or VM was started; nothing was left behind.'}",
              file=out, flush=True)
        return 130
    return _bug(exc, folder, name, prog)


def _run_one(plan, folder: Path, out=None, name: str = "") -> tuple[int, Path | None]:
    """One planned run of several; its failure is an exit code (a Ctrl-C is not: it ends them all)."""
    from harness.runner import run
    try:
        return run(plan)
    except Exception as exc:        # one item's bug must not cost the others their verdicts
        return _failed(exc, folder, name, out), None


def _run_inner(plan_file: Path, results: Path) -> int:
    """Inside a VM: run each planned item (a file and, for a matrix, a cell) one after another,
    framing each with the protocol's start/done markers for the host."""
    import time
    from harness.load import load_cells
    from harness.plan import plan_run
    from harness.targets import protocol
    items, guest = protocol.read_plan(plan_file)
    worst = 0
    for index, item in enumerate(items):
        say(protocol.start_marker(index))
        began, run_dir = time.time(), None
        try:
            cell = load_cells(item.path, item.max_cells)[item.cell]
            code, run_dir = _run_one(plan_run(cell.experiment, results, item.run_dir, guest), item.run_dir or results,
                                     out=sys.stdout)
        except Exception as exc:        # one item's bug must not cost the others their verdicts
            code = _failed(exc, item.run_dir or results, out=sys.stdout)
        worst = max(worst, code)
        say(protocol.done_marker(index, code, time.time() - began, run_dir))
    return worst


def _run_remote(args: argparse.Namespace, loaded: dict, results: Path) -> int:
    """Every file was checked here first (a typo fails before anything connects), then run remotely."""
    from harness.targets.ssh import parse_ssh_target, run_over_ssh, vagrant_remote
    experiments = [(path, cells[0].experiment.topology.source) for path, cells in loaded.items()]
    remote = vagrant_remote() if args.target == "vagrant" else parse_ssh_target(args.target)
    passthrough = ["--vm-clock", args.vm_clock, f"--max-cells={args.max_cells}", f"--observer={args.observer}"] + (["--jobs", str(args.jobs)] if args.jobs else [])
    passthrough += [f"--kernel={k}" for k in args.kernel or []]
    passthrough += ["-v"] if args.verbose else []
    return run_over_ssh(remote, experiments, passthrough, results)


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and hand over: inner VM plan, --check, a remote, or a batch plan."""
    args = parse_args(argv)
    console(args.verbose)
    previous = {sig: signal.signal(sig, _terminate) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        return _main(args)
    except (Exception, KeyboardInterrupt) as exc:
        results_dir = Path(args.results_dir)
        return _failed(exc, None if args.check or not results_dir.is_dir() else results_dir)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _check_arguments(args: argparse.Namespace) -> None:
    if args.jobs is not None and args.jobs < 1:
        raise UserError(f"--jobs {args.jobs} runs nothing.", fix="give --jobs 1 or more.")
    if args.max_cells < 1:
        raise UserError(f"--max-cells {args.max_cells} allows nothing.", fix="give --max-cells 1 or more.")
    if args.warm and (args.target == "local" or _remote(args)):
        raise UserError(f"--warm keeps a local VM up, but --target {args.target} runs no local VM.",
                        fix="drop --warm, or use --target vm (or auto).")
    if args.kernel and args.target == "local":
        raise UserError("--kernel picks the VM's kernel, but --target local runs on this machine's own kernel.",
                        fix="drop --kernel, or use --target vm (or auto).")


def _main(args: argparse.Namespace) -> int:
    from harness import profile
    if args.inner_plan:
        profile.to_console()          # the host stamps the guest's phases on its own clock
        return _run_inner(Path(args.inner_plan), Path(args.results_dir))
    if args.warm_stop:
        from harness.targets.warm import stop_warm
        return stop_warm(say)
    profile.phase("host-start", profile.process_start())
    profile.phase("plan")
    from harness.load import load_cells
    if args.draw is not None:
        from harness.report.topology_draw import draw_topology
        written = draw_topology(Path(args.draw), None if args.out is None else Path(args.out))
        say(f"{args.draw}: drawn in {written}")
        return 0
    _check_arguments(args)
    if args.experiments[0] == "claims" and not Path("claims").exists():
        return _claims(args, _claim_numbers(args.experiments[1:]))
    paths = _experiment_paths(args.experiments)
    if args.check:
        return _check_only(args, paths)
    # every file and cell, before anything is made; a remote run checks node names against its own interfaces
    loaded = {path: load_cells(path, args.max_cells, frozenset() if _remote(args) else None) for path in paths}
    results = Path(args.results_dir)
    from harness.report.evidence import check_writable
    check_writable(results)        # before anything is built, booted or connected to
    if _remote(args):
        return _run_remote(args, loaded, results)
    from harness.plan.batch_plan import plan_batch
    return _run_batch(args, plan_batch(loaded, results, args.target, args.kernel, args.observer), results)


def _claim_numbers(words: list[str]) -> set[int] | None:
    """`run-experiment claims 5 6`: the claims asked for (None: all 13)."""
    from harness.claims import CLAIMS
    known = {c.number for c in CLAIMS}
    wanted = set()
    for word in words:
        if not word.isdigit() or int(word) not in known:
            raise UserError(f"`claims {' '.join(words)}`: {word!r} is not one of the seed's claims.",
                            fix=f"give claim numbers {min(known)} to {max(known)} (../shared/BRIEF.md §6), or none for all.")
        wanted.add(int(word))
    return wanted or None


def _claims(args: argparse.Namespace, only: set[int] | None) -> int:
    """`run-experiment claims [N...]`: every shipped experiment that tests one of the seed's claims
    (or one of those given), on each --kernel, then claims.html and claims.md
    (RESULTS/claims/<time>/) judging each claim."""
    from harness.load import load_cells
    from harness.plan.batch_plan import plan_batch
    from harness.report.claims import claims_experiments, write_claims_report
    from harness.report.evidence import check_writable
    from harness.shipped import experiments_dir
    paths = claims_experiments(experiments_dir(), only)
    if args.check:
        return _check_only(args, paths)
    if _remote(args):
        raise UserError("`claims` runs here or in local VMs, not over ssh.", fix="drop --target, or run it on that machine.")
    loaded = {path: load_cells(path, args.max_cells) for path in paths}
    results = Path(args.results_dir)
    check_writable(results)
    asked = ", ".join(map(str, sorted(only))) if only else "1-13"
    say(f"the seed's claims {asked}: tested by {len(paths)} experiment(s): " + ", ".join(p.stem for p in paths))
    plan = plan_batch(loaded, results, args.target, args.kernel, args.observer)
    code = _carry_out(args, plan, results)
    from harness.plan.folders import run_id
    folder = results / "claims" / run_id()
    try:
        md, html = write_claims_report(folder, [Path(item.results) for item in plan.items if item.results], only)
    except Exception as exc:       # noqa: BLE001 - the runs keep their verdicts and exit code
        folder.mkdir(parents=True, exist_ok=True)
        say(f"claims.html could not be written in {folder}: {type(exc).__name__}: {str(exc)[:200]}; "
            f"{_save_traceback(exc, folder)}. The runs' verdicts stand.")
        return code
    say(f"\nclaims: {html}\n        {md}")
    if args.open:
        _open_page(html)
    return code


def _run_batch(args: argparse.Namespace, plan, results: Path) -> int:
    """Carry out a batch plan, then its pictures: a sweep's or a batch's index.html; --open."""
    code = _carry_out(args, plan, results)
    page = _write_indexes(plan, results)
    if args.open:
        _open_page(page)
    return code


def _write_indexes(plan, results: Path) -> Path | None:
    """The page that shows the batch: one run's report.html, else the index.html of its runs (a
    matrix's next to its cells; several files': a batch folder of its own)."""
    runs = [Path(item.results) for item in plan.items if item.results]
    if len(plan.items) == 1:
        return runs[0] / "report.html" if runs else None
    page = None
    if plan.matrices:
        from harness.report.compare import write_comparison
        for matrix_dir, folders in plan.matrices.items():
            say("\n" + write_comparison(matrix_dir, folders))
            page = _index(matrix_dir, folders, matrix_dir.parent.name)
    if len(plan.matrices) != 1 or len(plan.items) > len(next(iter(plan.matrices.values()))):
        missing = [f"{item.name}: {item.note or 'no result folder'}" for item in plan.items if not item.results]
        page = _index(batch_folder(results), runs, f"{len(plan.items)} runs", missing)
    return page


def _index(folder: Path, runs: list[Path], title: str, notes: list[str] | None = None) -> Path | None:
    """index.html over `runs` (`notes`: the items that left no folder, said in its header); a
    failure to draw is said, never costs the runs their verdicts."""
    from harness.report.index import write_index
    try:
        page = write_index(folder, runs, title, notes=notes or ())
    except Exception as exc:       # noqa: BLE001 - said with its traceback kept, like the runner's report
        say(f"index.html could not be drawn in {folder}: {_save_traceback(exc, folder)}; a bug in the test bed, "
            f"the verdicts stand.")
        return None
    say(f"index: {page}")
    return page


def batch_folder(results: Path) -> Path:
    """Where a batch of several files keeps its index: RESULTS/batches/<time>/."""
    from harness.plan.folders import run_id
    return results / "batches" / run_id()


def _open_page(page: Path | None) -> None:
    """--open: the page in the desktop's browser; with no display, where it is."""
    if page is None or not page.exists():
        say("--open: there is no page to open (no run gave a result).")
        return
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        say(f"--open: no display here; open {page.resolve().as_uri()} in a browser.")
        return
    import webbrowser
    if not webbrowser.open(page.resolve().as_uri()):
        say(f"--open: no browser found; open {page.resolve().as_uri()} in one.")


def _carry_out(args: argparse.Namespace, plan, results: Path) -> int:
    """Carry out a batch plan (every local item's RunPlan made with it, before anything is built):
    one item directly, several side by side in VMs or one by one here. Each item's folder is
    kept in item.results."""
    from harness.targets.batch import run_batch
    from harness.targets.vm import plan_entries, run_in_vm
    if args.warm:
        from harness.targets.warm import run_warm as run_in_vm      # the same contract, in a VM kept up
    if len(plan.items) == 1:
        item = plan.items[0]
        say(f"target: {item.target} ({item.why})")
        if item.target == "vm":
            return run_in_vm(item.kernel, plan_entries([item], args.max_cells), results, args.vm_clock,
                             on_line=lambda line: _say_unmarked(line, item), verbose=args.verbose,
                             observer=args.observer)
        if item.plan_error:
            raise item.plan_error
        from harness.runner import run
        code, run_dir = run(item.run_plan)
        item.results = str(run_dir)
        _write_local_profile(run_dir)
        return code

    def local_item(item):
        if item.plan_error:
            return _failed(item.plan_error, item.run_dir or results, f"{item.name}: ", sys.stdout), None
        code, run_dir = _run_one(item.run_plan, item.run_dir or results, sys.stdout, f"{item.name}: ")
        _write_local_profile(run_dir)
        return code, run_dir

    def vm_group(group, on_line, started):
        return run_in_vm(group[0].kernel, plan_entries(group, args.max_cells), results, args.vm_clock,
                         on_line=on_line, started=started, verbose=args.verbose, observer=args.observer)

    jobs = 1 if args.warm else args.jobs or os.cpu_count() or 1       # one warm VM per kernel: runs take turns
    return run_batch(plan.items, local_item, vm_group, jobs, say)


def compare_runs(argv: list[str] | None = None) -> int:
    """compare-runs with run-experiment's exit-code promise: a bug is exit 70 and one line."""
    from harness.report.compare import main as compare_main
    try:
        return compare_main(argv)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        return _failed(exc, None, prog="compare-runs")


def _write_local_profile(run_dir: Path | None) -> None:
    """profile.json for a run on this machine: its phases since the last run's (harness.profile)."""
    from harness import profile
    marks = profile.take()
    if run_dir is not None and run_dir.is_dir():
        profile.write_profile(run_dir, marks, time.time(), "local")


def _say_unmarked(line: str, item=None) -> None:
    """A VM's output line, said unless it is a protocol marker; a done marker gives `item` its folder."""
    from harness.targets.protocol import is_marker, parse_marker
    if not is_marker(line):
        say(line)
        return
    marker = parse_marker(line)
    if item is not None and marker and marker.kind == "done" and marker.run_dir:
        item.results = str(marker.run_dir)


if __name__ == "__main__":
    sys.exit(main())
