"""Kernel settings per host: set inside the host's network namespace, read back, and refused when
a setting is not per-namespace (setting it would change the whole machine, every cell at once)."""
from __future__ import annotations

import os

from harness.errors import RunFailed
from harness.model import Experiment
from harness.runlog import node_pexec, run_command

WATCHED = ["net.ipv4.tcp_syn_retries", "net.ipv4.tcp_synack_retries", "net.ipv4.tcp_timestamps",
           "net.ipv4.tcp_sack", "net.ipv4.tcp_window_scaling", "net.ipv4.tcp_fin_timeout",
           "net.ipv4.tcp_tw_reuse", "net.ipv4.tcp_syncookies", "net.ipv4.tcp_congestion_control",
           "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"]


def apply_sysctls(net, experiment: Experiment) -> tuple[dict[str, dict[str, str | None]], list[str]]:
    """Set the experiment's sysctls inside each host's namespace, then read back what it really has
    (the watched ones, the ones set, and the ones its expectations read; None: the kernel lacks it).
    Also returns a note per optional sysctl skipped because this kernel lacks it."""
    readback, skipped = {}, []
    facts = experiment.expect_source.sysctls if experiment.expect_source else {}
    for h in experiment.topology.hosts:
        host = net.get(h)
        wanted = {**experiment.sysctls.get("all", {}), **experiment.sysctls.get(h, {})}
        for name, value in list(wanted.items()):
            if not _set(host, h, name, value, name in experiment.optional_sysctls):
                del wanted[name]
                skipped.append(f"sysctl {name} not set in {h}: kernel {os.uname().release} lacks it (optional)")
        names = sorted(set(WATCHED) | set(wanted) | set(facts.get(h, ())))
        out, _, _ = node_pexec(host, ["sysctl", "-e", *names])     # one process: ~0.13 s each in the VM
        found = dict(line.split(" = ", 1) for line in out.splitlines() if " = " in line)
        values = {name: " ".join(found[name].split()) if name in found else None for name in names}
        for name, value in wanted.items():
            if values[name] != " ".join(str(value).split()):
                raise RunFailed(f"sysctl {name} in {h} reads back {values[name]!r}, not {value!r}")
        readback[h] = values
    return readback, skipped


def _set(host, h: str, name: str, value: str, optional: bool) -> bool:
    """Write one sysctl in host `h`; False when it is optional and this kernel lacks it."""
    before = _machine_value(name)
    out, err, code = node_pexec(host, ["sysctl", "-w", f"{name}={value}"])
    if code:
        if optional and not node_pexec(host, ["sysctl", "-e", "-n", name])[0].strip():
            return False
        raise RunFailed(f"sysctl {name}={value} failed in {h}: {err.strip() or out.strip()} "
                        "(is it known to this kernel? a setting only some kernels have can be marked optional: "
                        f"{name}?: {value})")
    after = _machine_value(name)
    if after != before:
        run_command(["sysctl", "-q", "-w", f"{name}={before}"])
        raise RunFailed(f"sysctl {name} is not per network namespace on kernel {os.uname().release}: setting it in "
                        f"{h} changed it for the whole machine ({before!r} -> {after!r}; put back). "
                        "It cannot differ between hosts or cells.")
    return True


def _machine_value(name: str) -> str | None:
    """The value in the namespace this process runs in (the machine's, outside every host)."""
    done = run_command(["sysctl", "-n", name])
    return " ".join(done.stdout.split()) if done.returncode == 0 else None
