"""Socket-state samples -> the sequence of states each socket went through, with intervals."""
from __future__ import annotations

import gzip
import json
from bisect import bisect_left, bisect_right
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
    timer_due: float | None = None     # when the kernel said the socket's timer would fire (last sample)
    timer_rearmed: int = 0             # times the kernel moved that moment later (TIME-WAIT restarted...)
    # where each edge comes from: "samples" (somewhere between sample_before and first_seen, or
    # last_seen and sample_after) or "trace" (the kernel's tracepoint: the edge is exact, and
    # sample_before == first_seen, last_seen == sample_after)
    start_source: str = "samples"
    end_source: str = "samples"


def read_samples(path: Path) -> list[dict]:
    """samples/<host>.jsonl (or .jsonl.gz: long runs kept as test fixtures are compressed)."""
    if not path.exists() and path.with_suffix(".jsonl.gz").exists():
        path = path.with_suffix(".jsonl.gz")
    text = gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@dataclass(frozen=True)
class SamplingStats:
    """How often a host's sampler really sampled (result.json's observation.sampling)."""
    samples: int
    mean_interval_s: float | None
    max_interval_s: float | None


def sampling_stats(samples: list[dict]) -> SamplingStats:
    times = [s["t"] for s in samples]
    gaps = [b - a for a, b in zip(times, times[1:])]
    return SamplingStats(len(times), sum(gaps) / len(gaps) if gaps else None, max(gaps) if gaps else None)


def dump_times(samples: list[dict]) -> dict[float, float]:
    """How long each sample's dump took, by its time (samples recorded before "d" existed: none)."""
    return {s["t"]: s["d"] for s in samples if "d" in s}


Row = list      # a sample's row: state, src, sport, dst, dport, timer, expires_ms, retrans[, cookie]
COOKIE = 8      # the cookie's column; rows recorded before it existed have 8 columns


def row_cookie(row: Row) -> int | None:
    return row[COOKIE] if len(row) > COOKIE else None


def _seen(sample: dict, row: Row) -> tuple[str, float | None, bool]:
    """A row's state, its timer's due moment, and whether that timer is still pending."""
    st, timer = row[0], row[5:7]
    due = sample["t"] + timer[1] / 1e3 if timer and timer[0] else None
    return st, due, bool(timer and timer[0] and timer[1] > 0)


def spans_of(samples: list[dict], pick, one_socket: bool = False) -> list[StateSpan]:
    """Spans of one socket, `pick(sample)` giving its row in a sample (None: not there).

    Once seen, a socket missing from a later sample has closed (a CLOSED span); samples before
    it first appears are ignored (it did not exist yet). `one_socket`: `pick` follows one socket
    (its cookie), which cannot come back once closed — a CLOSED seen and then the socket again is
    the full socket dying as its TIME-WAIT socket takes over (tcp_time_wait: the TIME-WAIT socket
    keeps the cookie; the dying one is dumped in CLOSE with port 0 for a moment), or a dump that
    missed it: not a state of the connection. That sample is then left out, so the change around
    it is bracketed by the samples on either side."""
    spans: list[StateSpan] = []
    previous: float | None = None
    last = 0.0            # the open span's last sample (its last_seen is written when it closes)
    for sample in samples:
        row = pick(sample)
        state, due, pending = _seen(sample, row) if row is not None else (None, None, False)
        if state is None and spans:
            state = "CLOSED"
        if one_socket and state not in (None, "CLOSED") and len(spans) > 1 and spans[-1].state == "CLOSED":
            spans.pop()
            spans[-1] = replace(spans[-1], sample_after=None)
            last = previous = spans[-1].last_seen
        if state is not None:
            if spans and spans[-1].state == state:
                last = sample["t"]
                timer = _timer(spans[-1], due if pending else None)
                if timer:
                    spans[-1] = replace(spans[-1], **timer)
            else:
                if spans:
                    spans[-1] = replace(spans[-1], last_seen=last, sample_after=sample["t"])
                spans.append(StateSpan(state, sample["t"], sample["t"], previous, timer_due=due))
                last = sample["t"]
        previous = sample["t"]
    if spans:
        spans[-1] = replace(spans[-1], last_seen=last)
    return spans


