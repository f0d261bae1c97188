"""Agent run inside one host: performs its socket steps and logs when each call started and
returned, on the host's clock (all hosts share one kernel clock).

Protocol: stdin line 1 = JSON {"host": name, "steps": [AgentStep.to_json(), ...], "duration": s,
"log": path}; the agent prints "ready"; stdin line 2 = t0 (epoch seconds).

Each socket is a lane (a thread): the steps with the same AgentStep.socket run in file order, and
the steps without one form one more lane. A step with "at" starts at t0 + at, or late if its
lane's previous call returned later (the log shows it); one without starts when its lane's
previous call returns. A blocking call therefore holds back only its own socket's later steps:
100 connects "at 0.5 s" on 100 sockets all start at 0.5 s or just after, one after another (measured:
within 2-4 ms on loopback here; over 9.4 ms, ~90 us each, on the VM's one emulated CPU). A step on a socket that does not exist
yet (made by another lane, or a connection not yet accepted) waits for it. Connects, closes,
aborts and shutdowns due at a moment are begun by one thread, the starter, so that many due
together all start on time (lane threads waking together would queue for Python's GIL).
A call still blocked when the run ends (t0 + duration) is logged as such and ends its lane. When
every lane is over the agent prints "done" and holds its sockets open until stdin closes. Each
call is one harness.model.StepRecord line in the log (a call the run's end cut short has `blocked`
set); the listeners' accept loops add one "accepted" line per connection, named HOST:PORT#N.
"""
from __future__ import annotations

import ctypes
import errno
import heapq
import itertools
import json
import os
import queue
import select
import socket
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from harness.model import (BLOCKED, SOCKET_OPTIONS, TCP_INFO_AT_END, TCP_STATE_NAMES, AgentStep, StepRecord,
                           accepted_name, listener_name)
from harness.record.counters import parse_tcp_info, raw_tcp_info, read_tcp_info
from harness.record.sampler import NOTE_ADDRESS

IP_BIND_ADDRESS_NO_PORT = 24    # <linux/in.h>: bind() takes the address, connect() the port
SO_COOKIE = 57      # <asm-generic/socket.h>: the id sock_diag reports (the sampler's rows carry it)
SO_REUSEPORT = 15
# A lane runs a few shallow Python frames: 100 lanes with the default 8 MiB stacks would reserve
# 800 MiB.
LANE_STACK_BYTES = 256 * 1024
# A listener's queue of connections not yet accepted: 100 SYNs arriving at once must all be
# answered (a full queue drops SYNs), the kernel caps it at net.core.somaxconn.
LISTEN_BACKLOG = 1024
# The starter wakes this long before a due connect and waits out the rest awake (see Starter).
STARTER_EARLY_S = 0.002
# How long after the run's end the agent waits for its lanes' last lines: every blocking call ends
# at the deadline by its own timeout, so this is only the time to write them.
LANE_GRACE_S = 1.0

SHUTDOWN = {"write": socket.SHUT_WR, "read": socket.SHUT_RD, "both": socket.SHUT_RDWR}


class RunEnded(Exception):
    """The step was still waiting when the run's time was up."""


def _ended_or_raise(exc: OSError) -> None:
    """socket.timeout is TimeoutError: errno None means our deadline passed, errno ETIMEDOUT is
    the kernel giving up (connect after tcp_syn_retries), a result to log like any other."""
    if exc.errno is None:
        raise RunEnded
    raise exc


def cookie_of(sock: socket.socket) -> int:
    """SO_COOKIE: the socket's id in sock_diag, which ties the sampler's rows to this socket."""
    return struct.unpack("Q", sock.getsockopt(socket.SOL_SOCKET, SO_COOKIE, 8))[0]


