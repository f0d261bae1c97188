"""Every helper's lifecycle (harness.lab.lifecycle): start, ready, stop on the good path and on
every error path, with no thread, process or pipe left behind, and one ExitStack stopping all of
them in reverse order. No lab: helpers fork into this namespace or a scratch one, tcpdump listens
on the loopback, packet rules run against a stand-in switch, the VM is a stand-in command."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import pytest

from harness.errors import RunFailed
from harness.lab.leftovers import start_time
from harness.lab.lifecycle import Helper, HelperGroup, Lifecycle, stop_all
from harness.lab.namespaces import Forked
from harness.model import AgentStep


def _gone(pid: int) -> bool:
    """The process is dead: no longer in /proc, or a zombie (killed, waiting for init to reap it)."""
    for _ in range(500):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return True
        if stat[stat.rindex(")") + 2] == "Z":
            return True
        time.sleep(0.01)
    return False


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def _say_ready_then_sleep() -> None:
    print("ready", flush=True)
    time.sleep(600)


def _fail_at_once() -> None:
    raise ValueError("the helper's own reason")


class Ledger:
    """Stands in for the run's ledger: what was recorded; fails on demand like a full /run."""

    def __init__(self, fail: bool = False) -> None:
        self.fail, self.pids, self.groups, self.tables = fail, [], [], []

    def add(self, *, pids=(), groups=(), nft_tables=()) -> None:
        if self.fail:
            raise OSError(28, "No space left on device")
        self.pids += list(pids)
        self.groups += list(groups)
        self.tables += list(nft_tables)

    def forget(self, *, nft_tables=()) -> None:
        """What the owner removed itself: the real ledger's close() then runs no command for it."""
        self.forgotten = list(nft_tables)


@pytest.fixture(autouse=True)
def nothing_survives():
    """After every test: no thread and no child process (zombies included: all reaped) that the
    test started is left."""
    threads, children = set(threading.enumerate()), set(_children_of(os.getpid()))
    yield
    assert set(threading.enumerate()) <= threads, "a thread survived its helper"
    assert set(_children_of(os.getpid())) <= children, "a process survived its helper (or was not reaped)"


# --- the shape ---------------------------------------------------------------------------------

class Recorder(Lifecycle):
    def __init__(self, name: str, stopped: list[str], fail: bool = False) -> None:
        self.name, self.order, self.fail = name, stopped, fail

    def _stop(self) -> None:
        self.order.append(self.name)
        if self.fail:
            raise RuntimeError(f"{self.name} would not stop")


def test_one_exit_stack_stops_every_helper_in_reverse_order_even_when_one_fails_to_stop():
    order: list[str] = []
    with pytest.raises(ZeroDivisionError):
        with ExitStack() as stack:
            for name in ("rules", "agents", "captures", "sampler"):
                stack.enter_context(Recorder(name, order, fail=name == "captures"))
            1 / 0
    assert order == ["sampler", "captures", "agents", "rules"]
    # the error that stopped the run stays the one raised; the failure to stop is noted on it


def test_a_failure_to_stop_is_noted_on_the_error_in_flight_and_raised_when_there_is_none():
    order: list[str] = []
    with pytest.raises(ZeroDivisionError) as failed:
        with Recorder("captures", order, fail=True):
            1 / 0
    assert failed.value.__notes__ == ["also, stopping Recorder failed: captures would not stop"]
    with pytest.raises(RuntimeError, match="would not stop"):
        with Recorder("captures", [], fail=True):
            pass


def test_stop_runs_once_even_after_it_failed():
    order: list[str] = []
    helper = Recorder("x", order, fail=True)
    with pytest.raises(RuntimeError):
        helper.stop()
    helper.stop()
    assert order == ["x"]


def test_stop_all_stops_the_rest_and_raises_the_first_error():
    order: list[str] = []
    helpers = [Recorder("a", order, fail=True), Recorder("b", order), Recorder("c", order, fail=True)]
    with pytest.raises(RuntimeError, match="a would not stop"):
        stop_all(helpers)
    assert order == ["a", "b", "c"]


