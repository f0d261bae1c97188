"""report.html: one self-contained page per run folder (inline CSS, JS and SVG; no URL of any
kind), so a teacher can project a run from file:// offline and an engineer can see it at a glance:
title and verdict, the lab's facts and topology, the ladder with the verdicts beside it (hovering
one highlights what it judged), the network steps, a time-sequence view for runs with data, and
export of the ladder alone as SVG or PNG.

Written at the end of every run inside an emulated VM: only the standard library and the
report's own modules, no plotting library."""
from __future__ import annotations

import re
import traceback
from dataclasses import fields
from html import escape
from pathlib import Path

from harness.judge.schedule import LateStep
from harness.report.evidence import atomic_write
from harness.report.page_assets import CSS, ERROR_JS, MAIN_JS, SIDE_BY_SIDE_CSS, SIDE_MIN_WINDOW_PX, SIDE_ROOM_PX
from harness.report.run_data import RunData, load_run
from harness.report.topology_svg import ms, topology_svg
from harness.report.tseq_svg import Series, data_directions, direction_series, tseq_svg

REPORT = "report.html"
LONG = 180          # characters of a verdict's text beyond which its cell scrolls


def write_report(run_dir: Path | str) -> Path:
    """Write RUN/report.html whole or not at all (temp name, fsync, rename) and return its path."""
    run = load_run(run_dir)
    path = Path(run_dir) / REPORT
    atomic_write(path, render(run))
    return path


def draw_report(run_dir: Path) -> str | None:
    """report.html, drawn from the folder's own evidence once result.json is there; None, or what
    to tell the user when drawing failed. The verdict stands without the page, so a failure is
    said (its traceback kept in the folder), never raised."""
    try:
        write_report(run_dir)
        return None
    except Exception as exc:      # noqa: BLE001 - a bug in drawing must not cost the run its verdict
        import traceback
        try:
            (Path(run_dir) / "report-traceback.txt").write_text("".join(traceback.format_exception(exc)))
            kept = "traceback in report-traceback.txt"
        except OSError as error:      # the disk that stopped the drawing may stop this too
            kept = f"its traceback could not be kept either: {error.strerror or error}"
        return (f"report.html could not be drawn, a bug in the test bed: {type(exc).__name__}: {str(exc)[:200]} "
                f"({kept}; please report it). The verdict below stands.")


def render(run: RunData) -> str:
    """The page's HTML for one run."""
    result = run.result
    svg, marks, problem = _ladder(run)
    folder = Path(result.get("run_dir") or run.run_dir).name     # drawn in the work folder, published under this name
    body = (_title(result, folder) + _facts(result)
            + _ladder_section(run, svg, marks, problem) + _steps_note(result, ladder_zero(run))
            + _tseq_section(run) + FOOTER)
    title = f"{result.get('experiment', '?')} — {_verdict_word(result)}"
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<meta name="color-scheme" content="light">'
            f"<title>{escape(title)}</title><style>{CSS}</style><script>{ERROR_JS}</script></head>"
            f'<body data-ready="0" data-errors="">{body}<script>{MAIN_JS}</script></body></html>\n')


def _ladder(run: RunData) -> tuple[str, list[list[str]], str]:
    """The ladder's SVG and marks; a report without its picture beats no report, so a drawing
    error is shown in the page (with its traceback, for the bug report) instead of raised."""
    try:
        from harness.report.ladder_svg import ladder_svg
        picture = ladder_svg(run)
    except Exception as exc:      # noqa: BLE001 — shown in the page, the rest of it still useful
        trace = "".join(traceback.format_exception(exc))
        return "", [], (f'<p class="problem" id="ladder-problem">The ladder could not be drawn (a bug in the test '
                        f'bed; please report it): {escape(type(exc).__name__)}: {escape(str(exc))}</p>'
                        f"<details><summary>traceback</summary><pre>{escape(trace)}</pre></details>")
    return picture.svg, list(picture.marks), ""


