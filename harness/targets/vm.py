"""VM target: boot a kernel image with virtme-ng over the host's root filesystem, run there.

The guest sees the host's files read-only; the results folder is passed writable (--rwdir), so
result.json, pcaps and samples land on the host. Nested KVM hangs here, hence --disable-kvm.
"""
from __future__ import annotations

import itertools
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

from harness import profile
from harness.errors import UserError
from harness.lab.leftovers import Interrupted, Ledger, reap
from harness.plan.kernels import release_of
from harness.shipped import CODE_ROOT
from harness.targets import protocol
from harness.targets.vm_process import VmProcess


# virtual: QEMU's icount mode. One guest instruction = 1 ns of guest time and idle periods are
# skipped, so every timer (netem's included) fires exactly when the kernel asked; measured on this
# 2-core box, a 100 ms RTT handshake took 100.0 ms (ping 100.0 ms). icount needs one vCPU.
# host: multi-threaded TCG on the host clock; timers fire 1-30 ms late under load (103-130 ms).
CLOCKS = {"virtual": ["-p", "1", "--qemu-opts", "-icount shift=0,sleep=off"], "host": ["-p", "2"]}


# Modules udev's coldplug would load for QEMU's emulated hardware (KVM, the DVD drive and its
# SATA/SCSI stack, watchdogs, SMBus, PC speaker, mouse, CPU frequency, accelerated crypto): none is
# used by a run, and loading them over 9p under emulation was 6.6 s of a 19.7 s boot (measured:
# boot to the script 12.2-12.8 s without them). `modprobe.blacklist` stops only loading by alias
# (udev's, the crypto API's, which then uses the generic code); an explicit `modprobe sch_netem`
# still loads. Names this kernel lacks are ignored.
UNUSED_MODULES = ("kvm", "kvm_amd", "kvm_intel", "irqbypass", "ccp", "sr_mod", "cdrom", "sg", "ahci", "libahci",
                  "libata", "scsi_mod", "scsi_common", "iTCO_wdt", "iTCO_vendor_support", "i6300esb", "watchdog",
                  "intel_pmc_bxt", "i2c_i801", "i2c_smbus", "lpc_ich", "pcspkr", "psmouse", "serio_raw", "evdev",
                  "button", "qemu_fw_cfg", "powernow_k8", "acpi_cpufreq", "crct10dif_pclmul", "crc32_pclmul",
                  "crc32c_intel", "ghash_clmulni_intel", "sha1_ssse3", "sha256_ssse3", "sha512_ssse3",
                  "aesni_intel", "gf128mul", "crypto_simd", "cryptd")


def vng_command(vng: str, kernel: Path | str, clock: str, command: str, rwdirs: tuple[Path, ...] = ()) -> list[str]:
    """The one vng command line, for the VM target and scripts/benchmark's lab timing alike: the
    host's files over 9p, no KVM (nested KVM hangs here), /root in a writable overlay, 2 GB, no
    modules for hardware no run uses (UNUSED_MODULES)."""
    return [vng, "--run", str(kernel), "--disable-kvm", "--force-9p", "--overlay-rwdir=/root",
            *(f"--rwdir={d}" for d in rwdirs), "-m", "2G", *CLOCKS[clock],
            "--append", f"modprobe.blacklist={','.join(UNUSED_MODULES)}", "--exec", command]


# Time limits, in wall time, per VM and per item: under emulation on a loaded host everything
# stretches (the virtual clock is exact, wall time is not), so they are generous and only catch a VM
# that hangs. Booting and loading Python take ~20 s on an idle host (harness.profile measures each run).
BOOT_LIMIT_S = 900.0          # from starting vng to the first item's "@@start"
ITEM_ALLOWANCE_S = 600.0      # per item: lab set-up, analysis, copying results out
ITEM_STRETCH = 10.0           # per second of the item's timeline
_VM_NUMBERS = itertools.count(1)


def item_limit_s(experiment) -> float:
    """Wall time one item may take inside a VM before the VM is stopped for it."""
    return ITEM_ALLOWANCE_S + ITEM_STRETCH * float(experiment.duration_s)


