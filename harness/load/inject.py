"""`network: inject` steps -> NetworkStep(action="inject", inject=InjectSpec): a crafted TCP segment
or ICMP error sent out of the switch port facing `to`, as if from `from`.

Read in two passes: parse_inject() takes one step as written (keys, numbers, flags, options);
resolve_injects() checks its socket names and its `after:` event once every step is read (the
socket table exists only then)."""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from harness.errors import UserError
from harness.load.expectations import parse_event
from harness.load.sockets import SUBJECT_RE, SocketTable, quoted, shown
from harness.load.units import PORT_RANGE, bounded_int, parse_seconds
from harness.load.yaml_lines import LineDict, check_keys, expect_type
from harness.model import TCP_OPTION_KINDS, ConnTerm, Event, InjectSpec, NetworkStep, PacketMatch, Step

INJECT_KEYS = ("network", "from", "to", "at", "after", "wait", "socket", "sport", "dport", "flags", "seq", "ack",
               "window", "len", "payload", "options", "ttl", "icmp", "mtu")
FIGURES = ("snd_nxt", "snd_una", "rcv_nxt", "isn", "peer_isn")
ICMP_KINDS = ("net-unreachable", "host-unreachable", "port-unreachable", "frag-needed")
TCP_ONLY_KEYS = ("flags", "seq", "ack", "window", "len", "payload", "options")
INJECT_FLAGS = r"[SAFRPU]+"
# the largest payload that fits one 1500-byte frame with 20 bytes of IP, 20 of TCP and 40 of options
MAX_PAYLOAD = 1420
MTU_RANGE = (68, 65535)
# options an injected segment can carry: a value the option needs, or True (present) for ts/sackok
VALUED_OPTIONS = {"mss": (1, 65535), "wscale": (0, 14)}
INJECT_EXAMPLE = "{at: 1s, network: inject, from: server, to: client, socket: a, flags: R}"
_TERM = re.compile(rf"\s*(?:(?P<name>{SUBJECT_RE})\.(?P<figure>[a-z_]+)\s*(?:(?P<sign>[+-])\s*(?P<off>[0-9]{{1,10}}))?"
                   r"|(?P<number>[0-9]{1,10}))\s*")
_AFTER = re.compile(rf"\s*(?P<who>{SUBJECT_RE}) (?P<verb>[a-z]+)(?: .*)?")


def _fail(message: str, path: Path, line: int, fix: str | None = None):
    raise UserError(message, file=str(path), line=line, fix=fix)


def parse_term(value: object, path: Path, line: int, key: str) -> ConnTerm:
    """seq:/ack: a number (0 to 2^32-1) or `NAME.FIGURE [+|- N]` (a.snd_nxt + 1)."""
    m = _TERM.fullmatch(str(value)) if isinstance(value, (str, int)) and not isinstance(value, bool) else None
    fix = (f'write a number or a socket\'s figure, e.g. {key}: "a.snd_nxt + 1" (figures: {", ".join(FIGURES)}; '
           "a figure is that socket's own side as the switch saw it so far).")
    if not m:
        _fail(f"{key}: {value!r} is neither a sequence number nor NAME.FIGURE [+|- N].", path, line, fix)
    if m.group("number") is not None:
        number = int(m.group("number"))
        if number >= 2**32:
            _fail(f"{key}: {number} is not a 32-bit sequence number.", path, line, fix)
        return ConnTerm(None, None, number, str(value))
    if m.group("figure") not in FIGURES:
        _fail(f"{key}: {m.group('figure')!r} is not a figure of a connection.", path, line, fix)
    offset = int(m.group("off") or 0) * (-1 if m.group("sign") == "-" else 1)
    if abs(offset) >= 2**32:
        _fail(f"{key}: the offset {offset} is more than a sequence number can move.", path, line, fix)
    return ConnTerm(m.group("name"), m.group("figure"), offset, str(value).strip())


