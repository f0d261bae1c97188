"""The report page's style sheet and scripts, inline strings: report.html must work from file://
offline, so nothing is fetched (no CDN, no web font, no image by URL) and nothing is installed
beside the Python package."""
from __future__ import annotations

# Light background, dark text, 18 px base: readable when projected in a lit room.
CSS = """
:root { --ink: #111827; --muted: #4b5563; --line: #d1d5db; --pass: #166534; --pass-bg: #dcfce7;
        --fail: #991b1b; --fail-bg: #fee2e2; --accent: #b45309; --paper: #ffffff; --soft: #f3f4f6; }
* { box-sizing: border-box; }
html { font-size: 18px; }
body { margin: 0; padding: 1rem 1.5rem 2rem; background: var(--paper); color: var(--ink);
       font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", Arial, sans-serif;
       line-height: 1.45; }
h1 { font-size: 1.8rem; margin: 0.2rem 0 0.4rem; display: flex; align-items: center; gap: 0.8rem;
     flex-wrap: wrap; }
h2 { font-size: 1.3rem; margin: 1.6rem 0 0.6rem; border-bottom: 2px solid var(--line); padding-bottom: 0.2rem; }
h3 { font-size: 1.05rem; margin: 1rem 0 0.4rem; }
code, .mono, td.num { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 0.92em; }
.badge { display: inline-block; padding: 0.1rem 0.7rem; border-radius: 0.4rem; font-weight: 700;
         letter-spacing: 0.05em; font-size: 1.3rem; }
.badge.pass { background: var(--pass-bg); color: var(--pass); border: 2px solid var(--pass); }
.badge.fail { background: var(--fail-bg); color: var(--fail); border: 2px solid var(--fail); }
.badge.incomplete { background: #fef3c7; color: #92400e; border: 2px solid #92400e; }
.meta { color: var(--muted); margin: 0 0 0.6rem; }
.meta b { color: var(--ink); font-weight: 600; }
.about { max-width: 60rem; background: var(--soft); border-left: 4px solid var(--line);
         padding: 0.4rem 1rem; margin: 0.6rem 0; }
.about p { margin: 0.5rem 0; }
.about p.pre { white-space: pre-wrap; }
table { border-collapse: collapse; margin: 0.4rem 0; }
th, td { border: 1px solid var(--line); padding: 0.25rem 0.6rem; text-align: left; vertical-align: top; }
th { background: var(--soft); font-weight: 600; }
.facts-grid { display: flex; flex-wrap: wrap; gap: 1rem 2.5rem; align-items: flex-start; }
.note { color: var(--muted); font-style: italic; }
.problem { color: var(--fail); font-weight: 600; }
svg.topology { max-width: 100%; height: auto; background: #fff; }
.main-grid { display: grid; grid-template-columns: minmax(0, 1fr); gap: 1.2rem; }
.ladder-box { overflow-x: auto; border: 1px solid var(--line); background: #fff; }
/* the ladder fills its column but never shrinks below 85 % of its size: its labels stay readable */
.ladder-box > svg { display: block; width: 100%; height: auto; min-width: var(--min-w, 800px); }
details.sysctls summary { cursor: pointer; font-weight: 600; margin: 1rem 0 0.4rem; }
.export { margin: 0.3rem 0 0.6rem; display: flex; gap: 0.6rem; align-items: center; flex-wrap: wrap; }
button { font: inherit; font-size: 0.95rem; padding: 0.25rem 0.9rem; border: 1px solid #6b7280;
         border-radius: 0.35rem; background: #f9fafb; color: var(--ink); cursor: pointer; }
button:hover, button:focus { background: #e5e7eb; }
table.verdicts { width: 100%; font-size: 0.9rem; }
table.verdicts td:nth-child(n+3) { overflow-wrap: anywhere; }
table.verdicts .long { max-height: 9.5em; overflow-y: auto; }
table.verdicts td.v { font-weight: 700; text-align: center; white-space: nowrap; }
tr.verdict { cursor: pointer; }
tr.verdict.pass td.v { color: var(--pass); background: var(--pass-bg); }
tr.verdict.fail td { background: var(--fail-bg); }
tr.verdict.fail td.v { color: #fff; background: var(--fail); }
tr.verdict.fail { outline: 2px solid var(--fail); outline-offset: -2px; }
tr.verdict .line { color: var(--muted); font-size: 0.85em; white-space: nowrap; }
tr.verdict:hover td, tr.verdict:focus td { background: #fef3c7; }
tr.verdict:focus { outline: 3px solid var(--accent); outline-offset: -3px; }
tr.verdict.pinned td { background: #fde68a; }
tr.verdict.pinned td.v { box-shadow: inset 4px 0 0 var(--accent); }
tr.verdict.nomarks { cursor: default; }
.hint { color: var(--muted); font-size: 0.85rem; margin: 0.2rem 0; }
#ladder.focus .seg:not(.hl), #ladder.focus .band:not(.hl), #ladder.focus .band-edge:not(.hl),
#ladder.focus .timer:not(.hl), #ladder.focus .bracket:not(.hl) { opacity: 0.18; }
#ladder .hl { opacity: 1; }
#ladder .seg.hl line, #ladder .seg.hl path, #ladder .seg.hl polyline, .band-edge.hl,
#ladder .bracket.hl line, #ladder .bracket.hl path, #ladder .timer.hl line, #ladder .timer.hl path {
  stroke: var(--accent) !important; stroke-width: 3.5px !important; }
#ladder rect.band.hl { stroke: var(--accent); stroke-width: 3px; }
#ladder .seg.hl text, #ladder .bracket.hl text { font-weight: 700; fill: #7c2d12; }
svg.tseq { max-width: 100%; height: auto; background: #fff; border: 1px solid var(--line); }
ul.steps li { margin: 0.3rem 0; }
footer { margin-top: 2rem; color: var(--ink);
         font-size: 0.95rem; max-width: 70rem; }
footer dt { font-weight: 600; margin-top: 0.4rem; }
footer dd { margin: 0 0 0 1.2rem; }
@media print {
  aside.verdict-side { position: static; max-height: none; overflow: visible; }
  .export, .hint { display: none; }
  .ladder-box { overflow: visible; border: none; }
}
"""

