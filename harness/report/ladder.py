"""The ladder diagram's layout: lanes, a time axis running down, arrows, state bands, timer marks,
idle-stretch breaks and timing brackets, as plain geometry (ladder_svg turns it into SVG).

Why a layout of its own: the geometry is what the unit test checks (an arrow starts on its
sender's lane at y(kernel send time) and ends on its receiver's at y(arrival)), free of any SVG.
Time runs down to real scale, except that a stretch with nothing drawn in it that is longer than
max(1 s, 8 x the median gap between drawn moments) (TIME-WAIT's 60 s) is squeezed to BREAK_H px."""
from __future__ import annotations

import bisect
import math
import statistics
from dataclasses import dataclass, field

from harness.analyse.icmp_path import IcmpMessage
from harness.analyse.journeys import Journey, isns, route_nodes
from harness.report.run_data import RunData, state_columns

MARGIN_LEFT = 86          # room for the time labels
MARGIN_RIGHT = 24
BAND_W = 82               # one socket's state column
BAND_PAD = 6              # between a lane and its first column
LANE_GAP = 230            # at least, between two lanes (more to fill WIDTH)
WIDTH = 1000
ROW_H = 18                # legend row
HEADER_H = 26             # lane names
BREAK_H = 44
MIN_H, MAX_H = 480.0, 1400.0
GAP_PX = 26.0             # the median gap between drawn moments gets at least this, when it fits
LABEL_GAP = 13.0          # px between two arrow labels' baselines
NEAR_LABELS = 60          # labels are placed in send order: a new one is checked against the last ones
BRACKET_STEP = 16         # px between brackets side by side on one lane
TAIL_S = 0.1              # drawn after the last moment anything happened
# An idle stretch longer than this (and 8 median gaps) is squeezed: 1 s where links have delays;
# with none, an exchange takes µs and a 1 s floor would draw it flat between 0.5 s waits
IDLE_FLOOR_S, IDLE_FLOOR_NO_DELAY_S = 1.0, 0.05
TIMER_SLACK_S = 0.5       # a timer due this long after its state ended is not drawn (it never fired)
CONNECTION_COLOURS = ["#1f5fa8", "#0d7f7f", "#8c564b", "#444444", "#1b7a3d", "#a0522d", "#5b4c9a", "#6b6b00"]
STYLE_COLOURS = {"dropped": "#d62728", "held": "#ff8c00", "duplicate": "#9932cc", "injected": "#2ca02c",
                 "icmp": "#b8860b"}


@dataclass
class Axis:
    """time -> y, piecewise linear: (t0, t1, y0, y1) pieces in time order."""
    pieces: list[tuple[float, float, float, float]]

    def __post_init__(self) -> None:
        self._starts = [p[0] for p in self.pieces]

    def y(self, t: float) -> float:
        k = max(0, min(len(self.pieces) - 1, bisect.bisect_right(self._starts, t) - 1))
        t0, t1, y0, y1 = self.pieces[k]
        return y0 if t1 == t0 else y0 + (t - t0) * (y1 - y0) / (t1 - t0)

    @property
    def bottom(self) -> float:
        return self.pieces[-1][3]


@dataclass
class Lane:
    name: str
    kind: str                     # host | switch | router
    x: float
    columns: list[str] = field(default_factory=list)      # socket names, state columns beside it
    column_x: list[float] = field(default_factory=list)   # each column's left edge


@dataclass
class Arrow:
    journey: Journey
    points: list[tuple[float, float]]          # the drawn path: sender (or switch) ... receiver (or cross)
    classes: list[str]
    colour: str
    label: str
    label_at: tuple[float, float, float] | None     # x, y, angle in degrees (None: too crowded to label)
    park: tuple[float, float, float] | None = None  # held: x, y from, y to on the switch lane
    cross: tuple[float, float] | None = None        # dropped: where it ended
    head: bool = True                               # an arrowhead at the last point
    title: str = ""


@dataclass
class IcmpArrow:
    """An ICMP error a router sent: from its lane to the host it was for."""
    message: IcmpMessage
    points: list[tuple[float, float]]
    label: str
    title: str
    head: bool = True
    label_at: tuple[float, float, float] | None = None     # x, y, angle (None: too crowded to label)


@dataclass
class Band:
    id: str
    node: str
    socket: str
    state: str
    start: float
    end: float
    x: float
    y0: float
    y1: float
    title: str


@dataclass
class Edge:
    socket: str
    state: str
    t: float
    x0: float
    x1: float
    y: float
    label: str
    room: float = 0.0         # height of the band it starts (its label needs 28 px)


