"""A drawing of the lab (report.html, `run-experiment --draw`): hosts as boxes, switches as rounded
boxes, routers as ovals with a router mark; each link labelled with each direction's delay (and
jitter, loss, bandwidth, queue when set), its MTU and cost when not the default; each subnet named
once (in its switch, else on its link) and each router interface's address at its end, so a reader
sees where the delays and the subnets are before reading the ladder.

Layout: columns by distance (in links) from the clients, the servers on the right (client — r1 —
r2 — server reads left to right like the ladder's lanes); each column's order chosen to keep
links from crossing; a link that would pass through a node is drawn bent around it; a link's
labels slide along it until they overlap no node and no other label. Pure, deterministic: the same
lab gives the same bytes.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from html import escape

BOX_W, BOX_H = 130, 46
COL_GAP, ROW_GAP = 250, 140
MARGIN = 24
ROW = 17                    # one label row
CHAR_EM = 0.6               # estimated glyph width of the labels' font, in em
SIZES = {"name": 17, "ip": 13, "kind": 11, "delay": 14, "extra": 12, "note": 13, "subnet": 13, "addr": 12,
         "step": 14, "route": 13}


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


def rate_label(d: dict) -> str:
    """One direction's bandwidth and queue ('10 Mbit/s, queue 50'), '' when neither is set."""
    parts = ([f"{d['bw_mbit']:g} Mbit/s"] if d.get("bw_mbit") else []) + ([f"queue {d['queue']}"] if d.get("queue") else [])
    return ", ".join(parts)


def link_note(link: dict) -> str:
    """'MTU 1400 · cost 2': what differs from a plain link (1500, cost 1); '' for a plain one."""
    parts = ([f"MTU {link['mtu']}"] if link.get("mtu") else []) + (
        [f"cost {link['cost']}"] if link.get("cost") not in (None, 1) else [])
    return " · ".join(parts)


# ---------------------------------------------------------------- which node goes where

def node_names(lab: dict) -> list[str]:
    """Hosts, routers, switches in the lab's order, then any node only a link names."""
    out = list(lab.get("hosts") or {}) + list(lab.get("routers") or []) + list(lab.get("switches") or [])
    for link in lab.get("links") or []:
        out += [link["a"], link["b"]]
    return list(dict.fromkeys(out))


def _neighbours(lab: dict) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {n: [] for n in node_names(lab)}
    for link in lab.get("links") or []:
        out[link["a"]].append(link["b"])
        out[link["b"]].append(link["a"])
    return out


def _bfs(graph: dict[str, list[str]], starts: list[str]) -> dict[str, int]:
    dist = {s: 0 for s in starts}
    todo = deque(starts)
    while todo:
        node = todo.popleft()
        for nxt in graph[node]:
            if nxt not in dist:
                dist[nxt] = dist[node] + 1
                todo.append(nxt)
    return dist


def _ends(lab: dict, graph: dict[str, list[str]], server: str | None) -> tuple[list[str], list[str]]:
    """(left, right): the right end is `server`, else the hosts named server*, else the last host;
    the left the hosts named client*, else the hosts farthest from the right end."""
    hosts = list(lab.get("hosts") or {})
    right = [server] if server in hosts else [h for h in hosts if "server" in h] or hosts[-1:]
    left = [h for h in hosts if "client" in h and h not in right]
    return left or _farthest(graph, hosts, right), right


def _farthest(graph: dict[str, list[str]], hosts: list[str], right: list[str]) -> list[str]:
    """The hosts farthest (in links) from the right end."""
    dist = _bfs(graph, right)
    others = [h for h in hosts if h not in right and h in dist]
    far = max((dist[h] for h in others), default=0)
    return [h for h in others if dist[h] == far]


def columns(lab: dict, server: str | None = None) -> dict[str, int]:
    """node -> column: links away from the clients; a host that is neither client nor server sits
    beside its one neighbour, on the side of the end that neighbour is nearer to."""
    graph = _neighbours(lab)
    left, right = _ends(lab, graph, server)
    dl, dr = _bfs(graph, left), _bfs(graph, right)
    far = max(dr.values(), default=0)
    col = {n: dl[n] if n in dl else far - dr[n] if n in dr else 0 for n in graph}
    for host in lab.get("hosts") or {}:
        if host not in left and host not in right and len(graph[host]) == 1:
            near = graph[host][0]
            col[host] = col[near] + (1 if dr.get(near, far + 1) < dl.get(near, far + 1) else -1)
    low = min(col.values(), default=0)
    return {n: c - low for n, c in col.items()}


