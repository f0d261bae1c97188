"""Integration runs that clean up whatever happens: each CLI run starts in its own process group,
tagged through its environment; at the end of the test (pass, assertion, timeout) the group is
killed and the fixture checks that nothing of the run is left: no process carrying the tag (qemu,
vng, tcpdump, mnexec shells, agents, sampler, guardian), no clean-up ledger, no lab interface or
nftables table. Limits are generous (the machine is shared and loaded); nothing asserts wall time.
"""
from __future__ import annotations

import fcntl
import os
import re
import select
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "harness.cli"]
RUN_LIMIT_S = 1800.0          # one CLI run; the work, not the clock, decides how long it takes
SETTLE_S = 30.0               # the fixture's last look: how long leftovers may take to go (guardian, qemu exit)
KILL_SETTLE_S = 10.0          # after a SIGKILL: "within a few seconds"
REGISTRY = Path("/run/tcp-testbed")
TAG = "TCP_TESTBED_TEST_TAG"
LAB_INTERFACE = re.compile(r"^(client|server|s\d+)(-eth\d+)?$")


def tagged_processes(tag: str) -> list[str]:
    """'pid command' of every process whose environment carries `tag` (children inherit it)."""
    found = []
    needle = f"{TAG}={tag}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                found.append(f"{entry.name} {command}")
        except OSError:
            continue
    return found


def lab_leftovers() -> list[str]:
    """Interfaces and nft tables a local lab makes; checked only while holding the local-run lock,
    so another run on this machine cannot be mistaken for a leftover."""
    names = [line.split(":")[1].strip().split("@")[0] for line in
             subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout.splitlines()]
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    return [n for n in names if LAB_INTERFACE.match(n)] + re.findall(r"tcptestbed_\d+", tables)


class Run:
    """One `run-experiment` process in its own process group; output read line by line."""

    def __init__(self, args: list[str], results: Path) -> None:
        self.tag = uuid.uuid4().hex
        env = dict(os.environ, **{TAG: self.tag})
        self.proc = subprocess.Popen(CLI + args + ["--results-dir", str(results)], cwd=REPO, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        self.began = time.time()
        self.out: list[str] = []
        self._partial = b""

    def wait_for(self, text: str) -> str:
        """Read output until a line containing `text`; fail (the run ended, or the limit) if none."""
        while time.time() - self.began < RUN_LIMIT_S:
            ready, _, _ = select.select([self.proc.stdout], [], [], 1.0)
            if not ready:
                continue
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                break
            self._partial += chunk
            *lines, self._partial = self._partial.split(b"\n")
            for raw in lines:
                line = raw.decode(errors="replace")
                self.out.append(line)
                if text in line:
                    return line
        err = self.proc.stderr.read().decode(errors="replace") if self.proc.poll() is not None else ""
        raise AssertionError(f"no line with {text!r}; output:\n" + "\n".join(self.out[-40:]) + "\n" + err[-3000:])

    def finish(self) -> tuple[int, str, str]:
        """Wait for the run to end (within the limit); return code, stdout, stderr."""
        out, err = self.proc.communicate(timeout=max(1.0, RUN_LIMIT_S - (time.time() - self.began)))
        stdout = "\n".join(self.out) + ("\n" if self.out else "") + (self._partial + out).decode(errors="replace")
        return self.proc.returncode, stdout, err.decode(errors="replace")

    def kill(self, group: bool) -> None:
        """SIGKILL the run: its PID alone, or its whole process group."""
        if group:
            os.killpg(self.proc.pid, signal.SIGKILL)
        else:
            self.proc.kill()
        self.proc.wait()

    def leftovers(self, settle_s: float = SETTLE_S) -> list[str]:
        """What of this run is still there after `settle_s` at most: processes, ledger, lab."""
        deadline = time.time() + settle_s
        while True:
            left = tagged_processes(self.tag)
            left += [f"ledger {p}" for p in REGISTRY.glob(f"{self.proc.pid}*.json")]
            if not left:
                left = locked_lab_leftovers()
            if not left or time.time() > deadline:
                return left
            time.sleep(0.5)


def locked_lab_leftovers() -> list[str]:
    """lab_leftovers() under the local-run lock (waiting for a local run of another test, if any)."""
    REGISTRY.mkdir(parents=True, exist_ok=True)
    fd = os.open(REGISTRY / "local.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return lab_leftovers()
    finally:
        os.close(fd)


@pytest.fixture
def cli(tmp_path):
    """start(args, results=tmp_path) -> Run. Whatever the test does, every run is killed (group),
    reaped, and checked to have left nothing behind."""
    runs: list[Run] = []

    def start(args: list[str], results: Path | None = None) -> Run:
        run = Run(args, results or tmp_path)
        runs.append(run)
        return run

    yield start
    problems = []
    for run in runs:
        if run.proc.poll() is None:
            try:
                os.killpg(run.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        run.proc.wait()
        left = run.leftovers()
        problems += left
        for entry in tagged_processes(run.tag):      # never orphan a VM, even when the check fails
            try:
                os.kill(int(entry.split()[0]), signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert not problems, f"left behind by the test's runs: {problems}"
