"""Run Python code inside a host's network namespace without starting a new interpreter.

Mininet's `popen` execs a fresh Python per helper; in the emulated VM each one spends ~2.4 s of
wall time importing over the 9p root file system (measured). Forking the already-loaded runner and
switching the child's network namespace (setns) starts a helper in milliseconds.
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
import traceback

CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def die_with_parent(parent: int) -> None:
    """Have the kernel SIGKILL the calling process when its parent (the thread that forked it)
    dies, even by SIGKILL; if the parent is already gone, exit now."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def enter_netns(pid: int) -> None:
    """Move the calling thread into the network namespace of process `pid` (a Mininet host's shell)."""
    fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns into the network namespace of pid {pid}: {os.strerror(err)}")
    finally:
        os.close(fd)


class Forked:
    """A child running `function(*args)` in host `pid`'s namespace, with Popen's pipes and methods
    (stdin, stdout, stderr, poll, terminate, wait) so the runner treats it like any helper."""

    def __init__(self, pid: int | None, function, *args) -> None:
        pipes = [os.pipe() for _ in range(3)]          # stdin, stdout, stderr
        sys.stdout.flush()
        sys.stderr.flush()
        parent = os.getpid()
        child = os.fork()
        if child == 0:
            self._child(parent, pid, pipes, function, args)
        self.pid = child
        self.returncode: int | None = None
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

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.time() + timeout
        while self.poll() is None:
            if deadline is not None and time.time() > deadline:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                self.returncode = -signal.SIGKILL
                break
            time.sleep(0.01)
        return self.returncode


def stop_helpers(procs) -> None:
    """SIGTERM every helper still running, then wait for each (SIGKILL after 30 s); used on every
    way out of a run, so one helper that will not stop does not keep the others running."""
    procs = list(procs)
    for proc in procs:
        try:
            proc.terminate()
        except ProcessLookupError:
            pass
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except ChildProcessError:
            pass
