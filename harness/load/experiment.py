"""Experiment YAML -> Experiment model (with its topology loaded)."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from harness.claims import CLAIM_NUMBERS
from harness.errors import UserError
from harness.load.expectations import load_expectations
from harness.load.inject import resolve_injects
from harness.load.facts import RunFacts
from harness.load.names import optional_sysctl_name, safe_component, sysctl_value
from harness.load.substitute import Substitution
from harness.load.sockets import socket_table
from harness.load.steps import load_steps
from harness.load.topology import load_topology
from harness.load.units import parse_seconds
from harness.load.yaml_lines import LineDict, check_keys, expect_type, item_line, load_yaml
from harness.model import Experiment
from harness.shipped import experiments_dir, topologies_dir


def resolve_experiment_path(name: str) -> Path:
    """'handshake.yaml' or 'handshake' -> experiments/handshake.yaml when not a path that exists.
    Only .yaml/.yml files are read: an error must never quote some other file's content."""
    path = Path(name)
    if path.exists():
        if path.suffix not in (".yaml", ".yml"):
            raise UserError("an experiment file's name ends in .yaml.", file=name,
                            fix="give the experiment's .yaml file (or a folder of them).")
        return path
    shipped = experiments_dir()
    # a bare name, or one inside a shipped subfolder (packetdrill/close-on-syn-sent): never outside it
    if "\0" not in name and not path.is_absolute() and ".." not in path.parts:
        for candidate in (shipped / name, shipped / f"{name}.yaml"):
            if candidate.suffix in (".yaml", ".yml") and candidate.is_file():
                return candidate
    known = ", ".join(sorted(str(p.relative_to(shipped)) for p in [*shipped.glob("*.yaml"), *shipped.glob("*/*.yaml")]))
    raise UserError(f"no experiment file '{name[:80]}' here or in experiments/.", file=name[:200],
                    fix=f"give a path, or one of: {known}.")


def load_experiment(path: Path) -> Experiment:
    """One experiment file without a matrix (see load_cells for files with one)."""
    data = load_yaml(path)
    if "matrix" in data:
        raise UserError("this experiment has a matrix: it is a set of cells.", file=str(path), line=data.line_of("matrix"),
                        fix="load it with harness.load.load_cells (run-experiment does).")
    from harness.load.matrix import load_cells       # ${...}, let: and when: worked out as for a run
    return load_cells(path)[0].experiment


EXPERIMENT_KEYS = ("name", "about", "claims", "topology", "duration", "steps", "sysctls", "expect")   # + matrix, let (matrix.py)
EXPERIMENT_REQUIRED = ("name", "topology", "steps", "expect")


def experiment_from_data(data: LineDict, path: Path, interfaces: frozenset[str] | None = None) -> Experiment:
    """`interfaces`: the interface names node names must not clash with (None: this machine's now;
    a remote target passes an empty set, as the remote run checks its own)."""
    check_keys(data, set(EXPERIMENT_KEYS), set(EXPERIMENT_REQUIRED), path, "an experiment")
    name = safe_component(data["name"], "the experiment name", path, data.line_of("name"))
    about = expect_type(data.get("about", ""), str, path, data.line_of("about"), "about", "about: a sentence or two")
    claims = load_claims(data.get("claims", []), path, data.line_of("claims"))
    topo_path = topology_path(data["topology"], path, data.line_of("topology"))
    topology = load_topology(topo_path, interfaces)
    steps, network = load_steps(expect_type(data["steps"], list, path, data.line_of("steps"), "steps", "a list of steps"), topology, path,
                                data.line_of("steps"))
    network = resolve_injects(network, steps, socket_table(steps, topology.hosts), path)
    try:
        duration = parse_seconds(data.get("duration", "2s"))
    except ValueError as exc:
        raise UserError(f"duration: {exc}.", file=str(path), line=data.line_of("duration"))
    last_at = max((s.at_s for s in (*steps, *network) if s.at_s is not None), default=0.0)
    if duration <= last_at:
        raise UserError("duration ends before the last timed step.", file=str(path), line=data.line_of("duration"),
                        fix=f"make it longer than {last_at:g}s.")
    sysctls, optional = load_sysctls(data.get("sysctls", LineDict()), topology.hosts, path, data.line_of("sysctls"))
    expect = load_expectations(expect_type(data["expect"], LineDict, path, data.line_of("expect"), "expect", "a mapping"),
                               topology.hosts, path, socket_table(steps, topology.hosts))
    if network and topology.switch_kind != "bridge":
        raise UserError("network steps need Linux bridge switches (their rules are nftables bridge rules, "
                        "which Open vSwitch's datapath bypasses).", file=str(path), line=network[0].index,
                        fix="use a topology with switch: bridge.")
    return Experiment(name, topology, duration, steps, sysctls, expect, path, network, about.strip(), optional,
                      claims=claims)


