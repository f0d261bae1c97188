"""index.html for several runs: a matrix sweep (next to its cells), a batch of experiments
(RESULTS/batches/<run-id>/: harness.cli) and compare-runs (next to comparison.*).

One page, self-contained (inline CSS and SVG, no script, no external URL: it opens from file://
offline): a header (what ran, when, on which kernels, how many passed), the table of runs with
relative links to each run's report.html (result.json when the run has no report), a plot of each
timing figure across the runs with its accepted range shaded, and two runs' ladders side by side
when the runs compare kernels or settings. The rows and figures are compare.py's (load_rows,
summarise), so the page and comparison.csv never disagree."""
from __future__ import annotations

import html
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from harness.report.compare import _row_key, _unit, load_rows, natural_key, summarise
from harness.report.evidence import atomic_write

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
LINK_TARGETS = ("report.html", "result.json", "run.log")     # what a row links to, first that exists
_STAMP = re.compile(r"^(\d{4})(\d\d)(\d\d)-(\d\d)(\d\d)(\d\d)")


def write_index(folder: Path, run_dirs: list[Path], title: str, *, sort: bool = False,
                notes: list[str] | tuple[str, ...] = ()) -> Path:
    """Write folder/index.html (temp file, then rename: never half a page) and return its path.

    sort: order the rows by experiment, settings (numbers as numbers) and kernel (compare-runs);
    otherwise the order given is kept (a matrix's cells as written). notes: lines for the header,
    e.g. the batch items that left no folder."""
    entries = list(zip(load_rows(run_dirs), run_dirs))
    if sort:
        entries.sort(key=lambda e: _row_key(e[0]))
    folder.mkdir(parents=True, exist_ok=True)
    body = [_header(title, entries, notes), _table(folder, entries), _plots(entries), _ladders(entries)]
    page = (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head>\n<body>\n" + "\n".join(b for b in body if b) + "\n</body></html>\n")
    out = folder / "index.html"
    atomic_write(out, page)
    return out


# --- header and table -------------------------------------------------------------------------

def _when(run: Path) -> float | None:
    """When a run ran: the run id's stamp in its path (YYYYmmdd-HHMMSS, local time), else its
    result.json's modification time."""
    for part in reversed(run.parts):
        match = _STAMP.match(part)
        if match:
            return time.mktime(tuple(int(g) for g in match.groups()) + (0, 0, -1))
    result = run / "result.json"
    return result.stat().st_mtime if result.exists() else None


def _when_text(runs: list[Path]) -> str:
    """'2026-12-04 10:04' or '2026-12-04 10:04 to 2026-12-04 11:10' (local time)."""
    stamps = sorted(t for run in runs if (t := _when(run)) is not None)
    if not stamps:
        return "-"
    first = time.strftime("%Y-%m-%d %H:%M", time.localtime(stamps[0]))
    return first if stamps[-1] - stamps[0] < 60 else first + time.strftime(" to %Y-%m-%d %H:%M", time.localtime(stamps[-1]))


def _count_text(rows: list[dict]) -> str:
    passed = sum(r["passed"] is True for r in rows)
    failed = sum(r["passed"] is False for r in rows)
    missing = len(rows) - passed - failed
    return f"{passed} of {len(rows)} passed" + (f", {failed} failed" if failed else "") + (
        f", {missing} without a result" if missing else "")


def _header(title: str, entries: list[tuple[dict, Path]], notes) -> str:
    rows = [row for row, _ in entries]
    experiments = sorted({r["experiment"] for r in rows if r["experiment"]}, key=natural_key)
    kernels = sorted({r["kernel"] for r in rows if r["kernel"]}, key=natural_key)
    when, count = _when_text([run for _, run in entries]), _count_text(rows)
    facts = [("experiments" if len(experiments) > 1 else "experiment", ", ".join(experiments) or "-"),
             ("runs", str(len(rows))), ("when", when), ("kernels" if len(kernels) > 1 else "kernel",
                                                                ", ".join(kernels) or "-"), ("verdicts", count)]
    items = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in facts)
    extra = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return (f"<h1>{html.escape(title)}</h1>\n<table class=\"facts\">{items}</table>"
            + (f"\n<ul class=\"notes\">{extra}</ul>" if extra else ""))


