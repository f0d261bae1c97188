"""The topology drawing (report.html's and `run-experiment --draw`'s) on real topology files, loaded
by the loader: routers, switches and hosts drawn apart and in distinct shapes, every link once
with its delay per direction, MTU and cost; every subnet named once, every address written; labels
clear of each other and of the nodes; the same bytes every time; and the dict the drawing is made
from carries every key result.json's `lab` has."""
from __future__ import annotations

import itertools
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.errors import UserError
from harness.load.topology import load_topology
from harness.report.topology_draw import draw_topology, topology_dict
from harness.report.topology_svg import BOX_H, BOX_W, Label, columns, overlaps, topology_svg

TOPOLOGIES = Path(__file__).resolve().parents[2] / "topologies"
NS = "{http://www.w3.org/2000/svg}"
SHIPPED = ("two_hosts", "three_hosts", "routed", "asymmetric", "dumbbell")

# four routers in a ring, a LAN of three hosts on each: 20 nodes, every link setting somewhere
LANS = {"s1": ["client", "h2", "h3"], "s2": ["h4", "h5", "h6"], "s3": ["server", "h8", "h9"], "s4": ["h10", "h11", "h12"]}
RING = ["{a: r1, b: r2, delay: 10ms, mtu: 1400}", "{a: r2, b: r3, delay: 10ms, cost: 3}",
        "{a: r3, b: r4, delay: 5ms, jitter: 1ms, loss: 1%}", "{a: r4, b: r1, delay: 5ms, bw: 100mbit}"]
TWENTY = "\n".join(
    ["name: twenty", f"hosts: [{', '.join(h for lan in LANS.values() for h in lan)}]",
     "switches: [s1, s2, s3, s4]", "routers: [r1, r2, r3, r4]", "links:"]
    + [f"  - {{a: {h}, b: {s}{', delay: 1ms' if h in ('client', 'server') else ''}}}" for s, lan in LANS.items() for h in lan]
    + [f"  - {{a: {s}, b: r{s[1]}}}" for s in LANS] + [f"  - {link}" for link in RING]) + "\n"

# r2, r4, r3 stack in one column (one link from r1 each): r2 — r3 would run straight through r4
SHORTCUT = """name: shortcut
hosts: [client, server]
routers: [r1, r2, r4, r3]
links:
  - {a: client, b: r1, delay: 1ms}
  - {a: r1, b: r2, delay: 2ms}
  - {a: r1, b: r4, delay: 3ms}
  - {a: r1, b: r3, delay: 4ms}
  - {a: r2, b: r3, delay: 5ms, cost: 5, mtu: 1280}
  - {a: r3, b: server, delay: 6ms}
"""


def lab_of(name: str, tmp_path: Path) -> dict:
    if name in SHIPPED:
        path = TOPOLOGIES / f"{name}.yaml"
    else:
        path = tmp_path / f"{name}.yaml"
        path.write_text({"twenty": TWENTY, "shortcut": SHORTCUT}[name])
    return topology_dict(load_topology(path, existing=frozenset()))


ALL = SHIPPED + ("twenty", "shortcut")


def svg_root(lab: dict) -> ET.Element:
    return ET.fromstring(topology_svg(lab))


def nodes(root: ET.Element) -> dict[str, ET.Element]:
    return {g.get("data-node"): g for g in root.iter(f"{NS}g") if "node" in (g.get("class") or "").split()}


def links(root: ET.Element) -> list[ET.Element]:
    return [g for g in root.iter(f"{NS}g") if g.get("class") == "link"]


def centre(g: ET.Element) -> tuple[float, float]:
    shape = g.find(f"{NS}rect")
    if shape is not None:
        return float(shape.get("x")) + BOX_W / 2, float(shape.get("y")) + BOX_H / 2
    shape = g.find(f"{NS}ellipse")
    return float(shape.get("cx")), float(shape.get("cy"))


def texts(el: ET.Element) -> list[str]:
    return [t.text for t in el.iter(f"{NS}text")]


def label_of(t: ET.Element) -> Label:
    anchor = re.search(r"text-anchor: (\w+)", t.get("style") or "")
    return Label(t.text, float(t.get("x")), float(t.get("y")), t.get("class"), anchor.group(1) if anchor else "middle")


@pytest.mark.parametrize("name", ALL)
def test_every_node_drawn_once_in_its_shape_and_none_overlap(name, tmp_path):
    lab = lab_of(name, tmp_path)
    found = nodes(svg_root(lab))
    assert sorted(found) == sorted(list(lab["hosts"]) + lab["switches"] + lab["routers"])
    for node, g in found.items():
        kind = "host" if node in lab["hosts"] else "router" if node in lab["routers"] else "switch"
        assert kind in g.get("class").split(), (node, g.get("class"))
        assert (g.find(f"{NS}ellipse") is not None) == (kind == "router"), node
        assert ("router" in texts(g)) == (kind == "router"), node
    for (a, ga), (b, gb) in itertools.combinations(found.items(), 2):
        (ax, ay), (bx, by) = centre(ga), centre(gb)
        assert abs(ax - bx) >= BOX_W + 20 or abs(ay - by) >= BOX_H + 20, (a, b)


