"""The guardian of one run (see harness.lab.leftovers): started in its own session at the start
of the run, it blocks on a pipe whose write end only the runner holds. EOF means the runner closed
it (a normal end: the ledger is already gone) or died (SIGKILL, OOM): then the guardian removes
what the ledger still lists, and exits. Any local-run lock it was handed is released only then.

Usage (by Ledger only): python -m harness.lab.guardian LEDGER_PATH READ_FD
"""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path


def main(ledger: str, read_fd: str) -> int:
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)          # only the pipe decides when the runner is gone
    fd = int(read_fd)
    while True:
        try:
            if not os.read(fd, 4096):
                break
        except InterruptedError:
            continue
    path = Path(ledger)
    if not path.exists():
        return 0
    from harness.lab.leftovers import _read_ledger, remove
    try:
        data = _read_ledger(path)
    except (OSError, ValueError, TypeError):
        return 1                                    # the next run reports it (clean_stale)
    data["pids"] = [e for e in data.get("pids", []) if not (isinstance(e, list) and e and e[0] == os.getpid())]
    remove(data)
    path.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
