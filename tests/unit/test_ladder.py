"""The ladder diagram drawn from recorded runs (tests/fixtures/report/<experiment>: real runs on
the VM, run.log and counters left out): every captured segment is one journey and one arrow,
arrows start and end on the right lanes at the right times, the held SYN parks at the switch,
TIME-WAIT's minute is squeezed, connections get their own colours, each state change an edge.

Expected values come from the fixture's own pcaps and result.json, not from hard-coded times,
so the fixtures can be recorded again."""
from __future__ import annotations

import json
import shutil
import struct
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from harness.analyse.journeys import mark_retransmissions, journeys
from harness.report.ladder import BREAK_H, layout
from harness.report.ladder_svg import ladder_svg
from harness.report.run_data import load_run, state_columns

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "report"
RUNS = ["stale_syn", "teardown", "simultaneous_close", "two_clients", "duplicate_syn", "steps_at_routers",
        "asymmetric_handshake", "ttl_exceeded"]
DELIVERING = [name for name in RUNS if name != "ttl_exceeded"]      # its one segment dies at r1
SVG = "{http://www.w3.org/2000/svg}"


def _run(name: str):
    return load_run(FIXTURES / name)


def _svg(run) -> ET.Element:
    return ET.fromstring(ladder_svg(run).svg)


def _with_class(root: ET.Element, tag: str, cls: str) -> list[ET.Element]:
    return [e for e in root.iter(SVG + tag) if cls in (e.get("class") or "").split()]


def _captured(run) -> Counter:
    """Every segment of every pcap, as data-seen names it."""
    return Counter(f"{stem}:{seg.t:.6f}" for stem, segs in run.captures.items() for seg in segs)


def _points(element: ET.Element) -> list[tuple[float, float]]:
    return [tuple(float(v) for v in p.split(",")) for p in element.get("points").split()]


@pytest.mark.parametrize("name", RUNS)
def test_every_captured_segment_is_in_exactly_one_journey(name):
    run = _run(name)
    seen = Counter(f"{stem}:{t:.6f}" for j in run.journeys for stem, t in j.seen)
    assert sum(len(s) for s in run.captures.values()) > 0
    assert seen == _captured(run)
    assert len({j.id for j in run.journeys}) == len(run.journeys)


@pytest.mark.parametrize("name", RUNS)
def test_every_captured_segment_is_in_exactly_one_seg_element(name):
    run = _run(name)
    text = ladder_svg(run).svg
    assert text.startswith('<svg xmlns="http://www.w3.org/2000/svg"') and text.count("://") == 1   # no URL but its namespace
    root = ET.fromstring(text)
    assert root.tag == SVG + "svg" and root.get("id") == "ladder" and "ladder" in root.get("class").split()
    segs = _with_class(root, "g", "seg")
    assert len(segs) == len(run.journeys)
    assert Counter(tok for g in segs for tok in g.get("data-seen").split()) == _captured(run)
    for g in segs:
        assert g.get("id").startswith("seg-") and g.find(SVG + "title") is not None
        assert g.get("data-sender") in run.lab["hosts"] and g.get("data-receiver") in run.lab["hosts"]


def _lane_x(root: ET.Element) -> dict[str, float]:
    return {e.get("data-node"): float(e.get("x1")) for e in _with_class(root, "line", "lane")}


@pytest.mark.parametrize("name", DELIVERING)
def test_arrows_start_at_the_kernel_send_and_end_at_the_arrival_on_their_lanes(name):
    run = _run(name)
    ladder = layout(run)
    root = _svg(run)
    lanes = _lane_x(root)
    by_id = {g.get("id"): g for g in _with_class(root, "g", "seg")}
    checked = 0
    for j in run.journeys:
        if j.fate != "delivered" or j.duplicate:
            continue
        kernel = dict(j.seen).get(f"{j.sender}.kernel")
        assert kernel is not None and j.sent == kernel       # every fixture has kernel captures
        assert j.arrived == dict(j.seen)[run.lab["hosts"][j.receiver]["interface"]]
        points = _points(by_id[j.id].find(SVG + "polyline"))
        assert points[0] == pytest.approx((lanes[j.sender], ladder.axis.y(j.sent)), abs=0.01)
        assert points[-1] == pytest.approx((lanes[j.receiver], ladder.axis.y(j.arrived)), abs=0.01)
        checked += 1
    assert checked >= 3


