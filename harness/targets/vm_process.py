"""The VM's process (vng, virtme-run, QEMU: one process group) with the helpers' lifecycle
(harness.lab.lifecycle), so the VM target starts, waits for and stops it like any other helper.

The group cannot outlive the runner: vng gets PR_SET_PDEATHSIG, and the group (leader PID and
start time) is recorded in the caller's ledger, whose guardian kills it if the runner dies.
"""
from __future__ import annotations

import os
import select
import signal
import subprocess
import time

from harness.errors import RunFailed
from harness.lab.leftovers import kill_group, start_time
from harness.lab.lifecycle import Lifecycle, recorded_or_stopped
from harness.lab.namespaces import die_with_parent
from harness.runlog import log_command, log_started
from harness.targets import protocol


class VmProcess(Lifecycle):
    """`args` started in a new session (its own process group) with stdout and stderr merged into
    one pipe, read line by line. wait_ready() passes lines to `on_line` until the inner run's first
    start marker (harness.targets.protocol: the guest has booted); lines() yields the rest.
    stop() SIGKILLs the whole group (there is nothing in it to flush), reaps the leader and closes
    the pipe; summary() has the exit status and whether stop() had to kill it."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None, ledger=None) -> None:
        self.ready_line: str | None = None
        self.killed = False
        self._partial = b""
        self._lines: list[str] = []
        self._eof = False
        parent = os.getpid()
        self.proc = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=lambda: die_with_parent(parent))
        self.pid = self.proc.pid
        log_started(args, self.pid, where="vm")
        self._start = start_time(self.pid)
        if ledger is not None:
            recorded_or_stopped(self, ledger, pids=[self.pid], groups=[self.pid])

    def readline(self, timeout: float | None) -> str | None:
        """The next output line (without its newline), or None once the output ended (`ended`)
        or if `timeout` passed first."""
        deadline = None if timeout is None else time.time() + timeout
        while not self._lines and not self._eof:
            left = None if deadline is None else max(0.0, deadline - time.time())
            if not select.select([self.proc.stdout], [], [], left)[0]:
                return None
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                self._eof = True
                if self._partial:
                    self._lines.append(self._partial.decode(errors="replace").rstrip())
                    self._partial = b""
                break
            *done, self._partial = (self._partial + chunk).split(b"\n")
            self._lines += [raw.decode(errors="replace").rstrip() for raw in done]
        return self._lines.pop(0) if self._lines else None

    @property
    def ended(self) -> bool:
        """Its output ended and every line was read."""
        return self._eof and not self._lines

    def wait_ready(self, timeout: float | None = None, on_line=None) -> None:
        """Pass lines on until the ready line (which is passed on too); RunFailed if the output
        ends or `timeout` passes first."""
        deadline = None if timeout is None else time.time() + timeout
        while self.ready_line is None:
            line = self.readline(None if deadline is None else max(0.0, deadline - time.time()))
            if line is None:
                raise RunFailed(f"the VM did not get ready ({'its output ended' if self.ended else 'timed out'}, "
                                f"no start marker such as {protocol.start_marker(0)!r})")
            if on_line:
                on_line(line)
            marker = protocol.parse_marker(line)
            if marker and marker.kind == "start":
                self.ready_line = line

    def lines(self, timeout: float | None = None):
        """Yield each further line until the output ends (or none comes for `timeout`)."""
        while (line := self.readline(timeout)) is not None:
            yield line

    def poll(self) -> int | None:
        return self.proc.poll()

    def _stop(self) -> None:
        if self._eof:                # its output ended: it is on its way out, let it finish
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        if self.proc.poll() is None:
            self.killed = True
        if self._start is not None:
            kill_group(self.pid, self._start)    # the leader's start time guards against a reused number
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(self.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc.stdout.close()
        log_command(self.proc.args, self.proc.returncode, None, where="vm", note="killed by stop()" if self.killed else None)

    def summary(self) -> dict:
        return {"pid": self.pid, "returncode": self.proc.returncode, "killed": self.killed,
                "ready": self.ready_line is not None}