def test_a_group_entered_early_stops_its_later_helpers_at_its_own_place_in_the_stack():
    order: list[str] = []
    with pytest.raises(ZeroDivisionError):
        with ExitStack() as stack:
            agents = stack.enter_context(HelperGroup())
            stack.enter_context(Recorder("captures", order))
            agents.add(Recorder("agent h1", order, fail=True))
            agents.add(Recorder("agent h2", order))
            1 / 0
    assert order == ["captures", "agent h2", "agent h1"]
    assert agents.add(Recorder("late", order)) and order[-1] == "late"     # the group was stopped


# --- Forked ------------------------------------------------------------------------------------

def test_forked_ready_stop_reaps_closes_its_pipes_and_is_idempotent():
    before = _open_fds()
    ledger = Ledger()
    helper = Forked(None, _say_ready_then_sleep, name="test helper", ledger=ledger)
    assert isinstance(helper, Helper) and ledger.pids == [helper.pid]
    helper.wait_ready(60)
    assert helper.ready_line == "ready\n"
    helper.stop()
    helper.stop()
    assert helper.returncode == -signal.SIGTERM and _gone(helper.pid)
    assert helper.stdin.closed and helper.stdout.closed and helper.stderr.closed
    assert _open_fds() == before, "a pipe of the stopped helper is still open"
    assert helper.summary() == {"name": "test helper", "pid": helper.pid, "returncode": -signal.SIGTERM, "last_error": None}


def _ready_then_slow_to_leave() -> None:
    """Says ready; on SIGTERM takes 0.6 s to finish up (as a helper whose pages come over 9p may)."""
    signal.signal(signal.SIGTERM, lambda *_: (time.sleep(0.6), os._exit(0)))
    print("ready", flush=True)
    time.sleep(600)


@pytest.mark.parametrize("patience, ends", [(0.2, -signal.SIGKILL), (None, 0)])
def test_forked_stop_waits_as_long_as_wait_ready_was_told(patience, ends):
    """On a VM's virtual clock wait_ready gets no limit, and stop must not SIGKILL a helper that is
    still finishing (a guest-time limit passes in a few real seconds while the guest waits on the
    host): the half_close run lost its capture that way."""
    helper = Forked(None, _ready_then_slow_to_leave, name="slow helper")
    helper.wait_ready(60)
    helper.wait_ready(patience)        # already ready: only sets how long stop() may wait
    helper.stop()
    assert helper.returncode == ends


def test_forked_that_dies_before_ready_says_why_and_stops_cleanly():
    before = _open_fds()
    with pytest.raises(RunFailed, match="(?s)the test helper did not start: no answer .*the helper's own reason"):
        with Forked(None, _fail_at_once, name="test helper") as helper:
            helper.wait_ready(60)
    assert helper.returncode == 1 and _gone(helper.pid) and _open_fds() == before
    assert "ValueError: the helper's own reason" in helper.summary()["last_error"]


def test_forked_stopped_before_ready_and_on_a_ready_timeout():
    helper = Forked(None, time.sleep, 600)
    helper.stop()                                  # never waited for
    assert _gone(helper.pid)
    with pytest.raises(RunFailed, match="timed out"):
        with Forked(None, time.sleep, 600, name="silent helper") as silent:
            silent.wait_ready(0.2)
    assert _gone(silent.pid) and silent.stdout.closed


def test_a_helper_the_ledger_cannot_record_is_stopped_not_leaked():
    before = _open_fds()
    children = set(os.listdir("/proc/self/task"))
    with pytest.raises(OSError, match="No space left"):
        Forked(None, time.sleep, 600, ledger=Ledger(fail=True))
    assert _open_fds() == before and set(os.listdir("/proc/self/task")) == children
    assert not _children_of(os.getpid())


