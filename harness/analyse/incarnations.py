"""Connections one by one: the incarnations of each four-tuple, and each named socket's own view.

Why: a four-tuple can be used again (a port bound on purpose, tcp_tw_reuse, a TIME-WAIT socket
taking a new SYN), and the seed's case for TIME-WAIT is exactly an old duplicate meeting the new
incarnation. So segments are split per four-tuple at each SYN whose ISN is new for its sender, and
every socket a step made (connect, accept, listen) gets the incarnation it belongs to, its states
(by its cookie: the sampler's rows say which socket they are) and the calls made on it."""
from __future__ import annotations

from dataclasses import dataclass, field

from harness.analyse.segments import Segment
from harness.analyse.kernel_trace import KernelTrace
from harness.analyse.traced_states import connection_traced, listeners_traced, merged_spans
from harness.analyse.states import CookieRows, dump_times, StateSpan, cookie_spans, request_cookies, socket_spans
from harness.model import StepRecord, accepted_name, listener_name

Address = tuple[str, int]
CONNECTING = ("connect", "accepted")      # kinds of socket that are one end of a connection


@dataclass
class Incarnation:
    """One use of a four-tuple: its segments (either direction) and the ISN each end chose."""
    ends: frozenset[Address]
    number: int                                   # 1-based, per four-tuple, in the capture it was split from
    segments: list[Segment] = field(default_factory=list)
    isn: dict[Address, int] = field(default_factory=dict)

    @property
    def start(self) -> float:
        return self.segments[0].t


def ends_of(seg: Segment) -> frozenset[Address]:
    return frozenset({(seg.src, seg.sport), (seg.dst, seg.dport)})


def _is_syn(seg: Segment) -> bool:
    return "S" in seg.flags and "A" not in seg.flags


def _seq_end(seg: Segment) -> int:
    """The sequence number after the segment (SYN and FIN take one each)."""
    return (seg.seq + seg.length + ("S" in seg.flags) + ("F" in seg.flags)) % 2**32


def _ends_it(rst: Segment, before: list[Segment], isn: int | None) -> bool:
    """A RST its receiver takes: its sequence is exactly where its sender's data ended (RFC 5961
    3.2; an in-window RST elsewhere only earns a challenge ACK and the connection goes on)."""
    sent = [s for s in before if (s.src, s.sport) == (rst.src, rst.sport) and "R" not in s.flags]
    if isn is None or not sent:
        return True
    return rst.seq == max((_seq_end(s) for s in sent), key=lambda end: (end - isn) % 2**32)


def _live(inc: Incarnation) -> bool:
    """Both ends have a connection here: each sent its SYN, no RST that ended it, not both FINs."""
    if len(inc.isn) < 2:
        return False
    for i, seg in enumerate(inc.segments):
        if "R" in seg.flags and _ends_it(seg, inc.segments[:i], inc.isn.get((seg.src, seg.sport))):
            return False
    return len({(s.src, s.sport) for s in inc.segments if "F" in s.flags}) < 2


def _opens(seg: Segment, current: Incarnation | None, answered: bool) -> bool:
    """A SYN (no ACK) whose ISN is not the one its sender uses in the current incarnation. A
    retransmitted or held stale SYN with that ISN stays; the peer's first SYN (simultaneous open)
    joins; so does a first SYN after stray segments (an incarnation with no ISN yet). A SYN with a
    new ISN that lands in a live connection and that the peer never answers with a SYN+ACK (a SYN
    injected into ESTABLISHED gets a challenge ACK, RFC 5961 4.2) is part of that connection."""
    if current is None:
        return True
    known = current.isn.get((seg.src, seg.sport))
    if not (_is_syn(seg) and known is not None and known != seg.seq):
        return False
    return answered or not _live(current)


def _synacks(segments: list[Segment]) -> set[tuple[Address, Address, int]]:
    """(SYN+ACK sender, its receiver, the ack it carries): which SYNs were answered."""
    return {((s.src, s.sport), (s.dst, s.dport), s.ack) for s in segments if "S" in s.flags and "A" in s.flags}


