"""Named sockets at load: which sockets each host has, the one every step acts on, and socket
options as the ints the kernel takes. Resolved here once, so the agent (each socket a lane) and
the judge (each socket its own expectations) never guess which connection a step meant."""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from harness.errors import UserError
from harness.load.units import MAX_COUNT, bounded_int, parse_bytes, parse_seconds
from harness.model import SOCKET_OPTIONS, Step, accepted_name, listener_name

NAME_RE = r"[a-z][a-z0-9_]{0,30}"                        # an `as:` name
SUBJECT_RE = r"[a-z]\w*(?::[0-9]+)?(?:#[0-9]+)?"          # a host, an as: name or an automatic name
_AUTOMATIC = re.compile(r"([a-z][a-z0-9]*):([0-9]{1,5})(?:#([0-9]{1,7}))?")
MAKERS = ("connect", "accept")                           # the steps that make a named socket
SHOWN_NAMES = 6                                          # names listed in an error before "..."
_MEMBER = re.compile(r"([a-z][a-z0-9_]*)#([0-9]{1,7}|\*)")   # c#3 (a member of group c#*), or c#* itself


def member_name(name: str, nth: int) -> str:
    """The Nth socket of a `times:` connect named `name`: c#3."""
    return f"{name}#{nth}"


def group_name(name: str) -> str:
    """The group of every socket a `times:` connect named `name` made: c#*."""
    return f"{name}#*"


@dataclass(frozen=True)
class SocketTable:
    """Every host's sockets as its steps make them, so names in steps and expectations can be checked."""
    hosts: tuple[str, ...]
    made: dict[str, tuple[str, ...]] = field(default_factory=dict)       # host -> connect/accept names, file order
    listeners: dict[str, tuple[int, ...]] = field(default_factory=dict)  # host -> ports it listens on
    connects: dict[str, tuple[str, ...]] = field(default_factory=dict)   # host -> its connect steps' names
    accepts: dict[tuple[str, int], tuple[str, ...]] = field(default_factory=dict)   # (host, port) -> accept names
    incoming: dict[tuple[str, int], int] = field(default_factory=dict)   # (host, port) -> connects aimed at it
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)    # "c#*" -> c#1 ... c#N (a times: connect)

    def is_group(self, name: object) -> bool:
        return isinstance(name, str) and name in self.groups

    def grouped(self, names: tuple[str, ...]) -> tuple[str, ...]:
        """`names` with each group's members shown once, as the group (for errors: c#*, not c#1 ... c#100)."""
        out: list[str] = []
        for name in names:
            m = _MEMBER.fullmatch(name)
            shown_as = group_name(m.group(1)) if m and group_name(m.group(1)) in self.groups else name
            if shown_as not in out:
                out.append(shown_as)
        return tuple(out)

    def group_hint(self, name: object) -> str:
        """Why a NAME#K or NAME#* names no socket, when NAME is (or is not) a group ('' otherwise)."""
        m = _MEMBER.fullmatch(name) if isinstance(name, str) else None
        if not m and isinstance(name, str) and group_name(name) in self.groups:
            m = _MEMBER.fullmatch(group_name(name))
        if not m or m.group(1) in self.hosts:
            return ""
        members = self.groups.get(group_name(m.group(1)))
        if not members:
            known = ", ".join(self.groups) or "none"
            return f" (no connect with as: {m.group(1)} and times: made a group; groups: {known})"
        return f" (group {group_name(m.group(1))} has {members[0]} ... {members[-1]})"

    def owner(self, name: object) -> str | None:
        """The host a socket name belongs to (None: no socket of the experiment is called so)."""
        for host, names in self.made.items():
            if name in names:
                return host
        m = _AUTOMATIC.fullmatch(name) if isinstance(name, str) else None
        if not m or int(m.group(2)) not in self.listeners.get(m.group(1), ()):
            return None
        return m.group(1) if m.group(3) is None or 1 <= int(m.group(3)) <= MAX_COUNT else None

    def named(self) -> str:
        """The connect/accept sockets' names, for an error's fix ('' when there are none)."""
        return shown(tuple(n for names in self.made.values() for n in names))

    def is_subject(self, name: object) -> bool:
        """A host or a socket: what an expectation, an event or a packet's from: may name."""
        return name in self.hosts or self.owner(name) is not None

    def default(self, host: str) -> tuple[str | None, tuple[str, ...]]:
        """(the host's only socket, ()) or (None, the candidates) when it has several; (None, ()) for none."""
        made = self.made.get(host, ())
        if len(made) == 1 and self.grouped(made) == made:
            return made[0], ()
        if made:
            return None, self.grouped(made)      # a times: connect makes several sockets, even times: 1
        ports = self.listeners.get(host, ())
        if len(ports) == 1:
            return accepted_name(host, ports[0], 1), ()
        return None, tuple(accepted_name(host, p, 1) for p in ports)

    def connections(self, host: str) -> tuple[str, ...]:
        """The names of a host's connections: its connects, and per listener its accept steps or,
        when more connects aim at it than accept steps take, the automatic names of them all."""
        names = list(self.connects.get(host, ()))
        for port in self.listeners.get(host, ()):
            named, aimed = self.accepts.get((host, port), ()), self.incoming.get((host, port), 0)
            names += named if len(named) >= aimed else [accepted_name(host, port, n) for n in range(1, aimed + 1)]
        return tuple(names)


