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
    parser.add_argument("experiment", help="experiment YAML: a path, or a name in experiments/ (handshake.yaml)")
    parser.add_argument("--target", choices=["auto", "local", "vm"], default="auto",
                        help="local: this kernel; vm: a kernel under QEMU via virtme-ng; auto (default): local "
                             "when this kernel has every module the experiment needs (netem...), else vm")
    parser.add_argument("--kernel", metavar="PATH", help="kernel image for the vm target (default: newest "
                        "installed /boot/vmlinuz-* whose modules include sch_netem)")
    parser.add_argument("--vm-clock", choices=["virtual", "host"], default="virtual",
                        help="vm target only. virtual (default): guest time counts executed instructions and skips "
                             "idle time, so timers fire exactly on time (measured: 100 ms RTT handshake = 100.0 ms); "
                             "host: guest time follows the host clock and emulation makes timers late by 1-30 ms")
    parser.add_argument("--results-dir", metavar="DIR", default="results", help="where results go (default: results)")
    return parser.parse_args(argv)


def _say(message: str) -> None:
    """Flushed at once: the VM target's output interleaves with ours on the same terminal."""
    print(message, flush=True)


def _terminate(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    try:
        from harness.load import load_experiment, resolve_experiment_path
        from harness.lab.preflight import missing_kernel_features
        path = resolve_experiment_path(args.experiment)
        experiment = load_experiment(path)
        target = args.target
        if target == "auto":
            missing = missing_kernel_features(experiment)
            if args.kernel:
                target, why = "vm", "a kernel image was given"
            elif missing:
                target, why = "vm", f"kernel {os.uname().release} lacks {', '.join(missing)}"
            else:
                target, why = "local", "this kernel has what the experiment needs"
            _say(f"target: {target} ({why})")
        if target == "vm":
            if os.geteuid() != 0:
                raise UserError("the VM target needs root here.", fix="run it with sudo.")
            from harness.targets.vm import pick_kernel, run_in_vm
            return run_in_vm(pick_kernel(args.kernel), path, Path(args.results_dir), args.vm_clock, log=_say)
        from harness.runner import run_local
        code, _ = run_local(experiment, Path(args.results_dir), log=_say)
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
