"""Each segment's way through a run's captures: one Journey per send of a segment by a host's TCP
(or per segment a network step injected, or per extra copy a step made).

Why: the ladder diagram draws a segment from the moment its sender's TCP handed it over (the
kernel capture) to the moment it reached the receiver's interface, through the switch or router
where a network step acted; and every segment any capture holds must be drawn exactly once. So the
same segment is followed hop by hop along the path the lab's routes send it from sender to
receiver (harness.model.Topology.path: asymmetric paths, routers in a loop): a copy at the next
capture point is the one with the same fields (src, sport, dst, dport, seq, ack, flags, length and
TCP timestamp; not the TTL nor the MACs, which every router changes) whose time after the
previous sighting is nearest to the hop's configured delay (a held segment arrives late, so plain
occurrence order would pair it with its retransmission).
Pure: segments and the result's lab and network sections in, journeys out."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from harness.analyse.incarnations import split
from harness.analyse.lab_topology import lab_topology
from harness.analyse.segments import Segment
from harness.model import Topology

EARLY_S = 0.001          # a later sighting may carry a time this much before the previous one
NEAR_S = 1e-6            # a network check's time names a sighting within this
FourTuple = tuple[str, int, str, int]


@dataclass(frozen=True)
class Hop:
    """One capture point on a path, with the link delay expected since the previous one."""
    stem: str                 # capture file stem: client.kernel, client-eth0, s1-eth1 ...
    delay_s: float            # expected time since the previous capture point on the path
    switch: str | None = None     # the switch or router whose port this is
    ingress: bool = False     # a switch's (router's) port the segment enters by (else it leaves by it)


@dataclass(frozen=True)
class Journey:
    """One segment's way from its sender to its receiver, with every capture that saw it."""
    id: str
    sender: str
    receiver: str
    segment: Segment                    # the first sighting
    connection: FourTuple               # as sent: src, sport, dst, dport
    sent: float                         # kernel send time (or first sighting minus the link delays before it)
    left: float | None                  # at the sender's interface
    switch: str | None                  # the switch or router it passed (a network step's, when one acted on its path)
    switch_in: float | None
    switch_out: float | None
    arrived: float | None               # at the receiver's interface
    fate: str                           # delivered | dropped | injected
    held_s: float = 0.0                 # parked by a hold/delay step beyond the link delays
    retransmission: bool = False
    duplicate: bool = False
    seen: tuple[tuple[str, float], ...] = ()
    incarnation: int = 1                # of its four-tuple (harness.analyse.incarnations.split)
    egress_delay_s: float = 0.0         # the delay of the link it left `switch` by
    died_at: tuple[str, float] | None = None    # dropped: the switch or router it was last seen at, and when

    @property
    def key(self) -> tuple:
        return _key(self.segment)


@dataclass
class _Chain:
    """A journey being followed: (hop index, segment) per sighting."""
    sightings: list[tuple[int, Segment]]
    duplicate_of: _Chain | None = None

    @property
    def last(self) -> tuple[int, Segment]:
        return self.sightings[-1]


def _key(seg: Segment) -> tuple:
    """A segment's identity at every capture point: without the TTL (one less past each router)."""
    return (seg.src, seg.sport, seg.dst, seg.dport, seg.seq, seg.ack, seg.flags, seg.length, seg.tsval)


def _link_ends(lab: dict) -> dict[tuple[str, str], tuple[str, str, float]]:
    """(from, to) -> (from's interface, to's interface, delay from -> to), the first link between them."""
    out: dict[tuple[str, str], tuple[str, str, float]] = {}
    for link in lab.get("links", []):
        a, b = link["a"], link["b"]
        out.setdefault((a, b), (link["a_interface"], link["b_interface"], link["a_to_b"]["delay_s"]))
        out.setdefault((b, a), (link["b_interface"], link["a_interface"], link["b_to_a"]["delay_s"]))
    return out


def route_nodes(lab: dict, sender: str, receiver: str, topology: Topology | None = None) -> list[str]:
    """The nodes the routes send a segment through (Topology.path); [] where the lab cannot say."""
    topology = topology or lab_topology(lab)
    try:
        return topology.path(sender, receiver)
    except (StopIteration, KeyError, ValueError):      # a host without a recorded address
        return []


