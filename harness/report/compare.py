"""Line runs up side by side: the cells of a matrix run, or any earlier runs given by path.

One row per run (its experiment, settings and kernel), one column per timing and a verdict;
repeats of the same settings are summarised as min / median / max. The terminal table shows each
timing column in ms (all values below 1 s) or s, to 0.1 ms either way; the CSV and JSON keep the
seconds as measured. Writes comparison.csv, comparison.json and comparison.png next to the runs;
compare-runs also writes index.html there (harness.report.index: the table with links to each
run's report, the plots with the accepted ranges, two ladders side by side), as a matrix run's
caller does next to its cells."""
from __future__ import annotations

import argparse
import csv
import json
import re
import statistics
import sys
from pathlib import Path


def _short(name: str) -> str:
    return name.split(" (", 1)[0]


def natural_key(text: str) -> tuple:
    """Numbers inside names compare as numbers: retries=5 < retries=10, delay=0.25s < delay=0.5s."""
    parts = re.split(r"(\d+(?:\.\d+)?)", text)
    return tuple((0, float(p), "") if i % 2 else (1, 0.0, p) for i, p in enumerate(parts) if p)


def _row_key(row: dict) -> tuple:
    return natural_key(row["experiment"]), natural_key(row["settings"]), natural_key(row["kernel"]), natural_key(row["run"])