def describe_limit(limit_s: float) -> str:
    return (f"its time limit of {limit_s:.0f} s ({ITEM_ALLOWANCE_S:.0f} s for set-up and analysis + "
            f"{ITEM_STRETCH:g} x its timeline)")


def plan_entries(items, max_cells: int) -> list[dict]:
    """The plan file's entries for batch items (harness.targets.protocol)."""
    return [protocol.PlanItem(i.path.resolve(), i.cell, i.run_dir.resolve() if i.run_dir else None, max_cells,
                              item_limit_s(i.experiment)).to_json() for i in items]


def guest_command(module_args: list[str]) -> str:
    """The shell command a guest runs: `python -m MODULE ARGS...` in the checkout, after a phase
    mark (harness.profile: the guest's shell runs, the boot is over).

    -S with this Python's own search path in PYTHONPATH (in its order: the standard library, then
    the site folders and what their .pth files added): the same modules without site's work, which
    over 9p under emulation was 0.9 s of every guest Python start (its .pth files import the
    editable install's finder, setuptools' distutils shim, certifi). SETUPTOOLS_USE_DISTUTILS=stdlib
    for any Python started without -S: Mininet imports distutils, which setuptools' shim routes
    through pkg_resources, scanning every installed package over 9p: 12 s of wall time (measured)."""
    sites = [p for p in sys.path[1:] if p and Path(p).exists()]      # [0]: this program's own folder
    return (f"cd {shlex.quote(str(CODE_ROOT))} && echo {profile.MARK}guest-python && PYTHONDONTWRITEBYTECODE=1 "
            f"SETUPTOOLS_USE_DISTUTILS=stdlib PYTHONPATH={shlex.quote(':'.join(sites))} "
            f"{shlex.join([sys.executable, '-S', '-m', *module_args])}")


def run_in_vm(kernel: Path, plan: list[dict], results_root: Path, clock: str = "virtual", on_line=print,
              started=None, verbose: bool = False, observer: str = "trace") -> int:
    """Boot the kernel once and run every item of `plan` inside, one after another; return the
    worst exit code (3 if the VM itself failed).

    Booting and loading Python cost ~20 s of wall time under emulation, a lab plus an experiment
    ~15 s: items share a VM. Each output line goes to `on_line`; the inner run marks items with
    "@@start N" and "@@done N CODE SECONDS RESULTS" lines, and this function adds "@@limit N|boot
    SECONDS" when it stopped the VM because an item (plan entry "limit_s") or the boot overran its
    time limit. `started(proc)` hands the process out so a Ctrl-C can stop it.

    The VM is a VmProcess (the helpers' lifecycle) and cannot outlive this process: vng,
    virtme-run and QEMU share one process group, recorded (with its start time) in a ledger whose
    guardian kills the group if this process dies, even by SIGKILL; vng itself gets
    PR_SET_PDEATHSIG; the next run reaps any group a dead run left."""
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
    reap()            # VMs (and labs) of runs that were killed before their guardians could act
    results_root.mkdir(parents=True, exist_ok=True)
    plan_file = Path(tempfile.mkstemp(prefix=".vm-plan-", suffix=".json", dir=results_root)[1])
    protocol.write_plan(plan_file, plan, protocol.guest_settings(clock, observer))
    command = guest_command(["harness.cli", "--target", "local", "--results-dir", str(results_root.resolve()),
                             "--inner-plan", str(plan_file.resolve()), *(["-v"] if verbose else []), "unused"])
    # The command goes in a script beside the plan: virtme-ng passes --exec on the kernel's command
    # line, which is cut at 2048 bytes, and a long results path with the module list did not fit
    # (the guest then hung without a word, measured).
    script = plan_file.with_suffix(".sh")
    script.write_text(command + "\n")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    args = vng_command(vng, kernel, clock, f"sh {shlex.quote(str(script.resolve()))}", (results_root.resolve(),))
    on_line(f"booting kernel {release_of(kernel)} under QEMU (software emulation, {clock} clock; the boot and Python's start take ~20 s)...")
    ledger = Ledger(suffix=f"-vm{next(_VM_NUMBERS)}", guard=True)
    # the host's marks so far (its start, the planning) go with this VM's first item
    marks = profile.ProfileCollector(profile.take() + [("vm-boot", time.time())])
    try:
        with VmProcess(args, env=env, ledger=ledger) as vm:      # its exit kills the group, reaps, closes the pipe
            if started:
                started(vm.proc)
            stopped = _follow(vm, plan, on_line, ledger, marks)
            code = vm.proc.wait()
    except KeyboardInterrupt as exc:
        raise Interrupted("interrupted; the VM was stopped and nothing of it keeps running.") from exc
    finally:
        ledger.close()     # SIGKILLs whatever is left of the VM's process group
        plan_file.unlink(missing_ok=True)
        script.unlink(missing_ok=True)
    marks.finish(f"vm {release_of(kernel)} ({clock} clock)")
    return 3 if stopped or code == 255 else code