def _link(folder: Path, run: Path) -> str | None:
    """The relative, URL-quoted link from the index's folder to what shows the run best."""
    for name in LINK_TARGETS:
        if (run / name).exists():
            rel = os.path.relpath(run / name, folder)
            return quote(rel.replace(os.sep, "/"), safe="/")
    return None


def _verdict(passed: bool | None) -> tuple[str, str]:
    return {True: ("pass", "PASS"), False: ("fail", "FAIL")}.get(passed, ("none", "no result"))


def _figure_text(row: dict, name: str, unit: tuple[str, float, int]) -> tuple[str, str, str]:
    """A figure of a row: its value in the unit, pass/fail, and the accepted range as a tooltip."""
    _, scale, digits = unit
    low_high = row["ranges"].get(name)
    tip = f" title=\"accepted {low_high[0] * scale:.{digits}f} to {low_high[1] * scale:.{digits}f}\"" if low_high else ""
    return f"{row['figures'][name] * scale:.{digits}f}", "fail" if name in row["failed"] else "pass", tip


def _figure_cells(row: dict, units: dict | None) -> str:
    """The row's figures: one column each (units: name -> the column's unit), or, when the runs
    are of several experiments (units None: each has figures of its own), one cell listing them."""
    if units is not None:
        return "".join("<td class=\"num {1}\"{2}>{0}</td>".format(*_figure_text(row, n, u)) if n in row["figures"]
                       else "<td></td>" for n, u in units.items())
    parts = []
    for name in sorted(row["figures"], key=natural_key):
        unit = _unit([row["figures"][name]])
        text, css, tip = _figure_text(row, name, unit)
        parts.append(f"<span class=\"figure {css}\"{tip}>{html.escape(name)} {text} {unit[0]}</span>")
    return f"<td class=\"figures\">{'<br>'.join(parts)}</td>"


def _table(folder: Path, entries: list[tuple[dict, Path]]) -> str:
    rows = [row for row, _ in entries]
    names = sorted({n for r in rows for n in r["figures"]}, key=natural_key)
    several = len({r["experiment"] for r in rows if r["experiment"]}) > 1
    units = None if several else {n: _unit([r["figures"][n] for r in rows if n in r["figures"]]) for n in names}
    settings = any(r["settings"] != r["run"] for r in rows)       # else the run's name says it
    columns = [c for c, shown in (("experiment", several), ("settings", settings), ("kernel", True)) if shown]
    head = ["run", *columns, "verdict", *_figure_heads(units), "failed"]
    lines = ["<h2>Runs</h2>", "<table class=\"runs\"><thead><tr>" + "".join(
        f"<th>{html.escape(h)}</th>" for h in head) + "</tr></thead><tbody>"]
    lines += [_table_row(row, _link(folder, run), columns, units) for row, run in entries]
    lines.append("</tbody></table>")
    return "\n".join(lines)


def _figure_heads(units: dict | None) -> list[str]:
    return ["figures"] if units is None else [f"{n} [{u[0]}]" for n, u in units.items()]


def _table_row(row: dict, href: str | None, columns: list[str], units: dict | None) -> str:
    name = html.escape(row["run"])
    css, word = _verdict(row["passed"])
    cells = [f"<a href=\"{href}\">{name}</a>" if href else name] + [html.escape(row[c]) for c in columns]
    return (f"<tr class=\"run {css}\">" + "".join(f"<td>{c}</td>" for c in cells)
            + f"<td class=\"verdict\">{word}</td>" + _figure_cells(row, units)
            + f"<td class=\"failed\">{html.escape('; '.join(row['failed']))}</td></tr>")


# --- plots ------------------------------------------------------------------------------------

def _ranges(entries: list[tuple[dict, Path]]) -> dict[tuple, list[float]]:
    """(experiment, settings, kernel, figure) -> the accepted range, widened over repeats."""
    out: dict[tuple, list[float]] = {}
    for row, _ in entries:
        for name, (low, high) in row["ranges"].items():
            key = (row["experiment"], row["settings"], row["kernel"], name)
            old = out.get(key, [low, high])
            out[key] = [min(old[0], low), max(old[1], high)]
    return out


