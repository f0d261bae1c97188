"""`pip install .` (not editable) into a fresh venv gives a run-experiment that works from any
folder without the source: the shipped experiments and topologies travel inside the wheel.

The venv sees the system's site-packages (Debian's Mininet lives there); pip uses the machine's
configured index. The source copy is deleted before the installed command runs, so nothing can
reach back into a checkout."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = Path("/usr/bin/python3")
LIMIT_S = 1800.0       # venv + pip install on a loaded machine: generous, never asserted

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not SYSTEM_PYTHON.exists(), reason="needs /usr/bin/python3 (Debian's, with Mininet)")]


def _run(args: list, cwd: Path, limit: float = LIMIT_S) -> subprocess.CompletedProcess:
    """One command in its own process group, killed whole if it outlives its limit or the test."""
    proc = subprocess.Popen([str(a) for a in args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL, start_new_session=True,
                            env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")})
    try:
        out, _ = proc.communicate(timeout=limit)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, "")


def _copy_of_the_tree(dest: Path) -> None:
    """The files git tracks (or would, once added), as they are now: what a clone would build."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, (n.decode() for n in listed)):
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """bin/ of a fresh venv holding a non-editable install of this tree (its source already gone)."""
    top = tmp_path_factory.mktemp("pip-install")
    source, venv = top / "src", top / "venv"
    _copy_of_the_tree(source)
    began = time.monotonic()
    made = _run([SYSTEM_PYTHON, "-m", "venv", "--system-site-packages", venv], top)
    assert made.returncode == 0, made.stdout
    done = _run([venv / "bin" / "pip", "install", source], top)
    assert done.returncode == 0, done.stdout
    print(f"\nvenv + pip install . took {time.monotonic() - began:.1f} s")
    shutil.rmtree(source)
    return venv / "bin"


def test_a_shipped_experiment_checks_by_name_from_another_folder(installed, tmp_path):
    done = _run([installed / "run-experiment", "--check", "handshake.yaml"], tmp_path, 600)
    assert done.returncode == 0, done.stdout
    assert "/site-packages/harness/shipped/experiments/handshake.yaml: ok" in done.stdout


def test_every_shipped_experiment_travelled_in_the_wheel(installed, tmp_path):
    shipped = sorted(str(p.relative_to(REPO / "experiments")) for p in (REPO / "experiments").glob("**/*.yaml"))
    done = _run([installed / "run-experiment", "--check", *shipped], tmp_path, 600)
    assert done.returncode == 0, done.stdout
    assert done.stdout.count(": ok (") == len(shipped), done.stdout


def test_an_experiment_of_ones_own_finds_its_topology_next_to_it_or_shipped(installed, tmp_path):
    handshake = (REPO / "experiments" / "handshake.yaml").read_text()
    assert "topology: two_hosts\n" in handshake
    (tmp_path / "shipped_topology.yaml").write_text(handshake)           # two_hosts: from the wheel
    (tmp_path / "my_topology.yaml").write_text((REPO / "topologies" / "two_hosts.yaml").read_text())
    (tmp_path / "own_topology.yaml").write_text(handshake.replace("topology: two_hosts\n", "topology: my_topology.yaml\n"))
    done = _run([installed / "run-experiment", "--check", "shipped_topology.yaml", "own_topology.yaml"], tmp_path, 600)
    assert done.returncode == 0, done.stdout
    assert "shipped_topology.yaml: ok" in done.stdout and "own_topology.yaml: ok" in done.stdout