@dataclass
class TimerMark:
    socket: str
    kind: str                 # time-wait | retransmit
    t: float
    x: float
    y: float
    title: str
    note: str = ""            # written beside the mark: a timer due after the run ended says when


@dataclass
class Break:
    t_from: float
    t_to: float
    y0: float
    y1: float
    label: str


@dataclass
class Bracket:
    id: str
    verdict: int
    x: float
    y0: float
    y1: float
    label: str
    title: str
    passed: bool
    side: int = 1             # 1: right of its lane (label further right), -1: left of it


@dataclass
class Ladder:
    width: float
    height: float
    top: float
    lanes: list[Lane]
    arrows: list[Arrow]
    bands: list[Band]
    edges: list[Edge]
    timers: list[TimerMark]
    breaks: list[Break]
    brackets: list[Bracket]
    ticks: list[tuple[float, str]]
    legend: list[tuple[str, str, str]]         # (kind: connection|style, colour or style, text)
    marks: list[list[str]]
    axis: Axis
    zero: float                                # the moment labelled +0
    icmp: list[IcmpArrow] = field(default_factory=list)


# ---- lanes -------------------------------------------------------------------------------------

def _server_like(result: dict) -> set[str]:
    obs = result.get("observation") or {}
    hosts = {v.get("host") for v in (obs.get("sockets") or {}).values() if v.get("kind") in ("listen", "accepted")}
    return {h for h in hosts if h} | ({obs["server_host"]} if obs.get("server_host") else set())


def column_host(result: dict, column: str) -> str:
    """The host a state column belongs to (a socket's host; an old run's column is its host)."""
    sockets = (result.get("observation") or {}).get("sockets") or {}
    return sockets.get(column, {}).get("host") or column


def node_kind(lab: dict, name: str) -> str:
    """host | router | switch: what a node of the lab is (a network step's node is a switch or a router)."""
    if name in (lab.get("hosts") or {}):
        return "host"
    return "router" if name in (lab.get("routers") or []) else "switch"


def _network_lanes(run: RunData, left: list[str], right: list[str]) -> list[str]:
    """The switches and routers with a lane: where a network step acted, and routers where a segment
    died (TTL expired, no route, too big for the next link); in their order on the way from the first
    left host to the first right one."""
    nodes = [step["switch"] for step in run.lab.get("network_steps", []) if step.get("switch")]
    nodes += [j.died_at[0] for j in run.journeys if j.died_at and node_kind(run.lab, j.died_at[0]) == "router"]
    nodes += [m.origin for m in run.icmp if node_kind(run.lab, m.origin) == "router"]
    nodes = list(dict.fromkeys(nodes))
    way = route_nodes(run.lab, left[0], right[0]) if left and right else []
    return sorted(nodes, key=lambda n: way.index(n) if n in way else len(way))


def lane_order(run: RunData) -> list[tuple[str, str]]:
    """(name, kind): connecting hosts left, switches and routers (_network_lanes), servers right."""
    hosts = list(run.lab.get("hosts", {}))
    servers = _server_like(run.result)
    left = [h for h in hosts if h not in servers] or hosts[:1]
    right = [h for h in hosts if h not in left]
    return ([(h, "host") for h in left] + [(s, node_kind(run.lab, s)) for s in _network_lanes(run, left, right)]
            + [(h, "host") for h in right])


def place_lanes(run: RunData) -> list[Lane]:
    """x of each lane and of its state columns: the first lane's columns to its left, the others' to their right."""
    order = lane_order(run)
    columns: dict[str, list[str]] = {}
    for column in state_columns(run.result):
        columns.setdefault(column_host(run.result, column), []).append(column)
    lanes = [Lane(name, kind, 0.0, columns.get(name, []) if kind == "host" else []) for name, kind in order]
    used = MARGIN_LEFT + MARGIN_RIGHT + sum(len(l.columns) * BAND_W + BAND_PAD for l in lanes)
    gap = max(LANE_GAP, (WIDTH - used) / max(1, len(lanes) - 1))
    x = MARGIN_LEFT
    for n, lane in enumerate(lanes):
        width = len(lane.columns) * BAND_W + (BAND_PAD if lane.columns else 0)
        if n == 0:
            lane.x = x + width
            lane.column_x = [lane.x - BAND_PAD - (k + 1) * BAND_W for k in range(len(lane.columns))]
        else:
            x += gap
            lane.x = x
            lane.column_x = [lane.x + BAND_PAD + k * BAND_W for k in range(len(lane.columns))]
        x = lane.x + (width if n else 0)
    return lanes


