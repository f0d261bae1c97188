"""claims.md and claims.html: the seed's 13 claims judged per kernel from the runs of the
experiments that declare them (`claims: [5, 6]`).

A claim's verdict on a kernel is the catalogue's (harness/claims: confirmed, refuted, nuanced)
only when every run of its experiments on that kernel passed; a failed run, or one that gave no
verdict, makes it "not shown" (naming the run), and a claim no experiment declares says "no
experiment yet". Each run links to its report.html (when written) and result.json, by relative
links, so the report travels with the results folder. Both files are self-contained (no URL
outside the results) and written whole or not at all."""
from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import quote

from harness.claims import CLAIMS, Claim
from harness.errors import UserError
from harness.load.experiment import load_claims
from harness.load.facts import version_of
from harness.load.yaml_lines import load_yaml
from harness.report.evidence import atomic_write
from harness.shipped import experiments_dir

RESULT = "result.json"
PAGE = "report.html"
NOT_SHOWN, NO_EXPERIMENT = "not shown", "no experiment yet"
UNKNOWN_KERNEL = "unknown kernel"


# --- which experiments declare which claims ---

def declared_claims(path: Path) -> tuple[int, ...]:
    """The claims an experiment file declares, checked as the loader checks them (file:line errors),
    without building its lab: reading one key is enough."""
    data = load_yaml(path)
    return load_claims(data.get("claims", []), path, data.line_of("claims"))


def _yaml_files(folder: Path) -> list[Path]:
    """Experiment files in the folder and one level down (experiments/packetdrill/)."""
    return sorted([*folder.glob("*.yaml"), *folder.glob("*/*.yaml")])


def claims_experiments(folder: Path, only: set[int] | None = None) -> list[Path]:
    """The experiments in `folder` (and its sub-folders one level down) that declare claims (`only`:
    one of these): the files `run-experiment claims [N...]` runs."""
    return [folder / s.file for s in shipped_experiments(folder) if only is None or set(s.claims) & only]


@dataclass(frozen=True)
class Shipped:
    """An experiment that declares claims: its file (relative to the folder searched), its name."""
    file: str
    name: str
    claims: tuple[int, ...]


def shipped_experiments(folder: Path | None = None) -> list[Shipped]:
    """The experiments that declare claims (default: the shipped ones), each file parsed once; a
    file without the word `claims` in it declares none and is not parsed at all."""
    folder = folder or experiments_dir()
    found = []
    for path in _yaml_files(folder):
        if "claims" not in path.read_text(errors="replace"):
            continue
        data = load_yaml(path)
        claims = load_claims(data.get("claims", []), path, data.line_of("claims"))
        if claims:
            found.append(Shipped(str(path.relative_to(folder)), str(data.get("name")), claims))
    return found


# --- the runs ---

@dataclass(frozen=True)
class ClaimRun:
    """One run folder as the claims report sees it."""
    run_dir: Path
    file: str                    # the experiment's file (relative to experiments/ when shipped)
    kernel: str
    claims: tuple[int, ...]
    passed: bool | None          # None: no verdict (incomplete, or no result.json)
    why: str = ""                # for a run that did not pass: what went wrong
    label: str = ""              # the folder as the report names it (relative to the runs' common folder)


def _result_dirs(path: Path) -> list[Path]:
    """The run folders in `path`: itself when it holds a result.json, else every folder below that
    does (a batch: <experiment>/<run-id>/kernel-<release>/<cell>/); none found: the path itself."""
    if (path / RESULT).is_file():
        return [path]
    found = sorted(p.parent for p in path.rglob(RESULT)) if path.is_dir() else []
    return found or [path]


def _kernel_from_path(run_dir: Path) -> str:
    for part in reversed(run_dir.parts):
        if part.startswith("kernel-") and len(part) > 7:
            return part[7:]
    return UNKNOWN_KERNEL