def parse_inject_options(raw: object, path: Path, line: int) -> tuple[tuple[str, int | None], ...]:
    """options: {ts: true, mss: 1460, wscale: 7, sackok: true} -> (name, value) to put in, in order.
    ts: true takes the sender side's last TSval (value None), ts: N that TSval, ts: "+N"/"-N" the
    last one moved by N (value the text); TSecr echoes the receiver's last; false leaves an option out."""
    raw = expect_type(raw, LineDict, path, line, "options", "options: {ts: true, mss: 1460}")
    out: list[tuple[str, int | None]] = []
    for name, value in raw.items():
        where = raw.line_of(name)
        if name not in TCP_OPTION_KINDS or name == "sack":
            _fail(f"an injected segment cannot carry option {str(name)[:40]!r}.", path, where,
                  fix="use ts: true, sackok: true, mss: 1460 or wscale: 7 (SACK blocks are not made up).")
        if name in VALUED_OPTIONS:
            low, high = VALUED_OPTIONS[name]
            try:
                out.append((name, bounded_int(value, low, high)))
            except ValueError as exc:
                _fail(f"options: {name}: {exc}; it is {low} to {high}.", path, where, fix=f"write {name}: {high if name == 'wscale' else 1460}.")
        elif name == "ts" and value is not True and value is not False:
            out.append((name, _tsval(value, path, where)))
        elif value is True:
            out.append((name, None))
        elif value is not False:
            _fail(f"options: {name} takes true or false, not {value!r}.", path, where, fix=f"write {name}: true.")
    return tuple(out)


def _tsval(value: object, path: Path, line: int) -> int | str:
    """ts: N (this TSval) or "+N" / "-N" (the sender side's last TSval moved by N): packetdrill's
    TSvals far ahead of or behind the peer's clock (PAWS, ts_recent)."""
    text = str(value).strip() if isinstance(value, (int, str)) and not isinstance(value, bool) else ""
    m = re.fullmatch(r"([+-]?)([0-9]{1,10})", text)
    if not m or int(m.group(2)) >= 2**32:
        _fail(f"options: ts: {value!r} is not true, false, a TSval or \"+N\"/\"-N\".", path, line,
              fix='write ts: true (the sender side\'s last TSval), ts: 200000 (this TSval) or ts: "+200000" '
                  "(the last one plus 200000); TSecr is always the receiver side's last TSval.")
    return f"{m.group(1)}{m.group(2)}" if m.group(1) else int(m.group(2))


def _int_key(item: LineDict, key: str, low: int, high: int, path: Path, example: str) -> int | None:
    if key not in item:
        return None
    try:
        return bounded_int(item[key], low, high)
    except ValueError as exc:
        _fail(f"{key}: {exc}; it is {low} to {high}.", path, item.line_of(key), fix=f"write {example}.")


def _when(item: LineDict, path: Path) -> tuple[float | None, Event | None, float]:
    """at: (from t0) or after: an event (+ wait:), exactly one."""
    if ("at" in item) == ("after" in item):
        _fail("an inject step needs at: (time from the start) or after: (an event), one of them.", path, item.line,
              fix=f"write {INJECT_EXAMPLE}, or after: \"client receives FA\" instead of at:.")
    if "wait" in item and "after" not in item:
        _fail("wait: goes with after: (how long after the event to inject).", path, item.line_of("wait"),
              fix="use at: alone, or after: with wait:.")
    at, wait = (_seconds(item, key, path) for key in ("at", "wait"))
    after = None
    if "after" in item:
        text = item["after"]
        m = _AFTER.fullmatch(text) if isinstance(text, str) else None
        if not m or m.group("verb") != "receives":
            _fail(f"after: {text!r} is not an event an injection can wait for.", path, item.line_of("after"),
                  fix='write after: "HOST receives FLAGS[#N]" or "SOCKET receives FLAGS[#N]" (the moment the switch '
                      'hands that segment to its host), e.g. after: "client receives FA".')
        after = Event(m.group("who"), "receives", "", 1, text.strip())     # checked whole by resolve_injects
    return at, after, wait or 0.0


def _seconds(item: LineDict, key: str, path: Path) -> float | None:
    try:
        return parse_seconds(item[key]) if key in item else None
    except ValueError as exc:
        _fail(f"{key}: {exc}.", path, item.line_of(key))


