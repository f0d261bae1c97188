"""The kernel's own account of a run (trace/kernel.trace, see record.tracer) -> each full socket's
state transitions, the retransmissions and the resets, with kernel timestamps on the run's clock.

What the tracepoints show and what they cannot (6.1 and 6.12 alike unless said):
- sock:inet_sock_set_state: every state change of a full socket. Not request sockets (the
  listener's SYN-RECV entries: tcp_conn_request makes them without a state change) and not
  TIME-WAIT sockets: a socket entering TIME-WAIT (or FIN-WAIT-2 as an orphan) is seen going to
  CLOSE when tcp_time_wait() replaces it, and the TIME-WAIT socket's own changes and end are not
  traced. Those stay with the sampler.
- The connecting socket's CLOSE -> SYN-SENT carries source port 0 (tcp_v4_connect picks the port
  after the change): its port is that of the SYN the same call sent (the kernel-time capture,
  first_syns); without one, it is the socket whose next event leaves SYN-SENT from the same
  address to the same peer. An accepted socket's LISTEN -> SYN-RECV (made when the final ACK arrives) carries
  zero addresses on 6.1 and 6.12 (6.18 prints them): it is the socket whose next event leaves
  SYN-RECV on the same port.
- tcp:tcp_retransmit_skb (full sockets; not which segment: the kernel capture has that),
  tcp:tcp_retransmit_synack (a request socket's SYN+ACK), tcp:tcp_send_reset (6.1: only resets a
  full socket sends, printed like a retransmission; 6.12: every reset, src=/dest=, with a reason),
  tcp:tcp_receive_reset and tcp:tcp_destroy_sock (with the socket's cookie, = SO_COOKIE and the
  sampler's cookie column).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

Address = tuple[str, int]

STATE_NAMES = {"TCP_ESTABLISHED": "ESTAB", "TCP_SYN_SENT": "SYN-SENT", "TCP_SYN_RECV": "SYN-RECV",
               "TCP_FIN_WAIT1": "FIN-WAIT-1", "TCP_FIN_WAIT2": "FIN-WAIT-2", "TCP_TIME_WAIT": "TIME-WAIT",
               "TCP_CLOSE": "CLOSED", "TCP_CLOSE_WAIT": "CLOSE-WAIT", "TCP_LAST_ACK": "LAST-ACK",
               "TCP_LISTEN": "LISTEN", "TCP_CLOSING": "CLOSING", "TCP_NEW_SYN_RECV": "SYN-RECV"}
NO_ADDRESS = "0.0.0.0"
SYN_AFTER_CONNECT_S = 0.05    # a connect's SYN leaves within this of its CLOSE -> SYN-SENT (measured: 7-29 µs)

_LINE = re.compile(r"^\s*(?P<task>.*?)-(?P<pid>\d+)\s+(?:\(\s*[-\d]+\)\s+)?\[(?P<cpu>\d+)\]\s+(?:\S{4,6}\s+)?"
                   r"(?P<ts>\d+\.\d+): (?P<event>\w+): (?P<body>.*)$")


@dataclass(frozen=True)
class TraceEvent:
    """One line of the trace: when (epoch seconds), which tracepoint, its printed fields."""
    t: float
    name: str
    fields: dict[str, str]
    task: str = ""
    cpu: int = 0


def parse_trace(text: str, offset_s: float = 0.0) -> list[TraceEvent]:
    """The events of a tracefs `trace` file, in time order; `offset_s` is the trace clock minus
    CLOCK_REALTIME when tracing began (trace/kernel.json), subtracted from every stamp."""
    events = []
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        m = _LINE.match(line)
        if m is None:
            continue
        fields = dict(pair.split("=", 1) for pair in m["body"].split() if "=" in pair)
        events.append(TraceEvent(float(m["ts"]) - offset_s, m["event"], fields, m["task"], int(m["cpu"])))
    events.sort(key=lambda e: e.t)
    return events


@dataclass(frozen=True)
class Transition:
    t: float
    old: str
    new: str


@dataclass
class TracedSocket:
    """One full socket's life as traced: its four-tuple (peer None: a listener), its transitions,
    and its cookie where an event printed it (destroy, reset received)."""
    local: Address
    peer: Address | None
    transitions: list[Transition] = field(default_factory=list)
    cookie: int | None = None

    @property
    def start(self) -> float:
        return self.transitions[0].t

    @property
    def end(self) -> float | None:
        """When it closed (its last change was to CLOSED), else None (alive when tracing stopped)."""
        last = self.transitions[-1]
        return last.t if last.new == "CLOSED" else None

    def state_at(self, t: float) -> str | None:
        """Its state at `t` (None: before it existed; CLOSED after it closed)."""
        state = None
        for tr in self.transitions:
            if tr.t > t:
                break
            state = tr.new
        return state


@dataclass(frozen=True)
class SocketEvent:
    """A retransmission or a reset, on the four-tuple as seen from `local` (the host it happened at)."""
    t: float
    kind: str                 # retransmit | synack-retransmit | reset-sent | reset-received
    local: Address
    peer: Address
    state: str | None = None  # the socket's state then, where the tracepoint prints it
    reason: str | None = None  # why a reset was sent (6.10+)


@dataclass
class KernelTrace:
    """Everything the analysis uses of one run's trace. `events`: which tracepoints were on."""
    sockets: list[TracedSocket]
    events: list[SocketEvent]
    enabled: tuple[str, ...] = ()
    kernel: str = ""

    def sockets_of(self, local: Address, peer: Address | None) -> list[TracedSocket]:
        """The full sockets of a four-tuple (peer None: the listeners on `local`), in order."""
        return [s for s in self.sockets if s.local == tuple(local) and (s.peer == (tuple(peer) if peer else None))]

    def listeners_on(self, local: Address) -> list[TracedSocket]:
        """The listening sockets on `local`'s port, bound to its address or to every address."""
        return [s for s in self.sockets if s.peer is None and s.transitions[0].new == "LISTEN"
                and s.local[1] == local[1] and s.local[0] in (local[0], NO_ADDRESS)]

    def of(self, kind: str, local: Address, peer: Address | None = None) -> list[SocketEvent]:
        return [e for e in self.events if e.kind == kind and e.local == tuple(local)
                and (peer is None or e.peer == tuple(peer))]

    def has(self, tracepoint: str) -> bool:
        return any(e.endswith(tracepoint) for e in self.enabled)