def _old_duplicate_of(seg: Segment, runs: list[Incarnation]) -> Incarnation | None:
    """An earlier incarnation whose ISN from this sender the SYN carries: an old duplicate (a held
    SYN released late) belongs to the incarnation it was sent in, not to a new one."""
    if not _is_syn(seg):
        return None
    return next((inc for inc in runs[:-1] if inc.isn.get((seg.src, seg.sport)) == seg.seq), None)


def split(segments: list[Segment]) -> dict[frozenset[Address], list[Incarnation]]:
    """Every four-tuple's incarnations, in order, from one capture (each one's segments in time order)."""
    out: dict[frozenset[Address], list[Incarnation]] = {}
    answers = _synacks(segments)
    for seg in sorted(segments, key=lambda s: s.t):
        key = ends_of(seg)
        runs = out.setdefault(key, [])
        current = _old_duplicate_of(seg, runs) or (runs[-1] if runs else None)
        answered = ((seg.dst, seg.dport), (seg.src, seg.sport), (seg.seq + 1) % 2**32) in answers
        if _opens(seg, current, answered):
            current = Incarnation(key, len(runs) + 1)
            runs.append(current)
        if "S" in seg.flags:
            current.isn.setdefault((seg.src, seg.sport), seg.seq)
        current.segments.append(seg)
    return out


def _first_syn_from(runs: list[Incarnation], local: Address, since: float | None) -> Incarnation | None:
    """The incarnation holding the first SYN `local` sent at or after `since` (its connect call)."""
    syns = [(s.t, inc.number) for inc in runs for s in inc.segments
            if _is_syn(s) and (s.src, s.sport) == local and (since is None or s.t >= since)]
    return runs[min(syns)[1] - 1] if syns else None


def _current_at(runs: list[Incarnation], t: float | None) -> Incarnation | None:
    """The incarnation going on at `t` (an accept): the last one begun by then."""
    begun = [inc for inc in runs if t is None or inc.start <= t]
    return begun[-1] if begun else None


@dataclass
class SocketView:
    """One socket a step made, as observed: its incarnation's segments at its host's interface
    (and as its TCP handed them to the interface), its states, and the calls made on it."""
    name: str
    host: str
    kind: str                              # connect | accepted | listen
    local: Address | None
    peer: Address | None
    aliases: tuple[str, ...] = ()
    created: float | None = None           # the connect or listen call's start, the accept time
    cookie: int | None = None
    incarnation: int = 0                   # 1-based per four-tuple; 0: none of its segments was captured
    states: list[StateSpan] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    kernel_segments: list[Segment] = field(default_factory=list)
    steps: list[StepRecord] = field(default_factory=list)
    isn: dict[Address, int] = field(default_factory=dict)   # its incarnation's ISNs (relative seq/ack)

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name,) + self.aliases

    @property
    def shown(self) -> str:
        """The name people gave it (an accept's `as:`), else the automatic one."""
        return self.aliases[0] if self.kind == "accepted" and self.aliases else self.name

    def incarnation_of(self, runs: list[Incarnation]) -> Incarnation | None:
        if self.kind == "connect":
            return _first_syn_from(runs, self.local, self.created)
        return _current_at(runs, self.created)


