"""Inside a warm VM: the serve loop that keeps Python (and every harness module) loaded between runs.

Booting the kernel and importing the harness over 9p cost most of a cold run's wall time; this loop
pays them once. It reads commands on its stdin, which virtme-ng connects to the host's vng stdin
(a virtio-serial port). Blocking on it is not enough to idle: under `-icount shift=0,sleep=off`
the virtual clock warps to the guest's next timer and QEMU spins a host core, so after each run's
after-work the loop prints `@@warm-idle` and the keeper stops the vCPUs until its next command:
  `run PLAN_FILE VERBOSE EPOCH`
                        set the guest's wall clock to the host's EPOCH (an idle guest's clock races
                        ahead: the virtual clock skips idle time; run ids are wall-clock times),
                        fork a child that runs the plan exactly as a cold VM's inner command does
                        (harness.cli.main --inner-plan: same @@start/@@done markers), then print
                        `@@warm-end CODE` (a child killed by a signal: 130 for SIGINT/SIGTERM, else 3);
  `cancel`              SIGINT the running child: its runner tears its lab down and says so;
  `quit` or EOF         leave (the VM powers off).
Each run is a fork of the loop after its imports: it starts from the same pristine state every
time (no run sees another's module state), and forking costs milliseconds, not an exec.
"""
from __future__ import annotations

import importlib
import os
import select
import shlex
import signal
import sys
import time
from dataclasses import dataclass

READY = "@@warm-ready"
END = "@@warm-end"
IDLE = "@@warm-idle"          # a run's after-work is done: nothing runs until the next command
LEARNED = "/tmp/tcp-testbed-warm-modules"    # guest memory: the modules the last run imported


def end_line(code: int) -> str:
    return f"{END} {code}"


def parse_end(line: str) -> int | None:
    """The exit code an end line carries; None for any other line."""
    word, _, rest = line.partition(" ")
    return int(rest) if word == END and rest.strip().lstrip("-").isdigit() else None


@dataclass(frozen=True)
class Command:
    op: str                  # run | cancel | quit | "" (a line that is no command)
    plan_file: str = ""
    verbose: bool = False
    epoch: float = 0.0


def parse_command(line: str) -> Command:
    """One command line read back; Command("") for anything malformed (never raises)."""
    try:
        words = shlex.split(line)
    except ValueError:
        return Command("")
    if len(words) == 4 and words[0] == "run" and words[2] in ("0", "1"):
        try:
            return Command("run", words[1], words[2] == "1", float(words[3]))
        except ValueError:
            return Command("")
    if len(words) == 1 and words[0] in ("cancel", "quit"):
        return Command(words[0])
    return Command("")


def run_command(plan_file: str, verbose: bool, epoch: float) -> str:
    return f"run {shlex.quote(plan_file)} {int(verbose)} {epoch:.6f}"


class LineReader:
    """Lines from a file descriptor without Python's buffering, so select() on it tells the truth."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = b""
        self.eof = False

    def _fill(self) -> None:
        chunk = os.read(self.fd, 4096)
        if chunk:
            self.buffer += chunk
            return
        self.eof = True
        if self.buffer:
            self.buffer += b"\n"

    def _split(self) -> list[str]:
        *lines, self.buffer = self.buffer.split(b"\n")
        return [raw.decode(errors="replace").strip() for raw in lines]

    def read_available(self) -> list[str]:
        """The complete lines after one read (call when the fd is readable)."""
        self._fill()
        return self._split()

    def next_line(self) -> str | None:
        """Block for the next line; None at EOF."""
        while b"\n" not in self.buffer:
            if self.eof:
                return None
            self._fill()
        raw, self.buffer = self.buffer.split(b"\n", 1)
        return raw.decode(errors="replace").strip()


def preload(names) -> int:
    """Import `names` (each later run forks with them loaded); return how many are loaded now.
    The loop starts with the harness's entry point only, so the first run costs what a cold one
    does; after each run it imports what that run imported (learn), so the next runs import
    nothing over 9p."""
    for name in names:
        if name not in sys.modules:
            try:
                importlib.import_module(name)
            except Exception:      # noqa: BLE001 - the run imports it again and reports it there
                pass
    return len(sys.modules)


def learn() -> int:
    """Import what the last run imported (its child wrote the names to LEARNED)."""
    try:
        with open(LEARNED) as handle:
            names = handle.read().split()
    except OSError:
        return len(sys.modules)
    return preload(name for name in names if not name.startswith("__"))


def _child(plan_file: str, results: str, verbose: bool) -> None:
    """The forked run: the cold inner command's own entry point, then out without atexit."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    code = 70
    try:
        from harness.cli import main
        code = main(["--target", "local", "--results-dir", results, "--inner-plan", plan_file,
                     *(["-v"] if verbose else []), "unused"])
    finally:
        _write_learned()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code & 0xFF)


def _write_learned() -> None:
    try:
        with open(LEARNED, "w") as handle:
            handle.write("\n".join(sorted(sys.modules)))
    except OSError:
        pass


def exit_code(status: int) -> int:
    """A child's wait status as a run's exit code: its own code, or for a death by signal 130 (an
    interrupted run: SIGINT, SIGTERM) or 3 (anything else: the run failed), never 256 - signal."""
    if os.WIFSIGNALED(status):
        return 130 if os.WTERMSIG(status) in (signal.SIGINT, signal.SIGTERM) else 3
    return os.waitstatus_to_exitcode(status) & 0xFF


def run_forked(plan_file: str, results: str, verbose: bool, commands: LineReader) -> int:
    """Run one plan in a forked child; a `cancel` meanwhile SIGINTs it (then SIGTERM if asked again)."""
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        _child(plan_file, results, verbose)
    pidfd = os.pidfd_open(pid)
    cancels = 0
    try:
        while True:
            ready = select.select([pidfd] + ([] if commands.eof else [commands.fd]), [], [])[0]
            if pidfd in ready:
                return exit_code(os.waitpid(pid, 0)[1])
            for line in commands.read_available():
                if parse_command(line).op in ("cancel", "quit"):
                    os.kill(pid, signal.SIGINT if cancels == 0 else signal.SIGTERM)
                    cancels += 1
            if commands.eof and cancels == 0:      # the host is gone: stop the run, keep nothing half done
                os.kill(pid, signal.SIGINT)
                cancels += 1
    finally:
        os.close(pidfd)


def serve(results: str) -> int:
    preload(["harness.cli"])
    print(READY, flush=True)
    commands = LineReader(sys.stdin.fileno())
    while (line := commands.next_line()) is not None:
        command = parse_command(line)
        if command.op == "quit":
            break
        if command.op == "run":
            time.clock_settime(time.CLOCK_REALTIME, command.epoch)
            code = run_forked(command.plan_file, results, command.verbose, commands)
            print(end_line(code), flush=True)
            if commands.eof:
                break
            learn()             # while the host reads the verdict
            print(IDLE, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(serve(sys.argv[1]))
