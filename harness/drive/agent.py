"""Agent run inside one host: performs its socket steps in order and logs when each call started
and returned, on the host's clock (all hosts share one kernel clock).

Protocol: stdin line 1 = JSON {"steps": [AgentStep.to_json(), ...], "duration": s, "log": path}; the agent prints
"ready"; stdin line 2 = t0 (epoch seconds). A step with "at" starts at t0 + at (or late, if the
previous step returned later, which the log shows); one without starts when the previous returns.
A call still blocked when the run ends (t0 + duration) is logged as such and the agent stops.
The agent then prints "done" and holds its sockets open until stdin closes. Each call is one
harness.model.StepRecord line in the log (a call the run's end cut short has `blocked` set).
"""
from __future__ import annotations

import ctypes
import errno
import json
import socket
import struct
import sys
import threading
import time

from harness.model import BLOCKED, TCP_STATE_NAMES, AgentStep, StepRecord
from harness.record.sampler import NOTE_ADDRESS

MCL_CURRENT = 1     # <sys/mman.h>: lock the pages mapped now (not later ones: no limit to meet)

SHUTDOWN = {"write": socket.SHUT_WR, "read": socket.SHUT_RD, "both": socket.SHUT_RDWR}


class RunEnded(Exception):
    """The step was still waiting when the run's time was up."""


def _ended_or_raise(exc: OSError) -> None:
    """socket.timeout is TimeoutError: errno None means our deadline passed, errno ETIMEDOUT is
    the kernel giving up (connect after tcp_syn_retries), a result to log like any other."""
    if exc.errno is None:
        raise RunEnded
    raise exc


class Host:
    """The sockets of one host: its listener's accepted connections or its own connection."""

    def __init__(self, deadline: float, record) -> None:
        self.deadline = deadline
        self.record = record
        self.conn: socket.socket | None = None
        self.listeners: list[socket.socket] = []
        self.accepted = threading.Event()
        self.held: list[socket.socket] = []

    def remaining(self) -> float:
        left = self.deadline - time.time()
        if left <= 0:
            raise RunEnded
        return left

    def connection(self) -> socket.socket:
        """The connection steps act on; on a server, waits for the first accepted one."""
        if self.conn is None and self.listeners:
            if not self.accepted.wait(self.remaining()):
                raise RunEnded
        if self.conn is None:
            raise OSError(errno.ENOTCONN, "no connection on this host yet (connect or listen first)")
        self.conn.settimeout(self.remaining())
        return self.conn

    def accept_loop(self, server: socket.socket) -> None:
        while True:
            try:
                conn, peer = server.accept()
            except OSError:
                return
            self.held.append(conn)
            if self.conn is None:
                self.conn = conn
            now = time.time()
            self.record(StepRecord("accepted", now, now, local=tuple(conn.getsockname()), peer=tuple(peer), result="ok"))
            self.accepted.set()


def _read(conn: socket.socket, limit: int | None, host: Host, entry: StepRecord) -> None:
    """Read until EOF (limit None) or `limit` bytes, counting into entry.nbytes as data comes
    (so the count survives a reset that ends the read)."""
    entry.nbytes = 0
    while limit is None or entry.nbytes < limit:
        try:
            chunk = conn.recv(65536 if limit is None else min(65536, limit - entry.nbytes))
        except socket.timeout as exc:
            _ended_or_raise(exc)
        if not chunk:
            break
        entry.nbytes += len(chunk)
        conn.settimeout(host.remaining())


def _tcp_state(conn: socket.socket) -> str:
    info = conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
    return TCP_STATE_NAMES.get(info[0], str(info[0]))