@pytest.mark.parametrize("name", ALL)
def test_every_link_drawn_once_with_its_delay_each_way(name, tmp_path):
    lab = lab_of(name, tmp_path)
    drawn = links(svg_root(lab))
    assert [(g.get("data-link"), g.get("data-a"), g.get("data-b")) for g in drawn] == [
        (str(k), link["a"], link["b"]) for k, link in enumerate(lab["links"])]
    for g, link in zip(drawn, lab["links"]):
        assert len(g.findall(f"{NS}line")) + len(g.findall(f"{NS}path")) == 1
        words = texts(g)
        for key in ("a_to_b", "b_to_a"):
            delay = f"{link[key]['delay_s'] * 1e3:g} ms"
            assert sum(1 for w in words if w[0] in "→←↑↓" and w[2:].startswith(delay)) >= 1, (link, words)
        assert len([w for w in words if w[0] in "→←↑↓" and "Mbit" not in w and "queue" not in w]) == 2, words


def test_settings_beyond_the_delay_are_written_on_their_link(tmp_path):
    by_ends = {(g.get("data-a"), g.get("data-b")): texts(g) for g in links(svg_root(lab_of("twenty", tmp_path)))}
    assert "MTU 1400" in by_ends[("r1", "r2")] and "cost 3" in by_ends[("r2", "r3")]
    assert {"→ 5 ms ±1 ms, 1% loss", "← 5 ms ±1 ms, 1% loss"} <= set(by_ends[("r3", "r4")])
    assert sum("100 Mbit/s" in w for w in by_ends[("r4", "r1")]) == 2
    assert not any("MTU" in w or "cost" in w for w in by_ends[("client", "s1")])
    dumbbell = {(g.get("data-a"), g.get("data-b")): texts(g) for g in links(svg_root(lab_of("dumbbell", tmp_path)))}
    assert sum("10 Mbit/s, queue 50" in w for w in dumbbell[("r1", "r2")]) == 2


@pytest.mark.parametrize("name", ALL)
def test_every_subnet_named_once_and_every_address_written(name, tmp_path):
    lab = lab_of(name, tmp_path)
    words = texts(svg_root(lab))
    subnets = {i["subnet"] for i in lab["interfaces"]}
    assert subnets and all(words.count(s) == 1 for s in subnets), (subnets, words)
    for host, info in lab["hosts"].items():
        assert info["ip"] in words, host
    for i in lab["interfaces"]:
        assert i["address"] in words, i
    assert len(subnets) == {"two_hosts": 1, "three_hosts": 1, "routed": 3, "asymmetric": 2, "dumbbell": 3,
                            "twenty": 8, "shortcut": 6}[name]


def test_a_switch_names_its_subnet_a_router_link_carries_its_own(tmp_path):
    root = svg_root(lab_of("dumbbell", tmp_path))
    assert "10.1.0.0/24" in texts(nodes(root)["s1"]) and "10.3.0.0/24" in texts(nodes(root)["s2"])
    bottleneck = next(g for g in links(root) if (g.get("data-a"), g.get("data-b")) == ("r1", "r2"))
    assert "10.2.0.0/24" in texts(bottleneck)


@pytest.mark.parametrize("name", ALL)
def test_labels_overlap_no_node_and_no_other_label(name, tmp_path):
    root = svg_root(lab_of(name, tmp_path))
    labels = [label_of(t) for t in root.iter(f"{NS}text")]
    inside = {id(t) for g in nodes(root).values() for t in g.iter(f"{NS}text")}
    free = [label_of(t) for t in root.iter(f"{NS}text") if id(t) not in inside]
    boxes = [(*(c - d for c, d in zip(centre(g), (BOX_W / 2, BOX_H / 2))),
              *(c + d for c, d in zip(centre(g), (BOX_W / 2, BOX_H / 2)))) for g in nodes(root).values()]
    assert [(f.text, b) for f in free for b in boxes if overlaps(f.box, b)] == []
    assert [(a.text, b.text) for a, b in itertools.combinations(labels, 2) if overlaps(a.box, b.box)] == []


def test_the_layout_reads_left_to_right_from_clients_to_servers(tmp_path):
    assert columns(lab_of("dumbbell", tmp_path)) == {"client1": 0, "client2": 0, "s1": 1, "r1": 2, "r2": 3, "s2": 4,
                                                     "server1": 5, "server2": 5}
    assert columns(lab_of("routed", tmp_path)) == {"client": 0, "r1": 1, "r2": 2, "server": 3}
    asym = columns(lab_of("asymmetric", tmp_path))
    assert asym["r1"] == asym["r2"] == 2 and asym["server"] == 4
    found = nodes(svg_root(lab_of("asymmetric", tmp_path)))
    assert centre(found["r1"])[1] < centre(found["s1"])[1] < centre(found["r2"])[1]


