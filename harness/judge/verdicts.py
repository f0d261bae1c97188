"""Compare what was observed with what the experiment expects; every verdict says both."""
from __future__ import annotations

import re
from dataclasses import dataclass

from harness.analyse.connection import Observation
from harness.analyse.segments import Segment
from harness.load.units import parse_seconds
from harness.model import Expectations, PacketPattern, TimingExpectation


@dataclass(frozen=True)
class Verdict:
    name: str
    expected: str
    observed: str
    passed: bool


def handshake_timing(obs: Observation, at: str) -> float | None:
    """Client: SYN sent -> final ACK sent. Server: SYN received -> final ACK received.

    Both measured at the host's own interface, so both equal one path RTT (outgoing packets are
    captured after the interface's own netem delay, incoming ones on arrival).
    """
    host = obs.client_host if at == "client" else obs.server_host
    segs = obs.segments.get(host, [])
    syn = next((s for s in segs if s.flags == "S" and (s.src, s.sport) == obs.client), None)
    synack = next((s for s in segs if s.flags == "SA" and syn and s.t >= syn.t), None)
    ack = next((s for s in segs if synack and s.t >= synack.t and "A" in s.flags and "S" not in s.flags
                and (s.src, s.sport) == obs.client), None)
    return ack.t - syn.t if syn and ack else None


def _tolerance(within: str, expected: float) -> float:
    return expected * float(within[:-1]) / 100 if within.endswith("%") else parse_seconds(within)


def judge_timing(exp: TimingExpectation, obs: Observation, rtt_s: float) -> Verdict:
    m = re.fullmatch(r"([0-9.]*)rtt", exp.equals)
    expected = (float(m.group(1) or 1) * rtt_s) if m else parse_seconds(exp.equals)
    tol = _tolerance(exp.within, expected)
    measured = handshake_timing(obs, exp.name.removeprefix("handshake_"))
    text = f"{expected * 1e3:.1f} ms ± {tol * 1e3:.1f} ms" + (f" ({exp.equals}, RTT {rtt_s * 1e3:g} ms)" if m else "")
    if measured is None:
        return Verdict(exp.name, text, "no complete handshake in the capture", False)
    return Verdict(exp.name, text, f"{measured * 1e3:.1f} ms", abs(measured - expected) <= tol)


def judge_states(host: str, expected: tuple[str, ...], obs: Observation) -> Verdict:
    seen = [span.state for span in obs.states.get(host, [])]
    gap = obs.sampling.get(host, {}).get("max_interval_s")
    observed = " → ".join(seen) or "no state seen"
    passed = seen == list(expected)
    if not passed and gap:
        observed += f" (sampled every ≤{gap * 1e3:.1f} ms)"
    return Verdict(f"{host} states", " → ".join(expected), observed, passed)


def _term(term: str, env: dict[str, int]) -> int | None:
    m = re.fullmatch(r"([a-z]\w*)?([+-]?[0-9]+)?", term)
    if m.group(1) is None:
        return int(term)
    base = env.get(m.group(1))
    return None if base is None else (base + int(m.group(2) or 0)) % 2**32


def match_packets(patterns: tuple[PacketPattern, ...], segments: list[Segment], addr: dict[str, tuple[str, int]]) -> tuple[bool, str]:
    """Match patterns in order against segments; names bind on first use (seq: x), then must agree."""
    env: dict[str, int] = {}
    pos = 0
    lines = []
    for pattern in patterns:
        want = "".join(sorted(pattern.flags))
        found = None
        while pos < len(segments):
            seg = segments[pos]
            pos += 1
            if (seg.src, seg.sport) == addr[pattern.sender] and "".join(sorted(seg.flags.replace("P", ""))) == "".join(sorted(want.replace("P", ""))):
                found = seg
                break
        if found is None:
            lines.append(f"{pattern.sender} {pattern.flags}: not seen")
            return False, "; ".join(lines)
        desc = f"{pattern.sender} {found.flags} seq={found.seq} ack={found.ack}"
        for field in ("seq", "ack"):
            term = getattr(pattern, field)
            if term is None:
                continue
            value = getattr(found, field)
            name = re.fullmatch(r"[a-z]\w*", term)
            if name and term not in env:
                env[term] = value
                continue
            want_value = _term(term, env)
            if want_value != value:
                lines.append(desc)
                return False, "; ".join(lines) + f" — {field} should be {term} = {want_value}"
        lines.append(desc)
    return True, "; ".join(lines)


def judge_all(expect: Expectations, obs: Observation, rtt_s: float) -> list[Verdict]:
    verdicts = [judge_states(host, states, obs) for host, states in expect.states.items()]
    if expect.packets:
        addr = {obs.client_host: obs.client, obs.server_host: obs.server}
        ok, observed = match_packets(expect.packets, obs.segments.get(obs.client_host, []), addr)
        expected = "; ".join(f"{p.sender} {p.flags}" + (f" seq={p.seq}" if p.seq else "") + (f" ack={p.ack}" if p.ack else "")
                             for p in expect.packets)
        verdicts.append(Verdict("packets", expected, observed, ok))
    verdicts += [judge_timing(t, obs, rtt_s) for t in expect.timing]
    return verdicts