def perform(step: AgentStep, host: Host, entry: StepRecord) -> None:
    action = step.action
    if action == "listen":
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("0.0.0.0", step.port))
        server.listen(16)
        host.listeners.append(server)
        entry.local = tuple(server.getsockname())
        threading.Thread(target=host.accept_loop, args=(server,), daemon=True).start()
    elif action == "connect":
        client = socket.socket()
        client.bind((step.bind, 0))
        entry.local = tuple(client.getsockname())
        entry.peer = (step.address, step.port)
        host.conn = client
        host.held.append(client)
        client.settimeout(host.remaining())
        try:
            client.connect((step.address, step.port))
        except socket.timeout as exc:
            _ended_or_raise(exc)
    elif action == "send":
        data = step.message.encode() if step.message is not None else b"x" * step.size
        try:
            host.connection().sendall(data)
        except socket.timeout as exc:
            _ended_or_raise(exc)
        entry.nbytes = len(data)
    elif action == "recv":
        _read(host.connection(), step.size, host, entry)
    elif action == "shutdown":
        host.connection().shutdown(SHUTDOWN[step.how])
    elif action in ("close", "abort"):
        conn = host.connection()
        if action == "abort":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
    elif action == "wait":
        until = step.until
        if until is None:
            time.sleep(min(step.seconds, host.remaining()))
        elif until == "connected":
            host.connection()
        elif until == "peer-closed":
            _read(host.connection(), None, host, entry)
        else:  # state:NAME, polled from the socket's own TCP_INFO
            conn, wanted = host.connection(), until.split(":", 1)[1]
            while _tcp_state(conn) != wanted:
                host.remaining()
                time.sleep(0.001)
    else:
        raise ValueError(f"unknown action {action}")


class SamplerNotes:
    """Tells this host's state sampler when calls happen, so it samples densely around them
    (it sleeps while nothing can change; see harness.record.sampler.Pacer)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)

    def at(self, when: float) -> None:
        try:
            self.sock.sendto(repr(when).encode(), NOTE_ADDRESS)
        except OSError:
            pass     # no sampler listening (an agent run on its own): nothing to tell


def _stay_in_memory() -> None:
    """Lock every page this agent has mapped into RAM before it says ready. In the VM a page fault
    served from the host's file system over 9p is idle time, which the virtual clock skips: an
    agent faulting a page between reading t0 and its first step started it hundreds of ms late
    (measured: a cold 9p stat alone cost 15-43 ms of guest time). Best effort: without the
    privilege it only loses that guarantee."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mlockall(MCL_CURRENT)


def main() -> None:
    plan = json.loads(sys.stdin.readline())
    log = open(plan["log"], "w")
    lock = threading.Lock()
    failed: list[OSError] = []

    def record(entry: StepRecord) -> None:
        """One line per call. A log the disk will not take must not stop the timeline (the other
        host's steps go on): the runner finds the short log afterwards and marks the run incomplete."""
        with lock:
            try:
                log.write(json.dumps(entry.to_json()) + "\n")
                log.flush()
            except OSError as exc:
                if not failed:      # said once: nobody drains stderr while the run goes on
                    print(f"the step log could not be written: {exc.strerror or exc}", file=sys.stderr, flush=True)
                failed.append(exc)

    steps = [AgentStep.from_json(step) for step in plan["steps"]]
    notes = SamplerNotes()
    _stay_in_memory()
    print("ready", flush=True)
    t0 = float(sys.stdin.readline())
    host = Host(t0 + plan["duration"], record)
    for step in steps:
        if step.at is not None:
            notes.at(t0 + step.at)
    for step in steps:
        if step.at is not None:
            delay = t0 + step.at - time.time()
            if delay > 0:
                time.sleep(delay)
        if step.action == "wait" and step.seconds is not None:
            notes.at(time.time() + step.seconds)
        notes.at(time.time())
        entry = StepRecord(step.action, time.time(), index=step.index,
                           scheduled=t0 + step.at if step.at is not None else None)
        try:
            perform(step, host, entry)
            entry.result = "ok"
        except RunEnded:
            entry.result, entry.blocked = BLOCKED, True
        except OSError as exc:
            entry.result = f"error: {exc.strerror or exc}"
            entry.errno = errno.errorcode.get(exc.errno, str(exc.errno))
        entry.end = time.time()
        record(entry)
        if entry.blocked:
            break
    print("done", flush=True)
    sys.stdin.readline()   # hold every socket open until the driver has stopped the recorders


if __name__ == "__main__":
    main()