def ladder_zero(run: RunData) -> float:
    """The moment the ladder calls +0 (its first segment's send, harness.report.ladder.layout), so
    the page's other times read on the same clock."""
    return run.journeys[0].sent if run.journeys else run.t0


def _verdict_word(result: dict) -> str:
    if result.get("complete") is False:
        return "INCOMPLETE"
    return "PASS" if result.get("passed") else "FAIL"


# ---------------------------------------------------------------- title

def _paragraphs(text: str) -> str:
    """The about: text as paragraphs: lines of a paragraph joined (the file wraps them at its
    own width), except paragraphs with indented or bulleted lines, kept as written."""
    out = []
    for block in text.strip().split("\n\n"):
        lines = block.splitlines()
        if not lines:
            continue
        kept = any(ln[:1].isspace() or ln.lstrip()[:2] in ("- ", "* ") for ln in lines)
        if kept:
            out.append(f'<p class="pre">{escape(block)}</p>')
        else:
            out.append(f"<p>{escape(' '.join(ln.strip() for ln in lines))}</p>")
    return "".join(out)


def _title(result: dict, folder: str) -> str:
    word = _verdict_word(result)
    exps = result.get("expectations") or []
    passed = sum(1 for e in exps if e.get("passed"))
    meta = [("kernel", result.get("kernel")), ("target", result.get("target")), ("run", folder),
            ("file", result.get("source"))]
    shown = " · ".join(f"{k} <b>{escape(str(v))}</b>" for k, v in meta if v)
    about = result.get("about") or ""
    return (f'<header><h1><span class="badge {word.lower()}" id="badge">{word}</span>'
            f'<span>{escape(str(result.get("experiment", "?")))}</span></h1>'
            f'<p class="meta">{shown} · <b>{passed} of {len(exps)}</b> expectations passed</p>'
            + (f'<div class="about">{_paragraphs(about)}</div>' if about.strip() else "") + "</header>")


# ---------------------------------------------------------------- facts

def _rtt(result: dict) -> tuple[str, str]:
    """The RTT the links' delays add up to, and the one ping measured before the run."""
    configured, ping = result.get("configured_rtt_s"), result.get("ping_rtt_s")
    conf = ms(configured) if configured is not None else "not known"
    return conf, ms(round(ping, 6)) if ping is not None else "no answer"


def _sysctl_table(values: dict, hosts: list[str], names: list[str], same: bool) -> str:
    """name | value (one column when every host has the same values, else one per host)."""
    cols = ["every host"] if same else hosts
    head = "".join(f"<th>{escape(c)}</th>" for c in ["sysctl", *cols])
    rows = []
    for n in names:
        cells = [values[h].get(n) for h in (hosts[:1] if same else hosts)]
        shown = "".join(f'<td class="num">{"— (kernel lacks it)" if v is None else escape(str(v))}</td>' for v in cells)
        rows.append(f"<tr><td><code>{escape(n)}</code></td>{shown}</tr>")
    return f'<table class="sysctls"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _sysctls(result: dict) -> str:
    """The sysctls read back in each host (folded away: a long list), and the optional ones skipped."""
    values: dict = result.get("sysctls") or {}
    hosts = sorted(values)
    names = sorted({n for h in hosts for n in values[h]})
    skipped = "".join(f"<li>{escape(s)}</li>" for s in result.get("sysctls_skipped") or [])
    skipped = f'<p>Optional sysctls this kernel lacks, not set:</p><ul class="skipped">{skipped}</ul>' if skipped else ""
    if not names:
        return '<p class="note">No sysctl was read.</p>' + skipped
    same = all(len({str(values[h].get(n)) for h in hosts}) == 1 for n in names)
    where = "the same in every host" if same else "per host"
    return (f'<details class="sysctls"><summary>Sysctls: {len(names)} read after the experiment set its own '
            f'({where}); click to show</summary>{_sysctl_table(values, hosts, names, same)}</details>{skipped}')