def _children_of(pid: int) -> list[int]:
    """Live (not zombie) children of `pid`, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


# --- the state sampler -------------------------------------------------------------------------

@pytest.fixture
def scratch_netns():
    """A process holding a network namespace of its own (the sampler binds an abstract socket
    there, which must not collide with other runs on this machine)."""
    holder = subprocess.Popen(["unshare", "--net", "sleep", "600"])
    deadline = time.time() + 30
    while os.readlink(f"/proc/{holder.pid}/ns/net") == os.readlink("/proc/self/ns/net"):
        assert time.time() < deadline, "unshare did not enter a new network namespace"
        time.sleep(0.01)
    try:
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()


def test_sampler_samples_until_stopped_and_leaves_nothing(tmp_path, scratch_netns):
    from harness.record.sampler import StateSampler
    out = tmp_path / "h1.jsonl"
    with StateSampler({"h1": (scratch_netns, str(out))}, 0.01, 0.3) as sampler:
        sampler.wait_ready(60)
        time.sleep(0.2)
    assert sampler.returncode == 0 and _gone(sampler.pid) and sampler.stdout.closed   # SIGTERM: it closes its files
    lines = out.read_text().splitlines()
    assert lines and json.loads(lines[-1])["s"] == []
    assert sampler.summary()["name"] == "state sampler"


def test_sampler_that_cannot_start_says_why(tmp_path):
    from harness.record.sampler import StateSampler
    with pytest.raises(RunFailed, match="(?s)the state sampler did not start.*No such file"):
        with StateSampler({"h1": (None, str(tmp_path / "missing" / "h1.jsonl"))}, 0.01) as sampler:
            sampler.wait_ready(60)
    assert _gone(sampler.pid) and sampler.returncode == 1


# --- agents ------------------------------------------------------------------------------------

def test_agent_runs_its_steps_then_is_stopped(tmp_path):
    from harness.drive.agent_process import AgentProcess
    log = tmp_path / "h1.jsonl"
    steps = [AgentStep("wait", 7, seconds=0.05)]
    with AgentProcess("h1", None, steps, 5.0, log, ledger=Ledger()) as agent:
        agent.wait_ready(60)
        agent.go(time.time())
        agent.wait_done(60)
    assert _gone(agent.pid) and agent.stdin.closed
    assert agent.summary()["finished"] and agent.summary()["host"] == "h1"
    assert json.loads(log.read_text().splitlines()[0])["result"] == "ok"



@pytest.mark.skipif(os.geteuid() != 0, reason="locking memory without a limit needs root (CAP_IPC_LOCK)")
def test_a_ready_agent_has_its_pages_locked_in_memory(tmp_path):
    """After t0 an agent must not wait on a page fault (in the VM, one served over 9p skips the
    virtual clock ahead and the step starts late): its pages are locked before it says ready."""
    from harness.drive.agent_process import AgentProcess
    with AgentProcess("h1", None, [AgentStep("wait", 7, seconds=0.05)], 5.0, tmp_path / "h1.jsonl", ledger=Ledger()) as agent:
        agent.wait_ready(60)
        status = Path(f"/proc/{agent.pid}/status").read_text()
        locked_kb = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmLck:")))
        agent.go(time.time())
        agent.wait_done(60)
    assert locked_kb > 1024, status

def test_agent_that_cannot_open_its_log_fails_before_ready_and_is_reaped(tmp_path):
    from harness.drive.agent_process import AgentProcess
    with pytest.raises(RunFailed, match="the agent in h1 did not start"):
        with AgentProcess("h1", None, [], 5.0, tmp_path / "missing" / "h1.jsonl") as agent:
            agent.wait_ready(60)
    assert _gone(agent.pid) and agent.returncode == 1 and not agent.summary()["finished"]


def test_agent_stopped_while_its_timeline_runs(tmp_path):
    from harness.drive.agent_process import AgentProcess
    steps = [AgentStep("wait", 3, seconds=600)]
    agent = AgentProcess("h2", None, steps, 600.0, tmp_path / "h2.jsonl")
    agent.wait_ready(60)
    agent.go(time.time())
    agent.stop()
    assert _gone(agent.pid) and agent.returncode == -signal.SIGTERM


# --- tcpdump -----------------------------------------------------------------------------------

class LocalNode:
    """Stands in for a Mininet node: popen in this namespace, pipes like Mininet's."""

    def popen(self, args, **kwargs):
        return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def test_capture_on_loopback_listens_flushes_and_reports(tmp_path):
    from harness.record.capture import Capture
    ledger = Ledger()
    with Capture(LocalNode(), "lo", tmp_path / "lo.pcap", ledger=ledger) as capture:
        capture.wait_ready(120)
        with socket.create_server(("127.0.0.1", 0)) as server:       # a handshake over lo, just before the stop
            port = server.getsockname()[1]
            socket.create_connection(("127.0.0.1", port)).close()
    assert ledger.pids == [capture.proc.pid] and _gone(capture.proc.pid)
    summary = capture.summary()
    assert summary == {"interface": "lo", "file": "lo.pcap", "dropped_by_kernel": 0, "exit_status": 0}
    assert capture.stop() == summary                        # twice: same answer, nothing re-run
    # the last packets before the stop are in the file: without --immediate-mode libpcap hands them
    # over in blocks at most once a second, and on SIGINT tcpdump dropped the last block unsaid
    # (measured on a veth: "8 packets received by filter", "0 packets captured", "0 dropped by kernel")
    from harness.analyse.segments import read_segments
    flags = [seg.flags for seg in read_segments(tmp_path / "lo.pcap") if port in (seg.sport, seg.dport)]
    assert flags[:3] == ["S", "SA", "A"] and any("F" in f for f in flags), flags


