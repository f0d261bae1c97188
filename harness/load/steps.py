"""The `steps:` timeline -> Step models. Each socket's steps run in file order (a lane); `at:` pins a start."""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from harness.errors import UserError
from harness.load.sockets import UNIT_EXAMPLES, check_name, member_name, option_value, resolve_sockets, socket_table
from harness.load.segment_fields import parse_length, parse_options
from harness.load.units import MAX_COUNT, PORT_RANGE, bounded_int, parse_bytes, parse_seconds
from harness.load.yaml_lines import LineDict, check_keys, expect_type, item_line
from harness.model import SOCKET_OPTIONS, TCP_STATE_ORDER, NetworkStep, PacketMatch, Step, Topology, listener_name

STATES = set(TCP_STATE_ORDER)      # ss's names (the one table is harness.model's)
ACTIONS = {"listen": "listen: 5001", "connect": "connect: server:5001",
           "accept": "{on: server, accept: 5001, as: s1} (names the next connection the listener accepted)", "send": "send: 1000B (or a message in quotes)",
           "recv": "recv: all (until EOF) or recv: 1000B", "shutdown": "shutdown: write (or read, both)",
           "close": "close: true", "abort": "abort: true (close with SO_LINGER 0: sends RST)",
           "wait": "wait: 1s, wait: connected, wait: peer-closed or wait: {state: FIN-WAIT-2}"}
WAIT_EVENTS = {"connected", "peer-closed"}
SHUTDOWN_HOW = ("write", "read", "both")
# a send: text that is one word shaped like a size (-1B, 1.5B, 1e30B, 1TB, abcB) is a mistyped byte count
_SIZE_LIKE = r"\s*(?:[-+]?[0-9][0-9.eE+-]*\s*[A-Za-z]{0,3}[bB]|[a-z]+B)\s*"
WAIT_STATES = STATES - {"CLOSED", "LISTEN"}      # a closed socket cannot be polled; a listener never moves
NETWORK_ACTIONS = {"hold": "keeps the chosen segments `for:` a while, then lets them go on unchanged",
                   "drop": "discards them", "delay": "adds `for:` to their delay",
                   "duplicate": "sends each twice",
                   "inject": "sends a crafted segment or ICMP error (harness.load.inject)"}
STEP_KEYS = ("on", "at", "after", "as", "socket", "bind", "reuseaddr", "reuseport", "options", "times")   # + one of ACTIONS
# the set-up keys and the actions each belongs to (with what to write instead elsewhere)
SETUP_KEYS = {"as": ("connect", "accept"), "bind": ("connect",), "reuseaddr": ("connect",),
              "reuseport": ("connect", "listen"), "options": ("connect", "listen"),
              "socket": ("send", "recv", "shutdown", "close", "abort", "wait"), "times": ("connect",)}
SETUP_FIXES = {"as": "name the socket a connect or accept makes: {on: client, connect: server:5001, as: a}",
               "socket": "a connect or accept names the socket it makes with as:, a listen step's socket is its "
                         "listener (HOST:PORT)",
               "reuseaddr": "listeners always have SO_REUSEADDR; put reuseaddr: on a connect step"}
SETUP_PORTS = (0, PORT_RANGE[1])                      # bind: 0 lets the kernel pick
MAX_TIMES = 1000                                      # times: N connects of one step (the agent: N lanes)
NETWORK_KEYS = ("network", "from", "to", "at", "match", "nth", "count", "for")
NETWORK_REQUIRED = ("network", "from", "to")
NETWORK_TIMED = ("hold", "delay")                     # these need for:, the others refuse it
MATCH_KEYS = ("flags", "sport", "dport", "len", "options")
MATCH_FLAGS = r"[SAFRPU]+"     # P: the segment carries data (harness.load.segment_fields.needs_data)
NETWORK_EXAMPLE = "{at: 0s, network: hold, from: client, to: server, match: {flags: S}, nth: 1, for: 3s}"


def _fail(message: str, path: Path, line: int, action: str | None = None, fix: str | None = None):
    raise UserError(message, file=str(path), line=line, fix=fix or (f"write {ACTIONS[action]}." if action else None))


def _optional_seconds(item: LineDict, key: str, path: Path) -> float | None:
    """The duration under `key` (at:, for:), or None when the step has none."""
    if key not in item:
        return None
    try:
        return parse_seconds(item[key])
    except ValueError as exc:
        _fail(f"{key}: {exc}.", path, item.line_of(key))


def _port(value: object, path: Path, line: int, what: str, example: str) -> int:
    try:
        return bounded_int(value, *PORT_RANGE)
    except ValueError as exc:
        _fail(f"{what}: {exc}; a TCP port is {PORT_RANGE[0]} to {PORT_RANGE[1]}.", path, line, fix=f"write {example}.")


