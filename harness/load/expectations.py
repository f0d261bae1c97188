"""The `expect:` section -> Expectations: per-host states, bytes and errors; packets; timings."""
from __future__ import annotations

import errno
import re
from pathlib import Path

from harness.errors import UserError
from harness.load.counts import parse_counters, parse_tcp_info
from harness.load.segment_fields import parse_length, parse_options
from harness.load.sockets import SUBJECT_RE, SocketTable, quoted, shown
from harness.load.steps import ACTIONS, STATES
from harness.load.units import MAX_COUNT, bounded_int, parse_bytes, parse_time_spec, parse_tolerance
from harness.load.yaml_lines import LineDict, check_keys, expect_type
from harness.model import (Event, Expectations, HandshakeExpectation, PacketChoice, PacketPattern, SeqTerm,
                           StateExpectation, TimeSpec, TimingExpectation, Tolerance)

TIMINGS = {"handshake_client": "SYN sent -> final ACK sent, at the client",
           "handshake_server": "SYN received -> final ACK received, at the server"}
BUILTIN_AT = {"handshake_client": "client", "handshake_server": "server"}   # the end each is measured at
PATTERN_KEYS = ("from", "flags", "seq", "ack", "len", "options")
PATTERN_FLAGS = r"[SAFRPU]+"
HOST_EXPECT_KEYS = ("states", "received", "accepted", "errors", "counters", "tcp_info")   # tcp_info: its one connection's
SOCKET_EXPECT_KEYS = ("states", "received", "errors", "packets", "handshake", "tcp_info")   # a named socket's own: no accepted
GROUP_EXPECT_KEYS = ("states", "received", "errors", "handshake", "tcp_info")   # for each member of a group (c#*): no packets
HANDSHAKE_EXAMPLE = "handshake: {equals: 1rtt, within: 5%}"
TIMING_KEYS = ("from", "to", "equals", "within", "between")
_TERM = r"[a-z]\w*([+-][0-9]{1,10})?|[0-9]{1,10}"
_EVENT = re.compile(rf"(?P<host>{SUBJECT_RE}) (?:(?P<sv>enters|leaves) (?P<state>[A-Z][A-Z0-9-]*)(?:#(?P<sn>[0-9]+))?"
                    r"|(?P<pv>sends|transmits|receives|retransmits) (?P<flags>[SAFRPU]+)(?:#(?P<pn>[0-9]+))?"
                    r"|(?P<rv>resets|is reset)(?:#(?P<rn>[0-9]+))?"
                    r"|(?P<cv>calls|returns from) (?P<action>[a-z]+)(?:#(?P<cn>[0-9]+))?)")
EVENT_HELP = ("'SUBJECT enters STATE[#N]', 'SUBJECT leaves STATE[#N]' (from the kernel's trace, or the samples "
              "for request and TIME-WAIT sockets; #2: its second time in that state), 'SUBJECT sends FLAGS[#N]' (when its TCP handed the segment to its interface), "
              "'SUBJECT transmits FLAGS[#N]' (when it left the host's link), "
              "'SUBJECT receives FLAGS[#N]' (from the host's capture: the Nth segment carrying those flags), "
              "'SUBJECT retransmits FLAGS[#N]' (its TCP's Nth retransmission of a segment carrying those flags), "
              "'SUBJECT resets[#N]' (its TCP sent a RST), 'SUBJECT is reset[#N]' (its TCP took a RST: the "
              "kernel trace, else the captures), "
              "'SUBJECT calls ACTION[#N]' or 'SUBJECT returns from ACTION[#N]' (from the step log); "
              "SUBJECT is a host or a socket's name")
CONNECTION_VERBS = ("enters", "leaves", "sends", "transmits", "receives", "retransmits",
                    "resets", "is reset")   # a host's form follows one connection