def _offsets(stacks: dict[int, list[str]], gap: float = ROW_GAP) -> dict[str, float]:
    """node -> y offset: each column stacked `gap` apart, centred on the tallest."""
    tallest = max((len(v) for v in stacks.values()), default=1)
    return {n: (tallest - len(nodes)) * gap / 2 + i * gap
            for nodes in stacks.values() for i, n in enumerate(nodes)}


def _sort_column(stacks: dict[int, list[str]], col: int, other: int, graph: dict[str, list[str]]) -> None:
    """Order column `col` by the mean height of each node's neighbours in column `other` (barycentre)."""
    if other not in stacks:
        return
    y, ref = _offsets(stacks), set(stacks[other])

    def key(item: tuple[int, str]) -> tuple[float, int]:
        i, node = item
        near = [y[m] for m in graph[node] if m in ref]
        return (sum(near) / len(near) if near else y[node], i)

    stacks[col] = [n for _, n in sorted(enumerate(stacks[col]), key=key)]


def stacks(lab: dict, server: str | None = None) -> dict[int, list[str]]:
    """column -> its nodes top to bottom: a few barycentre sweeps both ways, so links cross little."""
    cols, graph = columns(lab, server), _neighbours(lab)
    out: dict[int, list[str]] = {}
    for node in graph:
        out.setdefault(cols[node], []).append(node)
    out = dict(sorted(out.items()))
    order = list(out)
    for _ in range(4):
        for col in order[1:]:
            _sort_column(out, col, col - 1, graph)
        for col in order[-2::-1]:
            _sort_column(out, col, col + 1, graph)
    return out


def _text_w(text: str, cls: str) -> float:
    return len(text) * SIZES[cls] * CHAR_EM


def _gap(lab: dict, links: list[dict]) -> float:
    """Room between two columns for the widest label row of the links between them, and for a
    router address at each end beside the row nearest the line."""
    rows = [r for link in links for r in _link_rows(link, None)]
    widest = max((_text_w(t, c) for t, c in rows), default=0)
    nearest = max((_text_w(t, c) for t, c in rows if c == "delay"), default=0)
    addr = _router_address_width(lab, links)
    return max(COL_GAP, BOX_W + max(widest + 24, nearest + 2 * (addr + 14) + 16))


def _router_address_width(lab: dict, links: list[dict]) -> float:
    """The widest address of a router interface on these links."""
    routers = set(lab.get("routers") or [])
    indexes = {k for k, link in enumerate(lab.get("links") or []) if link in links}
    widths = [_text_w(i.get("address") or "", "addr") for i in lab.get("interfaces") or []
              if i["node"] in routers and i["link"] in indexes]
    return max(widths, default=0)


def row_gap(lab: dict) -> float:
    """Rows further apart when a link carries more than three label rows (its subnet included)."""
    _, on_link = subnet_places(lab)
    most = max((len(_link_rows(link, None)) + (k in on_link) for k, link in enumerate(lab.get("links") or [])), default=0)
    return ROW_GAP + ROW * max(0, most - 3)


def column_xs(lab: dict, cols: dict[str, int]) -> list[float]:
    """Each column's centre x: each gap as wide as the links between those two columns need."""
    xs = [MARGIN + BOX_W / 2]
    for c in range(max(cols.values(), default=0)):
        between = [link for link in lab.get("links") or [] if {cols[link["a"]], cols[link["b"]]} == {c, c + 1}]
        xs.append(xs[-1] + _gap(lab, between))
    return xs


def positions(lab: dict, server: str | None = None) -> dict[str, tuple[float, float]]:
    """node -> centre of its box."""
    found = stacks(lab, server)
    y = _offsets(found, row_gap(lab))
    xs = column_xs(lab, {n: c for c, nodes in found.items() for n in nodes})
    return {n: (xs[col], MARGIN + BOX_H / 2 + y[n]) for col, nodes in found.items() for n in nodes}


