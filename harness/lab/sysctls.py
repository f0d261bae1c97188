"""Kernel settings per host: set inside the host's network namespace, read back, and refused when
a setting is not per-namespace (setting it would change the whole machine, every cell at once)."""
from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

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
        out = _set_all_and_read(host, h, wanted, _names(wanted, facts.get(h, ())))
        if out is None:        # a setting failed: one by one, to name it (or skip an optional one this kernel lacks)
            skipped += _set_one_by_one(host, h, wanted, experiment.optional_sysctls)
            out, _, _ = node_pexec(host, ["sysctl", "-e", *_names(wanted, facts.get(h, ()))])
        found = dict(line.split(" = ", 1) for line in out.splitlines() if " = " in line)
        values = {name: " ".join(found[name].split()) if name in found else None for name in _names(wanted, facts.get(h, ()))}
        for name, value in wanted.items():
            if values[name] != " ".join(str(value).split()):
                raise RunFailed(f"sysctl {name} in {h} reads back {values[name]!r}, not {value!r}")
        readback[h] = values
    return readback, skipped


def _names(wanted: dict[str, str], facts) -> list[str]:
    """What a host's read-back reads: the watched sysctls, the ones set, the expectations' ones."""
    return sorted(set(WATCHED) | set(wanted) | set(facts))


def _set_one_by_one(host, h: str, wanted: dict[str, str], optional) -> list[str]:
    """Each sysctl in its own process (after a batch failed: names the one that fails); drops an
    optional one this kernel lacks from `wanted` and returns a note for each."""
    notes = []
    for name, value in list(wanted.items()):
        if not _set(host, h, name, value, name in optional):
            del wanted[name]
            notes.append(f"sysctl {name} not set in {h}: kernel {os.uname().release} lacks it (optional)")
    return notes


def _set_all_and_read(host, h: str, wanted: dict[str, str], names: list[str]) -> str | None:
    """Write every wanted sysctl and read `names` back in one process (in the VM each costs
    0.1-0.3 s of wall time; this was three per setting); the `sysctl -e` output, or None if a
    write failed (apply_sysctls then goes one by one). The machine's own values are read before
    and after from /proc/sys here: one that changed was not per namespace (put back, refused)."""
    if not wanted:
        return node_pexec(host, ["sysctl", "-e", *names])[0]
    before = {name: _machine_value(name) for name in wanted}
    script = f"{shlex.join(['sysctl', '-q', '-w', *(f'{k}={v}' for k, v in wanted.items())])} && {shlex.join(['sysctl', '-e', *names])}"
    out, _, code = node_pexec(host, ["sh", "-c", script])
    _refuse_if_machine_changed(h, before)
    return None if code else out


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
    _refuse_if_machine_changed(h, {name: before})
    return True


def _refuse_if_machine_changed(h: str, before: dict[str, str | None]) -> None:
    """Setting these sysctls in host `h` must not have changed the machine's values (`before`):
    every one that did is put back (all in one process, before the error: one machine-wide
    setting found must not leave a second one changed) and named in one error."""
    changed = {name: (was, now) for name, was in before.items() if (now := _machine_value(name)) != was}
    if not changed:
        return
    left = _put_back({name: was for name, (was, _) in changed.items()})
    shown = ", ".join(f"{name} ({was!r} -> {now!r})" for name, (was, now) in changed.items())
    plural, are, it = ("", "is", "it") if len(changed) == 1 else ("s", "are", "them")
    raise RunFailed(f"sysctl{plural} {shown} {are} not per network namespace on kernel {os.uname().release}: setting "
                    f"{it} in {h} changed {it} for the whole machine ({left or 'put back'}). A machine-wide setting "
                    "cannot differ between hosts or cells. Fix: leave it out of the experiment's sysctls: and set "
                    "it on the machine before the run, if the experiment needs it.")


def _put_back(values: dict[str, str | None]) -> str:
    """Write the machine's former values back in one `sysctl -w`; '' when all went back, else
    what did not (a value that was unreadable before cannot be written back)."""
    known = {name: value for name, value in values.items() if value is not None}
    unknown = [name for name in values if name not in known]
    failed = ""
    if known:
        done = run_command(["sysctl", "-q", "-w", *(f"{name}={value}" for name, value in known.items())])
        failed = "" if not done.returncode else f"putting back failed: {(done.stderr or done.stdout).strip()[:300]}"
    if unknown:
        failed = "; ".join(filter(None, [failed, f"not put back, unreadable before: {', '.join(unknown)}"]))
    return failed


def _machine_value(name: str) -> str | None:
    """The value in the namespace this process runs in (the machine's, outside every host), read
    from /proc/sys as `sysctl -n` would: a dotted name has its dots as directories and a slash as a
    dot (net.ipv4.conf.eth0/1.rp_filter); a name whose first separator is a slash is a path
    already and kept (procps' slashdot). The loader takes dotted names only, but a slash-form name
    read here as dotted would find nothing and pass the machine-wide check unchecked."""
    first = re.search(r"[./]", name)
    path = name if first and first.group() == "/" else name.translate(str.maketrans("./", "/."))
    try:
        return " ".join((Path("/proc/sys") / path).read_text().split())
    except OSError:
        return None