def new_socket(step: AgentStep, listener: bool = False) -> socket.socket:
    """A TCP socket with the step's set-up applied before any bind or connect (the kernel reads
    most options at connect: TCP_SYNCNT, TCP_MAXSEG, SO_RCVBUF's window). Listeners always reuse
    addresses, as they always have. A refused option closes the socket and raises (logged)."""
    sock = socket.socket()
    try:
        if listener or step.reuseaddr:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if step.reuseport:
            sock.setsockopt(socket.SOL_SOCKET, SO_REUSEPORT, 1)
        for name, value in step.options:
            level, optname, unit = SOCKET_OPTIONS[name]
            sock.setsockopt(level, optname, struct.pack("ii", 1, value) if unit == "linger" else value)
    except BaseException:
        sock.close()
        raise
    return sock


def connect_socket(step: AgentStep, host: Host) -> socket.socket:
    """The socket a connect uses: the one its lane made before t0, else a new one."""
    return host.premade.pop((step.index, step.socket), None) or new_socket(step)


def bind_address_only(step: AgentStep, sock: socket.socket) -> None:
    """Bind the host's address and leave the port to connect(), as an unbound socket's would be:
    the kernel's connect-time rules then apply (tcp_tw_reuse taking a TIME-WAIT four-tuple; a port
    bound here would be chosen by bind's rules, which never reuse one: EADDRINUSE). Nothing is
    visible to anyone until connect(), so a lane may do it before t0."""
    sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
    sock.bind((step.bind or "0.0.0.0", 0))


class Job:
    """A call's beginning, run by the Starter; the lane waits for it and takes its error."""

    def __init__(self, begin: Callable[[], None]) -> None:
        self.begin = begin
        self.done = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.begin()
        except BaseException as exc:     # the lane's result (EADDRINUSE...), raised in the lane
            self.error = exc

    def wait(self) -> None:
        self.done.wait()
        if self.error is not None:
            raise self.error