def _route(lab: dict, topology: Topology, sender: str, receiver: str) -> list[tuple[str, str, str, str, float]]:
    """The links from sender to receiver as the routes take them: (from, to, from's interface, to's, delay)."""
    ends = _link_ends(lab)
    nodes = route_nodes(lab, sender, receiver, topology)
    pairs = list(zip(nodes, nodes[1:]))
    if any(pair not in ends for pair in pairs):
        return []
    return [(frm, to, *ends[(frm, to)]) for frm, to in pairs]


def network_nodes(lab: dict) -> set[str]:
    """The nodes between hosts whose ports are captured and where network steps act: switches and routers."""
    return set(lab.get("switches") or []) | set(lab.get("routers") or [])


def path(lab: dict, sender: str, receiver: str, stems: set[str], topology: Topology | None = None) -> list[Hop]:
    """The capture points a segment from sender to receiver passes, in order (those the run has)."""
    nodes = network_nodes(lab)
    hops = [Hop(f"{sender}.kernel", 0.0)]
    for frm, to, mine, theirs, delay in _route(lab, topology or lab_topology(lab), sender, receiver):
        hops.append(Hop(mine, delay, frm if frm in nodes else None, False))
        hops.append(Hop(theirs, 0.0, to if to in nodes else None, to in nodes))
    kept, pending = [], 0.0
    for hop in hops:
        pending += hop.delay_s
        if hop.stem in stems:
            kept.append(replace(hop, delay_s=pending))
            pending = 0.0
    return kept


def _pair(chains: list[_Chain], arriving: list[Segment], delay: float) -> tuple[list[tuple[_Chain, Segment]], list[Segment]]:
    """Pair chains with the next sightings of the same segment, nearest to the expected delay first."""
    by_key: dict[tuple, list[_Chain]] = {}
    for chain in chains:
        by_key.setdefault(_key(chain.last[1]), []).append(chain)
    options = []
    for n, seg in enumerate(arriving):
        for chain in by_key.get(_key(seg), []):
            late = seg.t - chain.last[1].t
            if late >= -EARLY_S:
                options.append((abs(late - delay), seg.t, n, id(chain), chain))
    options.sort(key=lambda o: o[:4])
    taken_chain, taken_seg, pairs = set(), set(), []
    for _, _, n, cid, chain in options:
        if cid not in taken_chain and n not in taken_seg:
            taken_chain.add(cid)
            taken_seg.add(n)
            pairs.append((chain, arriving[n]))
    return pairs, [s for n, s in enumerate(arriving) if n not in taken_seg]


def _follow(hops: list[Hop], seen: list[list[Segment]]) -> list[_Chain]:
    """Every sighting of one direction's segments on its path, joined into chains."""
    chains = [_Chain([(0, s)]) for s in seen[0]]
    for i in range(1, len(hops)):
        open_ = [c for c in chains if c.last[0] == i - 1]
        pairs, rest = _pair(open_, seen[i], hops[i].delay_s)
        for chain, seg in pairs:
            chain.sightings.append((i, seg))
        reached = {_key(c.last[1]): c for c in open_ if c.last[0] == i}
        for seg in rest:
            chains.append(_Chain([(i, seg)], reached.get(_key(seg))))
    return chains


@dataclass
class _Direction:
    """One (sender, receiver) pair of hosts: its path and what each capture on it saw."""
    sender: str
    receiver: str
    hops: list[Hop]
    seen: list[list[Segment]] = field(default_factory=list)


def _directions(lab: dict, captures: dict[str, list[Segment]]) -> list[_Direction]:
    hosts = lab.get("hosts", {})
    topology = lab_topology(lab)
    out = []
    for sender, s in hosts.items():
        for receiver, r in hosts.items():
            if sender == receiver:
                continue
            hops = path(lab, sender, receiver, set(captures), topology)
            seen = [[g for g in captures[h.stem] if (g.src, g.dst) == (s["ip"], r["ip"])] for h in hops]
            out.append(_Direction(sender, receiver, hops, seen))
    return out


