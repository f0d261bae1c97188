"""scripts/benchmark's observer section: what watching the sockets costs the timing it watches.

Reads the result.json of every repeat of one observer's handshake run (a `matrix: {repeat: N}`
copy of experiments/handshake.yaml, all cells in one VM on the virtual clock) and prints, for the
client's and the server's handshake, the ratios measured / configured RTT: min, median, max, the
largest deviation from 1 and how many are within 1% (the issue's goal: all of them with
tracepoints + the sparse sampler). The handshake times are the judged ones (the expectations'
`value` for handshake_client and handshake_server), so this measures what a verdict sees.

With several link delays (scripts/benchmark's OBSERVER_DELAYS: a `links: {delay: [...]}` matrix
dimension) the runs are grouped by their configured RTT, REPEATS runs each, RTTS groups.

Usage: bench_observer.py REPEATS OBSERVER FOLDER [RTTS]   (figures on stdout; exit 1 on missing runs)
"""
from __future__ import annotations

import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

GOAL = 0.01                         # within 1% of the configured RTT
ENDS = {"client": "handshake_client", "server": "handshake_server"}
OBSERVERS = {"samples": "dense sampler alone", "trace": "tracepoints + sparse sampler"}


class MissingRuns(Exception):
    """The folder does not hold the runs (or handshakes) asked for: no figures."""


@dataclass
class Run:
    cell: str                       # the matrix cell's folder name, "#7"
    kernel: str
    target: str
    rtt_s: float
    ratios: dict[str, float]        # end -> handshake / configured RTT


def read_run(result_file: Path) -> Run:
    """One repeat's judged handshake times as ratios of the RTT the topology configures."""
    result = json.loads(result_file.read_text())
    rtt = result["configured_rtt_s"]
    values = {e["name"]: e.get("value") for e in result.get("expectations", [])}
    ratios = {}
    for end, name in ENDS.items():
        if values.get(name) is None:
            raise MissingRuns(f"{result_file}: no {name} value (no complete handshake in its capture?)")
        ratios[end] = values[name] / rtt
    return Run(result_file.parent.name, result["kernel"], result.get("target", "local"), rtt, ratios)


def read_runs(folder: Path, repeats: int, rtts: int = 1) -> dict[float, list[Run]]:
    """Every repeat's run in cell order, by configured RTT (shortest first): `rtts` RTTs of exactly
    `repeats` runs each, or MissingRuns."""
    files = sorted(folder.rglob("result.json"), key=lambda f: _cell_number(f.parent.name))
    if len(files) != repeats * rtts:
        raise MissingRuns(f"{folder} holds {len(files)} result.json files, not {repeats * rtts}")
    by_rtt: dict[float, list[Run]] = {}
    for run in map(read_run, files):
        by_rtt.setdefault(run.rtt_s, []).append(run)
    if len(by_rtt) != rtts or any(len(runs) != repeats for runs in by_rtt.values()):
        counts = ", ".join(f"{len(runs)} at {rtt * 1e3:g} ms" for rtt, runs in sorted(by_rtt.items()))
        raise MissingRuns(f"{folder}: runs by configured RTT: {counts}; expected {rtts} RTT(s) of {repeats} runs")
    return dict(sorted(by_rtt.items()))


def _cell_number(name: str) -> tuple[str, int]:
    """A repeat's folder ("#7", "delay=12.5ms#7") as a sort key: #10 after #9."""
    settings, _, repeat = name.rpartition("#")
    return (settings, int(repeat)) if repeat.isdigit() else (name, 0)


def figure(observer: str, end: str, runs: list[Run]) -> str:
    """One line: the ratios' spread for one end, and which runs miss the goal."""
    ratios = [r.ratios[end] for r in runs]
    worst = max(abs(x - 1) for x in ratios)
    outside = [f"{r.cell} {r.ratios[end]:.4f}" for r in runs if abs(r.ratios[end] - 1) > GOAL]
    first = runs[0]
    return (f"observer {observer}, {end} handshake / RTT over {len(runs)} runs: min {min(ratios):.4f}, "
            f"median {statistics.median(ratios):.4f}, max {max(ratios):.4f}, max deviation {worst:.4f}; "
            f"within 1%: {len(ratios) - len(outside)}/{len(ratios)}"
            + (f" (outside: {', '.join(outside)})" if outside else "")
            + f"  [{OBSERVERS.get(observer, observer)}; RTT {first.rtt_s * 1e3:g} ms, kernel {first.kernel}, {first.target}]")


def main(argv: list[str]) -> int:
    if len(argv) not in (3, 4) or not argv[0].isdigit() or not (len(argv) == 3 or argv[3].isdigit()):
        print("usage: bench_observer.py REPEATS OBSERVER FOLDER [RTTS]", file=sys.stderr)
        return 2
    repeats, observer, folder, rtts = int(argv[0]), argv[1], Path(argv[2]), int(argv[3]) if len(argv) == 4 else 1
    try:
        by_rtt = read_runs(folder, repeats, rtts)
    except (MissingRuns, OSError, KeyError, ValueError) as exc:
        print(f"benchmark: FAILED: observer {observer}: {exc}", file=sys.stderr)
        return 1
    for runs in by_rtt.values():
        for end in ENDS:
            print(figure(observer, end, runs))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
