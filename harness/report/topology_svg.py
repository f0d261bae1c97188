"""A small drawing of the lab for report.html: hosts and switches as boxes, links as lines labelled
with each direction's delay, so a reader sees where the delays are before reading the ladder.

Layout: columns by distance (in links) from the server host, the server on the right and the hosts
farthest from it on the left (client — s1 — server reads left to right like the ladder's lanes).
"""
from __future__ import annotations

from collections import deque
from html import escape

BOX_W, BOX_H = 130, 46
COL_GAP, ROW_GAP = 320, 130
MARGIN_X, MARGIN_Y = 20, 34


def ms(seconds: float | None) -> str:
    """0.025 -> '25 ms' (no trailing zeros; sub-millisecond kept)."""
    if seconds is None:
        return "-"
    return f"{seconds * 1e3:.3f}".rstrip("0").rstrip(".") + " ms"


def direction_label(d: dict) -> str:
    """One direction of a link in a few characters: delay, jitter, loss when any."""
    text = ms(d.get("delay_s") or 0.0)
    if d.get("jitter_s"):
        text += f" ±{ms(d['jitter_s'])}"
    if d.get("loss_pct"):
        text += f", {d['loss_pct']:g}% loss"
    return text


def _neighbours(lab: dict) -> dict[str, list[str]]:
    nodes = list(lab.get("hosts", {})) + list(lab.get("switches", []))
    out: dict[str, list[str]] = {n: [] for n in nodes}
    for link in lab.get("links", []):
        out.setdefault(link["a"], []).append(link["b"])
        out.setdefault(link["b"], []).append(link["a"])
    return out


def _right_end(lab: dict, server: str | None) -> str | None:
    hosts = list(lab.get("hosts", {}))
    if server in hosts:
        return server
    named = [h for h in hosts if "server" in h]
    return named[0] if named else (hosts[-1] if hosts else None)


def columns(lab: dict, server: str | None = None) -> dict[str, int]:
    """node -> column: server in the last column, each node one column left per link away from it;
    nodes it cannot reach go in column 0."""
    graph = _neighbours(lab)
    start = _right_end(lab, server)
    dist: dict[str, int] = {}
    if start is not None:
        dist[start] = 0
        todo = deque([start])
        while todo:
            node = todo.popleft()
            for nxt in graph.get(node, []):
                if nxt not in dist:
                    dist[nxt] = dist[node] + 1
                    todo.append(nxt)
    far = max(dist.values(), default=0)
    return {n: far - dist[n] if n in dist else 0 for n in graph}


def positions(lab: dict, server: str | None = None) -> dict[str, tuple[float, float]]:
    """node -> centre of its box; a column's nodes stacked and centred on the tallest column."""
    cols = columns(lab, server)
    stacks: dict[int, list[str]] = {}
    for node, col in cols.items():
        stacks.setdefault(col, []).append(node)
    tallest = max((len(v) for v in stacks.values()), default=1)
    out = {}
    for col, nodes in stacks.items():
        top = MARGIN_Y + BOX_H / 2 + (tallest - len(nodes)) * ROW_GAP / 2
        for i, node in enumerate(nodes):
            out[node] = (MARGIN_X + BOX_W / 2 + col * COL_GAP, top + i * ROW_GAP)
    return out


def _box(name: str, xy: tuple[float, float], switch: bool, ip: str | None) -> str:
    x, y = xy[0] - BOX_W / 2, xy[1] - BOX_H / 2
    kind = "switch" if switch else "host"
    rx = 18 if switch else 4
    label = f'<text x="{xy[0]:.1f}" y="{xy[1] - (4 if ip else -6):.1f}" class="name">{escape(name)}</text>'
    if ip:
        label += f'<text x="{xy[0]:.1f}" y="{xy[1] + 15:.1f}" class="ip">{escape(ip)}</text>'
    return (f'<g class="node {kind}" data-node="{escape(name)}"><rect x="{x:.1f}" y="{y:.1f}" width="{BOX_W}" '
            f'height="{BOX_H}" rx="{rx}"/>{label}</g>')