def _plots(entries: list[tuple[dict, Path]]) -> str:
    """One plot per figure of each experiment that has two points or more (a figure measured
    once is in the table)."""
    summary = summarise([row for row, _ in entries])
    ranges = _ranges(entries)
    figures = sorted({(s["experiment"], n) for s in summary for n in s["figures"]},
                     key=lambda k: (natural_key(k[0]), natural_key(k[1])))
    several = len({s["experiment"] for s in summary if s["experiment"]}) > 1
    pictures = [p for experiment, name in figures
                if (p := _figure(experiment, name, summary, ranges, entries, several))]
    if not pictures:
        return ""
    return "<h2>Figures across the runs</h2>\n<p class=\"hint\">median of repeats, whiskers min to max; " \
           "the shaded band is the accepted range; a hollow point failed.</p>\n<div class=\"plots\">" + \
           "\n".join(pictures) + "</div>"


def _figure(experiment: str, name: str, summary: list[dict], ranges: dict, entries: list, several: bool) -> str:
    """One figure of one experiment as a captioned plot; "" when it has fewer than two points."""
    points = [s for s in summary if s["experiment"] == experiment and name in s["figures"]]
    if len(points) < 2:
        return ""
    label = f"{experiment}: {name}" if several else name
    failed = {(r["settings"], r["kernel"]) for r, _ in entries if r["experiment"] == experiment and name in r["failed"]}
    mine = {k[1:3]: v for k, v in ranges.items() if k[0] == experiment and k[3] == name}
    return f"<figure class=\"plot\"><figcaption>{html.escape(label)}</figcaption>{plot_svg(name, points, mine, failed)}</figure>"


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high] (steps of 1, 2 or 5 times a power of ten)."""
    raw = (high - low) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step - 1e-9)
    return [round(k * step, 12) for k in range(first, int(math.floor(high / step + 1e-9)) + 1)]


def _y_extent(points: list[dict], name: str, ranges: dict) -> tuple[float, float]:
    values = [p["figures"][name][k] for p in points for k in ("min", "max")] + [v for r in ranges.values() for v in r]
    low, high = min(values), max(values)
    pad = (high - low) * 0.08 or max(abs(high) * 0.05, 1e-4)
    return low - pad, high + pad


def short_labels(labels: list[str]) -> tuple[list[str], str]:
    """The labels without the text they all share, and that text with "…" where they differ:
    tcp_syn_retries=1@client, =2@client -> (["1", "2"], "tcp_syn_retries=…@client"). A number is
    never cut in two (retries=10, retries=15 keep "10", "15")."""
    if len(labels) < 2:
        return labels, ""
    prefix = os.path.commonprefix(labels)
    suffix = os.path.commonprefix([s[len(prefix):][::-1] for s in labels])[::-1]
    while prefix and (prefix[-1].isdigit() or prefix[-1] == "."):
        prefix = prefix[:-1]
    while suffix and (suffix[0].isdigit() or suffix[0] == "."):
        suffix = suffix[1:]
    rest = [s[len(prefix):len(s) - len(suffix)] for s in labels]
    if not (prefix or suffix) or not all(rest):
        return labels, ""
    return rest, f"{prefix}…{suffix}"


@dataclass
class _Frame:
    """Where a plot's parts go: the plotting box, one slot per x value, a column per kernel in it."""
    left: float
    top: float
    slot: float
    height: float               # of the plotting box
    columns: int                # kernels
    low: float                  # the y axis' range, seconds
    high: float

    def x(self, i: int, k: int) -> float:
        return self.left + self.slot * i + self.slot * (k + 1) / (self.columns + 1)

    def y(self, value: float) -> float:
        return self.top + self.height * (self.high - value) / (self.high - self.low)