def test_the_axis_runs_down_and_keeps_real_scale_outside_breaks():
    ladder = layout(_run("teardown"))
    pieces = ladder.axis.pieces
    assert all(a[1] == b[0] and a[3] == b[2] for a, b in zip(pieces, pieces[1:]))
    broken = {(b.t_from, b.t_to) for b in ladder.breaks}
    scales = [(y1 - y0) / (t1 - t0) for t0, t1, y0, y1 in pieces if (t0, t1) not in broken and t1 > t0]
    assert scales and min(scales) > 0 and max(scales) == pytest.approx(min(scales), rel=1e-6)


def test_the_held_syn_parks_at_the_switch_for_the_hold():
    run = _run("stale_syn")
    step = run.lab["network_steps"][0]
    check = run.result["network"][0]
    held_for = check["segments"][0]["held_s"]
    ladder = layout(run)
    held = [a for a in ladder.arrows if "held" in a.classes]
    assert len(held) == 1
    arrow = held[0]
    j = arrow.journey
    assert j.segment.flags == "S" and j.held_s == pytest.approx(held_for)
    assert dict(j.seen)[step["egress"]] == pytest.approx(check["segments"][0]["left"][0], abs=1e-6)
    lane = next(lane for lane in ladder.lanes if lane.name == step["switch"])
    x, y0, y1 = arrow.park
    assert x == lane.x
    assert y0 == pytest.approx(ladder.axis.y(j.switch_in))
    assert y1 == pytest.approx(ladder.axis.y(j.switch_out - j.egress_delay_s))
    # to real scale: nothing squeezed while the SYN waits in the switch
    assert not [b for b in ladder.breaks if b.t_from < j.switch_out and b.t_to > j.switch_in]
    t0, t1, p0, p1 = ladder.axis.pieces[0]
    assert (y1 - y0) == pytest.approx(held_for * (p1 - p0) / (t1 - t0), rel=0.01)
    # its retransmission is the dashed one and went straight through
    again = [a for a in ladder.arrows if "retransmission" in a.classes]
    assert [a.journey.segment.flags for a in again] == ["S"] and again[0].park is None
    root = _svg(run)
    g = next(g for g in _with_class(root, "g", "held"))
    assert "S" == g.get("data-flags") and g.get("data-sender") == step["sender"]


def test_a_dropped_segment_ends_in_a_cross_at_the_switch():
    """The last S of stale_syn with its sightings past the switch taken out: dropped there."""
    run = _run("stale_syn")
    step = run.lab["network_steps"][0]
    last_syn = max(j.sent for j in run.journeys if j.segment.flags == "S")
    victim = next(j for j in run.journeys if j.sent == last_syn)
    after = {step["egress"], run.lab["hosts"][step["receiver"]]["interface"]}
    gone = {(stem, t) for stem, t in victim.seen if stem in after}
    captures = {stem: [s for s in segs if (stem, s.t) not in gone] for stem, segs in run.captures.items()}
    cut = replace(run, captures=captures)
    cut.__dict__.pop("journeys", None)
    dropped = [j for j in journeys(captures, run.lab, run.result["network"]) if j.fate == "dropped"]
    assert len(dropped) == 1 and dropped[0].segment.flags == "S"
    ladder = layout(cut)
    arrow = next(a for a in ladder.arrows if "dropped" in a.classes)
    lane = next(lane for lane in ladder.lanes if lane.name == step["switch"])
    assert arrow.cross == pytest.approx((lane.x, ladder.axis.y(dropped[0].switch_in)))
    assert not arrow.head


def test_a_segment_first_seen_at_the_switch_is_injected_there():
    """The client's last RST with its sightings before the switch taken out: it starts at the switch."""
    run = _run("stale_syn")
    step = run.lab["network_steps"][0]
    rst = next(j for j in reversed(run.journeys) if j.segment.flags == "R")
    before = {f"{step['sender']}.kernel", run.lab["hosts"][step["sender"]]["interface"], step["ingress"]}
    gone = {(stem, t) for stem, t in rst.seen if stem in before}
    captures = {stem: [s for s in segs if (stem, s.t) not in gone] for stem, segs in run.captures.items()}
    found = journeys(captures, run.lab, run.result["network"])
    injected = [j for j in found if j.fate == "injected"]
    assert len(injected) == 1 and injected[0].segment.flags == "R"
    assert injected[0].sent == pytest.approx(dict(injected[0].seen)[step["egress"]] - injected[0].egress_delay_s)
    cut = replace(run, captures=captures)
    cut.__dict__.pop("journeys", None)
    ladder = layout(cut)
    arrow = next(a for a in ladder.arrows if "injected" in a.classes)
    lane = next(lane for lane in ladder.lanes if lane.name == step["switch"])
    assert arrow.points[0][0] == lane.x and not arrow.journey.retransmission