# The verdicts go beside the ladder only where the window holds both: the ladder at its least
# width (85 % of its own) and the verdicts' column (34rem) with the gaps; else below it. Filled in
# per page (harness.report.page), since a ladder's width grows with its lanes.
SIDE_BY_SIDE_CSS = """@media (min-width: {width}px) {{
  .main-grid {{ grid-template-columns: minmax(0, 1fr) minmax(24rem, 34rem); }}
  aside.verdict-side {{ position: sticky; top: 0.5rem; align-self: start; max-height: calc(100vh - 1rem);
                       overflow: auto; }}
}}"""
SIDE_ROOM_PX = 34 * 16 + 80          # the verdicts' column and the gaps and margins around it
SIDE_MIN_WINDOW_PX = 1300

# Runs first (in <head>): every script error and unhandled rejection is appended to
# body[data-errors], which the headless-browser test reads back.
ERROR_JS = """
(function () {
  "use strict";
  var early = [];
  function note(message) {
    var body = document.body;
    if (!body) { early.push(message); return; }
    while (early.length) { append(body, early.shift()); }
    append(body, message);
  }
  function append(body, message) {
    var old = body.getAttribute("data-errors") || "";
    body.setAttribute("data-errors", old ? old + " | " + message : message);
  }
  window.reportNote = note;
  window.addEventListener("error", function (e) {
    note((e.message || "error") + (e.filename ? " (" + e.filename + ":" + e.lineno + ")" : ""));
  });
  window.addEventListener("unhandledrejection", function (e) {
    var r = e.reason;
    note("unhandled rejection: " + (r && r.message ? r.message : String(r)));
  });
})();
"""

