"""`matrix:` -> cells: one experiment per combination of settings (and per repeat).

    matrix:
      client: {net.ipv4.tcp_syn_retries: [1, 2, 3]}   # per host, or `all:`, or a bare sysctl name
      links: {delay: [10ms, 50ms], loss: [0%, 1%]}    # every link, both directions
      repeat: 2

Strings anywhere in the file may hold `${expression}` over the cell's settings, named by the
sysctl's last part (tcp_syn_retries), a link parameter's name (delay, in seconds) and `repeat`; each cell is loaded and checked as a whole
experiment after substitution, so one file asserts the whole sweep.
"""
from __future__ import annotations

import ast
import copy
import itertools
import operator
import re
from dataclasses import dataclass, replace
from pathlib import Path

from harness.errors import UserError
from harness.load.experiment import experiment_from_data
from harness.load.topology import impairment_from
from harness.load.yaml_lines import LineDict, expect_type, load_yaml
from harness.model import Experiment

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_EXPR = re.compile(r"\$\{([^}]*)\}")


@dataclass(frozen=True)
class Cell:
    label: str                      # "tcp_syn_retries=2" ("" for a file without a matrix)
    settings: dict                  # {host: {sysctl: value}}
    repeat: int                     # 1-based
    experiment: Experiment


def evaluate(expression: str, names: dict[str, float]) -> float:
    """Arithmetic over numbers and the cell's names; nothing else is allowed."""
    def walk(node):
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return node.value
        if isinstance(node, ast.Name) and node.id in names:
            return names[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        raise ValueError(f"'{ast.unparse(node)}' is not arithmetic over {', '.join(sorted(names)) or 'numbers'}")
    return walk(ast.parse(expression.strip(), mode="eval"))


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"


def _substitute(node, names: dict, path: Path, line: int):
    if isinstance(node, LineDict):
        out = copy.copy(node)
        for key, value in node.items():
            out[key] = _substitute(value, names, path, node.line_of(key))
        return out
    if isinstance(node, list):
        return [_substitute(v, names, path, line) for v in node]
    if isinstance(node, str) and "${" in node:
        try:
            return _EXPR.sub(lambda m: _number(evaluate(m.group(1), names)), node)
        except (ValueError, SyntaxError, ZeroDivisionError) as exc:
            raise UserError(f"cannot work out {node!r}: {exc}.", file=str(path), line=line,
                            fix="write ${...} with + - * / ** and the matrix's names, e.g. ${2**(tcp_syn_retries+1)-1}s.")
    return node


def _dimensions(matrix: LineDict, path: Path) -> tuple[list[tuple[str, str, list]], int]:
    dims, repeat = [], 1
    for key, value in matrix.items():
        line = matrix.line_of(key)
        if key == "repeat":
            repeat = expect_type(value, int, path, line, "repeat", "repeat: 3")
            if repeat < 1:
                raise UserError("repeat must be at least 1.", file=str(path), line=line)
        elif key == "links":
            for name, values in expect_type(value, LineDict, path, line, key, "links: {delay: [10ms, 50ms]}").items():
                if name not in LINK_PARAMETERS:
                    raise UserError(f"'{name}' is not a link parameter.", file=str(path), line=value.line_of(name),
                                    fix=f"use one of {', '.join(LINK_PARAMETERS)}.")
                dims.append(("links", str(name), expect_type(values, list, path, value.line_of(name), name, f"{name}: [10ms, 50ms]")))
        elif "." in str(key):
            dims.append(("all", str(key), expect_type(value, list, path, line, key, f"{key}: [0, 1]")))
        else:
            for name, values in expect_type(value, LineDict, path, line, key, f"{key}: {{net.ipv4.tcp_syn_retries: [1, 2]}}").items():
                dims.append((str(key), str(name), expect_type(values, list, path, value.line_of(name), name, f"{name}: [1, 2]")))
    for _, name, values in dims:
        if not values:
            raise UserError(f"the matrix gives {name} no values.", file=str(path), line=matrix.line)
    return dims, repeat


def load_cells(path: Path) -> list[Cell]:
    """Every cell of the experiment in `path` (one cell, label "", when it has no matrix)."""
    data = load_yaml(path)
    if "matrix" not in data:
        return [Cell("", {}, 1, experiment_from_data(data, path))]
    matrix = expect_type(data.pop("matrix"), LineDict, path, data.line_of("matrix"), "matrix",
                         "{client: {net.ipv4.tcp_syn_retries: [1, 2, 3]}, repeat: 2}")
    dims, repeat = _dimensions(matrix, path)
    cells = []
    for combo in itertools.product(*[values for _, _, values in dims]):
        settings: dict[str, dict] = {}
        names: dict[str, float] = {}
        for (host, name, _), value in zip(dims, combo):
            settings.setdefault(host, {})[name] = value
            if host == "links":
                names[name] = _link_number(name, value, path, matrix.line)
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                names[name.rsplit(".", 1)[-1]] = value
        label = ",".join(f"{name.rsplit('.', 1)[-1]}={value}" + (f"@{host}" if host not in ("all", "links") else "")
                         for (host, name, _), value in zip(dims, combo))
        links = settings.pop("links", {})
        for r in range(1, repeat + 1):
            # _substitute builds new mappings and lists, so the sysctls added below stay in this cell
            cell_data = _substitute(data, {**names, "repeat": r}, path, data.line)
            sysctls = cell_data.setdefault("sysctls", LineDict())
            for host, values in settings.items():
                sysctls.setdefault(host, LineDict()).update(values)
            experiment = _with_links(experiment_from_data(cell_data, path), links, path, matrix.line)
            cells.append(Cell(label + (f"#{r}" if repeat > 1 else ""), {**settings, **({"links": links} if links else {})},
                              r, experiment))
    return cells


LINK_PARAMETERS = ("delay", "jitter", "loss", "bw", "queue")


def _link_spec(values: dict, line: int) -> LineDict:
    spec = LineDict(values)
    spec.line = line
    return spec


def _link_number(name: str, value, path: Path, line: int) -> float:
    """The value as ${...} sees it: seconds, percent, Mbit/s or packets."""
    imp = impairment_from(_link_spec({name: value}, line), path)
    return {"delay": imp.delay_s, "jitter": imp.jitter_s, "loss": imp.loss_pct, "bw": imp.bw_mbit, "queue": imp.queue}[name]


def _with_links(experiment: Experiment, links: dict, path: Path, line: int) -> Experiment:
    """The experiment with the matrix's link parameters set on every link, both directions."""
    if not links:
        return experiment
    spec = _link_spec(links, line)
    topology = experiment.topology
    new_links = tuple(replace(link, a_to_b=impairment_from(spec, path, link.a_to_b), b_to_a=impairment_from(spec, path, link.b_to_a))
                      for link in topology.links)
    return replace(experiment, topology=replace(topology, links=new_links))
