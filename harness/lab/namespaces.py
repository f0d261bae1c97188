"""Run Python code inside a host's network namespace without starting a new interpreter.

Mininet's `popen` execs a fresh Python per helper; in the emulated VM each one spends ~2.4 s of
wall time importing over the 9p root file system (measured). Forking the already-loaded runner and
switching the child's network namespace (setns) starts a helper in milliseconds.
"""
from __future__ import annotations

import ctypes
import os
import select
import signal
import sys
import threading
import time
import traceback
from contextlib import contextmanager

from harness.errors import RunFailed
from harness.lab.lifecycle import Lifecycle, recorded_or_stopped, stop_all
from harness.runlog import log_command, log_started

CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def die_with_parent(parent: int) -> None:
    """Have the kernel SIGKILL the calling process when its parent (the thread that forked it)
    dies, even by SIGKILL; if the parent is already gone, exit now."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


HELD = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def interrupts_held():
    """Hold Ctrl-C (SIGINT) and SIGTERM while this process forks a helper: Python runs its at-fork
    hooks then (logging's lock release), and an interrupt raised inside one is printed as
    "Exception ignored ... KeyboardInterrupt" and lost (seen when a faster lab put a Ctrl-C on a
    tcpdump's start). Their handlers only note them meanwhile (a signal mask would not do: any
    other thread takes a process's signal for the main thread); after, each noted one goes to the
    handler it was meant for, where the caller's clean-up handles it. The main thread only (the
    only one that may set handlers); a helper forked elsewhere is forked as before. A forked child
    sets its own handlers; an exec'd one starts with the defaults."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    noted: list[int] = []
    owner = os.getpid()

    def note(signum: int, _frame) -> None:
        if os.getpid() == owner:
            noted.append(signum)
        else:       # the child, before it set its own handlers: the signal is its own, as by default
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    # only a signal with a Python handler can be raised in a hook; one the kernel handles stays so
    before = {sig: signal.signal(sig, note) for sig in HELD if callable(signal.getsignal(sig))}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
        for sig in dict.fromkeys(noted):      # to the handler it was meant for
            before[sig](sig, None)


def enter_netns(pid: int) -> None:
    """Move the calling thread into the network namespace of process `pid` (a Mininet host's shell)."""
    fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns into the network namespace of pid {pid}: {os.strerror(err)}")
    finally:
        os.close(fd)


class Forked(Lifecycle):
    """A child running `function(*args)` in host `pid`'s namespace (None: this one), with Popen's
    pipes and methods (stdin, stdout, stderr, poll, terminate, kill, wait) and the helpers'
    lifecycle (harness.lab.lifecycle): started by the constructor (and recorded in `ledger` with
    its start time), ready when it prints its first line, stop() reaps it and closes its pipes."""

    def __init__(self, pid: int | None, function, *args, name: str = "helper", ledger=None) -> None:
        self.name = name
        self.returncode: int | None = None
        self.ready_line: str | None = None
        self._patience: float | None = 30.0   # how long stop() waits after SIGTERM (wait_ready's limit)
        self._stderr_tail = b""
        pipes = [os.pipe() for _ in range(3)]          # stdin, stdout, stderr
        sys.stdout.flush()
        sys.stderr.flush()
        parent = os.getpid()
        with interrupts_held():
            child = os.fork()
            if child == 0:
                self._child(parent, pid, pipes, function, args)
            self.pid = child
            self._close_childs_ends(pipes)
            log_started(f"fork {name}: {getattr(function, '__module__', '')}.{getattr(function, '__qualname__', function)}",
                        child, where=f"netns of {pid}" if pid is not None else None)
            if ledger is not None:      # in the ledger before an interrupt can come
                recorded_or_stopped(self, ledger, pids=[child])

    def _close_childs_ends(self, pipes) -> None:
        """Keep our ends of the child's stdin, stdout and stderr (before an interrupt can come:
        stop() closes them)."""
        os.close(pipes[0][0])
        os.close(pipes[1][1])
        os.close(pipes[2][1])
        self.stdin = os.fdopen(pipes[0][1], "wb")
        self.stdout = os.fdopen(pipes[1][0], "rb")
        self.stderr = os.fdopen(pipes[2][0], "rb")

    @staticmethod
    def _child(parent, pid, pipes, function, args) -> None:
        code = 1
        try:
            os.setsid()
            die_with_parent(parent)
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, signal.SIG_DFL)
            if pid is not None:
                enter_netns(pid)
            os.dup2(pipes[0][0], 0)
            os.dup2(pipes[1][1], 1)
            os.dup2(pipes[2][1], 2)
            os.closerange(3, 1 << 16)       # no copies of the runner's pipes (EOF must reach their readers)
            sys.stdin = open(0, "r", closefd=False)
            sys.stdout = open(1, "w", buffering=1, closefd=False)
            sys.stderr = open(2, "w", buffering=1, closefd=False)
            function(*args)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)

    def send(self, line: str) -> None:
        """Write one line to the child's stdin."""
        self.stdin.write((line + "\n").encode())
        self.stdin.flush()

    def read_line(self, timeout: float | None, what: str) -> str:
        """The child's next stdout line; RunFailed naming `what` (with the child's last words, if
        it died) when it ends or `timeout` passes without one."""
        ready, _, _ = select.select([self.stdout], [], [], timeout)
        line = self.stdout.readline().decode() if ready else ""
        if not line:
            dead = self.wait(timeout=1.0, kill=False) is not None
            raise RunFailed(f"{what}: no answer ({self._drain_stderr().decode(errors='replace').strip() if dead else 'timed out'})")
        return line

    def wait_ready(self, timeout: float | None = None) -> None:
        """Its first line means it is ready ("ready" from the sampler and the agents)."""
        self._patience = timeout          # stopping is held to the same clock (None: until it exits)
        if self.ready_line is None:
            self.ready_line = self.read_line(timeout, f"the {self.name} did not start")

    def poll(self) -> int | None:
        if self.returncode is None:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def terminate(self) -> None:
        if self.poll() is None:
            os.kill(self.pid, signal.SIGTERM)

    def kill(self) -> None:
        if self.poll() is None:
            os.kill(self.pid, signal.SIGKILL)

    def wait(self, timeout: float | None = None, kill: bool = True) -> int | None:
        """Reap the child; past `timeout`, SIGKILL it (or, with kill=False, return None)."""
        deadline = None if timeout is None else time.time() + timeout
        while self.poll() is None:
            if deadline is not None and time.time() > deadline:
                if not kill:
                    return None
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                self.returncode = -signal.SIGKILL
                break
            time.sleep(0.01)
        return self.returncode

    def _drain_stderr(self) -> bytes:
        """Everything the child wrote to stderr so far, without blocking (kept: the last 64 KiB)."""
        while not self.stderr.closed and select.select([self.stderr], [], [], 0)[0]:
            chunk = self.stderr.read1(65536)
            if not chunk:
                break
            self._stderr_tail = (self._stderr_tail + chunk)[-65536:]
        return self._stderr_tail

    def _stop(self) -> None:
        """SIGTERM, reap (SIGKILL after the patience wait_ready was given: 30 s by default; none on a
        VM's virtual clock, where a guest-time limit fires after a few real seconds while the guest
        waits on the host), keep its last words, close every pipe."""
        try:
            self.terminate()
        except ProcessLookupError:
            pass
        try:
            self.wait(timeout=self._patience)
        except ChildProcessError:      # reaped elsewhere
            self.returncode = self.returncode if self.returncode is not None else -1
        self._drain_stderr()
        log_command(f"fork {self.name}", self.returncode, None, stderr=self._stderr_tail)
        for pipe in (self.stdin, self.stdout, self.stderr):
            try:
                pipe.close()
            except OSError:            # BrokenPipe flushing stdin to a dead child
                pass

    def stderr_text(self) -> str:
        """What the child wrote to stderr (all of it once stopped)."""
        return self._drain_stderr().decode(errors="replace")

    def summary(self) -> dict:
        said = self.stderr_text().strip().splitlines()
        return {"name": self.name, "pid": self.pid, "returncode": self.returncode, "last_error": said[-1] if said else None}


def stop_helpers(procs) -> None:
    """The old name of lifecycle.stop_all for forked helpers: stop each (SIGTERM, reap, SIGKILL
    after 30 s, pipes closed); one that will not stop does not keep the others running."""
    stop_all(procs)
