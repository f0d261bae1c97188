"""Kernel tracepoints through tracefs: every state change of a full TCP socket, retransmissions and
resets, each with the kernel's own timestamp (bcc's tcpstates reads the same tracepoint; no BCC or
LLVM needed here: tracefs is plain files).

The tracer makes its own tracefs instance (instances/tcp-testbed-<pid>), so nothing global is
touched and several readers never share a buffer; the instance is in the ledger, so a killed run's
is removed by the guardian or the next run. Events go to the instance's ring buffer during the
run and are read once, after the timeline: nobody reads during the run, so the observer costs the
emulated CPU only the tracepoints themselves (a few hundred ns each). The buffer's overrun counts
are read with it; an overrun means lost events and the run's evidence is incomplete.

The instance's clock is `tai` (CLOCK_TAI, which is CLOCK_REALTIME plus the TAI offset, 0 unless
set; `mono` on a kernel without it): the offset is read when tracing starts and subtracted, so
events share the captures' and the step logs' clock. Output: trace/kernel.trace (the instance's `trace` file as the kernel wrote
it) and trace/kernel.json (clock, offset, events enabled and missing, overruns).
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from harness.lab.lifecycle import Lifecycle
from harness.runlog import log_command

TRACEFS = Path("/sys/kernel/tracing")
INSTANCE_PREFIX = "tcp-testbed-"
# What the analysis reads. sock:inet_sock_set_state is the one that matters; the others are used
# when the kernel has them (all five exist on 6.1 and 6.12).
EVENTS = ("sock/inet_sock_set_state", "tcp/tcp_retransmit_skb", "tcp/tcp_retransmit_synack",
          "tcp/tcp_send_reset", "tcp/tcp_receive_reset", "tcp/tcp_destroy_sock")
REQUIRED = "sock/inet_sock_set_state"
BUFFER_KIB = 8192          # per CPU: ~80 000 events of ~100 bytes (the VM has one)
BUFFER_TOTAL_KIB = 65536   # at most this much over all CPUs (a local run on a many-CPU host)


def tracefs_root() -> Path | None:
    """Where tracefs is, mounting it if the kernel has it but nobody mounted it (a fresh guest)."""
    if (TRACEFS / "instances").is_dir():
        return TRACEFS
    debug = Path("/sys/kernel/debug/tracing")
    if (debug / "instances").is_dir():
        return debug
    if TRACEFS.is_dir():
        done = subprocess.run(["mount", "-t", "tracefs", "nodev", str(TRACEFS)], capture_output=True, text=True)
        log_command(["mount", "-t", "tracefs", "nodev", str(TRACEFS)], done.returncode, done.stdout, stderr=done.stderr)
        if (TRACEFS / "instances").is_dir():
            return TRACEFS
    return None


def instance_path(root: Path, pid: int | None = None) -> Path:
    return root / "instances" / f"{INSTANCE_PREFIX}{pid or os.getpid()}"


def remove_instance(path: str | Path) -> None:
    """Stop and remove one instance (the ledger's clean-up, and the tracer's own)."""
    path = Path(path)
    if not path.is_dir():
        return
    try:
        (path / "tracing_on").write_text("0")
    except OSError:
        pass
    try:
        path.rmdir()
    except OSError:
        time.sleep(0.1)       # a reader still closing the buffer: once more, then leave it to the next run
        try:
            path.rmdir()
        except OSError:
            pass


def _write(path: Path, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


class KernelTracer(Lifecycle):
    """Tracepoints recorded in this run's own tracefs instance, from the constructor (tracing on)
    to stop() (tracing off, buffer saved to `out_dir`, instance removed). `available` says whether
    the kernel offers tracefs and the state tracepoint at all: without them the run samples densely
    and says so, it does not fail."""

    def __init__(self, out_dir: Path, ledger=None) -> None:
        self.out_dir = out_dir
        self.enabled: list[str] = []
        self.missing: list[str] = []
        self.problem: str | None = None      # why tracing is not available (None: it is)
        self._summary: dict = {}
        self.unsaved: str | None = None      # why the trace could not be written (its folder's disk is full...)
        self.instance: Path | None = None
        root = tracefs_root()
        if root is None:
            self.problem = "this kernel has no tracefs (CONFIG_TRACING off, or /sys/kernel/tracing not mountable)"
            return
        if not (root / "events" / REQUIRED).is_dir():
            self.problem = f"this kernel has no {REQUIRED} tracepoint"
            return
        self.instance = instance_path(root)
        if ledger is not None:
            ledger.add(trace_instances=[str(self.instance)])
        remove_instance(self.instance)        # a previous run of this PID (a VM reboots PIDs)
        try:
            self.instance.mkdir()
            self._start()
        except OSError as exc:       # read-only tracefs, lockdown, no memory: sampled states only
            remove_instance(self.instance)
            self.problem = f"could not set up tracing in {self.instance}: {exc}"
            self.instance = None

    @property
    def available(self) -> bool:
        return self.problem is None

    def _start(self) -> None:
        inst = self.instance
        _write(inst / "tracing_on", "0")
        clocks = (inst / "trace_clock").read_text()
        self.clock = "tai" if "tai" in clocks.replace("[", " ").replace("]", " ").split() else "mono"
        _write(inst / "trace_clock", self.clock)
        _write(inst / "buffer_size_kb", str(min(BUFFER_KIB, BUFFER_TOTAL_KIB // (os.cpu_count() or 1))))
        for event in EVENTS:
            enable = inst / "events" / event / "enable"
            if enable.exists():
                _write(enable, "1")
                self.enabled.append(event)
            else:
                self.missing.append(event)
        # the trace clock minus CLOCK_REALTIME, read just before tracing_on: what maps the buffer's
        # stamps to epoch time (tai: the TAI offset, 0 unless set; mono, on a kernel without tai:
        # the boot time, which holds as long as nobody steps the clock during the run)
        clock_id = time.CLOCK_TAI if self.clock == "tai" else time.CLOCK_MONOTONIC
        self.offset_s = time.clock_gettime(clock_id) - time.time()
        _write(inst / "tracing_on", "1")

    def _stop(self) -> None:
        if self.instance is None:
            return
        inst = self.instance
        try:
            _write(inst / "tracing_on", "0")
            overruns = {}
            for stats in sorted((inst / "per_cpu").glob("cpu*/stats")):
                fields = dict(line.split(":", 1) for line in stats.read_text().splitlines() if ":" in line)
                overruns[stats.parent.name] = int(fields.get("overrun", "0").strip() or 0)
            self._summary = {"clock": self.clock, "offset_s": self.offset_s, "enabled": self.enabled,
                             "missing": self.missing, "overruns": overruns, "kernel": os.uname().release}
            try:
                self.out_dir.mkdir(parents=True, exist_ok=True)
                (self.out_dir / "kernel.trace").write_bytes((inst / "trace").read_bytes())
                (self.out_dir / "kernel.json").write_text(json.dumps(self._summary, indent=1))
            except OSError as exc:      # a full disk: said with the rest of the evidence, not raised here
                self.unsaved = f"trace/: {exc.strerror or exc}"
        finally:
            remove_instance(inst)

    def summary(self) -> dict:
        return dict(self._summary, available=self.available, problem=self.problem)

    def problems(self) -> list[str]:
        """What makes the trace unfit to support a verdict (lost events, not written)."""
        if self.unsaved:
            return [f"the kernel trace could not be written ({self.unsaved})"]
        lost = {cpu: n for cpu, n in self._summary.get("overruns", {}).items() if n}
        if lost:
            return [f"the kernel trace lost events (ring buffer overrun: {lost}); states cannot be trusted"]
        return []
