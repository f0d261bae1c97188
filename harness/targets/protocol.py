"""The protocol between the host and a run inside a VM, in one place.

1. The host writes a plan file (JSON) into the results folder, which the guest sees writable over
   9p: the items to run (a file, the matrix cell, the exact run folder or none, the cell limit, the
   item's wall-time limit) and the guest settings (stage folder in guest memory, target label).
   The guest is started as `python -m harness.cli --inner-plan FILE --results-dir RESULTS ...`.
2. The guest prints its output on the VM console; each item is framed by marker lines
   `@@start N` and `@@done N CODE SECONDS RUN_DIR`. The host adds `@@limit N|boot|after SECONDS`
   when it stopped the VM because an item, the boot, or the time after the last item's `@@done`
   overran its time limit. The guest also marks where each run is (`@@phase NAME`, harness.profile),
   which the host stamps on its own clock. Every field is one word but RUN_DIR (the rest of the line), so a marker
   reads back unambiguously. Marker lines are for the host's bookkeeping and never shown to the
   user; a line that starts like one but does not parse is ordinary output (shown, never raised).
3. Results come back through the same writable results folder: each item's run folder is
   published there (from the stage) and named in its `@@done` line.

The SSH remote shares none of this: it runs a plain `run-experiment` on the other machine and
copies its results folder back (harness.targets.ssh).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from harness.plan.run_plan import GuestSettings

GUEST_STAGE = Path("/tmp/tcp-testbed-stage")
MARK = "@@"
BOOT = "boot"              # a limit on the boot: before the first item's @@start
AFTER_LAST = "after"       # a limit after the last item's @@done (the guest did not shut down)


@dataclass(frozen=True)
class PlanItem:
    """One item of a VM's plan file."""
    path: Path
    cell: int
    run_dir: Path | None
    max_cells: int
    limit_s: float

    def to_json(self) -> dict:
        return {"path": str(self.path), "cell": self.cell, "run_dir": str(self.run_dir) if self.run_dir else None,
                "max_cells": self.max_cells, "limit_s": self.limit_s}


def guest_settings(clock: str, observer: str = "trace") -> GuestSettings:
    """What every run in a VM on `clock` (virtual | host) is told."""
    return GuestSettings(stage=GUEST_STAGE, target=f"vm/{clock}-clock", observer=observer)


def write_plan(file: Path, entries: list[dict], guest: GuestSettings) -> None:
    file.write_text(json.dumps({"guest": {"stage": str(guest.stage) if guest.stage else None, "target": guest.target,
                                          "observer": guest.observer},
                                "items": entries}))


def read_plan(file: Path) -> tuple[list[PlanItem], GuestSettings]:
    data = json.loads(file.read_text())
    guest = GuestSettings(stage=Path(data["guest"]["stage"]) if data["guest"]["stage"] else None,
                          target=data["guest"]["target"], observer=data["guest"].get("observer", "trace"))
    items = [PlanItem(Path(e["path"]), e["cell"], Path(e["run_dir"]) if e["run_dir"] else None,
                      e["max_cells"], e["limit_s"]) for e in data["items"]]
    return items, guest


def start_marker(index: int) -> str:
    return f"{MARK}start {index}"


def done_marker(index: int, code: int, seconds: float, run_dir: Path | None) -> str:
    return f"{MARK}done {index} {code} {seconds:.1f} {run_dir or ''}"


def limit_marker(what: int | str, limit_s: float) -> str:
    """`what`: the item's index, BOOT or AFTER_LAST."""
    if not _limit_what(str(what)):
        raise ValueError(f"a limit marker names an item's index, {BOOT!r} or {AFTER_LAST!r}, not {what!r}")
    return f"{MARK}limit {what} {limit_s:.0f}"


def is_marker(line: str) -> bool:
    """The line is a well-formed marker (one that only starts like one is output)."""
    return parse_marker(line) is not None


@dataclass(frozen=True)
class Marker:
    kind: str                  # start | done | limit | phase (what: the phase's name)
    what: str                  # the item's index (BOOT or AFTER_LAST for a limit not on an item)
    code: int | None = None    # done: the item's exit code
    seconds: float | None = None
    run_dir: str = ""          # done: the item's results folder ("" if it has none)

    @property
    def index(self) -> int | None:
        """The item's index; None for a limit on the boot or after the last item."""
        return int(self.what) if self.what.isdigit() else None


def _limit_what(what: str) -> bool:
    return what.isdigit() or what in (BOOT, AFTER_LAST)


def _number(text: str, kind=int):
    try:
        return kind(text)
    except ValueError:
        return None


def parse_marker(line: str) -> Marker | None:
    """The marker a line carries, or None for an ordinary output line, malformed markers included:
    this never raises (a guest's stray "@@" line must not stop the host's bookkeeping)."""
    if not line.startswith(MARK):
        return None
    kind, _, rest = line[len(MARK):].partition(" ")
    if kind == "start":
        fields = rest.split()
        return Marker("start", fields[0]) if len(fields) == 1 and fields[0].isdigit() else None
    if kind == "done":
        fields = rest.split(" ", 3)
        if len(fields) < 3 or not fields[0].isdigit():
            return None
        code, seconds = _number(fields[1]), _number(fields[2], float)
        if code is None or seconds is None:
            return None
        return Marker("done", fields[0], code, seconds, fields[3] if len(fields) > 3 else "")
    if kind == "phase":
        fields = rest.split()
        return Marker("phase", fields[0]) if len(fields) == 1 and fields[0].replace("-", "").isalpha() else None
    if kind == "limit":
        fields = rest.split()
        seconds = _number(fields[1], float) if len(fields) == 2 else None
        return Marker("limit", fields[0], seconds=seconds) if seconds is not None and _limit_what(fields[0]) else None
    return None