def _wait(value: object, host: str, index: int, path: Path, line: int) -> Step:
    """wait: 1s | connected | peer-closed | {state: NAME}."""
    if isinstance(value, LineDict):
        check_keys(value, {"state"}, {"state"}, path, "wait")
        if not isinstance(value["state"], str) or value["state"] not in WAIT_STATES:
            _fail(f"cannot wait for state {value['state']!r}.", path, value.line_of("state"),
                  fix=f"use one of: {', '.join(sorted(WAIT_STATES))} (a closed socket cannot be polled).")
        return Step(host, "wait", index, until=f"state:{value['state']}")
    if isinstance(value, str) and value in WAIT_EVENTS:
        return Step(host, "wait", index, until=str(value))
    if isinstance(value, bool):
        _fail(f"wait: {str(value).lower()} only goes beside connect: (wait: false makes the connect non-blocking).",
              path, line, "wait")
    try:
        return Step(host, "wait", index, seconds=parse_seconds(value))
    except ValueError as exc:
        reason = f" ({exc})" if "limit" in str(exc) else ""
        _fail(f"wait: {value!r} is neither a duration nor an event{reason}.", path, line, "wait")


def _action(action: str, value: object, host: str, hosts: tuple[str, ...], index: int, path: Path, line: int) -> Step:
    if action in ("listen", "accept"):
        return Step(host, action, index, port=_port(value, path, line, action, ACTIONS[action]))
    if action == "connect":
        m = re.fullmatch(r"([a-z]\w*):([0-9]{1,6})", value) if isinstance(value, str) else None
        if not m or m.group(1) not in hosts:
            _fail(f"connect target {value!r} is not host:port.", path, line, "connect")
        return Step(host, action, index, port=_port(int(m.group(2)), path, line, "connect", ACTIONS[action]), peer=m.group(1))
    if action in ("send", "recv"):
        if action == "recv" and value == "all":
            return Step(host, action, index)
        try:
            return Step(host, action, index, size=parse_bytes(value))
        except ValueError as exc:
            if action == "send" and isinstance(value, str) and value and "more than" not in str(exc) \
                    and not re.fullmatch(_SIZE_LIKE, value):
                return Step(host, action, index, message=value)
            _fail(f"{action}: {value!r} is not a byte count" + (f" ({exc})" if "more than" in str(exc) else "") + ".",
                  path, line, action)
    if action == "shutdown":
        if value not in SHUTDOWN_HOW:
            _fail(f"shutdown: {value!r} is not a direction.", path, line, action)
        return Step(host, action, index, how=value)
    if action in ("close", "abort"):
        if value is not True:
            _fail(f"{action}: {value!r} — {action} takes no argument.", path, line, action)
        return Step(host, action, index)
    return _wait(value, host, index, path, line)


def _network_path(item: LineDict, topology: Topology, path: Path) -> None:
    """The rule sits at the first switch or router on the path (plan.rule_placement): there must be one."""
    if item["from"] == item["to"]:
        _fail(f"a network step from {item['from']} to itself acts on nothing (segments to itself never leave the host).",
              path, item.line_of("to"), fix="name the other end of the connection in to:.")
    hops = topology.path(item["from"], item["to"])
    if len(hops) < 3 or hops[1] not in (*topology.switches, *topology.routers):
        _fail(f"a network step from {item['from']} to {item['to']} needs a switch or router between them, and the "
              f"path is {' - '.join(hops) or 'missing'}.", path, item.line,
              fix=f"connect {item['from']} and {item['to']} through a switch or router in {topology.source.name}.")