# ---- time axis ---------------------------------------------------------------------------------

def _journey_times(j: Journey) -> list[float]:
    times = [j.sent] + [t for _, t in j.seen]
    if j.switch_out is not None:
        times.append(j.switch_out - j.egress_delay_s)
    return times


def _span_end(spans: list[dict], n: int) -> float:
    return spans[n + 1]["first_seen"] if n + 1 < len(spans) else spans[n]["last_seen"]


def _timer_kind(span: dict) -> str | None:
    """Which kernel timer a span's timer_due is worth a mark for (None: none, or it never fired)."""
    due, after = span.get("timer_due"), span.get("sample_after")
    if not due or (after is not None and after < due - TIMER_SLACK_S):
        return None
    if span["state"] == "TIME-WAIT":
        return "time-wait"
    return "retransmit" if span["state"] in ("SYN-SENT", "SYN-RECV") else None


def _due_after_run(span: dict) -> bool:
    """A timer still pending when sampling stopped (a TIME-WAIT longer than the run): its mark sits
    at the band's end with the due time written, so the axis does not run on past the run."""
    return span.get("sample_after") is None and span["timer_due"] > span["last_seen"] + TIMER_SLACK_S


def _intervals(result: dict) -> list[tuple[int, float, float]]:
    out = []
    for i, e in enumerate(result.get("expectations") or []):
        interval = (e.get("marks") or {}).get("interval")
        if interval and len(interval) == 2 and None not in interval:
            out.append((i, float(interval[0]), float(interval[1])))
    return out


def drawn_moments(run: RunData, journeys: list[Journey]) -> list[float]:
    """Every moment something is drawn at, from t0 on, and a little after the last (the last
    states' bands are cut there: sampling went on long after anything happened)."""
    times = [t for j in journeys for t in _journey_times(j)]
    for spans in state_columns(run.result).values():
        times += [span["first_seen"] for span in spans]
        times += [span["timer_due"] for span in spans if _timer_kind(span) and not _due_after_run(span)]
    times += [t for _, a, b in _intervals(run.result) for t in (a, b)]
    times += [t for flight in icmp_flights(run) for t in flight]
    moments = sorted({max(t, run.t0) for t in times if t is not None})
    return moments + [moments[-1] + TAIL_S] if moments else moments


def _in_flight(journeys: list[Journey]) -> list[tuple[float, float]]:
    """When each journey is on its way (sent to its last sighting): a stretch with one is not idle."""
    return sorted((j.sent, max(t for _, t in j.seen)) for j in journeys if j.seen)


def icmp_flights(run: RunData) -> list[tuple[float, float]]:
    """When each ICMP error was on its way: from leaving its router to its last sighting."""
    return [(m.sent, m.seen[-1][1]) for m in run.icmp]


def _idle(a: float, b: float, flights: list[tuple[float, float]]) -> bool:
    return not any(start < b and end > a for start, end in flights)


def build_axis(moments: list[float], top: float, flights: list[tuple[float, float]] = (),
               floor_s: float = IDLE_FLOOR_S) -> tuple[Axis, list[Break]]:
    """Real scale, with long idle stretches squeezed (see the module's docstring); a stretch a
    segment is on its way through (a held one) is not idle."""
    if len(moments) < 2:
        t = moments[0] if moments else 0.0
        return Axis([(t, t + 1.0, top, top + MIN_H)]), []
    gaps = [b - a for a, b in zip(moments, moments[1:])]
    positive = [g for g in gaps if g > 0]
    median = statistics.median(positive) if positive else 1.0
    limit = max(8 * median, floor_s)
    squeezed = [g > limit and _idle(a, b, list(flights)) for a, b, g in zip(moments, moments[1:], gaps)]
    real = sum(g for g, sq in zip(gaps, squeezed) if not sq) or 1.0
    scale = max(MIN_H / real, min(GAP_PX / median, MAX_H / real))
    pieces, breaks, y = [], [], top
    for (a, b), sq in zip(zip(moments, moments[1:]), squeezed):
        height = BREAK_H if sq else (b - a) * scale
        if sq:
            breaks.append(Break(a, b, y, y + height, f"{b - a:.1f} s idle"))
        pieces.append((a, b, y, y + height))
        y += height
    return Axis(pieces), breaks