def _one_connection(host: str, sockets: SocketTable, what: str, example: str, path: Path, line: int,
                    quote: bool = True) -> None:
    """Host-level states and state/segment events follow one connection: refused as ambiguous on a host with several."""
    names = sockets.connections(host)
    if len(names) > 1:
        first = quoted(sockets.grouped(names)[0]) if quote else names[0]    # a group (c#*) where a key may name one
        raise UserError(f"{host} has several connections ({shown(names)}): {what} would follow only the first.",
                        file=str(path), line=line,
                        fix=f"say which connection: {example.format(name=first)}.")


def _nth(m: re.Match, text: object, path: Path, line: int) -> int:
    """An event's #N (1 when left out), within MAX_COUNT."""
    nth_text = m.group("sn") or m.group("pn") or m.group("rn") or m.group("cn") or "1"
    if not 1 <= int(nth_text[:8]) <= MAX_COUNT or len(nth_text) > 7:
        raise UserError(f"{text!r}: #{nth_text} is not between #1 and #{MAX_COUNT}.", file=str(path), line=line,
                        fix="count occurrences from #1 (the first time; #1 may be left out).")
    return int(nth_text)


def _check_traced(m: re.Match, text: object, sockets: SocketTable, path: Path, line: int) -> None:
    """retransmits/resets/is reset: a connection's four-tuple's events, so not a listener's (its
    request sockets' SYN+ACKs belong to the connections it accepts), and no RST retransmitted."""
    host = m.group("host")
    owner = sockets.owner(host)
    if owner is not None and ":" in host and "#" not in host:
        raise UserError(f"{text!r}: {host} is a listener, which has no connection of its own.", file=str(path),
                        line=line, fix=f"name a connection it accepted: {str(text).strip().replace(host, host + '#1', 1)!r}.")
    if m.group("pv") == "retransmits" and "R" in m.group("flags"):
        raise UserError(f"{text!r}: TCP never retransmits a RST.", file=str(path), line=line,
                        fix=f"write '{host} resets' for the RST it sends, or retransmits with S, A, F (and P, U).")


def parse_event(text: object, hosts: tuple[str, ...], path: Path, line: int, sockets: SocketTable | None = None) -> Event:
    """An event as written; its subject a host or (given the experiment's sockets) a socket's name."""
    sockets = sockets or SocketTable(hosts)
    m = _EVENT.fullmatch(str(text).strip())
    group = str(text).strip().split(" ")[0]
    if sockets.is_group(group):
        raise UserError(f"{text!r}: an event happens on one socket, not on the group {group}.", file=str(path),
                        line=line, fix=f"name a member: {str(text).strip().replace(group, sockets.groups[group][0], 1)!r} "
                                       "(or a timing per member you care about).")
    if not m or not sockets.is_subject(m.group("host")):
        named = sockets.named()
        raise UserError(f"{text!r} is not an event this tool can observe.", file=str(path), line=line,
                        fix=f"write one of {EVENT_HELP}; hosts: {', '.join(hosts)}"
                            + (f"; sockets: {named}" if named else "") + ".")
    host, nth = m.group("host"), _nth(m, text, path, line)
    if host in hosts and (m.group("sv") or m.group("pv") or m.group("rv")):
        verb = m.group("sv") or m.group("pv") or m.group("rv")
        what = " ".join(filter(None, (verb, m.group("state") or m.group("flags"))))
        _one_connection(host, sockets, f"'{host} {verb} ...'", f'"{{name}} {what}"', path, line, quote=False)
    if m.group("sv"):
        if m.group("state") not in STATES:
            raise UserError(f"unknown TCP state '{m.group('state')}'.", file=str(path), line=line,
                            fix=f"use ss's names: {', '.join(sorted(STATES))}.")
        return Event(host, m.group("sv"), m.group("state"), nth, str(text))
    if m.group("rv") or m.group("pv") == "retransmits":
        _check_traced(m, text, sockets, path, line)
    if m.group("pv"):
        return Event(host, m.group("pv"), m.group("flags"), nth, str(text))
    if m.group("rv"):
        return Event(host, m.group("rv"), "R", nth, str(text))
    if m.group("action") not in ACTIONS:
        raise UserError(f"'{m.group('action')}' is not a step action.", file=str(path), line=line,
                        fix=f"use one of: {', '.join(ACTIONS)}.")
    verb = "calls" if m.group("cv") == "calls" else "returns"
    return Event(host, verb, m.group("action"), nth, str(text))