def _network(item: LineDict, topology: Topology, path: Path) -> NetworkStep:
    from harness.load.inject import INJECT_KEYS, parse_inject    # it imports expectations, which imports this module
    hosts = topology.hosts
    inject = item.get("network") == "inject"
    check_keys(item, set(INJECT_KEYS if inject else NETWORK_KEYS), set(NETWORK_REQUIRED), path,
               "a network step")
    action = item["network"]
    if not isinstance(action, str) or action not in NETWORK_ACTIONS:
        _fail(f"network: {action!r} is not something the network can do.", path, item.line_of("network"),
              fix="use one of: " + "; ".join(f"{k} ({v})" for k, v in NETWORK_ACTIONS.items()) + ".")
    for end in ("from", "to"):
        if item[end] not in hosts:
            _fail(f"{end}: '{item[end]}' is not a host of the topology.", path, item.line_of(end), fix=f"use one of: {', '.join(hosts)}.")
    _network_path(item, topology, path)
    if inject:
        return parse_inject(item, path)
    raw_match = expect_type(item.get("match", LineDict()), LineDict, path, item.line_of("match"), "match", "{flags: S, dport: 5001}")
    check_keys(raw_match, set(MATCH_KEYS), set(), path, "match")
    flags = raw_match.get("flags")
    if flags is not None and not re.fullmatch(MATCH_FLAGS, str(flags)):
        _fail(f"match flags {flags!r} are not TCP flag letters.", path, raw_match.line_of("flags"),
              fix="use S A F R P U, e.g. S for a SYN, SA for a SYN+ACK, A for any ACK, PA for an ACK with data "
                  "(P asks for data; A with len: 0 for a bare ACK).")
    ports = {k: _port(raw_match[k], path, raw_match.line_of(k), k, f"{k}: 5001") for k in ("sport", "dport") if k in raw_match}
    length = parse_length(raw_match["len"], path, raw_match.line_of("len")) if "len" in raw_match else None
    options = parse_options(raw_match["options"], path, raw_match.line_of("options")) if "options" in raw_match else ()
    match = PacketMatch(str(flags) if flags is not None else None, ports.get("sport"), ports.get("dport"), length, options)
    if "nth" in item and "count" in item:
        _fail("a network step takes nth (only the Nth segment) or count (the first N), not both.", path, item.line)
    picks = {}
    for key in ("nth", "count"):
        if key in item:
            try:
                picks[key] = bounded_int(item[key], 1, MAX_COUNT)
            except ValueError as exc:
                _fail(f"{key}: {exc} (nth and count start at 1; more than {MAX_COUNT} segments is not a test of TCP).",
                      path, item.line_of(key), fix=f"write {key}: 1.")
    if action in NETWORK_TIMED and "for" not in item:
        _fail(f"{action} needs for: (how long).", path, item.line, fix=f"write {NETWORK_EXAMPLE}.")
    if action not in NETWORK_TIMED and "for" in item:
        _fail(f"{action} takes no for:.", path, item.line_of("for"), fix="remove it.")
    if action == "hold" and not picks:
        picks = {"nth": 1}      # a hold is of one segment unless told otherwise
    return NetworkStep(action, item["from"], item["to"], match, item.line, _optional_seconds(item, "at", path),
                       picks.get("nth"), picks.get("count"), _optional_seconds(item, "for", path))


def _setup(item: LineDict, action: str, path: Path) -> dict:
    """The socket set-up keys of a step (as:, bind:, options:, ...), checked to fit its action, as Step fields."""
    for key, actions in SETUP_KEYS.items():
        if key in item and action not in actions:
            _fail(f"{key}: does not belong on a {action} step (only on {' or '.join(actions)}).", path,
                  item.line_of(key), fix=SETUP_FIXES.get(key, f"move it to the {actions[0]} step that makes the socket") + ".")
    fields: dict = {}
    if "bind" in item:
        try:
            fields["local_port"] = bounded_int(item["bind"], *SETUP_PORTS)
        except ValueError as exc:
            _fail(f"bind: {exc}; a local port is {SETUP_PORTS[0]} (the kernel picks) to {SETUP_PORTS[1]}.", path,
                  item.line_of("bind"), fix="write bind: 40000.")
    for key in ("reuseaddr", "reuseport"):
        if key in item:
            fields[key] = expect_type(item[key], bool, path, item.line_of(key), key, f"{key}: true")
    if "options" in item:
        fields["options"] = _options(item["options"], path, item.line_of("options"))
    if "socket" in item:
        fields["socket"] = expect_type(item["socket"], str, path, item.line_of("socket"), "socket",
                                       'socket: a (quote automatic names: socket: "server:5001#1")')
    return fields


def _options(raw: object, path: Path, line: int) -> tuple[tuple[str, int], ...]:
    """options: {NAME: value} -> (NAME, the int setsockopt takes), in the order written."""
    raw = expect_type(raw, LineDict, path, line, "options", "options: {TCP_NODELAY: true, TCP_USER_TIMEOUT: 2s}")
    out = []
    for name, value in raw.items():
        if name not in SOCKET_OPTIONS:
            _fail(f"unknown socket option {str(name)[:40]!r}.", path, raw.line_of(name),
                  fix=f"use one of: {', '.join(SOCKET_OPTIONS)}.")
        try:
            out.append((name, option_value(name, value)))
        except ValueError as exc:
            _fail(f"option {name}: {exc}.", path, raw.line_of(name),
                  fix=f"write {name}: {UNIT_EXAMPLES[SOCKET_OPTIONS[name][2]]}.")
    return tuple(out)


def _one_action(item: LineDict, path: Path) -> tuple[str, bool]:
    """The step's action, and whether a connect blocks: `wait: true|false` beside connect: is not a wait action."""
    actions = [a for a in ACTIONS if a in item]
    blocking = True
    if "connect" in item and "wait" in item:
        if not isinstance(item["wait"], bool):
            _fail(f"wait: {item['wait']!r} beside connect: takes true or false (false: a non-blocking connect).", path,
                  item.line_of("wait"), fix="write wait: false beside connect, or put the wait in a step of its own.")
        actions.remove("wait")
        blocking = item["wait"]
    if len(actions) != 1:
        _fail("a step needs exactly one action.", path, item.line, fix=f"use one of: {', '.join(ACTIONS)}.")
    return actions[0], blocking


