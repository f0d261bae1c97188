"""Socket-state samples -> the sequence of states each socket went through, with intervals."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StateSpan:
    state: str
    first_seen: float
    last_seen: float


def read_samples(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def sampling_stats(samples: list[dict]) -> dict:
    times = [s["t"] for s in samples]
    gaps = [b - a for a, b in zip(times, times[1:])]
    return {"samples": len(times), "mean_interval_s": sum(gaps) / len(gaps) if gaps else None,
            "max_interval_s": max(gaps) if gaps else None}


def socket_spans(samples: list[dict], local: tuple[str, int], peer: tuple[str, int] | None) -> list[StateSpan]:
    """Spans of one socket, by local and peer address; peer None means the listener on `local`."""
    spans: list[StateSpan] = []
    for sample in samples:
        state = None
        for st, src, sport, dst, dport, *_ in sample["s"]:
            if sport != local[1] or src not in (local[0], "0.0.0.0"):
                continue
            if peer is None and st == "LISTEN" or peer is not None and (dst, dport) == tuple(peer):
                state = st
        if state is None:
            continue
        if spans and spans[-1].state == state:
            spans[-1] = StateSpan(state, spans[-1].first_seen, sample["t"])
        else:
            spans.append(StateSpan(state, sample["t"], sample["t"]))
    return spans
