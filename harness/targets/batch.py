"""Several experiments in one invocation: in VMs side by side, or locally one after another.

Each VM is its own kernel with its own namespaces, and its virtual clock (QEMU icount) does not
slow down when the host is busy, so VM runs can share the host without changing what they
measure. Booting a VM and loading Python in it cost ~20 s of wall time under emulation, so each VM
runs a share of the items one after another. Local runs share the root namespace's interface
names (Mininet's s1-eth1...), so they take turns.

The batch's exit code is the worst of its items' (worst_code): interrupted (130) over a bug in the
test bed (70) over no verdict (3) over bad input (2) over a failed expectation (1) over a pass
(0). A bug outranks "no verdict" because it is what must be fixed first and its traceback was
saved; interrupted outranks all because then the other verdicts are incomplete.
"""
from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from harness.errors import UserError
from harness.lab.leftovers import Interrupted
from harness.plan.batch_plan import BatchItem
from harness.runlog import say
from harness.targets import protocol

VERDICTS = {0: "PASS", 1: "FAIL", 2: "BAD INPUT", 3: "NO VERDICT", 70: "BUG", 130: "INTERRUPTED"}
SEVERITY = (0, 1, 2, 3, 70, 130)      # least to most severe; see the module's docstring


def worst_code(codes) -> int:
    """The most severe exit code of `codes`; one outside SEVERITY (a dead VM's 255) counts as
    no verdict (3)."""
    return max((c if c in SEVERITY else 3 for c in codes), key=SEVERITY.index, default=0)


def vm_groups(items: list[BatchItem], jobs: int) -> list[list[BatchItem]]:
    """Items that share a VM: one kernel per VM, about `jobs` VMs, items spread evenly."""
    by_kernel: dict = {}
    for item in items:
        by_kernel.setdefault(item.kernel, []).append(item)
    groups = []
    for members in by_kernel.values():
        count = max(1, min(len(members), round(jobs * len(members) / len(items))))
        groups += [members[k::count] for k in range(count)]
    return groups


def _interrupted_text(procs) -> str:
    """What a Ctrl-C left: cold VMs are stopped; a warm VM only had its run cancelled and stays up."""
    warm = sum(1 for proc in procs if hasattr(proc, "cancel"))
    cold = len(procs) - warm
    said = [f"the {cold} VM(s) were stopped and nothing of them keeps running"] if cold else []
    if warm:
        said.append(f"the run(s) in {warm} warm VM(s) were stopped (a lab they built was torn down); the warm VM(s) "
                    "stay up (run-experiment --warm-stop stops them)")
    return "interrupted; " + ("; ".join(said) if said else "no VM had started") + "."