def _tcp_fields(item: LineDict, path: Path) -> dict:
    """The TCP segment's fields as InjectSpec keywords (flags required)."""
    if "flags" not in item:
        _fail("an inject step sends a TCP segment (flags:) or an ICMP error (icmp:).", path, item.line,
              fix=f"write {INJECT_EXAMPLE}, or icmp: host-unreachable.")
    flags = item["flags"]
    if not isinstance(flags, str) or not re.fullmatch(INJECT_FLAGS, flags) or len(set(flags)) != len(flags):
        _fail(f"flags {flags!r} are not TCP flag letters.", path, item.line_of("flags"),
              fix="use S A F R P U once each, as sent: R (a bare RST), RA, S, A, PA (data), FA, FPA.")
    fields: dict = {"flags": flags}
    for key in ("seq", "ack"):
        if key in item:
            fields[key] = parse_term(item[key], path, item.line_of(key), key)
    if "ack" in item and "A" not in flags:
        _fail(f"ack: is sent only with the A flag, and flags are {flags}.", path, item.line_of("ack"),
              fix=f"add A to flags ({flags}A) or remove ack:.")
    window = _int_key(item, "window", 0, 65535, path, "window: 0")
    if window is not None:
        fields["window"] = window
    if "len" in item and "payload" in item:
        _fail("an injected segment takes len: (that many zero bytes) or payload: (a text), not both.", path,
              item.line_of("payload"), fix="keep one of them.")
    if "len" in item:
        fields["length"] = _int_key(item, "len", 0, MAX_PAYLOAD, path, "len: 100")
    if "payload" in item:
        text = expect_type(item["payload"], str, path, item.line_of("payload"), "payload", 'payload: "hello"')
        if not 0 < len(text.encode()) <= MAX_PAYLOAD:
            _fail(f"payload: {len(text.encode())} bytes; it is 1 to {MAX_PAYLOAD} bytes (one frame).", path,
                  item.line_of("payload"), fix='write payload: "hello" (or len: N for N zero bytes).')
        fields["payload"], fields["length"] = text, len(text.encode())
    if "options" in item:
        fields["options"] = parse_inject_options(item["options"], path, item.line_of("options"))
    return fields


def _icmp_fields(item: LineDict, path: Path) -> dict:
    """An ICMP error about the connection: kind and (frag-needed) the MTU it reports."""
    kind = item["icmp"]
    if kind not in ICMP_KINDS:
        _fail(f"icmp: {kind!r} is not an ICMP error this tool sends.", path, item.line_of("icmp"),
              fix=f"use one of: {', '.join(ICMP_KINDS)}.")
    extra = [k for k in TCP_ONLY_KEYS if k in item]
    if extra:
        _fail(f"an ICMP error quotes the connection's last segment; {extra[0]}: belongs to a TCP segment.", path,
              item.line_of(extra[0]), fix="remove it (or send a TCP segment: flags: instead of icmp:).")
    if (kind == "frag-needed") != ("mtu" in item):
        _fail("mtu: goes with icmp: frag-needed, and frag-needed needs it." if kind == "frag-needed"
              else f"mtu: goes only with icmp: frag-needed, not {kind}.", path, item.line_of("mtu"),
              fix="write {icmp: frag-needed, mtu: 1200}." if kind == "frag-needed" else "remove mtu:.")
    return {"icmp": kind, "mtu": _int_key(item, "mtu", *MTU_RANGE, path, "mtu: 1200")}


def parse_inject(item: LineDict, path: Path) -> NetworkStep:
    """One inject step as written (from:/to: and the path already checked by the caller)."""
    check_keys(item, set(INJECT_KEYS), {"network", "from", "to"}, path, "an inject step")
    at, after, wait = _when(item, path)
    socket = None
    if "socket" in item:
        socket = expect_type(item["socket"], str, path, item.line_of("socket"), "socket",
                             'socket: a (quote automatic names: socket: "server:5001#1")')
    ports = {k: _int_key(item, k, *PORT_RANGE, path, f"{k}: 40000") for k in ("sport", "dport")}
    ttl = _int_key(item, "ttl", 1, 255, path, "ttl: 64")
    fields = _icmp_fields(item, path) if "icmp" in item else _tcp_fields(item, path)
    spec = InjectSpec(socket=socket, sport=ports["sport"], dport=ports["dport"], ttl=64 if ttl is None else ttl,
                      after=after, wait_s=wait, **fields)
    return NetworkStep("inject", item["from"], item["to"], PacketMatch(), item.line, at, inject=spec)


# -- the second pass: names, once every step is read -------------------------------------------

