"""Safe YAML loading that remembers the line of every mapping key, for file:line errors.

A hostile or broken file must fail fast with a line, never hang, eat memory or leave a traceback:
the file is read as bytes and bounded in size, must be UTF-8 without control characters, and
the composer counts every node it makes (aliases count with everything they stand for) and how
deep it nests, so an alias bomb or 100,000 brackets are refused after a few hundred nodes.
"""
from __future__ import annotations

import re
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.events import AliasEvent

from harness.errors import UserError

MAX_BYTES = 1_000_000          # the largest shipped file is ~3 KB
MAX_NODES = 100_000            # YAML values, counting each alias as everything it stands for
MAX_DEPTH = 64                 # nesting of lists and mappings (shipped files: 5)


class LineDict(dict):
    """A dict that knows the 1-based line of each key and of itself."""
    line: int = 0
    key_lines: dict
    nodes: int = 0             # set on the top-level mapping: how many values the file expands to

    def line_of(self, key: str) -> int:
        return getattr(self, "key_lines", {}).get(key, self.line)


class _Refused(yaml.MarkedYAMLError):
    """A file the loader refuses to expand further; carries the mark of where it stopped."""


class _Loader(yaml.SafeLoader):
    """SafeLoader where only true/false are booleans (`on: server` must stay the key 'on'), dates
    stay strings, and composing counts nodes and depth."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.node_count = 0
        self._depth = 0
        self._sizes: dict[int, int] = {}     # id(node) -> expanded size, for aliases to it

    def _charge(self, count: int, mark) -> None:
        self.node_count += count
        if self.node_count > MAX_NODES:
            raise _Refused(None, None, f"the file expands to more than {MAX_NODES:,} values (aliases count with "
                           "everything they stand for): refused as an alias bomb", mark)

    def compose_node(self, parent, index):
        if self.check_event(AliasEvent):
            mark = self.peek_event().start_mark
            node = super().compose_node(parent, index)
            if id(node) not in self._sizes:
                raise _Refused(None, None, "an alias used inside its own anchor makes an endless value", mark)
            self._charge(self._sizes[id(node)], mark)
            return node
        mark = self.peek_event().start_mark
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _Refused(None, None, f"lists and mappings nest more than {MAX_DEPTH} deep", mark)
        before = self.node_count
        self._charge(1, mark)
        node = super().compose_node(parent, index)
        self._depth -= 1
        self._sizes[id(node)] = self.node_count - before
        return node


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers
            if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|false|False)$"), list("tTfF"))


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    result = LineDict()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, Hashable) or not isinstance(key_node, yaml.ScalarNode):
            raise ConstructorError(None, None, "a key must be a plain word, not a list or mapping", key_node.start_mark)
        if key in result:
            raise ConstructorError(None, None, f"duplicate key '{key}' (the first would be silently lost)",
                                   key_node.start_mark)
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


class LineList(list):
    """A list that knows its own line and each item's, so an item of the wrong form can be named."""
    line: int = 0
    item_lines: list


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> LineList:
    result = LineList(loader.construct_sequence(node, deep=True))
    result.line = node.start_mark.line + 1
    result.item_lines = [item.start_mark.line + 1 for item in node.value]
    return result


def item_line(items: list, index: int, default: int | None = None) -> int | None:
    """The line of items[index] when the list came from YAML, else `default`."""
    lines = getattr(items, "item_lines", None)
    return lines[index] if lines and index < len(lines) else default


def _checked(construct):
    """A scalar constructor whose ValueError (a 5,000-digit integer...) becomes a marked YAML error."""
    def wrapper(loader, node):
        try:
            return construct(loader, node)
        except (ValueError, OverflowError) as exc:
            raise ConstructorError(None, None, f"cannot read {node.value[:40]!r} as a number ({exc})", node.start_mark)
    return wrapper


def _refuse_tag(loader, node):
    raise ConstructorError(None, None, f"the tag {node.tag} is not used by this tool", node.start_mark)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)

