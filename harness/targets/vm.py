"""VM target: boot a kernel image with virtme-ng over the host's root filesystem, run there.

The guest sees the host's files read-only; the results folder is passed writable (--rwdir), so
result.json, pcaps and samples land on the host. Nested KVM hangs here, hence --disable-kvm.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from harness.errors import UserError

REPO = Path(__file__).resolve().parents[2]


def release_of(image: Path) -> str:
    return image.name.removeprefix("vmlinuz-")


def _version_key(release: str) -> list:
    return [int(x) if x.isdigit() else x for x in re.split(r"[.-]", release)]


def kernels_with_netem() -> list[Path]:
    images = []
    for image in Path("/boot").glob("vmlinuz-*"):
        mods = Path("/lib/modules") / release_of(image) / "kernel/net/sched"
        if any(mods.glob("sch_netem.ko*")):
            images.append(image)
    return sorted(images, key=lambda p: _version_key(release_of(p)), reverse=True)


def pick_kernel(explicit: str | None) -> Path:
    if explicit:
        image = Path(explicit)
        if not image.is_file():
            raise UserError(f"kernel image '{explicit}' does not exist.", fix="give a path like /boot/vmlinuz-6.1.0-26-amd64.")
        return image
    images = kernels_with_netem()
    if not images:
        raise UserError("no installed kernel image has sch_netem, so no VM can emulate the links.",
                        fix="run scripts/setup (it installs linux-image-amd64 on Debian).")
    return images[0]


# virtual: QEMU's icount mode. One guest instruction = 1 ns of guest time and idle periods are
# skipped, so every timer (netem's included) fires exactly when the kernel asked; measured on this
# 2-core box, a 100 ms RTT handshake took 100.0 ms (ping 100.0 ms). icount needs one vCPU.
# host: multi-threaded TCG on the host clock; timers fire 1-30 ms late under load (103-130 ms).
CLOCKS = {"virtual": ["-p", "1", "--qemu-opts", "-icount shift=0,sleep=off"], "host": ["-p", "2"]}


def run_in_vm(kernel: Path, plan: list[dict], results_root: Path, clock: str = "virtual", on_line=print,
              started=None) -> int:
    """Boot the kernel once and run every item of `plan` inside, one after another; return the
    worst exit code (3 if the VM itself failed).

    Booting and loading Python cost ~40 s of wall time under emulation, a lab plus an experiment
    ~15 s: items share a VM. Each output line goes to `on_line`; the inner run marks items with
    "@@start N" and "@@done N CODE SECONDS RESULTS" lines. `started(proc)` hands the process out
    so a Ctrl-C can stop it."""
    vng = shutil.which("vng") or str(Path(sys.executable).parent / "vng")
    if not Path(vng).exists():
        raise UserError("virtme-ng (vng) is not installed.", fix="run scripts/setup.")
    # Every program virtme-ng and QEMU start (file, then strings, read the kernel's version; modprobe and
    # depmod its modules): a missing one is this paragraph, not virtme-ng's FileNotFoundError traceback.
    vm_tools = {"qemu-system-x86_64": "qemu-system-x86", "busybox": "busybox-static", "file": "file",
                "strings": "binutils", "modprobe": "kmod", "depmod": "kmod", "timeout": "coreutils"}
    missing = [t for t in vm_tools if not (shutil.which(t) or shutil.which(t, path="/usr/sbin:/sbin"))]
    if missing:
        raise UserError(f"{', '.join(repr(t) for t in missing)} {'is' if len(missing) == 1 else 'are'} missing, which "
                        "the VM target (virtme-ng, QEMU) needs.", fix="run scripts/setup, or apt-get install "
                        f"{' '.join(sorted({vm_tools[t] for t in missing}))}.")
    results_root.mkdir(parents=True, exist_ok=True)
    plan_file = Path(tempfile.mkstemp(prefix=".vm-plan-", suffix=".json", dir=results_root)[1])
    plan_file.write_text(json.dumps(plan))
    inner = [sys.executable, "-m", "harness.cli", "--target", "local", "--results-dir", str(results_root.resolve()),
             "--inner-plan", str(plan_file.resolve()), "unused"]
    # SETUPTOOLS_USE_DISTUTILS=stdlib: Mininet imports distutils, which setuptools' shim routes
    # through pkg_resources, scanning every installed package over 9p: 12 s of wall time (measured).
    command = (f"cd {shlex.quote(str(REPO))} && PYTHONDONTWRITEBYTECODE=1 SETUPTOOLS_USE_DISTUTILS=stdlib "
               f"TCP_TESTBED_TARGET=vm/{clock}-clock TCP_TESTBED_STAGE=/tmp/tcp-testbed-stage {shlex.join(inner)}")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    args = ["timeout", "1800", vng, "--run", str(kernel), "--disable-kvm", "--force-9p", "--overlay-rwdir=/root",
            f"--rwdir={results_root.resolve()}", "-m", "2G", *CLOCKS[clock], "--exec", command]
    on_line(f"booting kernel {release_of(kernel)} under QEMU (software emulation, {clock} clock; boot takes 25-40 s)...")
    proc = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    if started:
        started(proc)
    try:
        for raw in proc.stdout:
            on_line(raw.decode(errors="replace").rstrip())
        code = proc.wait()
    except KeyboardInterrupt:
        os.killpg(proc.pid, 15)
        proc.wait()
        raise
    finally:
        plan_file.unlink(missing_ok=True)
    if code == 124:
        on_line("the VM run timed out after 30 minutes")
    return 3 if code in (124, 255) else code
