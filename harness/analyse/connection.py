"""Put the artifacts of one run together: the first connection (the host-level view every
single-connection experiment is judged on) and every named socket's own view of its connection."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness.analyse.kernel_trace import KernelTrace, first_syns, read_kernel_trace
from harness.analyse.traced_states import listeners_traced, merged_spans
from harness.analyse.incarnations import SocketView, attach, declared_sockets, unique
from harness.analyse.segments import Segment, of_connection, read_segments
from harness.analyse.states import SamplingStats, StateSpan, dump_times, read_samples, sampling_stats, socket_spans
from harness.model import StepRecord

__all__ = ["Observation", "SocketView", "observe", "kernel_pcap_path"]


def kernel_pcap_path(run_dir: Path, host: str) -> Path:
    """Where the recorder writes a host's kernel-time send capture (record.kernel_sends names it so)."""
    return run_dir / "pcap" / f"{host}.kernel.pcap"


@dataclass
class Observation:
    """What was seen of the run. The host-level fields follow the first connection (as they always
    have); `sockets` has every socket by each of its names. With no connect in the step logs there
    is no first connection: client and server are None and no segments are kept (listeners' states are)."""
    client_host: str | None
    server_host: str | None
    client: tuple[str, int] | None
    server: tuple[str, int] | None
    segments: dict[str, list[Segment]]          # host -> segments of the connection seen at its interface
    states: dict[str, list[StateSpan]]         # host -> spans (server: listener then child)
    sampling: dict[str, SamplingStats]
    steps: dict[str, list[StepRecord]] = field(default_factory=dict)   # host -> its step log
    sockets: dict[str, SocketView] = field(default_factory=dict)       # socket name (aliases too) -> its view
    # host -> every segment its TCP handed to its interface (kernel time, before its link's delay);
    # no entry: the run had no kernel-time capture of that host (recorded before it existed)
    kernel_segments: dict[str, list[Segment]] = field(default_factory=dict)
    host_ips: dict[str, str] = field(default_factory=dict)
    trace: KernelTrace | None = None      # the kernel's tracepoints (None: the run has no trace/kernel.trace)
    # where the sampled states contradict the traced ones: the run's evidence does not hold together
    disagreements: list[str] = field(default_factory=list)

    def address(self, host: str) -> tuple[str, int] | None:
        return self.client if host == self.client_host else self.server if host == self.server_host else None

    def view(self, subject: str) -> SocketView | None:
        """The socket a subject names (None: it is a host, or names nothing)."""
        return None if subject in self.segments or subject in self.states else self.sockets.get(subject)

    def host_of(self, address: tuple[str, int] | None) -> str | None:
        """The host an address belongs to: by the plan's addresses, else by the sockets seen."""
        if address is None:
            return None
        by_ip = next((h for h, ip in self.host_ips.items() if ip == address[0]), None)
        return by_ip or next((v.host for v in unique(self.sockets) if v.local == tuple(address)), None)

    def to_json(self) -> dict:
        return {"client": list(self.client) if self.client else None, "server": list(self.server) if self.server else None,
                "client_host": self.client_host, "server_host": self.server_host,
                "states": {h: [asdict(s) for s in spans] for h, spans in self.states.items()},
                "segments": {h: [asdict(s) for s in segs] for h, segs in self.segments.items()},
                "sampling": {h: asdict(s) for h, s in self.sampling.items()},
                "sockets": {v.name: _view_json(v) for v in unique(self.sockets)}}


def _view_json(v: SocketView) -> dict:
    """result.json's account of one socket (its segments are in the host-level lists or the pcaps)."""
    return {"host": v.host, "kind": v.kind, "aliases": list(v.aliases), "local": list(v.local) if v.local else None,
            "peer": list(v.peer) if v.peer else None, "created": v.created, "cookie": v.cookie,
            "incarnation": v.incarnation, "segments": len(v.segments), "states": [asdict(s) for s in v.states]}


def _first_connect(steps_log: dict[str, list[StepRecord]]) -> tuple[str, StepRecord] | None:
    """The first connect that got as far as binding its socket (the log gives its addresses)."""
    return next(((h, e) for h, entries in steps_log.items() for e in entries
                 if e.action == "connect" and e.local and e.peer), None)


