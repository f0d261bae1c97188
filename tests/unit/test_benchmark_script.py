"""scripts/benchmark fails loudly: a kernel that does not exist makes every step fail at once (no
VM boots), and the script must name each one with its tool's message, print no figures, exit 1."""
import os
import subprocess
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
