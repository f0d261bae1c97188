"""One recorded run as the HTML report reads it: result.json, every capture's segments, the lab.

Why: the report (ladder, page, time-sequence view) must read a run folder one way only, and must
work on folders recorded before result.json had a `lab` section (then a plain lab is made up
from the observation: the two connecting hosts and their interfaces, delays unknown = 0)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from harness.analyse.icmp_path import IcmpMessage, icmp_messages, read_icmp_errors
from harness.analyse.journeys import Journey, journeys
from harness.dpkt_parts import dpkt

from harness.analyse.segments import Segment, frame_segment, read_segments

LEAD_S = 0.02        # shown before the first thing that happened
OLD_PORT_S = 0.002   # a switch port facing a host sees its sends this close to its interface


@dataclass
class RunData:
    """A run folder, read: its result, its captures (file stem -> segments) and lab."""
    run_dir: Path
    result: dict
    captures: dict[str, list[Segment]]
    lab: dict
    problems: list[str] = field(default_factory=list)    # captures that could only be read in part

    @cached_property
    def journeys(self) -> list[Journey]:
        """Each segment's way through the captures (harness.analyse.journeys)."""
        return journeys(self.captures, self.lab, self.result.get("network") or [])

    @cached_property
    def icmp(self) -> list[IcmpMessage]:
        """The ICMP errors routers sent (harness.analyse.icmp_path), from the run's pcaps."""
        sightings = [s for p in sorted((self.run_dir / "pcap").glob("*.pcap")) for s in read_icmp_errors(p)]
        return icmp_messages(sightings, self.lab)

    @cached_property
    def t0(self) -> float:
        """The earliest moment to show: the first send or capture, or the first sample of a socket
        in any state but LISTEN (a listener waits from long before: its band is cut here), a little before."""
        times = [s.t for segs in self.captures.values() for s in segs[:1]]
        times += [j.sent for j in self.journeys[:1]]
        times += [span["first_seen"] for spans in state_columns(self.result).values() for span in spans
                  if span.get("state") != "LISTEN"]
        if not times:
            times = [span["first_seen"] for spans in state_columns(self.result).values() for span in spans]
        return min(times) - LEAD_S if times else 0.0


def _first_match(seg: Segment, segs: list[Segment]) -> Segment | None:
    fields = (seg.src, seg.sport, seg.dst, seg.dport, seg.seq, seg.ack, seg.flags, seg.length, seg.tsval)
    return next((o for o in segs if (o.src, o.sport, o.dst, o.dport, o.seq, o.ack, o.flags, o.length, o.tsval)
                 == fields), None)


def _facing(hosts: dict, captures: dict[str, list[Segment]]) -> dict[str, str]:
    """Switch port capture -> the host it faces: the one whose first send it saw as that host's
    interface did (same fields, within OLD_PORT_S)."""
    out = {}
    interfaces = {h["interface"] for h in hosts.values()}
    for stem, segs in captures.items():
        if stem in interfaces or stem.endswith(".kernel") or "-" not in stem:
            continue
        for name, h in hosts.items():
            mine = next((g for g in segs if g.src == h["ip"]), None)
            there = _first_match(mine, captures.get(h["interface"], [])) if mine else None
            if there and abs(there.t - mine.t) < OLD_PORT_S:
                out[stem] = name
    return out


def _kernel_delay(host: str, hosts: dict, captures: dict[str, list[Segment]]) -> float:
    """A host's link delay, from its first send: interface time less kernel time (0 without)."""
    kernel = captures.get(f"{host}.kernel", [])
    there = _first_match(kernel[0], captures.get(hosts[host]["interface"], [])) if kernel else None
    return max(0.0, there.t - kernel[0].t) if there else 0.0


def _old_link(a: str, b: str, a_interface: str, b_interface: str, delay: float) -> dict:
    way = {"delay_s": delay, "jitter_s": 0.0, "loss_pct": 0.0, "bw_mbit": None, "queue": None}
    return {"a": a, "b": b, "a_interface": a_interface, "b_interface": b_interface, "a_to_b": way, "b_to_a": dict(way)}


def _old_lab(result: dict, captures: dict[str, list[Segment]]) -> dict:
    """A lab for a run recorded before result.json had one: the two connecting hosts, and the
    switch ports whose captures show what each host sent (each link's delay: its host's, both ways)."""
    obs = result.get("observation") or {}
    hosts = {}
    for role in ("client", "server"):
        host, address = obs.get(f"{role}_host"), obs.get(role)
        if host and address:
            hosts[host] = {"ip": address[0], "interface": f"{host}-eth0"}
    ports = _facing(hosts, captures)
    links = [_old_link(h, stem.split("-")[0], hosts[h]["interface"], stem, _kernel_delay(h, hosts, captures))
             for stem, h in ports.items()]
    names = list(hosts)
    if not links and len(names) == 2:
        links = [_old_link(names[0], names[1], hosts[names[0]]["interface"], hosts[names[1]]["interface"], 0.0)]
    return {"hosts": hosts, "switches": sorted({s.split("-")[0] for s in ports}), "links": links, "network_steps": []}


def state_columns(result: dict) -> dict[str, list[dict]]:
    """One column of state spans per socket name (observation.sockets), or per host for runs
    recorded before sockets had their own states (observation.states). A host whose own account
    has spans none of its sockets has (a request socket's: a stale SYN's SYN-RECV) gets a column
    of those, named by the host."""
    obs = result.get("observation") or {}
    sockets = obs.get("sockets") or {}
    host_states = dict(obs.get("states") or {})
    if not any(v.get("states") for v in sockets.values()):
        return host_states
    columns = {name: v.get("states") or [] for name, v in sockets.items()}
    for host, spans in host_states.items():
        extra = _uncovered(spans, [v for v in sockets.values() if v.get("host") == host])
        if extra and host not in columns:
            columns[host] = extra
    return columns


def _uncovered(spans: list[dict], views: list[dict]) -> list[dict]:
    """The host's spans that none of its sockets' spans is (same state, same first sample)."""
    covered = {(s["state"], s["first_seen"]) for v in views for s in v.get("states") or []}
    return [s for s in spans if (s["state"], s["first_seen"]) not in covered]


def load_run(run_dir: Path | str) -> RunData:
    """Read a run folder; a folder that is not a run (no result.json) is refused with a ValueError."""
    run_dir = Path(run_dir)
    path = run_dir / "result.json"
    if not path.is_file():
        raise ValueError(f"{run_dir} is not a run folder: it has no result.json")
    try:
        result = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc})") from exc
    problems: list[str] = []
    captures = {p.name[:-len(".pcap")]: _read(p, problems) for p in sorted((run_dir / "pcap").glob("*.pcap"))}
    lab = result.get("lab") or _old_lab(result, captures)
    return RunData(run_dir, result, captures, lab, problems)


def _read(path: Path, problems: list[str]) -> list[Segment]:
    """A capture's segments; one cut short (a full disk, a killed tcpdump) gives those before the cut."""
    try:
        return read_segments(path)
    except Exception:           # dpkt raises its own errors, struct's and ValueError on a broken file
        pass
    out: list[Segment] = []
    try:
        with open(path, "rb") as f:
            for ts, buf in dpkt.pcap.Reader(f):
                seg = frame_segment(float(ts), buf)
                if seg is not None:
                    out.append(seg)
    except Exception as exc:
        problems.append(f"{path.name} could be read only up to segment {len(out)} ({type(exc).__name__})")
    return out
