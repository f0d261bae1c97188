"""`len:` and `options:` of a packet pattern (expect packets) or a network-step `match:`, and the
rule that flags written with P need data. One parser for both places, so a pattern and a match
mean the same by the same words (harness.analyse.segments.segment_fits is the one matcher)."""
from __future__ import annotations

import re
from pathlib import Path

from harness.errors import UserError
from harness.load.yaml_lines import LineDict
from harness.model import TCP_OPTION_KINDS, LengthSpec, OptionSpec

MAX_LENGTH = 65535 - 20 - 20        # an IPv4 total length less the smallest IP and TCP headers (a GSO
                                    # aggregate in a capture too); the switch's nft rule can match no more
LENGTH_EXAMPLES = 'len: 0 (a bare ACK), len: 1000, len: ">0", len: ">=100", len: "<100" or len: "1-1448"'
# options with a value a pattern can ask for, and its range; the others take only true/false
OPTION_VALUES = {"mss": (1, 65535), "wscale": (0, 14), "sack": (1, 4)}   # sack: blocks (4 fill the 40 option bytes)
OPTIONS_EXAMPLE = "options: {mss: 1460, wscale: 7, sackok: true, ts: true} (false: the option is absent)"
_LENGTH = re.compile(r"\s*(?:(?P<op>>=|<=|>|<)\s*(?P<bound>[0-9]+)|(?P<low>[0-9]+)\s*(?:-\s*(?P<high>[0-9]+))?)\s*")


def _fail(message: str, path: Path, line: int, fix: str) -> None:
    raise UserError(message, file=str(path), line=line, fix=fix)


def parse_length(value: object, path: Path, line: int) -> LengthSpec:
    """len: N | "N" | ">N" | ">=N" | "<N" | "<=N" | "LOW-HIGH" -> the payload bytes it allows."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        _fail(f"len: {value!r} is not a payload length.", path, line, f"write {LENGTH_EXAMPLES}.")
    if isinstance(value, int) and value < 0 or isinstance(value, str) and re.fullmatch(r"\s*-\s*[0-9]+\s*", value):
        _fail(f"len: {value} is negative; a payload has 0 or more bytes.", path, line, "write len: 0 for a segment without data.")
    m = _LENGTH.fullmatch(str(value))
    if not m:
        _fail(f"len: {value!r} is not a payload length in bytes.", path, line,
              f"write {LENGTH_EXAMPLES} (a plain number of bytes, no unit).")
    if m.group("op"):
        bound = int(m.group("bound"))
        low, high = {">": (bound + 1, None), ">=": (bound, None), "<": (0, bound - 1), "<=": (0, bound)}[m.group("op")]
    else:
        low = int(m.group("low"))
        high = int(m.group("high")) if m.group("high") is not None else low
    if max(low, high or 0) > MAX_LENGTH:
        _fail(f"len: {value!r} goes beyond {MAX_LENGTH} bytes, the most an IPv4 segment carries (65535 less 40 bytes of headers).", path, line,
              f"write a length of 0 to {MAX_LENGTH}, e.g. len: \"1-1448\".")
    if high is not None and low > high:
        _fail(f"len: {value!r} allows no length at all (its low end {low} is above its high end {high}).", path, line,
              "write len: \"<N\" with N at least 1, or a range LOW-HIGH with LOW <= HIGH.")
    return LengthSpec(low, high, str(value).strip())


def parse_options(value: object, path: Path, line: int) -> tuple[OptionSpec, ...]:
    """options: {NAME: true | false | N} -> one OptionSpec per name, in the order written."""
    if not isinstance(value, LineDict) or not value:
        _fail(f"options: {value!r} is not a mapping of TCP options.", path, line, f"write {OPTIONS_EXAMPLE}.")
    out = []
    for name, want in value.items():
        where = value.line_of(name)
        if name not in TCP_OPTION_KINDS:
            _fail(f"unknown TCP option {str(name)[:40]!r}.", path, where,
                  "use one of: " + ", ".join(f"{k} ({meaning})" for k, (_, meaning) in TCP_OPTION_KINDS.items()) + ".")
        if isinstance(want, bool):
            out.append(OptionSpec(name, want))
            continue
        if name not in OPTION_VALUES:
            _fail(f"options: {name}: {want!r} — {name} has no value to compare, only present or absent.", path, where,
                  f"write {name}: true (present) or {name}: false (absent).")
        low, high = OPTION_VALUES[name]
        if not isinstance(want, int) or not low <= want <= high:
            what = "blocks" if name == "sack" else "a whole number"
            _fail(f"options: {name}: {want!r} is not {what} from {low} to {high}.", path, where,
                  f"write {name}: {low if name != 'mss' else 1460}, {name}: true (any value) or {name}: false (absent).")
        out.append(OptionSpec(name, True, want))
    return tuple(out)


def needs_data(flags: str) -> bool:
    """Flags written with P (PA, FPA) ask for a data segment: PSH itself is ignored when flags are
    compared (harness.model.flag_set), but a bare ACK written `PA` bound the wrong segment (issue 14)."""
    return "P" in flags
