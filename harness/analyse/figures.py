"""A connection's figures (snd_nxt, snd_una, rcv_nxt, isn, peer_isn, last window and TSval per
side) as a capture point sees them, and the fields of an injected segment computed from them.

Pure: the injector (harness.lab.injector) feeds it live frames from the switch port facing the
receiver; the unit tests feed it a recorded pcap. Figures are those of what passed that port, so a
side's snd_nxt is what its peer could have received by then, not what its own stack has queued."""
from __future__ import annotations

from dataclasses import dataclass, field

from harness.analyse.segments import Segment
from harness.model import Event, Experiment, InjectSpec, NetworkStep, Step

MOD = 2**32


def after(a: int, b: int) -> bool:
    """Sequence number a is later than b (RFC 1982 serial arithmetic, as the kernel's after())."""
    return 0 < (a - b) % MOD < 2**31


@dataclass
class Side:
    """One end of a connection as seen at the capture point."""
    ip: str
    port: int
    isn: int | None = None
    snd_nxt: int | None = None      # highest seq + len (+1 for SYN and FIN) it sent
    snd_una: int | None = None      # highest ack it received
    window: int | None = None       # the window field of the last segment it sent
    tsval: int | None = None        # the TSval of the last segment it sent that had one
    last: Segment | None = None     # the last segment it sent...
    raw_ip: bytes | None = None     # ...its IP header and first 8 bytes of TCP (what an ICMP error quotes)

    @property
    def end(self) -> tuple[str, int]:
        return self.ip, self.port


@dataclass
class Connection:
    """One incarnation of a four-tuple: from a SYN with a new ISN (or the first segment seen)."""
    client: Side
    server: Side

    def side(self, end: tuple[str, int]) -> Side:
        return self.client if self.client.end == end else self.server

    def peer(self, side: Side) -> Side:
        return self.server if side is self.client else self.client

    def figure(self, side: Side, name: str) -> int | None:
        """snd_nxt | snd_una | rcv_nxt | isn | peer_isn of `side`."""
        peer = self.peer(side)
        return {"snd_nxt": side.snd_nxt, "snd_una": side.snd_una, "rcv_nxt": peer.snd_nxt, "isn": side.isn,
                "peer_isn": peer.isn}[name]


@dataclass(frozen=True)
class ConnRef:
    """How a named socket's connection is found among those seen: the `nth` connection (in order
    of their first SYN) from `client_ip` (None: any host) to server_ip:port; the socket is the
    client's end or the server's (`own`)."""
    name: str
    client_ip: str | None
    server_ip: str
    port: int
    nth: int
    own: str                    # client | server


def _later(a: int | None, b: int) -> int:
    return b if a is None or after(b, a) else a


@dataclass
class FigureTracker:
    """Every connection seen so far, in order of appearance, with its figures."""
    connections: list[Connection] = field(default_factory=list)

    def feed(self, seg: Segment, raw_ip: bytes | None = None) -> Connection:
        """Take one segment (and its IP header + 8 bytes, kept for ICMP quotes); its connection."""
        conn = self._of(seg)
        side, peer = conn.side((seg.src, seg.sport)), conn.side((seg.dst, seg.dport))
        if "S" in seg.flags:
            side.isn = seg.seq
        side.snd_nxt = _later(side.snd_nxt, (seg.seq + seg.length + ("S" in seg.flags) + ("F" in seg.flags)) % MOD)
        if "A" in seg.flags:
            peer.snd_una = _later(peer.snd_una, seg.ack)
        side.window = seg.window
        side.tsval = seg.tsval if seg.tsval is not None else side.tsval
        side.last, side.raw_ip = seg, raw_ip if raw_ip is not None else side.raw_ip
        return conn

    def _of(self, seg: Segment) -> Connection:
        src, dst = (seg.src, seg.sport), (seg.dst, seg.dport)
        conn = next((c for c in reversed(self.connections) if {c.client.end, c.server.end} == {src, dst}), None)
        new_syn = seg.flags.replace("P", "") == "S" and (conn is None or conn.side(src) is not conn.client
                                                         or conn.client.isn != seg.seq)
        if conn is None or new_syn:
            conn = Connection(Side(*src), Side(*dst))
            self.connections.append(conn)
        return conn

    def find(self, ref: ConnRef) -> Connection | None:
        """The connection `ref` names, if seen yet."""
        seen = [c for c in self.connections if c.server.end == (ref.server_ip, ref.port)
                and (ref.client_ip is None or c.client.ip == ref.client_ip)]
        return seen[ref.nth - 1] if len(seen) >= ref.nth else None

    def own_side(self, ref: ConnRef) -> tuple[Connection, Side] | None:
        conn = self.find(ref)
        return None if conn is None else (conn, conn.client if ref.own == "client" else conn.server)


def conn_refs(experiment: Experiment, ips: dict[str, str]) -> dict[str, ConnRef]:
    """ConnRef of every socket a connect or accept step makes, and of every automatic name an
    inject step uses (HOST:PORT#N: the listener's Nth connection)."""
    steps = experiment.steps
    refs: dict[str, ConnRef] = {}
    for step in steps:
        if step.action == "connect":
            same = [s for s in steps if s.action == "connect" and (s.host, s.peer, s.port) == (step.host, step.peer, step.port)]
            refs[step.socket] = ConnRef(step.socket, ips[step.host], ips[step.peer], step.port,
                                        same.index(step) + 1, "client")
        elif step.action == "accept":
            same = [s for s in steps if s.action == "accept" and (s.host, s.port) == (step.host, step.port)]
            refs[step.socket] = ConnRef(step.socket, None, ips[step.host], step.port, same.index(step) + 1, "server")
    for name in _inject_names(experiment.network):
        if name not in refs and ":" in name:
            host, rest = name.split(":")
            port, nth = (rest.split("#") + ["1"])[:2]
            refs[name] = ConnRef(name, None, ips[host], int(port), int(nth), "server")
    return refs


