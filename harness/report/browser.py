"""Headless Chromium for the report: the test that report.html really renders (its DOM after its
scripts ran, its console, the network it asked for) and the README's picture of the ladder.

Every call starts a fresh browser in its own process group, with its own profile and HOME in a
temporary folder, and no way out to the network (no proxy, every host name resolves to nothing),
so a page that reaches for a CDN fails and says so. Whatever happens (crash, wall-time limit,
Ctrl-C) the group and anything that left it for the profile folder are killed and the folder
removed."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import UserError

CANDIDATES = ("chromium", "chromium-browser")
LIMIT_S = 120.0                 # one browser run; a report loads in about a second
BUDGET_MS = 5000                # virtual time the page's scripts get before the DOM is read
SETTLE_S = 5.0                  # how long stragglers may take to go after the group was killed
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-proxy-server",
         "--host-resolver-rules=MAP * ~NOTFOUND", "--no-first-run", "--no-default-browser-check",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--disable-crash-reporter", "--disable-breakpad",
         "--disable-dev-shm-usage", "--enable-logging=stderr", "--v=0"]
CONSOLE = re.compile(r':CONSOLE[:(]\d+\)?\] (".*)$')
SVG_TAG = re.compile(r"<(/?)svg\b[^>]*>", re.IGNORECASE)


class BrowserFailed(Exception):
    """Chromium ran but gave no page: it crashed, or it did not finish within the limit."""


@dataclass
class PageLoad:
    """What one headless load of a page gave: its DOM after the scripts ran (--dump-dom), the
    console messages (Chromium prints every level the same way, so all of them), the URLs other
    than file:/data: the page asked for, and the wall time the browser took."""
    dom: str = ""
    console: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    seconds: float = 0.0


def find_chromium() -> str:
    """The chromium command on PATH; a UserError naming the fix when there is none."""
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    raise UserError("headless Chromium is needed to render report.html but no chromium command is on PATH.",
                    fix="sudo scripts/setup --tests (installs Debian's chromium package).")


def load_page(html_path: Path, limit_s: float = LIMIT_S, budget_ms: int = BUDGET_MS) -> PageLoad:
    """Open `html_path` from file://, let its scripts run, and return the DOM, console and requests."""
    with tempfile.TemporaryDirectory(prefix="tcp-testbed-chromium-") as scratch:
        netlog = Path(scratch) / "netlog.json"
        out, err, took = _run([f"--log-net-log={netlog}", f"--virtual-time-budget={budget_ms}", "--dump-dom",
                               Path(html_path).resolve().as_uri()], Path(scratch), limit_s)
        return PageLoad(dom=out, console=console_messages(err), requests=page_requests(netlog), seconds=took)


def dump_dom(html_path: Path, limit_s: float = LIMIT_S) -> str:
    """The page's DOM after its scripts ran (what a reader's browser shows, serialised)."""
    return load_page(html_path, limit_s).dom


def screenshot(html_path: Path, png_path: Path, width: int, height: int, scale: float = 1.0,
               limit_s: float = LIMIT_S) -> Path:
    """A PNG of the page's first `width` x `height` CSS pixels (times `scale` in real pixels),
    taken after its scripts ran."""
    png_path = Path(png_path).resolve()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    png_path.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="tcp-testbed-chromium-") as scratch:
        _, err, _ = _run([f"--screenshot={png_path}", f"--window-size={width},{height}",
                          f"--force-device-scale-factor={scale}", f"--virtual-time-budget={BUDGET_MS}",
                          Path(html_path).resolve().as_uri()], Path(scratch), limit_s)
    if not png_path.exists():
        raise BrowserFailed(f"chromium wrote no screenshot {png_path}: {err[-2000:]}")
    return png_path


def screenshot_svg(svg: str, png_path: Path, scale: float = 1.0, limit_s: float = LIMIT_S) -> Path:
    """A PNG of one SVG element alone, at its own width and height: the ladder for slides."""
    width, height = svg_size(svg)
    with tempfile.TemporaryDirectory(prefix="tcp-testbed-svg-") as folder:
        page = Path(folder) / "svg.html"
        page.write_text('<!DOCTYPE html><html><head><meta charset="utf-8"><style>html,body{margin:0;padding:0;'
                        'background:#fff}svg{display:block}</style></head><body>' + svg + "</body></html>",
                        encoding="utf-8")
        return screenshot(page, png_path, width, height, scale, limit_s)


def element_svg(html: str, element_id: str = "ladder") -> str:
    """The text of the <svg id=element_id>...</svg> element in `html` (nested svgs included)."""
    start = next((m for m in SVG_TAG.finditer(html)
                  if not m.group(1) and re.search(rf'\bid\s*=\s*["\']{re.escape(element_id)}["\']', m.group(0))), None)
    if start is None:
        raise ValueError(f'no <svg id="{element_id}"> in the page')
    depth = 0
    for m in SVG_TAG.finditer(html, start.start()):
        depth += -1 if m.group(1) else (0 if m.group(0).endswith("/>") else 1)
        if depth == 0:
            return html[start.start():m.end()]
    raise ValueError(f'<svg id="{element_id}"> is not closed')