def _address(fields: dict[str, str], ip: str, port: str) -> Address:
    return fields.get(ip, NO_ADDRESS), int(fields.get(port, "0"))


def _endpoint(text: str) -> Address:
    """6.10+'s src=/dest= (a %pISpc address: 10.0.0.1:5001)."""
    ip, _, port = text.rpartition(":")
    return ip, int(port or 0)


class _SocketBuilder:
    """Follows inet_sock_set_state events into sockets (see the module's notes on ports and peers)."""

    def __init__(self, syns: dict[tuple[str, Address], list[tuple[float, int]]] | None = None) -> None:
        self.syns = {key: list(found) for key, found in (syns or {}).items()}
        self.sockets: list[TracedSocket] = []
        self.open: dict[tuple[Address, Address | None], TracedSocket] = {}
        self.connecting: list[tuple[str, Address, TracedSocket]] = []   # (source ip, peer, socket) with port 0
        self.children: list[tuple[Address, TracedSocket]] = []          # (listening address, socket), peer zero

    def add(self, e: TraceEvent) -> None:
        local, peer = _address(e.fields, "saddr", "sport"), _address(e.fields, "daddr", "dport")
        old, new = STATE_NAMES.get(e.fields.get("oldstate", ""), "?"), STATE_NAMES.get(e.fields.get("newstate", ""), "?")
        tr = Transition(e.t, old, new)
        if new == "LISTEN" or old == "LISTEN" and new == "CLOSED":
            self._step((local, None), tr, fresh=new == "LISTEN")
        elif old == "CLOSED" and new == "SYN-SENT" and local[1] == 0:
            port = self._syn_port(local[0], peer, e.t)
            if port is not None:
                self._step(((local[0], port), peer), tr, fresh=True)
                return
            sock = TracedSocket(local, peer, [tr])
            self.sockets.append(sock)
            self.connecting.append((local[0], peer, sock))
        elif old == "LISTEN" and new == "SYN-RECV" and peer[0] == NO_ADDRESS:
            sock = TracedSocket(local, None, [tr])
            self.sockets.append(sock)
            self.children.append((local, sock))
        elif (local, peer) not in self.open and (sock := self._claim(local, peer, old)) is not None:
            sock.local, sock.peer = local, peer
            self.open[(local, peer)] = sock
            self._step((local, peer), tr, fresh=False)
        else:
            self._step((local, peer), tr, fresh=old in ("CLOSED", "LISTEN"))

    def _syn_port(self, ip: str, peer: Address, t: float) -> int | None:
        """The port of the SYN this connect sent: the first one from `ip` to `peer` the kernel-time
        capture has within SYN_AFTER_CONNECT_S after the change (connect() sends it in the same
        call, microseconds later), each SYN taken once. None: no capture, or no SYN (then the
        socket is the one whose next change leaves SYN-SENT, in order: _claim)."""
        found = self.syns.get((ip, peer), [])
        for i, (sent, port) in enumerate(found):
            if t - 0.001 <= sent <= t + SYN_AFTER_CONNECT_S:
                return found.pop(i)[1]
        return None

    def _claim(self, local: Address, peer: Address, old: str) -> TracedSocket | None:
        """The port-0 connect or zero-peer child this event is the next change of."""
        if old == "SYN-SENT":
            for i, (ip, to, sock) in enumerate(self.connecting):
                if ip == local[0] and to == peer:
                    return self.connecting.pop(i)[2]
        if old == "SYN-RECV":
            for i, (where, sock) in enumerate(self.children):
                if where[1] == local[1] and where[0] in (local[0], NO_ADDRESS):
                    return self.children.pop(i)[1]
        return None

    def _step(self, key: tuple[Address, Address | None], tr: Transition, fresh: bool) -> None:
        sock = self.open.get(key)
        if sock is None or fresh:
            sock = TracedSocket(key[0], key[1], [])
            self.sockets.append(sock)
            self.open[key] = sock
        sock.transitions.append(tr)
        if tr.new == "CLOSED":
            del self.open[key]

    def cookie(self, local: Address, peer: Address, cookie: int) -> None:
        """A destroy or reset event's cookie, for the latest socket with its local address and peer
        (a listener's peer is 0.0.0.0:0; a socket aborted with linger 0 is destroyed with its peer's
        port already 0), else for a connect still known only by its addresses (a RST can end it
        before its port is traced)."""
        def same(sock: TracedSocket) -> bool:
            if sock.peer is None:
                return peer == (NO_ADDRESS, 0)
            return sock.peer == peer or peer[1] == 0 and peer[0] == sock.peer[0]
        for sock in reversed(self.sockets):
            if sock.local == local and same(sock):
                if sock.cookie is None:
                    sock.cookie = cookie
                return
        for ip, to, sock in self.connecting:
            if ip == local[0] and to == peer and sock.cookie is None:
                sock.cookie = cookie
                return