def _states(spec: LineDict, path: Path) -> tuple[StateExpectation, ...]:
    """`[SYN-SENT, (FIN-WAIT-1)]` -> typed states; a name in parentheses is optional."""
    seq = expect_type(spec["states"], list, path, spec.line_of("states"), "states", "[SYN-SENT, ESTAB]")
    parsed = tuple(StateExpectation.parse(s) if isinstance(s, str) else None for s in seq)
    for written, state in zip(seq, parsed):
        if state is None or state.name not in STATES:
            raise UserError(f"unknown TCP state '{written}'.", file=str(path), line=spec.line_of("states"),
                            fix=f"use ss's names: {', '.join(sorted(STATES))}; write an optional one in parentheses: (FIN-WAIT-1).")
    return parsed


def _term_ok(term: object) -> bool:
    """seq/ack: a name, name+N or a number, every number a 32-bit sequence number."""
    if isinstance(term, bool) or not isinstance(term, (str, int)) or not re.fullmatch(_TERM, str(term)):
        return False
    return all(int(n) < 2**32 for n in re.findall(r"[0-9]+", str(term).split("+")[-1].split("-")[-1]))


def _pattern(item: object, sockets: SocketTable, path: Path, line: int) -> PacketPattern:
    """One segment pattern; `from:` a host or a socket (its local address)."""
    item = expect_type(item, LineDict, path, line, "a packet pattern", "{from: client, flags: S, seq: x}")
    check_keys(item, set(PATTERN_KEYS), {"from", "flags"}, path, "a packet pattern")
    if not sockets.is_subject(item["from"]):
        named = sockets.named()
        raise UserError(f"packet sender '{item['from']}' is not a host" + (" or a socket" if named else "") + ".",
                        file=str(path), line=item.line_of("from"),
                        fix=f"use one of: {', '.join(sockets.hosts)}" + (f" or a socket: {named}" if named else "") + ".")
    if not isinstance(item["flags"], str) or not re.fullmatch(PATTERN_FLAGS, item["flags"]):
        raise UserError(f"flags {item['flags']!r} are not TCP flag letters.", file=str(path),
                        line=item.line_of("flags"), fix="use letters S A F R P U, e.g. SA for SYN+ACK, PA for an ACK "
                                                        "with data (P asks for data), A with len: 0 for a bare ACK.")
    for key in ("seq", "ack"):
        if key in item and not _term_ok(item[key]):
            raise UserError(f"{key}: {item[key]!r} is not a name, name+N or a number.", file=str(path),
                            line=item.line_of(key), fix=f"write {key}: x or {key}: x+1.")
    length = parse_length(item["len"], path, item.line_of("len")) if "len" in item else None
    options = parse_options(item["options"], path, item.line_of("options")) if "options" in item else ()
    return PacketPattern(item["from"], str(item["flags"]), *(SeqTerm.parse(item[k]) if k in item else None for k in ("seq", "ack")),
                         length, options)


def _packets(raw: list, sockets: SocketTable, path: Path, line: int) -> tuple:
    out = []
    for item in expect_type(raw, list, path, line, "packets", "a list of {from: client, flags: S, seq: x}"):
        if isinstance(item, LineDict) and "either" in item:
            check_keys(item, {"either"}, {"either"}, path, "either")
            options = expect_type(item["either"], LineDict, path, item.line, "either",
                                  "either: {four segments: [...], three segments: [...]}")
            out.append(PacketChoice(tuple((str(name), tuple(_pattern(p, sockets, path, options.line_of(name)) for p in
                                                             expect_type(seq, list, path, options.line_of(name), name, "[{from: ..., flags: ...}]")))
                                          for name, seq in options.items())))
        else:
            out.append(_pattern(item, sockets, path, getattr(item, "line", line)))
    return tuple(out)