def _follow(vm: VmProcess, plan: list[dict], on_line, ledger: Ledger, marks: profile.ProfileCollector | None = None) -> bool:
    """Pass the VM's output lines on, stamp its phase marks (`marks`) on the host's clock, and
    enforce the boot's and each item's time limit; return True if the VM was stopped for
    overrunning one (saying so, and marking it "@@limit")."""
    marks = marks if marks is not None else profile.ProfileCollector()
    began = time.time()
    deadline, what, limit = began + BOOT_LIMIT_S, protocol.BOOT, BOOT_LIMIT_S
    qemu_seen = False
    while True:
        line = vm.readline(max(0.0, min(5.0, deadline - time.time())))
        if line is None:
            if vm.ended:
                return False
            if time.time() < deadline:
                continue
            vm.stop()          # SIGKILLs the group (vng, virtme-run, QEMU) and reaps the leader
            took = time.time() - began
            said = {protocol.BOOT: "the boot", protocol.AFTER_LAST: "the time after the last item"}.get(what, f"item {what}")
            on_line(f"stopped the VM: {said} took more than "
                    + (describe_limit(limit) if what.isdigit() else f"{limit:.0f} s") + f" ({took:.0f} s)")
            on_line(protocol.limit_marker(what, limit))
            return True
        if not qemu_seen:       # QEMU prints the guest's console: it is running; record it by name too
            qemu_seen = _record_qemu(vm.pid, ledger)
        marker = protocol.parse_marker(line)
        if marker and marker.kind == "start" and marker.index < len(plan):
            what, limit, began = marker.what, float(plan[marker.index].get("limit_s") or ITEM_ALLOWANCE_S), time.time()
            deadline = began + limit
        elif marker and marker.kind == "done":
            what, limit, began = protocol.AFTER_LAST, ITEM_ALLOWANCE_S, time.time()
            deadline = began + limit
        pass_on(line, marker, on_line, marks)


def pass_on(line: str, marker: protocol.Marker | None, on_line, marks: profile.ProfileCollector) -> None:
    """The host's part of each guest line (a cold VM's and a warm one's): a phase mark stamped; at
    a run's done marker, its end stamped and its report.html drawn (before the marker, so the
    report's line still goes with the item); then the line passed on."""
    if marker and marker.kind == "phase":
        marks.mark(marker.what)
    elif marker and marker.kind == "done":
        marks.done(marker.run_dir)
        report_on_host(marker.run_dir, on_line)
    on_line(line)


def report_on_host(run_dir: str, on_line) -> None:
    """A VM's run folder gets its report.html here, on the host's CPU: drawing it in the guest,
    under emulation, was most of the write phase (stale_syn: 1.5-1.7 s before, 0.8 s after; 0.1 s
    natively). It is drawn from the folder alone, never part of the evidence; only a finished
    run's folder (result.json complete) has one."""
    folder = Path(run_dir) if run_dir else None
    try:
        complete = folder is not None and json.loads((folder / "result.json").read_text()).get("complete") is True
    except (OSError, ValueError):
        complete = False
    if not complete or (folder / "report.html").exists():
        return
    from harness.report.page import draw_report
    problem = draw_report(folder)
    on_line(problem or f"report:  {folder / 'report.html'}")


def _record_qemu(group: int, ledger: Ledger) -> bool:
    """Add the QEMU process of the VM's group to the ledger (PID and start time)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name, fields = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        if name.startswith("qemu") and int(fields[2]) == group:
            ledger.add(pids=[int(entry.name)])
            return True
    return False
