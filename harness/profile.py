"""Where a run's wall time goes: phases marked as they begin, stamped on the host's clock.

Why: under emulation every process start and every file read over 9p costs wall time that the
guest's virtual clock does not show, and what a user waits for is the host's clock. Here a mark is
time.time(); inside a VM it is also a console line (`@@phase NAME`, see harness.targets.protocol)
that the host stamps as it reads it (ProfileCollector). Each run folder gets profile.json
(write_profile); scripts/benchmark prints the table.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

PROFILE_NAME = "profile.json"
MARK = "@@phase "
# name -> what the phase covers, in the order a run goes through them
PHASES = {
    "host-start": "Python starting on the host and importing the harness, up to run-experiment's main()",
    "plan": "the experiment and topology files loaded and checked, the run planned",
    "vm-boot": "QEMU starting, the guest kernel booting, virtme-ng's init (udev) until the guest's shell runs",
    "guest-python": "the guest's Python starting and importing the harness over 9p",
    "preflight": "tools and kernel modules checked (the first use loads them), stale labs cleaned",
    "lab": "Mininet building the topology; addresses, routes, MTUs and qdiscs read back",
    "prepare": "sysctls set and read back, ARP warmed up, the RTT pinged, the network steps' rules placed",
    "recorders": "tcpdumps, kernel send mirrors, the kernel tracer and the state sampler started and ready",
    "agents": "one agent per host started and ready, the kernel's counters read",
    "timeline": "the experiment's timeline (on the virtual clock in a VM: idle time is skipped)",
    "stop": "agents, recorders and rules stopped, the lab torn down",
    "analyse": "the evidence checked, captures parsed, states observed, expectations judged",
    "write": "timeline, result.json and report.html written, the run folder published",
    "vm-shutdown": "the guest powering off and QEMU exiting after the last run",
}

_marks: list[tuple[str, float]] = []
_console = False        # inside a VM: also print each mark for the host to stamp


def phase(name: str, at: float | None = None) -> None:
    """Mark that phase `name` (one of PHASES) begins now (or began `at`)."""
    if name not in PHASES:
        raise ValueError(f"no phase {name!r}; phases are {', '.join(PHASES)}")
    _marks.append((name, time.time() if at is None else at))
    if _console:
        print(f"{MARK}{name}", flush=True)


def to_console(on: bool = True) -> None:
    """Inside a VM: each mark is also a console line, which the host stamps on its own clock."""
    global _console
    _console = on


def take() -> list[tuple[str, float]]:
    """The marks made here since the last take()."""
    marks = list(_marks)
    _marks.clear()
    return marks


def process_start() -> float | None:
    """When this process started (time.time() clock, 10 ms resolution), for the host-start phase."""
    try:
        stat = Path("/proc/self/stat").read_text()
        ticks = int(stat[stat.rindex(")") + 2:].split()[19])        # since boot
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return time.time() - (uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


def durations(marks: list[tuple[str, float]], end: float) -> list[dict]:
    """Each mark's phase with its start (seconds after the first mark) and length (until the next
    mark, the last until `end`). A phase marked twice (several items in one VM) keeps both."""
    if not marks:
        return []
    first = marks[0][1]
    ends = [t for _, t in marks[1:]] + [end]
    return [{"name": name, "start": round(t - first, 3), "seconds": round(max(0.0, stop - t), 3)}
            for (name, t), stop in zip(marks, ends)]


def write_profile(run_dir: Path, marks: list[tuple[str, float]], end: float, where: str) -> None:
    """profile.json in `run_dir`: the phases on the host's clock. Not evidence: a failure to write
    it is ignored (the verdict stands without it)."""
    phases = durations(sorted(marks, key=lambda m: m[1]), end)
    data = {"clock": "host", "where": where, "phases": phases,
            "total_s": round(sum(p["seconds"] for p in phases), 3)}
    try:
        (run_dir / PROFILE_NAME).write_text(json.dumps(data, indent=1) + "\n")
    except OSError:
        pass


@dataclass
class ProfileCollector:
    """The host's side of a VM's marks: the console's phase lines stamped as they arrive, split
    into items by the protocol's start/done markers; marks before the first item's start (host
    start, planning, the boot, the guest's Python) belong to the first item, the VM's shutdown
    to the last."""
    pending: list[tuple[str, float]] = field(default_factory=list)
    items: list[tuple[str, list[tuple[str, float]], float]] = field(default_factory=list)   # (run_dir, marks, end)

    def mark(self, name: str) -> None:
        """Phase `name` began now (a name that is no phase is ignored: the guest's line is output)."""
        if name in PHASES:
            self.pending.append((name, time.time()))

    def done(self, run_dir: str) -> None:
        """An item ended (its @@done line) with its folder (or none)."""
        self.items.append((run_dir, self.pending, time.time()))
        self.pending = []

    def finish(self, where: str, shutdown: bool = True) -> None:
        """The VM ended: the last item gains the shutdown (not for a warm VM, which stays up: its
        last phase runs on to the keeper's end message); every item's profile.json is written."""
        if self.items and shutdown:
            run_dir, marks, ended = self.items[-1]
            self.items[-1] = (run_dir, marks + [("vm-shutdown", ended)], time.time())
        for run_dir, marks, end in self.items:
            if run_dir and Path(run_dir).is_dir():
                write_profile(Path(run_dir), marks, end, where)
