"""Real local runs whose evidence cannot be kept whole, or whose timeline was not kept.

A results folder on a 1 MiB tmpfs passes the up-front check; once the timeline runs, a filler file
takes the rest of it, as another program filling the disk would. The run must then say its
evidence is incomplete, exit 3 and leave no passing verdict beside empty files."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "harness.cli"]
LIMIT_S = 1800       # the machine may be loaded: generous, never asserted on

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="building a lab and mounting a tmpfs need root")]


@pytest.fixture
def small_results(tmpfs):
    return tmpfs("1m")


def test_a_disk_that_fills_during_the_run_gives_no_verdict(small_results):
    proc = subprocess.Popen(CLI + ["--target", "local", "--results-dir", str(small_results),
                                   str(REPO / "tests" / "fixtures" / "handshake_plain.yaml")],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out = []
        for line in proc.stdout:
            out.append(line)
            if "running the timeline" in line:
                fd = os.open(small_results / "filler", os.O_WRONLY | os.O_CREAT)   # take every free byte
                try:
                    while os.write(fd, b"\0" * 4096):
                        pass
                except OSError:
                    pass
                finally:
                    os.close(fd)
                break
        rest, err = proc.communicate(timeout=LIMIT_S)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait()
    stdout = "".join(out) + rest
    assert proc.returncode == 3, stdout + err
    assert "expectations passed" not in stdout and "Traceback" not in stdout + err
    assert "evidence is incomplete" in err and "its file system is full" in err
    for result in small_results.glob("*/*/result.json"):
        marked = json.loads(result.read_text())
        assert marked["complete"] is False and not marked["passed"]


def test_a_step_blocked_by_its_hosts_previous_call_is_reported_and_fails(tmp_path):
    proc = subprocess.run(CLI + ["--target", "local", "--results-dir", str(tmp_path),
                                 str(REPO / "tests" / "fixtures" / "late_connect.yaml")],
                          cwd=REPO, capture_output=True, text=True, timeout=LIMIT_S)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL  steps started on time" in proc.stdout
    (path,) = tmp_path.glob("*/*/result.json")
    result = json.loads(path.read_text())
    (late,) = [s for s in result["late_steps"] if s["action"] == "connect"]
    assert late["late_s"] > 1.0 and "wait" in late["blocked_by"]
    assert "late: client's connect" in (path.parent / "timeline.txt").read_text()
    assert result["complete"] is True
