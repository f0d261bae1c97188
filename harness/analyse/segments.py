"""Read TCP segments out of a pcap with dpkt."""
from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from pathlib import Path

import dpkt

# Written in the usual order: SA (SYN+ACK), FA (FIN+ACK), RA (RST+ACK), PA (PSH+ACK).
_FLAGS = [(dpkt.tcp.TH_SYN, "S"), (dpkt.tcp.TH_FIN, "F"), (dpkt.tcp.TH_RST, "R"), (dpkt.tcp.TH_PUSH, "P"),
          (dpkt.tcp.TH_ACK, "A"), (dpkt.tcp.TH_URG, "U")]


@dataclass(frozen=True)
class Segment:
    t: float
    src: str
    sport: int
    dst: str
    dport: int
    flags: str
    seq: int
    ack: int
    length: int
    tsval: int | None = None    # TCP timestamp: tells a retransmitted SYN from the original


def read_segments(path: Path) -> list[Segment]:
    segments = []
    with open(path, "rb") as f:
        for ts, buf in dpkt.pcap.Reader(f):
            eth = dpkt.ethernet.Ethernet(buf)
            ip = eth.data
            if not isinstance(ip, dpkt.ip.IP) or not isinstance(ip.data, dpkt.tcp.TCP):
                continue
            tcp = ip.data
            flags = "".join(letter for bit, letter in _FLAGS if tcp.flags & bit)
            segments.append(Segment(float(ts), socket.inet_ntoa(ip.src), tcp.sport, socket.inet_ntoa(ip.dst),
                                    tcp.dport, flags, tcp.seq, tcp.ack, _payload_length(ip, tcp), _tsval(tcp)))
    return segments


def _payload_length(ip, tcp) -> int:
    """The segment's payload length from the IP header: captures keep only the first bytes of a
    frame (harness.record.capture.SNAP_LEN), so the bytes captured may be fewer. A GSO frame
    bigger than 64 KiB (BIG TCP) has total length 0: then what was captured is all there is."""
    if ip.len:
        return max(0, ip.len - ip.hl * 4 - tcp.off * 4)
    return len(tcp.data)


def _tsval(tcp) -> int | None:
    try:
        opts = dpkt.tcp.parse_opts(tcp.opts)
    except Exception:        # a malformed option list: no timestamp to read
        return None
    return next((struct.unpack(">I", data[:4])[0] for kind, data in opts if kind == dpkt.tcp.TCP_OPT_TIMESTAMP and len(data) >= 8), None)


def of_connection(segments: list[Segment], a: tuple[str, int], b: tuple[str, int]) -> list[Segment]:
    ends = {a, b}
    return [s for s in segments if {(s.src, s.sport), (s.dst, s.dport)} == ends]
