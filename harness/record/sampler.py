"""Socket-state sampler for every host: polls each namespace's sock_diag (what `ss` reads).

One long-lived process (forked into the hosts' namespaces, see Watched) asks NETLINK_SOCK_DIAG directly because spawning `ss` per sample costs
~170 ms under QEMU emulation (measured), far too coarse to see a 100 ms SYN-SENT. The dump is
parsed with `struct` (fixed-size inet_diag_msg headers, no attributes requested): pyroute2's
generic parser cost 6.5 ms per dump in the emulated VM and loaded the CPU the timers run on;
this parser measured 0.37 ms per dump natively.
Output: one JSON line per sample
{"t": epoch, "d": dump_s, "s": [[state, src, sport, dst, dport, timer, expires_ms, retrans, cookie], ...]}
where timer is the kernel's pending timer (0 none, 1 retransmit, 2 keepalive, 3 TIME-WAIT,
4 zero-window probe), expires_ms its remaining time and cookie the socket's cookie (SO_COOKIE:
what ties a row to the socket a step made; a TIME-WAIT socket keeps its full socket's, a request
socket in SYN-RECV has its own). Samples recorded before the cookie column have 8 columns. When nothing can change, it samples
sparsely (see Pacer): the gaps around each state change, not the mean rate, bound what it saw.
"""
from __future__ import annotations

import ctypes
import json
import os
import select
import signal
import socket
import struct
import sys
import time

from harness.lab.namespaces import Forked, enter_netns
from harness.model import TCP_STATE_NAMES

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
ETH_P_ALL = 0x0003
# Abstract unix names belong to the network namespace, so each host's sampler has its own.
NOTE_ADDRESS = b"\0tcp-testbed-sampler"
_NLMSGHDR = struct.Struct("=IHHII")
# inet_diag_msg offsets: state +1, timer +2, retrans +3, sport/dport +4 (big-endian), src +8,
# dst +24, cookie +44 (two native u32, low word first), expires +52.


def dump_request(seq: int) -> bytes:
    """An inet_diag_req_v2 asking for every IPv4 TCP socket in every state, no extensions."""
    body = struct.pack("=BBBBI", socket.AF_INET, socket.IPPROTO_TCP, 0, 0, 0xFFF) + bytes(48)
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body


def parse_dump(data: bytes) -> tuple[list[list], bool]:
    """Rows of one netlink reply buffer, and whether the dump is complete."""
    rows, offset, done = [], 0, False
    while offset + _NLMSGHDR.size <= len(data):
        length, kind, _, _, _ = _NLMSGHDR.unpack_from(data, offset)
        if kind == NLMSG_DONE:
            done = True
        elif kind == NLMSG_ERROR:
            errno = -struct.unpack_from("=i", data, offset + _NLMSGHDR.size)[0]
            raise OSError(errno, f"sock_diag dump failed: {os.strerror(errno)}")
        elif kind == SOCK_DIAG_BY_FAMILY:
            at = offset + _NLMSGHDR.size
            _, state, timer, retrans = struct.unpack_from("=BBBB", data, at)
            sport, dport = struct.unpack_from(">HH", data, at + 4)
            src, dst = data[at + 8:at + 12], data[at + 24:at + 28]
            (expires,) = struct.unpack_from("=I", data, at + 52)
            cookie_lo, cookie_hi = struct.unpack_from("=II", data, at + 44)
            rows.append([TCP_STATE_NAMES.get(state, str(state)), socket.inet_ntoa(src), sport,
                         socket.inet_ntoa(dst), dport, timer, expires, retrans, cookie_lo | cookie_hi << 32])
        offset += (length + 3) & ~3
    return rows, done


def dump(sock: socket.socket, seq: int) -> list[list]:
    sock.send(dump_request(seq))
    rows: list[list] = []
    while True:
        part, done = parse_dump(sock.recv(1 << 17))
        rows += part
        if done:
            return rows


