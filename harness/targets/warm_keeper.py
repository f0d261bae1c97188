"""The warm VM's keeper: a daemon (its own session) that boots one VM and serves runs to clients
over a unix socket, one at a time, until it is idle for too long, stopped, or its code is stale.

    python -m harness.targets.warm_keeper KERNEL CLOCK RESULTS_ROOT KEY IDLE_S

Started by harness.targets.warm.run_warm. One keeper per key: it holds KEY.lock (flock) for its
whole life, so a second one started in a race exits at once. The VM is the cold target's vng
command (harness.targets.vm.vng_command) with the guest serve loop (harness.targets.warm_guest)
as its command; its process group is recorded in a guarded ledger, so even a SIGKILL of the keeper
leaves no QEMU behind (the guardian kills the group). The boot's and each item's wall-time limits
are the cold target's: an overrun stops the VM and is marked "@@limit" like there.

Between runs the VM's vCPUs are stopped (QMP `stop`, `cont` before the next command): under
`-icount shift=0,sleep=off` an idle guest does not sleep, the virtual clock warps to its next timer
at once and QEMU spins a host core for the whole idle time (measured: 60-100 % of a core). A stopped
VM stops its virtual clock too, so the guest sees no gap; the idle limit is on the host's clock.
"""
from __future__ import annotations

import fcntl
import json
import os
import selectors
import shlex
import shutil
import signal
import socket
import sys
import time
from pathlib import Path

from harness.lab.leftovers import Ledger, reap
from harness.plan.kernels import release_of
from harness.targets import protocol
from harness.targets.vm import BOOT_LIMIT_S, ITEM_ALLOWANCE_S, _record_qemu, describe_limit, guest_command, vng_command
from harness.targets.vm_process import VmProcess
from harness.targets.warm import (CANCEL_WAIT_S, WARM_DIR, Paths, code_fingerprint, decode, encode, keeper_state)
from harness.targets.warm_guest import IDLE, READY, parse_end, run_command

QUIT_WAIT_S = 60.0         # a clean power-off: the guest leaves its loop, the VM halts
LOCK_WAIT_S = 10.0         # a keeper that is going (its files removed) may hold the lock this long


def _say(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} keeper {os.getpid()}: {text}", flush=True)


