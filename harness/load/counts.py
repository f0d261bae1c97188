"""`counters:` (a host's TCP MIB counters, by nstat's names, as a difference over the run) and
`tcp_info:` (a socket's struct tcp_info fields) under expect: -> CountExpectations."""
from __future__ import annotations

import re
from pathlib import Path

from harness.errors import UserError
from harness.load.units import parse_seconds
from harness.load.yaml_lines import LineDict, expect_type
from harness.model import TCP_INFO_FIELDS, TCP_INFO_OPTIONS, CountExpectation

# nstat's names: a /proc/net/netstat or /proc/net/snmp table's prefix + a field (TcpExtTCPTimeouts,
# TcpRetransSegs, IcmpMsgInType3). Whether the running kernel has it is known only at judge time.
# IcmpMsg is listed sparsely (a type only once counted: a missing one reads 0), so its names are
# checked exactly here, else a misspelt one would pass as 0
NSTAT_NAME = re.compile(r"(?:IcmpMsg(?:In|Out)Type(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
                        r"|(?!IcmpMsg)(?:TcpExt|IpExt|MPTcpExt|Icmp|UdpLite|Udp|Tcp|Ip)[A-Z][A-Za-z0-9_]*)")
COUNT_EXAMPLES = '1, ">=1", "<3", "<=3" or "1-3"'
COUNTERS_EXAMPLE = 'counters: {TcpExtTCPTimeouts: 2, TcpRetransSegs: ">=2"}'
TCP_INFO_EXAMPLE = 'tcp_info: {total_retrans: 2, backoff: 0, rto: ">=200ms", options: [ts, sack, wscale]}'
UNIT_S = {"us": 1e-6, "ms": 1e-3}        # the kernel's unit of a time field (TCP_INFO_FIELDS)
# a field a count cannot express: its own key says it
NOT_COUNTS = {"state": "the socket's states are judged with states: [..., ESTAB]"}
_VALUE = r"[0-9]+(?:\.[0-9]+)?\s*(?:us|ms|s|min)|[0-9]+"
_COUNT = re.compile(rf"\s*(?:(?P<op>>=|<=|>|<)\s*(?P<bound>{_VALUE})|(?P<low>{_VALUE})\s*(?:-\s*(?P<high>{_VALUE}))?)\s*")
MAX_FIGURE = 2**64 - 1          # tcp_info's widest fields are u64


def _fail(message: str, path: Path, line: int, fix: str) -> None:
    raise UserError(message, file=str(path), line=line, fix=fix)


def _number(text: str, unit: str, name: str, path: Path, line: int) -> int:
    """A bound in the field's unit: digits as the kernel counts, a duration (time fields) converted."""
    if text.isdigit():
        return int(text)
    if unit not in UNIT_S:
        _fail(f"{name}: {text!r} is a duration, but {name} is a count.", path, line, f"write a number: {COUNT_EXAMPLES}.")
    try:
        return round(parse_seconds(text) / UNIT_S[unit])
    except ValueError as exc:
        _fail(f"{name}: {exc}.", path, line, "write a duration like 200ms or 1.5s.")


def parse_count(name: str, value: object, unit: str, path: Path, line: int) -> CountExpectation:
    """N | "N" | ">N" | ">=N" | "<N" | "<=N" | "LOW-HIGH"; for a time field N may be a duration
    (`">=200ms"`), kept in the kernel's unit (rto, rtt: µs)."""
    durations = " (a duration like \">=200ms\" too)" if unit in UNIT_S else ""
    if isinstance(value, bool) or not isinstance(value, (int, str)) or isinstance(value, int) and value < 0:
        _fail(f"{name}: {value!r} is not a count.", path, line, f"write {COUNT_EXAMPLES}{durations}.")
    m = _COUNT.fullmatch(str(value))
    if not m:
        _fail(f"{name}: {value!r} is not a count or a range of counts.", path, line, f"write {COUNT_EXAMPLES}{durations}.")
    if m.group("op"):
        bound = _number(m.group("bound"), unit, name, path, line)
        low, high = {">": (bound + 1, None), ">=": (bound, None), "<": (0, bound - 1), "<=": (0, bound)}[m.group("op")]
    else:
        low = _number(m.group("low"), unit, name, path, line)
        high = _number(m.group("high"), unit, name, path, line) if m.group("high") else low
    if high is not None and (low > high or high > MAX_FIGURE):
        _fail(f"{name}: {value!r} allows no value a kernel could give.", path, line,
              "write a range LOW-HIGH with LOW <= HIGH, or \"<N\" with N at least 1.")
    return CountExpectation(name, low, high, str(value).strip())


def parse_counters(spec: LineDict, path: Path) -> tuple[tuple[CountExpectation, ...], dict[str, int]]:
    """A host's `counters:` -> its expectations and each one's line."""
    raw = expect_type(spec["counters"], LineDict, path, spec.line_of("counters"), "counters", COUNTERS_EXAMPLE)
    out = []
    for name, value in raw.items():
        if not isinstance(name, str) or not NSTAT_NAME.fullmatch(name):
            _fail(f"counters: {str(name)[:60]!r} is not a counter name as nstat writes it.", path, raw.line_of(name),
                  "write the table's prefix and the field as one word, as `nstat -az` lists them: TcpExtTCPTimeouts, "
                  "TcpExtTCPChallengeACK, TcpRetransSegs, IpExtInOctets, IcmpMsgInType3, UdpInDatagrams.")
        out.append(parse_count(name, value, "", path, raw.line_of(name)))
    return tuple(out), {name: raw.line_of(name) for name in raw}


def _options(value: object, path: Path, line: int) -> CountExpectation:
    """options: [ts, sack, wscale]: exactly these were agreed (tcpi_options)."""
    names = expect_type(value, list, path, line, "tcp_info options", "options: [ts, sack, wscale]")
    wrong = [n for n in names if n not in TCP_INFO_OPTIONS]
    if wrong:
        _fail(f"tcp_info options: {wrong[0]!r} is not an option tcp_info reports.", path, line,
              f"list some of: {', '.join(TCP_INFO_OPTIONS)} ([] for none).")
    bits = sum(TCP_INFO_OPTIONS[n] for n in set(names))
    return CountExpectation("options", bits, bits, "[" + ", ".join(names) + "]")


def parse_tcp_info(spec: LineDict, path: Path) -> tuple[tuple[CountExpectation, ...], dict[str, int]]:
    """A socket's `tcp_info:` -> its expectations and each one's line. Field names are the struct's
    without tcpi_ (harness.model.TCP_INFO_FIELDS)."""
    raw = expect_type(spec["tcp_info"], LineDict, path, spec.line_of("tcp_info"), "tcp_info", TCP_INFO_EXAMPLE)
    out = []
    for name, value in raw.items():
        line = raw.line_of(name)
        if name in NOT_COUNTS:
            _fail(f"tcp_info: {name} is not a count.", path, line, NOT_COUNTS[name] + ".")
        if name not in TCP_INFO_FIELDS:
            _fail(f"tcp_info: unknown field {str(name)[:40]!r}.", path, line,
                  "use the fields of struct tcp_info without tcpi_: "
                  + ", ".join(f for f in TCP_INFO_FIELDS if f not in NOT_COUNTS) + ".")
        out.append(_options(value, path, line) if name == "options"
                   else parse_count(name, value, TCP_INFO_FIELDS[name], path, line))
    return tuple(out), {name: raw.line_of(name) for name in raw}