def _time_spec(value: object, path: Path, line: int, key: str) -> TimeSpec:
    try:
        return parse_time_spec(value)
    except ValueError as exc:
        raise UserError(f"{key}: {exc}.", file=str(path), line=line, fix="write a duration (60s, 100ms) or N rtt (1rtt).")


def _timing(raw: object, sockets: SocketTable, path: Path, line: int) -> tuple[TimingExpectation, ...]:
    timing = []
    raw = expect_type(raw, LineDict, path, line, "timing", "{handshake_client: {equals: 1rtt, within: 5%}}")
    for name, spec in raw.items():
        line = raw.line_of(name)
        spec = expect_type(spec, LineDict, path, line, name, "{from: client enters TIME-WAIT, to: client leaves TIME-WAIT, equals: 60s, within: 0.5s}")
        keys = {"equals", "within", "between"}
        if name in TIMINGS:
            check_keys(spec, keys, set(), path, name)
            start = end = None
        else:
            check_keys(spec, keys | {"from", "to"}, {"from", "to"}, path,
                       f"timing '{name}' (built-in names without from/to: {', '.join(TIMINGS)})")
            start = parse_event(spec["from"], sockets.hosts, path, spec.line_of("from"), sockets)
            end = parse_event(spec["to"], sockets.hosts, path, spec.line_of("to"), sockets)
        equals, within, between = _bounds(spec, f"timing '{name}'", path)
        timing.append(TimingExpectation(str(name), equals, within, start, end, between, BUILTIN_AT.get(name)))
    return tuple(timing)


def _bounds(spec: LineDict, what: str, path: Path) -> tuple[TimeSpec | None, Tolerance | None,
                                                            tuple[TimeSpec, TimeSpec] | None]:
    """A timing's or a handshake's expected time: (equals, within, None) or (None, None, (low, high))."""
    if ("between" in spec) == ("equals" in spec or "within" in spec) or "equals" in spec and "within" not in spec \
            or "within" in spec and "equals" not in spec:
        raise UserError(f"{what} needs either equals + within, or between.", file=str(path), line=spec.line,
                        fix="write {equals: 60s, within: 0.5s} or {between: [60s, 62.1s]}.")
    if "between" in spec:
        bounds = expect_type(spec["between"], list, path, spec.line_of("between"), "between", "[60s, 62.1s]")
        if len(bounds) != 2:
            raise UserError("between takes two bounds.", file=str(path), line=spec.line_of("between"), fix="write between: [60s, 62.1s].")
        low, high = (_time_spec(b, path, spec.line_of("between"), "between") for b in bounds)
        if (low.rtts is None) == (high.rtts is None) and low.resolve(1.0) > high.resolve(1.0):
            raise UserError(f"between: [{low}, {high}] has its low bound above its high one.", file=str(path),
                            line=spec.line_of("between"), fix=f"write between: [{high}, {low}].")
        return None, None, (low, high)
    equals = _time_spec(spec["equals"], path, spec.line_of("equals"), "equals")
    try:
        within = parse_tolerance(spec["within"])
    except ValueError as exc:
        raise UserError(f"within: {exc}.", file=str(path), line=spec.line_of("within"),
                        fix="write a duration (20ms) or a percentage of the expected time (5%).")
    return equals, within, None


def _handshake(name: str, spec: LineDict, path: Path) -> HandshakeExpectation:
    """A socket's (or each group member's) own handshake time, in a timing's forms."""
    line = spec.line_of("handshake")
    raw = expect_type(spec["handshake"], LineDict, path, line, f"{name}'s handshake", "{equals: 1rtt, within: 5%}")
    check_keys(raw, {"equals", "within", "between"}, set(), path, f"expect.{name}.handshake")
    return HandshakeExpectation(*_bounds(raw, f"the handshake of {name}", path))


