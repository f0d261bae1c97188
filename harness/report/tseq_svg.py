"""Time-sequence view for report.html (as tcptrace or Wireshark's Stream Graph): per direction of a
connection that carried data, the sequence number relative to its ISN over time as the sender saw
it: a dot (with a bar for its length) per data segment at its kernel send time, a step line for
the ACKs coming back and a dashed one for the receive window they announced.

Pure: takes segments (harness.analyse.segments.Segment or anything with the same attributes)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

WRAP = 1 << 32
WIDTH, HEIGHT = 960, 400
LEFT, RIGHT, TOP, BOTTOM = 96, 24, 40, 56


@dataclass
class Series:
    """One direction: points relative to the first segment's time and the ISN."""
    title: str
    data: list[tuple[float, int, int, bool]] = field(default_factory=list)  # t, seq start, seq end, retransmitted
    acks: list[tuple[float, int]] = field(default_factory=list)             # t, ack
    window: list[tuple[float, int]] = field(default_factory=list)           # t, ack + window in bytes

    @property
    def bytes_sent(self) -> int:
        return max((end for _, _, end, _ in self.data), default=0)

    @property
    def data_bytes(self) -> int:
        """Bytes sent once (retransmissions not counted again)."""
        return sum(end - start for _, start, end, again in self.data if not again)


def _key(s) -> tuple[str, int, str, int]:
    return (s.src, s.sport, s.dst, s.dport)


def _wscale(segments) -> int | None:
    """The window scale a SYN among `segments` offered (None: no SYN seen or no option)."""
    for s in segments:
        if "S" in s.flags:
            return dict(s.options or ()).get("wscale")
    return None


def _isn(mine: list) -> int:
    syn = [s.seq for s in mine if "S" in s.flags]
    return syn[0] if syn else min(s.seq for s in mine)


def _data_points(mine: list, isn: int, t0: float) -> list[tuple[float, int, int, bool]]:
    out, top = [], 0
    for s in mine:
        if s.length <= 0:
            continue
        start = (s.seq - isn) % WRAP
        end = start + s.length
        out.append((s.t - t0, start, end, end <= top))
        top = max(top, end)
    return out


def _ack_points(back: list, isn: int, t0: float, scale: int) -> tuple[list, list]:
    acks, window = [], []
    for s in back:
        if "A" not in s.flags:
            continue
        ack = (s.ack - isn) % WRAP
        acks.append((s.t - t0, ack))
        shift = 0 if "S" in s.flags else scale
        window.append((s.t - t0, ack + (s.window << shift)))
    return acks, window


def direction_series(sent: list, received: list, key: tuple[str, int, str, int], title: str,
                     t0: float | None = None) -> Series:
    """The series of direction `key` (src, sport, dst, dport): `sent` holds what the sender's TCP
    sent (kernel capture), `received` what arrived at the sender (its interface's capture); times
    from `t0` (the ladder's zero), else from the direction's first segment."""
    mine = sorted((s for s in sent if _key(s) == key), key=lambda s: s.t)
    back_key = (key[2], key[3], key[0], key[1])
    back = sorted((s for s in received if _key(s) == back_key), key=lambda s: s.t)
    isn = _isn(mine)
    if t0 is None:
        t0 = min([s.t for s in mine] + [s.t for s in back])
    theirs, ours = _wscale(back), _wscale(mine)
    scale = theirs if theirs is not None and ours is not None else 0
    acks, window = _ack_points(back, isn, t0, scale)
    return Series(title, _data_points(mine, isn, t0), acks, window)


def data_directions(sent: list) -> list[tuple[str, int, str, int]]:
    """Directions (src, sport, dst, dport) among `sent` that carried at least one byte, in order of first data."""
    out: list[tuple[str, int, str, int]] = []
    for s in sorted(sent, key=lambda s: s.t):
        if s.length > 0 and _key(s) not in out:
            out.append(_key(s))
    return out


def nice_ticks(top: float, count: int = 6) -> list[float]:
    """0, step, 2 step ... covering [0, top] with a 1/2/5 x 10^n step."""
    if top <= 0:
        return [0.0]
    raw = top / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return [i * step for i in range(int(top / step + 1e-9) + 1)]


def _bytes(n: float) -> str:
    if n >= 1e6:
        return f"{n / 1e6:g} MB"
    return f"{n / 1e3:g} kB" if n >= 1e3 else f"{n:g} B"


def _seconds(t: float) -> str:
    """A tick's time as the ladder writes it: +0.5 s."""
    return f"+{t:.4g} s"


class _Frame:
    """Maps (t, seq) to pixels."""

    def __init__(self, t_max: float, seq_max: float) -> None:
        self.t_max, self.seq_max = max(t_max, 1e-3), max(seq_max, 1.0)

    def x(self, t: float) -> float:
        return LEFT + (WIDTH - LEFT - RIGHT) * t / self.t_max

    def y(self, seq: float) -> float:
        return HEIGHT - BOTTOM - (HEIGHT - TOP - BOTTOM) * min(seq, self.seq_max) / self.seq_max