def _idle_floor(run: RunData) -> float:
    """IDLE_FLOOR_S, or IDLE_FLOOR_NO_DELAY_S where no link has a delay."""
    delays = [d.get("delay_s") or 0 for link in (run.lab or {}).get("links", []) for d in (link.get("a_to_b", {}),
                                                                                        link.get("b_to_a", {}))]
    return IDLE_FLOOR_S if not delays or any(delays) else IDLE_FLOOR_NO_DELAY_S


def _nice_step(scale_px_per_s: float) -> float:
    """A tick step (1, 2, 5 x 10^n s) at least 48 px apart."""
    steps = [m * 10.0 ** e for e in range(-4, 4) for m in (1, 2, 5)]
    return next((s for s in steps if s * scale_px_per_s >= 48), steps[-1])


def tick_text(t: float, zero: float, seconds: bool) -> str:
    d = t - zero
    return f"{d:+.3f} s" if seconds else f"{d * 1000:+.0f} ms"


def ticks(axis: Axis, breaks: list[Break], zero: float) -> list[tuple[float, str]]:
    """Labels on the left: nice steps within each real-scale stretch, and after each break."""
    seconds = axis.pieces[-1][1] - zero >= 2.0
    out = []
    real = [p for p in axis.pieces if not any(b.t_from == p[0] and b.t_to == p[1] for b in breaks)]
    if real:
        scale = max((p[3] - p[2]) / (p[1] - p[0]) for p in real if p[1] > p[0]) if any(p[1] > p[0] for p in real) else 1.0
        step = _nice_step(scale)
        k = int((axis.pieces[0][0] - zero) // step)
        t = zero + k * step
        while t <= axis.pieces[-1][1]:
            if any(p[0] <= t <= p[1] for p in real):
                out.append((axis.y(t), tick_text(t, zero, seconds)))
            t = zero + (k := k + 1) * step
    out += [(b.y1, tick_text(b.t_to, zero, seconds)) for b in breaks]
    return _spread(sorted(out))


def _spread(marks: list[tuple[float, str]]) -> list[tuple[float, str]]:
    """Drop labels closer than 14 px to the previous one kept."""
    out: list[tuple[float, str]] = []
    for y, text in marks:
        if not out or y - out[-1][0] >= 14:
            out.append((y, text))
    return out


# ---- arrows ------------------------------------------------------------------------------------

def relative_label(j: Journey, isn: dict[tuple[str, int], int]) -> str:
    """flags, seq/ack relative to each side's ISN of its incarnation (as timeline.txt numbers them), len."""
    s = j.segment
    seq = (s.seq - isn.get((s.src, s.sport), 0)) % 2**32
    text = f"{s.flags} seq={seq}"
    if "A" in s.flags:
        text += f" ack={(s.ack - isn.get((s.dst, s.dport), 0)) % 2**32}"
    return text + f" len={s.length}"


def _classes(j: Journey) -> list[str]:
    out = ["seg"]
    out += ["retransmission"] if j.retransmission else []
    out += ["dropped"] if j.fate == "dropped" else []
    out += ["held"] if j.held_s > 0 else []
    out += ["duplicate"] if j.duplicate else []
    out += ["injected"] if j.fate == "injected" else []
    return out


def _colour(j: Journey, connection_colour: str) -> str:
    for style in ("injected", "duplicate", "dropped"):
        if style in _classes(j):
            return STYLE_COLOURS[style]
    return connection_colour


def _from_switch(j: Journey) -> bool:
    """Drawn from the switch's (or router's) lane: an injected segment, or a step's extra copy."""
    return j.fate == "injected" or j.duplicate


def _start(j: Journey, sx: float | None, rx: float | None, wx: float | None, axis: Axis) -> tuple[float, float]:
    leaves = j.switch_out - j.egress_delay_s if j.switch_out is not None else None
    if _from_switch(j) and wx is not None and leaves is not None:
        return wx, axis.y(leaves)
    return (sx if sx is not None else rx if rx is not None else MARGIN_LEFT), axis.y(j.sent)


def _via_switch(j: Journey, wx: float | None, axis: Axis) -> tuple[list, tuple | None]:
    """The corner at the switch's (or router's) lane when it got there, and its park there when a step held it."""
    if wx is None or j.switch_in is None or _from_switch(j):
        return [], None
    points = [(wx, axis.y(j.switch_in))]
    if j.held_s > 0 and j.switch_out is not None:
        leaves = axis.y(j.switch_out - j.egress_delay_s)
        points.append((wx, leaves))
        return points, (wx, points[0][1], leaves)
    return points, None


def _path_points(j: Journey, lanes: dict[str, Lane], axis: Axis) -> tuple[list, tuple | None, tuple | None]:
    """The arrow's corner points, its park on the switch's or router's lane (held) and its cross (dropped)."""
    sx, rx, wx = (lanes[n].x if n in lanes else None for n in (j.sender, j.receiver, j.switch))
    via, park = _via_switch(j, wx, axis)
    points = [_start(j, sx, rx, wx, axis)] + via
    if j.arrived is not None and rx is not None:
        return points + [(rx, axis.y(j.arrived))], park, None
    points = _dropped_end(j, points, rx, axis, lanes)
    return points, park, points[-1]


def _dropped_end(j: Journey, points: list, rx: float | None, axis: Axis, lanes: dict[str, Lane]) -> list:
    """A dropped segment ends where it was last seen: at the lane of the switch or router whose port
    saw it last, else at its step's lane, else a quarter of the way."""
    if j.died_at and j.died_at[0] in lanes:
        end = (lanes[j.died_at[0]].x, axis.y(j.died_at[1]))
        return points if points[-1] == end else points + [end]
    if len(points) > 1 or rx is None:
        return points if len(points) > 1 else points + [(points[0][0] + 12, points[0][1])]
    x0, y0 = points[0]
    last = max(t for _, t in j.seen)
    return points + [(x0 + (rx - x0) * 0.25, max(axis.y(last), y0 + 6))]


def _label_leg(points: list[tuple[float, float]]) -> tuple[tuple[float, float], tuple[float, float], float]:
    """The longest slanted leg, and its angle (kept readable: never upside down)."""
    legs = [(a, b) for a, b in zip(points, points[1:]) if a[0] != b[0]] or list(zip(points, points[1:]))
    a, b = max(legs, key=lambda ab: abs(ab[1][0] - ab[0][0]))
    angle = math.degrees(math.atan2(b[1] - a[1], b[0] - a[0]))
    if angle > 90 or angle < -90:
        angle -= 180 if angle > 0 else -180
    return a, b, angle


Line = tuple[tuple[float, float], tuple[float, float]]


def _label_line(x: float, y: float, angle: float, half: float) -> Line:
    """A label's baseline (it is rotated with its arrow)."""
    dx, dy = math.cos(math.radians(angle)) * half, math.sin(math.radians(angle)) * half
    return (x - dx, y - dy), (x + dx, y + dy)


def _point_to_line(p: tuple[float, float], line: Line) -> float:
    (x0, y0), (x1, y1) = line
    length = (x1 - x0) ** 2 + (y1 - y0) ** 2
    f = 0.0 if not length else max(0.0, min(1.0, ((p[0] - x0) * (x1 - x0) + (p[1] - y0) * (y1 - y0)) / length))
    return math.dist(p, (x0 + f * (x1 - x0), y0 + f * (y1 - y0)))


def _apart(a: Line, b: Line) -> float:
    """How far apart two baselines are (0 when they cross)."""
    def side(p, q, r):
        return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])
    if side(*a, b[0]) * side(*a, b[1]) < 0 and side(*b, a[0]) * side(*b, a[1]) < 0:
        return 0.0
    return min(_point_to_line(a[0], b), _point_to_line(a[1], b), _point_to_line(b[0], a), _point_to_line(b[1], a))