_Loader.add_constructor("tag:yaml.org,2002:int", _checked(yaml.SafeLoader.construct_yaml_int))
_Loader.add_constructor("tag:yaml.org,2002:float", _checked(yaml.SafeLoader.construct_yaml_float))
for _tag in ("binary", "timestamp", "set", "omap", "pairs"):
    _Loader.add_constructor(f"tag:yaml.org,2002:{_tag}", _refuse_tag)


def _line_at(data: bytes | str, index: int) -> int:
    return data[:index].count(b"\n" if isinstance(data, bytes) else "\n") + 1


def read_text(path: Path) -> str:
    """The file as text, refused (with the line) when it is not a small UTF-8 text file."""
    try:
        if not path.is_file():
            raise UserError("this is not a regular file.", file=str(path),
                            fix="give a .yaml file; bare names are looked up in experiments/ and topologies/.")
        with path.open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise UserError(f"cannot read the file ({exc.strerror}).", file=str(path),
                        fix="check the path; bare names are looked up in experiments/ and topologies/.")
    if len(raw) > MAX_BYTES:
        raise UserError(f"the file is larger than {MAX_BYTES:,} bytes; an experiment or topology is a few KB.",
                        file=str(path), line=1, fix="give the right file.")
    if b"\0" in raw:
        raise UserError("the file holds a NUL byte (is it binary?).", file=str(path), line=_line_at(raw, raw.index(b"\0")),
                        fix="remove it; experiments and topologies are UTF-8 text.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"the file is not UTF-8 (byte 0x{raw[exc.start]:02x} is not valid UTF-8 there).",
                        file=str(path), line=_line_at(raw, exc.start), fix="save the file as UTF-8.")
    bad = yaml.reader.Reader.NON_PRINTABLE.search(text)
    if bad:
        raise UserError(f"the file holds the control character U+{ord(bad.group()):04X}.", file=str(path),
                        line=_line_at(text, bad.start()), fix="remove it; only printable text, tabs and newlines belong here.")
    return text


def load_yaml(path: Path) -> LineDict:
    """Read a YAML file whose top level is a mapping; syntax errors become UserErrors."""
    text = read_text(path)
    loader = _Loader(text)
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or str(exc)
        raise UserError(f"this is not valid YAML: {problem}.", file=str(path),
                        line=mark.line + 1 if mark else 1,
                        fix="merge the two entries into one." if "duplicate key" in problem
                        else "write it without the alias, or with less nesting." if isinstance(exc, _Refused)
                        else "inside { } a name ending in ? (an optional sysctl) needs quotes: "
                             "{\"net.ipv4.tcp_syn_linear_timeouts?\": 0}" if "got '?'" in problem
                        else "check indentation, colons and brackets around that line.")
    except yaml.YAMLError as exc:
        raise UserError(f"this is not valid YAML: {exc}.", file=str(path), line=1,
                        fix="check indentation, colons and brackets.")
    finally:
        loader.dispose()
    if not isinstance(data, LineDict):
        raise UserError("the file must be a YAML mapping (name: ..., ...).", file=str(path), line=1,
                        fix="start the file with 'name: <something>'.")
    data.nodes = loader.node_count
    return data


def check_keys(data: LineDict, allowed: set[str], required: set[str], path: Path, what: str) -> None:
    """Reject unknown keys (a typo must not be silently ignored) and missing required ones."""
    for key in data:
        if key not in allowed:
            raise UserError(f"unknown key '{str(key)[:40]}' in {what}.", file=str(path), line=data.line_of(key),
                            fix=f"use one of: {', '.join(sorted(allowed))}.")
    for key in sorted(required - set(data)):
        raise UserError(f"{what} lacks the required key '{key}'.", file=str(path), line=data.line,
                        fix=f"add '{key}: ...'.")


def expect_type(value: Any, kind: type | tuple, path: Path, line: int, what: str, example: str) -> Any:
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        raise UserError(f"{what} has the wrong form ({shown}).", file=str(path), line=line,
                        fix=f"write it like {example}.")
    return value