def test_capture_on_a_missing_interface_fails_ready_and_is_stopped(tmp_path):
    from harness.record.capture import Capture
    with pytest.raises(RunFailed, match="tcpdump on no-such-if0 did not start"):
        with Capture(LocalNode(), "no-such-if0", tmp_path / "x.pcap") as capture:
            capture.wait_ready(120)
    assert _gone(capture.proc.pid) and capture.summary()["exit_status"] not in (0, None)


def test_capture_stopped_before_it_listens(tmp_path):
    from harness.record.capture import Capture
    capture = Capture(LocalNode(), "lo", tmp_path / "lo.pcap")
    capture.stop()
    assert _gone(capture.proc.pid) and capture.proc.stderr.closed


# --- packet rules ------------------------------------------------------------------------------

class Switch:
    """Stands in for the root-namespace node: answers nft/tc; fails the command containing `fail`."""

    name = "s1"

    def __init__(self, fail: str | None = None) -> None:
        self.fail, self.commands = fail, []

    def pexec(self, args):
        self.commands.append(" ".join(args))
        if self.fail and self.fail in self.commands[-1]:
            return "", "Error: no such device", 1
        if "tc -batch" in self.commands[-1]:          # the bands' batch ends with `qdisc show`
            return "qdisc prio 1: dev s1-eth2 root\n", "", 0
        return json.dumps({"nftables": []}), "", 0

    def cmd(self, text):
        return "qdisc prio 1: root"


def _rules(at_s: float | None, switch: Switch, ledger: Ledger):
    from harness.lab.packet_rules import PacketRules, PlacedStep
    from harness.model import Impairment, NetworkStep, PacketMatch
    hold = NetworkStep("hold", "client", "server", PacketMatch("S", None, 5001), 17, at_s or 0.0, nth=1, extra_s=3.0)
    return PacketRules([PlacedStep(hold, "s1-eth2", Impairment(delay_s=0.025), "10.0.0.1", "10.0.0.2", "s1-eth1")],
                       switch, ledger)


