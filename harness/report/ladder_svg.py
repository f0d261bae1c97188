"""The ladder diagram as a standalone SVG element (harness.report.ladder's geometry, drawn).

Why plain string building: the report must work offline from a file:// URL and the ladder must
export on its own to a .svg (and rasterise to PNG), so everything is inline: presentation
attributes, no external fonts or stylesheets. The element ids and data-* attributes are the DOM
contract the page's highlighting and the integration test rely on (see the issue-16 contract)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from harness.report.ladder import (BAND_W, MARGIN_LEFT, MARGIN_RIGHT, ROW_H, STYLE_COLOURS, Arrow, Band, Bracket,
                                   Break, Edge, IcmpArrow, Ladder, Lane, TimerMark, layout)
from harness.report.run_data import RunData

FONT = "DejaVu Sans, Arial, Helvetica, sans-serif"
STATE_FILLS = {"LISTEN": "#e8e8e8", "SYN-SENT": "#fff2b3", "SYN-RECV": "#fff2b3", "ESTAB": "#d5f0d0",
               "FIN-WAIT-1": "#d6e6f7", "FIN-WAIT-2": "#d6e6f7", "CLOSE-WAIT": "#d6e6f7", "CLOSING": "#d6e6f7",
               "LAST-ACK": "#d6e6f7", "TIME-WAIT": "#e9dcf5", "CLOSED": "#f4f4f4"}


@dataclass
class LadderPicture:
    """The ladder as an <svg class="ladder"> element, and for each expectation the ids it judged."""
    svg: str
    marks: list[list[str]]


def _attrs(**attrs) -> str:
    """Attributes, escaped; a trailing underscore is dropped (class_), other underscores become dashes."""
    out = []
    for key, value in attrs.items():
        if value is None:
            continue
        name = key.rstrip("_").replace("_", "-")
        out.append(f"{name}={quoteattr(_num(value) if isinstance(value, float) else str(value))}")
    return " ".join(out)


def _num(v: float) -> str:
    return f"{v:.2f}".rstrip("0").rstrip(".")


def _el(tag: str, text: str | None = None, **attrs) -> str:
    if text is None:
        return f"<{tag} {_attrs(**attrs)}/>"
    return f"<{tag} {_attrs(**attrs)}>{escape(text)}</{tag}>"


def _title(text: str) -> str:
    return f"<title>{escape(text)}</title>"


def _points(points) -> str:
    return " ".join(f"{_num(x)},{_num(y)}" for x, y in points)


# ---- pieces ------------------------------------------------------------------------------------

def _head(a: tuple[float, float], b: tuple[float, float], colour: str) -> str:
    """A filled arrowhead at b, pointing from a."""
    angle = math.atan2(b[1] - a[1], b[0] - a[0])
    back = [(b[0] - 10 * math.cos(angle) + s * 4 * math.sin(angle), b[1] - 10 * math.sin(angle) - s * 4 * math.cos(angle))
            for s in (1, -1)]
    return _el("polygon", points=_points([b] + back), fill=colour)


def _cross(x: float, y: float) -> str:
    red = STYLE_COLOURS["dropped"]
    return (_el("line", x1=x - 7, y1=y - 7, x2=x + 7, y2=y + 7, stroke=red, stroke_width=3) +
            _el("line", x1=x - 7, y1=y + 7, x2=x + 7, y2=y - 7, stroke=red, stroke_width=3))


def _arrow(a: Arrow) -> str:
    j = a.journey
    seen = " ".join(f"{stem}:{t:.6f}" for stem, t in j.seen)
    parts = [_title(a.title),
             _el("polyline", points=_points(a.points), fill="none", stroke=a.colour, stroke_width=1.6,
                 stroke_dasharray="7 4" if j.retransmission else None)]
    if a.park:
        x, y0, y1 = a.park
        parts.append(_el("line", x1=x, y1=y0, x2=x, y2=y1, stroke=STYLE_COLOURS["held"], stroke_width=6,
                         stroke_linecap="round", opacity=0.85))
        parts.append(_el("text", f"held {j.held_s:.3f} s", x=x + 8, y=(y0 + y1) / 2, fill="#b35900", font_size=12))
    if a.head and len(a.points) > 1:
        parts.append(_head(a.points[-2], a.points[-1], a.colour))
    if a.cross:
        parts.append(_cross(*a.cross))
    if j.fate == "injected" and a.points:
        parts.append(_el("circle", cx=a.points[0][0], cy=a.points[0][1], r=4, fill=a.colour))
    if a.label_at:
        x, y, angle = a.label_at
        parts.append(_el("text", a.label, x=x, y=y - 4, text_anchor="middle", fill=a.colour, font_size=12,
                         transform=f"rotate({_num(angle)} {_num(x)} {_num(y)})", stroke="#ffffff",
                         stroke_width=3, paint_order="stroke"))
    attrs = _attrs(class_=" ".join(a.classes), id=j.id, data_sender=j.sender, data_receiver=j.receiver,
                   data_flags=j.segment.flags, data_seen=seen)
    return f"<g {attrs}>" + "".join(parts) + "</g>"


def _icmp(a: IcmpArrow) -> str:
    """An ICMP error: dotted, from the router's lane (a dot where it left) to the host's."""
    m, colour = a.message, STYLE_COLOURS["icmp"]
    (x0, y0), (x1, y1) = a.points
    parts = [_title(a.title), _el("line", x1=x0, y1=y0, x2=x1, y2=y1, stroke=colour, stroke_width=1.6,
                                  stroke_dasharray="2 3"),
             _el("circle", cx=x0, cy=y0, r=3.5, fill="#ffffff", stroke=colour, stroke_width=1.5)]
    if a.head:
        parts.append(_head(a.points[0], a.points[1], colour))
    if a.label_at:
        x, y, angle = a.label_at
        parts.append(_el("text", a.label, x=x, y=y - 4, text_anchor="middle", fill="#8a6500", font_size=11,
                         transform=f"rotate({_num(angle)} {_num(x)} {_num(y)})", stroke="#ffffff", stroke_width=3,
                         paint_order="stroke"))
    seen = " ".join(f"{stem}:{t:.6f}" for stem, t in m.seen)
    attrs = _attrs(class_="icmp", id=m.id, data_origin=m.origin, data_receiver=m.receiver, data_kind=m.kind,
                   data_seen=seen)
    return f"<g {attrs}>" + "".join(parts) + "</g>"


def _band(b: Band) -> str:
    height = max(b.y1 - b.y0, 0.0)
    out = [f"<rect {_attrs(class_='band', id=b.id, data_node=b.node, data_socket=b.socket, data_state=b.state, data_start=f'{b.start:.6f}', data_end=f'{b.end:.6f}', x=b.x, y=b.y0, width=float(BAND_W - 4), height=height, fill=STATE_FILLS.get(b.state, '#eeeeee'), stroke='#9a9a9a', stroke_width=0.6)}>"
           + _title(b.title) + "</rect>"]
    if height >= 15:
        out.append(_el("text", b.state, x=b.x + 4, y=b.y0 + 13, font_size=12, fill="#222222"))
    return "".join(out)


def _edge(e: Edge) -> str:
    label = _el("text", e.label, x=e.x0 + 4, y=e.y + 25, font_size=10, fill="#555555") if e.room >= 28 else ""
    return (_el("line", class_="band-edge", data_socket=e.socket, data_state=e.state, data_t=f"{e.t:.6f}",
                x1=e.x0, y1=e.y, x2=e.x1 - 4, y2=e.y, stroke="#333333", stroke_width=1.4)
            + label)


def _timer(m: TimerMark) -> str:
    x, y = m.x - 12, m.y
    return (f"<g {_attrs(class_='timer', data_socket=m.socket, data_kind=m.kind, data_t=f'{m.t:.6f}')}>"
            + _title(m.title)
            + _el("line", x1=m.x - BAND_W + 4, y1=y, x2=m.x - 4, y2=y, stroke="#7a3db8", stroke_width=1,
                  stroke_dasharray="2 2")
            + _el("circle", cx=x, cy=y, r=5, fill="#ffffff", stroke="#7a3db8", stroke_width=1.5)
            + _el("line", x1=x, y1=y, x2=x, y2=y - 3.5, stroke="#7a3db8", stroke_width=1.2)
            + _el("line", x1=x, y1=y, x2=x + 3, y2=y, stroke="#7a3db8", stroke_width=1.2)
            + (_el("text", m.note, x=m.x - BAND_W + 4, y=y - 8, font_size=10, fill="#7a3db8") if m.note else "") + "</g>")


def _zigzag(y: float, width: float) -> str:
    xs = range(int(MARGIN_LEFT - 60), int(width - MARGIN_RIGHT + 10), 10)
    return _el("polyline", points=_points((x, y + (4 if n % 2 else -4)) for n, x in enumerate(xs)),
               fill="none", stroke="#888888", stroke_width=1.2)


def _break_gap(b: Break, width: float) -> str:
    """The white gap a break cuts into the lanes (drawn under the bands, which go on through it)."""
    return _el("rect", x=0.0, y=b.y0 + 6, width=width, height=max(b.y1 - b.y0 - 12, 1.0), fill="#ffffff")


def _break(b: Break, width: float) -> str:
    return (f"<g {_attrs(class_='break', data_from=f'{b.t_from:.6f}', data_to=f'{b.t_to:.6f}')}>"
            + _zigzag(b.y0 + 8, width) + _zigzag(b.y1 - 8, width)
            + _el("text", b.label, x=width / 2, y=(b.y0 + b.y1) / 2 + 4, text_anchor="middle", font_size=12,
                  font_style="italic", fill="#555555", stroke="#ffffff", stroke_width=4, paint_order="stroke") + "</g>")


def _bracket(b: Bracket) -> str:
    colour = "#2a7a2a" if b.passed else "#c62828"
    left = b.side < 0
    tick = 6 if left else -6
    path = f"M {_num(b.x + tick)} {_num(b.y0)} H {_num(b.x)} V {_num(b.y1)} H {_num(b.x + tick)}"
    mid = (b.y0 + b.y1) / 2
    return (f"<g {_attrs(class_='bracket', id=b.id, data_verdict=b.verdict)}>" + _title(b.title)
            + _el("path", d=path, fill="none", stroke=colour, stroke_width=2)
            + _el("text", b.label, x=b.x - 4 if left else b.x + 4, y=mid + 4, text_anchor="end" if left else "start",
                  font_size=11, fill=colour, stroke="#ffffff", stroke_width=3, paint_order="stroke") + "</g>")


def _lane(lane: Lane, top: float, bottom: float) -> str:
    network = lane.kind != "host"          # a switch's or router's lane: dashed, its kind in its name
    out = [_el("line", class_="lane", data_node=lane.name, data_kind=lane.kind, x1=lane.x, y1=top - 6, x2=lane.x,
               y2=bottom, stroke="#8a8a8a" if network else "#333333", stroke_width=1.5 if network else 2.5,
               stroke_dasharray=("5 4" if lane.kind == "switch" else "9 3 2 3") if network else None),
           _el("text", lane.name + (f" ({lane.kind})" if network else ""), x=lane.x, y=top - 22, text_anchor="middle",
               font_size=13, font_weight="bold", fill="#222222")]
    for column, x in zip(lane.columns, lane.column_x):
        out.append(_el("text", column, x=x + (BAND_W - 4) / 2, y=top - 6, text_anchor="middle", font_size=10,
                       fill="#555555"))
    return "".join(out)


def _legend(ladder: Ladder) -> str:
    out, x, y = [], float(MARGIN_LEFT), 8 + ROW_H / 2
    for kind, value, text in ladder.legend:
        w = 40 + 7 * len(text)
        if x + w > ladder.width - MARGIN_RIGHT:
            x, y = float(MARGIN_LEFT), y + ROW_H
        colour = value if kind == "connection" else ("#444444" if value == "retransmission" else STYLE_COLOURS[value])
        out.append(_el("line", x1=x, y1=y, x2=x + 26, y2=y, stroke=colour, stroke_width=6 if value == "held" else 2,
                       stroke_dasharray={"retransmission": "7 4", "icmp": "2 3"}.get(value)))
        out.append(_el("text", text, x=x + 32, y=y + 4, font_size=12, fill="#222222"))
        x += w
    return "<g class=\"legend\">" + "".join(out) + "</g>"


def _ticks(ladder: Ladder) -> str:
    out = []
    for y, text in ladder.ticks:
        out.append(_el("line", x1=MARGIN_LEFT - 6, y1=y, x2=ladder.width - MARGIN_RIGHT, y2=y, stroke="#f0f0f0",
                       stroke_width=1))
        out.append(_el("text", text, x=MARGIN_LEFT - 8, y=y + 4, text_anchor="end", font_size=11, fill="#555555"))
    return "<g class=\"ticks\">" + "".join(out) + "</g>"


def render(ladder: Ladder) -> str:
    """The SVG text of a laid-out ladder."""
    w, h = ladder.width, ladder.height
    body = [_el("rect", x=0.0, y=0.0, width=w, height=h, fill="#ffffff"), _ticks(ladder), _legend(ladder)]
    body += [_lane(lane, ladder.top, ladder.axis.bottom + 10) for lane in ladder.lanes]
    body += [_break_gap(b, w) for b in ladder.breaks]
    body += [_band(b) for b in ladder.bands] + [_edge(e) for e in ladder.edges]
    body += [_break(b, w) for b in ladder.breaks]
    body += [_timer(m) for m in ladder.timers]
    body += [_bracket(b) for b in ladder.brackets]
    body += [_arrow(a) for a in ladder.arrows]
    body += [_icmp(a) for a in ladder.icmp]
    return (f"<svg {_attrs(xmlns='http://www.w3.org/2000/svg', class_='ladder', id='ladder', width=_num(w), height=_num(h), viewBox=f'0 0 {_num(w)} {_num(h)}', font_family=FONT, font_size=12)}>"
            + "".join(body) + "</svg>")


def ladder_svg(run: RunData) -> LadderPicture:
    """The run's ladder diagram, and for expectation i the ids of the elements it judged."""
    ladder = layout(run)
    return LadderPicture(render(ladder), ladder.marks)