# ---------------------------------------------------------------- geometry

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Label:
    text: str
    x: float
    y: float
    cls: str
    anchor: str = "middle"
    fit: float = 0.0            # the room it has, if it must fit (a node's name in its box)

    @property
    def box(self) -> Box:
        w, size = min(_text_w(self.text, self.cls), self.fit or 1e9), SIZES[self.cls]
        x0 = self.x - w / 2 if self.anchor == "middle" else self.x - w if self.anchor == "end" else self.x
        return (x0, self.y - size * 0.8, x0 + w, self.y + size * 0.25)

    def svg(self) -> str:
        anchor = "" if self.anchor == "middle" else f' style="text-anchor: {self.anchor}"'
        if self.fit and _text_w(self.text, self.cls) > self.fit:       # a long name squeezed into its box
            anchor += f' textLength="{self.fit:.0f}" lengthAdjust="spacingAndGlyphs"'
        return f'<text x="{self.x:.1f}" y="{self.y:.1f}" class="{self.cls}"{anchor}>{escape(self.text)}</text>'


def overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def node_box(xy: tuple[float, float], pad: float = 0.0) -> Box:
    return (xy[0] - BOX_W / 2 - pad, xy[1] - BOX_H / 2 - pad, xy[0] + BOX_W / 2 + pad, xy[1] + BOX_H / 2 + pad)


def _inside(p: tuple[float, float], box: Box) -> bool:
    return box[0] <= p[0] <= box[2] and box[1] <= p[1] <= box[3]


@dataclass(frozen=True)
class Wire:
    """A link's line from a's centre to b's centre, bent through `bend` when a straight one would
    cross another node."""
    a: tuple[float, float]
    b: tuple[float, float]
    bend: tuple[float, float] | None = None

    def at(self, t: float) -> tuple[float, float]:
        (ax, ay), (bx, by) = self.a, self.b
        if self.bend is None:
            return (ax + (bx - ax) * t, ay + (by - ay) * t)
        cx, cy = self.bend
        u = 1 - t
        return (u * u * ax + 2 * u * t * cx + t * t * bx, u * u * ay + 2 * u * t * cy + t * t * by)

    def samples(self, n: int = 48) -> list[tuple[float, float]]:
        return [self.at(i / n) for i in range(n + 1)]

    def svg(self) -> str:
        (ax, ay), (bx, by) = self.a, self.b
        if self.bend is None:
            return f'<line x1="{ax:.1f}" y1="{ay:.1f}" x2="{bx:.1f}" y2="{by:.1f}"/>'
        return f'<path class="wire" d="M {ax:.1f} {ay:.1f} Q {self.bend[0]:.1f} {self.bend[1]:.1f} {bx:.1f} {by:.1f}"/>'


def wire(link: dict, pos: dict[str, tuple[float, float]]) -> Wire:
    """Straight, unless that passes through a node other than its ends: then bent sideways, the
    nearest bend that clears every node (the first tried when none does)."""
    a, b = pos[link["a"]], pos[link["b"]]
    others = [node_box(xy, 8) for n, xy in pos.items() if n not in (link["a"], link["b"])]
    straight = Wire(a, b)
    if not any(_inside(p, box) for p in straight.samples() for box in others):
        return straight
    dx, dy = b[0] - a[0], b[1] - a[1]
    length = max((dx * dx + dy * dy) ** 0.5, 1.0)
    nx, ny = dy / length, -dx / length
    mx, my = (a[0] + b[0]) / 2, (a[1] + b[1]) / 2
    tries = [Wire(a, b, (mx + nx * k, my + ny * k)) for step in (1, 2, 3, 4, 6) for k in (step * 70, -step * 70)]
    return next((w for w in tries if not any(_inside(p, box) for p in w.samples() for box in others)), tries[0])


def _exit(w: Wire, from_a: bool) -> tuple[tuple[float, float], tuple[float, float]]:
    """Where the wire leaves its end's box (a few pixels out), and its direction there."""
    box = node_box(w.a if from_a else w.b, 6)
    ts = [i / 96 for i in range(97)]
    for t in ts if from_a else ts[::-1]:
        p = w.at(t)
        if not _inside(p, box):
            q = w.at(min(t + 0.02, 1.0) if from_a else max(t - 0.02, 0.0))
            return p, (q[0] - p[0], q[1] - p[1])
    return w.at(0.5), (1.0, 0.0)


