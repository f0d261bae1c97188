"""A batch survives whatever one VM does (an overrun after its last item, a stray marker line, a
bug in its thread): that VM's items say why they have no verdict, the others go on, the pool is
shut down, and the exit code is the worst one."""
from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.targets import batch
from harness.targets.batch import BatchItem, run_batch, worst_code


def item(name: str) -> BatchItem:
    return BatchItem(Path(f"{name}.yaml"), name, "vm", SimpleNamespace(duration_s=3.0), kernel=Path("k"))


def passing_vm(group, on_line, started):
    for n, member in enumerate(group):
        on_line(f"@@start {n}")
        on_line(f"@@done {n} 0 1.0 /results/{member.name}")
    return 0


def test_a_vm_stopped_after_its_last_item_keeps_the_verdicts():
    items = [item("a"), item("b")]

    def overran_after(group, on_line, started):
        passing_vm(group, on_line, started)
        on_line("stopped the VM: the time after the last item took more than 600 s")
        on_line("@@limit after 600")
        return 3

    log: list[str] = []
    code = run_batch(items, None, overran_after, jobs=1, log=log.append)
    assert [i.code for i in items] == [0, 0] and code == 0
    assert any("after the last item" in line for line in log)


def test_a_malformed_marker_is_shown_as_output():
    items = [item("a")]

    def stray(group, on_line, started):
        on_line("@@start 0")
        on_line("@@start")
        on_line("@@done 7 0 1.0 /nowhere")           # no item 7 in this VM
        on_line("@@done 0 0 1.0 /results/a")
        return 0

    log: list[str] = []
    assert run_batch(items, None, stray, jobs=1, log=log.append) == 0
    assert any(line.endswith("] @@start") for line in log) and any("@@done 7" in line for line in log)


def test_a_bug_in_one_vms_thread_costs_only_its_items(monkeypatch):
    items = [item("a"), item("b"), item("c"), item("d")]
    threads_before = set(threading.enumerate())

    def one_breaks(group, on_line, started):
        if any(i.name == "a" for i in group):
            on_line("@@start 0")
            raise RuntimeError("the harness tripped")
        return passing_vm(group, on_line, started)

    log: list[str] = []
    code = run_batch(items, None, one_breaks, jobs=2, log=log.append)
    broken = [i for i in items if i.code != 0]
    assert {i.name for i in broken} == {"a", "c"} and all(i.code == 3 for i in broken)
    assert all(i.note.startswith("no verdict, because") and "the harness tripped" in i.note for i in broken)
    assert code == 3 and any("summary" in line for line in log)
    assert set(threading.enumerate()) <= threads_before, "the pool's threads were left running"


@pytest.mark.parametrize("codes, worst", [
    ([0, 0], 0), ([0, 1], 1), ([1, 2], 2), ([2, 3], 3), ([3, 70], 70), ([70, 130, 3], 130), ([2, 70, 1], 70),
    ([0, 255], 3),
])
def test_the_exit_code_is_the_worst_one(codes, worst):
    assert worst_code(codes) == worst
    items = [item(str(n)) for n in range(len(codes))]

    def vm(group, on_line, started):
        for n, member in enumerate(group):
            on_line(f"@@start {n}")
            on_line(f"@@done {n} {codes[int(member.name)]} 1.0 /r")
        return 0

    assert run_batch(items, None, vm, jobs=1, log=lambda line: None) == worst


def test_log_defaults_to_the_run_log(monkeypatch):
    said: list[str] = []
    monkeypatch.setattr(batch, "say", said.append)
    assert run_batch([item("a")], None, passing_vm, jobs=1) == 0
    assert "summary" in "\n".join(said)