def _label_spot(points: list[tuple[float, float]], label: str, placed: list[Line]) -> tuple[float, float, float] | None:
    """Where on its arrow a label sits clear of the labels placed so far (None: nowhere), kept
    within its leg."""
    a, b, angle = _label_leg(points)
    half = 3.7 * len(label)
    room = math.dist(a, b)
    for f in (0.5, 0.3, 0.7, 0.15, 0.85):
        if room and min(f, 1 - f) * room < half and f != 0.5:
            continue
        x, y = a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f
        line = _label_line(x, y, angle, half)
        near = (other for other in placed[-NEAR_LABELS:] if abs(other[0][1] - y) < 2 * half + 40)
        if not any(_apart(line, other) < LABEL_GAP for other in near):
            placed.append(line)
            return x, y, angle
    return None


def seen_title(j: Journey, label: str, name: dict[tuple[str, int], str], where: str = "switch") -> str:
    """The hover text: who sent what, its fate, and every capture's absolute time."""
    s = j.segment
    parts = [f"{j.id}: {j.sender} → {j.receiver}  {label}",
             f"{name.get((s.src, s.sport), f'{s.src}:{s.sport}')} → {name.get((s.dst, s.dport), f'{s.dst}:{s.dport}')}, "
             f"seq={s.seq} ack={s.ack} tsval={s.tsval}",
             f"{j.fate}" + (", retransmission" if j.retransmission else "") + (", duplicate copy" if j.duplicate else "")
             + (f", held {j.held_s:.3f} s" if j.held_s else "")]
    how = ("kernel" if any(stem.endswith(".kernel") for stem, _ in j.seen) or j.duplicate
           else f"handed to the {where} port" if j.fate == "injected" else "first capture less the link delay")
    parts += [f"sent ({how}) {j.sent:.6f}"] + [f"{stem} {t:.6f}" for stem, t in j.seen]
    return "\n".join(parts)