def kernel_trace(events: list[TraceEvent], enabled: tuple[str, ...] = (), kernel: str = "",
                 syns: dict[tuple[str, Address], list[tuple[float, int]]] | None = None) -> KernelTrace:
    """Sockets and socket events from the parsed trace. `syns`: the first SYNs the hosts' kernel-time
    captures hold, by (source address, peer): (time, source port), to name each connect's port."""
    builder, out = _SocketBuilder(syns), []
    for e in events:
        f = e.fields
        if e.name == "inet_sock_set_state":
            if f.get("protocol", "IPPROTO_TCP") == "IPPROTO_TCP" and f.get("family", "AF_INET") == "AF_INET":
                builder.add(e)
        elif e.name in ("tcp_retransmit_skb", "tcp_retransmit_synack"):
            kind = "retransmit" if e.name == "tcp_retransmit_skb" else "synack-retransmit"
            out.append(SocketEvent(e.t, kind, _address(f, "saddr", "sport"), _address(f, "daddr", "dport"),
                                   STATE_NAMES.get(f.get("state", ""))))
        elif e.name == "tcp_send_reset":
            local = _endpoint(f["src"]) if "src" in f else _address(f, "saddr", "sport")
            peer = _endpoint(f["dest"]) if "dest" in f else _address(f, "daddr", "dport")
            out.append(SocketEvent(e.t, "reset-sent", local, peer, STATE_NAMES.get(f.get("state", "")), f.get("reason")))
        elif e.name in ("tcp_receive_reset", "tcp_destroy_sock"):
            local, peer = _address(f, "saddr", "sport"), _address(f, "daddr", "dport")
            if "sock_cookie" in f:
                builder.cookie(local, peer, int(f["sock_cookie"], 16))
            if e.name == "tcp_receive_reset":
                out.append(SocketEvent(e.t, "reset-received", local, peer))
    sockets = [s for s in builder.sockets if s.transitions]
    return KernelTrace(sockets, out, tuple(enabled), kernel)


def read_kernel_trace(run_dir: Path, syns: dict[tuple[str, Address], list[tuple[float, int]]] | None = None) -> KernelTrace | None:
    """The run's trace (None: the run has none — recorded before tracing, or a kernel without it)."""
    meta_path, trace_path = run_dir / "trace" / "kernel.json", run_dir / "trace" / "kernel.trace"
    if not meta_path.exists() or not trace_path.exists():
        return None
    meta = json.loads(meta_path.read_text())
    events = parse_trace(trace_path.read_text(errors="replace"), meta.get("offset_s") or 0.0)
    return kernel_trace(events, tuple(meta.get("enabled", ())), meta.get("kernel", ""), syns)


def first_syns(segments) -> dict[tuple[str, Address], list[tuple[float, int]]]:
    """Each connection's first SYN in kernel-time captures (segments with .t .src .sport .dst
    .dport .flags), by (source address, peer): [(time, source port)], in time order."""
    out: dict[tuple[str, Address], list[tuple[float, int]]] = {}
    seen = set()
    for seg in sorted(segments, key=lambda s: s.t):
        key = (seg.src, seg.sport, seg.dst, seg.dport)
        if seg.flags == "S" and key not in seen:
            seen.add(key)
            out.setdefault((seg.src, (seg.dst, seg.dport)), []).append((seg.t, seg.sport))
    return out
