"""`network: inject` made real: one process in the root namespace (where the Linux bridge's ports
live) with an AF_PACKET socket on each switch port it needs. It follows every connection on the
port facing each step's receiver (harness.analyse.figures), and at the step's moment (t0 + at:,
or an `after:` event seen on a port plus wait:) builds the segment or ICMP error with dpkt and
sends it out of that port: through the port's qdisc, so it crosses the receiver's link with its
delay, like a segment the bridge forwards. One JSON line per injection goes to
<run>/network/inject.jsonl (harness.analyse.injected checks it against the port's capture).

The socket that sends is the one that sniffs the port: the kernel does not loop a packet socket's
own sends back to it (dev_queue_xmit_nit skips the sending socket), so an injected segment never
moves the figures; a copy seen anyway is skipped by its fields.

At a router (a Linux namespace with ip_forward=1) the socket is opened in the router's namespace
on its port facing the receiver, and the frame leaves as the router would forward it: the router
port's MAC as source, the next hop's (the receiver's, or the next router's) as destination, and
the step's ttl: less one per router the segment has crossed, this one included (ttl: is the TTL
as the sender sends it; router_link gives the MACs from the router's own routes and neighbours).
One process serves every node: each socket is opened in its port's namespace and keeps it.

A forked process, not a thread of the runner: see PROCESS_NOTE for what was measured on the VM."""
from __future__ import annotations

import json
import os
import select
import signal
import socket
import struct
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.dpkt_parts import dpkt

from harness.analyse.figures import ConnRef, EventWatch, FigureTracker, Unseen, injected_fields
from harness.analyse.segments import Segment
from harness.errors import RunFailed
from harness.lab.namespaces import Forked, enter_netns
from harness.lab.packet_rules import route_next_hop
from harness.model import NetworkStep
from harness.runlog import node_pexec
from harness.record.sampler import NOTE_ADDRESS, tcp_packet_socket

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SO_TIMESTAMPNS = 35
SNAP = 2048
EARLY_S = 0.003            # a frame is built this long before its moment, and sent at it
RT_PRIORITY = 10
RCVBUF = 4 << 20
LOG_NAME = "network/inject.jsonl"
ICMP_CODES = {"net-unreachable": dpkt.icmp.ICMP_UNREACH_NET, "host-unreachable": dpkt.icmp.ICMP_UNREACH_HOST,
              "port-unreachable": dpkt.icmp.ICMP_UNREACH_PORT, "frag-needed": dpkt.icmp.ICMP_UNREACH_NEEDFRAG}
_TCP_FLAGS = {"F": dpkt.tcp.TH_FIN, "S": dpkt.tcp.TH_SYN, "R": dpkt.tcp.TH_RST, "P": dpkt.tcp.TH_PUSH,
              "A": dpkt.tcp.TH_ACK, "U": dpkt.tcp.TH_URG}


@dataclass(frozen=True)
class Injection:
    """One inject step as the injector carries it out: where it sends, as whom, and when."""
    step: NetworkStep
    port: str                   # the switch (router) port facing the receiver: sniffed, and sent out of
    from_ip: str
    to_ip: str
    src_mac: str                # the sender host's interface (at a router: the router's port)
    dst_mac: str                # the receiver host's interface (at a router: the next hop's)
    watch_port: str | None = None   # after: the port facing the event's host
    watch_ip: str | None = None     # after: that host's address
    watch_ref: ConnRef | None = None   # after: the socket the event names (None: a host)
    netns_pid: int | None = None    # a router's namespace (a process in it) its ports live in; None: the root one
    ttl_drop: int = 0               # routers crossed up to the port, this one included: TTL less this


@dataclass(frozen=True)
class InjectorPlan:
    injections: tuple[Injection, ...]
    refs: dict[str, ConnRef]
    log_path: str
    note_pid: int | None = None         # a host's namespace, where the state sampler takes notes


