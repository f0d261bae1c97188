"""The `steps:` timeline -> Step models. Each host's steps run in file order; `at:` pins a start."""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from harness.errors import UserError
from harness.load.units import parse_bytes, parse_seconds
from harness.load.yaml_lines import LineDict, check_keys, expect_type
from harness.model import NetworkStep, PacketMatch, Step

STATES = {"LISTEN", "SYN-SENT", "SYN-RECV", "ESTAB", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT",
          "CLOSE-WAIT", "LAST-ACK", "CLOSING", "CLOSED"}
ACTIONS = {"listen": "listen: 5001", "connect": "connect: server:5001", "send": "send: 1000B (or a message in quotes)",
           "recv": "recv: all (until EOF) or recv: 1000B", "shutdown": "shutdown: write (or read, both)",
           "close": "close: true", "abort": "abort: true (close with SO_LINGER 0: sends RST)",
           "wait": "wait: 1s, wait: connected, wait: peer-closed or wait: {state: FIN-WAIT-2}"}
WAIT_EVENTS = {"connected", "peer-closed"}
NETWORK_ACTIONS = {"hold": "keeps the chosen segments `for:` a while, then lets them go on unchanged",
                   "drop": "discards them", "delay": "adds `for:` to their delay",
                   "duplicate": "sends each twice"}
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


def _wait(value: object, host: str, index: int, path: Path, line: int) -> Step:
    """wait: 1s | connected | peer-closed | {state: NAME}."""
    if isinstance(value, LineDict):
        check_keys(value, {"state"}, {"state"}, path, "wait")
        if value["state"] not in STATES - {"CLOSED", "LISTEN"}:
            _fail(f"cannot wait for state {value['state']!r}.", path, line,
                  fix=f"use one of: {', '.join(sorted(STATES - {'CLOSED', 'LISTEN'}))} (a closed socket cannot be polled).")
        return Step(host, "wait", index, until=f"state:{value['state']}")
    if str(value) in WAIT_EVENTS:
        return Step(host, "wait", index, until=str(value))
    try:
        return Step(host, "wait", index, seconds=parse_seconds(value))
    except ValueError:
        _fail(f"wait: {value!r} is neither a duration nor an event.", path, line, "wait")


def _action(action: str, value: object, host: str, hosts: tuple[str, ...], index: int, path: Path, line: int) -> Step:
    if action == "listen":
        return Step(host, action, index, port=expect_type(value, int, path, line, "listen", ACTIONS[action]))
    if action == "connect":
        m = re.fullmatch(r"([a-z]\w*):([0-9]+)", str(value))
        if not m or m.group(1) not in hosts:
            _fail(f"connect target {value!r} is not host:port.", path, line, "connect")
        return Step(host, action, index, port=int(m.group(2)), peer=m.group(1))
    if action in ("send", "recv"):
        if action == "recv" and value == "all":
            return Step(host, action, index)
        try:
            return Step(host, action, index, size=parse_bytes(value))
        except ValueError:
            if action == "send" and isinstance(value, str) and value:
                return Step(host, action, index, message=value)
            _fail(f"{action}: {value!r} is not a byte count.", path, line, action)
    if action == "shutdown":
        if value not in ("write", "read", "both"):
            _fail(f"shutdown: {value!r} is not a direction.", path, line, action)
        return Step(host, action, index, how=value)
    if action in ("close", "abort"):
        if value is not True:
            _fail(f"{action}: {value!r} — {action} takes no argument.", path, line, action)
        return Step(host, action, index)
    return _wait(value, host, index, path, line)