def address_spots(w: Wire, from_a: bool, address: str) -> list[Label]:
    """Where a router interface's address may go, best first: just off its node beside the wire
    (above, below), then a little further along it."""
    (x, y), (dx, dy) = _exit(w, from_a)
    n = max((dx * dx + dy * dy) ** 0.5, 1e-9)
    ux, uy = dx / n, dy / n
    out = []
    for d in (0, 14, 28, 42):
        px, py = x + ux * d, y + uy * d
        if abs(ux) >= abs(uy):
            anchor = "start" if ux > 0 else "end"
            out += [Label(address, px, py - 6, "addr", anchor), Label(address, px, py + 15, "addr", anchor)]
        else:
            out += [Label(address, px + 6, py + 5, "addr", "start"), Label(address, px - 6, py + 5, "addr", "end")]
    return out


# ---------------------------------------------------------------- labels

def _arrows(ax: float, ay: float, bx: float, by: float) -> tuple[str, str]:
    """The arrow characters for a->b and b->a as the line is drawn (left/right, else up/down)."""
    if abs(bx - ax) >= abs(by - ay):
        return ("→", "←") if bx >= ax else ("←", "→")
    return ("↓", "↑") if by >= ay else ("↑", "↓")


def _link_rows(link: dict, w: Wire | None) -> list[tuple[str, str]]:
    """Every label row of a link as (text, class): each direction, its rates, the note."""
    to_b, to_a = _arrows(*w.a, *w.b) if w else ("→", "←")
    rows = []
    for arrow, key in sorted(((to_b, "a_to_b"), (to_a, "b_to_a")), key=lambda d: d[0] not in "→↓"):
        d = link.get(key) or {}
        rows.append((f"{arrow} {direction_label(d)}", "delay"))
        if rate_label(d):
            rows.append((f"{arrow} {rate_label(d)}", "extra"))
    if link_note(link):
        rows.append((link_note(link), "note"))
    return rows


def _column(texts: list[tuple[str, str]], mid: tuple[float, float], side: str) -> list[Label]:
    """Rows in one column beside a vertical link, centred on its point."""
    top = mid[1] - (len(texts) - 1) * ROW / 2 + 5
    x, anchor = (mid[0] + 10, "start") if side == "right" else (mid[0] - 10, "end")
    return [Label(t, x, top + i * ROW, c, anchor) for i, (t, c) in enumerate(texts)]


def _rows_at(texts: list[tuple[str, str]], mx: float, my: float, above: bool) -> list[Label]:
    """Rows centred on x: above the line going up (the first nearest), or below it going down."""
    return [Label(t, mx, my - 8 - i * ROW if above else my + 20 + i * ROW, c) for i, (t, c) in enumerate(texts)]


def _stack(rows: list[tuple[str, str]], subnet: str | None, mid: tuple[float, float], mode: str) -> list[Label]:
    """A link's rows at a point of it. split: the rightward direction above the line, the other
    below (the subnet on top); above/below: every row on that side; right/left: one column beside
    a vertical link."""
    named = [(subnet, "subnet")] if subnet else []
    if mode in ("right", "left"):
        return _column(rows + named, mid, mode)
    if mode == "above":
        return _rows_at((named + rows)[::-1], *mid, above=True)
    if mode == "below":
        return _rows_at(rows + named, *mid, above=False)
    right = [r for r in rows if r[0].startswith("→")]
    return _rows_at(right + named, *mid, above=True) + _rows_at([r for r in rows if r not in right], *mid, above=False)


def _overlap(a: Box, b: Box) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


