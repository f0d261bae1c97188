"""Parse durations, percentages and rates as written in YAML ("25ms", "5%", "100mbit")."""
from __future__ import annotations

import re

_TIME = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0}
_RATE = {"kbit": 1e-3, "mbit": 1.0, "gbit": 1e3}


def parse_seconds(text: object) -> float:
    """'25ms' -> 0.025. A bare number is refused: units must be explicit (tc reads bare as µs)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(us|ms|s|min)\s*", str(text))
    if not m:
        raise ValueError(f"'{text}' is not a duration; write e.g. 25ms, 1.5s or 500us")
    return float(m.group(1)) * _TIME[m.group(2)]


def parse_percent(text: object) -> float:
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*%\s*", str(text))
    if not m or float(m.group(1)) > 100:
        raise ValueError(f"'{text}' is not a percentage between 0% and 100%; write e.g. 1%")
    return float(m.group(1))


def parse_mbit(text: object) -> float:
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(kbit|mbit|gbit)\s*", str(text).lower())
    if not m:
        raise ValueError(f"'{text}' is not a rate; write e.g. 100mbit")
    return float(m.group(1)) * _RATE[m.group(2)]


_BYTES = {"b": 1, "kb": 1000, "kib": 1024, "mb": 1000**2, "mib": 1024**2}


def parse_bytes(text: object) -> int:
    """'1000B', '64KiB', '1MB' -> bytes. A bare integer counts bytes."""
    if isinstance(text, int) and not isinstance(text, bool) and text >= 0:
        return text
    m = re.fullmatch(r"\s*([0-9]+)\s*(b|kb|kib|mb|mib)\s*", str(text).lower())
    if not m:
        raise ValueError(f"'{text}' is not a byte count; write e.g. 1000B, 64KiB or 1MB")
    return int(m.group(1)) * _BYTES[m.group(2)]