def _source_file(result: dict, shipped: list[Shipped]) -> tuple[str, Path | None]:
    """The experiment's file name as the report shows it, and a path to read its claims from: the
    recorded source when it is still there, else the shipped file of the same name."""
    source = Path(str(result.get("source") or ""))
    by_name = {s.name: s for s in shipped}
    match = by_name.get(str(result.get("experiment")))
    if match is not None:
        return match.file, source if source.is_file() else experiments_dir() / match.file
    return (source.name or str(result.get("experiment"))), (source if source.is_file() else None)


def _claims_of(result: dict, path: Path | None) -> tuple[int, ...]:
    """result.json's own `claims` when the runner recorded them, else the experiment file's."""
    recorded = result.get("claims")
    if isinstance(recorded, list) and all(isinstance(n, int) and not isinstance(n, bool) for n in recorded):
        return tuple(recorded)
    if path is None:
        return ()
    try:
        return declared_claims(path)
    except UserError:
        return ()


def _outcome(result: dict) -> tuple[bool | None, str]:
    expectations = result.get("expectations") or []
    failed = [str(e.get("name")) for e in expectations if isinstance(e, dict) and not e.get("passed")]
    if result.get("complete") is False or result.get("passed") is None:
        return None, "no verdict (the run's evidence is incomplete)"
    if result.get("passed") is True:
        return True, ""
    return False, f"FAIL: {len(failed)} of {len(expectations)} expectations ({', '.join(failed[:4])})"