def _time_at(chain: _Chain, hops: list[Hop], pick) -> float | None:
    return next((seg.t for i, seg in chain.sightings if pick(hops[i])), None)


def _step_switch(d: _Direction, steps: list[dict]) -> str | None:
    """The switch or router a network step acts on for this direction (else the path's first one)."""
    acted = {s.get("switch") for s in steps if (s.get("sender"), s.get("receiver")) == (d.sender, d.receiver)}
    switches = [h.switch for h in d.hops if h.switch]
    return next((sw for sw in switches if sw in acted), switches[0] if switches else None)


def _held(check_segments: list[dict], switch_in: float | None) -> float:
    """What a hold/delay step's check says it held the segment that reached the switch then."""
    if switch_in is None:
        return 0.0
    return next((s.get("held_s") or 0.0 for s in check_segments if abs(s.get("arrived", 0) - switch_in) < NEAR_S), 0.0)


def _sent(chain: _Chain, hops: list[Hop]) -> float:
    """Kernel send time; without a kernel sighting, the first sighting less the link delay before
    it (path() folds a missing kernel capture's delay into the interface's; an injected segment:
    the moment the injector handed it to its port, before the port's delay)."""
    first_i, first = chain.sightings[0]
    return first.t - hops[first_i].delay_s


def _switch_times(d: _Direction, chain: _Chain, switch: str | None) -> tuple[float | None, float | None, float]:
    """When the segment (its original, for an extra copy) entered `switch`, when this copy left
    it (captured after the egress link's delay), and that delay."""
    hops = d.hops
    origin = chain.duplicate_of or chain
    switch_in = _time_at(origin, hops, lambda h: h.switch == switch and h.ingress)
    switch_out = _time_at(chain, hops, lambda h: h.switch == switch and not h.ingress)
    egress = next((h.delay_s for h in hops[1:] if h.switch == switch and not h.ingress), 0.0)
    return switch_in, switch_out, egress


def _fate(d: _Direction, chain: _Chain, arrived: float | None) -> str:
    """Injected: first seen at a switch's or router's port, no copy of a send; else delivered or dropped."""
    first_i = chain.sightings[0][0]
    if chain.duplicate_of is None and first_i > 0 and d.hops[first_i].switch is not None:
        return "injected"
    return "delivered" if arrived is not None else "dropped"


def _journey(d: _Direction, chain: _Chain, lab: dict, held_checks: list[dict], switch: str | None) -> Journey:
    hops = d.hops
    origin = chain.duplicate_of or chain
    seg = chain.sightings[0][1]
    passed = any(hops[i].switch == switch for i, _ in origin.sightings + chain.sightings)
    switch_in, switch_out, egress = _switch_times(d, chain, switch)
    arrived = chain.last[1].t if hops[chain.last[0]].stem == lab["hosts"][d.receiver]["interface"] else None
    interface = lab["hosts"][d.sender]["interface"]
    return Journey("", d.sender, d.receiver, seg, (seg.src, seg.sport, seg.dst, seg.dport),
                   _sent(origin, hops), _time_at(origin, hops, lambda h: h.stem == interface),
                   switch if passed else None, switch_in, switch_out, arrived, _fate(d, chain, arrived),
                   0.0 if chain.duplicate_of else _held(held_checks, switch_in),
                   duplicate=chain.duplicate_of is not None,
                   seen=tuple((hops[i].stem, s.t) for i, s in chain.sightings), egress_delay_s=egress,
                   died_at=_died_at(hops, chain) if arrived is None else None)


def _died_at(hops: list[Hop], chain: _Chain) -> tuple[str, float] | None:
    """The switch or router whose port saw a segment that never arrived last (a drop step's, or a
    router's own: TTL expired, no route, too big for the next link), and when."""
    i, seg = chain.last
    return (hops[i].switch, seg.t) if hops[i].switch else None