# -- frames (pure) -------------------------------------------------------------------------------

def tcp_options(options: list) -> bytes:
    """The options field: each option as its kind puts it, padded with NOPs to 32-bit words."""
    out = b""
    for name, value in options:
        if name == "mss":
            out += struct.pack(">BBH", 2, 4, value)
        elif name == "wscale":
            out += struct.pack(">BBB", 3, 3, value)
        elif name == "sackok":
            out += struct.pack(">BB", 4, 2)
        elif name == "ts":
            out += struct.pack(">BBBBII", 1, 1, 8, 10, *value)
    return out + b"\x01" * (-len(out) % 4)


def routed_ttl(ttl: int, ttl_drop: int) -> int:
    """The TTL a segment sent with `ttl` has after `ttl_drop` routers (never below 0)."""
    return max(0, ttl - ttl_drop)


def neighbour_mac(neigh_json: str, address: str) -> str | None:
    """The MAC `ip -j neigh show to ADDRESS dev PORT` gives, or None when it has none (pure)."""
    for entry in json.loads(neigh_json or "[]"):
        if entry.get("dst") == address and entry.get("lladdr") and "FAILED" not in entry.get("state", []):
            return entry["lladdr"]
    return None


def router_link(router, port: str, dst_ip: str) -> tuple[str, str]:
    """(source MAC, destination MAC) of a frame a router sends out of `port` towards `dst_ip`: its
    port's MAC and its next hop's, from its own routes and neighbour table (pinged once from the
    router if the neighbour is not known yet). RunFailed when the route leaves by another port."""
    def run(args: list[str]) -> str:
        out, err, code = node_pexec(router, args)
        if code:
            raise RunFailed(f"inject at {getattr(router, 'name', router)}: `{' '.join(args)}` failed: {err.strip()}")
        return out
    hop, dev = route_next_hop(run(["ip", "-j", "route", "get", dst_ip]), dst_ip)
    if dev != port:
        raise RunFailed(f"inject at {getattr(router, 'name', router)}: it sends {dst_ip} out of {dev}, not {port}")
    src_mac = json.loads(run(["ip", "-j", "link", "show", "dev", port]))[0]["address"]
    dst_mac = neighbour_mac(run(["ip", "-j", "neigh", "show", "to", hop, "dev", port]), hop)
    if dst_mac is None:
        node_pexec(router, ["ping", "-c", "1", "-W", "1", "-I", port, hop])
        dst_mac = neighbour_mac(run(["ip", "-j", "neigh", "show", "to", hop, "dev", port]), hop)
    if dst_mac is None:
        raise RunFailed(f"inject at {getattr(router, 'name', router)}: no MAC known for its next hop {hop} on {port}")
    return src_mac, dst_mac