class _Declared:
    """The sockets a host's step log declares, named as the loader names them."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.views: dict[str, SocketView] = {}
        self.made_by: dict[int, SocketView] = {}       # id(record) -> the view its call made
        self.unnamed_connects = 0
        self.accepted_per_port: dict[int, int] = {}

    def add(self, name: str, kind: str, entry: StepRecord, peer: Address | None) -> SocketView:
        view = SocketView(name, self.host, kind, entry.local, peer, created=entry.start, cookie=entry.cookie)
        self.views.setdefault(name, view)
        return self.views[name]

    def record(self, entry: StepRecord) -> None:
        if entry.action == "connect":
            self.unnamed_connects += entry.socket is None
            view = self.add(entry.socket or f"{self.host}#{self.unnamed_connects}", "connect", entry, entry.peer)
            self.made_by[id(entry)] = view
        elif entry.accepted and entry.local:
            port = entry.local[1]
            self.accepted_per_port[port] = self.accepted_per_port.get(port, 0) + 1
            self.add(entry.socket or accepted_name(self.host, port, self.accepted_per_port[port]), "accepted",
                     entry, entry.peer)
        elif entry.action == "listen" and entry.local:
            view = self.add(entry.socket or listener_name(self.host, entry.local[1]), "listen", entry, None)
            self.made_by[id(entry)] = view

    def took(self, entry: StepRecord) -> None:
        """An accept step: its `as:` name is another name of the connection it took."""
        view = self.views.get(entry.alias) if entry.alias else None
        if view is None:
            view = self.add(entry.socket, "accepted", entry, entry.peer)
            view.aliases += (entry.alias,) if entry.alias else ()
        elif entry.socket not in view.names:
            view.aliases += (entry.socket,)
        self.views[entry.socket] = view
        self.made_by[id(entry)] = view

    def default(self) -> SocketView | None:
        """A call that names no socket (old logs): the host's only connection, else the first one
        its only listener accepted, as the loader resolves it."""
        own = {id(v): v for v in self.views.values() if v.kind in CONNECTING}
        if len(own) == 1:
            return next(iter(own.values()))
        listeners = [v for v in self.views.values() if v.kind == "listen"]
        if not own and len(listeners) == 1 and listeners[0].local:
            return self.views.get(accepted_name(self.host, listeners[0].local[1], 1))
        return None


def declared_sockets(steps_log: dict[str, list[StepRecord]]) -> dict[str, SocketView]:
    """Every socket the step logs name (aliases too: both names lead to one view), each with the
    calls made on it. Logs from before sockets were named get the loader's automatic names."""
    out: dict[str, SocketView] = {}
    for host, entries in steps_log.items():
        declared = _Declared(host)
        for entry in entries:
            declared.record(entry)
        for entry in entries:
            if entry.action == "accept" and entry.socket:
                declared.took(entry)
        fallback = declared.default()
        for entry in entries:
            if entry.accepted:
                continue
            view = declared.made_by.get(id(entry)) or declared.views.get(entry.socket or "") or (
                fallback if entry.socket is None else None)
            if view is not None:
                view.steps.append(entry)
        out.update(declared.views)
    return out


def unique(views: dict[str, SocketView]) -> list[SocketView]:
    """Each view once (aliases lead to the same one), in the order first named."""
    return list({id(v): v for v in views.values()}.values())


def _windows(views: list[SocketView]) -> dict[int, tuple[float, float]]:
    """Without cookies, the rows of a four-tuple are told apart by time: each socket's from its
    creation (its incarnation's first segment, if earlier) until the next socket of the same
    four-tuple at its host was created; the first from the start."""
    out: dict[int, tuple[float, float]] = {}
    groups: dict[tuple, list[SocketView]] = {}
    for v in views:
        groups.setdefault((v.host, v.local, v.peer), []).append(v)
    for group in groups.values():
        starts = [min([t for t in (v.created, v.segments[0].t if v.segments else None) if t is not None],
                      default=float("-inf")) for v in group]
        order = sorted(range(len(group)), key=lambda i: starts[i])
        for rank, i in enumerate(order):
            low = float("-inf") if rank == 0 else starts[i]
            high = starts[order[rank + 1]] if rank + 1 < len(order) else float("inf")
            out[id(group[i])] = (low, high)
    return out