def test_a_link_that_would_cross_a_node_is_bent_around_it(tmp_path):
    root = svg_root(lab_of("shortcut", tmp_path))
    found = nodes(root)
    bent = [g for g in links(root) if g.find(f"{NS}path") is not None]
    assert [(g.get("data-a"), g.get("data-b")) for g in bent] == [("r2", "r3")]
    numbers = [float(v) for v in re.findall(r"-?\d+\.?\d*", bent[0].find(f"{NS}path").get("d"))]
    (ax, ay), (cx, cy), (bx, by) = numbers[0:2], numbers[2:4], numbers[4:6]
    x2, y2 = centre(found["r4"])
    assert centre(found["r2"])[0] == x2 == centre(found["r3"])[0]
    for i in range(101):
        t = i / 100
        x = (1 - t) ** 2 * ax + 2 * (1 - t) * t * cx + t * t * bx
        y = (1 - t) ** 2 * ay + 2 * (1 - t) * t * cy + t * t * by
        assert not (abs(x - x2) <= BOX_W / 2 and abs(y - y2) <= BOX_H / 2), (t, x, y)


def test_the_routes_the_file_gives_are_listed(tmp_path):
    words = texts(svg_root(lab_of("asymmetric", tmp_path)))
    assert [w for w in words if w.startswith("route given")] == [
        "route given: client to 10.2.0.0/24 via r1 (10.1.0.1)", "route given: server to 10.1.0.0/24 via r2 (10.2.0.2)"]
    assert not any(w.startswith("route given") for w in texts(svg_root(lab_of("dumbbell", tmp_path))))


@pytest.mark.parametrize("name", ALL)
def test_the_drawing_is_the_same_every_time_and_self_contained(name, tmp_path):
    lab = lab_of(name, tmp_path)
    first = topology_svg(lab)
    assert topology_svg(json.loads(json.dumps(lab))) == first == topology_svg(lab_of(name, tmp_path))
    assert re.findall(r"https?://[^\"' ]+", first) == ["http://www.w3.org/2000/svg"]


def test_a_step_is_noted_under_the_router_it_acts_in(tmp_path):
    lab = lab_of("routed", tmp_path)
    lab["network_steps"] = [{"line": 12, "action": "drop", "sender": "client", "receiver": "server", "switch": "r1"}]
    root = svg_root(lab)
    step = next(t for t in root.iter(f"{NS}text") if t.get("class") == "step")
    assert step.text == "drop client → server (line 12)"
    x, y = centre(nodes(root)["r1"])
    assert float(step.get("x")) == pytest.approx(x) and float(step.get("y")) > y + BOX_H / 2


def test_the_dict_has_every_key_of_result_json_lab(tmp_path):
    topology = load_topology(TOPOLOGIES / "routed.yaml", existing=frozenset())
    bare = topology_dict(topology)
    assert list(bare) == ["hosts", "switches", "routers", "links", "interfaces", "routes", "network_steps"]
    assert bare["hosts"] == {"client": {"ip": "10.1.0.11", "interface": None}, "server": {"ip": "10.3.0.11", "interface": None}}
    assert bare["routers"] == ["r1", "r2"] and bare["switches"] == [] and bare["network_steps"] == []
    assert bare["links"][1] == {"a": "r1", "b": "r2", "a_interface": None, "b_interface": None, "mtu": None, "cost": 1,
                                "a_to_b": {"delay_s": 0.015, "jitter_s": 0.0, "loss_pct": 0.0, "bw_mbit": None, "queue": None},
                                "b_to_a": {"delay_s": 0.015, "jitter_s": 0.0, "loss_pct": 0.0, "bw_mbit": None, "queue": None}}
    assert bare["interfaces"][1] == {"node": "r1", "link": 0, "peer": "client", "address": "10.1.0.1", "prefix_len": 24,
                                     "subnet": "10.1.0.0/24", "mtu": None}
    assert {"node": "client", "prefix": "10.3.0.0/24", "via": "10.1.0.1", "via_node": "r1", "given": False} in bare["routes"]
    step = SimpleNamespace(step=SimpleNamespace(index=9, action="hold", sender="client", receiver="server"),
                           switch="r1", ingress_node="client", egress_node="r2")
    ran = topology_dict(topology, {"client": "10.1.0.11", "server": "10.3.0.11"}, {"client": "client-eth0"},
                        {("r1", "client"): "r1-eth0", ("r1", "r2"): "r1-eth1", ("client", "r1"): "client-eth0"}, [step])
    assert ran["hosts"]["client"] == {"ip": "10.1.0.11", "interface": "client-eth0"}
    assert ran["links"][0]["a_interface"] == "client-eth0" and ran["links"][0]["b_interface"] == "r1-eth0"
    assert ran["network_steps"] == [{"line": 9, "action": "hold", "sender": "client", "receiver": "server", "switch": "r1",
                                     "ingress": "r1-eth0", "egress": "r1-eth1"}]