def _network(item: LineDict, hosts: tuple[str, ...], path: Path) -> NetworkStep:
    check_keys(item, {"at", "network", "from", "to", "match", "nth", "count", "for"}, {"network", "from", "to"}, path,
               "a network step")
    action = item["network"]
    if action not in NETWORK_ACTIONS:
        _fail(f"network: {action!r} is not something the network can do.", path, item.line_of("network"),
              fix="use one of: " + "; ".join(f"{k} ({v})" for k, v in NETWORK_ACTIONS.items()) + ".")
    for end in ("from", "to"):
        if item[end] not in hosts:
            _fail(f"{end}: '{item[end]}' is not a host of the topology.", path, item.line_of(end), fix=f"use one of: {', '.join(hosts)}.")
    raw_match = expect_type(item.get("match", LineDict()), LineDict, path, item.line_of("match"), "match", "{flags: S, dport: 5001}")
    check_keys(raw_match, {"flags", "sport", "dport"}, set(), path, "match")
    flags = raw_match.get("flags")
    if flags is not None and not re.fullmatch(r"[SAFRU]+", str(flags)):
        _fail(f"match flags {flags!r} are not TCP flag letters.", path, raw_match.line_of("flags"),
              fix="use S A F R U (PSH is ignored), e.g. S for a SYN, SA for a SYN+ACK, A for a pure ACK.")
    ports = {k: expect_type(raw_match[k], int, path, raw_match.line_of(k), k, f"{k}: 5001") for k in ("sport", "dport") if k in raw_match}
    match = PacketMatch(str(flags) if flags is not None else None, ports.get("sport"), ports.get("dport"))
    if "nth" in item and "count" in item:
        _fail("a network step takes nth (only the Nth segment) or count (the first N), not both.", path, item.line)
    picks = {k: expect_type(item[k], int, path, item.line_of(k), k, f"{k}: 1") for k in ("nth", "count") if k in item}
    if any(v < 1 for v in picks.values()):
        _fail("nth and count start at 1.", path, item.line)
    if action in ("hold", "delay") and "for" not in item:
        _fail(f"{action} needs for: (how long).", path, item.line, fix=f"write {NETWORK_EXAMPLE}.")
    if action not in ("hold", "delay") and "for" in item:
        _fail(f"{action} takes no for:.", path, item.line_of("for"), fix="remove it.")
    if action == "hold" and not picks:
        picks = {"nth": 1}      # a hold is of one segment unless told otherwise
    return NetworkStep(action, item["from"], item["to"], match, item.line, _optional_seconds(item, "at", path),
                       picks.get("nth"), picks.get("count"), _optional_seconds(item, "for", path))


def load_steps(raw: list, hosts: tuple[str, ...], path: Path) -> tuple[tuple[Step, ...], tuple[NetworkStep, ...]]:
    """Host steps in file order, and the network's steps. `after: X` on a host step is short for a
    `wait: X` step just before it."""
    steps: list[Step] = []
    network: list[NetworkStep] = []
    for item in raw:
        if not isinstance(item, LineDict):
            raise UserError("a step must be a mapping.", file=str(path), fix="write {at: 0s, on: server, listen: 5001}.")
        if "network" in item:
            network.append(_network(item, hosts, path))
            continue
        check_keys(item, {"at", "on", "after"} | set(ACTIONS), {"on"}, path, "a step (or a network step, with network:)")
        actions = [a for a in ACTIONS if a in item]
        if len(actions) != 1:
            _fail("a step needs exactly one action.", path, item.line, fix=f"use one of: {', '.join(ACTIONS)}.")
        action, host = actions[0], item["on"]
        if host not in hosts:
            _fail(f"step runs on '{host}', which is not a host of the topology.", path, item.line_of("on"),
                  fix=f"use one of: {', '.join(hosts)}.")
        if "at" in item and "after" in item:
            _fail("a step has either at: (time from the start) or after: (an event), not both.", path, item.line,
                  fix="keep one of them.")
        at = _optional_seconds(item, "at", path)
        if "after" in item:
            steps.append(_wait(item["after"], host, item.line, path, item.line_of("after")))
        step = _action(action, item[action], host, hosts, item.line, path, item.line_of(action))
        steps.append(replace(step, at_s=at))
    return tuple(steps), tuple(network)
