"""Strict checks for every text that becomes a path component or a kernel object's name.

A name from a YAML file is used as a folder under the results directory, as a sysctl path under
/proc/sys, or as an interface/bridge name in the root namespace: a name like `../../x`, `/etc`,
`..` or one with a newline must be refused at load, before anything is built or written.
"""
from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path

from harness.errors import UserError

MAX_COMPONENT = 64
_COMPONENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# net.ipv4.tcp_syn_retries, net.ipv4.conf.client-eth0.rp_filter: lower-case dotted words, no '/'
_SYSCTL = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z0-9_][a-z0-9_-]*)+")
MAX_SYSCTL = 128
MAX_SYSCTL_VALUE = 256
_SYSCTL_VALUE = re.compile(r"[\x20-\x7e]*")        # printable ASCII, e.g. "4096 87380 6291456"


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def safe_component(text: object, what: str, path: Path | str, line: int | None) -> str:
    """`text` as one path component: 1-64 letters, digits, '_', '.', '-', not starting with '.'
    or '-' (so never '.', '..', a hidden file or an option), no '/'."""
    if not isinstance(text, str) or len(text) > MAX_COMPONENT or not _COMPONENT.fullmatch(text):
        raise UserError(f"{what} {_shown(text)} cannot be used: it becomes a folder name.", file=str(path), line=line,
                        fix=f"use 1-{MAX_COMPONENT} letters, digits, '_', '.' or '-', starting with a letter or digit "
                            "(no '/', no spaces), e.g. stale_syn.")
    return text


def sysctl_name(text: object, path: Path | str, line: int | None) -> str:
    """A sysctl name in dotted form (it becomes /proc/sys/<a>/<b>/...): never a path."""
    if not isinstance(text, str) or len(text) > MAX_SYSCTL or not _SYSCTL.fullmatch(text):
        raise UserError(f"{_shown(text)} is not a sysctl name.", file=str(path), line=line,
                        fix="write it dotted and lower-case as `sysctl -a` prints it, e.g. net.ipv4.tcp_syn_retries "
                            "(no '/', no '..').")
    return text


def optional_sysctl_name(text: object, path: Path | str, line: int | None) -> tuple[str, bool]:
    """`net.ipv4.tcp_syn_linear_timeouts?` -> (the name, True): set where the kernel has it, skipped
    with a note where it does not (a setting newer kernels added, in a file meant for every kernel)."""
    optional = isinstance(text, str) and text.endswith("?")
    return sysctl_name(text[:-1] if optional else text, path, line), optional


def sysctl_value(value: object, name: str, path: Path | str, line: int | None) -> str:
    """A sysctl value as `sysctl -w` takes it: a number or a short line of printable text."""
    ok = (isinstance(value, int) and not isinstance(value, bool)
          or isinstance(value, float) and math.isfinite(value)
          or isinstance(value, str) and len(value) <= MAX_SYSCTL_VALUE and _SYSCTL_VALUE.fullmatch(value))
    if not ok:
        raise UserError(f"the value of {name} ({_shown(value)}) is not a sysctl value.", file=str(path), line=line,
                        fix=f"give one number (e.g. {name}: 1) or a short text in quotes (e.g. \"4096 87380 6291456\"); "
                            "a list is a matrix dimension: put it under matrix:.")
    text = str(value)
    if len(text) > MAX_SYSCTL_VALUE:
        raise UserError(f"the value of {name} is {len(text)} characters long.", file=str(path), line=line,
                        fix="give a number the kernel accepts.")
    return text


def cell_folder(label: str) -> str:
    """A matrix cell's folder name: its settings, safe for every filesystem (one component, never
    '.', '..', hidden or an option; long labels shortened and told apart by a hash)."""
    name = re.sub(r"[^A-Za-z0-9_.=,#@-]", "_", label).lstrip(".-") or "cell"
    if len(name) > 100:
        name = name[:90] + "-" + hashlib.sha1(label.encode()).hexdigest()[:8]
    return name
