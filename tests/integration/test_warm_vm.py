"""A warm VM in a real VM: it boots once, serves two runs with the cold target's verdicts, survives a
client killed mid-run (the guest still cleans the run up), refuses a client with other code, and
--warm-stop leaves nothing: no keeper, no QEMU, no socket, no ledger. One VM at a time, handshake
only (the VM work is kept small)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.targets import warm

REPO = Path(__file__).resolve().parents[2]
CLIENT = """
import sys
from pathlib import Path
from harness.load import load_cells
from harness.load.matrix import MAX_CELLS
from harness.plan.batch_plan import plan_batch
from harness.targets.vm import plan_entries
from harness.targets.warm import run_warm
exp, results, kernel = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
plan = plan_batch({exp: load_cells(exp, MAX_CELLS)}, results, "vm", [kernel])
sys.exit(run_warm(plan.items[0].kernel, plan_entries(plan.items, MAX_CELLS), results,
                  on_line=lambda line: print(line, flush=True)))
"""
EXPERIMENT = REPO / "experiments" / "handshake.yaml"
RUN_LIMIT_S = 1200


def _kernel() -> str:
    from harness.plan.kernels import pick_kernel
    return str(pick_kernel(None))


def _client(results: Path, kernel: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CLIENT, str(EXPERIMENT), str(results), kernel], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _finish(proc: subprocess.Popen) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=RUN_LIMIT_S)
    print(out)
    return proc.returncode, out


def _verdicts(results: Path) -> list[list]:
    """Each run's expectations as (name, expected, passed, value to 1 ms): what a verdict is made of.
    The observed text carries random sequence numbers, and a measured time varies by tens of
    microseconds from run to run (the virtual clock counts instructions, and a random ISN changes
    a few), cold or warm alike; the tolerance of these expectations is 5 ms."""
    runs = sorted(results.glob("handshake/*/result.json"))
    return [[(e["name"], e["expected"], e["passed"], None if e["value"] is None else round(e["value"]))
             for e in json.loads(p.read_text())["expectations"]] for p in runs]


def _our_processes(results: Path) -> list[str]:
    """Keeper, vng, QEMU or guardian processes that name this test's results folder."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(results) in command:
            found.append(f"{entry.name} {command[:160]}")
    return found


def _leftovers(results: Path, keeper_pid: int, key: str) -> list[str]:
    paths = warm.Paths(key)
    files = [p for p in (paths.socket, paths.state, paths.qmp, warm.REGISTRY / f"{keeper_pid}-warm.json") if p.exists()]
    return _our_processes(results) + [str(p) for p in files]


def _settled(results: Path, keeper_pid: int, key: str, wait_s: float = 30.0) -> list[str]:
    deadline = time.time() + wait_s
    while (left := _leftovers(results, keeper_pid, key)) and time.time() < deadline:
        time.sleep(0.5)
    return left


def _idle_cpu_share(key: str, seconds: float = 10.0) -> float:
    """The share of one host core the warm VM's QEMU used over `seconds` (utime + stime)."""
    qmp = str(warm.Paths(key).qmp)
    pid = next(e.name for e in Path("/proc").iterdir() if e.name.isdigit() and _cmdline(e).startswith("/")
               and "qemu-system" in _cmdline(e) and qmp in _cmdline(e))

    def ticks() -> int:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    before = ticks()
    time.sleep(seconds)
    return (ticks() - before) / os.sysconf("SC_CLK_TCK") / seconds


