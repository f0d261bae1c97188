"""SIGKILL a run at each stage (VM boot, lab set-up, timeline, analysis; its PID alone or its whole
process group): within a few seconds nothing of it may remain (no QEMU, vng, tcpdump, agent,
sampler or Mininet shell, no interface, netns, nft table or OVS bridge, no ledger), no result may
appear in its folder later, and the next run starts clean.

Kill points are reached by watching the run's own output lines, never by sleeping for a guessed
time. A host shell's netns lives exactly as long as the processes in it, so "no tagged process"
also means "no netns of the run".
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from conftest import KILL_SETTLE_S, REPO, tagged_processes

PLAIN = str(REPO / "tests" / "fixtures" / "handshake_plain.yaml")

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="building a lab needs root")]

# (the line to wait for, then kill; PID alone or the whole group)
LOCAL_POINTS = {
    "start": ("target: local", True),
    "lab set-up": ("building ", False),
    "timeline": ("running the timeline", True),
    "analysis": ("analysing the captures", False),
}
VM_POINTS = {
    "boot": ("booting kernel", False),     # then until QEMU itself runs (see _kill_at)
    "lab set-up": ("building ", True),
    "timeline": ("running the timeline", False),
}


def _kill_at(cli, tmp_path: Path, args: list[str], line: str, group: bool, settle_s: float = KILL_SETTLE_S) -> None:
    run = cli(args, tmp_path)
    run.wait_for(line)
    if line == "booting kernel":           # printed just before vng starts: wait for QEMU itself
        deadline = time.time() + 600
        while not any("qemu-system" in p for p in tagged_processes(run.tag)) and time.time() < deadline:
            time.sleep(0.2)
        assert any("qemu-system" in p for p in tagged_processes(run.tag)), "QEMU never started"
    run.kill(group)
    killed = time.time()
    left = run.leftovers(settle_s)
    print(f"KILL {' '.join(args[:2])} at {line!r} ({'group' if group else 'pid'}): "
          f"{len(left)} leftovers after {time.time() - killed:.1f} s")
    assert not left, left
    time.sleep(5)                                  # a VM left running would write its result now
    assert not list(tmp_path.rglob("result.json")), "a result appeared in a killed run's folder"


@pytest.mark.parametrize("point", LOCAL_POINTS)
def test_sigkill_local_run_leaves_nothing(cli, tmp_path, point):
    line, group = LOCAL_POINTS[point]
    _kill_at(cli, tmp_path, ["--target", "local", PLAIN], line, group)


@pytest.mark.parametrize("point", VM_POINTS)
def test_sigkill_vm_run_leaves_nothing(cli, tmp_path, point):
    line, group = VM_POINTS[point]
    _kill_at(cli, tmp_path, ["--target", "vm", PLAIN], line, group)


def test_the_run_after_kills_starts_clean(cli, tmp_path):
    """After the kills above (and one more here), the next run finds nothing to clean up."""
    _kill_at(cli, tmp_path / "killed", ["--target", "local", PLAIN], "running the timeline", False)
    code, out, err = cli(["--target", "local", PLAIN], tmp_path / "next").finish()
    assert code == 0, out + err
    assert "left by a killed run" not in out + err