def svg_size(svg: str) -> tuple[int, int]:
    """(width, height) in CSS pixels from the root tag's width/height, else from its viewBox."""
    tag = SVG_TAG.search(svg).group(0)
    attrs = dict(re.findall(r'\b([\w:-]+)\s*=\s*["\']([^"\']*)["\']', tag))
    try:
        return _pixels(attrs["width"]), _pixels(attrs["height"])
    except (KeyError, ValueError):
        box = [float(v) for v in re.split(r"[\s,]+", attrs.get("viewBox", "").strip()) if v]
        if len(box) != 4:
            raise ValueError("the svg has neither width/height in pixels nor a viewBox") from None
        return round(box[2]), round(box[3])


def _pixels(value: str) -> int:
    """'812', '812px', '812.5' -> 813; percentages and other units are not sizes here."""
    number = float(value[:-2] if value.endswith("px") else value)
    return max(1, round(number))


def console_messages(stderr: str) -> list[str]:
    """The page's console messages from Chromium's --enable-logging=stderr output:
    '"Uncaught ReferenceError: x is not defined", source: file:///.../report.html (12)'."""
    return [m.group(1) for m in map(CONSOLE.search, stderr.splitlines()) if m]


def page_requests(netlog: Path) -> list[str]:
    """URLs outside file:/data:/blob: that the page (not the browser's own services) asked for,
    from the net log: requests whose network isolation key is the file:// page's."""
    try:
        text = netlog.read_text(errors="replace")
    except OSError:
        return []
    try:
        log = json.loads(text)
    except json.JSONDecodeError:
        log = json.loads(text.rstrip().rstrip(",") + "]}")      # a log cut short still lists its requests
    start = log.get("constants", {}).get("logEventTypes", {}).get("URL_REQUEST_START_JOB")
    urls = []
    for event in log.get("events", []):
        params = event.get("params") or {}
        url, key = params.get("url", ""), params.get("network_isolation_key", "")
        if event.get("type") == start and key.startswith("file://") and not url.startswith(("file:", "data:", "blob:")):
            urls.append(url)
    return sorted(set(urls))


def _run(args: list[str], scratch: Path, limit_s: float) -> tuple[str, str, float]:
    """Run chromium with `args` (and FLAGS, a profile and HOME in `scratch`) in its own process
    group; return stdout, stderr and wall seconds. Killed, with all it started, on any exit."""
    command = [find_chromium(), *FLAGS, f"--user-data-dir={scratch / 'profile'}", *args]
    env = dict(os.environ, HOME=str(scratch), XDG_CONFIG_HOME=str(scratch / "config"),
               XDG_CACHE_HOME=str(scratch / "cache"))
    out_path, err_path = scratch / "stdout", scratch / "stderr"
    began = time.monotonic()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                                start_new_session=True)
    try:
        code = proc.wait(timeout=limit_s)
    except subprocess.TimeoutExpired:
        code = None
    finally:
        _kill_all(proc, scratch)
    took = time.monotonic() - began
    stdout, stderr = (p.read_text(errors="replace") for p in (out_path, err_path))
    if code is None:
        raise BrowserFailed(f"chromium did not finish within {limit_s:.0f} s (killed): {stderr[-2000:]}")
    if code != 0:
        raise BrowserFailed(f"chromium exited with {code}: {stderr[-2000:]}")
    return stdout, stderr, took


def _kill_all(proc: subprocess.Popen, scratch: Path) -> None:
    """SIGKILL the browser's process group, then any process that left it (crashpad handlers
    start their own session) but still names the scratch folder; wait until they are gone."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    deadline = time.monotonic() + SETTLE_S
    while (strays := _processes_naming(str(scratch))) and time.monotonic() < deadline:
        for pid in strays:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)


def _processes_naming(text: str) -> list[int]:
    """PIDs of processes whose command line contains `text` (our scratch folder's path)."""
    needle = text.encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def ladder_png(report: Path, png_path: Path, scale: float = 2.0) -> Path:
    """The ladder of a report.html alone, as a PNG at its own size (times `scale`): for slides
    and the README, made from the page the test bed wrote."""
    return screenshot_svg(element_svg(Path(report).read_text(encoding="utf-8")), png_path, scale)


def main(argv: list[str] | None = None) -> int:
    """`python -m harness.report.browser ladder REPORT PNG [--scale N]` (the ladder alone) or
    `... dom REPORT` (the DOM after the page's scripts ran, then its console and requests)."""
    import argparse
    import sys
    parser = argparse.ArgumentParser(prog="python -m harness.report.browser", description=main.__doc__)
    parser.add_argument("command", choices=["ladder", "dom"])
    parser.add_argument("report", type=Path)
    parser.add_argument("png", type=Path, nargs="?")
    parser.add_argument("--scale", type=float, default=2.0)
    args = parser.parse_args(argv)
    try:
        if args.command == "dom":
            page = load_page(args.report)
            print(page.dom)
            print(*(f"console: {m}" for m in page.console), *(f"request: {u}" for u in page.requests),
                  f"took {page.seconds:.2f} s", sep="\n", file=sys.stderr)
            return 0
        if args.png is None:
            parser.error("ladder needs PNG: where the picture goes")
        png = ladder_png(args.report, args.png, args.scale)
        print(f"{png} ({png.stat().st_size} bytes)")
        return 0
    except (UserError, BrowserFailed, ValueError, OSError) as problem:
        print(f"browser: {problem}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