def socket_states(view: SocketView, samples: list[dict], window: tuple[float, float],
                  index: CookieRows | None = None) -> list[StateSpan]:
    """A socket's spans: a listener's LISTEN rows on its port; a connection's rows by its cookie
    (an accepted one's SYN-RECV request rows just before it included); samples without cookies
    (old recordings): its four-tuple's rows within its time window. `index`: the samples' rows by
    cookie (None: made here; empty: the samples have no cookies)."""
    if view.local is None:
        return []
    if view.kind == "listen":
        return socket_spans(samples, view.local, None)
    if view.peer is None:
        return []
    index = index if index is not None else CookieRows(samples)
    if view.cookie is not None and index.rows:
        before = (request_cookies(samples, view.cookie, view.local, view.peer, index)
                  if view.kind == "accepted" else None)
        return cookie_spans(samples, view.cookie, before, index)
    low, high = window
    return socket_spans([s for s in samples if low <= s["t"] < high], view.local, view.peer)


def _kernel_stream(view: SocketView, interface: list[Segment], kernel: list[Segment]) -> list[Segment]:
    """What the host's TCP saw of the four-tuple: its sends at kernel time, arrivals at its interface."""
    sent = [s for s in kernel if ((s.src, s.sport), (s.dst, s.dport)) == (view.local, view.peer)]
    came = [s for s in interface if ((s.src, s.sport), (s.dst, s.dport)) == (view.peer, view.local)]
    return sorted(sent + came, key=lambda s: s.t)


def _kernel_sends(view: SocketView, interface: list[Segment], kernel: list[Segment]) -> list[Segment]:
    """The socket's sends at kernel time: its incarnation found in what its host's TCP saw (the
    kernel capture holds only what the host sent: arrivals come from its interface capture)."""
    runs = split(_kernel_stream(view, interface, kernel)).get(frozenset({view.local, view.peer}), [])
    mine = view.incarnation_of(runs)
    return [s for s in (mine.segments if mine else []) if (s.src, s.sport) == view.local]


def attach(views: dict[str, SocketView], interface: dict[str, list[Segment]], kernel: dict[str, list[Segment]],
           samples: dict[str, list[dict]], trace: KernelTrace | None = None) -> list[str]:
    """Give each view its incarnation's segments (interface and kernel time) and its states (traced
    where the run has the kernel's trace); return where samples and trace disagree.
    `interface`/`kernel`/`samples` are per host (a host absent from `kernel`: no kernel capture)."""
    splits = {h: split(segs) for h, segs in interface.items()}
    every = unique(views)
    for v in every:
        if v.kind not in CONNECTING or v.local is None or v.peer is None:
            continue
        inc = v.incarnation_of(splits.get(v.host, {}).get(frozenset({v.local, v.peer}), []))
        if inc is not None:
            v.incarnation, v.segments, v.isn = inc.number, list(inc.segments), dict(inc.isn)
        if v.host in kernel:
            v.kernel_segments = _kernel_sends(v, interface.get(v.host, []), kernel[v.host])
    windows = _windows([v for v in every if v.kind in CONNECTING])
    indexes = {h: CookieRows(host_samples) for h, host_samples in samples.items()}
    for v in every:
        v.states = socket_states(v, samples.get(v.host, []), windows.get(id(v), (float("-inf"), float("inf"))),
                                 indexes.get(v.host))
    if trace is None:
        return []
    dumps = {h: dump_times(host_samples) for h, host_samples in samples.items()}
    return [problem for v in every for problem in _traced_states(v, every, trace, dumps.get(v.host, {}))]


def _traced_states(view: SocketView, every: list[SocketView], trace: KernelTrace, dumps: dict[float, float]) -> list[str]:
    """The view's states with the trace's exact spans; the disagreements found on the way."""
    if view.local is None:
        return []
    if view.kind == "listen":
        hosts = {v.host for v in every if v.kind == "listen" and v.local and v.local[1] == view.local[1]}
        traced = listeners_traced(trace, view.local, len(hosts))
    elif view.peer is not None:
        times = [s.first_seen for s in view.states] + [s.last_seen for s in view.states] + [s.t for s in view.segments]
        traced = connection_traced(trace, view.local, view.peer, view.cookie, (min(times), max(times)) if times else None)
    else:
        return []
    view.states, problems = merged_spans(view.states, traced, view.shown, dumps)
    return problems