def load_claims(raw: object, path: Path, line: int) -> tuple[int, ...]:
    """`claims: [5, 6]`: the seed's claims (harness/claims) the experiment tests, each once, so the
    claims report can judge a claim by the runs of the experiments that declare it."""
    low, high = CLAIM_NUMBERS[0], CLAIM_NUMBERS[-1]
    fix = f"write claims: [5, 6] with numbers {low}-{high} (the seed's claims, ../shared/BRIEF.md §6), each once."
    items = expect_type(raw, list, path, line, "claims", "claims: [5, 6]")
    seen: list[int] = []
    for i, number in enumerate(items):
        where = item_line(items, i, line)
        if not isinstance(number, int) or isinstance(number, bool) or number not in CLAIM_NUMBERS:
            shown = repr(number) if len(repr(number)) <= 40 else repr(number)[:37] + "..."
            raise UserError(f"claims: {shown} is not a claim number ({low}-{high}).", file=str(path), line=where, fix=fix)
        if number in seen:
            raise UserError(f"claims: {number} is listed twice.", file=str(path), line=where, fix=fix)
        seen.append(number)
    return tuple(seen)


def with_facts(experiment: Experiment, facts: RunFacts) -> Experiment:
    """The experiment with expect: and about: worked out again from the lab's facts (the kernel
    that runs, the sysctls read back), when they read any; otherwise unchanged."""
    source = experiment.expect_source
    if source is None:
        return experiment
    raw = LineDict(expect=source.expect, about=source.about, **({"let": source.let} if source.let is not None else {}))
    raw.line, raw.key_lines = 1, {key: getattr(value, "line", 1) for key, value in raw.items()}
    data = Substitution(dict(source.names), experiment.source, facts).data(raw, fact_parts=True)
    path = experiment.source
    hosts = experiment.topology.hosts
    expect = load_expectations(expect_type(data["expect"], LineDict, path, raw.line_of("expect"), "expect", "a mapping"),
                               hosts, path, socket_table(experiment.steps, hosts))
    about = expect_type(data.get("about") or "", str, path, 1, "about", "about: a sentence or two")
    return replace(experiment, expect=expect, about=about.strip())


def load_sysctls(raw: object, hosts: tuple[str, ...], path: Path,
                 line: int) -> tuple[dict[str, dict[str, str]], frozenset[str]]:
    """{all|host: {dotted.name: value}}, every name and value checked before it can reach /proc/sys;
    and the names marked optional (`net.ipv4.tcp_syn_linear_timeouts?: 0`: skipped where the kernel
    lacks them)."""
    raw = expect_type(raw, LineDict, path, line, "sysctls", "sysctls: {all: {net.ipv4.tcp_timestamps: 1}}")
    sysctls: dict[str, dict[str, str]] = {}
    optional: set[str] = set()
    for host, values in raw.items():
        host_line = raw.line_of(host)
        if host != "all" and host not in hosts:
            raise UserError(f"sysctls for unknown host {str(host)[:40]!r}.", file=str(path), line=host_line,
                            fix=f"use all or one of: {', '.join(hosts)}.")
        values = expect_type(values, LineDict, path, host_line, f"the sysctls of {host}",
                             f"{host}: {{net.ipv4.tcp_syn_retries: 3}}")
        sysctls[host] = {}
        for key, value in values.items():
            name, is_optional = optional_sysctl_name(key, path, values.line_of(key))
            if value == "default":
                raise UserError(f"{name}: default is a matrix value (a cell that leaves the sysctl alone).",
                                file=str(path), line=values.line_of(key),
                                fix="to keep the kernel's default, leave the sysctl out of sysctls:.")
            sysctls[host][name] = sysctl_value(value, name, path, values.line_of(key))
            if is_optional:
                optional.add(name)
    return sysctls, frozenset(optional)


def topology_path(ref: object, path: Path, line: int) -> Path:
    """`topology:` is a bare name or a relative .yaml path; it must resolve to a file inside the
    experiment's folder or topologies/. Anything else is refused without reading (or quoting) it."""
    fix = "give a topology name from topologies/ (e.g. two_hosts) or a relative .yaml path next to the experiment."
    if not isinstance(ref, str) or not ref or len(ref) > 255 or ref.startswith("/") or "\\" in ref:
        raise UserError("topology: must be a name or a relative path to a .yaml file.", file=str(path), line=line, fix=fix)
    if not ref.endswith((".yaml", ".yml")):
        if "/" in ref:
            raise UserError("a topology path must end in .yaml.", file=str(path), line=line, fix=fix)
        ref += ".yaml"
    roots = [path.parent.resolve(), topologies_dir().resolve()]
    for root in roots:
        candidate = root / ref
        try:
            real = candidate.resolve()
        except (OSError, RuntimeError):
            continue
        if any(real.is_relative_to(r) for r in roots) and real.is_file():
            return candidate
    raise UserError(f"topology {ref[:80]!r} is not a .yaml file inside the experiment's folder or topologies/.",
                    file=str(path), line=line, fix=fix)