class Starter:
    """One thread that begins every connect (and makes every close, abort, shutdown) due at a
    moment, one after another. 100 lane threads
    waking at one instant queue for Python's GIL, each hand-over costing tens of µs (measured on
    loopback: the last of 100 connects due together began 7-20 ms late); one thread sends 100
    non-blocking connects' SYNs in about 2 ms (on the VM's emulated CPU, with the recorders woken
    by every SYN: 9.4 ms). Each lane then waits for its own handshake."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.due: list[tuple[float, int, int, Job]] = []      # a heap, soonest (then first line) first
        self.order = itertools.count()

    def run_at(self, when: float, begin: Callable[[], None], line: int = 0) -> Job:
        """Calls due at one moment begin in file order (`line`), whatever order their lanes came in."""
        job = Job(begin)
        with self.changed:
            heapq.heappush(self.due, (when, line, next(self.order), job))
            self.changed.notify()
        return job

    def _next_due(self) -> list[Job]:
        with self.changed:
            while not self.due or self.due[0][0] - STARTER_EARLY_S > time.time():
                self.changed.wait(max(0.0, self.due[0][0] - STARTER_EARLY_S - time.time()) if self.due else None)
            soonest = self.due[0][0]
        while soonest > time.time():
            pass            # the last moments spent awake (a timed wake-up may come late), not holding
                            # the lock: lanes handing in their calls meanwhile are not held up
        with self.changed:
            now, jobs = time.time(), []
            while self.due and self.due[0][0] <= now:
                jobs.append(heapq.heappop(self.due)[-1])
            return jobs

    def serve(self) -> None:
        """The lanes are woken only once every due call has begun: a woken lane would take the
        GIL from the starter at its next system call."""
        while True:
            jobs = self._next_due()
            for job in jobs:
                job.run()
            for job in jobs:
                job.done.set()


class Host:
    """The sockets of one host by name, shared by its lanes: a lane acting on a socket another
    lane has not made yet (or the accept loop has not accepted yet) waits for it here."""

    def __init__(self, name: str, record: Callable[[StepRecord], None]) -> None:
        self.name = name
        self.record = record
        self.t0 = 0.0
        self.deadline = 0.0
        self.go = threading.Event()            # set at t0's arrival: every lane waits on it
        self.starter = Starter()
        self.changed = threading.Condition()   # guards everything below
        self.named: dict[str, socket.socket] = {}
        self.default: socket.socket | None = None   # what a step without socket acts on (old plans)
        self.listening = 0
        self.accepted: dict[int, list[str]] = {}    # port -> automatic names, in accept order
        self.claimed: dict[int, int] = {}           # port -> how many accept steps took one
        self.claimers: dict[int, set[int]] = {}     # port -> the lines of the accept steps waiting
        self.listeners: dict[int, queue.SimpleQueue] = {}   # listen step index -> its accept loop's inbox
        self.current: dict[int, StepRecord] = {}             # calls under way, by id (see run_step)
        self.addresses: dict[str, tuple] = {}                # accepted name -> (local, peer) as accept() gave them
        self.premade: dict[tuple, socket.socket] = {}       # (line, socket) -> a lane's first connect's socket, made before t0
        self.last_info: dict[int, bytes] = {}                # id(record) -> a closed socket's tcp_info, parsed by its lane
        self.held: list[socket.socket] = []
        self.crashed: list[BaseException] = []

    def remaining(self) -> float:
        left = self.deadline - time.time()
        if left <= 0:
            raise RunEnded
        return left

    def _wait(self) -> None:
        """Wait (holding self.changed) for a socket to appear, or the run's end."""
        self.changed.wait(self.remaining())

    def register(self, names: list[str | None], sock: socket.socket, default: str = "") -> None:
        """Name a socket (and hold it open to the end). default: "always" (a connect: the host's
        connection from now on, as before names) or "first" (an accepted one, if there is none yet)."""
        with self.changed:
            self.held.append(sock)
            for name in names:
                if name is not None:
                    self.named[name] = sock
            if default == "always" or (default == "first" and self.default is None):
                self.default = sock
            self.changed.notify_all()

    def socket(self, name: str | None) -> socket.socket:
        """The socket called `name`, once it exists. None (a plan without names): the host's
        connection as before names existed: its last connect's, else the first one accepted."""
        with self.changed:
            if name is None:
                while self.default is None:
                    if not self.listening:
                        raise OSError(errno.ENOTCONN, "no connection on this host yet (connect or listen first)")
                    self._wait()
                return self.default
            while name not in self.named:
                self._wait()
            return self.named[name]

    def connection(self, name: str | None) -> socket.socket:
        """The socket, in blocking mode with the run's end as its timeout."""
        conn = self.socket(name)
        conn.settimeout(self.remaining())
        return conn

    def claim(self, port: int, index: int) -> str:
        """The next connection the listener on `port` accepted that no accept step took yet.
        Accept steps waiting together take them in file order (their lanes start in any order)."""
        with self.changed:
            waiting = self.claimers.setdefault(port, set())
            waiting.add(index)
            try:
                while len(self.accepted.get(port, ())) <= self.claimed.get(port, 0) or index != min(waiting):
                    self._wait()
            finally:
                waiting.discard(index)
                self.changed.notify_all()
            nth = self.claimed.get(port, 0)
            self.claimed[port] = nth + 1
            return self.accepted[port][nth]

    def accept_loop(self, inbox: queue.SimpleQueue) -> None:
        """Started before t0 for each listen step; serves the listener its step hands over."""
        server = inbox.get()
        if server is None:
            return
        port = server.getsockname()[1]
        while True:
            try:
                conn, peer = server.accept()
            except OSError:
                return
            now = time.time()
            local = tuple(conn.getsockname())
            with self.changed:     # named in accept order (an accept step waits for the socket itself)
                names = self.accepted.setdefault(port, [])
                name = accepted_name(self.name, port, len(names) + 1)
                names.append(name)
                self.addresses[name] = (local, tuple(peer))   # a reset may leave getpeername() none to give
            self.record(StepRecord("accepted", now, now, local=local, peer=tuple(peer), result="ok",
                                   socket=name, cookie=cookie_of(conn), tcp_info=read_tcp_info(conn)))
            self.register([name], conn, default="first")


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