def icmp_label(m: IcmpMessage) -> str:
    return f"ICMP {m.kind}" + (f" mtu={m.mtu}" if m.mtu else "")


def icmp_arrows(run: RunData, lanes: dict[str, Lane], axis: Axis, placed: list[Line]) -> list[IcmpArrow]:
    """One arrow per ICMP error from its router's lane at the moment it left to the host's at its
    arrival (one that never arrived: to where it was last seen, half way, without a head)."""
    out = []
    for m in run.icmp:
        if m.origin not in lanes:
            continue
        x0 = lanes[m.origin].x
        end = ((lanes[m.receiver].x, axis.y(m.arrived)) if m.arrived is not None and m.receiver in lanes
               else ((x0 + lanes[m.receiver].x) / 2 if m.receiver in lanes else x0 + 12, axis.y(m.seen[-1][1])))
        about = f"about {m.about[0]}:{m.about[1]} → {m.about[2]}:{m.about[3]} seq={m.about[4]}" if m.about else ""
        title = "\n".join([f"{m.id}: {m.origin} → {m.receiver}  {icmp_label(m)}", about, f"sent {m.sent:.6f}"]
                          + [f"{stem} {t:.6f}" for stem, t in m.seen])
        points = [(x0, axis.y(m.sent)), end]
        out.append(IcmpArrow(m, points, icmp_label(m), title, m.arrived is not None,
                             _label_spot(points, icmp_label(m), placed)))
    return out


# ---- connections -------------------------------------------------------------------------------

def _socket_names(result: dict) -> dict[tuple[frozenset, int], list[tuple[str, str]]]:
    """(four-tuple ends, incarnation) -> [(kind, shown name)] of the sockets at its ends."""
    out: dict[tuple[frozenset, int], list[tuple[str, str]]] = {}
    for name, v in ((result.get("observation") or {}).get("sockets") or {}).items():
        if v.get("local") and v.get("peer"):
            ends = frozenset({tuple(v["local"]), tuple(v["peer"])})
            shown = v["aliases"][0] if v.get("kind") == "accepted" and v.get("aliases") else name
            out.setdefault((ends, v.get("incarnation") or 1), []).append((v.get("kind", ""), shown))
    return out


def connection_of(j: Journey) -> tuple[frozenset, int]:
    s = j.segment
    return frozenset({(s.src, s.sport), (s.dst, s.dport)}), j.incarnation


def connections(run: RunData, journeys: list[Journey]) -> dict[tuple[frozenset, int], tuple[str, str]]:
    """Each connection (four-tuple incarnation) in order of its first send -> (colour, legend name)."""
    names = _socket_names(run.result)
    out: dict[tuple[frozenset, int], tuple[str, str]] = {}
    for j in journeys:
        key = connection_of(j)
        if key in out or j.fate == "injected" and any(k[0] == key[0] for k in out):
            continue
        ends = sorted(names.get(key, []), key=lambda kn: kn[0] != "connect")
        text = " ⇄ ".join(n for _, n in ends) or " ⇄ ".join(f"{a}:{p}" for a, p in sorted(key[0]))
        out[key] = (CONNECTION_COLOURS[len(out) % len(CONNECTION_COLOURS)], text)
    return out


def _address_names(run: RunData) -> dict[tuple[str, int], str]:
    hosts = run.lab.get("hosts", {})
    ips = {h["ip"]: name for name, h in hosts.items()}
    out = {}
    for j in run.journeys:
        s = j.segment
        for a, p in ((s.src, s.sport), (s.dst, s.dport)):
            out[(a, p)] = f"{ips.get(a, a)}:{p}"
    return out