def _run_from(run_dir: Path, shipped: list[Shipped]) -> ClaimRun:
    try:
        result = json.loads((run_dir / RESULT).read_text())
        if not isinstance(result, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        return _run_without_result(run_dir, shipped, f"no result ({RESULT}: {getattr(exc, 'strerror', None) or exc})")
    file, path = _source_file(result, shipped)
    passed, why = _outcome(result)
    return ClaimRun(run_dir, file, str(result.get("kernel") or _kernel_from_path(run_dir)), _claims_of(result, path),
                    passed, why)


def _run_without_result(run_dir: Path, shipped: list[Shipped], why: str) -> ClaimRun:
    """A folder with no readable result.json: attributed to the shipped experiment its path names
    (results/<experiment>/...), so the claims it should have shown say it did not."""
    for s in shipped:
        if s.name in run_dir.parts or Path(s.file).stem in run_dir.parts:
            return ClaimRun(run_dir, s.file, _kernel_from_path(run_dir), s.claims, None, why)
    return ClaimRun(run_dir, run_dir.name, _kernel_from_path(run_dir), (), None, why)


def collect_runs(run_dirs: list[Path], shipped: list[Shipped]) -> list[ClaimRun]:
    """Every run in the given folders, named by its path below their common folder (a batch's
    <experiment>/<run-id>/kernel-<release>/<cell>), so two runs of one experiment stay apart."""
    runs = [_run_from(d, shipped) for path in run_dirs for d in _result_dirs(Path(path))]
    folders = [str(r.run_dir.resolve()) for r in runs]
    common = Path(os.path.commonpath(folders)) if folders else Path()
    return [replace(r, label=_label(r.run_dir, common)) for r in runs]


def _label(run_dir: Path, common: Path) -> str:
    relative = os.path.relpath(run_dir.resolve(), common)
    return run_dir.name if relative == "." else relative


# --- the verdicts ---

@dataclass
class Judged:
    """One claim on one kernel."""
    verdict: str                                     # confirmed | refuted | nuanced | not shown | no experiment yet
    why: str = ""
    runs: list[ClaimRun] = field(default_factory=list)


def _kernel_key(kernel: str) -> tuple:
    try:
        return (0, version_of(kernel), kernel)
    except ValueError:
        return (1, (), kernel)


def kernels_of(runs: list[ClaimRun]) -> list[str]:
    return sorted({r.kernel for r in runs}, key=_kernel_key)


def _declaring(number: int, runs: list[ClaimRun], shipped: list[Shipped]) -> list[str]:
    """The files that declare the claim: shipped ones, and any a run recorded."""
    return sorted({s.file for s in shipped if number in s.claims} | {r.file for r in runs if number in r.claims})


def judge(claim: Claim, kernel: str, runs: list[ClaimRun], shipped: list[Shipped]) -> Judged:
    """The claim's verdict on `kernel` from the runs there of the experiments that declare it."""
    declared = _declaring(claim.number, runs, shipped)
    if not declared:
        return Judged(NO_EXPERIMENT, claim.no_experiment)
    mine = [r for r in runs if r.kernel == kernel and claim.number in r.claims]
    if not mine:
        return Judged(NOT_SHOWN, f"no run on this kernel of {', '.join(declared)}")
    bad = [r for r in mine if r.passed is not True]
    if bad:
        return Judged(NOT_SHOWN, "; ".join(f"{r.file} ({r.label or r.run_dir.name}): {r.why}" for r in bad), mine)
    missing = sorted(set(declared) - {r.file for r in mine})
    return Judged(claim.verdict, f"also declared by {', '.join(missing)}: not run on this kernel" if missing else "", mine)


def judge_all(runs: list[ClaimRun], shipped: list[Shipped], claims=CLAIMS) -> dict[tuple[int, str], Judged]:
    return {(c.number, k): judge(c, k, runs, shipped) for c in claims for k in kernels_of(runs)}


# --- writing ---

def _link(target: Path, out_dir: Path) -> str | None:
    """A relative link from the report's folder to `target`, or None when it is not there."""
    if not target.is_file():
        return None
    return quote(os.path.relpath(target.resolve(), out_dir.resolve()).replace(os.sep, "/"))


def _run_links(run: ClaimRun, out_dir: Path) -> list[tuple[str, str]]:
    return [(label, link) for label, name in (("report", PAGE), ("result.json", RESULT))
            if (link := _link(run.run_dir / name, out_dir))]


def _run_state(run: ClaimRun) -> str:
    return "PASS" if run.passed else ("FAIL" if run.passed is False else "NO VERDICT")


def write_claims_report(out_dir: Path, run_dirs: list[Path], only: set[int] | None = None) -> tuple[Path, Path]:
    """claims.md and claims.html in `out_dir` from the given run folders (each a run, or a batch
    folder holding runs); `only`: these claims (`run-experiment claims 5 6`), else all 13.
    Returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    shipped = shipped_experiments()
    claims = [c for c in CLAIMS if only is None or c.number in only]
    runs = [r for r in collect_runs(run_dirs, shipped) if r.claims]     # other experiments' runs judge nothing
    judged = judge_all(runs, shipped, claims)
    kernels = kernels_of(runs)
    md, page = out_dir / "claims.md", out_dir / "claims.html"
    atomic_write(md, render_markdown(kernels, judged, out_dir, runs, claims))
    atomic_write(page, render_html(kernels, judged, out_dir, runs, claims))
    return md, page


INTRO = ("Each claim of the seed (../shared/seed/000_67cc4729f50668e6.txt), judged per kernel by the runs of "
         "the experiments that declare it (`claims:` in the file). A verdict (confirmed, refuted, nuanced) "
         "stands only where every run of those experiments on that kernel passed; otherwise the claim is "
         "\"not shown\" there, naming the run.")


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(kernels: list[str], judged: dict, out_dir: Path, runs: list[ClaimRun], claims=CLAIMS) -> str:
    lines = ["# The seed's claims, judged on Linux", "", INTRO, "",
             f"Runs: {len(runs)} ({sum(r.passed is True for r in runs)} passed) on "
             f"{', '.join(kernels) or 'no kernel: no runs given'}.", ""]
    lines += ["| # | claim | " + " | ".join(kernels) + " |", "|---|---|" + "---|" * len(kernels)]
    for c in claims:
        lines.append(f"| {c.number} | {_md_cell(c.seed_en)} | "
                     + " | ".join(f"**{judged[(c.number, k)].verdict}**" for k in kernels) + " |")
    for c in claims:
        lines += ["", f"## Claim {c.number}", "", f"Seed: {c.seed_zh}", "", f"In English: {c.seed_en}", "",
                  f"What Linux does: {c.linux}", ""]
        if not kernels:
            lines.append(f"- no runs given{': ' + c.no_experiment if c.no_experiment else ''}")
        for k in kernels:
            j = judged[(c.number, k)]
            lines.append(f"- **{k}: {j.verdict}**" + (f" — {j.why}" if j.why else ""))
            for r in j.runs:
                links = " · ".join(f"[{label}]({link})" for label, link in _run_links(r, out_dir))
                lines.append(f"  - {_run_state(r)} `{r.file}` {r.label}" + (f": {links}" if links else ""))
    return "\n".join(lines) + "\n"


STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:70em;padding:0 1em;color:#222;line-height:1.45}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;vertical-align:top;text-align:left}
.v{font-weight:600;padding:.1em .5em;border-radius:.3em;white-space:nowrap}
.confirmed{background:#d7f5d7}.refuted{background:#f8d3d3}.nuanced{background:#fbebc2}
.not-shown{background:#e4e4e4}.no-experiment-yet{background:#f2f2f2;color:#666}
.zh{font-size:1.05em}.why{color:#555}section{border-top:1px solid #ddd;margin-top:1.5em}
.PASS{color:#16761a}.FAIL{color:#b01c1c}.NO-VERDICT{color:#8a6100}
"""


def _badge(verdict: str) -> str:
    return f'<span class="v {verdict.replace(" ", "-")}">{html.escape(verdict)}</span>'


def _html_runs(j: Judged, out_dir: Path) -> str:
    items = []
    for r in j.runs:
        links = " · ".join(f'<a href="{html.escape(link)}">{label}</a>' for label, link in _run_links(r, out_dir))
        state = _run_state(r)
        items.append(f'<li><span class="{state.replace(" ", "-")}">{state}</span> <code>{html.escape(r.file)}</code> '
                     f"{html.escape(r.label)}{': ' + links if links else ''}</li>")
    return f"<ul>{''.join(items)}</ul>" if items else ""


def _html_claim(c: Claim, kernels: list[str], judged: dict, out_dir: Path) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{_badge(judged[(c.number, k)].verdict)}"
        f"{' <span class=why>' + html.escape(judged[(c.number, k)].why) + '</span>' if judged[(c.number, k)].why else ''}"
        f"{_html_runs(judged[(c.number, k)], out_dir)}</td></tr>" for k in kernels)
    return (f'<section id="claim-{c.number}"><h2>Claim {c.number}</h2>'
            f'<p class="zh" lang="zh">{html.escape(c.seed_zh)}</p><p><i>{html.escape(c.seed_en)}</i></p>'
            f"<p><b>What Linux does:</b> {html.escape(c.linux)}</p>"
            + (f'<table class="kernels">{rows}</table>' if rows else "<p>No runs given.</p>") + "</section>")


def render_html(kernels: list[str], judged: dict, out_dir: Path, runs: list[ClaimRun], claims=CLAIMS) -> str:
    head = "".join(f"<th>{html.escape(k)}</th>" for k in kernels)
    summary = "".join(
        f'<tr><td><a href="#claim-{c.number}">{c.number}</a></td><td>{html.escape(c.seed_en)}</td>'
        + "".join(f"<td>{_badge(judged[(c.number, k)].verdict)}</td>" for k in kernels) + "</tr>" for c in claims)
    passed = sum(r.passed is True for r in runs)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<title>The seed's claims, judged on Linux</title>"
            f"<style>{STYLE}</style></head><body><h1>The seed's claims, judged on Linux</h1>"
            f"<p>{html.escape(INTRO)}</p><p>Runs: {len(runs)} ({passed} passed) on "
            f"{html.escape(', '.join(kernels)) or 'no kernel: no runs given'}.</p>"
            f'<table class="summary"><tr><th>#</th><th>claim</th>{head}</tr>{summary}</table>'
            + "".join(_html_claim(c, kernels, judged, out_dir) for c in claims) + "</body></html>\n")
