"""Scoped clean-up: every run records what it creates; nothing of it outlives the run.

Three layers, so that even a SIGKILL of the runner leaves nothing behind for more than a few
seconds:
- the run's ledger (/run/tcp-testbed/<pid>.json, replaced atomically on every change) lists its
  processes and process groups, each with its start time (/proc/PID/stat field 22: PIDs are
  reused, pid_max is 32768 here), the hosts' network namespaces, interfaces, nft tables and OVS
  bridges; the runner removes them on every exit it lives through;
- a guardian process (its own session, so a kill of the runner's group spares it) holds the read
  end of a pipe only the runner can write to: EOF means the runner is gone, and if the ledger is
  still there the guardian removes what it lists, while holding the local-run lock;
- the next run removes what a dead run's ledger still lists (the guardian itself was killed).
A process is killed only while its start time still matches the ledger's. `mn -c` is never used:
it deletes every OVS bridge on the machine and kills unrelated processes.
"""
from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from harness.errors import RunFailed
from harness.runlog import log_command, log_started, run_command, say
from harness.shipped import CODE_ROOT

REGISTRY = Path("/run/tcp-testbed")
LOCK_NAME = "local.lock"


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM, saying what had been started and was stopped."""


class CorruptLedger(RunFailed):
    """A dead run's ledger could not be read: what it listed may still exist."""


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat split after the command name (which may hold spaces): index 0 is field 3."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()


