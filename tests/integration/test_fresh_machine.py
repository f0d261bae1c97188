"""The README's set-up on a fresh machine: a minimal Debian 12 (debootstrap minbase) given this
machine's apt sources, pip configuration and CA certificates, where `scripts/setup` then
`run-experiment handshake.yaml` must pass (scripts/fresh-machine does it; CI runs this file).

Also: a run killed with SIGKILL leaves no process and no mount behind, and scripts/setup does not
silently take over another checkout's machine-wide command.
"""
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "fresh-machine"
CACHE = Path(os.environ.get("TCP_TESTBED_CACHE", "/var/cache/tcp-testbed")) / "fresh-machine"
ROOT = CACHE / "root"  # the chroot's mount point; its tmpfs exists only inside the script's namespace
LIMIT = 2700  # the script's own limit for the run inside (s); the test allows a little more

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="a chroot, mounts and apt need root")
needs_debootstrap = pytest.mark.skipif(shutil.which("debootstrap") is None or shutil.which("unshare") is None,
                                       reason="debootstrap is not installed (scripts/setup --tests)")
pytestmark = [pytest.mark.integration, root_only]


class Script:
    """scripts/fresh-machine in its own process group; output echoed live (the run is long) and kept."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([str(SCRIPT), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)
            os.write(2, line.encode())  # progress: live in CI's log while capture is disabled

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            if text in self.output:
                return True
            time.sleep(0.5)
        return text in self.output

    def stop(self) -> None:
        """Whatever state it is in: TERM the group, then KILL it, then let --clean remove the rest."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        self.reader.join(timeout=10)
        subprocess.run([str(SCRIPT), "--clean"], capture_output=True, timeout=600)


@pytest.fixture
def script():
    started: list[Script] = []
    yield lambda *args: started.append(Script(*args)) or started[-1]
    for s in started:
        s.stop()


def _under_root(path: str) -> bool:
    return path == str(ROOT) or path.startswith(f"{ROOT}/")


def leftovers() -> list[str]:
    """Mounts and processes under the chroot's mount point, seen from here (there must be none)."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        if _under_root(line.split()[4]):
            found.append(f"mount {line.split()[4]}")
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if _under_root(os.readlink(proc / "root")):
                    found.append(f"process {proc.name} {(proc / 'cmdline').read_bytes()[:80]!r}")
            except OSError:
                pass
    return found


@needs_debootstrap
def test_fresh_debian12_sets_up_and_passes_handshake(script, capfd):
    run = script("--timeout", str(LIMIT), "handshake.yaml")
    with capfd.disabled():  # it takes minutes: its progress goes to the terminal (CI's log) as it comes
        run.proc.wait(timeout=LIMIT + 600)
        run.reader.join(timeout=30)
    assert run.proc.returncode == 0, run.output[-6000:]
    assert "inside: run-experiment handshake.yaml" in run.output
    assert "target: vm" in run.output, "the kernel here lacks netem: the run inside must use its own kernel"
    assert "expectations passed" in run.output and "FAIL " not in run.output, run.output[-4000:]
    assert "none left under the chroot" in run.output and "clean: no process and no mount left" in run.output
    assert not leftovers() and not any(ROOT.iterdir())


@needs_debootstrap
def test_killed_fresh_machine_run_leaves_no_process_or_mount(script):
    """SIGKILL of the script alone (not its group) while QEMU boots inside the chroot: nothing may survive."""
    run = script("--timeout", str(LIMIT), "handshake.yaml")
    assert run.wait_for("booting kernel", timeout=LIMIT), run.output[-3000:]
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and run.proc.poll() is None:
        if any("qemu-system" in p for p in leftovers()):
            break
        time.sleep(0.2)
    assert any("qemu-system" in p for p in leftovers()), f"QEMU never ran in the chroot: {run.output[-3000:]}"
    os.kill(run.proc.pid, signal.SIGKILL)
    run.proc.wait(timeout=30)
    deadline = time.monotonic() + 30
    while leftovers() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not leftovers(), leftovers()
    clean = subprocess.run([str(SCRIPT), "--clean"], capture_output=True, text=True, timeout=600)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert not any(ROOT.iterdir())


def _setup_with_bin(bin_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, TCP_TESTBED_BIN=str(bin_dir))
    return subprocess.run([str(REPO / "scripts" / "setup"), *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=1800)


@pytest.mark.skipif(not (REPO / ".venv" / "bin" / "run-experiment").exists(), reason="scripts/setup has not run here")
def test_setup_says_so_and_leaves_another_checkouts_command_alone(tmp_path):
    other = tmp_path / "other-checkout" / ".venv" / "bin"
    other.mkdir(parents=True)
    (other / "run-experiment").write_text("#!/bin/sh\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    link = bin_dir / "run-experiment"
    link.symlink_to(other / "run-experiment")

    proc = _setup_with_bin(bin_dir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert os.readlink(link) == str(other / "run-experiment"), "another checkout's command was taken over"
    assert "another checkout" in proc.stdout and "--link" in proc.stdout, proc.stdout

    proc = _setup_with_bin(bin_dir, "--link")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert os.readlink(link) == str(REPO / ".venv" / "bin" / "run-experiment")
    assert f"pointed at {other / 'run-experiment'}" in proc.stdout, proc.stdout

    shutil.rmtree(tmp_path / "other-checkout")
    link.unlink()
    link.symlink_to(other / "run-experiment")  # dangling now: taken, and said so
    proc = _setup_with_bin(bin_dir)
    assert os.readlink(link) == str(REPO / ".venv" / "bin" / "run-experiment")
    assert "no longer exists" in proc.stdout, proc.stdout