def build_frame(fields: dict, src_mac: str, dst_mac: str, payload: bytes = b"") -> bytes:
    """An Ethernet frame carrying the segment or ICMP error `fields` describes (as
    figures.injected_fields gives them); IP and TCP/ICMP checksums computed."""
    src, dst = socket.inet_aton(fields["src"]), socket.inet_aton(fields["dst"])
    if "icmp" in fields:
        quoted = bytes.fromhex(fields["quoted"])
        body = dpkt.icmp.ICMP(type=dpkt.icmp.ICMP_UNREACH, code=ICMP_CODES[fields["icmp"]],
                              data=dpkt.icmp.ICMP.Unreach(mtu=fields.get("mtu") or 0, data=quoted))
        ip = dpkt.ip.IP(src=src, dst=dst, p=dpkt.ip.IP_PROTO_ICMP, ttl=fields["ttl"], data=body)
    else:
        opts = tcp_options(fields["options"])
        flags = 0
        for letter in fields["flags"]:
            flags |= _TCP_FLAGS[letter]
        payload = payload or bytes(fields["len"])
        tcp = dpkt.tcp.TCP(sport=fields["sport"], dport=fields["dport"], seq=fields["seq"], ack=fields["ack"],
                           flags=flags, win=fields["window"], off=5 + len(opts) // 4, opts=opts, data=payload)
        ip = dpkt.ip.IP(src=src, dst=dst, p=dpkt.ip.IP_PROTO_TCP, ttl=fields["ttl"], data=tcp)
        ip.df = 1
    eth = dpkt.ethernet.Ethernet(src=bytes.fromhex(src_mac.replace(":", "")),
                                 dst=bytes.fromhex(dst_mac.replace(":", "")), type=dpkt.ethernet.ETH_TYPE_IP, data=ip)
    return bytes(eth)


# flag bits in the order Segment.flags writes them (harness.analyse.segments: SA, FA, RA, PA)
_FLAG_ORDER = ((0x02, "S"), (0x01, "F"), (0x04, "R"), (0x08, "P"), (0x10, "A"), (0x20, "U"))


def live_segment(t: float, buf: bytes) -> Segment | None:
    """The segment in a live frame, read with struct: what the figures and events need (no option
    list but the timestamps). dpkt's parse (frame_segment) cost the injector so much of the VM's
    emulated CPU during an 8 MB transfer that it reacted to events 3-16 ms late (measured)."""
    if len(buf) < 54 or buf[12:14] != b"\x08\x00" or buf[23] != 6:
        return None
    ihl = (buf[14] & 0x0F) * 4
    at = 14 + ihl
    sport, dport, seq, ack, bits, window = struct.unpack_from(">HHIIHH", buf, at)
    doff = (bits >> 12) * 4
    total = int.from_bytes(buf[16:18], "big")
    length = max(0, total - ihl - doff) if total else max(0, len(buf) - at - doff)
    tsval = tsecr = None
    opts, i = buf[at + 20:at + doff], 0
    while i < len(opts) and opts[i] != 0:
        if opts[i] == 1:
            i += 1
            continue
        if i + 1 >= len(opts) or opts[i + 1] < 2:
            break
        if opts[i] == 8 and opts[i + 1] == 10 and i + 10 <= len(opts):
            tsval, tsecr = struct.unpack_from(">II", opts, i + 2)
        i += opts[i + 1]
    return Segment(t, socket.inet_ntoa(buf[26:30]), sport, socket.inet_ntoa(buf[30:34]), dport,
                   "".join(letter for bit, letter in _FLAG_ORDER if bits & bit), seq, ack, length, tsval, tsecr,
                   window, (("ts", 1),) if tsval is not None else (), buf[22])


def sent_key(fields: dict) -> tuple:
    """What identifies an injected segment among captured ones (harness.analyse.injected too)."""
    return (fields["src"], fields["sport"], fields["dst"], fields["dport"], fields.get("flags"), fields.get("seq"),
            fields.get("ack"), fields.get("len"))


# -- the process ---------------------------------------------------------------------------------

@dataclass
class _Pending:
    job: Injection
    due: float | None = None
    watch: EventWatch | None = None
    done: bool = False
    prepared: int | None = None        # frames followed when its frame was built (None: not yet)
    fields: dict | None = None
    frame: bytes = b""
    error: str | None = None
    noticed: float | None = None       # after: when the injector read the event's frame
    built_at: float = 0.0

    def wake(self) -> float | None:
        """When the loop must next act for it: EARLY_S before its moment to build, then its moment."""
        if self.done or self.due is None:
            return None
        return self.due - EARLY_S if self.prepared is None else self.due


@dataclass
class _Loop:
    plan: InjectorPlan
    socks: dict[str, socket.socket] = field(default_factory=dict)
    tracker: FigureTracker = field(default_factory=FigureTracker)
    pending: list[_Pending] = field(default_factory=list)
    records: list[dict] = field(default_factory=list)
    ours: list[tuple] = field(default_factory=list)
    tracked: set[str] = field(default_factory=set)
    fed: int = 0                       # frames the figures were fed so far
    notes: socket.socket | None = None

    def note(self, when: float) -> None:
        """Tell the state sampler a moment to sample densely around (it wakes on TCP segments it
        sees, but its sample before an injection could be 0.5 s old, and an ICMP error wakes it
        not at all: measured by H5 in the 6.1 VM, a TIME-WAIT ending 266 ms after its last sample)."""
        if self.notes is not None:
            try:
                self.notes.sendto(repr(when).encode(), NOTE_ADDRESS)
            except OSError:
                pass      # no sampler listening: nothing to tell

    def open(self) -> None:
        """A socket on every port an injection sends from or watches, before t0, each opened in its
        port's namespace (a router's, else the root one, where the runner is)."""
        home = here = os.getppid()
        for job in self.plan.injections:
            self.tracked.add(job.port)
            for port in (job.port, job.watch_port):
                if port and port not in self.socks:
                    if (job.netns_pid or home) != here:
                        here = job.netns_pid or home
                        enter_netns(here)
                    sock = tcp_packet_socket()
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
                    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
                    sock.bind((port, ETH_P_ALL))
                    self._read(sock, port, keep=False)      # frames of other interfaces queued before bind
                    self.socks[port] = sock
            watch = EventWatch(job.step.inject.after, job.watch_ip, job.watch_ref) if job.step.inject.after else None
            self.pending.append(_Pending(job, watch=watch))
        if self.plan.note_pid is not None:     # the sampler's note address is in the hosts' namespaces
            enter_netns(self.plan.note_pid)
            self.notes = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            here = None
        if here != home:
            enter_netns(home)                  # back where the runner is: the switch ports' namespace

    def start(self, t0: float) -> None:
        for p in self.pending:
            if p.job.step.at_s is not None:
                p.due = t0 + p.job.step.at_s
                self.note(p.due)

    def _read(self, sock: socket.socket, port: str, keep: bool = True) -> None:
        """Every frame queued on `sock`: figures followed, events watched."""
        while True:
            try:
                buf, anc, _, addr = sock.recvmsg(SNAP, socket.CMSG_SPACE(16), socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            if not keep or addr[0] != port:
                continue
            t = next((s + ns / 1e9 for level, kind, data in anc if kind == SO_TIMESTAMPNS
                      for s, ns in [struct.unpack("=qq", data[:16])]), time.time())
            self._frame(port, t, buf, addr[2] == PACKET_OUTGOING)

    def _frame(self, port: str, t: float, buf: bytes, outgoing: bool) -> None:
        seg = live_segment(t, buf)
        if seg is None:
            return
        if port in self.tracked:
            key = (seg.src, seg.sport, seg.dst, seg.dport, seg.flags, seg.seq, seg.ack, seg.length)
            if key in self.ours:
                self.ours.remove(key)       # our own injection, looped back after all: not the hosts'
                return
            ip = buf[14:]
            self.tracker.feed(seg, ip[:(ip[0] & 0x0F) * 4 + 8])
            self.fed += 1
        for p in self.pending:
            if p.watch and p.due is None and outgoing and p.job.watch_port == port and p.watch.seen(seg, self.tracker):
                p.due, p.noticed = t + p.job.step.inject.wait_s, time.time()
                self.note(p.due)

    def _drain(self) -> None:
        for port, sock in self.socks.items():
            self._read(sock, port)

    def prepare(self, p: _Pending) -> None:
        """Build its frame from the figures as of now (EARLY_S before its moment: building costs
        about a millisecond of the VM's emulated CPU, measured)."""
        self._drain()
        job, spec = p.job, p.job.step.inject
        p.prepared, p.built_at = self.fed, time.time()
        try:
            p.fields, p.error = injected_fields(spec, job.from_ip, job.to_ip, self.plan.refs, self.tracker), None
            p.fields["ttl"] = routed_ttl(p.fields["ttl"], job.ttl_drop)
        except Unseen as why:
            p.fields, p.error = None, str(why)
            return
        p.frame = build_frame(p.fields, job.src_mac, job.dst_mac, (spec.payload or "").encode())

    def fire(self, p: _Pending) -> None:
        """Send one injection now (or record why not); rebuilt first if a frame came between its
        building and its moment (one built after its moment, as for an after: event with no
        wait:, goes as built: rebuilding cost another millisecond, measured)."""
        self._drain()
        if p.prepared != self.fed and p.built_at < p.due:
            self.prepare(p)
        record = {"line": p.job.step.index, "due": p.due, "port": p.job.port}
        if p.noticed is not None:
            record["noticed"] = p.noticed
        p.done = True
        if p.fields is None:
            self.records.append(record | {"sent": None, "error": p.error})
            return
        self.ours.append(sent_key(p.fields))
        before = time.time()
        self.socks[p.job.port].send(p.frame)
        self.records.append(record | {"sent": before, "returned": time.time()} | p.fields)
        self.note(before)

    def run(self, commands) -> None:
        """Until SIGTERM or EOF: wait for t0 on `commands` (stdin), then follow frames and fire each injection at its moment."""
        readers = list(self.socks.values()) + [commands]
        ports = {sock: port for port, sock in self.socks.items()}
        while True:
            wakes = [w for p in self.pending if (w := p.wake()) is not None]
            timeout = max(0.0, min(wakes) - time.time()) if wakes else None
            try:
                ready = select.select(readers, [], [], timeout)[0]
            except InterruptedError:
                continue
            for sock in ready:
                if sock is commands:
                    line = commands.readline()
                    if not line:
                        return
                    self.start(float(line))
                else:
                    self._read(sock, ports[sock])
            for p in self.pending:
                if (wake := p.wake()) is not None and wake <= time.time() and p.prepared is None:
                    self.prepare(p)
                if (wake := p.wake()) is not None and wake <= time.time():
                    self.fire(p)

    def write(self) -> None:
        path = Path(self.plan.log_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w") as out:
            for p in self.pending:        # an injection whose moment never came says so
                if not p.done:
                    self.records.append({"line": p.job.step.index, "due": p.due, "port": p.job.port, "sent": None,
                                         "error": "its event was never seen" if p.watch else "its time never came"})
            out.writelines(json.dumps(r) + "\n" for r in sorted(self.records, key=lambda r: r["line"]))


def run_injector(plan: InjectorPlan) -> None:
    """The injector process: sockets open, "ready", then t0 on stdin; the log written on SIGTERM."""
    loop = _Loop(plan)

    def stop(*_):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)     # once: the log is being written
        raise _Stopped

    signal.signal(signal.SIGTERM, stop)
    # a real-time priority (SCHED_FIFO, low): under an 8 MB transfer in the VM it read an after:
    # event's frame 0.3-1.7 ms after it passed, against 0.7-5.3 ms as a thread of the runner and up
    # to 14 ms as an ordinary process (measured); it sleeps in select() between frames
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(RT_PRIORITY))
    except OSError:        # not allowed here: an ordinary process
        pass
    loop.open()
    print("ready", flush=True)
    try:
        loop.run(sys.stdin)
    except _Stopped:
        pass
    finally:
        loop.write()


class _Stopped(Exception):
    """SIGTERM: select() would otherwise resume after the handler (PEP 475)."""


class Injector(Forked):
    """run_injector() in its own forked process in the root namespace, with the helpers' lifecycle:
    ready when its sockets are open; go(t0) starts the clock; stop() = SIGTERM (it writes its log)."""

    def __init__(self, plan: InjectorPlan, ledger=None) -> None:
        super().__init__(None, run_injector, plan, name="injector", ledger=ledger)

    def go(self, t0: float) -> None:
        self.send(f"{t0}")
