"""Kernel figures read for `counters:` and `tcp_info:` expectations.

counters: each host's TCP/IP MIB (/proc/<pid>/net/netstat and /proc/<pid>/net/snmp: /proc/<pid>/net
is the network namespace of that process, the host's shell) read once after the agents are
ready (before t0) and once after the timeline, named as nstat names them (the line's prefix +
the field: TcpExtTCPTimeouts, TcpRetransSegs, IcmpMsgInType3). Reading /proc is no disk I/O.

tcp_info: a socket's struct tcp_info (getsockopt TCP_INFO), parsed by the length the kernel
returns (the struct grows with kernels; 6.1 gives 232 bytes) into harness.model.TCP_INFO_FIELDS.
The agent reads it after each call on a socket: it must stay cheap. Measured in the 6.1 VM (guest
time, the virtual clock): getsockopt 4.4 µs, parse_tcp_info 39 µs (on this host: 3 and 6 µs)."""
from __future__ import annotations

import os
import socket
import struct
import time
from pathlib import Path

from harness.model import MIB_SPARSE_PREFIXES, TCP_INFO_LAYOUT, TCP_INFO_OPTIONS, TCP_STATE_NAMES

MIB_FILES = ("netstat", "snmp")
TCP_INFO_ASK = 512            # more than any kernel's struct: the kernel returns its own length


def parse_mib(text: str) -> dict[str, int]:
    """netstat/snmp text -> {nstat name: value}. Each table is two lines, names then values, both
    led by the same prefix ("TcpExt:"); nstat names a counter prefix + field."""
    out: dict[str, int] = {}
    lines = text.splitlines()
    for names, values in zip(lines[::2], lines[1::2]):
        prefix, _, fields = names.partition(":")
        vprefix, _, numbers = values.partition(":")
        if prefix != vprefix:
            raise ValueError(f"MIB lines out of step: {prefix!r} then {vprefix!r}")
        out.update({prefix + name: int(value) for name, value in zip(fields.split(), numbers.split())})
    return out


def read_mib(pid: int) -> dict[str, str]:
    """The raw netstat and snmp text of the network namespace process `pid` is in."""
    return {name: Path(f"/proc/{pid}/net/{name}").read_text() for name in MIB_FILES}


def snapshot(pids: dict[str, int]) -> dict:
    """Every host's MIB text now, with the moment (epoch s) and the kernel's release."""
    return {"t": time.time(), "kernel": os.uname().release, "texts": {h: read_mib(pid) for h, pid in pids.items()}}


def parsed(snap: dict) -> dict[str, dict[str, int]]:
    """A snapshot's texts as {host: {nstat name: value}}."""
    return {h: {k: v for name in MIB_FILES for k, v in parse_mib(texts[name]).items()}
            for h, texts in snap["texts"].items()}


def deltas(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """after - before for every counter in both, or listed only once counted (MIB_SPARSE_PREFIXES:
    0 before). A gauge like TcpCurrEstab is a difference too."""
    return {name: after[name] - before.get(name, 0) for name in after
            if name in before or name.startswith(MIB_SPARSE_PREFIXES)}


def counters_result(before: dict, after: dict, t0: float) -> dict:
    """result.json's `counters`: both snapshots (moments relative to t0) and the differences."""
    first, last = parsed(before), parsed(after)
    return {"kernel": after["kernel"], "t0": t0,
            "before": {"at_s": before["t"] - t0, "hosts": first},
            "after": {"at_s": after["t"] - t0, "hosts": last},
            "deltas": {h: deltas(first[h], last[h]) for h in last if h in first}}


def save_raw(run_dir: Path, before: dict, after: dict) -> str | None:
    """counters/<host>.<before|after>.<netstat|snmp>: the files as the kernel wrote them. A file
    that cannot be written (a full disk) is the evidence's problem, said, not a traceback."""
    folder = run_dir / "counters"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for when, snap in (("before", before), ("after", after)):
            for host, texts in snap["texts"].items():
                for name, text in texts.items():
                    (folder / f"{host}.{when}.{name}").write_text(text)
    except OSError as exc:
        return f"counters/ could not be written: {exc.strerror or exc}"
    return None


def _prefixes() -> list[tuple[int, struct.Struct, tuple[str, ...]]]:
    """(bytes, struct, names) for each prefix of the layout: a shorter struct (an older kernel)
    is read as far as it goes."""
    out = []
    for n in range(1, len(TCP_INFO_LAYOUT) + 1):
        layout = TCP_INFO_LAYOUT[:n]
        fmt = struct.Struct("=" + "".join(code for _, code, _ in layout))
        # the kernel aligns its u64s: a prefix is a real length only where the native layout agrees
        if fmt.size == struct.calcsize("@" + "".join(code for _, code, _ in layout)):
            out.append((fmt.size, fmt, tuple(name for name, _, _ in layout)))
    return out


_PREFIXES = _prefixes()
_BY_LENGTH: dict[int, tuple[struct.Struct, tuple[str, ...]]] = {}


def _layout_for(length: int) -> tuple[struct.Struct, tuple[str, ...]]:
    if length not in _BY_LENGTH:
        size, fmt, names = max((p for p in _PREFIXES if p[0] <= length), key=lambda p: p[0], default=_PREFIXES[0])
        _BY_LENGTH[length] = (fmt, names)
    return _BY_LENGTH[length]


def parse_tcp_info(raw: bytes) -> dict:
    """struct tcp_info bytes -> {field: value}: the fields its length covers; state as ss names
    it, options as a list of names, bytes 6 and 7 as their bit fields (TCP_INFO_FIELDS)."""
    fmt, names = _layout_for(len(raw))
    info = dict(zip(names, fmt.unpack_from(raw)))
    info["state"] = TCP_STATE_NAMES.get(info["state"], str(info["state"]))
    if "options" in info:
        bits = info["options"]
        info["options"] = [name for name, bit in TCP_INFO_OPTIONS.items() if bits & bit]
    if "wscale" in info:
        both = info.pop("wscale")
        info["snd_wscale"], info["rcv_wscale"] = both & 0x0F, both >> 4
    if "flags" in info:
        flags = info.pop("flags")
        info["delivery_rate_app_limited"], info["fastopen_client_fail"] = flags & 1, (flags >> 1) & 3
    return info


def raw_tcp_info(sock: socket.socket) -> bytes | None:
    """The socket's struct tcp_info as the kernel gives it (None: a closed socket, or not TCP)."""
    try:
        return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_ASK)
    except OSError:
        return None


def read_tcp_info(sock: socket.socket) -> dict | None:
    """The socket's tcp_info now, parsed; None for a closed socket or one without it."""
    raw = raw_tcp_info(sock)
    return parse_tcp_info(raw) if raw else None
