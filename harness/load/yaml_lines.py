"""Safe YAML loading that remembers the line of every mapping key, for file:line errors."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from harness.errors import UserError


class LineDict(dict):
    """A dict that knows the 1-based line of each key and of itself."""
    line: int = 0
    key_lines: dict

    def line_of(self, key: str) -> int:
        return getattr(self, "key_lines", {}).get(key, self.line)


class _Loader(yaml.SafeLoader):
    """SafeLoader where only true/false are booleans: `on: server` must stay the key 'on'."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", __import__("re").compile(r"^(?:true|True|false|False)$"),
                              list("tTfF"))


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    result = LineDict()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in result:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key '{key}' (the first would be silently lost)",
                                                    key_node.start_mark)
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(path: Path) -> LineDict:
    """Read a YAML file whose top level is a mapping; syntax errors become UserErrors."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise UserError(f"cannot read the file ({exc.strerror}).", file=str(path),
                        fix="check the path; bare names are looked up in experiments/ and topologies/.")
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise UserError(f"this is not valid YAML: {problem}.", file=str(path),
                        line=mark.line + 1 if mark else None,
                        fix="merge the two entries into one." if "duplicate key" in problem
                        else "check indentation, colons and brackets around that line.")
    if not isinstance(data, LineDict):
        raise UserError("the file must be a YAML mapping (name: ..., ...).", file=str(path), line=1,
                        fix="start the file with 'name: <something>'.")
    return data


def check_keys(data: LineDict, allowed: set[str], required: set[str], path: Path, what: str) -> None:
    """Reject unknown keys (a typo must not be silently ignored) and missing required ones."""
    for key in data:
        if key not in allowed:
            raise UserError(f"unknown key '{key}' in {what}.", file=str(path), line=data.line_of(key),
                            fix=f"use one of: {', '.join(sorted(allowed))}.")
    for key in sorted(required - set(data)):
        raise UserError(f"{what} lacks the required key '{key}'.", file=str(path), line=data.line,
                        fix=f"add '{key}: ...'.")


def expect_type(value: Any, kind: type | tuple, path: Path, line: int, what: str, example: str) -> Any:
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise UserError(f"{what} has the wrong form ({value!r}).", file=str(path), line=line,
                        fix=f"write it like {example}.")
    return value