class _Names:
    """The names connect and accept steps give their sockets: as:, else HOST#N for a host's Nth unnamed connect."""

    def __init__(self, hosts: tuple[str, ...]) -> None:
        self.hosts, self.seen, self.unnamed = hosts, set(), {}

    def of(self, item: LineDict, action: str, host: str, port: int | None, path: Path) -> str | None:
        if action == "listen":
            return listener_name(host, port)
        if "as" in item:
            return check_name(item["as"], self.hosts, self.seen, path, item.line_of("as"))
        if action == "accept":
            _fail("an accept step needs as: (the name of the connection it takes).", path, item.line,
                  fix=f"write {{on: {host}, accept: {port}, as: s1}}.")
        if action == "connect":
            self.unnamed[host] = self.unnamed.get(host, 0) + 1
            return f"{host}#{self.unnamed[host]}"
        return None


def load_steps(raw: list, topology: Topology, path: Path, line: int | None = None) -> tuple[tuple[Step, ...], tuple[NetworkStep, ...]]:
    """Host steps in file order, and the network's steps. `after: X` on a host step is short for a
    `wait: X` step just before it, on the same socket. `line`: of `steps:`, for items whose own line
    is unknown. Every step's socket is resolved (named, or the host's only one)."""
    hosts = topology.hosts
    steps: list[Step] = []
    network: list[NetworkStep] = []
    names = _Names(hosts)
    for position, item in enumerate(raw):
        if not isinstance(item, LineDict):
            raise UserError(f"a step must be a mapping, not {item!r}.", file=str(path), line=item_line(raw, position, line),
                            fix="write {at: 0s, on: server, listen: 5001}.")
        if "network" in item:
            network.append(_network(item, topology, path))
            continue
        steps += _host_step(item, hosts, names, path)
    return resolve_sockets(tuple(steps), socket_table(tuple(steps), hosts), path), tuple(network)


def _host_step(item: LineDict, hosts: tuple[str, ...], names: _Names, path: Path) -> list[Step]:
    """One host step (two with after:), its socket as written or made (resolved once all are read)."""
    check_keys(item, set(STEP_KEYS) | set(ACTIONS), {"on"}, path, "a step (or a network step, with network:)")
    action, blocking = _one_action(item, path)
    host = item["on"]
    if host not in hosts:
        _fail(f"step runs on '{host}', which is not a host of the topology.", path, item.line_of("on"),
              fix=f"use one of: {', '.join(hosts)}.")
    if "at" in item and "after" in item:
        _fail("a step has either at: (time from the start) or after: (an event), not both.", path, item.line,
              fix="keep one of them.")
    at = _optional_seconds(item, "at", path)
    before = [_wait(item["after"], host, item.line, path, item.line_of("after"))] if "after" in item else []
    step = _action(action, item[action], host, hosts, item.line, path, item.line_of(action))
    setup = _setup(item, action, path)
    times = _times(item, setup, path)
    socket = names.of(item, action, host, step.port, path) or setup.pop("socket", None)
    sockets = [member_name(socket, k) for k in range(1, times + 1)] if times else [socket]
    return [one for name in sockets for one in (*(replace(wait, socket=name) for wait in before),
                                                replace(step, at_s=at, blocking=blocking, **{**setup, "socket": name}))]


def _times(item: LineDict, setup: dict, path: Path) -> int | None:
    """times: N on a connect with as: NAME: N connects alike, sockets NAME#1..NAME#N (None: no times:)."""
    if "times" not in item:
        return None
    try:
        times = bounded_int(item["times"], 1, MAX_TIMES)
    except ValueError as exc:
        _fail(f"times: {exc}; a connect is repeated 1 to {MAX_TIMES} times.", path, item.line_of("times"),
              fix="write times: 100.")
    if "as" not in item:
        _fail("times: needs as: (the group's name: its sockets are NAME#1 ... NAME#N).", path, item.line_of("times"),
              fix=f"write {{on: {item['on']}, connect: {item['connect']}, as: c, times: {times}}} "
                  f"(sockets c#1 ... c#{times}; socket: \"c#*\" acts on each).")
    if times > 1 and setup.get("local_port") and not setup.get("reuseport"):
        _fail(f"bind: {setup['local_port']} with times: {times}: {times} sockets cannot share one bound port.", path,
              item.line_of("bind"), fix="add reuseport: true (SO_REUSEPORT lets them share it), or leave bind: out "
                                        "(the kernel picks a port for each).")
    return times