def plot_svg(name: str, points: list[dict], ranges: dict[tuple[str, str], list[float]],
             failed: set[tuple[str, str]] = frozenset()) -> str:
    """An inline SVG of one figure: x = the settings (numbers in order) or the run, one series
    (colour) per kernel, a point per median with a min-max whisker, the accepted range of each
    point shaded behind it. points: compare.summarise entries holding the figure;
    ranges: (settings, kernel) -> [low, high] seconds; failed: the (settings, kernel) whose
    verdict on this figure failed (in one run or more), drawn hollow."""
    xs = sorted({p["settings"] for p in points}, key=natural_key)
    kernels = sorted({p["kernel"] for p in points}, key=natural_key)
    unit = _unit([p["figures"][name]["median"] for p in points])
    labels, shared = short_labels(xs)
    frame, width, height = _layout(labels, kernels, bool(shared), _y_extent(points, name, ranges))
    left, slot = frame.left, frame.slot
    out = [f"<svg class=\"figure-plot\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" "
           f"viewBox=\"0 0 {width} {height}\" data-figure=\"{html.escape(name)}\">"]
    out += _axes(xs, labels, nice_ticks(frame.low, frame.high), frame, unit)
    if shared:
        out.append(f"<text class=\"xcaption\" x=\"{left + slot * len(xs) / 2:.1f}\" "
                   f"y=\"{height - 4 - 18 * (len(kernels) > 1)}\" text-anchor=\"middle\">{html.escape(shared)}</text>")
    for k, kernel in enumerate(kernels):
        mine = {p["settings"]: p for p in points if p["kernel"] == kernel}
        out += _series(name, k, kernel, [(i, s, mine[s]) for i, s in enumerate(xs) if s in mine], frame, unit,
                       {s: ranges[(s, kernel)] for s in mine if (s, kernel) in ranges}, failed)
    if len(kernels) > 1:
        out += _legend(kernels, left, height - 10)
    out.append("</svg>")
    return "\n".join(out)


def _layout(labels: list[str], kernels: list[str], caption: bool, extent: tuple[float, float]) -> tuple[_Frame, float, float]:
    """The plotting box and the picture's size: room for tilted long labels, the shared part of
    the labels under them and a legend when there are several kernels."""
    longest = min(max(len(x) for x in labels), 36)
    slot = max(80, 14 * len(kernels) + 30)
    left = max(70, 5 * longest - slot / 2 + 8) if longest > 8 else 70
    frame = _Frame(left, 12, slot, 200, len(kernels), *extent)
    bottom = 28 + (longest * 5 if longest > 8 else 0) + 18 * caption + 18 * (len(kernels) > 1)
    legend = sum(24 + 6.5 * len(k) for k in kernels) if len(kernels) > 1 else 0
    return frame, max(left + slot * len(labels), left + legend) + 16, frame.top + frame.height + bottom


def _series(name: str, k: int, kernel: str, cells: list[tuple[int, str, dict]], frame: _Frame, unit: tuple,
            bands: dict[str, list[float]], failed: set) -> list[str]:
    """One kernel's bands, line and points; cells: (x index, settings, summary entry)."""
    colour, sub = COLOURS[k % len(COLOURS)], frame.slot / (frame.columns + 1)
    out = []
    for i, setting, _ in cells:
        band = bands.get(setting)
        if band:
            top, bottom = frame.y(band[1]), frame.y(band[0])
            out.append(f"<rect class=\"expected\" data-x=\"{html.escape(setting)}\" data-kernel=\"{html.escape(kernel)}\" "
                       f"data-low=\"{band[0]:.6f}\" data-high=\"{band[1]:.6f}\" x=\"{frame.x(i, k) - sub / 2:.1f}\" "
                       f"y=\"{top:.1f}\" width=\"{sub:.1f}\" height=\"{max(bottom - top, 1):.1f}\" "
                       f"fill=\"{colour}\" fill-opacity=\"0.16\" stroke=\"{colour}\" stroke-opacity=\"0.4\"/>")
    line = " ".join(f"{frame.x(i, k):.1f},{frame.y(e['figures'][name]['median']):.1f}" for i, _, e in cells)
    out.append(f"<polyline class=\"series\" points=\"{line}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\"/>")
    out += [_point(e, name, frame.x(i, k), frame.y, colour, unit, bands.get(s), (s, kernel) not in failed)
            for i, s, e in cells]
    return out