def _listen(step: AgentStep, host: Host, entry: StepRecord) -> None:
    inbox = host.listeners.pop(step.index, None)
    if inbox is None:      # not prepared before t0 (a plan with two listens on one line): start one now
        inbox = queue.SimpleQueue()
        threading.Thread(target=host.accept_loop, args=(inbox,), daemon=True).start()
    try:
        server = new_socket(step, listener=True)
        entry.cookie = cookie_of(server)
        server.bind(("0.0.0.0", step.port))
        server.listen(LISTEN_BACKLOG)
    except BaseException:
        inbox.put(None)
        raise
    entry.local = tuple(server.getsockname())
    with host.changed:
        host.listening += 1
    host.register([listener_name(host.name, entry.local[1]), step.socket], server)
    inbox.put(server)


def _begin_connect(step: AgentStep, host: Host, entry: StepRecord, client: socket.socket) -> None:
    """Bind and send the SYN without waiting for the handshake (a blocking connect then waits
    for it: _wait_connected, as socket.connect does inside)."""
    entry.peer = (step.address, step.port)
    try:
        if client.getsockname() == ("0.0.0.0", 0):       # not bound ahead (bind_address_only)
            if not step.local_port:
                bind_address_only(step, client)
            else:
                client.bind((step.bind or "0.0.0.0", step.local_port))
        client.setblocking(False)
        err = client.connect_ex((step.address, step.port))
    finally:
        # Made known to the other lanes only once the SYN is out (or the call failed): a lane
        # woken before would take the GIL and could keep this one off it for a switch interval.
        host.register([step.socket], client, default="always")
    if client.getsockname()[1]:
        entry.local = tuple(client.getsockname())
    if err not in (0, errno.EINPROGRESS):
        raise OSError(err, os.strerror(err))


def _connect(step: AgentStep, host: Host, entry: StepRecord) -> None:
    """wait: false returns at once: a later `wait: connected` reports how the handshake went."""
    client = connect_socket(step, host)
    entry.cookie = cookie_of(client)
    _begin_connect(step, host, entry, client)
    if step.blocking:
        _wait_connected(client, host)


def _accept(step: AgentStep, host: Host, entry: StepRecord) -> None:
    entry.alias = host.claim(step.port, step.index)
    conn = host.socket(entry.alias)
    host.register([step.socket], conn)
    entry.cookie = cookie_of(conn)
    with host.changed:
        entry.local, entry.peer = host.addresses[entry.alias]


def _send(step: AgentStep, host: Host, entry: StepRecord) -> None:
    data = step.message.encode() if step.message is not None else b"x" * step.size
    try:
        host.connection(step.socket).sendall(data)
    except socket.timeout as exc:
        _ended_or_raise(exc)
    entry.nbytes = len(data)


def _recv(step: AgentStep, host: Host, entry: StepRecord) -> None:
    _read(host.connection(step.socket), step.size, host, entry)


def _shutdown(step: AgentStep, host: Host, entry: StepRecord) -> None:
    host.socket(step.socket).shutdown(SHUTDOWN[step.how])


def _close(step: AgentStep, host: Host, entry: StepRecord) -> None:
    """Whatever state it is in (SYN-SENT after a non-blocking connect included)."""
    conn = host.socket(step.socket)
    raw = raw_tcp_info(conn)     # its last figures (after close() there is no socket to ask), parsed by the lane:
    if raw is not None:          # this may run in the starter, with more closes due at the same moment
        host.last_info[id(entry)] = raw
    if step.action == "abort":
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    if conn.fileno() >= 0 and conn.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        # a listener: its accept loop blocked in accept() holds the kernel socket, so close()
        # alone would leave it listening; shutdown stops it (accept() then fails: the loop ends)
        conn.shutdown(socket.SHUT_RDWR)
    conn.close()