def _server_host(steps_log: dict[str, list[StepRecord]], server: tuple[str, int], host_ips: dict[str, str]) -> str | None:
    """The host listening on the connected port (at the connected address, when addresses are
    known), else (nobody listened: a refused connect) the host that has the connected address."""
    def listens(host: str, entry: StepRecord) -> bool:
        return (entry.action == "listen" and bool(entry.local) and entry.local[1] == server[1]
                and host_ips.get(host, server[0]) == server[0])
    listening = next((h for h, entries in steps_log.items() for e in entries if listens(h, e)), None)
    return listening or next((h for h, ip in host_ips.items() if ip == server[0]), None)


def _kernel_captures(run_dir: Path, hosts, read: Callable[[Path], list[Segment]]) -> dict[str, list[Segment]]:
    """Each host's kernel-time sends, for the hosts that have the capture (runs recorded before it did not)."""
    return {h: read(kernel_pcap_path(run_dir, h)) for h in hosts if kernel_pcap_path(run_dir, h).exists()}


def observe(run_dir: Path, steps_log: dict[str, list[StepRecord]], host_interface: dict[str, str],
            host_ips: dict[str, str] | None = None,
            read: Callable[[Path], list[Segment]] = read_segments) -> Observation:
    """Find the first connect in the step logs and gather everything seen of that connection.
    `read`: how a pcap becomes segments (the runner's parses each file once per run).

    Every shape of run is observed, none raises: no connect (only listeners' states are kept),
    a connect nobody listened for (the server host is the one with the connected address)."""
    host_ips = host_ips or {}
    first = _first_connect(steps_log)
    connect_host, client, server, server_host = None, None, None, None
    if first:
        connect_host, entry = first
        client, server = entry.local, entry.peer
        server_host = _server_host(steps_log, server, host_ips)
    listeners = {h: e.local for h, entries in steps_log.items() for e in entries if e.action == "listen" and e.local}
    kernel = _kernel_captures(run_dir, host_interface, read)
    trace = read_kernel_trace(run_dir, first_syns(s for segs in kernel.values() for s in segs))
    segments, states, sampling = {}, {}, {}
    problems: list[str] = []
    captured, all_samples = {}, {}
    for host, intf in host_interface.items():
        pcap = run_dir / "pcap" / f"{intf}.pcap"
        captured[host] = read(pcap) if first or pcap.exists() else []
        segments[host] = of_connection(captured[host], client, server) if first else []
        samples = all_samples[host] = read_samples(run_dir / "samples" / f"{host}.jsonl")
        sampling[host] = sampling_stats(samples)
        parts = []         # (local, peer) whose spans make the host's: its listener, then the connection
        if host == connect_host:
            parts = [(client, server)]
        elif host == server_host:
            parts = [(server, None), (server, client)]
        elif host in listeners:
            parts = [(listeners[host], None)]
        if parts:
            states[host], dumps = [], dump_times(samples)
            for local, peer in parts:
                spans, said = _traced(socket_spans(samples, local, peer), trace, host, local, peer,
                                      _listening_hosts(steps_log, local[1]), dumps)
                states[host] += spans
                problems += said
    sockets = declared_sockets(steps_log)
    problems += attach(sockets, captured, kernel, all_samples, trace)
    return Observation(connect_host, server_host, client, server, segments, states, sampling, steps_log,
                       sockets, kernel, dict(host_ips), trace, list(dict.fromkeys(problems)))


def _listening_hosts(steps_log: dict[str, list[StepRecord]], port: int) -> int:
    """How many hosts listen on `port` (the trace cannot tell their 0.0.0.0 listeners apart)."""
    return len({h for h, entries in steps_log.items() for e in entries
                if e.action == "listen" and e.local and e.local[1] == port})


def _traced(spans: list[StateSpan], trace: KernelTrace | None, host: str, local, peer,
            listening_hosts: int, dumps: dict[float, float]) -> tuple[list[StateSpan], list[str]]:
    """A host-level socket's sampled spans with the trace's exact ones (the trace's sockets of its
    four-tuple, or its listener), and the disagreements found on the way."""
    if trace is None:
        return spans, []
    traced = (listeners_traced(trace, local, listening_hosts) if peer is None else trace.sockets_of(local, peer))
    return merged_spans(spans, traced, host, dumps)