def _axes(xs: list[str], labels: list[str], ticks: list[float], frame: _Frame, unit: tuple) -> list[str]:
    left, top, slot, plot_h, y = frame.left, frame.top, frame.slot, frame.height, frame.y
    tilt = max(len(x) for x in labels) > 8
    name, scale, digits = unit
    right = left + slot * len(xs)
    out = [f"<rect class=\"frame\" x=\"{left}\" y=\"{top}\" width=\"{right - left}\" height=\"{plot_h}\" fill=\"none\" stroke=\"#999\"/>"]
    for t in ticks:
        out.append(f"<line class=\"grid\" x1=\"{left}\" x2=\"{right}\" y1=\"{y(t):.1f}\" y2=\"{y(t):.1f}\" stroke=\"#ddd\"/>"
                   f"<text x=\"{left - 4}\" y=\"{y(t) + 4:.1f}\" text-anchor=\"end\">{t * scale:.{_tick_digits(ticks, scale)}f}</text>")
    out.append(f"<text class=\"unit\" transform=\"translate(14 {top + plot_h / 2}) rotate(-90)\" text-anchor=\"middle\">{name}</text>")
    for i, (setting, label) in enumerate(zip(xs, labels)):
        cx, base = left + slot * (i + 0.5), top + plot_h + 14
        text = html.escape(label if len(label) <= 36 else label[:35] + "…")
        attrs = f"transform=\"rotate(-35 {cx:.1f} {base})\" text-anchor=\"end\"" if tilt else "text-anchor=\"middle\""
        out.append(f"<text class=\"xlabel\" x=\"{cx:.1f}\" y=\"{base}\" {attrs}><title>{html.escape(setting)}</title>{text}</text>")
    return out


def _tick_digits(ticks: list[float], scale: float) -> int:
    step = (ticks[1] - ticks[0]) * scale if len(ticks) > 1 else 1.0
    return max(0, -math.floor(math.log10(step) + 1e-9))


def _point(entry: dict, name: str, cx: float, y, colour: str, unit: tuple, band: list[float] | None,
           inside: bool) -> str:
    stats = entry["figures"][name]
    label, scale, digits = unit
    tip = f"{entry['settings']}, {entry['kernel']}: {stats['median'] * scale:.{digits}f} {label}" + (
        f" (min {stats['min'] * scale:.{digits}f}, max {stats['max'] * scale:.{digits}f}, {stats['n']} runs)" if stats["n"] > 1 else "") + (
        f"; accepted {band[0] * scale:.{digits}f} to {band[1] * scale:.{digits}f}" if band else "")
    whisker = "" if stats["n"] < 2 else (f"<line class=\"whisker\" x1=\"{cx:.1f}\" x2=\"{cx:.1f}\" y1=\"{y(stats['min']):.1f}\" "
                                         f"y2=\"{y(stats['max']):.1f}\" stroke=\"{colour}\"/>")
    fill = colour if inside else "#fff"
    return (f"<g class=\"pt {'pass' if inside else 'fail'}\" data-figure=\"{html.escape(name)}\" data-x=\"{html.escape(entry['settings'])}\" "
            f"data-kernel=\"{html.escape(entry['kernel'])}\" data-value=\"{stats['median']:.6f}\">{whisker}"
            f"<circle cx=\"{cx:.1f}\" cy=\"{y(stats['median']):.1f}\" r=\"4\" fill=\"{fill}\" stroke=\"{colour}\" stroke-width=\"2\"/>"
            f"<title>{html.escape(tip)}</title></g>")


def _legend(kernels: list[str], left: float, base: float) -> list[str]:
    out, at = [], left
    for k, kernel in enumerate(kernels):
        colour = COLOURS[k % len(COLOURS)]
        out.append(f"<g class=\"legend\"><rect x=\"{at}\" y=\"{base - 9}\" width=\"10\" height=\"10\" fill=\"{colour}\"/>"
                   f"<text x=\"{at + 14}\" y=\"{base}\">{html.escape(kernel)}</text></g>")
        at += 24 + 6.5 * len(kernel)
    return out


# --- ladders side by side ---------------------------------------------------------------------

def ladder_pair(entries: list[tuple[dict, Path]]) -> tuple[list[tuple[dict, Path]], str]:
    """The two runs worth seeing side by side, and why: the same experiment and settings on two
    kernels (the first such), else the first two runs of one experiment whose settings differ;
    none when the runs are different experiments, each once."""
    done = [(row, run) for row, run in entries if row["passed"] is not None]
    return _kernel_pair(done) or _settings_pair(done) or ([], "")


def _case(row: dict) -> str:
    """A run's settings; none for a plain run, whose folder is named by its run id."""
    return "" if _STAMP.match(row["settings"]) else row["settings"]