def _cmdline(entry: Path) -> str:
    try:
        return (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _state_of(key: str) -> dict:
    """The keeper's state file, written once vng is started, just after the socket opens."""
    deadline = time.time() + 120
    while (state := warm.read_state(warm.Paths(key).state)) is None and time.time() < deadline:
        time.sleep(0.2)
    assert state is not None
    return state


@pytest.fixture
def kernel():
    if os.geteuid() != 0:
        pytest.skip("the VM target needs root")
    return _kernel()


def _key(kernel: str, results: Path) -> str:
    from harness.plan.kernels import release_of
    return warm.warm_key(Path(kernel), release_of(Path(kernel)), "virtual", results)


def test_two_runs_through_one_warm_vm_match_a_cold_run_and_stop_leaves_nothing(kernel, tmp_path):
    cold, hot = tmp_path / "cold", tmp_path / "warm"
    code, _ = _finish(subprocess.Popen([sys.executable, "-m", "harness.cli", "--target", "vm", "--kernel", kernel,
                                        "--results-dir", str(cold), str(EXPERIMENT)], cwd=REPO, text=True,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    assert code == 0
    key = _key(kernel, hot)
    code_before = warm.code_fingerprint()
    try:
        first_code, first = _finish(_client(hot, kernel))
        state = warm.read_state(warm.Paths(key).state)
        second_code, second = _finish(_client(hot, kernel))
        assert (first_code, second_code) == (0, 0)
        if warm.code_fingerprint() != code_before or state["fingerprint"] != code_before:
            pytest.skip("someone edited harness/ during the test: the warm VM was rightly replaced (see the output)")
        assert "starting a warm VM" in first and "using the warm VM" in second
        assert warm.read_state(warm.Paths(key).state)["pid"] == state["pid"]        # the same VM served both
        assert _verdicts(hot) == 2 * _verdicts(cold)
        for run_dir in [p.parent for p in hot.glob("handshake/*/result.json")]:     # drawn on the host, as cold
            assert (run_dir / "report.html").exists() and (run_dir / "profile.json").exists()
        assert not list(hot.glob(".warm-guest-*"))
        assert not list(hot.glob(".warm-plan-*"))
        time.sleep(5)       # the guest's after-work (it imports what the run imported), then its vCPUs stop
        assert _idle_cpu_share(key) < 0.2       # not the 60-100 % of a spinning -icount guest

        # a client killed mid-run: the keeper has the guest interrupt the run, which cleans up; the VM stays
        killed = _client(hot, kernel)
        for line in killed.stdout:
            if line.startswith("@@phase recorders"):      # the lab is built
                break
        os.killpg(killed.pid, signal.SIGKILL)
        killed.wait()
        deadline = time.time() + 300
        while warm.read_state(warm.Paths(key).state)["runs"] < 3 and time.time() < deadline:
            time.sleep(1)
        if warm.code_fingerprint() != code_before:
            pytest.skip("someone edited harness/ during the test: the warm VM was rightly replaced (see the output)")
        assert warm.read_state(warm.Paths(key).state)["runs"] == 3
        assert warm.keeper_alive(state)
        assert "interrupted; the lab was torn down" in warm.Paths(key).log.read_text()
        assert not list(hot.glob(".warm-plan-*"))
    finally:
        lines: list[str] = []
        assert warm.stop_warm(lines.append) == 0
    print(lines)
    assert any(line.startswith("stopped the warm VM of kernel") for line in lines)
    assert _settled(hot, state["pid"], key) == []


def test_a_client_with_other_code_stops_the_warm_vm(kernel, tmp_path):
    """Staleness, decided by the keeper before its guest is even up: it answers "stale" and stops,
    leaving nothing (the client then boots a fresh one)."""
    results = tmp_path / "warm"
    results.mkdir()
    key = _key(kernel, results)
    warm._start_keeper(Path(kernel), "virtual", results.resolve(), key, 60.0)
    try:
        run = warm.WarmRun(warm._connect(warm.Paths(key).socket, warm.START_WAIT_S))
        state = _state_of(key)
        run.send({"op": "run", "plan": str(results / "none.json"), "verbose": False, "fingerprint": "edited"})
        assert {"stale": True} in list(run.messages(120))
        assert warm._wait_gone(state, 120)
        assert _settled(results, state["pid"], key) == []
    finally:
        warm.stop_warm(lambda line: None)


def test_a_killed_keeper_leaves_no_vm(kernel, tmp_path):
    """SIGKILL of the keeper mid-boot: its ledger's guardian kills the VM's process group and
    removes the ledger; the next look at the warm VMs removes its state and socket."""
    results = tmp_path / "warm"
    results.mkdir()
    key = _key(kernel, results)
    warm._start_keeper(Path(kernel), "virtual", results.resolve(), key, 60.0)
    try:
        warm._connect(warm.Paths(key).socket, warm.START_WAIT_S).close()
        deadline = time.time() + 120
        while (state := warm.read_state(warm.Paths(key).state)) is None and time.time() < deadline:
            time.sleep(0.2)       # written once vng is started, just after the socket
        while not any("qemu" in p for p in _our_processes(results)) and time.time() < deadline:
            time.sleep(0.5)
        assert any("qemu" in p for p in _our_processes(results))
        os.kill(state["pid"], signal.SIGKILL)
        assert warm.warm_states() == [] or warm._wait_gone(state, 10)
        assert warm.warm_states() == []
        assert _settled(results, state["pid"], key, wait_s=10) == []
    finally:
        warm.stop_warm(lambda line: None)
