"""Put the artifacts of one run together: the connection under test, its segments and states."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness.analyse.segments import Segment, of_connection, read_segments
from harness.analyse.states import StateSpan, read_samples, sampling_stats, socket_spans


@dataclass
class Observation:
    client_host: str
    server_host: str
    client: tuple[str, int]
    server: tuple[str, int]
    segments: dict[str, list[Segment]]          # host -> segments of the connection seen at its interface
    states: dict[str, list[StateSpan]]         # host -> spans (server: listener then child)
    sampling: dict[str, dict]
    steps: dict[str, list[dict]] = field(default_factory=dict)   # host -> its step log

    def address(self, host: str) -> tuple[str, int] | None:
        return self.client if host == self.client_host else self.server if host == self.server_host else None

    def to_json(self) -> dict:
        return {"client": list(self.client), "server": list(self.server),
                "states": {h: [asdict(s) for s in spans] for h, spans in self.states.items()},
                "segments": {h: [asdict(s) for s in segs] for h, segs in self.segments.items()},
                "sampling": self.sampling}


def observe(run_dir: Path, steps_log: dict[str, list[dict]], host_interface: dict[str, str]) -> Observation:
    """Find the first connect in the step logs and gather everything seen of that connection."""
    connect_host, entry = next((h, e) for h, entries in steps_log.items() for e in entries if e["action"] == "connect")
    client, server = tuple(entry["local"]), tuple(entry["peer"])
    server_host = next(h for h, e in steps_log.items() for x in e if x["action"] == "listen" and x["local"][1] == server[1])
    segments, states, sampling = {}, {}, {}
    for host, intf in host_interface.items():
        segments[host] = of_connection(read_segments(run_dir / "pcap" / f"{intf}.pcap"), client, server)
        samples = read_samples(run_dir / "samples" / f"{host}.jsonl")
        sampling[host] = sampling_stats(samples)
        if host == connect_host:
            states[host] = socket_spans(samples, client, server)
        elif host == server_host:
            states[host] = socket_spans(samples, server, None) + socket_spans(samples, server, client)
    return Observation(connect_host, server_host, client, server, segments, states, sampling, steps_log)