class Pacer:
    """When to take the next sample: every `interval_s` while anything may change, sparsely while
    nothing can.

    A TCP socket changes state only when a segment arrives or leaves, when its owner makes a call,
    or when one of its kernel timers fires. So the sampler wakes on every packet in the namespace
    (an AF_PACKET socket sees both directions), on every note from the agent (it announces each
    call, and the time of each scheduled one, on an abstract unix socket), and just before the
    earliest timer the kernel reports; after any of these it samples densely for `linger_s`.
    In between it sleeps (at most `max_sleep_s`). Under the VM's virtual clock idle time costs no
    wall time, so a 60 s TIME-WAIT costs seconds instead of minutes of emulated polling; the
    analysis still computes every uncertainty from the samples' own times."""

    def __init__(self, interval_s: float, linger_s: float = 0.3, margin_s: float = 0.03, max_sleep_s: float = 0.5):
        self.interval_s, self.linger_s, self.margin_s, self.max_sleep_s = interval_s, linger_s, margin_s, max_sleep_s
        self.last = 0.0
        self.dense_until = 0.0
        self.timer_wake = float("inf")
        self.announced: list[float] = []

    def sampled(self, now: float, rows: list[list]) -> None:
        """A sample was taken at `now`; row[5] is a pending kernel timer due row[6] ms after it."""
        self.last = now
        self.timer_wake = min((now + row[6] / 1000 - self.margin_s for row in rows if row[5]), default=float("inf"))
        self.announced = [t for t in self.announced if t + self.linger_s > now]

    def woke(self, now: float) -> None:
        """Something happened (a packet, a call): sample densely for a while."""
        self.dense_until = max(self.dense_until, now + self.linger_s)

    def announce(self, when: float) -> None:
        """The agent will make a call at `when`: be dense around it."""
        self.announced.append(when)

    def sleeping(self, now: float) -> bool:
        return self.next_sample() - now > self.interval_s

    def next_sample(self) -> float:
        dense = self.last + self.interval_s
        if self.last < self.dense_until or any(t - self.margin_s <= dense for t in self.announced):
            return dense
        wake = min([self.last + self.max_sleep_s, self.timer_wake] + [t - self.margin_s for t in self.announced])
        return max(dense, wake)


# `tcpdump -dd -y EN10MB tcp`: only TCP segments wake the sampler (not IPv6 neighbour discovery,
# ARP...). Hosts' interfaces, loopback included, carry Ethernet headers.
TCP_ONLY = [(0x28, 0, 0, 0x0c), (0x15, 0, 2, 0x800), (0x30, 0, 0, 0x17), (0x15, 6, 7, 0x06),
            (0x15, 0, 6, 0x86dd), (0x30, 0, 0, 0x14), (0x15, 3, 0, 0x06), (0x15, 0, 3, 0x2c),
            (0x30, 0, 0, 0x36), (0x15, 0, 1, 0x06), (0x06, 0, 0, 0x40000), (0x06, 0, 0, 0)]
SO_ATTACH_FILTER = 26
# Traced, nothing the samples add can change without a segment (which wakes the sampler) or a
# kernel timer (which it wakes for): long sleeps lose nothing.
TRACED_MAX_SLEEP_S = 2.0