def connection_hosts(name: str, steps: tuple[Step, ...], table: SocketTable) -> tuple[str, str | None]:
    """The two hosts a socket's connection joins: (its owner, the peer; None when a listener's
    connections come from several hosts)."""
    owner = table.owner(name)
    made = next((s for s in steps if s.socket == name and s.action in ("connect", "accept")), None)
    if made is not None and made.action == "connect":
        return owner, made.peer
    port = made.port if made is not None else int(name.split(":")[1].split("#")[0])
    clients = {s.host for s in steps if s.action == "connect" and s.peer == owner and s.port == port}
    return owner, next(iter(clients)) if len(clients) == 1 else None


def _joining(steps: tuple[Step, ...], a: str, b: str) -> list[str]:
    """Names of the connections between hosts a and b (a connect's name, else the accept's)."""
    return [s.socket for s in steps if s.action == "connect" and {s.host, s.peer} == {a, b}]


def _check_socket(step: NetworkStep, name: str, steps: tuple[Step, ...], table: SocketTable, path: Path,
                  what: str) -> None:
    """`name` is a socket of the experiment whose connection joins the step's two hosts."""
    if table.is_group(name) or table.owner(name) is None:
        known = table.named()
        _fail(f"{what} {name!r} names no socket of the experiment{table.group_hint(name)}.", path, step.index,
              fix=f"name a connect or accept socket ({known or 'none here'}) or a listener's connection "
                  "(\"server:5001#1\").")
    ends = connection_hosts(name, steps, table)
    if ends[0] not in (step.sender, step.receiver) or ends[1] not in (step.sender, step.receiver, None):
        _fail(f"{what} {name!r} is a connection between {ends[0]} and {ends[1] or 'its clients'}, not between "
              f"{step.sender} and {step.receiver}.", path, step.index,
              fix=f"name a connection of {step.sender} and {step.receiver}: "
                  f"{shown(tuple(map(quoted, _joining(steps, step.sender, step.receiver)))) or 'there is none'}.")


def _resolved(step: NetworkStep, steps: tuple[Step, ...], table: SocketTable, path: Path) -> NetworkStep:
    spec = step.inject
    socket = spec.socket
    if socket is None and (spec.sport is None or spec.dport is None):
        joining = _joining(steps, step.sender, step.receiver)
        if len(joining) != 1:
            _fail(f"{step.sender} and {step.receiver} have {len(joining) or 'no'} connection(s)"
                  + (f" ({shown(tuple(joining))})" if joining else "") + ": say which one the segment is on.",
                  path, step.index, fix=(f"add socket: {quoted(joining[0])}" if joining else
                                         "give both sport: and dport: (a segment on no connection)") + ".")
        socket = joining[0]
    if socket is not None:
        _check_socket(step, socket, steps, table, path, "socket:")
    for key in ("seq", "ack"):
        term = getattr(spec, key)
        if term is not None and term.socket is not None:
            _check_socket(step, term.socket, steps, table, path, f"{key}: {term.text!r}:")
    if socket is None and not spec.icmp and (spec.seq is None or "A" in spec.flags and spec.ack is None):
        _fail("a segment on no named connection has no figures to default to.", path, step.index,
              fix="give seq: (and ack: with A) as numbers, or name the connection with socket:.")
    if socket is None and spec.icmp:
        _fail("an ICMP error quotes a connection's last segment: it needs the connection.", path, step.index,
              fix="add socket: NAME (or leave out sport:/dport: when one connection joins the hosts).")
    after = spec.after
    if after is not None:
        after = parse_event(after.text, table.hosts, path, step.index, table)
        if (table.owner(after.host) or after.host) not in (step.sender, step.receiver):
            _fail(f"after: {after.text!r}: the injector watches only {step.sender} and {step.receiver} (the switch "
                  "ports facing them).", path, step.index,
                  fix=f"name an event of {step.sender} or {step.receiver} or of one of their sockets.")
    return replace(step, inject=replace(spec, socket=socket, after=after))


def resolve_injects(network: tuple[NetworkStep, ...], steps: tuple[Step, ...], table: SocketTable,
                    path: Path) -> tuple[NetworkStep, ...]:
    """Every inject step's socket (written, or the one connection joining its hosts), the sockets
    its seq:/ack: figures name, and its after: event, checked against the experiment's sockets."""
    return tuple(_resolved(n, steps, table, path) if n.action == "inject" else n for n in network)