@pytest.fixture
def nft_calls(monkeypatch):
    from harness.lab import packet_rules
    calls: list[list[str]] = []
    monkeypatch.setattr(packet_rules, "run_command",
                        lambda args, **kw: calls.append(args) or subprocess.CompletedProcess(args, 0, "", ""))
    return calls


def _timer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if isinstance(t, threading.Timer)]


def test_armed_rules_leave_no_timer_thread_when_the_run_fails(nft_calls):
    switch, ledger = Switch(), Ledger()
    with pytest.raises(RunFailed, match="an agent did not answer"):
        with _rules(30.0, switch, ledger) as rules:
            rules.wait_ready()
            rules.start(time.time())
            assert len(_timer_threads()) == 1
            raise RunFailed("an agent did not answer")
    assert _timer_threads() == [] and ledger.tables == [rules.table]
    assert ["nft", "delete", "table", "bridge", rules.table] in nft_calls
    assert ledger.forgotten == [rules.table]      # deleted: the ledger's close() need not try again
    assert not any("add rule" in " ".join(c) for c in nft_calls)      # the timed rule never went in
    rules.start(time.time())                                           # too late: nothing starts
    assert _timer_threads() == []


def test_untimed_rules_installed_once_and_counters_kept_for_the_summary(nft_calls):
    switch = Switch()
    with _rules(None, switch, Ledger()) as rules:
        rules.wait_ready()
        rules.wait_ready()
        assert sum("add rule bridge" in c for c in switch.commands) == 1
        assert rules.counters() == {}
    assert rules.summary() == {"table": rules.table, "qdiscs": {"s1-eth2": "qdisc prio 1: root"}, "counters": {},
                               "failed": []}


def test_rules_that_fail_to_set_up_remove_what_was_made(nft_calls):
    with pytest.raises(RunFailed, match="no such device"):
        _rules(None, Switch(fail="handle 20:"), Ledger())
    assert [c[:3] for c in nft_calls] == [["nft", "delete", "table"]]


# --- the VM process ----------------------------------------------------------------------------

VM_STANDIN = "echo booting; echo '@@start 0'; sleep 600 & echo \"@@child $!\"; sleep 600"


def test_vm_process_ready_then_stopped_kills_its_whole_group():
    from harness.targets.vm_process import VmProcess
    ledger, said = Ledger(), []
    with VmProcess(["sh", "-c", VM_STANDIN], ledger=ledger) as vm:
        vm.wait_ready(60, on_line=said.append)
        child = int(next(vm.lines(60)).split()[1])
        assert not _gone(child)
    assert said == ["booting", "@@start 0"] and ledger.pids == ledger.groups == [vm.pid]
    assert _gone(vm.pid) and _gone(child) and vm.proc.stdout.closed
    assert vm.summary() == {"pid": vm.pid, "returncode": -signal.SIGKILL, "killed": True, "ready": True}


def test_vm_process_that_never_gets_ready():
    from harness.targets.vm_process import VmProcess
    with pytest.raises(RunFailed, match="timed out"):
        with VmProcess(["sleep", "600"]) as vm:
            vm.wait_ready(0.2)
    assert _gone(vm.pid)
    with pytest.raises(RunFailed, match="its output ended"):
        with VmProcess([sys.executable, "-c", "print('kernel panic')"]) as ended:
            ended.wait_ready(60)
    assert ended.summary()["returncode"] == 0 and not ended.summary()["killed"]



@pytest.fixture
def stand_in_vm(tmp_path, monkeypatch):
    """run_in_vm with `sh -c SCRIPT` in place of vng, the ledgers in a scratch registry; yields
    (set the script, the VmProcesses it started)."""
    from harness.lab import leftovers
    from harness.targets import vm, vm_process
    monkeypatch.setattr(leftovers, "REGISTRY", tmp_path / "registry")
    started: list = []

    class Recorded(vm_process.VmProcess):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            started.append(self)

    monkeypatch.setattr(vm, "VmProcess", Recorded)
    script: list[str] = []
    monkeypatch.setattr(vm, "vng_command", lambda *args, **kwargs: ["sh", "-c", script[0]])
    yield script, started
    assert not list((tmp_path / "registry").glob("*.json")), "a VM's ledger was left"