def socket_spans(samples: list[dict], local: tuple[str, int], peer: tuple[str, int] | None) -> list[StateSpan]:
    """Spans of one socket, by local and peer address; peer None means the listener on `local`
    (the last row that fits a sample counts, as it always has)."""
    def pick(sample: dict) -> Row | None:
        found = None
        for row in sample["s"]:
            st, src, sport, dst, dport = row[:5]
            if sport != local[1] or src not in (local[0], "0.0.0.0"):
                continue
            if peer is None and st == "LISTEN" or peer is not None and (dst, dport) == tuple(peer):
                found = row
        return found
    return spans_of(samples, pick)


class CookieRows:
    """Each socket's rows by cookie, then by sample time: one pass over a host's samples, so a
    run with a hundred connections does not scan every row once per socket."""

    def __init__(self, samples: list[dict]) -> None:
        self.rows: dict[int, dict[float, Row]] = {}
        self.times = [sample["t"] for sample in samples]
        for sample in samples:
            for row in sample["s"]:
                if (cookie := row_cookie(row)) is not None:
                    self.rows.setdefault(cookie, {})[sample["t"]] = row

    def at(self, cookie: int, t: float) -> Row | None:
        return self.rows.get(cookie, {}).get(t)

    def around(self, samples: list[dict], times: list[float]) -> list[dict]:
        """The samples that can change the spans of a socket seen at `times`: from the one before
        the first to the one after the last (where it is gone), and the last sample (how long the
        CLOSED span lasts); the ones in between add nothing."""
        if not times:
            return []
        first, last = bisect_left(self.times, min(times)), bisect_right(self.times, max(times))
        return samples[max(first - 1, 0):last + 1] + (samples[-1:] if last + 1 < len(samples) else [])


def cookie_spans(samples: list[dict], cookie: int, before: dict[float, int] | None = None,
                 index: CookieRows | None = None) -> list[StateSpan]:
    """Spans of the socket with this cookie (a TIME-WAIT socket keeps its full socket's). `before`:
    for samples (by time) before the socket existed, the cookie of the request socket that stood
    for it (an accepted connection's SYN-RECV: the child gets a cookie of its own)."""
    before, index = before or {}, index or CookieRows(samples)

    def pick(sample: dict) -> Row | None:
        own = index.at(cookie, sample["t"])
        if own is not None or sample["t"] not in before:
            return own
        return index.at(before[sample["t"]], sample["t"])
    return spans_of(index.around(samples, list(index.rows.get(cookie, {})) + list(before)), pick, one_socket=True)


def request_cookies(samples: list[dict], cookie: int, local: tuple[str, int], peer: tuple[str, int],
                    index: CookieRows | None = None) -> dict[float, int]:
    """The SYN-RECV rows of this four-tuple (a request socket, its own cookie) in the samples just
    before the accepted socket with `cookie` first appears: sample time -> the request's cookie."""
    index = index or CookieRows(samples)
    first = min(index.rows.get(cookie, {}), default=None)
    found: dict[float, int] = {}
    for sample in reversed(samples[:bisect_left(index.times, first)] if first is not None else []):
        row = next((r for r in sample["s"] if r[0] == "SYN-RECV" and tuple(r[1:3]) == tuple(local)
                    and tuple(r[3:5]) == tuple(peer) and row_cookie(r) is not None), None)
        if row is None:
            break
        found[sample["t"]] = row_cookie(row)
    return found


REARMED_S = 0.1   # the kernel reports whole jiffies (4 ms at HZ=250): a later due moment past this is a new timer


def _timer(span: StateSpan, due: float | None) -> dict:
    """The span's timer as a later sample has it (`due` None: no timer pending, or one already
    expired and waiting for the timer wheel, which reports 0 ms left). When the kernel re-arms it
    (a SYN+ACK restarting TIME-WAIT under tcp_rfc1337=1, a retransmission), the last moment counts."""
    if due is None:
        return {}
    if span.timer_due is None:
        return {"timer_due": due}
    if due - span.timer_due > REARMED_S:
        return {"timer_due": due, "timer_rearmed": span.timer_rearmed + 1}
    return {}
