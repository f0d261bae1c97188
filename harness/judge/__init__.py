"""Judge: compare the observation with the experiment's expectations (pure; no root needed).

An expectation's subject is a host (the host-level view: its first connection, its calls) or a
named socket (that socket's own incarnation, states and calls)."""
from __future__ import annotations

from dataclasses import replace

from harness.analyse.connection import Observation, SocketView
from harness.analyse.incarnations import unique
from harness.judge.counters import judge_counter, judge_tcp_info_field
from harness.judge.packets import describe, match_packets
from harness.judge.states import judge_states
from harness.judge.timing import judge_handshake, judge_timing
from harness.judge.verdict import Marks, Verdict
from harness.model import Expectations, StepRecord

__all__ = ["Verdict", "judge_all"]

READS = ("recv", "wait")
Address = tuple[str, int]


def calls_of(obs: Observation, subject: str) -> list[StepRecord]:
    """A socket's calls, or a host's whole step log."""
    view = obs.view(subject)
    return view.steps if view is not None else obs.steps.get(subject, [])


def _own_address(obs: Observation, view: SocketView) -> Address | None:
    """Where a socket's segments come from: a listener bound to 0.0.0.0 sends from its host's address."""
    if view.local and view.local[0] == "0.0.0.0":
        ip = obs.host_ips.get(view.host)
        return (ip, view.local[1]) if ip else None
    return view.local


def socket_addresses(obs: Observation, view: SocketView) -> dict[str, Address]:
    """The names a socket's packet patterns may use: its own names and its host for its end; the
    peer's host and every name of a socket at the other end of the four-tuple for the peer."""
    addr: dict[str, Address] = {}
    if view.peer:
        for other in unique(obs.sockets):
            if (other.local, other.peer) == (view.peer, view.local):
                addr.update({name: view.peer for name in other.names})
        peer_host = obs.host_of(view.peer)
        if peer_host:
            addr[peer_host] = view.peer
    if view.local:
        addr.update({name: view.local for name in view.names + (view.host,)})
    return addr


def connection_addresses(obs: Observation) -> dict[str, Address]:
    """Top-level patterns' senders: the first connection's hosts, or any socket by name (its local address)."""
    addr = {name: a for view in unique(obs.sockets) if (a := _own_address(obs, view)) for name in view.names}
    addr.update({h: a for h, a in ((obs.client_host, obs.client), (obs.server_host, obs.server)) if h and a})
    return addr


def _socket_packets(name: str, patterns: tuple, obs: Observation) -> Verdict:
    view = obs.sockets.get(name)
    if view is None:
        return Verdict(f"{name} packets", describe(patterns), f"no socket named {name} was made", False)
    ok, observed, marks = match_packets(patterns, view.segments, socket_addresses(obs, view))
    return Verdict(f"{name} packets", describe(patterns), observed, ok, marks=marks | Marks((name,)))


def _received(who: str, wanted: int, obs: Observation) -> Verdict:
    got = sum(e.nbytes or 0 for e in calls_of(obs, who) if e.action in READS)
    return Verdict(f"{who} received", f"{wanted} bytes", f"{got} bytes", got == wanted, marks=Marks((who,)))


def _accepted(who: str, wanted: int, obs: Observation) -> Verdict:
    got = sum(1 for e in obs.steps.get(who, []) if e.accepted)
    return Verdict(f"{who} accepted", f"{wanted} connection(s)", f"{got} connection(s)", got == wanted,
                   marks=Marks((who,)))


def _errors(who: str, names: tuple[str, ...], obs: Observation) -> Verdict:
    got = [f"{e.action}: {e.errno}" for e in calls_of(obs, who) if e.errno]
    missing = [n for n in names if not any(g.endswith(f": {n}") for g in got)]
    return Verdict(f"{who} errors", ", ".join(names), ", ".join(got) or "no call failed", not missing, marks=Marks((who,)))


SHOWN_MEMBERS = 5     # a group's verdict names at most this many of its members that did otherwise


