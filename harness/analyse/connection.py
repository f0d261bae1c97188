"""Put the artifacts of one run together: the connection under test, its segments and states."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness.analyse.segments import Segment, of_connection, read_segments
from harness.analyse.states import SamplingStats, StateSpan, read_samples, sampling_stats, socket_spans
from harness.model import StepRecord


@dataclass
class Observation:
    """What was seen of the connection under test. With no connect in the step logs there is no
    connection: client and server are None and no segments are kept (the states of listeners are)."""
    client_host: str | None
    server_host: str | None
    client: tuple[str, int] | None
    server: tuple[str, int] | None
    segments: dict[str, list[Segment]]          # host -> segments of the connection seen at its interface
    states: dict[str, list[StateSpan]]         # host -> spans (server: listener then child)
    sampling: dict[str, SamplingStats]
    steps: dict[str, list[StepRecord]] = field(default_factory=dict)   # host -> its step log

    def address(self, host: str) -> tuple[str, int] | None:
        return self.client if host == self.client_host else self.server if host == self.server_host else None

    def to_json(self) -> dict:
        return {"client": list(self.client) if self.client else None, "server": list(self.server) if self.server else None,
                "client_host": self.client_host, "server_host": self.server_host,
                "states": {h: [asdict(s) for s in spans] for h, spans in self.states.items()},
                "segments": {h: [asdict(s) for s in segs] for h, segs in self.segments.items()},
                "sampling": {h: asdict(s) for h, s in self.sampling.items()}}


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


def observe(run_dir: Path, steps_log: dict[str, list[StepRecord]], host_interface: dict[str, str],
            host_ips: dict[str, str] | None = None) -> Observation:
    """Find the first connect in the step logs and gather everything seen of that connection.

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
    segments, states, sampling = {}, {}, {}
    for host, intf in host_interface.items():
        segments[host] = of_connection(read_segments(run_dir / "pcap" / f"{intf}.pcap"), client, server) if first else []
        samples = read_samples(run_dir / "samples" / f"{host}.jsonl")
        sampling[host] = sampling_stats(samples)
        if host == connect_host:
            states[host] = socket_spans(samples, client, server)
        elif host == server_host:
            states[host] = socket_spans(samples, server, None) + socket_spans(samples, server, client)
        elif host in listeners:
            states[host] = socket_spans(samples, listeners[host], None)
    return Observation(connect_host, server_host, client, server, segments, states, sampling, steps_log)
