"""The VM target checks every external tool virtme-ng and QEMU call before it starts them.

On a minimal Debian 12 without `file` and `binutils`, virtme-ng died with its own traceback
(`FileNotFoundError: ... 'strings'`, exit 1, which means "an expectation failed"): a missing tool
must be the harness's one-paragraph error with the fix, exit 2, before anything is booted.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="the VM target needs root"),
              pytest.mark.skipif(not any(Path("/boot").glob("vmlinuz-*")), reason="no kernel image in /boot")]


def _run_with_only(tmp_path: Path, tools: list[str]) -> subprocess.CompletedProcess:
    """Run the VM target with a PATH that holds only `tools` (links to the real ones)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in tools:
        real = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")
        if real is None:
            pytest.skip(f"{tool} is not installed here, so a PATH without the others cannot be built")
        (bin_dir / tool).symlink_to(real)
    kernel = sorted(Path("/boot").glob("vmlinuz-*"))[-1]
    env = dict(os.environ, PATH=str(bin_dir))
    return subprocess.run([sys.executable, "-m", "harness.cli", "--target", "vm", "--kernel", str(kernel),
                           "--results-dir", str(tmp_path / "results"), "handshake.yaml"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def test_missing_file_and_strings_are_one_paragraph_with_the_fix(tmp_path):
    proc = _run_with_only(tmp_path, ["qemu-system-x86_64", "busybox", "timeout", "modprobe", "depmod"])
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "Traceback" not in out and "FileNotFoundError" not in out, out
    assert "'file'" in out and "'strings'" in out, out
    assert "binutils" in out and "scripts/setup" in out, out
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir()), "nothing is created"


def test_missing_qemu_is_named_with_its_package(tmp_path):
    proc = _run_with_only(tmp_path, ["busybox", "timeout", "file", "strings", "modprobe", "depmod"])
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "Traceback" not in out, out
    assert "qemu-system-x86_64" in out and "qemu-system-x86" in out, out


def test_what_the_guest_kernels_command_line_carries_stays_well_inside_its_2048_bytes(tmp_path):
    """virtme-ng passes --exec (base64) and --append on the kernel's command line, cut at 2048
    bytes: the module list must leave room, and the run's command goes in a script (run_in_vm)."""
    from harness.targets.vm import vng_command
    args = vng_command("vng", "/boot/vmlinuz-x", "virtual", f"sh {tmp_path}/{'r' * 200}/.vm-plan-abcdefgh.sh")
    appended = args[args.index("--append") + 1]
    executed = args[args.index("--exec") + 1]
    assert appended.startswith("modprobe.blacklist=kvm,") and len(appended) + len(executed) * 4 / 3 < 1100