def group_verdict(name: str, what: str, verdicts: list[Verdict]) -> Verdict:
    """One verdict for every member of a group (c#*): it holds when it holds for each, and names
    those it does not hold for (a hundred verdicts would bury the one that differs)."""
    failed = [v for v in verdicts if not v.passed]
    values = [v.value for v in verdicts if v.value is not None]
    if not verdicts:
        return Verdict(f"{name} {what}", "", "the group has no member", False)
    if failed:
        observed = f"{len(failed)} of {len(verdicts)} did otherwise: " + "; ".join(
            f"{v.name.rsplit(' ', 1)[0]}: {v.observed}" for v in failed[:SHOWN_MEMBERS])
        observed += f"; and {len(failed) - SHOWN_MEMBERS} more" if len(failed) > SHOWN_MEMBERS else ""
    else:
        observed = f"all {len(verdicts)} as expected ({verdicts[0].name.rsplit(' ', 1)[0]}: {verdicts[0].observed})"
    if values:
        observed += f"; from {min(values) * 1e3:.1f} ms to {max(values) * 1e3:.1f} ms"
    marks = Marks((name,))
    for v in verdicts:
        marks = marks | v.marks
    return Verdict(f"{name} {what}", verdicts[0].expected, observed, not failed, max(values) if values else None,
                   marks=marks, expected_range=verdicts[0].expected_range)


def for_each(expect: Expectations, who: str, what: str, judge_one) -> Verdict:
    """`judge_one(subject)` for a host or socket, or for each member of a group as one verdict."""
    members = expect.groups.get(who)
    return judge_one(who) if members is None else group_verdict(who, what, [judge_one(m) for m in members])


def _counts(expect: Expectations, obs: Observation) -> list[tuple[str, Verdict]]:
    """Bytes received, connections accepted and errors: per host (its totals) or per socket (its calls)."""
    return ([(f"{who}.received", for_each(expect, who, "received", lambda m, n=wanted: _received(m, n, obs)))
             for who, wanted in expect.received.items()]
            + [(f"{who}.accepted", _accepted(who, wanted, obs)) for who, wanted in expect.accepted.items()]
            + [(f"{who}.errors", for_each(expect, who, "errors", lambda m, n=names: _errors(m, n, obs)))
               for who, names in expect.errors.items()])


def judge_all(expect: Expectations, obs: Observation, rtt_s: float, counters: dict | None = None,
              t0: float | None = None) -> list[Verdict]:
    """One verdict per expectation, each carrying the expectation's line in the file. `counters`:
    the run's MIB snapshots (result.json's counters); `t0`: for the moments tcp_info was read."""
    def at(key: str, verdict: Verdict) -> Verdict:
        """The expectation's line; a verdict about a host or socket that says nothing more marks it."""
        subject = key.split(".", 1)[0]
        marks = verdict.marks or (Marks((subject,)) if subject not in ("packets", "timing") else None)
        return replace(verdict, line=expect.lines.get(key), marks=marks)

    verdicts = [at(f"{who}.states", for_each(expect, who, "states", lambda m, s=states: judge_states(m, s, obs)))
                for who, states in expect.states.items()]
    verdicts += [at(key, verdict) for key, verdict in _counts(expect, obs)]
    verdicts += [at(f"{who}.handshake", for_each(expect, who, "handshake",
                                                 lambda m, h=hs: judge_handshake(m, h, obs, rtt_s)))
                 for who, hs in expect.handshakes.items()]
    verdicts += [at(f"{name}.packets", _socket_packets(name, patterns, obs))
                 for name, patterns in expect.socket_packets.items()]
    if expect.packets:
        ok, observed, marks = match_packets(expect.packets, obs.segments.get(obs.client_host, []), connection_addresses(obs))
        verdicts.append(at("packets", Verdict("packets", describe(expect.packets), observed, ok, marks=marks)))
    verdicts += [at(f"timing.{t.name}", judge_timing(t, obs, rtt_s)) for t in expect.timing]
    verdicts += [at(f"{host}.counters.{want.name}", judge_counter(host, want, counters))
                 for host, wanted in expect.counters.items() for want in wanted]
    verdicts += [at(f"{who}.tcp_info.{want.name}",
                    for_each(expect, who, f"tcp_info.{want.name}", lambda m, w=want: judge_tcp_info_field(m, w, obs, t0)))
                 for who, wanted in expect.tcp_info.items() for want in wanted]
    return verdicts