def _wait_connected(conn: socket.socket, host: Host) -> None:
    """A handshake still under way (non-blocking connect) is waited for; then the connect's own
    outcome, which a non-blocking connect leaves in SO_ERROR (ECONNREFUSED, ETIMEDOUT, ...)."""
    if _tcp_state(conn) in ("SYN-SENT", "SYN-RECV"):        # SYN-RECV: a simultaneous open
        poller = select.poll()
        poller.register(conn, select.POLLOUT)
        while not poller.poll(host.remaining() * 1000):
            pass
    err = conn.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if err:
        raise OSError(err, os.strerror(err))
    if _tcp_state(conn) == "CLOSED":
        # never connected (its connect failed before the SYN, or its error was read already):
        # say so rather than "ok"
        raise OSError(errno.ENOTCONN, os.strerror(errno.ENOTCONN))


def _wait(step: AgentStep, host: Host, entry: StepRecord) -> None:
    until = step.until
    if until is None:
        time.sleep(min(step.seconds, host.remaining()))
    elif until == "connected":
        _wait_connected(host.socket(step.socket), host)
    elif until == "peer-closed":
        _read(host.connection(step.socket), None, host, entry)
    else:  # state:NAME, polled from the socket's own TCP_INFO
        conn, wanted = host.socket(step.socket), until.split(":", 1)[1]
        while _tcp_state(conn) != wanted:
            host.remaining()
            time.sleep(0.001)


ACTIONS = {"listen": _listen, "connect": _connect, "accept": _accept, "send": _send, "recv": _recv,
           "shutdown": _shutdown, "close": _close, "abort": _close, "wait": _wait}


def perform(step: AgentStep, host: Host, entry: StepRecord) -> None:
    if step.action not in ACTIONS:
        raise ValueError(f"unknown action {step.action}")
    ACTIONS[step.action](step, host, entry)


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


def _begin_at(step: AgentStep, host: Host, notes: SamplerNotes, entry: StepRecord) -> None:
    """Wait for the step's time (never past the run's end, where it is not begun: blocked)."""
    if step.at is not None:
        delay = min(host.t0 + step.at, host.deadline) - time.time()
        if delay > 0:
            time.sleep(delay)
    if step.action == "wait" and step.seconds is not None:
        notes.at(time.time() + step.seconds)
    notes.at(time.time())
    entry.start = time.time()
    host.remaining()


def _connect_on_time(step: AgentStep, host: Host, notes: SamplerNotes, entry: StepRecord) -> None:
    """A connect due later: its socket is made and set up now, if its lane did not make it before
    t0 (nobody can see it before connect), and the starter sends its SYN at the due time; this
    lane then waits for the handshake."""
    try:
        client = connect_socket(step, host)
    except OSError:
        _begin_at(step, host, notes, entry)     # a refused option is the call's result, at its time
        raise
    entry.cookie = cookie_of(client)

    def begin() -> None:
        entry.start = time.time()
        _begin_connect(step, host, entry, client)

    host.starter.run_at(host.t0 + step.at, begin, step.index).wait()
    if step.blocking:
        _wait_connected(client, host)


def _never_blocks(step: AgentStep, host: Host) -> bool:
    """A call the starter may make whole: on a socket that exists, one that returns at once
    (shutdown, abort; close unless SO_LINGER makes it wait)."""
    with host.changed:
        conn = host.named.get(step.socket) if step.socket is not None else None
    if conn is None or step.action not in ("close", "abort", "shutdown"):
        return False
    try:
        onoff, seconds = struct.unpack("ii", conn.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 8))
    except OSError:
        return False     # closed already: the lane reports it, at the step's time
    return step.action != "close" or not (onoff and seconds > 0)


def _call_on_time(step: AgentStep, host: Host, entry: StepRecord) -> None:
    def begin() -> None:
        entry.start = time.time()
        perform(step, host, entry)

    host.starter.run_at(host.t0 + step.at, begin, step.index).wait()


