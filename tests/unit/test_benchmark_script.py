"""scripts/benchmark fails loudly and prints clean figures to any stdout. A kernel that does not
exist makes every step fail at once (no VM boots): each is named with its tool's message, no
figures, exit 1. Stand-ins for vng and run-experiment check the output when stdout is a file:
QEMU reopens /proc/self/fd/1 (O_TRUNC, offset 0), which used to eat the first line and overwrite another."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not (REPO / ".venv" / "bin" / "vng").exists() or not (REPO / ".venv" / "bin" / "run-experiment").exists(),
                    reason="needs scripts/setup (.venv with vng and run-experiment)")
def test_every_failed_step_is_named_and_the_exit_is_non_zero(tmp_path):
    proc = subprocess.run([str(REPO / "scripts" / "benchmark"), "1"], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, KERNEL="/nonexistent", OUT=str(tmp_path / "bench")))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout == ""                                     # figures only, and there are none
    for name in ("topology", "handshake-virtual-1", "handshake-host-1", "stale_syn"):
        assert f"FAILED: {name} exited" in proc.stderr
    assert "kernel image '/nonexistent' does not exist" in proc.stderr
    assert "4 step(s) FAILED" in proc.stderr.splitlines()[-1]
    assert (tmp_path / "bench" / "logs" / "stale_syn.log").exists()


def test_a_bad_run_count_is_refused():
    proc = subprocess.run([str(REPO / "scripts" / "benchmark"), "three"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "RUNS must be a whole number" in proc.stderr


FAKE_VNG = """#!PYTHON
import os
fd = os.open("/proc/self/fd/1", os.O_WRONLY | os.O_TRUNC)       # what QEMU's file chardev does
os.write(fd, b"[    0.000000] Linux version 6.1.0 (kernel noise, longer than the figures that follow it)\\n" * 3
         + b"topology up+down, plain Mininet: median 5.00 s (min 5.00, max 5.00)\\n"
         + b"topology up+down, harness lab:   median 6.00 s (min 6.00, max 6.00)\\nharness overhead: +1.00 s\\n")
"""

FAKE_RUN = """#!PYTHON
import json, os, pathlib, sys
args = sys.argv[1:]
out = pathlib.Path(args[args.index("--results-dir") + 1])
name = args[-1].removesuffix(".yaml")
clock = args[args.index("--vm-clock") + 1] if "--vm-clock" in args else "virtual"
print("a line the run prints")
run = out / name / "20260101-000000-abcd"
run.mkdir(parents=True)
segments = [{"t": 0.0}, {"t": 0.05}, {"t": 0.1001}]
result = {"experiment": name, "passed": clock != "host", "kernel": "6.1.0-test", "target": "vm/" + clock + "-clock",
          "configured_rtt_s": 0.1, "ping_rtt_s": 0.1, "observation": {"segments": {"client": segments}},
          "network": [{"segments": [{"flags": "S", "held_s": 3.000006}]}]}
(run / "result.json").write_text(json.dumps(result))
sys.exit(int(os.environ.get("FAKE_EXIT_" + name + "_" + clock, 0 if clock != "host" else 1)))
"""


def _stand_ins(tmp_path: Path) -> dict:
    for name, text in (("vng", FAKE_VNG), ("run-experiment", FAKE_RUN)):
        (tmp_path / name).write_text(text.replace("PYTHON", sys.executable))
        (tmp_path / name).chmod(0o755)
    return dict(os.environ, KERNEL="/boot/fake", OUT=str(tmp_path / "bench"), VNG=str(tmp_path / "vng"),
                RUN_EXPERIMENT=str(tmp_path / "run-experiment"))


def test_figures_reach_a_file_whole_and_alone(tmp_path):
    env = _stand_ins(tmp_path)
    with open(tmp_path / "figures.txt", "w") as stdout:
        proc = subprocess.run([str(REPO / "scripts" / "benchmark"), "2"], stdout=stdout, stderr=subprocess.PIPE,
                              text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr
    lines = (tmp_path / "figures.txt").read_text().splitlines()
    assert lines[:3] == ["topology up+down, plain Mininet: median 5.00 s (min 5.00, max 5.00)",
                         "topology up+down, harness lab:   median 6.00 s (min 6.00, max 6.00)",
                         "harness overhead: +1.00 s"]
    assert [l.split("  (")[0] for l in lines[3:7]] == ["handshake at client: 100.1 ms / configured RTT 100 ms = 1.001"] * 4
    assert [l.endswith("its expectations failed)") for l in lines[3:7]] == [False, False, True, True]
    assert lines[7:] == ["network hold (for: 3s): segment S held 3.000006 s at the switch"]
    assert "handshake-host-1: some expectations failed" in proc.stderr


def test_a_failed_run_among_good_ones_is_named_and_its_figure_left_out(tmp_path):
    env = dict(_stand_ins(tmp_path), FAKE_EXIT_handshake_virtual="3")
    proc = subprocess.run([str(REPO / "scripts" / "benchmark"), "1"], capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 1
    assert "FAILED: handshake-virtual-1 exited 3" in proc.stderr and "a line the run prints" in proc.stderr
    assert "handshake-virtual-1" not in proc.stdout and "handshake-host-1" in proc.stdout
    assert proc.stderr.splitlines()[-1].endswith("handshake-virtual-1 (exit 3)")
