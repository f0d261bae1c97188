"""Read TCP segments out of a pcap with dpkt."""
from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from pathlib import Path

from harness.dpkt_parts import dpkt

from harness.load.segment_fields import needs_data
from harness.model import TCP_OPTION_KINDS, LengthSpec, OptionSpec, flag_set

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
    tsecr: int | None = None
    window: int = 0             # the window field as sent (unscaled)
    # its TCP options in order, (harness.model.TCP_OPTION_KINDS name, value): mss and wscale their
    # value, sack its number of blocks, sackok and ts 1; options of other kinds are left out
    options: tuple[tuple[str, int], ...] = ()
    ttl: int = 0

    @property
    def option_map(self) -> dict[str, int]:
        """name -> value, what OptionSpec.fits takes."""
        return dict(self.options)


def shape_misses(seg: Segment, flags: str | None, length: LengthSpec | None = None,
                 options: tuple[OptionSpec, ...] = ()) -> list[str]:
    """What of len:, options: and P (flags written with P need data unless len: says what length,
    harness.load.segment_fields.needs_data) the segment lacks, said as a verdict shows it."""
    out = []
    if length is not None and not length.fits(seg.length):
        out.append(f"len={seg.length}, should be {length}")
    elif length is None and flags is not None and needs_data(flags) and seg.length == 0:
        out.append(f"len=0, and {flags} (written with P) needs data")
    wrong = [str(o) for o in options if not o.fits(seg.option_map)]
    if wrong:
        out.append(f"options={shown_options(seg)}, should have {', '.join(wrong)}")
    return out


def shown_options(seg: Segment) -> str:
    """A segment's options as a verdict shows them: [mss=1460, sackok, ts, wscale=9] (sack: its blocks)."""
    return "[" + ", ".join(name if name in ("sackok", "ts") else f"{name}={value}" for name, value in seg.options) + "]"


def segment_fits(seg: Segment, flags: str | None, length: LengthSpec | None = None,
                 options: tuple[OptionSpec, ...] = ()) -> bool:
    """Does the segment fit a packet pattern's or a network-step match's flags, len: and options:?
    Flags compare without PSH (flags None: any); the rest as shape_misses says."""
    if flags is not None and flag_set(seg.flags) != flag_set(flags):
        return False
    return not shape_misses(seg, flags, length, options)


def read_segments(path: Path) -> list[Segment]:
    with open(path, "rb") as f:
        return [seg for ts, buf in dpkt.pcap.Reader(f) if (seg := frame_segment(float(ts), buf)) is not None]


def frame_segment(t: float, buf: bytes) -> Segment | None:
    """The TCP segment in one Ethernet frame (None: not IPv4 TCP); the injector reads live frames with it."""
    ip = dpkt.ethernet.Ethernet(buf).data
    if not isinstance(ip, dpkt.ip.IP) or not isinstance(ip.data, dpkt.tcp.TCP):
        return None
    tcp = ip.data
    flags = "".join(letter for bit, letter in _FLAGS if tcp.flags & bit)
    opts = _options(tcp)
    tsval, tsecr = next(((struct.unpack(">II", data[:8])) for kind, data in opts
                         if kind == dpkt.tcp.TCP_OPT_TIMESTAMP and len(data) >= 8), (None, None))
    return Segment(t, socket.inet_ntoa(ip.src), tcp.sport, socket.inet_ntoa(ip.dst), tcp.dport, flags, tcp.seq,
                   tcp.ack, _payload_length(ip, tcp), tsval, tsecr, tcp.win, _named_options(opts), ip.ttl)


def _payload_length(ip, tcp) -> int:
    """The segment's payload length from the IP header: captures keep only the first bytes of a
    frame (harness.record.capture.SNAP_LEN), so the bytes captured may be fewer. A GSO frame
    bigger than 64 KiB (BIG TCP) has total length 0: then what was captured is all there is."""
    if ip.len:
        return max(0, ip.len - ip.hl * 4 - tcp.off * 4)
    return len(tcp.data)


def _options(tcp) -> list[tuple[int, bytes]]:
    try:
        return dpkt.tcp.parse_opts(tcp.opts)
    except Exception:        # a malformed option list: no options to read
        return []


_KIND_NAMES = {kind: name for name, (kind, _) in TCP_OPTION_KINDS.items()}


def _named_options(opts: list[tuple[int, bytes]]) -> tuple[tuple[str, int], ...]:
    """The options Segment.options keeps, each with its value (see there)."""
    out = []
    for kind, data in opts:
        name = _KIND_NAMES.get(kind)
        if name == "mss" and len(data) >= 2:
            out.append((name, struct.unpack(">H", data[:2])[0]))
        elif name == "wscale" and len(data) >= 1:
            out.append((name, data[0]))
        elif name == "sack":
            out.append((name, len(data) // 8))
        elif name in ("sackok", "ts"):
            out.append((name, 1))
    return tuple(out)


def of_connection(segments: list[Segment], a: tuple[str, int], b: tuple[str, int]) -> list[Segment]:
    ends = {a, b}
    return [s for s in segments if {(s.src, s.sport), (s.dst, s.dport)} == ends]