def arrows(run: RunData, lanes: dict[str, Lane], axis: Axis,
           colours: dict[tuple[frozenset, int], tuple[str, str]], placed: list[Line] | None = None) -> list[Arrow]:
    """One arrow per journey; labels left out where they would sit on another one's (`placed`:
    the labels' baselines so far, for the ICMP arrows' labels after these)."""
    found = run.journeys
    numbers = isns(found)
    names = _address_names(run)
    out, placed = [], placed if placed is not None else []
    for j in found:
        points, park, cross = _path_points(j, lanes, axis)
        key = connection_of(j)
        colour = colours.get(key, (CONNECTION_COLOURS[0], ""))[0]
        label = relative_label(j, numbers.get(key, {}))
        spot = _label_spot(points, label, placed) if len(points) > 1 else None
        out.append(Arrow(j, points, _classes(j), _colour(j, colour), label, spot, park, cross,
                         head=j.arrived is not None,
                         title=seen_title(j, label, names, node_kind(run.lab, j.switch) if j.switch else "switch")))
    return out


# ---- states, timers, brackets ------------------------------------------------------------------

def _column_spots(lanes: list[Lane]) -> dict[str, tuple[str, float]]:
    return {c: (lane.name, lane.column_x[k]) for lane in lanes for k, c in enumerate(lane.columns)}


def bands(run: RunData, lanes: list[Lane], axis: Axis, zero: float) -> tuple[list[Band], list[Edge], list[TimerMark]]:
    """Each socket's state spans as bands, a band edge per state change, its timers' marks."""
    spots = _column_spots(lanes)
    out, edges, timers = [], [], []
    for column, spans in state_columns(run.result).items():
        if column not in spots:
            continue
        node, x = spots[column]
        for n, span in enumerate(spans):
            start, end = (min(max(t, run.t0), axis.pieces[-1][1]) for t in (span["first_seen"], _span_end(spans, n)))
            title = (f"{column}: {span['state']} from {span['first_seen']:.6f} ({span['first_seen'] - zero:+.3f} s) "
                     f"to {_span_end(spans, n):.6f}")
            out.append(Band(f"band-{len(out)}", node, column, span["state"], span["first_seen"],
                            _span_end(spans, n), x, axis.y(start), axis.y(end), title))
            if n or span.get("sample_before") is not None:
                edges.append(Edge(column, span["state"], span["first_seen"], x, x + BAND_W, axis.y(start),
                                  f"{span['first_seen'] - zero:+.3f} s", axis.y(end) - axis.y(start)))
            kind = _timer_kind(span)
            if kind:
                timers.append(_timer_mark(column, kind, span, x + BAND_W, axis, zero))
    return out, edges, timers


def _timer_mark(column: str, kind: str, span: dict, x: float, axis: Axis, zero: float) -> TimerMark:
    """A kernel timer's due time on its band; one due after the run ended sits at the band's end."""
    due = span["timer_due"]
    what = "TIME-WAIT timer due" if kind == "time-wait" else f"{span['state']} retransmission timer due"
    later = _due_after_run(span)
    where = axis.y(min(due, axis.pieces[-1][1])) if not later else axis.y(min(span["last_seen"], axis.pieces[-1][1]))
    return TimerMark(column, kind, due, x, where,
                     f"{column}: {what} at {due:.6f} ({due - zero:+.3f} s), by the kernel's own count"
                     + (", after the run ended" if later else ""),
                     f"due {due - zero:+.1f} s" if later else "")


def _subject_ids(subject: str, band_list: list[Band], result: dict) -> list[str]:
    sockets = (result.get("observation") or {}).get("sockets") or {}
    names = {subject}
    for name, v in sockets.items():
        if subject == name or subject in (v.get("aliases") or []):
            names.add(name)
    return [b.id for b in band_list if b.socket in names or b.node == subject]


def _bracket_lane(run: RunData, lanes: list[Lane], subjects: list[str]) -> Lane:
    """The lane of an expectation's first subject (a host, or a socket's host)."""
    by_name = {lane.name: lane for lane in lanes}
    host = next((s if s in by_name else column_host(run.result, s) for s in subjects), None)
    return by_name.get(host) or lanes[0]


def _level(taken: list[tuple[float, float, int]], y0: float, y1: float) -> int:
    """The first offset from its lane at which a bracket overlaps none already there."""
    level = 0
    while any(lv == level and a < y1 + 4 and b > y0 - 4 for a, b, lv in taken):
        level += 1
    return level


