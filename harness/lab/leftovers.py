"""Scoped clean-up: every run records what it creates; a later run removes what a killed one left.

`mn -c` is not used: it deletes every OVS bridge on the machine and kills unrelated processes.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

REGISTRY = Path("/run/tcp-testbed")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


class Ledger:
    """A file listing the interfaces and PIDs of this run, removed after a clean teardown."""

    def __init__(self) -> None:
        REGISTRY.mkdir(parents=True, exist_ok=True)
        self.path = REGISTRY / f"{os.getpid()}.json"
        self.interfaces: list[str] = []
        self.pids: list[int] = []
        self.ovs_bridges: list[str] = []
        self.nft_tables: list[str] = []

    def add(self, *, interfaces: list[str] = (), pids: list[int] = (), ovs_bridges: list[str] = (),
            nft_tables: list[str] = ()) -> None:
        self.interfaces += list(interfaces)
        self.pids += list(pids)
        self.ovs_bridges += list(ovs_bridges)
        self.nft_tables += list(nft_tables)
        self.path.write_text(json.dumps({"interfaces": self.interfaces, "pids": self.pids, "ovs_bridges": self.ovs_bridges,
                                         "nft_tables": self.nft_tables}))

    def close(self) -> None:
        remove(self.interfaces, self.pids, self.ovs_bridges, self.nft_tables)
        self.path.unlink(missing_ok=True)


def remove(interfaces: list[str], pids: list[int], ovs_bridges: list[str] = (), nft_tables: list[str] = ()) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    for name in nft_tables:    # the network steps' bridge rules
        subprocess.run(["nft", "delete", "table", "bridge", name], capture_output=True)
    for name in ovs_bridges:   # only this run's bridges, never `mn -c`'s sweep of all of them
        subprocess.run(["ovs-vsctl", "--timeout=5", "--if-exists", "del-br", name], capture_output=True)
    for name in interfaces:
        if Path(f"/sys/class/net/{name}").exists():
            subprocess.run(["ip", "link", "del", name], capture_output=True)


def clean_stale() -> list[str]:
    """Remove what runs that died (SIGKILL, power loss) left behind; return what was removed."""
    removed = []
    if not REGISTRY.exists():
        return removed
    for ledger in REGISTRY.glob("*.json"):
        if _alive(int(ledger.stem)):
            continue
        try:
            data = json.loads(ledger.read_text())
        except (OSError, ValueError):
            data = {"interfaces": [], "pids": []}
        remove(data["interfaces"], data["pids"], data.get("ovs_bridges", []), data.get("nft_tables", []))
        removed += data["interfaces"]
        ledger.unlink(missing_ok=True)
    return removed