def tcp_packet_socket() -> socket.socket:
    """An AF_PACKET socket that sees every TCP segment sent or received in this namespace."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    program = ctypes.create_string_buffer(b"".join(struct.pack("=HBBI", *op) for op in TCP_ONLY))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, struct.pack("=HxxxxxxQ", len(TCP_ONLY), ctypes.addressof(program)))
    return sock


def _drain(sock: socket.socket) -> None:
    while True:
        try:
            sock.recv(1, socket.MSG_DONTWAIT | socket.MSG_TRUNC)
        except BlockingIOError:
            return


def _notes(sock: socket.socket) -> list[float]:
    times = []
    while True:
        try:
            times.append(float(sock.recv(64, socket.MSG_DONTWAIT)))
        except BlockingIOError:
            return times
        except ValueError:
            continue


class Watched:
    """One host's sockets as the sampler holds them: opened inside the host's namespace."""

    def __init__(self, name: str, pid: int | None, out_path: str) -> None:
        if pid is not None:
            enter_netns(pid)
        self.name = name
        self.diag = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
        self.diag.bind((0, 0))
        self.packets = tcp_packet_socket()
        self.notes = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notes.bind(NOTE_ADDRESS)
        self.out = open(out_path, "w")


def sample_hosts(hosts: dict[str, tuple[int | None, str]], interval_s: float, linger_s: float = 0.3,
                 traced: bool = False) -> None:
    """Sample every host's sockets, one file each, until SIGTERM. One process for all hosts, so a
    segment sent or a call made on one host makes every host sample densely: the receiver's
    state change is then bracketed by samples even though its own namespace was quiet before.
    `linger_s` must cover the longest a segment can spend in the network (path delay, holds).

    `traced`: the kernel's tracepoints give every full socket's changes, and the samples only add
    what they cannot see — request sockets and TIME-WAIT sockets, which only a segment or a kernel
    timer makes or ends (or a connect() that takes over a TIME-WAIT socket's four-tuple) — and
    cross-check the rest. So it samples as soon as a segment arrives or leaves (at most every
    `interval_s`), sleeps up to TRACED_MAX_SLEEP_S when nothing moves, takes a last sample when
    stopped (so the samples reach the timeline's end), and runs as SCHED_IDLE: any runnable task
    (ksoftirqd forwarding a segment, an agent) takes the CPU from it at once, where on the VM's one
    vCPU its work would otherwise delay them."""
    running = True
    if traced:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))

    def stop(*_):
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    watched = [Watched(name, pid, out) for name, (pid, out) in hosts.items()]
    pacer = Pacer(interval_s, linger_s, max_sleep_s=TRACED_MAX_SLEEP_S if traced else 0.5)
    for w in watched:
        dump(w.diag, 0)
    print("ready", flush=True)
    wake_on = {w.packets: w for w in watched} | {w.notes: w for w in watched}
    seq = 1
    while running:
        _sample(watched, seq, pacer)
        seq += 1
        while running and (pause := pacer.next_sample() - time.time()) > 0:
            ready = select.select(list(wake_on), [], [], pause)[0]
            if _woken(ready, wake_on, pacer, traced):
                break
    if traced:
        _sample(watched, seq, pacer)
    for w in watched:
        w.out.close()


def _sample(watched: list[Watched], seq: int, pacer: Pacer) -> None:
    """One sample of every host, a line each: "t" just after its dump, "d" how long the dump took
    (the tables were read somewhere in [t - d, t]: a hundred sockets take milliseconds to dump
    under emulation, and SCHED_IDLE lets anything preempt the sampler inside one)."""
    now = time.time()
    every_row = []
    for w in watched:
        began = time.time()
        rows = dump(w.diag, seq)
        read = time.time()
        w.out.write(json.dumps({"t": read, "d": round(read - began, 6), "s": rows}, separators=(",", ":")) + "\n")
        every_row += rows
    pacer.sampled(now, every_row)


def _woken(ready: list, wake_on: dict, pacer: Pacer, traced: bool) -> bool:
    """Take in what woke the sampler (segments, the agents' notes); whether to sample at once."""
    t = time.time()
    was_sleeping = pacer.sleeping(t)
    packet = False
    for sock in ready:
        if sock is wake_on[sock].packets:
            packet = True
            _drain(sock)
            pacer.woke(t)
        else:
            for when in _notes(sock):
                pacer.woke(t) if when <= t else pacer.announce(when)
    if was_sleeping and t < pacer.dense_until:
        return True            # woken from a sparse sleep: sample at once, to have the "before"
    # traced: a segment arrived or left; what it changed is seen within interval_s
    return traced and packet and t - pacer.last >= pacer.interval_s


class StateSampler(Forked):
    """sample_hosts() in its own forked process, with the helpers' lifecycle: started by the
    constructor (recorded in `ledger`), ready when it prints "ready" (its sockets are open in
    every host), stop() = SIGTERM (it closes its files), reap, close the pipes; summary() has its
    exit status and last error line. `hosts` maps a name to (namespace PID or None, output path)."""

    def __init__(self, hosts: dict[str, tuple[int | None, str]], interval_s: float, linger_s: float = 0.3,
                 ledger=None, traced: bool = False) -> None:
        super().__init__(None, sample_hosts, hosts, interval_s, linger_s, traced, name="state sampler", ledger=ledger)


def main(out_path: str, interval_s: float) -> None:
    """This namespace only (a manual run: python -m harness.record.sampler OUT INTERVAL)."""
    sample_hosts({"": (None, out_path)}, interval_s)


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]))