def brackets(run: RunData, lanes: list[Lane], axis: Axis) -> list[Bracket]:
    """A bracket beside the lane of its expectation's first subject, on the lane's inner side
    (towards the arrows), over the interval it timed; overlapping ones side by side."""
    out: list[Bracket] = []
    taken: dict[str, list[tuple[float, float, int]]] = {}
    expectations = run.result.get("expectations") or []
    for i, a, b in _intervals(run.result):
        e = expectations[i]
        lane = _bracket_lane(run, lanes, (e.get("marks") or {}).get("subjects") or [])
        side = 1 if lane is lanes[0] else -1
        y0, y1 = axis.y(a), axis.y(b)
        level = _level(taken.setdefault(lane.name, []), y0, y1)
        taken[lane.name].append((y0, y1, level))
        title = f"{e.get('name')}: expected {e.get('expected')}, observed {e.get('observed')}"
        out.append(Bracket(f"bracket-{len(out)}", i, lane.x + side * (12 + BRACKET_STEP * level), y0, y1,
                           e.get("name", "").split(" (")[0], title, bool(e.get("passed")), side))
    return out


def marks(run: RunData, band_list: list[Band], bracket_list: list[Bracket]) -> list[list[str]]:
    """For each expectation, the ids of what it judged: its subjects' bands, its bracket, its segments."""
    out = []
    for i, e in enumerate(run.result.get("expectations") or []):
        m = e.get("marks") or {}
        ids = [x for s in m.get("subjects") or [] for x in _subject_ids(s, band_list, run.result)]
        ids += [b.id for b in bracket_list if b.verdict == i]
        for src, sport, t in m.get("segments") or []:
            ids += [j.id for j in run.journeys if (j.segment.src, j.segment.sport) == (src, sport)
                    and any(abs(seen - t) <= 1e-6 for _, seen in j.seen)]
        out.append(list(dict.fromkeys(ids)))
    return out


# ---- all of it ---------------------------------------------------------------------------------

def _at(kinds: set[str]) -> str:
    """Where held and injected segments were: at the switch, the router, or a switch or router."""
    return "the router" if kinds == {"router"} else "a switch or router" if "router" in kinds else "the switch"


def legend(colours: dict, arrow_list: list[Arrow], lab: dict | None = None,
           icmp: list[IcmpArrow] = ()) -> list[tuple[str, str, str]]:
    out = [("connection", colour, name) for colour, name in colours.values()]
    present = {c for a in arrow_list for c in a.classes} | ({"icmp"} if icmp else set())
    kinds = {style: {node_kind(lab or {}, a.journey.switch) for a in arrow_list
                     if style in a.classes and a.journey.switch} for style in ("held", "injected")}
    texts = {"retransmission": "retransmission", "dropped": "dropped (×)", "held": f"held at {_at(kinds['held'])}",
             "duplicate": "duplicate copy", "injected": f"injected at {_at(kinds['injected'])}",
             "icmp": "ICMP error from a router"}
    return out + [("style", style, text) for style, text in texts.items() if style in present]


def _legend_rows(items: list[tuple[str, str, str]], width: float) -> int:
    x, rows = MARGIN_LEFT, 1
    for _, _, text in items:
        w = 40 + 7 * len(text)
        if x + w > width - MARGIN_RIGHT:
            rows, x = rows + 1, MARGIN_LEFT
        x += w
    return rows


def layout(run: RunData) -> Ladder:
    """The whole ladder of one run."""
    lane_list = place_lanes(run)
    width = max(WIDTH, (lane_list[-1].x if lane_list else 0) + BAND_W * len(lane_list[-1].columns if lane_list else [])
                + BAND_PAD + MARGIN_RIGHT)
    colours = connections(run, run.journeys)
    pre_legend = [("connection", c, n) for c, n in colours.values()] + [("style", s, s) for s in STYLE_COLOURS]
    top = 8 + ROW_H * _legend_rows(pre_legend, width) + HEADER_H + 12
    axis, breaks = build_axis(drawn_moments(run, run.journeys), top, _in_flight(run.journeys) + icmp_flights(run),
                              _idle_floor(run))
    zero = run.journeys[0].sent if run.journeys else run.t0
    by_name = {lane.name: lane for lane in lane_list}
    placed: list[Line] = []
    arrow_list = arrows(run, by_name, axis, colours, placed)
    icmp_list = icmp_arrows(run, by_name, axis, placed)
    band_list, edges, timers = bands(run, lane_list, axis, zero)
    bracket_list = brackets(run, lane_list, axis) if lane_list else []
    return Ladder(width, axis.bottom + 30, top, lane_list, arrow_list, band_list, edges, timers, breaks,
                  bracket_list, ticks(axis, breaks, zero), legend(colours, arrow_list, run.lab, icmp_list),
                  marks(run, band_list, bracket_list), axis, zero, icmp_list)
