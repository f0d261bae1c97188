"""scripts/benchmark's speed figures, from run folders' profile.json (harness.profile) and
result.json: where each second of a run goes, on the host's clock.

Usage: bench_speed.py profile RUN_DIR...    the phase table (median, min-max over the runs)
       bench_speed.py overhead RUN_DIR...   each run's wall time minus its timeline's length
"""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness.profile import PHASES  # noqa: E402

# The phases of one run itself; the others (host start, planning, the VM's boot, its Python and its
# shutdown) are paid once per VM, whatever it runs.
RUN_PHASES = ("preflight", "lab", "prepare", "recorders", "agents", "timeline", "stop", "analyse", "write")


def _load(run_dir: Path) -> tuple[dict, dict] | None:
    try:
        return (json.loads((run_dir / "profile.json").read_text()),
                json.loads((run_dir / "result.json").read_text()))
    except (OSError, ValueError):
        return None


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:6.2f}"
    return f"{statistics.median(values):6.2f}  ({min(values):.2f}-{max(values):.2f})"


def profile_table(runs: list[tuple[dict, dict]]) -> list[str]:
    """Seconds per phase: median and range over the runs that had the phase."""
    per_phase: dict[str, list[float]] = {name: [] for name in PHASES}
    for prof, _ in runs:
        seen: dict[str, float] = {}
        for p in prof["phases"]:
            seen[p["name"]] = seen.get(p["name"], 0.0) + p["seconds"]
        for name, seconds in seen.items():
            per_phase.setdefault(name, []).append(seconds)
    totals = [prof["total_s"] for prof, _ in runs]
    lines = [f"{'phase':<13} {'seconds (median, min-max)':<28} runs  what", f"{'-' * 13} {'-' * 28} ----  ----"]
    for name, values in per_phase.items():
        if values:
            lines.append(f"{name:<13} {_spread(values):<28} {len(values):>4}  {PHASES.get(name, '')}")
    lines.append(f"{'total':<13} {_spread(totals):<28} {len(totals):>4}  host clock, the command's start to its end")
    return lines


def overheads(runs: list[tuple[dict, dict]]) -> list[tuple[str, float, float, float]]:
    """(experiment, the run's own wall time, that minus its timeline's length, its wall time
    outside the timeline phase) per run. On the virtual clock a timeline can take less wall time
    than its length (idle time is skipped), so the second can be small or negative for a long
    one; the third is what set-up, tear-down and analysis cost whatever the timeline."""
    rows = []
    for prof, result in runs:
        wall = sum(p["seconds"] for p in prof["phases"] if p["name"] in RUN_PHASES)
        outside = sum(p["seconds"] for p in prof["phases"] if p["name"] in RUN_PHASES and p["name"] != "timeline")
        timeline = result.get("duration_s")
        if timeline is not None:
            rows.append((result.get("experiment", "?"), wall, wall - float(timeline), outside))
    return rows


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in ("profile", "overhead"):
        print(__doc__, file=sys.stderr)
        return 2
    runs = [loaded for d in argv[1:] if (loaded := _load(Path(d)))]
    if not runs:
        print(f"bench_speed: no run folder with profile.json and result.json among {len(argv) - 1}", file=sys.stderr)
        return 1
    if argv[0] == "profile":
        print("\n".join(profile_table(runs)))
        return 0
    rows = overheads(runs)
    if not rows:
        print("bench_speed: no run's result.json says its timeline's length (duration_s)", file=sys.stderr)
        return 1
    over, outside = [r[2] for r in rows], [r[3] for r in rows]
    print(f"per-run overhead (the run's wall time, preflight to published, minus its timeline's length), "
          f"{len(rows)} runs: median {statistics.median(over):.1f} s, min {min(over):.1f} s, max {max(over):.1f} s")
    print(f"per-run wall time outside the timeline (set-up, tear-down, analysis, writing), {len(rows)} runs: "
          f"median {statistics.median(outside):.1f} s, min {min(outside):.1f} s, max {max(outside):.1f} s")
    for name, wall, extra, _ in sorted(rows, key=lambda r: -r[2])[:5]:
        print(f"  most: {name:<32} wall {wall:6.1f} s, overhead {extra:5.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