def test_draw_writes_the_svg_in_the_current_folder_by_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    written = draw_topology(TOPOLOGIES / "dumbbell.yaml")
    assert written == tmp_path / "dumbbell.svg"
    root = ET.parse(written).getroot()
    assert root.tag == f"{NS}svg" and "r1" in nodes(root)
    assert written.read_text().startswith('<?xml version="1.0" encoding="UTF-8"?>\n<svg ')
    elsewhere = draw_topology(TOPOLOGIES / "routed.yaml", Path("r.svg"))
    assert elsewhere == Path("r.svg") and "10.2.0.0/24" in elsewhere.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dumbbell.svg", "r.svg"]


def test_draw_refuses_a_bad_file_and_an_unwritable_place_as_user_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nhosts: [client, server]\nrouters: [r1]\nlinks:\n  - {a: client, b: r9}\n  - {a: r1, b: server}\n")
    with pytest.raises(UserError) as caught:
        draw_topology(bad, tmp_path / "bad.svg")
    assert caught.value.file == str(bad) and caught.value.line == 5, str(caught.value)
    with pytest.raises(UserError, match="cannot write the drawing"):
        draw_topology(TOPOLOGIES / "routed.yaml", tmp_path / "no" / "such" / "folder" / "r.svg")
    with pytest.raises(UserError):
        draw_topology(tmp_path / "missing.yaml")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]


def test_draw_finds_a_shipped_topology_by_name_and_names_the_file_after_the_topology(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert draw_topology(Path("dumbbell")) == tmp_path / "dumbbell.svg"
    odd = tmp_path / "odd.yaml"
    odd.write_text("name: 'my lab/v2'\nhosts: [client, server]\nlinks:\n  - {a: client, b: server}\n")
    assert draw_topology(odd) == tmp_path / "my_lab_v2.svg"
    (tmp_path / "notes.txt").write_text("secret")
    with pytest.raises(UserError, match="ends in .yaml") as caught:
        draw_topology(tmp_path / "notes.txt")
    assert "secret" not in str(caught.value)
    with pytest.raises(UserError, match="one of: .*dumbbell"):
        draw_topology(Path("no_such_topology"))


def test_an_mtu_is_written_on_every_link_of_its_segment_and_a_long_name_fits_its_box(tmp_path):
    path = tmp_path / "lan.yaml"
    path.write_text("name: lan\nhosts: [client, server]\nswitches: [s1]\nrouters: [borderr01]\nlinks:\n"
                    "  - {a: client, b: s1, mtu: 1400}\n  - {a: s1, b: borderr01}\n  - {a: borderr01, b: server}\n")
    root = svg_root(topology_dict(load_topology(path, existing=frozenset())))
    notes = {(g.get("data-a"), g.get("data-b")): [w for w in texts(g) if "MTU" in w] for g in links(root)}
    assert notes == {("client", "s1"): ["MTU 1400"], ("s1", "borderr01"): ["MTU 1400"], ("borderr01", "server"): []}
    name = next(t for t in nodes(root)["borderr01"].iter(f"{NS}text") if t.text == "borderr01")
    assert float(name.get("textLength")) <= BOX_W - 50 and name.get("lengthAdjust") == "spacingAndGlyphs"
    assert all(t.get("textLength") is None for g in nodes(root).values() for t in g.iter(f"{NS}text") if t.text != "borderr01")


def test_a_lab_recorded_before_routers_still_draws(tmp_path):
    lab = lab_of("three_hosts", tmp_path)
    older = {k: v for k, v in lab.items() if k not in ("routers", "interfaces", "routes")}
    older["links"] = [{k: v for k, v in link.items() if k not in ("mtu", "cost")} for link in lab["links"]]
    root = svg_root(older)
    assert sorted(nodes(root)) == ["client1", "client2", "s1", "server"] and len(links(root)) == 3
    words = texts(root)
    assert "10.0.0.0/8" not in words and {"10.0.0.1", "10.0.0.2", "10.0.0.3"} <= set(words)


def test_the_drawing_modules_stay_simple():
    from radon.complexity import cc_visit
    for module in ("topology_svg.py", "topology_draw.py"):
        source = (Path(__file__).resolve().parents[2] / "harness" / "report" / module).read_text()
        assert [(b.name, b.complexity) for b in cc_visit(source) if b.complexity > 15] == [], module
