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
import math
import operator
import re
from dataclasses import dataclass, replace
from pathlib import Path

from harness.errors import UserError
from harness.load.experiment import experiment_from_data
from harness.load.topology import impairment_from
from harness.load.names import sysctl_name, sysctl_value
from harness.load.yaml_lines import LineDict, expect_type, item_line, load_yaml
from harness.model import Experiment
from harness.load.names import cell_folder

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod}
_EXPR = re.compile(r"\$\{([^}]*)\}")


@dataclass(frozen=True)
class Cell:
    label: str                      # "tcp_syn_retries=2" ("" for a file without a matrix)
    settings: dict                  # {host: {sysctl: value}}
    repeat: int                     # 1-based
    experiment: Experiment


MAX_EXPRESSION = 200           # characters inside one ${...}
MAX_MAGNITUDE = 1e18           # any number met while working one out (a duration in ns fits)
MAX_CELLS = 1000               # default; run-experiment --max-cells raises it
VALUES_PER_CELL = 500          # loading work allowed per cell: cells x values in the file


def _bounded(value):
    """Every intermediate result stays a real, finite number of sane size: no complex, no inf,
    no 10**10**10 (which would hang the interpreter computing it)."""
    if isinstance(value, complex) or not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError("the result is not a real number")
    if isinstance(value, float) and not math.isfinite(value) or abs(value) > MAX_MAGNITUDE:
        raise ValueError(f"a number in it is beyond ±{MAX_MAGNITUDE:g}")
    return value


def _power(base, exponent):
    """base ** exponent, refused before computing when the result would be huge or complex."""
    if base < 0 and not float(exponent).is_integer():
        raise ValueError("a negative number to a fractional power is not a real number")
    if abs(base) > 1 and exponent * math.log10(abs(base)) > math.log10(MAX_MAGNITUDE):
        raise ValueError(f"{base:g}**{exponent:g} is beyond ±{MAX_MAGNITUDE:g}")
    if base == 0 and exponent < 0:
        raise ZeroDivisionError("0 to a negative power")
    return base ** exponent


_OPS[ast.Pow] = _power


def evaluate(expression: str, names: dict[str, float]) -> float:
    """Arithmetic over numbers and the cell's names; nothing else is allowed, and every step is
    bounded (see _bounded) so no expression can hang or overflow."""
    if len(expression) > MAX_EXPRESSION:
        raise ValueError(f"it is longer than {MAX_EXPRESSION} characters")

    def walk(node):
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return _bounded(node.value)
        if isinstance(node, ast.Name) and node.id in names:
            return _bounded(names[node.id])
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _bounded(_OPS[type(node.op)](walk(node.left), walk(node.right)))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            value = walk(node.operand)
            return -value if isinstance(node.op, ast.USub) else value
        raise ValueError(f"'{ast.unparse(node)[:60]}' is not arithmetic over {', '.join(sorted(names)) or 'numbers'}")
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
        out = copy.copy(node)           # a LineList keeps its item lines
        out[:] = [_substitute(v, names, path, item_line(node, i, line)) for i, v in enumerate(node)]
        return out
    if isinstance(node, str) and "${" in node:
        try:
            return _EXPR.sub(lambda m: _number(evaluate(m.group(1), names)), node)
        except (ArithmeticError, ValueError, TypeError, SyntaxError, RecursionError, MemoryError) as exc:
            shown = node if len(node) <= 80 else node[:77] + "..."
            raise UserError(f"cannot work out {shown!r}: {exc}.", file=str(path), line=line,
                            fix="write ${...} with + - * / ** and the matrix's names, e.g. ${2**(tcp_syn_retries+1)-1}s.")
    return node


Dimension = tuple[str, str, list, int]      # (host | "all" | "links", name, values, line)


def _values(values: object, name: str, path: Path, line: int, example: str) -> list:
    """A dimension's values: a non-empty list of distinct numbers or short texts (each becomes
    part of a folder name and a sysctl or link value)."""
    values = expect_type(values, list, path, line, name, example)
    if not values:
        raise UserError(f"the matrix gives {name} no values.", file=str(path), line=line, fix=f"write it like {example}.")
    seen = set()
    for i, value in enumerate(values):
        if not isinstance(value, (int, float, str)) or isinstance(value, bool):
            raise UserError(f"a value of {name} has the wrong form ({str(value)[:40]}).", file=str(path),
                            line=item_line(values, i, line), fix=f"give numbers or short texts, e.g. {example}.")
        if value in seen:
            raise UserError(f"{name} lists {value!r} twice: both cells would share one results folder.", file=str(path),
                            line=item_line(values, i, line), fix="give each value once; use repeat: N to run a cell N times.")
        seen.add(value)
    return values


