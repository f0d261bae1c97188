"""The process model without root: PIDs are checked against their start times before a kill, a
corrupt ledger is reported and kept, the guardian cleans up after a SIGKILLed runner, helpers die
with the runner, the local-run lock makes a second run wait, and VM items have their own limits."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from harness.lab import leftovers
from harness.lab.leftovers import CorruptLedger, Ledger, LocalLock, clean_stale, start_time

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def registry(tmp_path, monkeypatch):
    path = tmp_path / "registry"
    monkeypatch.setattr(leftovers, "REGISTRY", path)
    return path


@pytest.fixture
def sleeper():
    proc = subprocess.Popen(["sleep", "600"], start_new_session=True)
    yield proc
    proc.kill()
    proc.wait()


def gone(proc: subprocess.Popen, within_s: float = 10.0) -> bool:
    deadline = time.time() + within_s
    while time.time() < deadline:
        if proc.poll() is not None:
            return True
        time.sleep(0.05)
    return False


def dead_ledger(registry: Path, **lists) -> Path:
    """A ledger whose owner is gone (a PID no process has: above pid_max)."""
    registry.mkdir(parents=True, exist_ok=True)
    path = registry / "4999999.json"
    path.write_text(__import__("json").dumps({"owner": [4999999, 1], **lists}))
    return path


def test_start_time_is_field_22_of_proc_stat(sleeper):
    fields = Path(f"/proc/{sleeper.pid}/stat").read_text().rsplit(")", 1)[1].split()
    assert start_time(sleeper.pid) == int(fields[19])
    assert start_time(4999999) is None


def test_a_reused_pid_is_not_killed(registry, sleeper):
    """A dead run's ledger lists a PID that now belongs to another process (other start time)."""
    path = dead_ledger(registry, pids=[[sleeper.pid, start_time(sleeper.pid) - 1]], groups=[[sleeper.pid, 1]])
    clean_stale()
    assert not gone(sleeper, 0.5), "a process that was not the run's was killed"
    assert not path.exists()


def test_a_bare_pid_from_an_old_ledger_is_never_killed(registry, sleeper):
    dead_ledger(registry, pids=[sleeper.pid])
    clean_stale()
    assert not gone(sleeper, 0.5)


def test_the_run_s_own_process_is_killed(registry, sleeper):
    dead_ledger(registry, pids=[[sleeper.pid, start_time(sleeper.pid)]])
    clean_stale()
    assert gone(sleeper)


def test_a_process_group_is_killed_with_its_leader_s_identity(registry):
    group = subprocess.Popen(["sh", "-c", "sleep 600 & sleep 600"], start_new_session=True)
    time.sleep(0.3)
    members = subprocess.run(["pgrep", "-g", str(group.pid)], capture_output=True, text=True).stdout.split()
    assert len(members) >= 2
    dead_ledger(registry, groups=[[group.pid, start_time(group.pid)]])
    clean_stale()
    assert gone(group)
    time.sleep(0.3)
    states = subprocess.run(["ps", "-o", "stat=", "-g", str(group.pid)], capture_output=True, text=True).stdout.split()
    assert all(s.startswith("Z") for s in states), states      # dead (zombies until init reaps them)


def test_a_corrupt_ledger_is_reported_and_kept(registry):
    dead_ledger(registry)
    (registry / "4999998.json").write_text('{"interfaces": ["s1", "clie')
    with pytest.raises(CorruptLedger) as caught:
        clean_stale()
    kept = registry / "4999998.corrupt"
    assert kept.exists() and str(kept) in str(caught.value)
    assert "ip -o link" in str(caught.value)
    with pytest.raises(CorruptLedger):      # refused until someone has looked
        clean_stale()
    kept.unlink()
    assert clean_stale() == []


def test_a_live_run_s_ledger_is_left_alone(registry, sleeper):
    ledger = Ledger()
    ledger.add(pids=[sleeper.pid])
    clean_stale()
    assert ledger.path.exists() and not gone(sleeper, 0.3)
    ledger.close()
    assert not ledger.path.exists() and gone(sleeper)