def run_step(step: AgentStep, host: Host, notes: SamplerNotes) -> StepRecord | None:
    """One call, at its time (never later than the run's end, where it is logged as blocked).
    A connect, shutdown, close or abort due later is begun by the starter (see Starter)."""
    entry = StepRecord(step.action, time.time(), index=step.index, socket=step.socket,
                       scheduled=host.t0 + step.at if step.at is not None else None)
    due_later = step.at is not None and time.time() < host.t0 + step.at < host.deadline
    with host.changed:
        host.current[id(entry)] = entry       # a call still under way at the end is logged as blocked
    try:
        if due_later and step.action == "connect":
            _connect_on_time(step, host, notes, entry)
        elif due_later and _never_blocks(step, host):
            _call_on_time(step, host, entry)
        else:
            _begin_at(step, host, notes, entry)
            perform(step, host, entry)
        entry.result = "ok"
    except RunEnded:
        entry.result, entry.blocked = BLOCKED, True
    except OSError as exc:
        entry.result = f"error: {exc.strerror or exc}"
        entry.errno = errno.errorcode.get(exc.errno, str(exc.errno))
    with host.changed:
        if host.current.pop(id(entry), None) is None:
            return None       # the run's end logged it as blocked already (main): the lane ends
        entry.end = time.time()
    # after `end`: measured in the 6.1 VM (guest time), getsockopt(TCP_INFO) 4.4 µs, parsing it 39 µs
    raw = host.last_info.pop(id(entry), None)         # close/abort: read just before; a listener has none
    entry.tcp_info = (parse_tcp_info(raw) if raw is not None else None if step.action in ("close", "abort", "listen")
                      else _tcp_info_after(step, host))
    return entry


def _tcp_info_after(step: AgentStep, host: Host) -> dict | None:
    """The tcp_info of the socket a call acted on, as the call left it (None: no such socket yet)."""
    with host.changed:
        conn = host.named.get(step.socket) if step.socket is not None else host.default
    return read_tcp_info(conn) if conn is not None and conn.fileno() >= 0 else None


def record_open_sockets(host: Host) -> None:
    """One TCP_INFO_AT_END line for each connection still open at the run's end (waited for: the
    lanes may be over long before, with data still in flight), under its first name, so that every
    socket's last tcp_info is known."""
    time.sleep(max(0.0, host.deadline - time.time()))
    with host.changed:
        names: dict[int, str] = {}
        for name, sock in host.named.items():
            names.setdefault(id(sock), name)
        open_ = [(names[id(s)], s) for s in {id(s): s for s in host.held}.values() if id(s) in names and s.fileno() >= 0]
    for name, sock in open_:
        try:
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                continue          # a listener: no connection
        except OSError:
            continue
        now = time.time()
        host.record(StepRecord(TCP_INFO_AT_END, now, now, result="ok", socket=name, cookie=cookie_of(sock),
                               tcp_info=read_tcp_info(sock)))


def run_lane(steps: list[AgentStep], host: Host, notes: SamplerNotes) -> None:
    """One socket's steps in order, from t0 (a first step without at: starts at t0, not when t0
    was told); a call the run's end cut short ends the lane."""
    first = steps[0] if steps else None
    if first is not None and first.action == "connect" and first.at is not None:
        # made now, not at t0: 100 lanes making their sockets at t0 took the one vCPU from the
        # other host's first step (a listen at t0 began 5.2 ms late)
        try:
            premade = new_socket(first)
            if not first.local_port:
                bind_address_only(first, premade)
            host.premade[(first.index, first.socket)] = premade
        except OSError:
            pass            # the connect meets the same error at its time, and logs it
    host.go.wait()
    delay = host.t0 - time.time()
    if delay > 0 and (first is None or first.at is None):
        time.sleep(delay)       # a step with at: waits for its own time (a connect hands it to the
                                # starter now): 100 lanes waking at t0 held up the other host's step
    try:
        for step in steps:
            entry = run_step(step, host, notes)
            if entry is None:
                return
            host.record(entry)
            if entry.blocked:
                return
    except BaseException as exc:    # a bug, not a result: the agent must not say "done" over it
        host.crashed.append(exc)
        raise


def lanes_of(steps: list[AgentStep]) -> dict[str, list[AgentStep]]:
    """The steps grouped by the socket they act on (None: one lane ""), each in file order."""
    lanes: dict[str, list[AgentStep]] = {}
    for step in steps:
        lanes.setdefault(step.socket or "", []).append(step)
    return lanes


