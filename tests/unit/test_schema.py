"""The JSON Schemas editors use agree with the shipped files and reject what the loader rejects."""
import json
from pathlib import Path

import jsonschema
import pytest

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "harness" / "schema"


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