def _subject_key(raw: LineDict, key: object, sockets: SocketTable, path: Path) -> None:
    """An expect: key is a host, a socket of the experiment, packets or timing."""
    if key in ("packets", "timing") or sockets.is_subject(key) or sockets.is_group(key):
        return
    named = sockets.named()
    raise UserError(f"unknown key '{str(key)[:40]}' in expect{sockets.group_hint(key)}.", file=str(path),
                    line=raw.line_of(key),
                    fix=f"use one of: {', '.join(sorted((*sockets.hosts, 'packets', 'timing')))}"
                        + (f", a socket's name ({named})" if named else "")
                        + (f", a group ({', '.join(map(quoted, sockets.groups))})" if sockets.groups else "")
                        + (' or a listener\'s Nth connection ("server:5001#1")' if sockets.listeners else "") + ".")


def _errors(spec: LineDict, path: Path) -> tuple[str, ...]:
    names = expect_type(spec["errors"], list, path, spec.line_of("errors"), "errors", "[ECONNRESET]")
    for name in names:
        if not isinstance(name, str) or name not in errno.errorcode.values():
            raise UserError(f"'{name}' is not an errno name.", file=str(path), line=spec.line_of("errors"),
                            fix="use names like ECONNRESET, ETIMEDOUT, ECONNREFUSED, EPIPE.")
    return tuple(names)


def _subject(name: str, spec: object, line: int, sockets: SocketTable, path: Path, out: dict) -> None:
    """One host's or socket's expectations into `out` (its dicts by kind), each line kept for the verdicts."""
    is_host = name in sockets.hosts
    example = "{states: [SYN-SENT, ESTAB]}"
    spec = expect_type(spec, LineDict, path, line, name, example)
    _not_here(name, spec, sockets, path)
    keys = HOST_EXPECT_KEYS if is_host else GROUP_EXPECT_KEYS if sockets.is_group(name) else SOCKET_EXPECT_KEYS
    check_keys(spec, set(keys), set(), path, f"expect.{name}")
    if sockets.is_group(name):
        out["groups"][name] = sockets.groups[name]
    if "handshake" in spec:
        out["handshakes"][name] = _handshake(name, spec, path)
    out["lines"].update({f"{name}.{key}": spec.line_of(key) for key in spec})   # verdicts name their line
    if "accepted" in spec:
        try:
            count = spec["accepted"]      # a matrix's ${...} becomes a text of digits
            count = int(count) if isinstance(count, str) and re.fullmatch(r"[0-9]{1,7}", count) else count
            out["accepted"][name] = bounded_int(count, 0, MAX_COUNT)
        except ValueError as exc:
            raise UserError(f"accepted: {exc}.", file=str(path), line=spec.line_of("accepted"), fix="write accepted: 1.")
    if "states" in spec:
        if is_host:
            _one_connection(name, sockets, f"{name}'s host-level states", '{name}: {{states: [...]}}', path,
                            spec.line_of("states"))
        out["states"][name] = _states(spec, path)
    if "received" in spec:
        try:
            out["received"][name] = parse_bytes(spec["received"])
        except ValueError as exc:
            raise UserError(f"received: {exc}.", file=str(path), line=spec.line_of("received"))
    if "errors" in spec:
        out["errors"][name] = _errors(spec, path)
    if "packets" in spec:
        out["socket_packets"][name] = _packets(spec["packets"], sockets, path, spec.line_of("packets"))
    _figures(name, spec, sockets, path, out)


