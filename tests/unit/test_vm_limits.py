"""A time limit belongs to an item: a VM that overruns one item is stopped for it, that item says
why, and the items after it run in a fresh VM; an item a VM never reached says so."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

from harness.lab import leftovers
from harness.targets import vm
from harness.targets.batch import BatchItem, run_batch
from harness.targets.vm_process import VmProcess


def item(name: str, duration_s: float = 3.0) -> BatchItem:
    return BatchItem(Path(f"{name}.yaml"), name, "vm", SimpleNamespace(duration_s=duration_s), kernel=Path("k"))


def test_an_item_over_its_limit_says_so_and_the_rest_run_in_a_new_vm():
    items = [item("a"), item("b"), item("c")]
    calls: list[list[str]] = []

    def fake_vm(group, on_line, started):
        calls.append([i.name for i in group])
        for n, member in enumerate(group):
            on_line(f"@@start {n}")
            if member.name == "b":               # b hangs: the VM is stopped for it
                on_line(f"@@limit {n} 630")
                return 3
            on_line(f"@@done {n} 0 1.0 /results/{member.name}")
        return 0

    log: list[str] = []
    code = run_batch(items, None, fake_vm, jobs=1, log=log.append)
    assert calls == [["a", "b", "c"], ["c"]]
    assert [i.code for i in items] == [0, 3, 0]
    assert "time limit of 630 s" in items[1].note
    summary = "\n".join(log)
    assert "time limit" in summary and code == 3


def test_items_a_dead_vm_never_reached_say_why():
    items = [item("a"), item("b")]

    def dead_vm(group, on_line, started):
        on_line("@@start 0")
        return 255

    log: list[str] = []
    run_batch(items, None, dead_vm, jobs=1, log=log.append)
    assert items[0].code == 3 and "ended during this item" in items[0].note
    assert items[1].code == 3 and items[1].note.startswith("not run")
    assert all(i.note in "\n".join(log) for i in items)


def test_the_limit_grows_with_the_timeline():
    short, long = vm.item_limit_s(SimpleNamespace(duration_s=3)), vm.item_limit_s(SimpleNamespace(duration_s=65))
    assert vm.ITEM_ALLOWANCE_S < short < long


def test_follow_stops_a_process_group_that_overruns_an_item(tmp_path, monkeypatch):
    monkeypatch.setattr(leftovers, "REGISTRY", tmp_path)
    lines: list[str] = []
    began = time.time()
    with VmProcess(["sh", "-c", "echo @@start 0; sleep 600 & sleep 600"]) as machine:
        assert vm._follow(machine, [{"limit_s": 1}], lines.append, leftovers.Ledger()) is True
        proc = machine.proc
        assert proc.wait(timeout=30) == -9 and time.time() - began < 60
    assert lines[0] == "@@start 0" and "item 0 took more than its time limit of 1 s" in lines[1]
    assert lines[2] == "@@limit 0 1"
    states = subprocess.run(["ps", "-o", "stat=", "-g", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert all(s.startswith("Z") for s in states), states


def test_follow_stops_a_vm_that_overruns_after_its_last_item_with_a_marker_the_batch_reads(tmp_path, monkeypatch):
    from harness.targets import protocol
    monkeypatch.setattr(leftovers, "REGISTRY", tmp_path)
    monkeypatch.setattr(vm, "ITEM_ALLOWANCE_S", 1.0)
    lines: list[str] = []
    with VmProcess(["sh", "-c", "echo @@start 0; echo '@@done 0 0 1.0 /r'; sleep 600"]) as machine:
        assert vm._follow(machine, [{"limit_s": 60}], lines.append, leftovers.Ledger()) is True
    assert machine.summary()["killed"]
    assert "the time after the last item took more than 1 s" in lines[2]
    limit = protocol.parse_marker(lines[3])
    assert (limit.kind, limit.what) == ("limit", protocol.AFTER_LAST)
