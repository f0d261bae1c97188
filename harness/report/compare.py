"""Line runs up side by side: the cells of a matrix run, or any earlier runs given by path.

One row per run (its settings and kernel), one column per timing (measured seconds) and a
verdict; repeats of the same settings are summarised as min / median / max. Writes
comparison.csv, comparison.json and comparison.png next to the runs."""
from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from pathlib import Path


def _short(name: str) -> str:
    return name.split(" (", 1)[0]


def load_rows(run_dirs: list[Path]) -> list[dict]:
    rows = []
    for run in run_dirs:
        path = run / "result.json"
        if not path.exists():
            rows.append({"run": run.name, "settings": run.name, "kernel": "", "passed": None, "figures": {},
                         "failed": ["no result (the run gave no verdict)"]})
            continue
        result = json.loads(path.read_text())
        figures = {_short(v["name"]): v["value"] for v in result["expectations"] if v.get("value") is not None}
        rows.append({"run": run.name, "settings": run.name.split("#")[0], "kernel": result.get("kernel", ""),
                     "passed": result["passed"], "figures": figures,
                     "failed": [_short(v["name"]) for v in result["expectations"] if not v["passed"]]})
    return rows


def summarise(rows: list[dict]) -> list[dict]:
    """min / median / max of every figure over the runs that share settings and kernel."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["settings"], row["kernel"]), []).append(row)
    out = []
    for (settings, kernel), members in groups.items():
        names = sorted({n for m in members for n in m["figures"]})
        stats = {}
        for name in names:
            values = [m["figures"][name] for m in members if name in m["figures"]]
            stats[name] = {"min": min(values), "median": statistics.median(values), "max": max(values), "n": len(values)}
        out.append({"settings": settings, "kernel": kernel, "runs": len(members),
                    "passed": sum(1 for m in members if m["passed"]), "figures": stats})
    return out


def table(summary: list[dict]) -> str:
    names = sorted({n for s in summary for n in s["figures"]})
    head = ["settings", "kernel", "passed"] + names
    body = []
    for s in summary:
        cells = [s["settings"], s["kernel"], f"{s['passed']}/{s['runs']}"]
        for n in names:
            f = s["figures"].get(n)
            cells.append("" if f is None else (f"{f['median']:.3f}" if f["n"] == 1 else
                                                f"{f['median']:.3f} [{f['min']:.3f}-{f['max']:.3f}]"))
        body.append(cells)
    widths = [max(len(str(r[i])) for r in [head] + body) for i in range(len(head))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in [head] + body]
    return "\n".join([lines[0], "-" * len(lines[0])] + lines[1:]) + "\n(figures in seconds: median [min-max] over repeats)"


def plot(summary: list[dict], out: Path) -> Path | None:
    names = sorted({n for s in summary for n in s["figures"]})
    if not names:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(summary) + 3), 4.5))
    labels = [s["settings"] + (f"\n{s['kernel']}" if len({x["kernel"] for x in summary}) > 1 else "") for s in summary]
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


def write_comparison(out_dir: Path, run_dirs: list[Path]) -> str:
    """Write comparison.{csv,json,png} into out_dir and return the table for the terminal."""
    rows = load_rows(run_dirs)
    summary = summarise(rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "comparison.json").write_text(json.dumps({"runs": rows, "summary": summary}, indent=2))
    names = sorted({n for r in rows for n in r["figures"]})
    with open(out_dir / "comparison.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["run", "settings", "kernel", "passed", *names, "failed"])
        for r in rows:
            writer.writerow([r["run"], r["settings"], r["kernel"], r["passed"], *[r["figures"].get(n, "") for n in names],
                             "; ".join(r["failed"])])
    png = plot(summary, out_dir / "comparison.png")
    return (f"comparison of {len(rows)} run(s):\n" + table(summary)
            + f"\nwritten: {out_dir / 'comparison.csv'}, comparison.json" + (", comparison.png" if png else ""))


def main(argv: list[str] | None = None) -> int:
    """compare-runs: line up earlier runs (folders holding result.json, at any depth)."""
    parser = argparse.ArgumentParser(prog="compare-runs", description=main.__doc__)
    parser.add_argument("paths", nargs="+", help="run folders, or folders above them")
    parser.add_argument("--out", default="comparison", help="where comparison.{csv,json,png} go (default: ./comparison)")
    args = parser.parse_args(argv)
    runs = sorted({p.parent for base in map(Path, args.paths) for p in
                   ([base / "result.json"] if (base / "result.json").exists() else base.rglob("result.json"))})
    if not runs:
        print(f"compare-runs: no result.json under {', '.join(args.paths)}.", file=sys.stderr)
        return 2
    print(write_comparison(Path(args.out), runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
