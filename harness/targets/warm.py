"""Warm VM target: a VM that stays up between invocations behind a local unix socket, so someone
running one experiment again and again pays the kernel boot and the Python imports once.

Pieces:
- the keeper (harness.targets.warm_keeper), a daemon in its own session, boots the VM with the
  cold target's own vng command line (harness.targets.vm.vng_command) and a guest serve loop
  (harness.targets.warm_guest); it forwards the guest's console lines to one client at a time;
- the client, run_warm(), has run_in_vm()'s contract: same plan entries, same output lines and
  markers through `on_line`, same exit codes;
- stop_warm() stops every warm VM (`run-experiment --warm-stop`).

A warm VM is keyed by what is fixed at its boot: the kernel image (path and release), the clock,
the Python that runs the harness and the results folder (the guest's only writable folder, vng
--rwdir, is chosen at boot). A run with another results folder gets another warm VM. The observer
and -v are per run (the plan file, the run command). The harness code is not part of the key but
of its freshness: the keeper records a fingerprint of harness/ at boot, and a client whose code
differs has that VM stopped and a fresh one booted, so an edit is never run by old code.

Safety: the keeper's VM is recorded in a ledger (harness.lab.leftovers) with a guardian, so a
killed keeper leaves no QEMU; it stops itself after IDLE_S without a run (host time: between runs
the VM's vCPUs are stopped, so an idle -icount guest does not spin a host core); a client that dies
or is interrupted has the guest SIGINT the run (its lab is torn down, as for a local Ctrl-C) while
the VM stays up. The client sends its run only once the keeper accepted its connection: a Ctrl-C
before that leaves nothing to cancel, and a keeper that closes instead (it was shutting down) is
waited out and a fresh one booted. The plan file is the client's to remove whenever no `end` came.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from harness import profile
from harness.errors import RunFailed
from harness.lab.leftovers import REGISTRY, Interrupted, same_process, start_time
from harness.shipped import CODE_ROOT
from harness.targets import protocol

WARM_DIR = REGISTRY / "warm"
IDLE_S = 600.0                 # a warm VM with no run for this long stops itself
CANCEL_WAIT_S = 120.0          # after a Ctrl-C, how long the client waits to see the run's clean-up
START_WAIT_S = 60.0            # how long a new keeper may take to open its socket
STOP_WAIT_S = 60.0             # how long --warm-stop waits for a keeper to finish before SIGKILL


def warm_key(kernel: Path, release: str, clock: str, results_root: Path, python: str = sys.executable) -> str:
    """The name of the warm VM that can serve a run: what its boot fixed, hashed."""
    fixed = json.dumps([str(Path(kernel).resolve()), release, clock, str(Path(results_root).resolve()), python])
    return hashlib.sha256(fixed.encode()).hexdigest()[:16]


CODE_SUFFIXES = (".py", ".json")     # the harness's modules and the data a run reads (harness/schema/*.json)


def _code_files(root: Path):
    """The harness files a run reads: modules and schemas; no caches, dotfiles or editor leftovers
    (swap and backup files would restart the VM for nothing)."""
    for path in root.rglob("*"):
        parts = path.relative_to(root).parts
        if path.suffix in CODE_SUFFIXES and "__pycache__" not in parts and not any(p.startswith(".") for p in parts):
            yield path


def code_fingerprint(root: Path = CODE_ROOT / "harness") -> str:
    """Every code file of the harness by path, size and modification time: any edit changes it. A
    file removed while it is read (an editor's save) is skipped, never an error."""
    entries = []
    for path in _code_files(root):
        try:
            stat = path.stat()
        except OSError:
            continue
        entries.append(f"{path.relative_to(root)}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(sorted(entries)).encode()).hexdigest()[:16]


def encode(message: dict) -> bytes:
    """One message on the keeper's socket: a JSON object on one line."""
    return (json.dumps(message) + "\n").encode()


def decode(line: bytes | str) -> dict:
    """A message read back; a line that is not a JSON object is {} (never raises)."""
    try:
        value = json.loads(line)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class Paths:
    """A warm VM's files under WARM_DIR, named by its key: its socket, its state (JSON), its lock,
    its log, the FIFO that is the guest's stdin while the VM boots and its QEMU's QMP socket."""
    key: str
    folder: Path = WARM_DIR

    def _named(self, suffix: str) -> Path:
        return self.folder / f"{self.key}.{suffix}"

    socket = property(lambda self: self._named("sock"))
    state = property(lambda self: self._named("json"))
    lock = property(lambda self: self._named("lock"))
    log = property(lambda self: self._named("log"))
    fifo = property(lambda self: self._named("in"))
    qmp = property(lambda self: self._named("qmp"))


def read_state(path: Path) -> dict | None:
    try:
        return decode(path.read_text()) or None
    except OSError:
        return None


def keeper_alive(state: dict | None) -> bool:
    """The keeper the state names is still that process (its PID may have been reused)."""
    if not state or not isinstance(state.get("pid"), int) or not isinstance(state.get("start"), int):
        return False
    try:
        stat = Path(f"/proc/{state['pid']}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2:][:1] != "Z" and same_process(state["pid"], state["start"])


def freshness(state: dict | None, fingerprint: str) -> str:
    """What to do with the warm VM a state file describes: "reuse" it, "restart" it (the harness
    code changed since it booted) or "boot" one (none is running)."""
    if not keeper_alive(state):
        return "boot"
    return "reuse" if state.get("fingerprint") == fingerprint else "restart"


def _start_keeper(kernel: Path, clock: str, results_root: Path, key: str, idle_s: float) -> None:
    """The keeper, detached: its own session, so the client's Ctrl-C or exit leaves it running."""
    paths = Paths(key)
    WARM_DIR.mkdir(parents=True, exist_ok=True)
    with open(paths.log, "ab") as log:
        starter = subprocess.Popen([sys.executable, "-m", "harness.targets.warm_keeper", str(kernel), clock,
                                    str(results_root), key, str(idle_s)], cwd=CODE_ROOT, stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=log, start_new_session=True,
                                   env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
    starter.wait()       # it forks the keeper and leaves at once


def _connect(path: Path, wait_s: float) -> socket.socket:
    """Connect to a keeper's socket, waiting up to `wait_s` for it to appear."""
    deadline = time.time() + wait_s
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(path))
            return sock
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            if time.time() > deadline:
                raise RunFailed(f"the warm VM's keeper did not open {path} within {wait_s:.0f} s; its log is "
                                f"{path.with_suffix('.log')}") from None
            time.sleep(0.2)


def _connect_or_closed(path: Path) -> socket.socket:
    """A live keeper's socket; if it refuses or is gone (the keeper is shutting down), a socket
    already at EOF, so the caller waits that keeper out and boots a fresh one."""
    try:
        return _connect(path, 2.0)
    except RunFailed:
        mine, _theirs = socket.socketpair()
        _theirs.close()
        return mine


def _wait_gone(state: dict | None, wait_s: float) -> bool:
    deadline = time.time() + wait_s
    while keeper_alive(state) and time.time() < deadline:
        time.sleep(0.2)
    return not keeper_alive(state)


class WarmRun:
    """One run's connection to a keeper: messages in, cancel out. Handed to `started` (a batch
    stops its VMs on Ctrl-C through cancel())."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""
        self.code: int | None = None
        self.cancelled = False
        self.closed = False
        self.accepted = False                  # the keeper took this connection (its accepted message)
        self.lock = threading.Lock()           # accepted-then-run against cancel
        self.finished = threading.Event()      # set when run_warm is done with this run

    def send(self, message: dict) -> None:
        try:
            self.sock.sendall(encode(message))
        except OSError:
            pass

    def messages(self, timeout: float | None = None):
        """Yield each message until the keeper closes the connection (or `timeout` passes)."""
        self.sock.settimeout(timeout)
        while True:
            while b"\n" in self.buffer:
                raw, self.buffer = self.buffer.split(b"\n", 1)
                yield decode(raw)
            try:
                chunk = self.sock.recv(65536)
            except (TimeoutError, socket.timeout):
                return
            except OSError:
                chunk = b""
            if not chunk:
                self.closed = True
                return
            self.buffer += chunk

    def cancel(self) -> None:
        """Ask the guest to stop the run (SIGINT: its lab is torn down); the VM stays up. Before the
        keeper accepted the connection no run was sent: the connection is shut, nothing to wait for."""
        with self.lock:
            self.cancelled = True
            if self.accepted:
                self.send({"op": "cancel"})
                return
        try:
            self.sock.shutdown(socket.SHUT_RDWR)      # wakes the thread waiting for accepted
        except OSError:
            pass

    def hand(self, request: dict) -> bool:
        """Send the run request once the keeper accepted; False if cancel() came first."""
        with self.lock:
            if self.cancelled:
                return False
            self.send(request)
            self.accepted = True       # after the send: a Ctrl-C between the two closes the connection (the keeper cancels)
            return True

    def poll(self) -> int | None:
        """None while the run goes on (like Popen.poll), then its exit code (3 if it had none)."""
        return None if not self.finished.is_set() else (3 if self.code is None else self.code)

    def wait(self, timeout: float | None = CANCEL_WAIT_S) -> int | None:
        """Wait until the thread following the run saw its end (after cancel(): its clean-up)."""
        self.finished.wait(timeout)
        return self.poll()

    def close(self) -> None:
        self.sock.close()


def _await_accept(run: WarmRun, on_line) -> bool:
    """Wait for the keeper's accepted message: True once it came; False at EOF (the keeper is
    shutting down, or cancel() shut the connection). A keeper busy with another client's run
    accepts this one when that ends: said once, then waited for."""
    timeout: float | None = 5.0
    while not run.closed:
        for message in run.messages(timeout):
            if message.get("accepted"):
                return True
        if timeout is not None and not run.closed:
            on_line("the warm VM is busy with another run; this one waits for it...")
            timeout = None
    return False


def _follow(run: WarmRun, on_line, marks) -> tuple[int | None, bool]:
    """Pass the keeper's lines on until its end message; return (exit code or None, stale). As
    run_in_vm does: the guest's phases are stamped on the host's clock (`marks`), and a finished
    item's report.html is drawn here, before its done marker goes on."""
    for message in run.messages(None):
        if "line" in message:
            _on_guest_line(str(message["line"]), on_line, marks)
        elif message.get("stale"):
            return None, True
        elif "end" in message:
            run.code = int(message["end"])
            return run.code, False
    return None, False


def _on_guest_line(line: str, on_line, marks) -> None:
    from harness.targets.vm import pass_on
    pass_on(line, protocol.parse_marker(line), on_line, marks)


def _after_interrupt(run: WarmRun, on_line) -> None:
    """Ctrl-C: the guest SIGINTs the run; show its clean-up lines until it ends (a second Ctrl-C
    leaves at once: the keeper still sees the run cleaned up, only the lines go unseen)."""
    run.cancel()
    on_line("interrupted: stopping the run inside the warm VM (its lab is torn down; the VM stays up)...")
    try:
        for message in run.messages(CANCEL_WAIT_S):
            if "line" in message and not protocol.is_marker(str(message["line"])):
                on_line(str(message["line"]))
            elif "end" in message:
                return
    except KeyboardInterrupt:
        pass


def run_warm(kernel: Path, plan: list[dict], results_root: Path, clock: str = "virtual", on_line=print,
             started=None, verbose: bool = False, observer: str = "trace", idle_s: float = IDLE_S) -> int:
    """run_in_vm() through a warm VM: boot one if none serves this kernel, clock and results folder
    (or if the harness code changed since it booted), then run `plan` in it. Same lines through
    `on_line`, same markers, same exit code (3 if the VM itself failed); the VM stays up."""
    from harness.plan.kernels import release_of
    results_root = Path(results_root).resolve()
    results_root.mkdir(parents=True, exist_ok=True)
    key = warm_key(kernel, release_of(kernel), clock, results_root)
    plan_file = Path(tempfile.mkstemp(prefix=".warm-plan-", suffix=".json", dir=results_root)[1])
    protocol.write_plan(plan_file, plan, protocol.guest_settings(clock, observer))
    marks = profile.ProfileCollector(profile.take())     # the host's start and planning go with the first item
    try:
        for _ in range(2):     # a stale or stopping VM is stopped or waited out, then a fresh one serves the run
            code, again = _attempt(kernel, clock, results_root, key, idle_s, plan_file, verbose, on_line, marks, started)
            if not again:
                return code
            _wait_gone(read_state(Paths(key).state), STOP_WAIT_S)
        raise RunFailed("the warm VM was stale or stopping twice in a row (the harness code keeps changing?); "
                        "run-experiment --warm-stop, then run again")
    finally:
        plan_file.unlink(missing_ok=True)     # the keeper removes it at the run's end; any other way out, here
        marks.finish(f"warm vm {release_of(kernel)} ({clock} clock)", shutdown=False)


def _attempt(kernel: Path, clock: str, results_root: Path, key: str, idle_s: float, plan_file: Path, verbose: bool,
             on_line, marks, started) -> tuple[int, bool]:
    """One try at the run: (exit code, False), or (0, True) if another VM must serve it (this one's
    code is stale, or its keeper was shutting down and closed the connection before accepting)."""
    fingerprint = code_fingerprint()
    run = _open(kernel, clock, results_root, key, idle_s, fingerprint, on_line, marks)
    if started:
        started(run)
    try:
        if not _await_accept(run, on_line) or not run.hand(
                {"op": "run", "plan": str(plan_file), "verbose": verbose, "fingerprint": fingerprint}):
            if run.cancelled:
                return 130, False
            on_line("the warm VM was stopping when this run came; waiting for it to go, then booting a fresh one...")
            return 0, True
        code, stale = _follow(run, on_line, marks)
    except KeyboardInterrupt as exc:
        if run.accepted:
            _after_interrupt(run, on_line)
            raise Interrupted("interrupted; the run inside the warm VM was stopped (a lab it built was torn down); the warm "
                              "VM stays up (run-experiment --warm-stop stops it).") from exc
        run.cancelled = True
        on_line("interrupted before the warm VM took the run: nothing ran.")
        return 130, False
    finally:
        run.close()
        run.finished.set()
    if stale:
        on_line("the harness code changed since the warm VM booted: stopping it and booting a fresh one...")
        return 0, True
    if code is None:
        on_line(f"the warm VM's keeper ended without finishing the run; its log is {Paths(key).log}")
    return 3 if code is None else code, False


def _open(kernel: Path, clock: str, results_root: Path, key: str, idle_s: float, fingerprint: str,
          on_line, marks) -> WarmRun:
    """A connection to the keeper for `key`: the running one, or a fresh one if none runs or the
    harness code changed since it booted (that one is stopped first)."""
    from harness.plan.kernels import release_of
    paths = Paths(key)
    state = read_state(paths.state)
    decision = freshness(state, fingerprint)
    if decision == "reuse":
        on_line(f"using the warm VM (kernel {state.get('release')}, {clock} clock, up "
                f"{time.time() - state.get('booted', time.time()):.0f} s, {state.get('runs', 0)} run(s) so far)")
        return WarmRun(_connect_or_closed(paths.socket))
    if decision == "restart":
        on_line("the harness code changed since the warm VM booted: stopping it and booting a fresh one...")
        _stop_keeper(paths, state)
    on_line(f"starting a warm VM: kernel {release_of(kernel)} under QEMU ({clock} clock); it stays up "
            f"{idle_s / 60:.0f} min after its last run (run-experiment --warm-stop stops it)")
    marks.mark("vm-boot")
    _start_keeper(kernel, clock, results_root, key, idle_s)
    return WarmRun(_connect(paths.socket, START_WAIT_S))


def warm_states() -> list[tuple[Paths, dict]]:
    """Every warm VM whose keeper is alive (a dead keeper's files are removed on the way)."""
    found = []
    for path in sorted(WARM_DIR.glob("*.json")) if WARM_DIR.exists() else []:
        state = read_state(path)
        paths = Paths(path.stem)
        if keeper_alive(state):
            found.append((paths, state))
        else:
            for leftover in (paths.state, paths.socket, paths.fifo, paths.qmp):
                leftover.unlink(missing_ok=True)
    return found


def _stop_keeper(paths: Paths, state: dict) -> str:
    """SIGTERM a keeper (it powers its VM off and closes its ledger); SIGKILL it after STOP_WAIT_S
    (its guardian then kills the VM). Return "stopped", "killed" or "left" (still there)."""
    how = "stopped"
    try:
        os.kill(state["pid"], signal.SIGTERM)
        if not _wait_gone(state, STOP_WAIT_S):
            os.kill(state["pid"], signal.SIGKILL)
            how = "killed" if _wait_gone(state, 10) else "left"
    except ProcessLookupError:
        pass
    if how != "left":
        for leftover in (paths.state, paths.socket, paths.fifo, paths.qmp):
            leftover.unlink(missing_ok=True)
    return how


def stop_warm(on_line=print) -> int:
    """`run-experiment --warm-stop`: stop every warm VM and say which; 0, or 3 if one would not go."""
    states = warm_states()
    if not states:
        on_line("no warm VM is running.")
        return 0
    code = 0
    for paths, state in states:
        what = (f"the warm VM of kernel {state.get('release')} ({state.get('clock')} clock, results in "
                f"{state.get('results_root')}, {state.get('runs', 0)} run(s), keeper pid {state['pid']})")
        how = _stop_keeper(paths, state)
        if how == "stopped":
            on_line(f"stopped {what}")
        elif how == "killed":
            on_line(f"killed {what}: it did not stop within {STOP_WAIT_S:.0f} s; its guardian removes the VM")
        else:
            code = 3
            on_line(f"could not stop {what}: kill it (kill -9 {state['pid']}); its guardian then removes the VM")
    return code


def keeper_state(key: str, kernel: Path, release: str, clock: str, results_root: Path, fingerprint: str) -> dict:
    """What a keeper writes to its state file (read by clients and --warm-stop)."""
    return {"pid": os.getpid(), "start": start_time(os.getpid()), "key": key, "kernel": str(kernel), "release": release,
            "clock": clock, "results_root": str(results_root), "fingerprint": fingerprint, "booted": time.time(),
            "runs": 0}