_QUANTITY = r"(-?\d+(?:\.\d+)?)\s*(µs|us|ms|s)\b"
_SCALE = {"µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0}


def expected_range(verdict: dict) -> list[float] | None:
    """A timing verdict's accepted range in seconds, [low, high]: the numbers result.json gives
    (expected_range), else read from the text harness.judge.timing.expected_time writes,
    "3.050 s to 3.060 s" or "100.0 ms ± 12.5 ms (RTT 100 ms)"; None for any other expectation."""
    given = verdict.get("expected_range")
    if isinstance(given, (list, tuple)) and len(given) == 2 and all(isinstance(v, (int, float)) for v in given):
        return [float(given[0]), float(given[1])]
    match = re.match(rf"\s*{_QUANTITY}\s*(to|±|\+/-)\s*{_QUANTITY}", str(verdict.get("expected") or ""))
    if not match:
        return None
    first, second = (float(match[i]) * _SCALE[match[i + 1]] for i in (1, 4))
    return [first, second] if match[3] == "to" else [first - second, first + second]


def load_rows(run_dirs: list[Path]) -> list[dict]:
    """One row per run folder, in the order given: its figures (timings' values), the accepted
    range of each (for the index's plot), and the names of the verdicts that failed."""
    rows = []
    for run in run_dirs:
        path = run / "result.json"
        if not path.exists():
            kernel = run.parent.name.removeprefix("kernel-") if run.parent.name.startswith("kernel-") else ""
            rows.append({"run": run.name, "experiment": "", "settings": run.name, "kernel": kernel, "passed": None, "figures": {},
                         "ranges": {}, "failed": ["no result (the run gave no verdict)"]})
            continue
        result = json.loads(path.read_text())
        figures = {_short(v["name"]): v["value"] for v in result["expectations"] if v.get("value") is not None}
        rows.append({"run": run.name, "experiment": result.get("experiment", ""), "settings": run.name.split("#")[0],
                     "kernel": result.get("kernel", ""),
                     "passed": result["passed"], "figures": figures,
                     "ranges": {_short(v["name"]): r for v in result["expectations"]
                                if v.get("value") is not None and (r := expected_range(v))},
                     "failed": [_short(v["name"]) for v in result["expectations"] if not v["passed"]]})
    return rows


def summarise(rows: list[dict]) -> list[dict]:
    """min / median / max of every figure over the runs that share experiment, settings and kernel."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row.get("experiment", ""), row["settings"], row["kernel"]), []).append(row)
    out = []
    for (experiment, settings, kernel), members in groups.items():
        names = sorted({n for m in members for n in m["figures"]})
        stats = {}
        for name in names:
            values = [m["figures"][name] for m in members if name in m["figures"]]
            stats[name] = {"min": min(values), "median": statistics.median(values), "max": max(values), "n": len(values)}
        out.append({"experiment": experiment, "settings": settings, "kernel": kernel, "runs": len(members),
                    "passed": sum(1 for m in members if m["passed"]), "figures": stats})
    return out


def _unit(values: list[float]) -> tuple[str, float, int]:
    """A column's unit, scale and decimals: 0.1 ms resolution whichever unit reads better."""
    return ("ms", 1e3, 1) if all(abs(v) < 1 for v in values) else ("s", 1.0, 4)


def _stats_text(stats: dict | None, unit: tuple[str, float, int]) -> str:
    """'100.0' for one run, '100.0 [99.9-100.2]' (median [min-max]) for repeats, '' for none."""
    if stats is None:
        return ""
    _, scale, digits = unit
    median = f"{stats['median'] * scale:.{digits}f}"
    return median if stats["n"] == 1 else f"{median} [{stats['min'] * scale:.{digits}f}-{stats['max'] * scale:.{digits}f}]"


def table(summary: list[dict]) -> str:
    names = sorted({n for s in summary for n in s["figures"]})
    units = {n: _unit([v for s in summary if n in s["figures"] for v in (s["figures"][n]["min"], s["figures"][n]["max"])])
             for n in names}
    several = len({s.get("experiment", "") for s in summary}) > 1
    head = (["experiment"] if several else []) + ["settings", "kernel", "passed"] + [f"{n} [{units[n][0]}]" for n in names]
    body = [([s.get("experiment", "")] if several else []) + [s["settings"], s["kernel"], f"{s['passed']}/{s['runs']}"]
            + [_stats_text(s["figures"].get(n), units[n]) for n in names] for s in summary]
    return _columns(head, body) + "\n(timings: median [min-max] over repeats)"


def _columns(head: list[str], body: list[list[str]]) -> str:
    """Text columns padded to their widest cell, a rule under the head."""
    widths = [max(len(str(r[i])) for r in [head] + body) for i in range(len(head))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in [head] + body]
    return "\n".join([lines[0], "-" * len(lines[0])] + lines[1:])


def plot(summary: list[dict], out: Path) -> Path | None:
    names = sorted({n for s in summary for n in s["figures"]})
    if not names:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(summary) + 3), 4.5))
    several = len({x.get("experiment", "") for x in summary}) > 1
    labels = [(f"{s['experiment']}: " if several else "") + s["settings"]
              + (f"\n{s['kernel']}" if len({x["kernel"] for x in summary}) > 1 else "") for s in summary]
    for name in names:
        xs = [i for i, s in enumerate(summary) if name in s["figures"]]
        med = [summary[i]["figures"][name]["median"] for i in xs]
        low = [m - summary[i]["figures"][name]["min"] for i, m in zip(xs, med)]
        high = [summary[i]["figures"][name]["max"] - m for i, m in zip(xs, med)]
        ax.errorbar(xs, med, yerr=[low, high], marker="o", capsize=4, label=name)
    ax.set_xticks(range(len(summary)), labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("seconds (median, min-max)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def write_comparison(out_dir: Path, run_dirs: list[Path], *, sort: bool = False) -> str:
    """Write comparison.{csv,json,png} into out_dir and return the table for the terminal.

    sort: order by experiment, then settings with numbers compared as numbers (compare-runs);
    otherwise the order given is kept (a matrix run passes its cells in the order written)."""
    rows = load_rows(run_dirs)
    if sort:
        rows.sort(key=_row_key)
    summary = summarise(rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "comparison.json").write_text(json.dumps({"runs": rows, "summary": summary}, indent=2))
    names = sorted({n for r in rows for n in r["figures"]})
    with open(out_dir / "comparison.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["run", "experiment", "settings", "kernel", "passed", *names, "failed"])
        for r in rows:
            writer.writerow([r["run"], r["experiment"], r["settings"], r["kernel"], r["passed"],
                             *[r["figures"].get(n, "") for n in names], "; ".join(r["failed"])])
    png = plot(summary, out_dir / "comparison.png")
    experiments = sorted({r["experiment"] for r in rows if r["experiment"]}, key=natural_key)
    of = f" of {experiments[0]}" if len(experiments) == 1 else (f" of {len(experiments)} experiments" if experiments else "")
    return (f"comparison of {len(rows)} run(s){of}:\n" + table(summary)
            + f"\nwritten: {out_dir / 'comparison.csv'}, comparison.json" + (", comparison.png" if png else ""))


def main(argv: list[str] | None = None) -> int:
    """compare-runs: line up earlier runs (folders holding result.json, at any depth)."""
    parser = argparse.ArgumentParser(prog="compare-runs", description=main.__doc__)
    parser.add_argument("paths", nargs="+", help="run folders, or folders above them")
    parser.add_argument("--out", default="comparison", help="where comparison.{csv,json,png} and index.html go (default: ./comparison)")
    parser.add_argument("--redraw", action="store_true",
                        help="draw each run's report.html again first (runs made before the test bed drew "
                             "them, or after it changed)")
    args = parser.parse_args(argv)
    runs = sorted({p.parent for base in map(Path, args.paths) for p in
                   ([base / "result.json"] if (base / "result.json").exists() else base.rglob("result.json"))})
    if not runs:
        print(f"compare-runs: no result.json under {', '.join(args.paths)}.", file=sys.stderr)
        return 2
    if args.redraw:
        from harness.report.page import write_report
        for run in runs:
            print(f"drawn: {write_report(run)}")
    text = write_comparison(Path(args.out), runs, sort=True)
    from harness.report.index import write_index
    write_index(Path(args.out), runs, f"compare-runs: {len(runs)} run(s)", sort=True)
    print(text + ", index.html")            # the last line says what was written
    return 0


if __name__ == "__main__":
    sys.exit(main())
