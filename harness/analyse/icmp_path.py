"""The ICMP errors routers sent during a run (time exceeded, unreachable, fragmentation needed),
each followed from the router that sent it to the host it reached.

Why: in a routed run the router's answer is often the whole story (a SYN sent with TTL 1 dies at
r1, which answers "time exceeded"; a 1400-byte link makes r1 answer "fragmentation needed"), so
the ladder draws it next to the segment it is about. Pure but for reading the pcaps: the result's
lab says which node owns the source address and which link a capture point leaves by."""
from __future__ import annotations

import socket
from dataclasses import dataclass, replace
from pathlib import Path

from harness.dpkt_parts import dpkt

KINDS = {(11, 0): "time-exceeded", (3, 0): "net-unreachable", (3, 1): "host-unreachable",
         (3, 3): "port-unreachable", (3, 4): "frag-needed"}


@dataclass(frozen=True)
class IcmpSighting:
    """One ICMP error in one capture, with the TCP segment it quotes (its four-tuple and seq)."""
    t: float
    stem: str
    src: str
    dst: str
    kind: str
    mtu: int
    quoted: bytes              # the quoted IP header and 8 bytes: the same message at every capture point

    @property
    def about(self) -> tuple[str, int, str, int, int] | None:
        """The quoted TCP segment's src, sport, dst, dport and seq (None: it quotes no TCP)."""
        q = self.quoted
        ihl = (q[0] & 0x0F) * 4 if q else 0
        if len(q) < ihl + 8 or q[9] != 6:
            return None
        sport, dport, seq = int.from_bytes(q[ihl:ihl + 2], "big"), int.from_bytes(q[ihl + 2:ihl + 4], "big"), \
            int.from_bytes(q[ihl + 4:ihl + 8], "big")
        return socket.inet_ntoa(q[12:16]), sport, socket.inet_ntoa(q[16:20]), dport, seq


@dataclass(frozen=True)
class IcmpMessage:
    """One ICMP error on its way: from the node owning its source address to the host it was for."""
    id: str
    origin: str                 # a router (or host) name, else the source address
    receiver: str               # a host name, else the destination address
    kind: str
    mtu: int
    sent: float                 # its first sighting less the delay of the link it left there by
    arrived: float | None       # at the receiver's interface
    seen: tuple[tuple[str, float], ...]
    about: tuple[str, int, str, int, int] | None


def _sighting(t: float, stem: str, ip: dpkt.ip.IP, kind: str) -> IcmpSighting:
    raw = bytes(ip.data)                  # type, code, checksum, 4 bytes (frag-needed: the MTU in the last 2), quote
    quote = raw[8:]
    ihl = (quote[0] & 0x0F) * 4 if quote else 0
    return IcmpSighting(t, stem, socket.inet_ntoa(ip.src), socket.inet_ntoa(ip.dst), kind,
                        int.from_bytes(raw[6:8], "big") if kind == "frag-needed" else 0, quote[:ihl + 8])


def read_icmp_errors(path: Path) -> list[IcmpSighting]:
    """Every ICMP error of a kind in KINDS in one pcap (a capture cut short: those before the cut)."""
    out: list[IcmpSighting] = []
    try:
        with open(path, "rb") as f:
            for ts, buf in dpkt.pcap.Reader(f):
                ip = dpkt.ethernet.Ethernet(buf).data
                if isinstance(ip, dpkt.ip.IP) and isinstance(ip.data, dpkt.icmp.ICMP):
                    kind = KINDS.get((ip.data.type, ip.data.code))
                    if kind:
                        out.append(_sighting(float(ts), path.stem, ip, kind))
    except (dpkt.dpkt.NeedData, dpkt.dpkt.UnpackError, ValueError, OSError):
        pass
    return out


def _owners(lab: dict) -> dict[str, str]:
    """address -> node: hosts and every recorded interface (routers' too)."""
    out = {h["ip"]: name for name, h in (lab.get("hosts") or {}).items() if h.get("ip")}
    out.update({i["address"]: i["node"] for i in lab.get("interfaces") or []})
    return out


def _leaving_delay(lab: dict, node: str, stem: str) -> float:
    """The delay of the link `node` leaves by through its port `stem` (0 if that is not its port)."""
    for link in lab.get("links") or []:
        for end, way in (("a", "a_to_b"), ("b", "b_to_a")):
            if link[end] == node and link.get(f"{end}_interface") == stem:
                return link[way]["delay_s"]
    return 0.0


def icmp_messages(sightings: list[IcmpSighting], lab: dict) -> list[IcmpMessage]:
    """The same message (source, destination, kind, quoted bytes) at each capture point, in time
    order: the n-th sighting at one point is the n-th at the others. Numbered icmp-1, icmp-2 ..."""
    owners = _owners(lab)
    hosts = lab.get("hosts") or {}
    groups: dict[tuple, dict[str, list[IcmpSighting]]] = {}
    for s in sorted(sightings, key=lambda s: s.t):
        groups.setdefault((s.src, s.dst, s.kind, s.quoted), {}).setdefault(s.stem, []).append(s)
    out = []
    for (src, dst, kind, _), by_stem in groups.items():
        for n in range(max(len(v) for v in by_stem.values())):
            seen = sorted((v[n] for v in by_stem.values() if n < len(v)), key=lambda s: s.t)
            origin, receiver = owners.get(src, src), owners.get(dst, dst)
            where = hosts.get(receiver, {}).get("interface")
            arrived = next((s.t for s in seen if s.stem == where), None)
            out.append(IcmpMessage("", origin, receiver, kind, seen[0].mtu,
                                   seen[0].t - _leaving_delay(lab, origin, seen[0].stem), arrived,
                                   tuple((s.stem, s.t) for s in seen), seen[0].about))
    out.sort(key=lambda m: m.sent)
    return [replace(m, id=f"icmp-{k}") for k, m in enumerate(out, 1)]
