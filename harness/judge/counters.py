"""Judge `counters:` (a host's TCP MIB counters, the difference over the run) and `tcp_info:`
(a socket's struct tcp_info as its agent last read it). Pure: the snapshots come from
result.json's `counters` (harness.record.counters.counters_result) and the step log."""
from __future__ import annotations

from harness.analyse.connection import Observation, SocketView
from harness.judge.verdict import Verdict
from harness.model import MIB_SPARSE_PREFIXES, TCP_INFO_FIELDS, TCP_INFO_OPTIONS, CountExpectation, StepRecord

UNIT_TEXT = {"us": "µs", "ms": "ms"}


def judge_counter(host: str, want: CountExpectation, counters: dict | None) -> Verdict:
    """One counter's difference between the snapshot before t0 and the one after the timeline. A
    counter the kernel does not have fails: a name it lacks is never a pass."""
    name = f"{host} {want.name}"
    expected = f"{want.text} over the run"
    if not counters:
        return Verdict(name, expected, "no counter snapshots in this run", False)
    before = counters["before"]["hosts"].get(host, {})
    after = counters["after"]["hosts"].get(host, {})
    if want.name.startswith(MIB_SPARSE_PREFIXES):     # listed once counted: absent is 0
        before, after = {want.name: 0, **before}, {want.name: 0, **after}
    if want.name not in before or want.name not in after:
        return Verdict(name, expected, f"kernel {counters.get('kernel', '?')} has no counter {want.name} "
                                       f"(its netstat and snmp list {len(after)} others)", False)
    delta = after[want.name] - before[want.name]
    return Verdict(name, expected, f"{delta} ({before[want.name]} before t0 → {after[want.name]} after the timeline, "
                                   f"at {counters['after']['at_s']:+.3f} s)", want.fits(delta))


def snapshots(obs: Observation, view: SocketView) -> list[StepRecord]:
    """The step log lines that carry the socket's tcp_info: its calls, its accept, its end-of-run line."""
    own = [e for e in view.steps if e.tcp_info is not None]
    own += [e for e in obs.steps.get(view.host, []) if e.accepted and e.socket in view.names and e.tcp_info is not None]
    return sorted(own, key=lambda e: e.end if e.end is not None else e.start or 0.0)


def moment(entry: StepRecord, t0: float | None) -> str:
    """When a snapshot was read, for people: 'after connect at +0.101 s', 'before close at ...'."""
    if entry.snapshot:
        what = "at the run's end"
    elif entry.accepted:
        what = "when accepted"
    elif entry.action in ("close", "abort"):
        what = f"just before {entry.action}"
    else:
        what = f"after {entry.action}" + (f" (line {entry.index})" if entry.index else "")
    when = entry.start if entry.action in ("close", "abort") else entry.end
    return what + (f" at {when - t0:+.3f} s" if t0 is not None and when is not None else "")


def _shown(field: str, value) -> str:
    """A field's value as the kernel gives it, a time also in ms."""
    unit = TCP_INFO_FIELDS.get(field, "")
    if isinstance(value, list):
        return "[" + ", ".join(value) + "]"
    if unit == "us":
        return f"{value} µs ({value / 1e3:g} ms)"
    return f"{value} {UNIT_TEXT[unit]}" if unit in UNIT_TEXT else str(value)


def options_bits(names: list[str]) -> int:
    return sum(TCP_INFO_OPTIONS.get(n, 0) for n in names)


def judge_tcp_info_field(name: str, want: CountExpectation, obs: Observation, t0: float | None) -> Verdict:
    """One field of a socket's last tcp_info snapshot. options: exactly the options named."""
    title = f"{name} tcp_info.{want.name}"
    view = obs.sockets.get(name)
    if view is None:
        return Verdict(title, want.text, f"no socket named {name} was made", False)
    taken = snapshots(obs, view)
    if not taken:
        return Verdict(title, want.text, "its agent read no tcp_info (no call on it returned)", False)
    last = taken[-1]
    if want.name not in last.tcp_info:
        return Verdict(title, want.text, f"this kernel's tcp_info has no {want.name} ({moment(last, t0)})", False)
    value = last.tcp_info[want.name]
    got = options_bits(value) if want.name == "options" else value
    return Verdict(title, want.text, f"{_shown(want.name, value)} ({moment(last, t0)})",
                   isinstance(got, int) and want.fits(got))