# Runs at the end of <body>: verdict rows highlight what they judged; export buttons.
MAIN_JS = """
(function () {
  "use strict";
  var ladder = document.getElementById("ladder");
  var pinned = null;

  function marked(row) {
    var ids = (row.getAttribute("data-marks") || "").split(/\\s+/).filter(Boolean);
    return ids.map(function (id) { return document.getElementById(id); }).filter(Boolean);
  }
  function clear() {
    Array.prototype.forEach.call(document.querySelectorAll(".hl"), function (el) { el.classList.remove("hl"); });
    if (ladder) { ladder.classList.remove("focus"); }
  }
  function show(row) {
    clear();
    var els = marked(row);
    els.forEach(function (el) { el.classList.add("hl"); });
    if (ladder && els.length) { ladder.classList.add("focus"); }
    return els;
  }
  function toggle(row) {
    if (pinned) { pinned.classList.remove("pinned"); pinned.setAttribute("aria-pressed", "false"); }
    if (pinned === row) { pinned = null; clear(); return; }
    pinned = row;
    row.classList.add("pinned");
    row.setAttribute("aria-pressed", "true");
    var els = show(row);
    if (els.length && els[0].scrollIntoView) { els[0].scrollIntoView({block: "nearest", inline: "nearest"}); }
  }
  function wire(row) {
    row.addEventListener("mouseenter", function () { if (!pinned) { show(row); } });
    row.addEventListener("mouseleave", function () { if (!pinned) { clear(); } });
    row.addEventListener("focus", function () { if (!pinned) { show(row); } });
    row.addEventListener("blur", function () { if (!pinned) { clear(); } });
    row.addEventListener("click", function () { toggle(row); });
    row.addEventListener("keydown", function (e) {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); toggle(row); }
    });
  }

  function size() {
    var vb = ladder.viewBox && ladder.viewBox.baseVal;
    if (vb && vb.width && vb.height) { return {w: vb.width, h: vb.height}; }
    var box = ladder.getBoundingClientRect();
    return {w: Math.max(1, box.width), h: Math.max(1, box.height)};
  }
  function ladderText() {
    var clone = ladder.cloneNode(true);
    clone.classList.remove("focus");
    Array.prototype.forEach.call(clone.querySelectorAll(".hl"), function (el) { el.classList.remove("hl"); });
    var s = size();
    clone.setAttribute("width", String(s.w));
    clone.setAttribute("height", String(s.h));
    clone.removeAttribute("style");
    var text = new XMLSerializer().serializeToString(clone);
    return '<?xml version="1.0" encoding="UTF-8"?>\\n' + text;
  }
  function download(blob, name) {
    if (typeof window.reportOnDownload === "function") { window.reportOnDownload(blob, name); return; }
    var a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = name;
    document.body.appendChild(a);
    a.click();
    setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 2000);
  }
  function exportSvg() {
    download(new Blob([ladderText()], {type: "image/svg+xml"}), "ladder.svg");
  }
  function exportPng() {
    var s = size(), img = new Image();
    img.onload = function () {
      var canvas = document.createElement("canvas");
      canvas.width = Math.round(s.w * 2);
      canvas.height = Math.round(s.h * 2);
      var g = canvas.getContext("2d");
      g.fillStyle = "#ffffff";
      g.fillRect(0, 0, canvas.width, canvas.height);
      g.scale(2, 2);
      g.drawImage(img, 0, 0, s.w, s.h);
      canvas.toBlob(function (blob) {
        if (blob) { download(blob, "ladder.png"); } else { window.reportNote("ladder.png: the canvas gave no image"); }
      }, "image/png");
    };
    img.onerror = function () { window.reportNote("ladder.png: the browser could not draw the ladder's SVG"); };
    img.src = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(ladderText());
  }

  try {
    Array.prototype.forEach.call(document.querySelectorAll("tr.verdict"), wire);
    var svgButton = document.getElementById("export-svg"), pngButton = document.getElementById("export-png");
    if (ladder && svgButton) { svgButton.addEventListener("click", exportSvg); }
    if (ladder && pngButton) { pngButton.addEventListener("click", exportPng); }
    window.reportExport = {svg: ladderText, png: exportPng};
  } catch (e) {
    window.reportNote("setup: " + (e && e.message ? e.message : String(e)));
  } finally {
    document.body.setAttribute("data-ready", "1");
  }
})();
"""