def test_the_duplicated_syn_is_one_send_and_one_extra_copy():
    run = _run("duplicate_syn")
    check = run.result["network"][0]
    copies = [j for j in run.journeys if j.segment.seq == check["segments"][0]["seq"] and "S" == j.segment.flags]
    assert len(copies) == 2 and [j.duplicate for j in copies].count(True) == 1
    extra = next(j for j in copies if j.duplicate)
    original = next(j for j in copies if not j.duplicate)
    assert extra.sent == original.sent and not extra.retransmission
    assert sorted(t for stem, t in extra.seen + original.seen if stem == run.lab["network_steps"][0]["egress"]) \
        == pytest.approx(sorted(check["segments"][0]["left"]), abs=1e-6)
    root = _svg(run)
    assert len(_with_class(root, "g", "duplicate")) == 1


def test_time_wait_minute_is_squeezed_into_a_break():
    run = _run("teardown")
    client = next(v for v in run.result["observation"]["sockets"].values() if v["kind"] == "connect")
    tw = next(s for s in client["states"] if s["state"] == "TIME-WAIT")
    ladder = layout(run)
    root = _svg(run)
    breaks = _with_class(root, "g", "break")
    long = [b for b in breaks if float(b.get("data-to")) - float(b.get("data-from")) > 50]
    assert len(long) == 1
    assert float(long[0].get("data-from")) >= tw["first_seen"] and float(long[0].get("data-to")) <= tw["timer_due"]
    label = "".join(long[0].itertext())
    assert "s idle" in label
    assert float(root.get("height")) == pytest.approx(ladder.height, abs=0.01)
    t0, t1, y0, y1 = ladder.axis.pieces[0]
    assert ladder.height < 0.1 * 60 * (y1 - y0) / (t1 - t0)       # a tenth of the minute at real scale
    assert ladder.height < 1800
    spent = ladder.axis.y(float(long[0].get("data-to"))) - ladder.axis.y(float(long[0].get("data-from")))
    assert spent == pytest.approx(BREAK_H, abs=0.01)
    timers = [t for t in _with_class(root, "g", "timer") if t.get("data-kind") == "time-wait"]
    assert [float(t.get("data-t")) for t in timers] == pytest.approx([tw["timer_due"]], abs=1e-6)


def test_two_connections_get_two_colours_and_legend_entries():
    run = _run("two_clients")
    ladder = layout(run)
    colours: dict[frozenset, set[str]] = {}
    for a in ladder.arrows:
        s = a.journey.segment
        colours.setdefault(frozenset({(s.src, s.sport), (s.dst, s.dport)}), set()).add(a.colour)
    assert len(colours) == 2
    assert all(len(c) == 1 for c in colours.values())
    assert len(set.union(*colours.values())) == 2
    entries = [text for kind, _, text in ladder.legend if kind == "connection"]
    assert len(entries) == 2
    connects = [n for n, v in run.result["observation"]["sockets"].items() if v["kind"] == "connect"]
    assert sorted(e.split(" ⇄ ")[0] for e in entries) == sorted(connects)


@pytest.mark.parametrize("name", RUNS)
def test_one_band_per_state_span_and_one_edge_per_state_change(name):
    run = _run(name)
    root = _svg(run)
    columns = state_columns(run.result)
    bands = _with_class(root, "rect", "band")
    assert Counter(b.get("data-socket") for b in bands) == Counter({c: len(s) for c, s in columns.items() if s})
    edges = Counter((e.get("data-socket"), e.get("data-state"), e.get("data-t")) for e in _with_class(root, "line", "band-edge"))
    changes = Counter((c, s["state"], f"{s['first_seen']:.6f}") for c, spans in columns.items()
                      for n, s in enumerate(spans) if n or s.get("sample_before") is not None)
    assert edges == changes and changes


def test_stale_syns_request_shows_beside_the_server():
    """The stale SYN's request socket is no named socket: the server's own account shows it."""
    run = _run("stale_syn")
    root = _svg(run)
    host_bands = [b.get("data-state") for b in _with_class(root, "rect", "band") if b.get("data-socket") == "server"]
    assert host_bands == ["SYN-RECV", "CLOSED"]


