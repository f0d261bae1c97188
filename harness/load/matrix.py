"""`matrix:` -> cells: one experiment per combination of settings (and per repeat).

    matrix:
      client: {net.ipv4.tcp_syn_retries: [1, 2, 3]}   # per host, or `all:`, or a bare sysctl name
      links: {delay: [10ms, 50ms], loss: [0%, 1%]}    # every link, both directions
      repeat: 2

Strings anywhere in the file may hold `${expression}` over the cell's settings, named by the
sysctl's last part (tcp_syn_retries), a link parameter's name (delay, in seconds) and `repeat`
(and, under expect:, the run's kernel and sysctls: harness.load.expressions); each cell is loaded
and checked as a whole experiment after substitution, so one file asserts the whole sweep. A
swept sysctl written `name?` is optional (skipped where the kernel lacks it); the value `default`
leaves it at the kernel's default.
"""
from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass, replace
from pathlib import Path

from harness.errors import UserError
from harness.load.experiment import experiment_from_data, topology_path
from harness.load.facts import provisional_facts
from harness.load.names import cell_folder, optional_sysctl_name, sysctl_value
from harness.load.substitute import Substitution
from harness.load.topology import impairment_from, load_topology
from harness.load.yaml_lines import LineDict, expect_type, item_line, load_yaml
from harness.model import Experiment, ExpectSource


@dataclass(frozen=True)
class Cell:
    label: str                      # "tcp_syn_retries=2" ("" for a file without a matrix)
    settings: dict                  # {host: {sysctl: value}}
    repeat: int                     # 1-based
    experiment: Experiment


LEAVE_AS_IS = "default"        # a matrix value that leaves the sysctl at the kernel's default
MAX_CELLS = 1000               # default; run-experiment --max-cells raises it
VALUES_PER_CELL = 500          # loading work allowed per cell: cells x values in the file


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
            dims.append(("all", _dimension_name(key, path, line), _values(value, key, path, line, f"{key}: [0, 1]"), line))
        else:
            if not isinstance(key, str):
                raise UserError(f"matrix key {key!r} is not a host, all, links, repeat or a sysctl name.", file=str(path),
                                line=line, fix="write e.g. client: {net.ipv4.tcp_syn_retries: [1, 2]}.")
            for name, values in expect_type(value, LineDict, path, line, key, f"{key}: {{net.ipv4.tcp_syn_retries: [1, 2]}}").items():
                name_line = value.line_of(name)
                dims.append((key, _dimension_name(name, path, name_line), _values(values, name, path, name_line, f"{name}: [1, 2]"),
                             name_line))
    for host, name, values, line in dims:
        if host != "links":
            for i, one in enumerate(values):
                sysctl_value(one, name, path, item_line(values, i, line))
    return dims, repeat


def _dimension_name(text: object, path: Path, line: int) -> str:
    """A swept sysctl's name, keeping a trailing ? (optional: skipped where the kernel lacks it)."""
    name, optional = optional_sysctl_name(text, path, line)
    return name + ("?" if optional else "")


def short_name(name: str) -> str:
    """net.ipv4.tcp_syn_retries? -> tcp_syn_retries: how labels and ${...} call a swept sysctl."""
    return name.rsplit(".", 1)[-1].rstrip("?")


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
    if not settings:
        return
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
                if value == LEAVE_AS_IS:         # the kernel's own default: not written, even where the file sets it
                    target.pop(name, None)
                    target.pop(name.rstrip("?") if name.endswith("?") else name + "?", None)
                    continue
                target[name] = value
                target.key_lines[name] = lines[(host, name)]


def _cell_experiment(data: LineDict, names: dict, settings: dict, lines: dict, path: Path,
                     interfaces: frozenset[str] | None) -> Experiment:
    """One cell: its names put into the lab's parts, its sysctls added, then expect: and about:
    worked out with provisional facts (the runner works them out again with the lab's)."""
    sub = Substitution(dict(names), path)
    # Substitution builds new mappings and lists, so the sysctls added here stay in this cell
    cell_data = sub.data(data, fact_parts=False)
    _cell_sysctls(cell_data, settings, lines)
    sub.facts = provisional_facts(_wanted_sysctls(cell_data.get("sysctls")),
                                  functools.cache(lambda: _hosts(cell_data, path, interfaces)))
    experiment = experiment_from_data(sub.data(cell_data, fact_parts=True), path, interfaces)
    if not sub.use:
        return experiment
    unknown = sorted(set(sub.use.sysctls) - set(experiment.topology.hosts))     # in a branch not taken here
    if unknown:
        raise UserError(f"expect: reads sysctls of {', '.join(unknown)}, which the topology does not have.",
                        file=str(path), line=data.line_of("expect"),
                        fix=f"write HOST.sysctl with one of: {', '.join(experiment.topology.hosts)}.")
    _check_every_branch(cell_data, names, path, interfaces, sub.facts)
    source = ExpectSource(data.get("expect"), data.get("about", ""), names, sub.use.kernel,
                          {host: frozenset(found) for host, found in sub.use.sysctls.items()}, data.get("let"))
    return replace(experiment, expect_source=source)


def _check_every_branch(cell_data: LineDict, names: dict, path: Path, interfaces: frozenset[str] | None,
                        facts) -> None:
    """Load the expectations once more with every `when:` kept: one meant for another kernel is
    checked here, with its file and line, not first in that kernel's VM after its lab is built."""
    every = Substitution(dict(names), path, facts, every_branch=True)
    experiment_from_data(every.data(cell_data, fact_parts=True), path, interfaces)


def _hosts(cell_data: LineDict, path: Path, interfaces: frozenset[str] | None) -> tuple[str, ...] | None:
    """The topology's hosts, so HOST.sysctl names a real one (None: the topology is refused later,
    by experiment_from_data, with its own message)."""
    try:
        return load_topology(topology_path(cell_data.get("topology"), path, cell_data.line_of("topology")),
                             interfaces).hosts
    except UserError:
        return None


def _wanted_sysctls(raw: object) -> dict[str, dict[str, str]]:
    """The cell's sysctls as written ({host|all: {name: value}}; a trailing ? dropped), for the provisional facts."""
    if not isinstance(raw, dict):
        return {}
    return {host: {str(k).rstrip("?"): str(v) for k, v in values.items()}
            for host, values in raw.items() if isinstance(values, dict)}


def load_cells(path: Path, max_cells: int = MAX_CELLS, interfaces: frozenset[str] | None = None) -> list[Cell]:
    """Every cell of the experiment in `path` (one cell, label "", when it has no matrix).
    The cells are counted before any is made: past `max_cells` the file is refused."""
    data = load_yaml(path)
    if "matrix" not in data:
        return [Cell("", {}, 1, _cell_experiment(data, {}, {}, {}, path, interfaces))]
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
                names[short_name(name)] = value
        label = ",".join(f"{short_name(name)}={value}" + (f"@{host}" if host not in ("all", "links") else "")
                         for (host, name, _, _), value in zip(dims, combo))
        links = settings.pop("links", {})
        for r in range(1, repeat + 1):
            experiment = _with_links(_cell_experiment(data, {**names, "repeat": r}, settings, lines, path, interfaces),
                                     links, path, matrix_line)
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