def _arrows(ax: float, ay: float, bx: float, by: float) -> tuple[str, str]:
    """The arrow characters for a->b and b->a as the line is drawn (left/right, else up/down)."""
    if abs(bx - ax) >= abs(by - ay):
        return ("→", "←") if bx >= ax else ("←", "→")
    return ("↓", "↑") if by >= ay else ("↑", "↓")


def _link(link: dict, pos: dict[str, tuple[float, float]]) -> str:
    (ax, ay), (bx, by) = pos[link["a"]], pos[link["b"]]
    mx, my = (ax + bx) / 2, (ay + by) / 2
    to_b, to_a = _arrows(ax, ay, bx, by)
    ab = f"{to_b} {direction_label(link.get('a_to_b') or {})}"
    ba = f"{to_a} {direction_label(link.get('b_to_a') or {})}"
    if to_b in "→←":
        first, second = (ab, ba) if to_b == "→" else (ba, ab)
        texts = (f'<text x="{mx:.1f}" y="{my - 8:.1f}" class="delay">{escape(first)}</text>'
                 f'<text x="{mx:.1f}" y="{my + 20:.1f}" class="delay">{escape(second)}</text>')
    else:
        texts = (f'<text x="{mx + 8:.1f}" y="{my:.1f}" class="delay" text-anchor="start">{escape(ab)}</text>'
                 f'<text x="{mx + 8:.1f}" y="{my + 18:.1f}" class="delay" text-anchor="start">{escape(ba)}</text>')
    return (f'<g class="link" data-a="{escape(link["a"])}" data-b="{escape(link["b"])}">'
            f'<line x1="{ax:.1f}" y1="{ay:.1f}" x2="{bx:.1f}" y2="{by:.1f}"/>{texts}</g>')


STYLE = """
.topology .node rect { fill: #eef2ff; stroke: #1e3a8a; stroke-width: 2; }
.topology .switch rect { fill: #f1f5f9; stroke: #334155; }
.topology text { font-family: system-ui, "DejaVu Sans", Arial, sans-serif; text-anchor: middle; fill: #111827; }
.topology .name { font-size: 17px; font-weight: 600; }
.topology .ip { font-size: 13px; fill: #374151; }
.topology .link line { stroke: #4b5563; stroke-width: 2.5; }
.topology .step { font-size: 14px; fill: #9a3412; font-weight: 600; }
.topology .delay { font-size: 14px; fill: #1f2937; paint-order: stroke; stroke: #fff; stroke-width: 4px; }
"""


def _step_notes(lab: dict, pos: dict[str, tuple[float, float]]) -> str:
    """Under each switch, the network steps that act in it: `hold client → server (line 17)`."""
    out, count = [], {}
    for step in lab.get("network_steps") or []:
        node = step.get("switch")
        if node not in pos:
            continue
        k = count[node] = count.get(node, 0) + 1
        x, y = pos[node]
        text = f"{step.get('action')} {step.get('sender')} → {step.get('receiver')} (line {step.get('line')})"
        out.append(f'<text class="step" x="{x:.1f}" y="{y + BOX_H / 2 + 4 + 17 * k:.1f}">{escape(text)}</text>')
    return "".join(out)


def topology_svg(lab: dict, server: str | None = None) -> str:
    """The lab's hosts, switches and links as an inline <svg class="topology">, and where network steps act."""
    pos = positions(lab, server)
    if not pos:
        return ""
    width = max(x for x, _ in pos.values()) + BOX_W / 2 + MARGIN_X + 20
    steps = max([sum(1 for s in lab.get("network_steps") or [] if s.get("switch") == n) for n in pos] + [0])
    height = max(y for _, y in pos.values()) + BOX_H / 2 + MARGIN_Y + 17 * steps
    hosts = lab.get("hosts", {})
    links = "".join(_link(k, pos) for k in lab.get("links", []) if k["a"] in pos and k["b"] in pos)
    boxes = "".join(_box(n, xy, n not in hosts, (hosts.get(n) or {}).get("ip")) for n, xy in pos.items())
    return (f'<svg class="topology" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {height:.0f}" '
            f'width="{width:.0f}" height="{height:.0f}" role="img" aria-label="the lab\'s topology">'
            f'<style>{STYLE}</style>{links}{boxes}{_step_notes(lab, pos)}</svg>')