def test_marks_name_bands_brackets_and_segments():
    run = _run("stale_syn")
    held = next(j for j in run.journeys if j.held_s > 0)
    t_in = dict(held.seen)[run.lab["network_steps"][0]["ingress"]]
    expectations = [dict(e, marks=None) for e in run.result["expectations"]]
    expectations[4]["marks"] = {"subjects": ["client"], "interval": [held.sent, held.arrived],
                                "segments": [[held.segment.src, held.segment.sport, t_in]]}
    run = replace(run, result=dict(run.result, expectations=expectations))
    picture = ladder_svg(run)
    root = ET.fromstring(picture.svg)
    assert len(picture.marks) == len(expectations)
    assert all(m == [] for n, m in enumerate(picture.marks) if n != 4)
    client_bands = {b.get("id") for b in _with_class(root, "rect", "band") if b.get("data-node") == "client"}
    brackets = _with_class(root, "g", "bracket")
    assert len(brackets) == 1 and brackets[0].get("data-verdict") == "4"
    assert set(picture.marks[4]) == client_bands | {brackets[0].get("id"), held.id}
    ids = {e.get("id") for e in root.iter() if e.get("id")}
    assert set(picture.marks[4]) <= ids


@pytest.mark.parametrize("name", RUNS)
def test_each_verdicts_marks_name_what_it_judged(name):
    """From the run's own result.json: a verdict's subjects are their bands, its interval one
    bracket, each segment it matched the one arrow that capture time belongs to."""
    run = _run(name)
    picture = ladder_svg(run)
    root = ET.fromstring(picture.svg)
    bands = _with_class(root, "rect", "band")
    segs = _with_class(root, "g", "seg")
    sockets = run.result["observation"]["sockets"]
    hosts = {h["ip"]: n for n, h in run.lab["hosts"].items()}
    marked = 0
    for i, e in enumerate(run.result["expectations"]):
        m = e.get("marks") or {}
        names = {s for s in m.get("subjects") or []}
        names |= {n for n, v in sockets.items() if names & set(v.get("aliases") or [])}
        want = {b.get("id") for b in bands if b.get("data-socket") in names or b.get("data-node") in names}
        brackets = [b for b in _with_class(root, "g", "bracket") if b.get("data-verdict") == str(i)]
        assert len(brackets) == (1 if m.get("interval") else 0)
        want |= {b.get("id") for b in brackets}
        for src, sport, t in m.get("segments") or []:
            hit = [g for g in segs if g.get("data-sender") == hosts[src]
                   and any(abs(float(tok.rsplit(":", 1)[1]) - t) <= 1e-6 for tok in g.get("data-seen").split())]
            assert len(hit) >= 1
            want |= {g.get("id") for g in hit}
        assert set(picture.marks[i]) == want
        marked += bool(want)
    assert len(picture.marks) == len(run.result["expectations"])
    assert marked or not any(e.get("marks") for e in run.result["expectations"])


def test_labels_number_seq_and_ack_from_each_sides_isn():
    run = _run("teardown")
    ladder = layout(run)
    labels = [a.label for a in ladder.arrows]
    assert labels[:3] == ["S seq=0 len=0", "SA seq=0 ack=1 len=0", "A seq=1 ack=1 len=0"]
    assert any(label.startswith("PA seq=1 ack=1 len=") for label in labels)


def test_a_folder_without_result_json_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no result.json"):
        load_run(tmp_path)