def _inject_names(network: tuple[NetworkStep, ...]) -> list[str]:
    names = []
    for step in network:
        if step.inject is not None:
            spec = step.inject
            names += [n for n in (spec.socket, spec.seq and spec.seq.socket, spec.ack and spec.ack.socket,
                                  spec.after and spec.after.host) if n]
    return names


class Unseen(Exception):
    """A figure the injection needs was not seen at the switch by its moment: nothing is sent."""


def _value(tracker: FigureTracker, refs: dict[str, ConnRef], term, what: str) -> int:
    if term.socket is None:
        return term.offset % MOD
    found = tracker.own_side(refs[term.socket])
    if found is None:
        raise Unseen(f"{what} {term.text!r}: no segment of {term.socket}'s connection was seen yet")
    conn, side = found
    value = conn.figure(side, term.figure)
    if value is None:
        raise Unseen(f"{what} {term.text!r}: {term.socket}'s {term.figure} was not seen yet")
    return (value + term.offset) % MOD


def injected_fields(spec: InjectSpec, from_ip: str, to_ip: str, refs: dict[str, ConnRef],
                    tracker: FigureTracker) -> dict:
    """The fields of the segment (or ICMP error) to send now, from the figures seen so far;
    Unseen when one it needs was not seen. Keys: src, sport, dst, dport, ttl, and for TCP flags,
    seq, ack, window, len, options ([name, value]: ts as [TSval, TSecr]); for ICMP icmp, mtu,
    quoted (the quoted segment's IP header + 8 bytes, hex)."""
    conn = src = dst = None
    if spec.socket is not None:
        found = tracker.find(refs[spec.socket])
        if found is None:
            raise Unseen(f"no segment of {spec.socket}'s connection was seen yet")
        conn = found
        src = conn.client if conn.client.ip == from_ip else conn.server
        dst = conn.peer(src)
    out = {"src": from_ip, "sport": spec.sport or src.port, "dst": to_ip, "dport": spec.dport or dst.port,
           "ttl": spec.ttl}
    if spec.icmp:
        if dst.raw_ip is None:
            raise Unseen(f"{spec.socket}: no segment from {to_ip} was seen yet to quote")
        return out | {"icmp": spec.icmp, "mtu": spec.mtu, "quoted": dst.raw_ip.hex()}
    seq = _value(tracker, refs, spec.seq, "seq:") if spec.seq else _figure(conn, src, "snd_nxt", "seq")
    ack = (_value(tracker, refs, spec.ack, "ack:") if spec.ack else
           _figure(conn, src, "rcv_nxt", "ack") if "A" in spec.flags else 0)
    window = spec.window if spec.window is not None else src.window if src and src.window is not None else 65535
    return out | {"flags": spec.flags, "seq": seq, "ack": ack, "window": window, "len": spec.length,
                  "options": _options(spec, src, dst)}


def _figure(conn: Connection | None, side: Side | None, name: str, key: str) -> int:
    value = conn.figure(side, name) if conn else None
    if value is None:
        raise Unseen(f"{key}: the sender side's {name} was not seen yet (give {key}: as a number)")
    return value


def _options(spec: InjectSpec, src: Side | None, dst: Side | None) -> list:
    out = []
    for name, value in spec.options:
        if name == "ts":
            out.append([name, [_tsval(value, src), dst.tsval if dst and dst.tsval is not None else 0]])
        else:
            out.append([name, value])
    return out


def _tsval(value: int | str | None, src: Side | None) -> int:
    """options ts: None (the sender side's last TSval), an int (that TSval), "+N"/"-N" (the last moved by N)."""
    if isinstance(value, int):
        return value % MOD
    if src is None or src.tsval is None:
        raise Unseen("options ts: the sender side sent no TSval yet (timestamps off?)")
    return (src.tsval + int(value or 0)) % MOD


@dataclass
class EventWatch:
    """An `after:` event as the switch port facing its host sees it: the Nth segment leaving that
    port to the host (or to the named socket's end) with at least the event's flags."""
    event: Event
    host_ip: str
    ref: ConnRef | None = None     # the event names a socket: only segments to its end count
    count: int = 0

    def seen(self, seg: Segment, tracker: FigureTracker) -> bool:
        """Count `seg` (a frame leaving the port facing the host); True when it is the event."""
        if seg.dst != self.host_ip or not set(self.event.what) <= set(seg.flags):
            return False
        if self.ref is not None:
            found = tracker.own_side(self.ref)
            if found is None or found[1].end != (seg.dst, seg.dport):
                return False
        self.count += 1
        return self.count == self.event.nth


def ref_of_host(experiment: Experiment, subject: str) -> str:
    """The host a subject (host or socket name) is on."""
    if subject in experiment.topology.hosts:
        return subject
    step: Step | None = next((s for s in experiment.steps if s.socket == subject and s.action in ("connect", "accept")), None)
    return step.host if step else subject.split(":")[0]
