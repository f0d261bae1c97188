"""Several experiments in one invocation: VMs side by side, local runs one after another.

Each VM is its own kernel with its own namespaces, and its virtual clock (QEMU icount) does not
slow down when the host is busy, so VM runs can share the host without changing what they measure.
Local runs share the root namespace's interface names (Mininet's s1-eth1...), so they take turns.
"""
from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

VERDICTS = {0: "PASS", 1: "FAIL", 2: "BAD INPUT", 3: "NO VERDICT", 130: "INTERRUPTED"}


@dataclass
class BatchItem:
    path: Path
    name: str
    target: str                  # local | vm
    experiment: object = None    # the loaded Experiment
    cell: int | None = None      # index of a matrix cell in its file
    run_dir: Path | None = None  # a matrix cell's folder
    why: str = ""                # why this target
    code: int | None = None
    seconds: float = 0.0
    results: str = ""


def run_batch(items: list[BatchItem], run_local_item, run_vm_item, jobs: int, log) -> int:
    """Run every item; print a summary; return the worst exit code (3 > 1 > 0)."""
    vm_items = [i for i in items if i.target == "vm"]
    local_items = [i for i in items if i.target == "local"]
    width = max(len(i.name) for i in items)
    lock = threading.Lock()
    procs: list = []

    def one_vm(item: BatchItem) -> None:
        def say(line: str) -> None:
            if line.split("] ", 1)[-1].startswith("results: "):
                item.results = line.split("results: ", 1)[1]
            with lock:
                log(line)
        start = time.time()
        item.code = run_vm_item(item, prefix=f"[{item.name:<{width}}] ", log=say, started=procs.append)
        item.seconds = time.time() - start

    if vm_items:
        workers = max(1, min(jobs, len(vm_items)))
        log(f"running {len(vm_items)} experiment(s) in VMs, {workers} side by side (--jobs {jobs}; one VM each)")
        pool = ThreadPoolExecutor(max_workers=workers)
        futures = [pool.submit(one_vm, item) for item in vm_items]
        try:
            for f in futures:
                while not f.done():
                    time.sleep(0.2)
                f.result()
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)
            for proc in procs:
                if proc.poll() is None:
                    os.killpg(proc.pid, 15)
            for proc in procs:
                proc.wait()
            raise
        pool.shutdown()
    if local_items:
        log(f"running {len(local_items)} experiment(s) on this kernel, one after another (Mininet's interface names are shared)")
    for item in local_items:
        start = time.time()
        item.code, run_dir = run_local_item(item)
        item.results, item.seconds = str(run_dir or ""), time.time() - start
    log("\nsummary")
    for item in items:
        log(f"  {item.name:<{width}}  {item.target:<5}  {VERDICTS.get(item.code, f'exit {item.code}'):<10}  "
            f"{item.seconds:6.1f} s  {item.results}")
    codes = {i.code for i in items}
    return 3 if codes - {0, 1} else (1 if 1 in codes else 0)