def quoted(name: str) -> str:
    """A name as a YAML key or value must be written: automatic names (server:5001#1) in quotes."""
    return f'"{name}"' if ":" in name or "#" in name else name


def shown(names: tuple[str, ...]) -> str:
    return ", ".join(names[:SHOWN_NAMES]) + (", ..." if len(names) > SHOWN_NAMES else "")


def socket_table(steps: tuple[Step, ...], hosts: tuple[str, ...]) -> SocketTable:
    """The sockets the steps make (connect/accept names already set on the steps)."""
    made: dict[str, list[str]] = {}
    listeners: dict[str, list[int]] = {}
    connects: dict[str, list[str]] = {}
    accepts: dict[tuple[str, int], list[str]] = {}
    incoming: dict[tuple[str, int], int] = {}
    groups: dict[str, list[str]] = {}
    for step in steps:
        if step.action in MAKERS:
            made.setdefault(step.host, []).append(step.socket)
        if step.action == "listen" and step.port not in listeners.get(step.host, []):
            listeners.setdefault(step.host, []).append(step.port)
        if step.action == "connect":
            connects.setdefault(step.host, []).append(step.socket)
            if step.peer != step.host:
                incoming[(step.peer, step.port)] = incoming.get((step.peer, step.port), 0) + 1
        if step.action == "accept":
            accepts.setdefault((step.host, step.port), []).append(step.socket)
        member = _MEMBER.fullmatch(step.socket or "") if step.action == "connect" else None
        if member and member.group(1) not in hosts:     # NAME#K of a times: connect (HOST#N: an unnamed connect)
            groups.setdefault(group_name(member.group(1)), []).append(step.socket)
    frozen = lambda table: {k: tuple(v) for k, v in table.items()}    # noqa: E731
    return SocketTable(hosts, frozen(made), frozen(listeners), frozen(connects), frozen(accepts), incoming,
                       frozen(groups))


def resolve_sockets(steps: tuple[Step, ...], table: SocketTable, path: Path) -> tuple[Step, ...]:
    """Every step's socket: a written socket: checked to be the host's, else the host's only one."""
    out = []
    for step in steps:
        if step.action == "accept" and step.port not in table.listeners.get(step.host, ()):
            raise UserError(f"{step.host} accepts on port {step.port}, where it does not listen.", file=str(path),
                            line=step.index, fix=f"add {{at: 0s, on: {step.host}, listen: {step.port}}} or accept "
                                                 "on a port the host listens on.")
        if step.action in (*MAKERS, "listen"):
            out.append(step)
        elif step.socket is not None:
            out += [_written(one, table, path) for one in _members(step, table, path)]
        else:
            out.append(replace(step, socket=_default(step, table, path)))
    return tuple(out)


def _members(step: Step, table: SocketTable, path: Path) -> list[Step]:
    """A step on a group (socket: "c#*"): one step per member, each on its member's lane; else the step."""
    if not (step.socket.endswith("#*") and _MEMBER.fullmatch(step.socket)):
        return [step]
    members = table.groups.get(step.socket)
    owner = table.owner(members[0]) if members else None
    if owner != step.host:
        where = f"is a group of {owner}'s sockets, not of {step.host}'s" if owner else \
            f"names no group of sockets{table.group_hint(step.socket)}"
        mine = tuple(g for g in table.groups if table.owner(table.groups[g][0]) == step.host)
        raise UserError(f"socket: {step.socket!r} {where}.", file=str(path), line=step.index,
                        fix=(f"name one of {step.host}'s groups: {shown(tuple(map(quoted, mine)))}" if mine else
                             "a group is made by a connect with as: and times: ({on: client, connect: server:5001, "
                             "as: c, times: 100} makes c#1 ... c#100, all of them socket: \"c#*\")") + ".")
    return [replace(step, socket=member) for member in members]