def _kernel_pair(done: list[tuple[dict, Path]]) -> tuple[list, str] | None:
    by_case: dict[tuple, list] = {}
    for row, run in done:
        by_case.setdefault((row["experiment"], _case(row)), []).append((row, run))
    for (experiment, settings), members in by_case.items():
        kernels = sorted({r["kernel"] for r, _ in members}, key=natural_key)
        if len(kernels) > 1:
            pair = [next(m for m in members if m[0]["kernel"] == k) for k in kernels[:2]]
            return pair, f"{experiment} [{settings}] on two kernels" if settings else f"{experiment} on two kernels"
    return None


def _settings_pair(done: list[tuple[dict, Path]]) -> tuple[list, str] | None:
    for row, run in done:
        other = next(((r, d) for r, d in done if r["experiment"] == row["experiment"] and r["settings"] != row["settings"]), None)
        if other:
            what = "two settings" if _case(row) or _case(other[0]) else "two runs"
            return [(row, run), other], f"{row['experiment']}: {what}"
    return None


def _scoped(svg: str, prefix: str) -> str:
    """The same SVG with its ids (and the references to them) prefixed: two ladders in one page
    must not share ids such as "ladder" or "seg-3"."""
    svg = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}{m[1]}"', svg)
    svg = re.sub(r'url\(#([^)]+)\)', lambda m: f"url(#{prefix}{m[1]})", svg)
    return re.sub(r'(href)="#([^"]+)"', lambda m: f'{m[1]}="#{prefix}{m[2]}"', svg)


def _ladder_column(row: dict, run: Path, number: int) -> str:
    from harness.report.ladder_svg import ladder_svg
    from harness.report.run_data import load_run
    try:
        svg = _scoped(ladder_svg(load_run(run)).svg, f"L{number}-")
    except Exception as exc:  # noqa: BLE001 - one run's missing captures must not cost the page
        svg = f"<p class=\"note\">no ladder: {html.escape(f'{type(exc).__name__}: {exc}')}</p>"
    head = " · ".join(html.escape(v) for v in (row["experiment"], row["settings"], row["kernel"]) if v)
    css, word = _verdict(row["passed"])
    return f"<div class=\"ladder-column\"><h3>{head} <span class=\"{css}\">{word}</span></h3>{svg}</div>"


def _ladders(entries: list[tuple[dict, Path]]) -> str:
    pair, why = ladder_pair(entries)
    if not pair:
        return ""
    try:
        import harness.report.ladder_svg  # noqa: F401 - written alongside this module (issue 16)
        import harness.report.run_data  # noqa: F401
    except ImportError:
        return f"<h2>Ladders side by side</h2>\n<p class=\"note\">{html.escape(why)}: no ladder drawing in this version.</p>"
    columns = "".join(_ladder_column(row, run, n) for n, (row, run) in enumerate(pair, 1))
    return f"<h2>Ladders side by side: {html.escape(why)}</h2>\n<div class=\"ladders\">{columns}</div>"


CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.2em;color:#222}
h1{font-size:1.4em;margin:0 0 .4em}h2{font-size:1.15em;margin:1.4em 0 .4em}h3{font-size:1em;margin:.2em 0}
table{border-collapse:collapse}th,td{padding:2px 8px;text-align:left;vertical-align:top}
table.facts th{color:#555;font-weight:normal}
table.runs th{border-bottom:2px solid #999;white-space:nowrap}table.runs td{border-bottom:1px solid #ddd;white-space:nowrap}
table.runs td.failed{white-space:normal;min-width:12em}
td.num{text-align:right}td.num,td.figures{font-variant-numeric:tabular-nums}td.num.fail,span.figure.fail{color:#b00;font-weight:bold}
tr.pass td.verdict,.pass{color:#070}tr.fail td.verdict,span.fail{color:#b00;font-weight:bold}
tr.none td.verdict,span.none{color:#777;font-style:italic}
.plots{display:flex;flex-wrap:wrap;gap:16px}figure.plot{margin:0}figcaption{font-weight:bold}
svg.figure-plot text{font-size:11px;fill:#333}
.ladders{display:grid;grid-template-columns:1fr 1fr;gap:12px}
.ladder-column{overflow:auto;max-height:85vh;border:1px solid #ccc;padding:4px}
.ladder-column svg{width:100%;height:auto}
.note,.hint{color:#555}
"""
