"""Judge: compare the observation with the experiment's expectations (pure; no root needed)."""
from __future__ import annotations

from dataclasses import replace

from harness.analyse.connection import Observation
from harness.judge.packets import describe, match_packets
from harness.judge.states import judge_states
from harness.judge.timing import judge_timing
from harness.judge.verdict import Verdict
from harness.model import Expectations

__all__ = ["Verdict", "judge_all"]

READS = ("recv", "wait")


def judge_all(expect: Expectations, obs: Observation, rtt_s: float) -> list[Verdict]:
    """One verdict per expectation, each carrying the expectation's line in the file."""
    def at(key: str, verdict: Verdict) -> Verdict:
        return replace(verdict, line=expect.lines.get(key))

    verdicts = [at(f"{host}.states", judge_states(host, states, obs)) for host, states in expect.states.items()]
    for host, wanted in expect.received.items():
        got = sum(e.nbytes or 0 for e in obs.steps.get(host, []) if e.action in READS)
        verdicts.append(at(f"{host}.received", Verdict(f"{host} received", f"{wanted} bytes", f"{got} bytes", got == wanted)))
    for host, wanted in expect.accepted.items():
        got = sum(1 for e in obs.steps.get(host, []) if e.accepted)
        verdicts.append(at(f"{host}.accepted", Verdict(f"{host} accepted", f"{wanted} connection(s)",
                                                       f"{got} connection(s)", got == wanted)))
    for host, names in expect.errors.items():
        got = [f"{e.action}: {e.errno}" for e in obs.steps.get(host, []) if e.errno]
        missing = [n for n in names if not any(g.endswith(f": {n}") for g in got)]
        verdicts.append(at(f"{host}.errors", Verdict(f"{host} errors", ", ".join(names), ", ".join(got) or "no call failed",
                                                     not missing)))
    if expect.packets:
        addr = {h: a for h, a in ((obs.client_host, obs.client), (obs.server_host, obs.server)) if h and a}
        ok, observed = match_packets(expect.packets, obs.segments.get(obs.client_host, []), addr)
        verdicts.append(at("packets", Verdict("packets", describe(expect.packets), observed, ok)))
    verdicts += [at(f"timing.{t.name}", judge_timing(t, obs, rtt_s)) for t in expect.timing]
    return verdicts
