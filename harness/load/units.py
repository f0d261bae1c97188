"""Parse durations, percentages, rates, counts and ports as written in YAML ("25ms", "5%", "100mbit").

Every value is parsed here once, at load, into its typed form with its bounds checked; later
stages (the judge above all) never parse strings again."""
from __future__ import annotations

import math
import re

from harness.model import TimeSpec, Tolerance

_TIME = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0}
_RATE = {"kbit": 1e-3, "mbit": 1.0, "gbit": 1e3}
_NUMBER = r"([0-9]{1,12}(?:\.[0-9]{0,12})?|\.[0-9]{1,12})"    # no exponents, no inf/nan, no sign
_PERCENT_NUMBER = r"(100(?:\.0{0,12})?|[0-9]{1,2}(?:\.[0-9]{0,12})?|\.[0-9]{1,12})"   # 0 to 100

MAX_SECONDS = 86400.0          # one day: longer is a typo, and it would hold the machine that long
MAX_RTTS = 10000.0
MAX_COUNT = 10**6              # nth/count/#N/accepted: a test of TCP never needs more
MAX_QUEUE = 10**6              # netem limit, packets
MAX_BYTES = 64 * 1024**2       # send/recv/received: the agent holds what it sends in memory
BW_RANGE_MBIT = (0.001, 1000.0)   # Mininet's TCIntf ignores (with only a printed error) rates over 1000
PORT_RANGE = (1, 65535)


def _number(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"'{text}' is not a finite number")
    return value


def parse_seconds(text: object, limit: float = MAX_SECONDS) -> float:
    """'25ms' -> 0.025. A bare number is refused: units must be explicit (tc reads bare as µs)."""
    m = re.fullmatch(rf"\s*{_NUMBER}\s*(us|ms|s|min)\s*", str(text)) if isinstance(text, str) else None
    if not m:
        raise ValueError(f"{text!r} is not a duration; write e.g. 25ms, 1.5s or 500us")
    value = _number(m.group(1)) * _TIME[m.group(2)]
    if value > limit:
        raise ValueError(f"{text!r} is longer than the limit of {limit:g} s (a longer time is almost surely a typo, "
                         "and the run would hold the machine that long)")
    return value


def parse_time_spec(text: object) -> TimeSpec:
    """A duration ('60s') or a multiple of the path RTT ('1rtt', '0.5 rtt', 'rtt')."""
    m = re.fullmatch(rf"\s*{_NUMBER}?\s*rtt\s*", text) if isinstance(text, str) else None
    if m:
        rtts = _number(m.group(1)) if m.group(1) else 1.0
        if rtts > MAX_RTTS:
            raise ValueError(f"{text!r} is more than {MAX_RTTS:g} RTTs")
        return TimeSpec(rtts=rtts, text=text.strip())
    try:
        return TimeSpec(seconds=parse_seconds(text), text=str(text).strip())
    except ValueError:
        raise ValueError(f"{text!r} is neither a duration (60s, 100ms) nor N rtt (1rtt, 0.5rtt)") from None


def parse_percent(text: object) -> float:
    m = re.fullmatch(rf"\s*{_PERCENT_NUMBER}\s*%\s*", text) if isinstance(text, str) else None
    if not m:
        raise ValueError(f"{text!r} is not a percentage between 0% and 100%; write e.g. 1%")
    return _number(m.group(1))


def parse_tolerance(text: object) -> Tolerance:
    """`within:` a duration ('20ms') or a percentage of the expected value ('5%')."""
    if isinstance(text, str) and text.strip().endswith("%"):
        return Tolerance(percent=parse_percent(text), text=text.strip())
    try:
        return Tolerance(seconds=parse_seconds(text), text=str(text).strip())
    except ValueError:
        raise ValueError(f"{text!r} is neither a duration (20ms) nor a percentage (5%)") from None


def parse_mbit(text: object) -> float:
    m = re.fullmatch(rf"\s*{_NUMBER}\s*(kbit|mbit|gbit)\s*", text.lower()) if isinstance(text, str) else None
    if not m:
        raise ValueError(f"{text!r} is not a rate; write e.g. 100mbit")
    value = _number(m.group(1)) * _RATE[m.group(2)]
    low, high = BW_RANGE_MBIT
    if not low <= value <= high:
        raise ValueError(f"{text!r} is outside {low * 1000:g}kbit to {high:g}mbit (Mininet shapes only in that range)")
    return value


_BYTES = {"b": 1, "kb": 1000, "kib": 1024, "mb": 1000**2, "mib": 1024**2}


def parse_bytes(text: object) -> int:
    """'1000B', '64KiB', '1MB' -> bytes. A bare integer counts bytes."""
    if isinstance(text, int) and not isinstance(text, bool) and text >= 0:
        value = text
    else:
        m = re.fullmatch(r"\s*([0-9]{1,12})\s*(b|kb|kib|mb|mib)\s*", text.lower()) if isinstance(text, str) else None
        if not m:
            raise ValueError(f"{text!r} is not a byte count; write e.g. 1000B, 64KiB or 1MB")
        value = int(m.group(1)) * _BYTES[m.group(2)]
    if value > MAX_BYTES:
        raise ValueError(f"{text!r} is more than {MAX_BYTES // 1024**2} MiB (the agent holds what it sends in memory)")
    return value


def bounded_int(value: object, low: int, high: int) -> int:
    """An integer (not a bool, not a float like 1.9) in [low, high]."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{value!r} is not a whole number")
    if not low <= value <= high:
        raise ValueError(f"{value} is outside {low} to {high}")
    return value