class Taken:
    """What is drawn so far, for placing labels: boxes (nodes, labels) and points along the wires
    (a label a wire runs through is hard to read), bucketed on a grid so a candidate spot is
    checked only against what is near it."""
    CELL = 64
    POINT_COST = 60.0

    def __init__(self) -> None:
        self.boxes: list[Box] = []
        self.box_cells: dict[tuple[int, int], list[int]] = {}
        self.point_cells: dict[tuple[int, int], list[tuple[float, float]]] = {}

    def _cells(self, box: Box) -> list[tuple[int, int]]:
        c = self.CELL
        return [(i, j) for i in range(int(box[0] // c), int(box[2] // c) + 1)
                for j in range(int(box[1] // c), int(box[3] // c) + 1)]

    def add(self, box: Box) -> None:
        self.boxes.append(box)
        for cell in self._cells(box):
            self.box_cells.setdefault(cell, []).append(len(self.boxes) - 1)

    def add_points(self, points: list[tuple[float, float]]) -> None:
        for p in points:
            self.point_cells.setdefault((int(p[0] // self.CELL), int(p[1] // self.CELL)), []).append(p)

    def cost(self, labels: list[Label]) -> float:
        """Overlapped area plus a price per wire point under a label."""
        total = 0.0
        for label in labels:
            box, seen = label.box, set()
            for cell in self._cells(box):
                for i in self.box_cells.get(cell, []):
                    if i not in seen:
                        seen.add(i)
                        total += _overlap(box, self.boxes[i])
                total += self.POINT_COST * sum(1 for p in self.point_cells.get(cell, []) if _inside(p, box))
        return total

    def best(self, candidates: list[list[Label]]) -> list[Label]:
        """The first candidate that costs nothing, else the cheapest (the first of equals); taken."""
        best, best_cost = candidates[0], None
        for labels in candidates:
            cost = self.cost(labels)
            if cost == 0:
                best = labels
                break
            if best_cost is None or cost < best_cost:
                best, best_cost = labels, cost
        for label in best:
            self.add(label.box)
        return best


def link_label_spots(link: dict, w: Wire, subnet: str | None) -> list[list[Label]]:
    """Where a link's labels may go, best first: at its middle, then further along either way;
    split across the line, then all on one side."""
    rows = _link_rows(link, w)
    modes = ("split", "above", "below") if abs(w.b[0] - w.a[0]) >= abs(w.b[1] - w.a[1]) else ("right", "left")
    return [_stack(rows, subnet, w.at(t), mode) for mode in modes for t in (0.5, 0.42, 0.58, 0.34, 0.66, 0.27, 0.73)]


# ---------------------------------------------------------------- subnets

def _more_subnets(known: dict[int, str], links: list[dict], switches: set[str]) -> dict[int, str]:
    """Links with no subnet yet that touch a switch whose segment has one (switch-to-switch links)."""
    of_switch = {n: s for k, s in known.items() for n in (links[k]["a"], links[k]["b"]) if n in switches}
    more = {k: of_switch.get(link["a"]) or of_switch.get(link["b"]) for k, link in enumerate(links) if k not in known}
    return {k: s for k, s in more.items() if s}


def link_subnets(lab: dict) -> dict[int, str]:
    """link index -> its subnet, from the interfaces on it (a switch-to-switch link: its switches')."""
    out = {i["link"]: i["subnet"] for i in lab.get("interfaces") or [] if i.get("subnet")}
    switches, links = set(lab.get("switches") or []), lab.get("links") or []
    for _ in range(len(links)):
        more = _more_subnets(out, links, switches)
        if not more:
            break
        out.update(more)
    return out


def subnet_places(lab: dict) -> tuple[dict[str, str], dict[int, str]]:
    """Where each subnet is named once: ({switch: subnet}, {link index: subnet}) — in the first
    switch of its segment (a switch is in one segment), else on its first link."""
    links, subnets = lab.get("links") or [], sorted(link_subnets(lab).items())
    members = {s: [n for n in lab.get("switches") or [] if any(s == t and n in (links[k]["a"], links[k]["b"])
                                                                for k, t in subnets)] for _, s in subnets}
    in_switch: dict[str, str] = {}
    on_link: dict[int, str] = {}
    for k, subnet in subnets:
        if subnet in in_switch.values() or subnet in on_link.values():
            continue
        if members[subnet]:
            in_switch[members[subnet][0]] = subnet
        else:
            on_link[k] = subnet
    return in_switch, on_link


# ---------------------------------------------------------------- nodes

def _node(name: str, xy: tuple[float, float], kind: str, second: str | None) -> tuple[str, list[Label]]:
    """A node's shape (host box, switch rounded box, router oval with a ⇄ mark) and its texts."""
    x, y = xy
    if kind == "router":
        shape = (f'<ellipse cx="{x:.1f}" cy="{y:.1f}" rx="{BOX_W / 2}" ry="{BOX_H / 2}"/>'
                 f'<circle class="mark" cx="{x - 42:.1f}" cy="{y:.1f}" r="11"/>'
                 f'<path class="mark" d="M {x - 49:.1f} {y - 3:.1f} h 13 l -4 -4 M {x - 35:.1f} {y + 3:.1f} h -13 l 4 4"/>')
        texts = [Label(name, x + 12, y - 1, "name", fit=BOX_W - 58), Label("router", x + 12, y + 15, "kind")]
    else:
        rx = 18 if kind == "switch" else 4
        shape = (f'<rect x="{x - BOX_W / 2:.1f}" y="{y - BOX_H / 2:.1f}" width="{BOX_W}" height="{BOX_H}" rx="{rx}"/>')
        cls = "subnet" if kind == "switch" else "ip"
        texts = [Label(name, x, y - (4 if second else -6), "name", fit=BOX_W - 12)] + (
            [Label(second, x, y + 15, cls, fit=BOX_W - 8)] if second else [])
    return f'<g class="node {kind}" data-node="{escape(name)}">{shape}', texts


def _kind(lab: dict, name: str) -> str:
    return "host" if name in (lab.get("hosts") or {}) else "router" if name in (lab.get("routers") or []) else "switch"


def _step_notes(lab: dict, pos: dict[str, tuple[float, float]]) -> list[Label]:
    """Under each switch or router, the network steps that act in it: `hold client → server (line 17)`."""
    out, count = [], {}
    for step in lab.get("network_steps") or []:
        node = step.get("switch")
        if node not in pos:
            continue
        k = count[node] = count.get(node, 0) + 1
        x, y = pos[node]
        text = f"{step.get('action')} {step.get('sender')} → {step.get('receiver')} (line {step.get('line')})"
        out.append(Label(text, x, y + BOX_H / 2 + 4 + 17 * k, "step"))
    return out


def _given_routes(lab: dict, left: float, top: float) -> list[Label]:
    """The routes the topology file wrote (routes:), one row each under the drawing: they are what
    makes a path asymmetric; the computed ones follow from the links."""
    given = [r for r in lab.get("routes") or [] if r.get("given")]
    return [Label(f"route given: {r['node']} to {r['prefix']} via {r['via_node']} ({r['via']})",
                  left, top + ROW * (i + 1), "route", "start") for i, r in enumerate(given)]


STYLE = """
.topology .node rect { fill: #eef2ff; stroke: #1e3a8a; stroke-width: 2; }
.topology .switch rect { fill: #f1f5f9; stroke: #334155; }
.topology .router ellipse { fill: #fff7ed; stroke: #9a3412; stroke-width: 2.5; }
.topology .router .mark { fill: none; stroke: #9a3412; stroke-width: 1.8; }
.topology text { font-family: system-ui, "DejaVu Sans", Arial, sans-serif; text-anchor: middle; fill: #111827; }
.topology .name { font-size: 17px; font-weight: 600; }
.topology .ip { font-size: 13px; fill: #374151; }
.topology .kind { font-size: 11px; fill: #9a3412; letter-spacing: 0.05em; }
.topology .link line, .topology .link path { stroke: #4b5563; stroke-width: 2.5; fill: none; }
.topology .step { font-size: 14px; fill: #9a3412; font-weight: 600; }
.topology .delay, .topology .extra, .topology .note, .topology .subnet, .topology .addr {
  paint-order: stroke; stroke: #fff; stroke-width: 4px; stroke-linejoin: round; }
.topology .delay { font-size: 14px; fill: #1f2937; }
.topology .extra { font-size: 12px; fill: #374151; }
.topology .note { font-size: 13px; fill: #6b21a8; font-weight: 600; }
.topology .subnet { font-size: 13px; fill: #047857; font-style: italic; }
.topology .addr { font-size: 12px; fill: #1e3a8a; }
.topology .route { font-size: 13px; fill: #374151; }
"""


def _nodes(lab: dict, pos: dict[str, tuple[float, float]]) -> tuple[list[str], list[Label]]:
    """Every node's shape with its texts, and those texts (a host's address, a switch's subnet)."""
    in_switch, _ = subnet_places(lab)
    hosts = lab.get("hosts") or {}
    shapes, labels = [], []
    for name, xy in pos.items():
        kind = _kind(lab, name)
        shape, texts = _node(name, xy, kind, (hosts.get(name) or {}).get("ip") if kind == "host" else in_switch.get(name))
        shapes.append(shape + "".join(t.svg() for t in texts) + "</g>")
        labels += texts
    return shapes, labels


def _start(pos: dict[str, tuple[float, float]], labels: list[Label], wires: list[Wire]) -> Taken:
    """The nodes, their labels and the wires (off the nodes), for the labels still to place."""
    taken = Taken()
    for box in [node_box(xy, 2) for xy in pos.values()] + [f.box for f in labels]:
        taken.add(box)
    for w in wires:
        taken.add_points([p for p in w.samples(96) if not any(_inside(p, node_box(xy)) for xy in (w.a, w.b))])
    return taken


def _place_addresses(lab: dict, links: list[tuple[int, dict, Wire]], taken: Taken) -> list[Label]:
    """Each router interface's address at its end of its link, where it covers least."""
    ends = {(i["link"], i["node"]): i["address"] for i in lab.get("interfaces") or [] if i.get("address")}
    routers = set(lab.get("routers") or [])
    return [label for k, link, w in links for from_a, node in ((True, link["a"]), (False, link["b"]))
            if node in routers and (k, node) in ends
            for label in taken.best([[spot] for spot in address_spots(w, from_a, ends[(k, node)])])]


def _drawn(lab: dict, server: str | None) -> tuple[list[str], list[Label], list[Box]]:
    """(svg parts, every label, every box drawn): addresses, then each link's labels, each placed
    where it covers the least of what is already there."""
    pos = positions(lab, server)
    shapes, labels = _nodes(lab, pos)
    links = [(k, link, wire(link, pos)) for k, link in enumerate(lab.get("links") or [])
             if link["a"] in pos and link["b"] in pos]
    free = _step_notes(lab, pos)
    taken = _start(pos, labels + free, [w for _, _, w in links])
    free += _place_addresses(lab, links, taken)
    _, on_link = subnet_places(lab)
    wires = []
    for k, link, w in links:
        placed = taken.best(link_label_spots(link, w, on_link.get(k)))
        labels += placed
        wires.append(f'<g class="link" data-link="{k}" data-a="{escape(link["a"])}" data-b="{escape(link["b"])}">'
                     f'{w.svg()}{"".join(p.svg() for p in placed)}</g>')
    labels += free
    boxes = [node_box(xy) for xy in pos.values()] + [p.box for p in labels] + [
        (x, y, x, y) for _, _, w in links for x, y in w.samples(16)]
    return wires + shapes + [f.svg() for f in free], labels, boxes


def segment_mtus(lab: dict) -> list[dict]:
    """The links, each with the MTU of its segment when the file set it on another link of that
    segment (an MTU is the LAN's: every interface on it gets it)."""
    mtus = {i["subnet"]: i["mtu"] for i in lab.get("interfaces") or [] if i.get("mtu") and i.get("subnet")}
    subnets = link_subnets(lab)
    return [dict(link, mtu=link.get("mtu") or mtus.get(subnets.get(k))) for k, link in enumerate(lab.get("links") or [])]


def topology_svg(lab: dict, server: str | None = None) -> str:
    """The lab's hosts, routers, switches and links as an inline <svg class="topology">, with the
    subnets, addresses, link settings and where network steps act."""
    if not node_names(lab):
        return ""
    lab = dict(lab, links=segment_mtus(lab))
    parts, _, boxes = _drawn(lab, server)
    x0, y0 = min(b[0] for b in boxes) - MARGIN, min(b[1] for b in boxes) - MARGIN
    routes = _given_routes(lab, x0 + MARGIN, max(b[3] for b in boxes))
    boxes += [r.box for r in routes]
    x1, y1 = max(b[2] for b in boxes) + MARGIN, max(b[3] for b in boxes) + MARGIN
    width, height = x1 - x0, y1 - y0
    return (f'<svg class="topology" xmlns="http://www.w3.org/2000/svg" viewBox="{x0:.0f} {y0:.0f} {width:.0f} {height:.0f}" '
            f'width="{width:.0f}" height="{height:.0f}" role="img" aria-label="the lab\'s topology">'
            f'<style>{STYLE}</style>{"".join(parts)}'
            f'{"".join(r.svg() for r in routes)}</svg>')