RUNNER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from harness.lab import leftovers
    leftovers.REGISTRY = Path(sys.argv[1])
    ledger = leftovers.Ledger(guard=True)
    ledger.add(pids=[int(sys.argv[2])])
    print(ledger.guardian.pid, flush=True)
    if sys.argv[3] == "close":
        ledger.close()
        print("closed", flush=True)
    time.sleep(600)
""")


def test_the_guardian_cleans_up_after_a_sigkilled_runner(registry, sleeper):
    runner = subprocess.Popen([sys.executable, "-c", RUNNER, str(registry), str(sleeper.pid), "kill"], cwd=REPO,
                              stdout=subprocess.PIPE, text=True, start_new_session=True)
    guardian = int(runner.stdout.readline())
    runner.kill()
    runner.wait()
    assert gone(sleeper), "the run's process outlived its SIGKILLed runner"
    deadline = time.time() + 10
    while (list(registry.glob("*.json")) or start_time(guardian) is not None) and time.time() < deadline:
        time.sleep(0.05)
    assert not list(registry.glob("*.json")) and start_time(guardian) is None


def test_a_normal_close_lets_the_guardian_go(registry, sleeper):
    runner = subprocess.Popen([sys.executable, "-c", RUNNER, str(registry), str(sleeper.pid), "close"], cwd=REPO,
                              stdout=subprocess.PIPE, text=True, start_new_session=True)
    guardian = int(runner.stdout.readline())
    assert runner.stdout.readline().strip() == "closed"
    assert start_time(guardian) is None
    runner.kill()
    runner.wait()


FORKER = textwrap.dedent("""
    import time
    from harness.lab.namespaces import Forked
    helper = Forked(None, time.sleep, 600)
    print(helper.pid, flush=True)
    time.sleep(600)
""")


def test_a_forked_helper_dies_with_its_sigkilled_parent():
    parent = subprocess.Popen([sys.executable, "-c", FORKER], cwd=REPO, stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    helper = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    deadline = time.time() + 10
    while start_time(helper) is not None and time.time() < deadline:
        time.sleep(0.05)
    alive = start_time(helper) is not None
    if alive:
        os.kill(helper, signal.SIGKILL)
    assert not alive, "the helper (its own session) outlived the runner"


def test_stop_helpers_reaps_every_helper():
    from harness.lab.namespaces import Forked, stop_helpers
    helpers = [Forked(None, time.sleep, 600) for _ in range(3)]
    stop_helpers(helpers)
    assert all(h.returncode is not None for h in helpers)
    assert all(start_time(h.pid) is None for h in helpers)


def test_a_second_local_run_waits_and_says_for_whom(registry, monkeypatch):
    first = LocalLock()
    said: list[str] = []
    monkeypatch.setattr(leftovers, "say", said.append)      # the user-facing line (runlog.say)
    got = threading.Event()

    def second():
        lock = LocalLock()
        got.set()
        lock.release()

    thread = threading.Thread(target=second)
    thread.start()
    time.sleep(0.5)
    assert not got.is_set() and said and f"pid {os.getpid()}" in said[0] and "waiting" in said[0]
    first.release()
    thread.join(10)
    assert got.is_set()


def test_a_table_its_owner_removed_is_forgotten_and_close_runs_nothing_for_it(registry, monkeypatch):
    ran = []
    monkeypatch.setattr(leftovers, "run_command", lambda args, **kw: ran.append(args))
    ledger = Ledger()
    ledger.add(nft_tables=["tcptestbed_1", "tcptestbed_2"])
    ledger.forget(nft_tables=["tcptestbed_1"])
    assert '"nft_tables": ["tcptestbed_2"]' in ledger.path.read_text()     # on disk at once, for the guardian
    ledger.close()
    assert ran == [["nft", "delete", "table", "bridge", "tcptestbed_2"], ["nft", "delete", "table", "netdev", "tcptestbed_2"]]