def _written(step: Step, table: SocketTable, path: Path) -> Step:
    owner = table.owner(step.socket)
    if owner != step.host:
        where = f"is a socket of {owner}, not of {step.host}" if owner else \
            f"names no socket of the experiment{table.group_hint(step.socket)}"
        mine = (*table.grouped(table.made.get(step.host, ())),
                *(listener_name(step.host, p) for p in table.listeners.get(step.host, ())))
        raise UserError(f"socket: {step.socket!r} {where}.", file=str(path), line=step.index,
                        fix=f"name one of {step.host}'s sockets: " + (shown(mine) + (", or HOST:PORT#N for the Nth "
                            "connection a listener accepted" if table.listeners.get(step.host) else "")
                            if mine else f"{step.host} makes none (give it a connect, accept or listen step)") + ".")
    m = _AUTOMATIC.fullmatch(step.socket)
    named = table.accepts.get((step.host, int(m.group(2))), ()) if m and m.group(3) else ()
    if named and int(m.group(3)) <= len(named):
        # the same connection under its accept step's name would run in a lane of its own, in no
        # order with this one (and a close in one would not stop a read blocked in the other)
        raise UserError(f"socket: {step.socket!r} is a connection an accept step of port {m.group(2)} names "
                        f"({shown(named)}).", file=str(path), line=step.index,
                        fix=f"use the accept step's name: the Nth accept step of a port takes its Nth connection "
                            f"(socket: {named[int(m.group(3)) - 1]}).")
    return step


def _default(step: Step, table: SocketTable, path: Path) -> str | None:
    name, candidates = table.default(step.host)
    if candidates:
        raise UserError(f"{step.host} has several sockets ({shown(candidates)}): say which with socket: {candidates[0]}.",
                        file=str(path), line=step.index,
                        fix=f"add socket: {quoted(candidates[0])} (or another of them) to this {step.action} step.")
    return name


def check_name(name: object, hosts: tuple[str, ...], seen: set[str], path: Path, line: int) -> str:
    """An as: name: the naming rule, not a host, not used twice."""
    if not isinstance(name, str) or not re.fullmatch(NAME_RE, name):
        raise UserError(f"as: {name!r} is not a socket name.", file=str(path), line=line,
                        fix="use 1-31 lower-case letters, digits or '_', starting with a letter, e.g. as: a.")
    if name in hosts:
        raise UserError(f"as: {name} is the name of a host.", file=str(path), line=line,
                        fix=f"give the socket a name no host has, e.g. as: {name}_1.")
    if name in seen:
        raise UserError(f"as: {name} names a second socket.", file=str(path), line=line,
                        fix="give every socket its own name.")
    seen.add(name)
    return name


# -- socket options ----------------------------------------------------------------------------

MAX_OPTION = 2**31 - 1
# the kernel's own ranges where it refuses more (include/net/tcp.h MAX_TCP_*; IP_TTL 1-255)
OPTION_RANGES = {"TCP_SYNCNT": (1, 127), "TCP_KEEPCNT": (1, 127), "TCP_KEEPIDLE": (1, 32767),
                 "TCP_KEEPINTVL": (1, 32767), "IP_TTL": (1, 255)}
UNIT_EXAMPLES = {"bool": "true", "int": "3", "bytes": "64KiB", "s": "60s", "ms": "2s (or 1500ms)",
                 "linger": "0 (an abortive close: RST) or 5s"}


def _whole(value: float, unit: str) -> int:
    if abs(value - round(value)) > 1e-6:
        raise ValueError(f"it is not a whole number of {unit}")
    return int(round(value))


def _converted(unit: str, value: object, low: int, high: int) -> int:
    """A written value as the int setsockopt takes, by the option's unit (ValueError: why not)."""
    if unit == "bool":
        if isinstance(value, bool) or value in (0, 1) and isinstance(value, int):
            return int(value)
        raise ValueError(f"{value!r} is not true or false")
    if unit == "int" or unit == "linger" and isinstance(value, int) and not isinstance(value, bool):
        return bounded_int(value, low, high)
    if unit == "bytes":
        return parse_bytes(value)
    if unit == "ms":
        return _whole(parse_seconds(value) * 1000, "milliseconds")
    return _whole(parse_seconds(value), "seconds")          # s, and linger as a duration


def option_value(name: str, value: object) -> int:
    """`value` for socket option `name` (a key of SOCKET_OPTIONS), in the kernel's range."""
    low, high = OPTION_RANGES.get(name, (0, MAX_OPTION))
    number = _converted(SOCKET_OPTIONS[name][2], value, low, high)
    if not low <= number <= high:
        raise ValueError(f"{number} is outside {low} to {high}")
    return number
