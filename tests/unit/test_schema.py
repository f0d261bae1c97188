"""The JSON Schemas editors use agree with the shipped files and reject what the loader rejects."""
import json
from pathlib import Path

import functools

import jsonschema
import pytest

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "harness" / "schema"


@functools.cache
def validator(kind: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMA / f"{kind}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _load(path: Path) -> dict:
    """As the harness reads it (only true/false are booleans: `on:` stays a key), as plain JSON."""
    from harness.load.yaml_lines import load_yaml
    return json.loads(json.dumps(load_yaml(path)))


@pytest.mark.parametrize("path", sorted((REPO / "experiments").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_experiments_validate(path):
    errors = list(validator("experiment").iter_errors(_load(path)))
    assert not errors, [e.message for e in errors]


@pytest.mark.parametrize("path", sorted((REPO / "topologies").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_topologies_validate(path):
    errors = list(validator("topology").iter_errors(_load(path)))
    assert not errors, [e.message for e in errors]


@pytest.mark.parametrize("mutate", [
    lambda d: d["steps"][0].update(lisen=5001),
    lambda d: d["steps"][0].update(at="5"),
    lambda d: d["steps"].append({"on": "client", "close": True, "abort": True}),
    lambda d: d["steps"].append({"on": "client", "at": "1s", "after": "1s", "close": True}),
    lambda d: d["expect"]["client"].update(states=["SYN_SENT"]),
    lambda d: d["expect"].setdefault("timing", {}).update(x={"from": "client enters TIME-WAIT", "equals": "60s", "within": "1s"}),
    lambda d: d["expect"].setdefault("timing", {}).update(x={"from": "client enters TIME-WAIT", "to": "client leaves TIME-WAIT"}),
])
def test_schema_rejects_mistakes(mutate):
    doc = _load(REPO / "experiments" / "teardown.yaml")
    mutate(doc)
    assert list(validator("experiment").iter_errors(doc))


# --- one source of truth: the schemas are generated from the loader's tables, and agree with it ---

@pytest.mark.parametrize("kind", ["experiment", "topology"])
def test_committed_schema_is_the_generated_one(kind):
    from harness.schema.generate import render
    assert (SCHEMA / f"{kind}.schema.json").read_text() == render(kind), \
        "run: python -m harness.schema.generate (the loader's tables changed)"


SHIPPED = sorted([*(REPO / "experiments").glob("*.yaml"), *(REPO / "topologies").glob("*.yaml"),
                  *(REPO / "tests" / "fixtures").glob("*.yaml")])


def _kind(path: Path) -> str:
    return "experiment" if "topology" in _load(path) else "topology"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_schema_and_loader_both_accept_every_shipped_file(path):
    from harness.load import load_cells
    from harness.load.topology import load_topology
    kind = _kind(path)
    assert not [e.message for e in validator(kind).iter_errors(_load(path))]
    if kind == "experiment":
        assert load_cells(path)
    else:
        assert load_topology(path, existing=set())


BAD = [  # (what, old, new): both the schema and the loader must refuse each
    ("drop with for:", "match: {flags: S, dport: 5001}, count: 1}", "match: {flags: S, dport: 5001}, count: 1, for: 1s}"),
    ("hold without for:", "network: drop", "network: hold"),
    ("wait for LISTEN", "{on: server, wait: peer-closed}", "{on: server, wait: {state: LISTEN}}"),
    ("wait for CLOSED", "{on: server, wait: peer-closed}", "{on: server, wait: {state: CLOSED}}"),
    ("unknown network action", "network: drop", "network: reorder"),
    ("listen 0", "listen: 5001", "listen: 0"), ("listen 65536", "listen: 5001", "listen: 65536"),
    ("listen -1", "listen: 5001", "listen: -1"), ("listen 10^20", "listen: 5001", "listen: 100000000000000000000"),
    ("dport 0", "dport: 5001", "dport: 0"), ("dport 65536", "dport: 5001", "dport: 65536"),
    ("count 0", "count: 1", "count: 0"), ("count 10^30", "count: 1", "count: 1000000000000000000000000000000"),
    ("count 1.5", "count: 1", "count: 1.5"), ("nth and count", "count: 1", "count: 1, nth: 1"),
    ("within abc%", "within: 5%", "within: abc%"), ("within bare", "within: 5%", "within: 5"),
    ("equals .rtt", "equals: 1rtt", "equals: .rtt"), ("equals 1.2.3rtt", "equals: 1rtt", "equals: 1.2.3rtt"),
    ("between one", "between: [0s, 2rtt]", "between: [0s]"), ("between abc", "between: [0s, 2rtt]", "between: [0s, abc]"),
    ("timing a list", "    hs: {from", "    hs: [1]\n    hx: {from"),
    ("accepted -1", "accepted: 1", "accepted: -1"), ("match flag X", "flags: S, dport", "flags: SX, dport"),
    ("two actions", "{at: 2s, on: client, close: true}", "{at: 2s, on: client, close: true, abort: true}"),
    ("at and after", "{at: 2s, on: client, close: true}", "{at: 2s, after: 1s, on: client, close: true}"),
    ("bare duration", "duration: 5s", "duration: 5"), ("duration 1e400", "duration: 5s", "duration: 1e400"),
    ("unknown step key", "{on: client, send: 100B}", "{on: client, sned: 100B}"),
    ("shutdown sideways", "{on: client, send: 100B}", "{on: client, shutdown: sideways}"),
    ("state typo", "states: [SYN-SENT, ESTAB]", "states: [SYN_SENT, ESTAB]"),
    ("packet flags", "flags: S, seq: x}", "flags: X, seq: x}"), ("seq 2^32", "flags: S, seq: x}", "flags: S, seq: 4294967296}"),
    ("event typo", "client calls connect", "client phones connect"),
    ("unknown top key", "duration: 5s", "duraton: 5s"),
    ("match len -1", "flags: S, dport: 5001}", "flags: S, dport: 5001, len: -1}"),
    ("match len 1B", "flags: S, dport: 5001}", "flags: S, dport: 5001, len: 1B}"),
    ("match len 70000", "flags: S, dport: 5001}", "flags: S, dport: 5001, len: 70000}"),
    ("match options ecn", "flags: S, dport: 5001}", "flags: S, dport: 5001, options: {ecn: true}}"),
    ("match wscale 15", "flags: S, dport: 5001}", "flags: S, dport: 5001, options: {wscale: 15}}"),
    ("packet ts value", "flags: S, seq: x}", "flags: S, seq: x, options: {ts: 5}}"),
    ("packet options empty", "flags: S, seq: x}", "flags: S, seq: x, options: {}}"),
    ("packet len range", "flags: S, seq: x}", "flags: S, seq: x, len: \"5 to 9\"}"),
]
BAD_TOPOLOGY = [
    ("queue -5", "delay: 25ms}\n  - {a: server", "delay: 25ms, queue: -5}\n  - {a: server"),
    ("queue 1.9", "delay: 25ms}\n  - {a: server", "delay: 25ms, queue: 1.9}\n  - {a: server"),
    ("queue 10^30", "delay: 25ms}\n  - {a: server", "delay: 25ms, queue: 1000000000000000000000000000000}\n  - {a: server"),
    ("queue [1]", "delay: 25ms}\n  - {a: server", "delay: 25ms, queue: [1]}\n  - {a: server"),
    ("loss 101%", "delay: 25ms}\n  - {a: server", "delay: 25ms, loss: 101%}\n  - {a: server"),
    ("delay bare", "delay: 25ms}\n  - {a: server", "delay: 25}\n  - {a: server"),
    ("bw bare", "delay: 25ms}\n  - {a: server", "delay: 25ms, bw: 100}\n  - {a: server"),
    ("link end a list", "{a: client, b: s1", "{a: [client], b: s1"),
    ("node name upper", "hosts: [client, server]", "hosts: [Client, server]"),
    ("node name long", "hosts: [client, server]", "hosts: [clientclient, server]"),
    ("switch kind", "switches: [s1]", "switches: [s1]\nswitch: hub"),
    ("unknown link key", "delay: 25ms}\n  - {a: server", "dealy: 25ms}\n  - {a: server"),
]


def _corpus_module():
    import importlib.util
    import sys
    spec = importlib.util.spec_from_file_location("make_corpus_schema", REPO / "tests" / "fuzz" / "make_corpus.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _both_refuse(tmp_path, experiment: str, topology: str, kind: str):
    from harness.errors import UserError
    from harness.load import load_cells
    (tmp_path / "t.yaml").write_text(topology)
    (tmp_path / "e.yaml").write_text(experiment)
    target = tmp_path / ("e.yaml" if kind == "experiment" else "t.yaml")
    assert list(validator(kind).iter_errors(_load(target))), "the schema accepts it"
    with pytest.raises(UserError):
        load_cells(tmp_path / "e.yaml")


@pytest.mark.parametrize("what, old, new", BAD, ids=[b[0] for b in BAD])
def test_schema_and_loader_both_refuse_bad_experiments(tmp_path, what, old, new):
    corpus = _corpus_module()
    assert old in corpus.GOOD_EXPERIMENT
    _both_refuse(tmp_path, corpus.GOOD_EXPERIMENT.replace(old, new, 1), corpus.GOOD_TOPOLOGY, "experiment")


@pytest.mark.parametrize("what, old, new", BAD_TOPOLOGY, ids=[b[0] for b in BAD_TOPOLOGY])
def test_schema_and_loader_both_refuse_bad_topologies(tmp_path, what, old, new):
    corpus = _corpus_module()
    assert old in corpus.GOOD_TOPOLOGY
    _both_refuse(tmp_path, corpus.GOOD_EXPERIMENT, corpus.GOOD_TOPOLOGY.replace(old, new, 1), "topology")


def test_the_schema_never_refuses_what_the_loader_accepts(tmp_path):
    """Over the fuzz corpus and the good file it starts from: every document the schema refuses,
    the loader refuses too (the schema may say less than the loader, never more)."""
    from harness.errors import UserError
    from harness.load import load_cells
    from harness.load.yaml_lines import load_yaml
    corpus = _corpus_module()
    cases = [corpus.Case("good", corpus.GOOD_EXPERIMENT.encode(), corpus.GOOD_TOPOLOGY.encode(), ""), *corpus.corpus()]
    schema_refused = 0
    for case in cases:
        (tmp_path / "e.yaml").write_bytes(case.experiment)
        (tmp_path / "t.yaml").write_bytes(case.topology)
        try:
            docs = {k: json.loads(json.dumps(load_yaml(tmp_path / f"{k[0]}.yaml"))) for k in ("experiment", "topology")}
        except (UserError, ValueError):
            continue            # not YAML the schema could see either
        if not any(next(validator(k).iter_errors(d), None) for k, d in docs.items()):
            continue
        schema_refused += 1
        with pytest.raises(UserError):
            load_cells(tmp_path / "e.yaml")
    assert schema_refused > 100
