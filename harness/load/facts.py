"""What a run's kernel is and has, for expectations that follow the kernel: the release (compared
as a version: `kernel >= 6.12`) and each host's sysctls as read back once the lab is up
(`client.tcp_syn_linear_timeouts`; None where the kernel lacks the setting).

At load time these are provisional (this machine's kernel, the experiment's own settings, else
this machine's values); the runner re-reads the expectations with the facts of the lab."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Callable
from pathlib import Path


def version_of(text: str) -> tuple[int, ...]:
    """'6.12.118+deb12-amd64' -> (6, 12, 118); '6.1' -> (6, 1): the leading dotted numbers."""
    m = re.match(r"[0-9]+(?:\.[0-9]+)*", str(text).strip())
    if not m:
        raise ValueError(f"{str(text)[:40]!r} is not a kernel version (write it like 6.12)")
    return tuple(int(part) for part in m.group(0).split("."))


@dataclass(frozen=True)
class KernelVersion:
    """The kernel as ${...} sees it: comparable only with a version written in the expression."""
    release: str

    def __bool__(self) -> bool:
        raise ValueError("kernel alone is not true or false: compare it (kernel >= 6.12)")

    @property
    def version(self) -> tuple[int, ...]:
        return version_of(self.release)


@dataclass
class RunFacts:
    kernel: str                                               # release, e.g. 6.12.118+deb12-amd64
    sysctls: dict[str, dict[str, str | None]] = field(default_factory=dict)   # host -> dotted name -> value

    def sysctl(self, host: str, name: str) -> str | None:
        """The value read back (None: the kernel lacks it). A name the lab did not read back is a
        bug in the test bed, never "the kernel lacks it"."""
        values = self.sysctls.get(host, {})
        if name not in values:
            raise RuntimeError(f"{host} {name} was not read back in the lab")
        return values[name]


@dataclass
class FactsUse:
    """Which facts an experiment's expectations read (filled in while they are worked out)."""
    kernel: bool = False
    sysctls: dict[str, set[str]] = field(default_factory=dict)   # host -> dotted names

    def wants(self, host: str, name: str) -> None:
        self.sysctls.setdefault(host, set()).add(name)

    def __bool__(self) -> bool:
        return self.kernel or bool(self.sysctls)


def provisional_facts(wanted_sysctls: dict[str, dict[str, str]],
                      hosts: Callable[[], tuple[str, ...] | None] = lambda: None) -> RunFacts:
    """Facts good enough to load and check a file before any lab exists: this machine's kernel,
    the value the experiment sets, else this machine's own value. Lazily filled per lookup;
    `hosts()`: the topology's, asked at the first lookup (HOST.sysctl of any other is refused)."""
    return _Provisional(os.uname().release, {}, wanted=wanted_sysctls, hosts=hosts)


@dataclass
class _Provisional(RunFacts):
    wanted: dict[str, dict[str, str]] = field(default_factory=dict)
    hosts: Callable[[], tuple[str, ...] | None] = lambda: None

    def sysctl(self, host: str, name: str) -> str | None:
        known = self.hosts()
        if known is not None and host not in known:
            raise ValueError(f"{host} is not a host of the topology ({', '.join(known)})")
        value = {**self.wanted.get("all", {}), **self.wanted.get(host, {})}.get(name)
        if value is not None and value != "default":          # default: refused by load_sysctls, with its line
            return str(value)
        try:
            return " ".join(Path("/proc/sys", *name.split(".")).read_text().split())
        except OSError:
            return None


def fact_names(experiment) -> dict | None:
    """What an experiment's expectations read from the run (for result.json), or None."""
    source = experiment.expect_source
    if source is None:
        return None
    return {"kernel": source.kernel, "sysctls": {host: sorted(names) for host, names in sorted(source.sysctls.items())}}


def describe_facts(experiment, facts: RunFacts) -> str:
    """'kernel 6.12.118+deb12-amd64, client net.ipv4.tcp_syn_linear_timeouts = 4': the facts the
    expectations were worked out from, as the run's output states them."""
    source = experiment.expect_source
    parts = [f"kernel {facts.kernel}"]
    for host, names in sorted((source.sysctls if source else {}).items()):
        parts += [f"{host} {name} = {_shown(facts.sysctl(host, name))}" for name in sorted(names)]
    return ", ".join(parts)


def _shown(value: str | None) -> str:
    return "(absent: this kernel lacks it)" if value is None else value