def _axes(f: _Frame) -> str:
    out = [f'<rect class="plot" x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" height="{HEIGHT - TOP - BOTTOM}"/>']
    for t in nice_ticks(f.t_max):
        x = f.x(t)
        out.append(f'<line class="grid" x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{HEIGHT - BOTTOM}"/>'
                   f'<text class="tick" x="{x:.1f}" y="{HEIGHT - BOTTOM + 18}" text-anchor="middle">{_seconds(t)}</text>')
    for q in nice_ticks(f.seq_max, 5):
        y = f.y(q)
        out.append(f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}"/>'
                   f'<text class="tick" x="{LEFT - 8}" y="{y + 5:.1f}" text-anchor="end">{_bytes(q)}</text>')
    out.append(f'<text class="axis" x="{(LEFT + WIDTH - RIGHT) / 2:.0f}" y="{HEIGHT - 12}" text-anchor="middle">'
               "time, from the same zero as the ladder</text>")
    out.append(f'<text class="axis" transform="translate(18 {(TOP + HEIGHT - BOTTOM) / 2:.0f}) rotate(-90)" '
               'text-anchor="middle">sequence number − ISN</text>')
    return "".join(out)


def _steps(points: list[tuple[float, int]], f: _Frame, t_end: float, cls: str) -> str:
    """A step path: each value holds until the next one arrives."""
    if not points:
        return ""
    d = f"M{f.x(points[0][0]):.1f} {f.y(points[0][1]):.1f}"
    for t, v in points[1:]:
        d += f" H{f.x(t):.1f} V{f.y(v):.1f}"
    return f'<path class="{cls}" d="{d} H{f.x(t_end):.1f}"/>'


def _data(series: Series, f: _Frame) -> str:
    out = []
    for t, start, end, again in series.data:
        cls = "data retransmission" if again else "data"
        x = f.x(t)
        out.append(f'<g class="{cls}"><line x1="{x:.1f}" y1="{f.y(start):.1f}" x2="{x:.1f}" y2="{f.y(end):.1f}"/>'
                   f'<circle cx="{x:.1f}" cy="{f.y(end):.1f}" r="2.8"/></g>')
    return "".join(out)


def _legend() -> str:
    x, y = LEFT + 12, TOP + 18
    return (f'<g class="legend"><circle class="dot" cx="{x}" cy="{y - 5}" r="3.5"/>'
            f'<text x="{x + 10}" y="{y}">data sent (kernel send time)</text>'
            f'<circle class="dot again" cx="{x}" cy="{y + 15}" r="3.5"/>'
            f'<text x="{x + 10}" y="{y + 20}">retransmitted data</text>'
            f'<line class="ack" x1="{x - 6}" y1="{y + 35}" x2="{x + 6}" y2="{y + 35}"/>'
            f'<text x="{x + 10}" y="{y + 40}">ACK received</text>'
            f'<line class="win" x1="{x - 6}" y1="{y + 55}" x2="{x + 6}" y2="{y + 55}"/>'
            f'<text x="{x + 10}" y="{y + 60}">receive window (ACK + window)</text></g>')


STYLE = """
.tseq text { font-family: system-ui, "DejaVu Sans", Arial, sans-serif; font-size: 14px; fill: #111827; }
.tseq .title { font-size: 17px; font-weight: 600; }
.tseq .plot { fill: #fff; stroke: #6b7280; }
.tseq .grid { stroke: #e5e7eb; }
.tseq .data line { stroke: #1d4ed8; stroke-width: 1.5; }
.tseq .data circle, .tseq .dot { fill: #1d4ed8; }
.tseq .data.retransmission line { stroke: #dc2626; }
.tseq .data.retransmission circle, .tseq .dot.again { fill: #dc2626; }
.tseq path.ack, .tseq line.ack { fill: none; stroke: #15803d; stroke-width: 2; }
.tseq path.win, .tseq line.win { fill: none; stroke: #a16207; stroke-width: 1.5; stroke-dasharray: 6 4; }
.tseq .legend text { font-size: 13px; }
"""


def tseq_svg(series: Series) -> str:
    """One direction's time-sequence graph as an inline <svg class="tseq">."""
    points = [t for t, *_ in series.data] + [t for t, _ in series.acks]
    t_end = max(points, default=0.0)
    top = max([series.bytes_sent] + [v for _, v in series.acks])
    top = max(top, min(max((v for _, v in series.window), default=0), top * 1.5))
    f = _Frame(t_end * 1.02, top * 1.05)
    window = [(t, min(v, f.seq_max)) for t, v in series.window]
    return (f'<svg class="tseq" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
            f'height="{HEIGHT}" role="img" aria-label="{escape(series.title)}"><style>{STYLE}</style>'
            f'<text class="title" x="{LEFT}" y="{TOP - 14}">{escape(series.title)}</text>{_axes(f)}'
            f'{_steps(window, f, f.t_max, "win")}{_steps(series.acks, f, f.t_max, "ack")}'
            f'{_data(series, f)}{_legend()}</svg>')
