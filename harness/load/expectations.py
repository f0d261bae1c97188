"""The `expect:` section -> Expectations: per-host states, bytes and errors; packets; timings."""
from __future__ import annotations

import errno
import re
from pathlib import Path

from harness.errors import UserError
from harness.load.steps import ACTIONS, STATES
from harness.load.units import parse_bytes, parse_seconds
from harness.load.yaml_lines import LineDict, check_keys, expect_type
from harness.model import Event, Expectations, PacketChoice, PacketPattern, TimingExpectation

TIMINGS = {"handshake_client": "SYN sent -> final ACK sent, at the client",
           "handshake_server": "SYN received -> final ACK received, at the server"}
_TERM = r"[a-z]\w*([+-][0-9]+)?|[0-9]+"
_EVENT = re.compile(r"(?P<host>[a-z]\w*) (?:(?P<sv>enters|leaves) (?P<state>[A-Z][A-Z0-9-]*)(?:#(?P<sn>[0-9]+))?"
                    r"|(?P<pv>sends|receives) (?P<flags>[SAFRPU]+)(?:#(?P<pn>[0-9]+))?"
                    r"|(?P<cv>calls|returns from) (?P<action>[a-z]+)(?:#(?P<cn>[0-9]+))?)")
EVENT_HELP = ("'HOST enters STATE[#N]', 'HOST leaves STATE[#N]' (from the samples; #2: its second time in "
              "that state), 'HOST sends FLAGS[#N]', "
              "'HOST receives FLAGS[#N]' (from the host's capture: the Nth segment carrying those flags), "
              "'HOST calls ACTION[#N]' or 'HOST returns from ACTION[#N]' (from the step log)")


def parse_event(text: object, hosts: tuple[str, ...], path: Path, line: int) -> Event:
    m = _EVENT.fullmatch(str(text).strip())
    if not m or m.group("host") not in hosts:
        raise UserError(f"{text!r} is not an event this tool can observe.", file=str(path), line=line,
                        fix=f"write one of {EVENT_HELP}; hosts: {', '.join(hosts)}.")
    host = m.group("host")
    if m.group("sv"):
        if m.group("state") not in STATES:
            raise UserError(f"unknown TCP state '{m.group('state')}'.", file=str(path), line=line,
                            fix=f"use ss's names: {', '.join(sorted(STATES))}.")
        return Event(host, m.group("sv"), m.group("state"), int(m.group("sn") or 1), str(text))
    if m.group("pv"):
        return Event(host, m.group("pv"), m.group("flags"), int(m.group("pn") or 1), str(text))
    if m.group("action") not in ACTIONS:
        raise UserError(f"'{m.group('action')}' is not a step action.", file=str(path), line=line,
                        fix=f"use one of: {', '.join(ACTIONS)}.")
    verb = "calls" if m.group("cv") == "calls" else "returns"
    return Event(host, verb, m.group("action"), int(m.group("cn") or 1), str(text))


def _states(spec: LineDict, path: Path) -> tuple[str, ...]:
    seq = expect_type(spec["states"], list, path, spec.line_of("states"), "states", "[SYN-SENT, ESTAB]")
    for state in seq:
        if str(state).strip("()") not in STATES:
            raise UserError(f"unknown TCP state '{state}'.", file=str(path), line=spec.line_of("states"),
                            fix=f"use ss's names: {', '.join(sorted(STATES))}; write an optional one in parentheses: (FIN-WAIT-1).")
    return tuple(str(s) for s in seq)


def _pattern(item: object, hosts: tuple[str, ...], path: Path, line: int) -> PacketPattern:
    item = expect_type(item, LineDict, path, line, "a packet pattern", "{from: client, flags: S, seq: x}")
    check_keys(item, {"from", "flags", "seq", "ack"}, {"from", "flags"}, path, "a packet pattern")
    if item["from"] not in hosts:
        raise UserError(f"packet sender '{item['from']}' is not a host.", file=str(path), line=item.line_of("from"),
                        fix=f"use one of: {', '.join(hosts)}.")
    if not re.fullmatch(r"[SAFRPU]+", str(item["flags"])):
        raise UserError(f"flags {item['flags']!r} are not TCP flag letters.", file=str(path),
                        line=item.line_of("flags"), fix="use letters S A F R P U, e.g. SA for SYN+ACK.")
    for key in ("seq", "ack"):
        if key in item and not re.fullmatch(_TERM, str(item[key])):
            raise UserError(f"{key}: {item[key]!r} is not a name, name+N or a number.", file=str(path),
                            line=item.line_of(key), fix=f"write {key}: x or {key}: x+1.")
    return PacketPattern(item["from"], str(item["flags"]), *(str(item[k]) if k in item else None for k in ("seq", "ack")))


