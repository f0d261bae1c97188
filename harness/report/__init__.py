"""Report: result.json and the verdict table."""
from __future__ import annotations

import textwrap
from pathlib import Path

from harness.analyse.injected import InjectionCheck, describe_fields
from harness.analyse.network import NetworkCheck
from harness.report.evidence import VERDICT, write_json


def write_result(run_dir: Path, result: dict) -> Path:
    """result.json, whole or not at all (temp name, fsync, rename): the verdict is written last."""
    path = run_dir / VERDICT
    write_json(path, result)
    return path


def verdict_table(verdicts, width: int = 100) -> str:
    """One block per expectation: verdict and name, then what was expected and what was observed,
    wrapped to the terminal rather than stretched into columns no terminal shows whole."""
    lines = []
    for v in verdicts:
        lines.append(f"{'PASS' if v.passed else 'FAIL'}  {v.title}")
        for label, text in (("expected", v.expected), ("observed", v.observed)):
            lines += textwrap.wrap(text, width, initial_indent=f"      {label}  ", subsequent_indent=" " * 16,
                                   break_on_hyphens=False) or [f"      {label}  -"]
    passed = sum(v.passed for v in verdicts)
    lines.append(f"{passed} of {len(verdicts)} expectations passed")
    return "\n".join(lines)


def describe_network_step(check: NetworkCheck) -> str:
    """One line per network step: how many segments it picked, and how long each was held; for
    an inject step, what it sent, when, and when it left the switch."""
    if isinstance(check, InjectionCheck):
        return describe_injection(check)
    held = "; ".join(f"{s.flags} seq={s.seq}" + (f" held {s.held_s:.3f} s" if s.held_s is not None else "")
                     for s in check.segments)
    return (f"network step, line {check.line}: {check.action} {check.sender} → {check.receiver}: "
            f"{check.picked} of {check.matching} matching segment(s) picked ({held or 'none'})")


def describe_injection(check: InjectionCheck) -> str:
    """`network step, line 9: inject server → client: R 5001→40000 seq=... sent 1.000 s after due +0.1 ms, left 25.0 ms later`."""
    head = f"network step, line {check.line}: inject {check.sender} → {check.receiver}: "
    if not check.injected or check.injected[0].get("sent") is None:
        return head + ("not sent: " + check.injected[0].get("error", "") if check.injected else "no record of it")
    rec = check.injected[0]
    left = check.segments[0].left if check.segments else []
    return (head + describe_fields(rec) + f"; sent {(rec['sent'] - rec['due']) * 1e3:+.1f} ms from its moment"
            + (f", left the switch or router {(left[0] - rec['sent']) * 1e3:.1f} ms later" if left else ", not seen leaving the switch or router"))