def _bw(v) -> str:
    return f"{v:g} Mbit/s" if v else "unlimited"


def _links(lab: dict) -> str:
    rows = []
    for link in lab.get("links", []):
        for src, dst, key, intf in ((link["a"], link["b"], "a_to_b", link.get("a_interface")),
                                    (link["b"], link["a"], "b_to_a", link.get("b_interface"))):
            d = link.get(key) or {}
            cells = [f"{src} → {dst}", intf or "", ms(d.get("delay_s") or 0.0), ms(d.get("jitter_s") or 0.0),
                     f"{d.get('loss_pct') or 0:g} %", _bw(d.get("bw_mbit")),
                     str(d["queue"]) + " packets" if d.get("queue") else "default"]
            rows.append("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("direction", "leaves by", "delay", "jitter", "loss", "bandwidth", "queue"))
    return f'<table class="links"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _facts(result: dict) -> str:
    configured, pinged = _rtt(result)
    basics = (f"<tr><th>RTT configured</th><td>{escape(configured)}</td></tr>"
              f"<tr><th>RTT by ping</th><td>{escape(pinged)} (before the run)</td></tr>"
              f"<tr><th>kernel</th><td>{escape(str(result.get('kernel', '?')))}</td></tr>"
              f"<tr><th>target</th><td>{escape(str(result.get('target', '?')))}</td></tr>"
              + (f"<tr><th>switch</th><td>{escape(str(result['switch']))}</td></tr>" if result.get("switch") else ""))
    lab = result.get("lab")
    if lab:
        server = (result.get("observation") or {}).get("server_host")
        where = (f'<div><h3>Topology</h3>{topology_svg(lab, server)}</div>'
                 f"<div><h3>Links (each direction: the delay is on the interface it leaves by)</h3>{_links(lab)}</div>")
    else:
        where = ('<p class="note" id="no-lab">This run was recorded before result.json described the lab: '
                 "no topology drawing or link settings.</p>")
    return (f'<section id="facts"><h2>The lab</h2><div class="facts-grid"><table class="basics">{basics}</table>'
            f"{where}</div>{_sysctls(result)}</section>")


# ---------------------------------------------------------------- ladder and verdicts

def _verdict_row(i: int, e: dict, marks: list[str]) -> str:
    cls = "pass" if e.get("passed") else "fail"
    line = f'<div class="line">line {e["line"]}</div>' if e.get("line") else ""
    extra = "" if marks else " nomarks"
    return (f'<tr class="verdict {cls}{extra}" id="verdict-{i}" data-marks="{escape(" ".join(marks))}" tabindex="0" '
            f'aria-pressed="false"><td class="v">{cls.upper()}</td><td>{escape(str(e.get("name", "")))}{line}</td>'
            f'{_cell(e.get("expected"))}{_cell(e.get("observed"))}</tr>')


def _cell(text) -> str:
    """A verdict's expected or observed text; a long one (a list of packets) scrolls in its cell."""
    text = "" if text is None else str(text)
    inner = f'<div class="long">{escape(text)}</div>' if len(text) > LONG else escape(text)
    return f"<td>{inner}</td>"


def verdict_table(expectations: list[dict], marks: list[list[str]]) -> str:
    """One row per expectation, in the file's order; each row's data-marks names what it judged."""
    rows = "".join(_verdict_row(i, e, marks[i] if i < len(marks) else []) for i, e in enumerate(expectations))
    return ('<table class="verdicts"><thead><tr><th>verdict</th><th>expectation</th><th>expected</th>'
            f'<th>observed</th></tr></thead><tbody>{rows}</tbody></table>')


def _min_width(svg: str) -> int:
    """85 % of the ladder's own width (its first width="..."), below which the page scrolls instead."""
    found = re.search(r'<svg\b[^>]*?\swidth="([0-9.]+)', svg)
    return round(0.85 * float(found.group(1))) if found else 800


def _ladder_section(run: RunData, svg: str, marks: list[list[str]], problem: str) -> str:
    exps = run.result.get("expectations") or []
    empty = not any(run.captures.values())
    notes = ('<p class="note" id="no-segments">No segment was captured in this run: no connection was made.</p>'
             if empty else "")
    notes += problem
    export = ('<div class="export">Export the ladder alone: <button type="button" id="export-svg">ladder.svg</button>'
              '<button type="button" id="export-png">ladder.png</button></div>' if svg else "")
    min_w = _min_width(svg)
    side = SIDE_BY_SIDE_CSS.format(width=max(SIDE_MIN_WINDOW_PX, min_w + SIDE_ROOM_PX))
    return (f'<section id="picture"><h2>What happened</h2>{notes}<style>{side}</style><div class="main-grid">'
            f'<div>{export}<div class="ladder-box" style="--min-w: {min_w}px">{svg}</div></div>'
            f'<aside class="verdict-side"><h3>Verdicts</h3><p class="hint">Hover over a verdict, or click it (Enter) to pin it, to '
            f'highlight what it judged.</p>{verdict_table(exps, marks)}</aside></div></section>')


# ---------------------------------------------------------------- network and late steps

def _picked(seg: dict, t0: float, node: str) -> str:
    text = f"{seg.get('flags', '?')} seq={seg.get('seq')}"
    if seg.get("arrived") is not None:
        text += f" reached {node} at {seg['arrived'] - t0:+.3f} s (ladder time)"
    if seg.get("held_s") is not None:
        text += f", held {seg['held_s']:.3f} s"
    left = seg.get("left")
    if isinstance(left, list):
        text += ", never left it" if not left else (f", left it {len(left)} times" if len(left) > 1 else "")
    return text


def _injected(step: dict) -> str:
    recs = step.get("injected") or []
    if not recs:
        return ""
    rec = recs[0]
    if rec.get("sent") is None:
        return "; not sent" + (f": {rec['error']}" if rec.get("error") else "")
    try:
        from harness.analyse.injected import describe_fields
        what = describe_fields(rec)
    except (KeyError, TypeError, ValueError):
        what = "a segment"
    return f"; sent {what}"


def network_note(step: dict, t0: float, where: dict | None) -> str:
    """One network step in a sentence: what it matched and picked and what became of each picked segment."""
    at = f" at {where['switch']} ({where['ingress']} → {where['egress']})" if where else ""
    text = (f"line {step.get('line')}: {step.get('action')} {step.get('from')} → {step.get('to')}{at}: "
            f"picked {step.get('picked')} of {step.get('matching')} matching segment(s)")
    picked = "; ".join(_picked(s, t0, where["switch"] if where else "the switch") for s in step.get("segments") or [])
    text += (f" ({picked})" if picked else "") + _injected(step)
    problems = step.get("problems") or []
    return text + ("; problems: " + "; ".join(problems) if problems else "")


def _late(entry: dict) -> str:
    try:
        names = {f.name for f in fields(LateStep)}
        return LateStep(**{k: v for k, v in entry.items() if k in names}).describe()
    except (TypeError, ValueError):
        return f"{entry.get('host')}'s {entry.get('action')} (line {entry.get('line')}) started late"


def _steps_note(result: dict, t0: float) -> str:
    lab = result.get("lab") or {}
    places = {n.get("line"): n for n in lab.get("network_steps") or []}
    network = result.get("network") or []
    late = result.get("late_steps") or []
    if not network and not late:
        return ""
    out = ['<section id="steps">']
    if network:
        items = "".join(f"<li>{escape(network_note(n, t0, places.get(n.get('line'))))}</li>" for n in network)
        out.append(f'<h2>Network steps</h2><ul class="steps network">{items}</ul>')
    if late:
        items = "".join(f"<li>{escape(_late(e))}</li>" for e in late)
        out.append(f'<h2>Steps that started late</h2><ul class="steps late">{items}</ul>')
    return "".join(out) + "</section>"


# ---------------------------------------------------------------- time-sequence view

def _views(run: RunData) -> list[tuple[str, str, list, list]]:
    """(host, ip, what its TCP sent, what reached its interface) per host of the lab: the kernel
    capture for sending times when there is one, the interface's capture for arrivals."""
    out = []
    for host, info in (run.lab.get("hosts") or {}).items():
        wire = run.captures.get(info.get("interface") or f"{host}-eth0", [])
        sent = run.captures.get(f"{host}.kernel") or wire
        out.append((host, info.get("ip"), sent, wire or sent))
    return out


def time_sequences(run: RunData) -> list[Series]:
    """A series per direction of a connection that carried data, seen from its sender."""
    views = _views(run)
    names = {ip: host for host, ip, _, _ in views}
    zero = ladder_zero(run)
    out = []
    for host, ip, sent, wire in views:
        for key in data_directions([s for s in sent if s.src == ip]):
            peer = names.get(key[2], key[2])
            series = direction_series(sent, wire, key, "", zero)
            series.title = (f"{host} → {peer} ({key[0]}:{key[1]} → {key[2]}:{key[3]}): "
                            f"{series.data_bytes:,} bytes of data")
            out.append(series)
    return out


def _tseq_section(run: RunData) -> str:
    series = time_sequences(run)
    if not series:
        return ""
    views = "".join(f"<div>{tseq_svg(s)}</div>" for s in series)
    return (f'<section id="tseq-section"><h2>Sequence numbers over time</h2><p class="hint">As the sender saw '
            "it: each data segment at the moment its TCP sent it, the ACKs and window when they reached it.</p>"
            f"{views}</section>")


# ---------------------------------------------------------------- footer

FOOTER = """<footer id="legend"><h2>How to read this page</h2><dl>
<dt>Lanes</dt><dd>One vertical lane per host (and per switch or router where a network step acted, or where a
router dropped a segment or sent an ICMP error); time runs down.
Each socket's states are drawn as bands beside its host's lane, with the time of each change.</dd>
<dt>Arrows</dt><dd>Each arrow is one segment, from the moment the sender's TCP handed it to its interface to
its arrival at the peer's interface, labelled with its flags, relative seq/ack and length.
A retransmission is dashed; a dropped segment is red and ends in a cross where it was dropped; a held segment
waits at the switch or router on a thick orange bar marked with the time it was held; a duplicate copy is
purple; an injected segment is green and starts at the switch or router that sent it. A dotted dark-yellow
arrow from a router's lane is an ICMP error that router sent (time exceeded, unreachable, fragmentation
needed). Each connection has its own colour, named in the legend at the top of the ladder.</dd>
<dt>Timers and breaks</dt><dd>Marks on a lane show when a kernel timer was due (retransmission, TIME-WAIT).
A zigzag across the lanes is a long idle stretch left out (its length is written on it).</dd>
<dt>How the times were measured</dt><dd>Send times are the kernel's: each host's TCP output is captured before
the link's delay (netem delays on the way out); arrival times are taken at the receiver's interface.
A full socket's state changes come from the kernel's tracepoints and are drawn at the kernel's moment; a
request socket's SYN-RECV and a TIME-WAIT socket's states are sampled (every 10-50 ms, as segments arrive and
near timers): such a change is drawn where it was first seen, at most one sampling interval after it
happened. A run without the trace (--observer samples, or a kernel without tracefs) samples every state.</dd>
<dt>Verdicts</dt><dd>Each expectation of the experiment file, in the file's order, with its line. Hover over
one, or click it to pin it, to highlight the segments, states and intervals it judged.</dd>
</dl></footer>"""