def _packets(raw: list, hosts: tuple[str, ...], path: Path, line: int) -> tuple:
    out = []
    for item in expect_type(raw, list, path, line, "packets", "a list of {from: client, flags: S, seq: x}"):
        if isinstance(item, LineDict) and "either" in item:
            check_keys(item, {"either"}, {"either"}, path, "either")
            options = expect_type(item["either"], LineDict, path, item.line, "either",
                                  "either: {four segments: [...], three segments: [...]}")
            out.append(PacketChoice(tuple((str(name), tuple(_pattern(p, hosts, path, options.line_of(name)) for p in
                                                             expect_type(seq, list, path, options.line_of(name), name, "[{from: ..., flags: ...}]")))
                                          for name, seq in options.items())))
        else:
            out.append(_pattern(item, hosts, path, getattr(item, "line", line)))
    return tuple(out)


def _duration_or_rtt(value: object, path: Path, line: int, key: str) -> None:
    if re.fullmatch(r"[0-9.]*rtt", str(value).replace(" ", "")):
        return
    try:
        parse_seconds(value)
    except ValueError as exc:
        raise UserError(f"{key}: {exc}.", file=str(path), line=line, fix="a duration (60s, 100ms) or N rtt (1rtt).")


def _timing(raw: LineDict, hosts: tuple[str, ...], path: Path) -> tuple[TimingExpectation, ...]:
    timing = []
    for name, spec in expect_type(raw, LineDict, path, raw.line, "timing", "{handshake_client: {equals: 1rtt, within: 5%}}").items():
        line = raw.line_of(name)
        spec = expect_type(spec, LineDict, path, line, name, "{from: client enters TIME-WAIT, to: client leaves TIME-WAIT, equals: 60s, within: 0.5s}")
        keys = {"equals", "within", "between"}
        if name in TIMINGS:
            check_keys(spec, keys, set(), path, name)
            start = end = None
        else:
            check_keys(spec, keys | {"from", "to"}, {"from", "to"}, path,
                       f"timing '{name}' (built-in names without from/to: {', '.join(TIMINGS)})")
            start = parse_event(spec["from"], hosts, path, spec.line_of("from"))
            end = parse_event(spec["to"], hosts, path, spec.line_of("to"))
        if ("between" in spec) == ("equals" in spec or "within" in spec) or "equals" in spec and "within" not in spec \
                or "within" in spec and "equals" not in spec:
            raise UserError(f"timing '{name}' needs either equals + within, or between.", file=str(path), line=spec.line,
                            fix="write {equals: 60s, within: 0.5s} or {between: [60s, 62.1s]}.")
        if "between" in spec:
            bounds = expect_type(spec["between"], list, path, spec.line_of("between"), "between", "[60s, 62.1s]")
            if len(bounds) != 2:
                raise UserError("between takes two bounds.", file=str(path), line=spec.line_of("between"), fix="write between: [60s, 62.1s].")
            for bound in bounds:
                _duration_or_rtt(bound, path, spec.line_of("between"), "between")
            timing.append(TimingExpectation(str(name), None, None, start, end, tuple(str(b).replace(" ", "") for b in bounds)))
            continue
        equals, within = str(spec["equals"]).replace(" ", ""), str(spec["within"])
        _duration_or_rtt(equals, path, spec.line_of("equals"), "equals")
        if not within.endswith("%"):
            try:
                parse_seconds(within)
            except ValueError as exc:
                raise UserError(f"within: {exc}.", file=str(path), line=spec.line_of("within"), fix="a duration or a percentage (5%).")
        timing.append(TimingExpectation(str(name), equals, within, start, end))
    return tuple(timing)


def load_expectations(raw: LineDict, hosts: tuple[str, ...], path: Path) -> Expectations:
    check_keys(raw, set(hosts) | {"packets", "timing"}, set(), path, "expect")
    states, received, errors, accepted = {}, {}, {}, {}
    for host in hosts:
        if host not in raw:
            continue
        spec = expect_type(raw[host], LineDict, path, raw.line_of(host), host, "{states: [SYN-SENT, ESTAB]}")
        check_keys(spec, {"states", "received", "accepted", "errors"}, set(), path, f"expect.{host}")
        if "accepted" in spec:
            accepted[host] = expect_type(spec["accepted"], int, path, spec.line_of("accepted"), "accepted", "accepted: 1")
        if "states" in spec:
            states[host] = _states(spec, path)
        if "received" in spec:
            try:
                received[host] = parse_bytes(spec["received"])
            except ValueError as exc:
                raise UserError(f"received: {exc}.", file=str(path), line=spec.line_of("received"))
        if "errors" in spec:
            names = expect_type(spec["errors"], list, path, spec.line_of("errors"), "errors", "[ECONNRESET]")
            for name in names:
                if name not in errno.errorcode.values():
                    raise UserError(f"'{name}' is not an errno name.", file=str(path), line=spec.line_of("errors"),
                                    fix="use names like ECONNRESET, ETIMEDOUT, ECONNREFUSED, EPIPE.")
            errors[host] = tuple(names)
    packets = _packets(raw["packets"], hosts, path, raw.line_of("packets")) if "packets" in raw else ()
    timing = _timing(raw["timing"], hosts, path) if "timing" in raw else ()
    return Expectations(states, packets, timing, received, accepted, errors)
