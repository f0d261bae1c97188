"""Socket-state samples -> the sequence of states each socket went through, with intervals."""
from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, replace
from pathlib import Path


@dataclass(frozen=True)
class StateSpan:
    """A state seen in consecutive samples. It began after `sample_before` (the previous sample,
    None if this is the first) and ended before `sample_after` (None if still held at the end).
    CLOSED is the span after the socket vanished from the kernel's tables."""
    state: str
    first_seen: float
    last_seen: float
    sample_before: float | None = None
    sample_after: float | None = None
    timer_due: float | None = None     # when the kernel said the socket's timer would fire (first sample)


def read_samples(path: Path) -> list[dict]:
    """samples/<host>.jsonl (or .jsonl.gz: long runs kept as test fixtures are compressed)."""
    if not path.exists() and path.with_suffix(".jsonl.gz").exists():
        path = path.with_suffix(".jsonl.gz")
    text = gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def sampling_stats(samples: list[dict]) -> dict:
    times = [s["t"] for s in samples]
    gaps = [b - a for a, b in zip(times, times[1:])]
    return {"samples": len(times), "mean_interval_s": sum(gaps) / len(gaps) if gaps else None,
            "max_interval_s": max(gaps) if gaps else None}


def socket_spans(samples: list[dict], local: tuple[str, int], peer: tuple[str, int] | None) -> list[StateSpan]:
    """Spans of one socket, by local and peer address; peer None means the listener on `local`.

    Once seen, a socket missing from a later sample has closed (a CLOSED span); samples before
    it first appears are ignored (it did not exist yet)."""
    spans: list[StateSpan] = []
    previous: float | None = None
    for sample in samples:
        state, due = None, None
        for st, src, sport, dst, dport, *timer in sample["s"]:
            if sport != local[1] or src not in (local[0], "0.0.0.0"):
                continue
            if peer is None and st == "LISTEN" or peer is not None and (dst, dport) == tuple(peer):
                state = st
                due = sample["t"] + timer[1] / 1e3 if timer and timer[0] else None
        if state is None and spans:
            state = "CLOSED"
        if state is not None:
            if spans and spans[-1].state == state:
                spans[-1] = replace(spans[-1], last_seen=sample["t"])
            else:
                if spans:
                    spans[-1] = replace(spans[-1], sample_after=sample["t"])
                spans.append(StateSpan(state, sample["t"], sample["t"], previous, timer_due=due))
        previous = sample["t"]
    return spans