def _dimensions(matrix: LineDict, path: Path) -> tuple[list[Dimension], int]:
    dims, repeat = [], 1
    for key, value in matrix.items():
        line = matrix.line_of(key)
        if key == "repeat":
            repeat = expect_type(value, int, path, line, "repeat", "repeat: 3")
            if repeat < 1:
                raise UserError("repeat must be at least 1.", file=str(path), line=line, fix="write repeat: 1 or more.")
        elif key == "links":
            for name, values in expect_type(value, LineDict, path, line, key, "links: {delay: [10ms, 50ms]}").items():
                if name not in LINK_PARAMETERS:
                    raise UserError(f"'{str(name)[:40]}' is not a link parameter.", file=str(path), line=value.line_of(name),
                                    fix=f"use one of {', '.join(LINK_PARAMETERS)}.")
                dims.append(("links", name, _values(values, name, path, value.line_of(name), f"{name}: [10ms, 50ms]"),
                             value.line_of(name)))
        elif isinstance(key, str) and "." in key:
            dims.append(("all", sysctl_name(key, path, line), _values(value, key, path, line, f"{key}: [0, 1]"), line))
        else:
            if not isinstance(key, str):
                raise UserError(f"matrix key {key!r} is not a host, all, links, repeat or a sysctl name.", file=str(path),
                                line=line, fix="write e.g. client: {net.ipv4.tcp_syn_retries: [1, 2]}.")
            for name, values in expect_type(value, LineDict, path, line, key, f"{key}: {{net.ipv4.tcp_syn_retries: [1, 2]}}").items():
                name_line = value.line_of(name)
                dims.append((key, sysctl_name(name, path, name_line), _values(values, name, path, name_line, f"{name}: [1, 2]"),
                             name_line))
    for host, name, values, line in dims:
        if host != "links":
            for i, one in enumerate(values):
                sysctl_value(one, name, path, item_line(values, i, line))
    return dims, repeat


def count_cells(dims: list[Dimension], repeat: int) -> int:
    """How many cells the matrix makes, computed without making them."""
    return math.prod(len(values) for _, _, values, _ in dims) * repeat


def _check_size(cells: int, data: LineDict, path: Path, line: int, max_cells: int) -> None:
    if cells > max_cells:
        raise UserError(f"the matrix makes {cells:,} cells (values of each dimension multiplied, times repeat); "
                        f"the limit is {max_cells:,}.", file=str(path), line=line,
                        fix=f"give fewer values, or raise the limit with run-experiment --max-cells {cells}.")
    work = cells * max(data.nodes, 1)
    if work > max_cells * VALUES_PER_CELL:
        raise UserError(f"the matrix makes {cells:,} cells of a file of {data.nodes:,} YAML values: loading them all means "
                        f"{work:,} values, over the limit of {max_cells * VALUES_PER_CELL:,}.", file=str(path), line=line,
                        fix=f"give fewer values or a shorter file, or raise the limit with run-experiment --max-cells "
                            f"{-(-work // VALUES_PER_CELL)}.")


def _cell_sysctls(cell_data: LineDict, settings: dict, lines: dict) -> None:
    """Add the cell's per-host sysctls to its data, keeping the matrix's lines for errors."""
    sysctls = cell_data.setdefault("sysctls", LineDict())
    if not isinstance(sysctls, LineDict):
        return                                   # refused with its line by load_sysctls
    if not sysctls.line:
        sysctls.line, sysctls.key_lines = lines["matrix"], {}
    for host, values in settings.items():
        if host not in sysctls:
            sysctls[host] = LineDict()
            sysctls[host].line, sysctls[host].key_lines = lines[host], {}
            sysctls.key_lines[host] = lines[host]
        target = sysctls[host]
        if isinstance(target, LineDict):
            for name, value in values.items():
                target[name] = value
                target.key_lines[name] = lines[(host, name)]


def load_cells(path: Path, max_cells: int = MAX_CELLS, interfaces: frozenset[str] | None = None) -> list[Cell]:
    """Every cell of the experiment in `path` (one cell, label "", when it has no matrix).
    The cells are counted before any is made: past `max_cells` the file is refused."""
    data = load_yaml(path)
    if "matrix" not in data:
        return [Cell("", {}, 1, experiment_from_data(data, path, interfaces))]
    matrix_line = data.line_of("matrix")
    matrix = expect_type(data.pop("matrix"), LineDict, path, matrix_line, "matrix",
                         "{client: {net.ipv4.tcp_syn_retries: [1, 2, 3]}, repeat: 2}")
    dims, repeat = _dimensions(matrix, path)
    _check_size(count_cells(dims, repeat), data, path, matrix_line, max_cells)
    lines = {"matrix": matrix_line, **{(host, name): line for host, name, _, line in dims},
             **{host: matrix.line_of(host) for host, _, _, _ in dims}}
    cells, folders = [], {}
    for combo in itertools.product(*[values for _, _, values, _ in dims]):
        settings: dict[str, dict] = {}
        names: dict[str, float] = {}
        for (host, name, _, line), value in zip(dims, combo):
            settings.setdefault(host, {})[name] = value
            if host == "links":
                names[name] = _link_number(name, value, path, line)
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                names[name.rsplit(".", 1)[-1]] = value
        label = ",".join(f"{name.rsplit('.', 1)[-1]}={value}" + (f"@{host}" if host not in ("all", "links") else "")
                         for (host, name, _, _), value in zip(dims, combo))
        links = settings.pop("links", {})
        for r in range(1, repeat + 1):
            # _substitute builds new mappings and lists, so the sysctls added below stay in this cell
            cell_data = _substitute(data, {**names, "repeat": r}, path, data.line)
            _cell_sysctls(cell_data, settings, lines)
            experiment = _with_links(experiment_from_data(cell_data, path, interfaces), links, path, matrix_line)
            cell = Cell(label + (f"#{r}" if repeat > 1 else ""), {**settings, **({"links": links} if links else {})},
                        r, experiment)
            folder = cell_folder(cell.label)
            if folder in folders:
                raise UserError(f"the cells {folders[folder]!r} and {cell.label!r} would share the results folder {folder!r}.",
                                file=str(path), line=matrix_line, fix="give values that differ in letters or digits.")
            folders[folder] = cell.label
            cells.append(cell)
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