def run_batch(items: list[BatchItem], run_local_item, run_vm_group, jobs: int, log=None) -> int:
    """Run every item; print a summary and the parallelism achieved; return the worst exit code.
    `log` says each line (default: the run log's say)."""
    log = log or say
    vm_items = [i for i in items if i.target == "vm"]
    local_items = [i for i in items if i.target == "local"]
    width = max(len(i.name) for i in items)
    lock = threading.Lock()
    procs: list = []
    began = time.time()

    def one_vm(number: int, group: list[BatchItem]) -> None:
        """Run a VM's share; nothing it raises leaves this thread: a failure here is its items' "no
        verdict" (or bad input), and the other VMs go on."""
        try:
            pending = group
            while pending:        # a VM stopped for an item's time limit: the rest of its share gets a new VM
                pending = vm_share(number, pending)
        except Exception as exc:     # noqa: BLE001 - said on each item it cost a verdict
            why = f"{type(exc).__name__}: {exc}" if not isinstance(exc, UserError) else str(exc)
            with lock:
                log(f"[{f'vm {number}':<{width}}] the VM's run failed: {why}")
            for item in group:
                if item.code is None:
                    item.code = 2 if isinstance(exc, UserError) else 3
                    item.note = f"no verdict, because running its VM failed: {why}"

    def vm_share(number: int, group: list[BatchItem]) -> list[BatchItem]:
        """Run `group` in one VM; return the items still to run if the VM was stopped for an item's
        time limit, else []."""
        current: list[BatchItem | None] = [None]
        began: dict[int, float] = {}     # item -> host time it started (the guest's clock is virtual)
        limited: list[str] = []

        def on_line(line: str) -> None:
            marker = protocol.parse_marker(line)
            if marker and marker.kind in ("start", "done") and marker.index >= len(group):
                marker = None                     # names no item of this VM: it is output
            if marker and marker.kind == "start":
                current[0], began[marker.index] = group[marker.index], time.time()
            elif marker and marker.kind == "done":
                item = group[marker.index]
                item.code, item.seconds, item.results = marker.code, time.time() - began.get(marker.index, time.time()), marker.run_dir
                current[0] = None
            elif marker and marker.kind == "limit":
                limited.append(marker.what)
            elif not marker:
                name = current[0].name if current[0] else f"vm {number}"
                with lock:
                    log(f"[{name:<{width}}] {line}")

        code = run_vm_group(group, on_line, procs.append)
        from harness.targets.vm import describe_limit, item_limit_s
        for index, item in enumerate(group):      # the VM ended before the item reported
            if item.code is not None:
                continue
            if limited and limited[0] == str(index):
                item.code, item.seconds = 3, time.time() - began[index]
                item.note = f"stopped after {item.seconds:.0f} s: over {describe_limit(item_limit_s(item.experiment))}"
            elif limited and limited[0] != protocol.BOOT and index not in began:
                return group[index:]              # not reached: run in a fresh VM
            elif index in began:
                item.code, item.seconds = (code if code in (2, 130) else 3), time.time() - began[index]
                item.note = f"the VM ended during this item (vng exit status {code}); see its output above"
            else:
                item.code = code if code in (2, 130) else 3
                item.note = ("not run: the VM did not boot within its time limit" if limited
                             else f"not run: the VM ended before reaching it (vng exit status {code})")
        return []

    if vm_items:
        groups = vm_groups(vm_items, jobs)
        workers = max(1, min(jobs, len(groups)))
        log(f"running {len(vm_items)} experiment(s) in {len(groups)} VM(s), {workers} side by side (--jobs {jobs}); "
            "each VM boots once and runs its share one after another")
        pool, interrupted = ThreadPoolExecutor(max_workers=workers), False
        try:
            futures = [pool.submit(one_vm, n + 1, group) for n, group in enumerate(groups)]
            for f in futures:
                while not f.done():
                    time.sleep(0.2)
                f.result()
        except KeyboardInterrupt:
            interrupted = True
            for proc in procs:
                if proc.poll() is None and hasattr(proc, "cancel"):
                    proc.cancel()            # a warm VM: the run inside stops, the VM stays
                elif proc.poll() is None:
                    os.killpg(proc.pid, 15)
            for proc in procs:
                proc.wait()
            raise Interrupted(_interrupted_text(procs)) from None
        finally:
            # every way out; after a Ctrl-C the VMs were killed and their threads end on their own
            pool.shutdown(wait=not interrupted, cancel_futures=True)
    if local_items:
        log(f"running {len(local_items)} experiment(s) on this kernel, one after another (Mininet's interface names are shared)")
    for item in local_items:
        start = time.time()
        item.code, run_dir = run_local_item(item)
        item.results, item.seconds = str(run_dir or ""), time.time() - start
    wall = time.time() - began
    busy = sum(i.seconds for i in items)
    log("\nsummary")
    for item in items:
        log(f"  {item.name:<{width}}  {item.target:<5}  {VERDICTS.get(item.code, f'exit {item.code}'):<10}  "
            f"{item.seconds:6.1f} s  {item.results or item.note}")
    log(f"{len(items)} runs in {wall:.0f} s of wall time; the runs themselves took {busy:.0f} s: parallelism "
        f"{busy / wall:.2f}x" + (" (VM boot and start-up not counted in the runs)" if vm_items else ""))
    return worst_code(i.code for i in items)