class Keeper:
    """The event loop: the VM's console, the listening socket, the current client."""

    def __init__(self, kernel: Path, clock: str, results_root: Path, key: str, idle_s: float) -> None:
        self.kernel, self.clock, self.results_root, self.key, self.idle_s = kernel, clock, results_root, key, idle_s
        self.paths = Paths(key)
        self.script = results_root / f".warm-guest-{key}.sh"
        self.fingerprint = code_fingerprint()
        self.state = keeper_state(key, kernel, release_of(kernel), clock, results_root, self.fingerprint)
        self.selector = selectors.DefaultSelector()
        self.vm: VmProcess | None = None
        self.commands: int | None = None       # the guest's stdin (see _boot)
        self.ledger: Ledger | None = None
        self.listener: socket.socket | None = None
        self.client: socket.socket | None = None
        self.client_buffer = b""
        self.ready = False
        self.stopping = ""             # why the keeper is stopping ("" while it serves)
        self.pending: dict | None = None       # a run request waiting for the guest to be ready
        self.current: dict | None = None       # the run in the guest: plan file, items, cancelled
        self.deadline, self.what, self.limit = time.time() + BOOT_LIMIT_S, protocol.BOOT, BOOT_LIMIT_S
        self.last_used = time.time()
        self.qemu_seen = False
        self.paused = False            # the vCPUs are stopped (QMP): the guest waits for its next command

    # --- start and stop -------------------------------------------------------------------------

    def serve(self) -> int:
        WARM_DIR.mkdir(parents=True, exist_ok=True)
        lock = os.open(self.paths.lock, os.O_RDWR | os.O_CREAT, 0o600)
        if not _take_lock(lock, LOCK_WAIT_S):
            _say("another keeper serves this key; leaving")
            os.close(lock)
            return 0
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        try:
            reap()
            self._listen()
            self._boot()
            self._write_state()
            while not self.stopping:
                self._step()
            _say(f"stopping: {self.stopping}")
            return 0
        finally:
            self._shutdown()
            os.close(lock)

    def _on_term(self, signum, frame) -> None:
        self.stopping = f"signal {signal.Signals(signum).name} (run-experiment --warm-stop)"

    def _listen(self) -> None:
        self.paths.socket.unlink(missing_ok=True)      # we hold the lock: a socket file here is a dead keeper's
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(self.paths.socket))
        os.chmod(self.paths.socket, 0o600)
        self.listener.listen(8)
        self.selector.register(self.listener, selectors.EVENT_READ, "listener")

    def _boot(self) -> None:
        """vng with a FIFO on its stdin: virtme-ng hands vng's stdin to the guest command's stdin
        (a virtio-serial port), which is how the serve loop gets its commands. The keeper opens
        the FIFO read-write first (never blocks) and closes it to send EOF (the guest then quits)."""
        vng = shutil.which("vng") or str(Path(sys.executable).parent / "vng")
        # the cold target's guest command, in a script beside the plans (harness.targets.vm.run_in_vm:
        # the kernel's command line that carries --exec is cut at 2048 bytes)
        self.script.write_text(guest_command(["harness.targets.warm_guest", str(self.results_root)]) + "\n")
        env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
        self.paths.fifo.unlink(missing_ok=True)
        os.mkfifo(self.paths.fifo, 0o600)
        self.commands = os.open(self.paths.fifo, os.O_RDWR)
        self.ledger = Ledger(suffix="-warm", guard=True)
        args = vng_command(vng, self.kernel, self.clock, f"sh {shlex.quote(str(self.script))}", (self.results_root,))
        self.paths.qmp.unlink(missing_ok=True)
        args.append(f"--qemu-opts=-qmp unix:{self.paths.qmp},server=on,wait=off")     # last: vng's rule
        self.vm = VmProcess(["sh", "-c", 'exec "$@" < "$0"', str(self.paths.fifo), *args], env=env, ledger=self.ledger)
        self.selector.register(self.vm.proc.stdout, selectors.EVENT_READ, "vm")
        _say(f"booting {self.kernel} ({self.clock} clock) for {self.results_root}, code {self.fingerprint}")

    def _qmp(self, command: str) -> bool:
        """One QMP command to this VM's QEMU (its own socket); False if it could not be done."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(10.0)
                sock.connect(str(self.paths.qmp))
                replies = sock.makefile("rwb")
                replies.readline()                       # the greeting
                for execute in ("qmp_capabilities", command):
                    replies.write(encode({"execute": execute}))
                    replies.flush()
                    reply: dict = {}
                    while "return" not in reply and "error" not in reply:      # events come in between
                        line = replies.readline()
                        if not line:
                            return False
                        reply = decode(line)
                    if "error" in reply:
                        _say(f"QMP {execute}: {reply['error']}")
                        return False
                return True
        except OSError as exc:
            _say(f"QMP {command}: {exc}")
            return False

    def _pause(self) -> None:
        """The guest is idle: stop its vCPUs (and so its virtual clock) until the next command."""
        if not self.paused and self.current is None and self.pending is None and self._qmp("stop"):
            self.paused = True

    def _resume(self) -> None:
        if self.paused:
            if not self._qmp("cont"):
                _say("could not resume the VM's vCPUs; the run's time limit will stop it")
            self.paused = False

    def _command(self, line: str) -> bool:
        """Send the guest one command line (its vCPUs resumed first); False if it no longer listens."""
        self._resume()
        try:
            os.write(self.commands, f"{line}\n".encode())
            return True
        except (OSError, TypeError):
            return False

    def _close_commands(self) -> None:
        if self.commands is not None:
            os.close(self.commands)
            self.commands = None
        self.paths.fifo.unlink(missing_ok=True)

    def _write_state(self) -> None:
        tmp = self.paths.state.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state))
        os.replace(tmp, self.paths.state)

    def _shutdown(self) -> None:
        """Stop taking clients first (a client connecting now would wait on a keeper that is going:
        with no socket it boots a fresh one); power the VM off (the guest leaves its loop) or kill
        it; close the ledger; remove our files."""
        self._close_listener()
        if self.vm is not None and not self.vm.stopped:
            if self.ready and self.current is None and self._command("quit"):
                self._close_commands()
                self._drain_until_ended(QUIT_WAIT_S)
            self._close_commands()
            self.vm.stop()
        if self.current is not None:
            self._to_client({"line": f"the warm VM was stopped during this run ({self.stopping})"})
            self._end(3)
        if self.pending is not None:
            Path(self.pending["plan"]).unlink(missing_ok=True)
            self._to_client({"line": f"the warm VM stopped before the run began ({self.stopping})"})
            self._to_client({"end": 3})
        if self.ledger is not None:
            self.ledger.close()
        self._close_commands()
        for path in (self.paths.state, self.paths.socket, self.paths.fifo, self.paths.qmp, self.script):
            path.unlink(missing_ok=True)
        if self.client is not None:
            self.client.close()

    def _close_listener(self) -> None:
        """Close and unlink the listening socket; clients still in its backlog see EOF at once."""
        if self.listener is not None:
            try:
                self.selector.unregister(self.listener)     # watched only while no client is served
            except (KeyError, ValueError):
                pass
            self.listener.close()
            self.listener = None
        self.paths.socket.unlink(missing_ok=True)

    def _drain_until_ended(self, wait_s: float) -> None:
        deadline = time.time() + wait_s
        while not self.vm.ended and time.time() < deadline:
            line = self.vm.readline(max(0.0, deadline - time.time()))
            if line is not None:
                _say(f"guest: {line}")

    # --- the loop -------------------------------------------------------------------------------

    def _step(self) -> None:
        timeout = max(0.0, min(1.0, self._next_deadline() - time.time()))
        for key, _ in self.selector.select(timeout):
            if self.stopping:
                return
            if key.data == "vm":
                self._on_vm_output()
            elif key.data == "listener":
                self._accept()
            elif key.data == "client" and self.client is not None:
                self._on_client()
        self._check_time()

    def _next_deadline(self) -> float:
        if self.current is not None or not self.ready:
            return self.deadline
        return self.last_used + self.idle_s

    def _check_time(self) -> None:
        now = time.time()
        if (self.current is not None or not self.ready) and now > self.deadline:
            self._overran(now)
        elif self.current is None and self.pending is None and self.client is None and now > self.last_used + self.idle_s:
            self.stopping = f"idle for {self.idle_s:.0f} s"

    def _overran(self, now: float) -> None:
        """The cold target's rule: a boot or an item over its limit stops the VM, marked @@limit."""
        self.vm.stop()
        said = {protocol.BOOT: "the boot", protocol.AFTER_LAST: "the time after the last item"}.get(self.what, f"item {self.what}")
        limit_text = describe_limit(self.limit) if self.what.isdigit() else f"{self.limit:.0f} s"
        self._to_client({"line": f"stopped the VM: {said} took more than {limit_text}"})
        self._to_client({"line": protocol.limit_marker(self.what, self.limit)})
        self.stopping = f"{said} overran its limit"

    def _on_vm_output(self) -> None:
        while (line := self.vm.readline(0)) is not None:
            self._on_line(line)
        if self.vm.ended:
            code = self.vm.proc.wait()
            self.stopping = f"the VM ended (vng exit status {code})"
            if self.current is not None:
                self._to_client({"line": f"the warm VM ended during the run (vng exit status {code})"})
                self._end(3)

    def _on_line(self, line: str) -> None:
        if not self.qemu_seen:
            self.qemu_seen = _record_qemu(self.vm.pid, self.ledger)
        if line == READY:
            self.ready = True
            self._after_ready()
            return
        if line == IDLE:             # the guest finished a run's after-work and waits for a command
            self._pause()
            return
        code = parse_end(line)
        if code is not None and self.current is not None:
            self._end(code)
            return
        marker = protocol.parse_marker(line)
        items = self.current["items"] if self.current else []
        if marker and marker.kind == "start" and marker.index is not None and marker.index < len(items):
            self.what, self.limit = marker.what, float(items[marker.index].get("limit_s") or ITEM_ALLOWANCE_S)
            self.deadline = time.time() + self.limit
        elif marker and marker.kind == "done":
            self.what, self.limit, self.deadline = protocol.AFTER_LAST, ITEM_ALLOWANCE_S, time.time() + ITEM_ALLOWANCE_S
        self._to_client({"line": line})

    def _after_ready(self) -> None:
        """The guest loaded the harness: check nothing changed meanwhile, then start a waiting run."""
        self.paths.fifo.unlink(missing_ok=True)      # vng's shell opened it long ago
        self.script.unlink(missing_ok=True)          # and the guest's shell read this
        if code_fingerprint() != self.fingerprint:
            self.state["fingerprint"] = "changed-during-boot"     # the next client restarts it
            self._write_state()
        _say("guest ready")
        if self.pending is not None:
            self._start_run(self.pending)
        else:
            self._pause()

    # --- clients --------------------------------------------------------------------------------

    def _accept(self) -> None:
        """Take one client; while it (or its run) lasts the listener is not watched, so a second
        client waits in the socket's backlog until this run ends."""
        connection, _ = self.listener.accept()
        self.client, self.client_buffer = connection, b""
        self.client.setblocking(False)
        self.selector.register(self.client, selectors.EVENT_READ, "client")
        self.selector.unregister(self.listener)
        self._to_client({"accepted": True, "ready": self.ready})

    def _listen_again(self) -> None:
        if self.client is None and self.current is None and self.listener is not None:
            self.selector.register(self.listener, selectors.EVENT_READ, "listener")

    def _on_client(self) -> None:
        try:
            chunk = self.client.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._client_gone()
            return
        self.client_buffer += chunk
        while b"\n" in self.client_buffer:
            raw, self.client_buffer = self.client_buffer.split(b"\n", 1)
            self._on_request(decode(raw))

    def _on_request(self, request: dict) -> None:
        op = request.get("op")
        if op == "run" and self.current is None and self.pending is None:
            if request.get("fingerprint") != self.state["fingerprint"]:
                self._to_client({"stale": True})
                self.stopping = "the harness code changed since the boot"
                return
            if self.ready:
                self._start_run(request)
            else:
                self.pending = request
        elif op == "cancel" and self.pending is not None:      # still booting: the run never begins
            Path(self.pending["plan"]).unlink(missing_ok=True)
            self.pending = None
            self._to_client({"line": "run-experiment: interrupted before the run began in the warm VM (it was booting)."})
            self._to_client({"end": 130})
        elif op == "cancel":
            self._cancel("the client asked")

    def _client_gone(self) -> None:
        self.selector.unregister(self.client)
        self.client.close()
        self.client = None
        if self.current is not None:
            self._cancel("the client went away")
        if self.pending is not None:
            Path(self.pending["plan"]).unlink(missing_ok=True)
            self.pending = None
        self.last_used = time.time()
        self._listen_again()

    def _cancel(self, why: str) -> None:
        if self.current is None or self.current["cancelled"]:
            return
        _say(f"cancelling the run: {why}")
        self.current["cancelled"] = True
        self._command("cancel")
        self.deadline = min(self.deadline, time.time() + CANCEL_WAIT_S)     # then the VM is stopped

    def _start_run(self, request: dict) -> None:
        plan_file = Path(request["plan"])
        try:
            items, _ = protocol.read_plan(plan_file)
        except (OSError, ValueError, KeyError) as exc:
            plan_file.unlink(missing_ok=True)
            self._to_client({"line": f"the warm VM could not read the plan {plan_file}: {exc}"})
            self._to_client({"end": 3})
            self.pending = None
            return
        self.pending = None
        self.current = {"plan": plan_file, "items": [i.to_json() for i in items], "cancelled": False}
        self.what, self.limit = protocol.BOOT, ITEM_ALLOWANCE_S      # until the first @@start
        self.deadline = time.time() + ITEM_ALLOWANCE_S
        self._command(run_command(str(plan_file), bool(request.get("verbose")), time.time()))

    def _end(self, code: int) -> None:
        self._to_client({"end": code})
        Path(self.current["plan"]).unlink(missing_ok=True)
        self.current = None
        self.state["runs"] += 1
        self._write_state()
        self.last_used = time.time()
        if self.client is not None:
            self.selector.unregister(self.client)
            self.client.close()
            self.client = None
        self._listen_again()

    def _to_client(self, message: dict) -> None:
        if self.client is None:
            if "line" in message:
                _say(f"guest (no client): {message['line']}")
            return
        try:
            self.client.setblocking(True)
            self.client.sendall(encode(message))
            self.client.setblocking(False)
        except OSError:
            pass        # it went away: _on_client sees the EOF and cancels


def _take_lock(fd: int, wait_s: float) -> bool:
    """flock `fd`, waiting up to `wait_s`: a client boots a fresh keeper once the old one's state
    file is gone, which is a moment before that one lets its lock go."""
    deadline = time.time() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.time() > deadline:
                return False
            time.sleep(0.1)


def main(argv: list[str]) -> int:
    """Fork once more and let the starter go: the keeper is nobody's child (never a zombie of
    the client that started it, which may live on: a batch, a test)."""
    kernel, clock, results_root, key, idle_s = argv
    if os.fork() > 0:
        os._exit(0)
    return Keeper(Path(kernel), clock, Path(results_root), key, float(idle_s)).serve()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