def test_run_in_vm_runs_its_vm_as_a_vm_process(tmp_path, stand_in_vm):
    from harness.targets import vm
    script, started = stand_in_vm
    script.append("echo booting; echo '@@start 0'; sleep 600 >/dev/null 2>&1 & echo \"child $!\"; echo '@@done 0 1 1.0 /r'; exit 1")
    said, handed = [], []
    code = vm.run_in_vm(Path("vmlinuz-6.1.0-test"), [{"limit_s": 60}], tmp_path / "results", on_line=said.append,
                        started=handed.append)
    (vm_,) = started
    child = int(said[3].split()[1])
    assert code == 1 and said[1:3] == ["booting", "@@start 0"] and said[4] == "@@done 0 1 1.0 /r"
    assert handed == [vm_.proc] and vm_.stopped and _gone(vm_.pid) and _gone(child) and vm_.proc.stdout.closed
    assert not list((tmp_path / "results").glob(".vm-plan-*"))


def test_run_in_vm_interrupted_stops_its_vm(tmp_path, stand_in_vm):
    from harness.lab.leftovers import Interrupted
    from harness.targets import vm
    script, started = stand_in_vm
    script.append("echo '@@start 0'; sleep 600")

    def interrupt(proc):
        raise KeyboardInterrupt

    with pytest.raises(Interrupted, match="the VM was stopped"):
        vm.run_in_vm(Path("vmlinuz-6.1.0-test"), [{"limit_s": 60}], tmp_path / "results", on_line=lambda line: None,
                     started=interrupt)
    (vm_,) = started
    assert vm_.summary()["killed"] and _gone(vm_.pid)


# --- issue 11's guarantee: a helper dies with its SIGKILLed runner --------------------------------

ORPHANED = {
    "vm": "from harness.targets.vm_process import VmProcess\nhelper = VmProcess(['sleep', '600'])\npid = helper.pid",
    "capture": "import subprocess\nfrom pathlib import Path\nfrom harness.record.capture import Capture\n"
               "class Node:\n    def popen(self, args, **kw):\n"
               "        return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)\n"
               "helper = Capture(Node(), 'lo', Path(sys.argv[1]))\nhelper.wait_ready(120)\npid = helper.proc.pid",
}


@pytest.mark.parametrize("kind", sorted(ORPHANED))
def test_a_helper_dies_with_its_sigkilled_runner(kind, tmp_path):
    script = f"import sys, time\n{ORPHANED[kind]}\nprint(pid, flush=True)\ntime.sleep(600)\n"
    runner = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "lo.pcap")], cwd=Path(__file__).parents[2],
                              stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        helper = int(runner.stdout.readline())
        runner.kill()
        runner.wait()
        survived = not _gone(helper)
        if survived:
            os.kill(helper, signal.SIGKILL)
        assert not survived, f"the {kind} helper outlived its runner"
    finally:
        runner.kill()
        runner.wait()


def test_traced_sampler_sleeps_long_yet_its_samples_reach_the_stop(tmp_path, scratch_netns):
    """Traced (the kernel's trace has the full sockets), nothing moving: it sleeps up to 2 s, so
    without its last sample at the stop the samples would end ~2 s early."""
    from harness.record.sampler import StateSampler
    out = tmp_path / "h1.jsonl"
    with StateSampler({"h1": (scratch_netns, str(out))}, 0.01, 0.05, traced=True) as sampler:
        sampler.wait_ready(60)
        time.sleep(1.2)
        stopped = time.time()
    assert sampler.returncode == 0
    times = [json.loads(line)["t"] for line in out.read_text().splitlines()]
    assert len(times) <= 3                           # idle: one at the start, maybe one more, one at the stop
    assert times[-1] >= stopped - 0.05