def start_threads(steps: list[AgentStep], host: Host, notes: SamplerNotes) -> list[threading.Thread]:
    """Every lane and accept loop, started now and waiting for t0: after t0 no thread is made
    (a new thread maps a stack, and page faults after t0 are what must not happen)."""
    threading.stack_size(LANE_STACK_BYTES)
    threading.Thread(target=host.starter.serve, name="starter", daemon=True).start()
    for step in steps:
        if step.action == "listen":
            host.listeners[step.index] = queue.SimpleQueue()
            threading.Thread(target=host.accept_loop, args=(host.listeners[step.index],), daemon=True).start()
    lanes = [threading.Thread(target=run_lane, args=(lane, host, notes), name=f"lane {name}", daemon=True)
             for name, lane in lanes_of(steps).items()]
    for lane in lanes:
        lane.start()
    return lanes


def _warm_connect() -> None:
    """One throw-away connect on loopback before "ready". The kernel's first connect that picks
    its own port fills a 256 KiB table of random port offsets (table_perturb in
    __inet_hash_connect, once per boot): 6-9 ms of guest time on the VM's emulated CPU, which made
    the first connect of a run send its SYN that late (close_in_syn_sent: connect "returned" after
    8 ms; many_connections: the first SYN 6.4 ms after its at:). Refused at once (nothing listens
    on port 9 of lo), it leaves no socket behind."""
    probe = socket.socket()
    try:
        probe.setblocking(False)
        probe.connect_ex(("127.0.0.1", 9))
    except OSError:
        pass
    finally:
        probe.close()


def file_mappings(maps: str) -> list[tuple[int, int]]:
    """The address ranges of /proc/self/maps (`maps`) that a file backs (code, libraries, their
    data): the pages a fault would read from the file system."""
    ranges = []
    for line in maps.splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5].startswith("/"):
            start, end = (int(x, 16) for x in fields[0].split("-"))
            ranges.append((start, end))
    return ranges


def _stay_in_memory() -> None:
    """Lock every file-backed page this agent has mapped into RAM before it says ready. In the VM
    a page fault served from the host's file system over 9p is idle time, which the virtual clock
    skips: an agent faulting a page between reading t0 and its first step started it hundreds of
    ms late (measured: a cold 9p stat cost 15-43 ms of guest time). Anonymous memory (the heap,
    the lanes' stacks) faults without I/O, and is left out: the agent is forked from the runner,
    and locking its heap copied every page of it (mlockall; stale_syn's agents phase, two agents,
    2.8 s with it, 2.0 s without, under emulation). Best effort: without the privilege it only loses that guarantee."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mlock.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return
    for start, end in file_mappings(maps):
        libc.mlock(start, end - start)


def main() -> None:
    # A lane woken while another holds the GIL waits up to this long for it (default 5 ms): on
    # the VM's virtual clock that is 5 ms of a step's start; 0.5 ms bounds it.
    sys.setswitchinterval(0.0005)
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
    host = Host(plan.get("host", ""), record)
    notes = SamplerNotes()
    _warm_connect()
    lanes = start_threads(steps, host, notes)
    _stay_in_memory()
    print("ready", flush=True)
    host.t0 = float(sys.stdin.readline())
    host.deadline = host.t0 + plan["duration"]
    for step in steps:
        if step.at is not None:
            notes.at(host.t0 + step.at)
    host.go.set()
    for lane in lanes:
        lane.join(max(0.0, host.deadline + LANE_GRACE_S - time.time()))
    with host.changed:
        still = list(host.current.values())
        host.current.clear()
    for entry in still:     # a call the deadline could not bound (a lingering close): logged, not lost
        entry.result, entry.blocked, entry.end = BLOCKED, True, time.time()
        host.record(entry)
    if host.crashed:
        raise host.crashed[0]
    record_open_sockets(host)
    print("done", flush=True)
    sys.stdin.readline()   # hold every socket open until the driver has stopped the recorders


if __name__ == "__main__":
    main()
