"""The protocol between the host and a run inside a VM, in one place.

1. The host writes a plan file (JSON) into the results folder, which the guest sees writable over
   9p: the items to run (a file, the matrix cell, the exact run folder or none, the cell limit, the
   item's wall-time limit) and the guest settings (stage folder in guest memory, target label).
   The guest is started as `python -m harness.cli --inner-plan FILE --results-dir RESULTS ...`.
2. The guest prints its output on the VM console; each item is framed by marker lines
   `@@start N` and `@@done N CODE SECONDS RUN_DIR`. The host adds `@@limit N|boot SECONDS` when it
   stopped the VM because an item (or the boot) overran its time limit. Marker lines are for
   the host's bookkeeping and never shown to the user.
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


def guest_settings(clock: str) -> GuestSettings:
    """What every run in a VM on `clock` (virtual | host) is told."""
    return GuestSettings(stage=GUEST_STAGE, target=f"vm/{clock}-clock")


def write_plan(file: Path, entries: list[dict], guest: GuestSettings) -> None:
    file.write_text(json.dumps({"guest": {"stage": str(guest.stage) if guest.stage else None, "target": guest.target},
                                "items": entries}))


def read_plan(file: Path) -> tuple[list[PlanItem], GuestSettings]:
    data = json.loads(file.read_text())
    guest = GuestSettings(stage=Path(data["guest"]["stage"]) if data["guest"]["stage"] else None,
                          target=data["guest"]["target"])
    items = [PlanItem(Path(e["path"]), e["cell"], Path(e["run_dir"]) if e["run_dir"] else None,
                      e["max_cells"], e["limit_s"]) for e in data["items"]]
    return items, guest


def start_marker(index: int) -> str:
    return f"{MARK}start {index}"


def done_marker(index: int, code: int, seconds: float, run_dir: Path | None) -> str:
    return f"{MARK}done {index} {code} {seconds:.1f} {run_dir or ''}"


def limit_marker(what: str, limit_s: float) -> str:
    """`what`: the item's index, or "boot"."""
    return f"{MARK}limit {what} {limit_s:.0f}"


def is_marker(line: str) -> bool:
    return line.startswith(MARK)


@dataclass(frozen=True)
class Marker:
    kind: str                  # start | done | limit
    what: str                  # the item's index ("boot" for a limit on the boot)
    code: int | None = None    # done: the item's exit code
    seconds: float | None = None
    run_dir: str = ""          # done: the item's results folder ("" if it has none)

    @property
    def index(self) -> int:
        return int(self.what)


def parse_marker(line: str) -> Marker | None:
    """The marker a line carries, or None for an ordinary output line."""
    if not is_marker(line):
        return None
    kind, _, rest = line[len(MARK):].partition(" ")
    if kind == "start":
        return Marker("start", rest.split()[0])
    if kind == "done":
        index, code, seconds, *run_dir = rest.split(" ", 3)
        return Marker("done", index, int(code), float(seconds), run_dir[0] if run_dir else "")
    if kind == "limit":
        what, seconds = rest.split()[:2]
        return Marker("limit", what, seconds=float(seconds))
    return None
