"""Report: result.json and the verdict table."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path


def write_result(run_dir: Path, result: dict) -> Path:
    path = run_dir / "result.json"
    path.write_text(json.dumps(result, indent=2, default=lambda o: asdict(o) if hasattr(o, "__dataclass_fields__") else str(o)))
    return path


def verdict_table(verdicts) -> str:
    rows = [("expectation", "expected", "observed", "verdict")]
    rows += [(v.name, v.expected, v.observed, "PASS" if v.passed else "FAIL") for v in verdicts]
    widths = [min(max(len(r[i]) for r in rows), 60) for i in range(3)]
    lines = []
    for r in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r[:3], widths)) + "  " + r[3])
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)
