"""Did each `network: inject` step send what it said, when it said, and did it leave the switch or router?

The injector logs every injection (harness.lab.injector: <run>/network/inject.jsonl, the fields
it sent and the moment it handed the frame to the port). The capture of that port (tcpdump sees
a frame as it leaves, after the port's qdisc) must show one frame with exactly those fields,
`link delay` after it was sent, and it must have been sent on time (at: or its after: event)."""
from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field
from pathlib import Path

from harness.dpkt_parts import dpkt

from harness.analyse.network import NetworkCheck, PickedSegment
from harness.analyse.segments import Segment
from harness.model import NetworkStep

ON_TIME_S = 0.005          # sent within this of its due moment
LEAVE_TOLERANCE_S = 0.005  # left the port link delay after it was sent, within max(this, 2 %)
ICMP_NAMES = {0: "net-unreachable", 1: "host-unreachable", 3: "port-unreachable", 4: "frag-needed"}


@dataclass(frozen=True)
class IcmpError:
    """An ICMP destination-unreachable seen in a capture."""
    t: float
    src: str
    dst: str
    kind: str
    mtu: int
    quoted: str            # hex of the quoted IP header + 8 bytes


@dataclass
class InjectionCheck(NetworkCheck):
    """A network step's check with what the injector logged it sent (its fields, sent, due)."""
    injected: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        return super().to_json() | {"injected": self.injected}


def read_log(path: Path) -> list[dict] | str:
    """The injector's records, or why there are none."""
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except OSError as exc:
        return f"the injector left no log ({path.name}: {exc.strerror or exc})"
    except ValueError:
        return f"the injector's log {path.name} holds a cut or garbled line"


def read_icmp(path: Path) -> list[IcmpError]:
    """Every ICMP destination-unreachable in a pcap."""
    out = []
    with open(path, "rb") as f:
        for ts, buf in dpkt.pcap.Reader(f):
            ip = dpkt.ethernet.Ethernet(buf).data
            if not isinstance(ip, dpkt.ip.IP) or not isinstance(ip.data, dpkt.icmp.ICMP):
                continue
            icmp = ip.data
            if icmp.type != dpkt.icmp.ICMP_UNREACH or icmp.code not in ICMP_NAMES:
                continue
            quoted = buf[14 + ip.hl * 4 + 8:]         # as sent: dpkt would re-serialise the quoted header
            out.append(IcmpError(float(ts), socket.inet_ntoa(ip.src), socket.inet_ntoa(ip.dst), ICMP_NAMES[icmp.code],
                                 getattr(icmp.data, "mtu", 0), quoted.hex()))
    return out


def _tcp_fits(seg: Segment, rec: dict) -> bool:
    options = [name for name, _ in rec["options"]]
    return ((seg.src, seg.sport, seg.dst, seg.dport, seg.seq, seg.ack, seg.length, seg.window, seg.ttl)
            == (rec["src"], rec["sport"], rec["dst"], rec["dport"], rec["seq"], rec["ack"], rec["len"], rec["window"],
                rec["ttl"])
            and sorted(seg.flags) == sorted(rec["flags"]) and [n for n, _ in seg.options] == options
            and all(value == ([seg.tsval, seg.tsecr] if name == "ts" else seg.option_map[name])
                    for name, value in rec["options"] if value is not None))


def _icmp_fits(err: IcmpError, rec: dict) -> bool:
    return ((err.src, err.dst, err.kind, err.quoted) == (rec["src"], rec["dst"], rec["icmp"], rec["quoted"])
            and (rec["icmp"] != "frag-needed" or err.mtu == rec["mtu"]))


def describe_fields(rec: dict) -> str:
    """What an injection sent, in a few words: `R seq=1 ack=0 win=502` or `host-unreachable`."""
    if "icmp" in rec:
        return f"ICMP {rec['icmp']}" + (f" mtu={rec['mtu']}" if rec.get("mtu") else "") + \
            f" {rec['src']} → {rec['dst']} about {rec['dst']}:{rec['dport']}→{rec['src']}:{rec['sport']}"
    opts = "".join(f" {n}" + (f"={v}" if n != "ts" else f"={v[0]}/{v[1]}") for n, v in rec["options"])
    return (f"{rec['flags']} {rec['sport']}→{rec['dport']} seq={rec['seq']} ack={rec['ack']} win={rec['window']} "
            f"len={rec['len']} ttl={rec['ttl']}{opts}")


def check_injection(step: NetworkStep, records: list[dict] | str, leaving: list[Segment], icmp: list[IcmpError],
                    link_delay_s: float) -> InjectionCheck:
    """One inject step: its record in the injector's log, on time, found once in the capture of the
    port it left by (`leaving`, `icmp`: that capture's segments and ICMP errors), with every field
    as logged, `link_delay_s` after it was sent."""
    check = InjectionCheck(step.index, step.action, step.sender, step.receiver, 1, 0, 0)
    if isinstance(records, str):
        check.problems.append(records)
        return check
    mine = [r for r in records if r.get("line") == step.index]
    if len(mine) != 1:
        check.problems.append(f"the injector logged it {len(mine)} time(s), not once")
        return check
    rec = mine[0]
    check.injected.append(rec)
    if rec.get("sent") is None:
        check.problems.append(f"not sent: {rec.get('error', 'no reason logged')}")
        return check
    check.counted = 1
    if abs(rec["sent"] - rec["due"]) > ON_TIME_S:
        check.problems.append(f"sent {(rec['sent'] - rec['due']) * 1e3:+.1f} ms from its moment (allowed ±{ON_TIME_S * 1e3:g} ms)")
    if "icmp" in rec:
        seen = [e.t for e in icmp if _icmp_fits(e, rec) and e.t >= rec["sent"] - LEAVE_TOLERANCE_S]
    else:
        seen = [s.t for s in leaving if _tcp_fits(s, rec) and s.t >= rec["sent"] - LEAVE_TOLERANCE_S]
    check.picked = len(seen)
    what = describe_fields(rec)
    check.segments.append(PickedSegment(rec.get("flags") or rec.get("icmp", ""), rec.get("seq", 0), None, rec["sent"],
                                        seen, held_s=(seen[0] - rec["sent"] - link_delay_s) if seen else None))
    if len(seen) != 1:
        check.problems.append(f"{what}: the capture of {rec['port']} shows it {len(seen)} time(s), not once"
                              + ("" if seen else " (a field differs from the log, or it never left)"))
        return check
    late = seen[0] - rec["sent"]
    if abs(late - link_delay_s) > max(LEAVE_TOLERANCE_S, 0.02 * link_delay_s):
        check.problems.append(f"{what} left {late * 1e3:.1f} ms after it was sent, expected the link's "
                              f"{link_delay_s * 1e3:g} ms")
    return check