def _held_checks(network: list[dict], d: _Direction) -> list[dict]:
    return [s for c in network if c.get("action") in ("hold", "delay")
            and (c.get("from"), c.get("to")) == (d.sender, d.receiver) for s in c.get("segments", [])]


def _consumes(seg: Segment) -> bool:
    return seg.length > 0 or "S" in seg.flags or "F" in seg.flags


def _seq_end(seg: Segment) -> int:
    return seg.seq + seg.length + ("S" in seg.flags) + ("F" in seg.flags)


def mark_retransmissions(journeys: list[Journey]) -> list[Journey]:
    """A send of sequence space its sender already sent in that incarnation of the four-tuple:
    the same seq/flags/len again, or repacketised (data and FIN together after each went alone).
    Pure ACKs never are; injected segments and a step's extra copies are not its TCP's sends."""
    sent: dict[tuple, tuple[int, int]] = {}     # (four-tuple, incarnation) -> (first seq, furthest end)
    out = []
    for j in journeys:
        s = j.segment
        own = j.fate != "injected" and not j.duplicate and _consumes(s)
        key = (j.connection, j.incarnation)
        again = False
        if own and key in sent:
            first, end = sent[key]
            again = (s.seq - first) % 2**32 < (end - first) % 2**32
            further = (_seq_end(s) - first) % 2**32 > (end - first) % 2**32
            sent[key] = (first, _seq_end(s) if further else end)
        elif own:
            sent[key] = (s.seq, _seq_end(s))
        out.append(replace(j, retransmission=again))
    return out


def _with_incarnations(journeys: list[Journey]) -> list[Journey]:
    """Each journey's incarnation of its four-tuple, split over the sends in send order."""
    stand_ins = {id(j): replace(j.segment, t=j.sent) for j in journeys}
    number = {}
    for runs in split(list(stand_ins.values())).values():
        for inc in runs:
            number.update({id(s): inc.number for s in inc.segments})
    return [replace(j, incarnation=number.get(id(stand_ins[id(j)]), 1)) for j in journeys]


def _strays(captures: dict[str, list[Segment]], used: set[int], lab: dict) -> list[Journey]:
    """Sightings no path explains (addresses of no lab host): each its own journey, so none is lost."""
    ips = {h["ip"]: name for name, h in lab.get("hosts", {}).items()}
    out = []
    for stem, segs in captures.items():
        for seg in segs:
            if id(seg) not in used:
                out.append(Journey("", ips.get(seg.src, seg.src), ips.get(seg.dst, seg.dst), seg,
                                   (seg.src, seg.sport, seg.dst, seg.dport), seg.t, None, None, None, None, None,
                                   "injected", seen=((stem, seg.t),)))
    return out


def journeys(captures: dict[str, list[Segment]], lab: dict, network: list[dict] | None = None) -> list[Journey]:
    """Every journey of the run, in send order, numbered seg-1, seg-2, ... Every segment of every
    capture is in exactly one journey's `seen`."""
    found, used = [], set()
    for d in _directions(lab, captures):
        if not d.hops:
            continue
        switch = _step_switch(d, lab.get("network_steps", []))
        held = _held_checks(network or [], d)
        for chain in _follow(d.hops, d.seen):
            found.append(_journey(d, chain, lab, held, switch))
            used.update(id(s) for _, s in chain.sightings)
    found += _strays(captures, used, lab)
    found.sort(key=lambda j: (j.sent, j.seen[0][1]))
    found = mark_retransmissions(_with_incarnations(found))
    return [replace(j, id=f"seg-{n}") for n, j in enumerate(found, 1)]


def isns(found: list[Journey]) -> dict[tuple[frozenset, int], dict[tuple[str, int], int]]:
    """(four-tuple ends, incarnation) -> each end's ISN: the first SYN it sent in that incarnation."""
    out: dict[tuple[frozenset, int], dict[tuple[str, int], int]] = {}
    for j in found:
        s = j.segment
        if "S" in s.flags and j.fate != "injected":
            ends = frozenset({(s.src, s.sport), (s.dst, s.dport)})
            out.setdefault((ends, j.incarnation), {}).setdefault((s.src, s.sport), s.seq)
    return out