def start_time(pid: int) -> int | None:
    """When process `pid` started, in clock ticks since boot (field 22), or None if it is gone."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def same_process(pid: int, start: int) -> bool:
    return start_time(pid) == start


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _all_pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def kill_process(pid: int, start: int) -> bool:
    """SIGKILL `pid` if it is still the process that started at `start`."""
    if not same_process(pid, start):
        return False
    _kill(pid)
    return True


def kill_group(pgid: int, start: int) -> int:
    """SIGKILL every member of process group `pgid` whose leader started at `start`. A group ID
    stays taken while any member lives, so members without a leader are still that group; a
    leader with another start time means the number was reused: nothing is killed."""
    leader = start_time(pgid)
    if leader is not None and leader != start:
        return 0
    killed = 0
    for pid in _all_pids():
        fields = _stat_fields(pid)
        if fields and int(fields[2]) == pgid and int(fields[19]) >= start:
            _kill(pid)
            killed += 1
    return killed


def _netns_id(pid: int | str) -> tuple[int, int] | None:
    try:
        st = os.stat(f"/proc/{pid}/ns/net")
    except OSError:
        return None
    return st.st_dev, st.st_ino


def kill_netns(pid: int, start: int) -> int:
    """SIGKILL every process in the network namespace of `pid` (a Mininet host's shell) if that
    shell is still the one the ledger saw. Never the machine's own namespace."""
    if not same_process(pid, start):
        return 0
    target = _netns_id(pid)
    if target is None or target in (_netns_id(1), _netns_id("self")):
        return 0
    killed = 0
    for other in _all_pids():
        if _netns_id(other) == target:
            _kill(other)
            killed += 1
    return killed


def _identified(entries) -> list[tuple[int, int]]:
    """[pid, start] pairs; a bare PID (a ledger from before start times were kept) cannot be
    checked, so it is never killed."""
    return [(int(e[0]), int(e[1])) for e in entries if isinstance(e, (list, tuple)) and len(e) == 2]


def remove(data: dict) -> None:
    """Remove what a ledger lists: processes first (so namespaces and their veths go), then rules,
    bridges and interfaces."""
    for pid, start in _identified(data.get("netns", [])):
        kill_netns(pid, start)
    for pgid, start in _identified(data.get("groups", [])):
        kill_group(pgid, start)
    for pid, start in _identified(data.get("pids", [])):
        kill_process(pid, start)
    for name in data.get("nft_tables", []):    # the network steps' bridge rules, and netdev ones (duplicate)
        for family in ("bridge", "netdev"):
            run_command(["nft", "delete", "table", family, name])
    for name in data.get("ovs_bridges", []):   # only this run's bridges, never `mn -c`'s sweep of all of them
        run_command(["ovs-vsctl", "--timeout=5", "--if-exists", "del-br", name])
    for name in data.get("interfaces", []):
        if Path(f"/sys/class/net/{name}").exists():
            run_command(["ip", "link", "del", name])
    for path in data.get("trace_instances", []):      # the kernel tracer's tracefs instance
        if str(path).startswith(("/sys/kernel/tracing/instances/", "/sys/kernel/debug/tracing/instances/")):
            from harness.record.tracer import remove_instance
            remove_instance(path)


def _write_atomically(path: Path, text: str) -> None:
    """Write then rename: a reader (the guardian, the next run) never sees half a ledger."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class Ledger:
    """What this run created, on disk at every moment; removed after its things are removed.

    `guard=True` starts the guardian (see the module docstring); `keep_fds` are handed to it (the
    local-run lock, so the next local run waits until the guardian's clean-up is done)."""

    def __init__(self, suffix: str = "", guard: bool = False, keep_fds: tuple[int, ...] = ()) -> None:
        REGISTRY.mkdir(parents=True, exist_ok=True)
        self.path = REGISTRY / f"{os.getpid()}{suffix}.json"
        self.data: dict = {"owner": [os.getpid(), start_time(os.getpid())], "pids": [], "groups": [], "netns": [],
                           "interfaces": [], "ovs_bridges": [], "nft_tables": [], "trace_instances": []}
        self._lock = threading.Lock()
        self._save()
        self.guardian: subprocess.Popen | None = None
        self._pipe_w: int | None = None
        self.closed = False
        if guard:
            self._start_guardian(keep_fds)

    def _start_guardian(self, keep_fds: tuple[int, ...]) -> None:
        read, self._pipe_w = os.pipe()        # both ends close on exec: no child of ours holds them
        try:
            self.guardian = subprocess.Popen(
                [sys.executable, "-m", "harness.lab.guardian", str(self.path), str(read)],
                pass_fds=(read, *keep_fds), start_new_session=True, cwd=CODE_ROOT, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                env=dict(os.environ, PYTHONPATH=str(CODE_ROOT), PYTHONDONTWRITEBYTECODE="1"))
        finally:
            os.close(read)
        log_started(self.guardian.args, self.guardian.pid, where="guardian")
        self.add(pids=[self.guardian.pid])    # the next run reaps a guardian that outlived its work

    def _save(self) -> None:
        _write_atomically(self.path, json.dumps(self.data))

    def add(self, *, interfaces=(), pids=(), groups=(), netns=(), ovs_bridges=(), nft_tables=(),
            trace_instances=()) -> None:
        """Record things before (names) or as soon as (processes) they exist. Processes are kept
        with their start times; one that already died is not recorded."""
        def ids(numbers):
            return [[p, s] for p in numbers if (s := start_time(p)) is not None]
        with self._lock:
            for key, values in (("pids", ids(pids)), ("groups", ids(groups)), ("netns", ids(netns)),
                                ("interfaces", interfaces), ("ovs_bridges", ovs_bridges), ("nft_tables", nft_tables),
                                ("trace_instances", trace_instances)):
                self.data.setdefault(key, [])
                self.data[key] += [v for v in values if v not in self.data[key]]
            self._save()

    def forget(self, *, nft_tables=()) -> None:
        """Drop what its owner removed itself (the packet rules delete their own tables as they
        stop), so close() runs no command that can only fail (two nft processes a run, ~0.4 s of
        wall time in a VM). Until then a killed run's ledger still lists them for the guardian."""
        with self._lock:
            self.data["nft_tables"] = [t for t in self.data.get("nft_tables", []) if t not in nft_tables]
            self._save()

    def built(self) -> bool:
        """Whether anything of a lab was recorded (more than the guardian)."""
        return any(self.data.get(k) for k in ("netns", "groups", "interfaces", "ovs_bridges", "nft_tables",
                                              "trace_instances")) or \
            any(e[0] != getattr(self.guardian, "pid", None) for e in self.data["pids"])

    def close(self) -> None:
        """Remove everything listed, then the ledger, then let the guardian go. Idempotent."""
        if self.closed:
            return
        self.closed = True
        with self._lock:
            guardian = self.guardian
            data = dict(self.data)
            if guardian is not None:         # it exits by itself once it reads EOF
                data["pids"] = [e for e in data["pids"] if e[0] != guardian.pid]
            remove(data)
            self.path.unlink(missing_ok=True)
        if self._pipe_w is not None:
            os.close(self._pipe_w)
            self._pipe_w = None
        if guardian is not None:
            try:
                guardian.wait(timeout=30)
            except subprocess.TimeoutExpired:
                guardian.kill()
                guardian.wait()
            log_command(guardian.args, guardian.returncode, None, where="guardian")


def _read_ledger(path: Path) -> dict:
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or not all(isinstance(data.get(k, []), list) for k in
                                             ("pids", "groups", "netns", "interfaces", "ovs_bridges", "nft_tables")):
        raise ValueError("not a ledger (a mapping of lists)")
    return data


def _owner_alive(path: Path, data: dict) -> bool:
    owner = data.get("owner")
    if isinstance(owner, list) and len(owner) == 2:
        return same_process(int(owner[0]), int(owner[1]))
    digits = path.stem.split("-")[0]       # a ledger from before owners were recorded
    return digits.isdigit() and start_time(int(digits)) is not None


def clean_stale(lab: bool = True) -> list[str]:
    """Remove what dead runs left behind (SIGKILL of runner and guardian, power loss); return the
    interfaces removed. With lab=False (the local-run lock is held by a live run), only kill the
    dead runs' processes and keep their ledgers for the lock holder.

    A ledger that cannot be read is moved aside to <name>.corrupt and the run is refused (exit 3)
    while such a file exists: what it listed may still exist, and building over it could collide
    or take over a stranger's interface. The message says how to check and go on."""
    removed: list[str] = []
    if not REGISTRY.exists():
        return removed
    for path in sorted(REGISTRY.glob("*.json")):
        if not path.stem.split("-")[0].isdigit():
            continue
        try:
            data = _read_ledger(path)
        except (OSError, ValueError, TypeError) as exc:
            try:
                path.rename(path.with_suffix(".corrupt"))
            except OSError:
                pass
            print(f"run-experiment: warning: the clean-up ledger {path} is unreadable ({exc}).", file=sys.stderr)
            continue
        if _owner_alive(path, data):
            continue
        if not lab:
            remove({k: data.get(k, []) for k in ("netns", "groups", "pids")})
            continue
        remove(data)
        removed += [str(n) for n in data.get("interfaces", [])]
        path.unlink(missing_ok=True)
    corrupt = sorted(REGISTRY.glob("*.corrupt"))
    if corrupt:
        raise CorruptLedger(
            f"the clean-up ledger(s) {', '.join(map(str, corrupt))} of a killed run could not be read, so what "
            "that run created (interfaces, namespaces, nft tables, OVS bridges, processes) may still exist. "
            "Check `ip -o link`, `nft list tables` and `ovs-vsctl list-br` for names of your topologies and "
            "`ps -eo pid,args | grep -E 'tcpdump|mininet|harness'`, remove what is left, then delete the file(s) "
            "to run again.")
    return removed


class LocalLock:
    """One local lab at a time: Mininet's switch-side interface names (s1-eth1...) live in the root
    namespace, so two labs would collide. A second local run waits, saying for whom. The lock is
    an flock: the kernel drops it when its holders die (runner, then guardian after clean-up)."""

    def __init__(self) -> None:
        REGISTRY.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(REGISTRY / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self.fd, 32, 0).decode(errors="replace").strip() or "unknown"
            say(f"another local run (pid {holder}) is using the lab (local runs share Mininet's interface names); "
                "waiting for it to finish")
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def reap() -> list[str]:
    """clean_stale() for a run that builds no local lab (the VM target's host side): everything
    when no local run holds the lock (held meanwhile), else only the dead runs' processes."""
    REGISTRY.mkdir(parents=True, exist_ok=True)
    fd = os.open(REGISTRY / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return clean_stale(lab=False)
        return clean_stale()
    finally:
        os.close(fd)