def test_a_run_recorded_before_the_lab_section_still_draws_every_segment(tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(FIXTURES / "stale_syn", folder)
    result = json.loads((folder / "result.json").read_text())
    del result["lab"]
    (folder / "result.json").write_text(json.dumps(result))
    run = load_run(folder)
    assert run.lab["switches"] == ["s1"] and len(run.lab["links"]) == 2
    assert Counter(f"{stem}:{t:.6f}" for j in run.journeys for stem, t in j.seen) == _captured(run)
    assert all(j.fate == "delivered" for j in run.journeys)


def test_without_timestamps_the_held_syn_still_pairs_by_the_link_delay():
    """Both SYNs are then the same bytes: the copy leaving the switch 3 s late is the first one's,
    because the retransmission's copy left it one link delay after it came in."""
    run = _run("stale_syn")
    captures = {stem: [replace(s, tsval=None, tsecr=None) for s in segs] for stem, segs in run.captures.items()}
    found = journeys(captures, run.lab, run.result["network"])
    check = run.result["network"][0]["segments"][0]
    syns = sorted((j for j in found if j.segment.flags == "S"), key=lambda j: j.sent)
    assert len(syns) == 2 and not syns[0].retransmission and syns[1].retransmission
    assert syns[0].switch_in == pytest.approx(check["arrived"], abs=1e-6)
    assert syns[0].switch_out == pytest.approx(check["left"][0], abs=1e-6)
    assert syns[0].held_s == pytest.approx(check["held_s"]) and syns[1].held_s == 0
    assert syns[1].switch_out - syns[1].switch_in == pytest.approx(syns[1].egress_delay_s, abs=0.002)


def test_a_capture_cut_short_gives_the_segments_before_the_cut(tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(FIXTURES / "teardown", folder)
    pcap = folder / "pcap" / "s1-eth2.pcap"
    whole = len(load_run(folder).captures["s1-eth2"])
    empty_record = struct.pack("<IIII", 1, 0, 0, 0)       # a record with no bytes: no Ethernet header to read
    pcap.write_bytes(pcap.read_bytes() + empty_record)
    run = load_run(folder)
    assert len(run.captures["s1-eth2"]) == whole
    assert run.problems and "s1-eth2.pcap" in run.problems[0]
    root = _svg(run)
    assert Counter(tok for g in _with_class(root, "g", "seg") for tok in g.get("data-seen").split()) == _captured(run)


def test_data_sent_again_with_a_fin_is_a_retransmission():
    """Repacketised: data then FIN went alone, later both in one segment (seq/flags/len differ)."""
    run = _run("teardown")
    found = run.journeys
    data = next(j for j in found if j.segment.length > 0)
    fin = next(j for j in found if "F" in j.segment.flags and j.sender == data.sender)
    both = replace(data, id="", segment=replace(data.segment, flags="FPA"), sent=fin.sent + 1.0,
                   seen=(), retransmission=False)
    again = mark_retransmissions(sorted(found + [both], key=lambda j: j.sent))
    assert [j.retransmission for j in again if j.sent == both.sent] == [True]
    assert not any(j.retransmission for j in again if j.sent != both.sent)


def test_a_timer_due_after_the_run_ended_sits_at_its_bands_end_and_says_when():
    """two_clients ends ~2 s in, with both clients in TIME-WAIT: their timers are due a minute
    later. The axis must end with the run (not run on to a due time nothing reached), and the mark
    must say when it was due."""
    run = _run("two_clients")
    ladder = layout(run)
    last_sample = max(s["last_seen"] for v in run.result["observation"]["sockets"].values() for s in v["states"])
    assert ladder.axis.pieces[-1][1] < last_sample
    root = _svg(run)
    timers = [t for t in _with_class(root, "g", "timer") if t.get("data-kind") == "time-wait"]
    assert len(timers) == 2 and not _with_class(root, "g", "break")
    for mark in timers:
        assert "due +60." in "".join(mark.itertext())


def test_without_link_delays_the_handshake_is_not_drawn_flat():
    """A local run on links with no delay: gaps of tens of µs, with 0.5 s waits between steps.
    Those waits are squeezed, so the exchange gets height enough to read."""
    from harness.report.ladder import IDLE_FLOOR_NO_DELAY_S, build_axis
    t = [0.0, 0.00005, 0.0001, 0.00015, 0.5, 0.50005, 0.5001, 1.0, 1.00005]
    flat, _ = build_axis(t, 0.0)                       # the 1 s floor of delayed links: drawn flat
    assert flat.y(0.00015) - flat.y(0.0) < 5
    axis, breaks = build_axis(t, 0.0, floor_s=IDLE_FLOOR_NO_DELAY_S)
    assert len(breaks) == 2
    assert axis.y(0.00015) - axis.y(0.0) > 30          # the handshake's three segments, apart
    assert axis.bottom < 2000


# ---- routed runs: routers, routes, asymmetric paths ---------------------------------------------

def _ports(run, node: str) -> set[str]:
    """The captured ports of a switch or router, from the run's own lab."""
    return {link[f"{end}_interface"] for link in run.lab["links"] for end in "ab" if link[end] == node}


def _one_way(lab: dict, nodes: list[str]) -> float:
    """The configured delay along a list of nodes (each pair's link, in that direction)."""
    total = 0.0
    for frm, to in zip(nodes, nodes[1:]):
        link = next(k for k in lab["links"] if {k["a"], k["b"]} == {frm, to})
        total += link["a_to_b" if link["a"] == frm else "b_to_a"]["delay_s"]
    return total


def test_the_asymmetric_runs_segments_follow_the_routes_not_the_shortest_links():
    """client -> server via r1, server -> client via r2 (asymmetric.yaml's routes:): the SYN and the
    final ACK pass r1's ports only, the SYN+ACK r2's only, each taking its path's one-way delay."""
    run = _run("asymmetric_handshake")
    r1, r2 = _ports(run, "r1"), _ports(run, "r2")
    assert r1 and r2 and all(f"{p}" in run.captures for p in r1 | r2)
    by_flags = {j.segment.flags: j for j in run.journeys}
    assert sorted(by_flags) == ["A", "S", "SA"] and len(run.journeys) == 3
    forward = _one_way(run.lab, ["client", "s1", "r1", "s2", "server"])
    back = _one_way(run.lab, ["server", "s2", "r2", "s1", "client"])
    assert (forward, back) == pytest.approx((0.015, 0.065))
    for flags, via, not_via, delay in (("S", r1, r2, forward), ("A", r1, r2, forward), ("SA", r2, r1, back)):
        j = by_flags[flags]
        stems = [stem for stem, _ in j.seen]
        assert via <= set(stems) and not set(stems) & not_via, (flags, stems)
        assert j.fate == "delivered" and not j.retransmission
        assert j.sent == dict(j.seen)[f"{j.sender}.kernel"]
        assert j.arrived == dict(j.seen)[run.lab["hosts"][j.receiver]["interface"]]
        assert j.arrived - j.sent == pytest.approx(delay, abs=0.002)
        times = [t for _, t in j.seen]
        assert times == sorted(times) and len(stems) == 9       # kernel, host, 2 switch ports x2, 2 router ports, host


def test_a_segment_is_one_journey_though_each_router_lowers_its_ttl():
    run = _run("asymmetric_handshake")
    syn = next(j for j in run.journeys if j.segment.flags == "S")
    at = {(stem, seg.t): seg for stem, segs in run.captures.items() for seg in segs}
    ttls = {stem: at[(stem, t)].ttl for stem, t in syn.seen}
    assert ttls["client-eth0"] == ttls["server-eth0"] + 1 == 64        # one router on the way


def _lab_ports(topology) -> dict[tuple[str, str], str]:
    """(node, neighbour) -> a port name, as the lab numbers them (node-eth0, -eth1 ... in link order)."""
    ports: dict[tuple[str, str], str] = {}
    count: dict[str, int] = {}
    for link in topology.links:
        for node, peer in ((link.a, link.b), (link.b, link.a)):
            ports[(node, peer)] = f"{node}-eth{count.get(node, 0)}"
            count[node] = count.get(node, 0) + 1
    return ports


def _shipped_topologies() -> list[Path]:
    root = Path(__file__).resolve().parents[2]
    return sorted((root / "topologies").glob("*.yaml")) + [root / "tests" / "fixtures" / "routed_20.yaml"]


@pytest.mark.parametrize("file", _shipped_topologies(), ids=lambda p: p.stem)
def test_a_recorded_lab_gives_back_the_topologys_paths(file):
    """result.json's lab (topology_dict, as the runner records it) read back (lab_topology) takes
    every host to every other the way the loaded topology's routes do."""
    from harness.analyse.lab_topology import lab_topology
    from harness.load.topology import load_topology
    from harness.report.topology_draw import topology_dict
    topology = load_topology(file, existing=frozenset())
    again = lab_topology(json.loads(json.dumps(topology_dict(topology, ports=_lab_ports(topology)))))
    pairs = [(a, b) for a in topology.hosts for b in topology.hosts if a != b]
    assert pairs and all(again.path(a, b) == topology.path(a, b) != [] for a, b in pairs)


def test_in_a_loop_of_routers_the_hops_follow_the_cheaper_route(tmp_path):
    """r1 - r3 directly (cost 5) or through r2 (1 + 1): the routes go through r2, a breadth-first
    walk of the links would not."""
    from harness.analyse.journeys import path
    from harness.load.topology import load_topology
    from harness.report.topology_draw import topology_dict
    file = tmp_path / "loop.yaml"
    file.write_text("name: loop\nhosts: [client, server]\nrouters: [r1, r2, r3]\nlinks:\n"
                    "  - {a: client, b: r1}\n  - {a: r1, b: r3, cost: 5, delay: 1ms}\n"
                    "  - {a: r1, b: r2, delay: 2ms}\n  - {a: r2, b: r3, delay: 3ms}\n  - {a: r3, b: server}\n")
    topology = load_topology(file, existing=frozenset())
    ports = _lab_ports(topology)
    lab = topology_dict(topology, host_interfaces={h: f"{h}-eth0" for h in topology.hosts}, ports=ports)
    stems = set(ports.values()) | {"client.kernel"}
    hops = path(lab, "client", "server", stems)
    assert [h.stem for h in hops] == ["client.kernel", "client-eth0", "r1-eth0", "r1-eth2", "r2-eth0", "r2-eth1",
                                      "r3-eth1", "r3-eth2", "server-eth0"]
    assert [h.switch for h in hops] == [None, None, "r1", "r1", "r2", "r2", "r3", "r3", None]
    assert [h.ingress for h in hops if h.switch] == [True, False] * 3
    assert sum(h.delay_s for h in hops) == pytest.approx(0.005)


def test_network_steps_at_routers_are_drawn_on_the_routers_lanes():
    """steps_at_routers: hold and duplicate at r1 (client -> server), drop and inject at r2
    (server -> client). The held SYN parks on r1's lane for its hold, the dropped data ends in a
    cross on r2's, the extra copy of the ACK leaves from r1's, the injected RST from r2's."""
    run = _run("steps_at_routers")
    ladder = layout(run)
    lanes = {lane.name: lane for lane in ladder.lanes}
    assert [(lane.name, lane.kind) for lane in ladder.lanes] == [("client", "host"), ("r1", "router"),
                                                                 ("r2", "router"), ("server", "host")]
    checks = {c["action"]: c for c in run.result["network"]}
    steps = {s["action"]: s for s in run.lab["network_steps"]}
    y = ladder.axis.y
    held = [a for a in ladder.arrows if "held" in a.classes]
    assert len(held) == 1 and held[0].journey.segment.flags == "S" and held[0].journey.switch == "r1"
    j, hold = held[0].journey, checks["hold"]["segments"][0]
    assert j.held_s == pytest.approx(hold["held_s"]) and hold["held_s"] == pytest.approx(0.5, abs=0.01)
    assert j.switch_in == pytest.approx(hold["arrived"], abs=1e-6) and dict(j.seen)[steps["hold"]["ingress"]] == j.switch_in
    assert held[0].park == pytest.approx((lanes["r1"].x, y(j.switch_in), y(j.switch_out - j.egress_delay_s)))
    assert held[0].points[1:3] == [(lanes["r1"].x, held[0].park[1]), (lanes["r1"].x, held[0].park[2])]
    assert (j.switch_out - j.egress_delay_s) - j.switch_in == pytest.approx(0.5, abs=0.01)
    dropped = [a for a in ladder.arrows if "dropped" in a.classes]
    assert len(dropped) == 1 and dropped[0].journey.switch_in == pytest.approx(checks["drop"]["segments"][0]["arrived"], abs=1e-6)
    assert dropped[0].cross == pytest.approx((lanes["r2"].x, y(dropped[0].journey.switch_in))) and not dropped[0].head
    copy = [a for a in ladder.arrows if "duplicate" in a.classes]
    assert len(copy) == 1 and copy[0].points[0][0] == lanes["r1"].x
    assert copy[0].journey.switch_out == pytest.approx(checks["duplicate"]["segments"][0]["left"][1], abs=1e-6)
    injected = [a for a in ladder.arrows if "injected" in a.classes]
    sent = checks["inject"]["injected"][0]["sent"]
    assert len(injected) == 1 and injected[0].journey.segment.flags == "R" and injected[0].colour == "#2ca02c"
    assert injected[0].points[0] == pytest.approx((lanes["r2"].x, y(sent)), abs=0.5)
    assert injected[0].points[-1] == pytest.approx((lanes["client"].x, y(injected[0].journey.arrived)))
    assert injected[0].journey.sent == pytest.approx(sent, abs=0.001) and not injected[0].journey.retransmission
    texts = {text for kind, _, text in ladder.legend if kind == "style"}
    assert {"held at the router", "injected at the router"} <= texts


def test_lane_names_say_switch_or_router():
    names = {}
    for name in ("stale_syn", "steps_at_routers"):
        root = _svg(_run(name))
        names[name] = {e.text for e in root.iter(SVG + "text") if e.text and e.text.endswith(")")}
        kinds = {e.get("data-node"): e.get("data-kind") for e in _with_class(root, "line", "lane")}
        assert set(kinds.values()) == {"host", "switch" if name == "stale_syn" else "router"}
    assert "s1 (switch)" in names["stale_syn"]
    assert {"r1 (router)", "r2 (router)"} <= names["steps_at_routers"]
    assert not any("(switch)" in t for t in names["steps_at_routers"])


@pytest.mark.parametrize("name", ["stale_syn", "teardown", "two_clients"])
def test_a_flat_lab_recorded_without_routes_draws_as_before(name):
    """Runs recorded before labs had interfaces and routes: the path is the one through the switch."""
    run = _run(name)
    assert "routes" not in run.lab and "interfaces" not in run.lab
    found = {j.segment.flags for j in run.journeys}
    assert all(j.fate == "delivered" for j in run.journeys) and "S" in found
    assert all(len(j.seen) == 5 for j in run.journeys)        # kernel, host, two switch ports, host


def test_a_segment_a_router_dropped_by_itself_ends_on_that_routers_lane():
    """ttl_exceeded: the client's SYN leaves with TTL 1 and r1 drops it (no network step there):
    r1 gets a lane of its own and the SYN's cross sits on it when r1's port saw it."""
    run = _run("ttl_exceeded")
    assert run.lab["network_steps"] == [] and run.lab["routers"]
    syn = [j for j in run.journeys if j.segment.flags == "S"]
    assert len(syn) == 1 and syn[0].fate == "dropped" and syn[0].segment.ttl == 1
    stem, t = syn[0].seen[-1]
    assert stem in _ports(run, "r1") and syn[0].died_at == ("r1", t)
    ladder = layout(run)
    assert [(lane.name, lane.kind) for lane in ladder.lanes] == [("client", "host"), ("r1", "router"), ("server", "host")]
    arrow = next(a for a in ladder.arrows if a.journey is syn[0])
    r1 = next(lane for lane in ladder.lanes if lane.name == "r1")
    assert arrow.cross == pytest.approx((r1.x, ladder.axis.y(t))) and not arrow.head
    assert arrow.points[0] == pytest.approx((ladder.lanes[0].x, ladder.axis.y(syn[0].sent)))


def test_the_routers_icmp_answer_is_drawn_from_its_lane_to_the_sender():
    """ttl_exceeded: r1 answers the SYN it dropped with time exceeded; the arrow leaves r1's lane
    when the SYN reached it and ends on the client's lane when client-eth0 saw it; it quotes the SYN."""
    from harness.analyse.icmp_path import read_icmp_errors
    run = _run("ttl_exceeded")
    syn = next(j for j in run.journeys if j.segment.flags == "S")
    sightings = [s for p in sorted((run.run_dir / "pcap").glob("*.pcap")) for s in read_icmp_errors(p)]
    assert len(sightings) == 2 and len(run.icmp) == 1
    m = run.icmp[0]
    assert (m.origin, m.receiver, m.kind) == ("r1", "client", "time-exceeded")
    s = syn.segment
    assert m.about == (s.src, s.sport, s.dst, s.dport, s.seq)
    assert m.sent == pytest.approx(syn.died_at[1], abs=0.001)
    assert m.arrived == dict(m.seen)["client-eth0"] and m.arrived - m.sent == pytest.approx(0.010, abs=0.002)
    ladder = layout(run)
    lanes = {lane.name: lane.x for lane in ladder.lanes}
    assert len(ladder.icmp) == 1
    start, end = ladder.icmp[0].points
    assert start == pytest.approx((lanes["r1"], ladder.axis.y(m.sent)))
    assert end == pytest.approx((lanes["client"], ladder.axis.y(m.arrived)))
    root = _svg(run)
    drawn = _with_class(root, "g", "icmp")
    assert len(drawn) == 1 and drawn[0].get("data-kind") == "time-exceeded" and "seg" not in drawn[0].get("class")
    assert sorted(drawn[0].get("data-seen").split()) == sorted(f"{x.stem}:{x.t:.6f}" for x in sightings)
    assert any("ICMP time-exceeded" == "".join(t.itertext()) for t in drawn[0].iter(SVG + "text"))
    assert ("style", "icmp", "ICMP error from a router") in ladder.legend


def test_runs_without_routers_have_no_icmp_arrows():
    for name in ("stale_syn", "steps_at_routers"):
        run = _run(name)
        assert run.icmp == [] and not _with_class(_svg(run), "g", "icmp")