def _figures(name: str, spec: LineDict, sockets: SocketTable, path: Path, out: dict) -> None:
    """counters: (a host's) and tcp_info: (a socket's, a group's members', or a host's one connection's)."""
    if "counters" in spec:
        out["counters"][name], lines = parse_counters(spec, path)
        out["lines"].update({f"{name}.counters.{counter}": line for counter, line in lines.items()})
    if "tcp_info" in spec:
        subject = name
        if name in sockets.hosts:
            _one_connection(name, sockets, f"{name}'s tcp_info", '{name}: {{tcp_info: {{...}}}}', path, spec.line_of("tcp_info"))
            if not sockets.connections(name):
                raise UserError(f"tcp_info: {name} makes no connection whose tcp_info could be read.", file=str(path),
                                line=spec.line_of("tcp_info"), fix="connect or accept on it, or put tcp_info: under the host that does.")
            subject = sockets.connections(name)[0]
        if subject in out["tcp_info"]:
            raise UserError(f"tcp_info of {subject} is written twice (under {name} and under {subject}).", file=str(path),
                            line=spec.line_of("tcp_info"), fix=f"keep one: \"{subject}\": {{tcp_info: {{...}}}}.")
        out["tcp_info"][subject], lines = parse_tcp_info(spec, path)
        out["lines"].update({f"{subject}.tcp_info.{field}": line for field, line in lines.items()})


def _not_here(name: str, spec: LineDict, sockets: SocketTable, path: Path) -> None:
    """handshake: under a host and packets: under a group are refused with what to write instead."""
    if name in sockets.hosts and "handshake" in spec:
        raise UserError(f"handshake: goes under a socket or a group, not under the host {name}.", file=str(path),
                        line=spec.line_of("handshake"),
                        fix="for the host's (first) connection use the built-in timings: timing: {handshake_client: "
                            "{equals: 1rtt, within: 5%}} (or handshake_server); per connection write it under the "
                            f"socket: {quoted(sockets.named().split(', ')[0] or 'a')}: {{{HANDSHAKE_EXAMPLE}}}.")
    if name not in sockets.hosts and "counters" in spec:
        host = sockets.owner(sockets.groups[name][0] if sockets.is_group(name) else name) or "its host"
        raise UserError(f"counters: are the host's (the kernel counts per network namespace), not {name}'s.",
                        file=str(path), line=spec.line_of("counters"),
                        fix=f"write them under the host: {host}: {{counters: {{...}}}}; per connection use tcp_info: "
                            "{total_retrans: 2, backoff: 0}.")
    if sockets.is_group(name) and "packets" in spec:
        members = sockets.groups[name]
        raise UserError(f"packets: under the group {name} would be one verdict for {len(members)} sockets' segments, "
                        "unreadable when one of them differs.", file=str(path), line=spec.line_of("packets"),
                        fix=f"name a member: {quoted(members[0])}: {{packets: [...]}}.")


def load_expectations(raw: LineDict, hosts: tuple[str, ...], path: Path, sockets: SocketTable | None = None) -> Expectations:
    """`sockets`: the experiment's (socket_table of its steps); None: hosts only, as before named sockets."""
    sockets = sockets or SocketTable(hosts)
    for key in raw:
        _subject_key(raw, key, sockets, path)
    out: dict[str, dict] = {kind: {} for kind in ("states", "received", "accepted", "errors", "lines", "socket_packets",
                                                  "handshakes", "groups", "counters", "tcp_info")}
    subjects = [h for h in hosts if h in raw] + [k for k in raw if k not in hosts and k not in ("packets", "timing")]
    for name in subjects:
        _subject(name, raw[name], raw.line_of(name), sockets, path, out)
    packets = _packets(raw["packets"], sockets, path, raw.line_of("packets")) if "packets" in raw else ()
    timing = _timing(raw["timing"], sockets, path, raw.line_of("timing")) if "timing" in raw else ()
    lines = out["lines"]
    lines.update({"packets": raw.line_of("packets")} if "packets" in raw else {})
    lines.update({f"timing.{name}": raw["timing"].line_of(name) for name in raw["timing"]} if "timing" in raw else {})
    return Expectations(out["states"], packets, timing, out["received"], out["accepted"], out["errors"], lines,
                        out["socket_packets"], out["handshakes"], out["groups"], out["counters"], out["tcp_info"])
