"""The JSON Schemas editors use, generated from the loader's own tables (one source of truth).

    python -m harness.schema.generate          # rewrite harness/schema/*.schema.json
    python -m harness.schema.generate --check  # exit 1 if the committed files differ

The schema can say less than the loader (host names, events' hosts, a day's cap on durations,
topology shape, machine interfaces) but never more: whatever it refuses, the loader refuses
(tests/unit/test_schema.py checks both on the shipped files and on a corpus of bad ones)."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from harness.claims import CLAIM_NUMBERS
from harness.load import expectations as ex
from harness.load import inject as inj
from harness.load import segment_fields as sf
from harness.load import counts as fg
from harness.load import sockets as so
from harness.load import steps as st
from harness.load import topology as tp
from harness.load import units as un
from harness.load.experiment import EXPERIMENT_KEYS, EXPERIMENT_REQUIRED
from harness.load.matrix import LINK_PARAMETERS
from harness.model import SOCKET_OPTIONS, TCP_OPTION_KINDS, TCP_INFO_FIELDS, TCP_INFO_OPTIONS, TCP_STATE_ORDER

HERE = Path(__file__).resolve().parent
DRAFT = "https://json-schema.org/draft/2020-12/schema"
TEMPLATED = {"$ref": "#/$defs/templated"}
WHEN = {"type": ["string", "boolean"],
        "description": "keep this expectation only where the condition holds, e.g. kernel >= 6.12 or "
                       "default(client.tcp_syn_linear_timeouts, 0) > 0 (worked out once the lab is up)"}


def _pattern(regex: str) -> dict:
    return {"type": "string", "pattern": f"^{regex}$"}


def _or_templated(schema: dict) -> dict:
    """A matrix file may write any string as ${...}, worked out per cell before the loader checks it."""
    return {"anyOf": [schema, TEMPLATED]}


def _units(table: dict) -> str:
    return "(" + "|".join(table) + ")"


DURATION = rf"\s*{un._NUMBER}\s*{_units(un._TIME)}\s*"
RTTS = rf"\s*{un._NUMBER}?\s*rtt\s*"
PERCENT = rf"\s*{un._PERCENT_NUMBER}\s*%\s*"
BYTES = r"\s*[0-9]{1,12}\s*(" + "|".join("".join(f"[{c.upper()}{c}]" if c.isalpha() else c for c in u) for u in un._BYTES) + r")\s*"


def _port() -> dict:
    return {"type": "integer", "minimum": un.PORT_RANGE[0], "maximum": un.PORT_RANGE[1]}


def _count(low: int = 1) -> dict:
    return {"type": "integer", "minimum": low, "maximum": un.MAX_COUNT}


def _one_action(names: dict) -> list[dict]:
    """Exactly one action; `wait: true|false` beside connect: is the connect's blocking, not a wait."""
    return [{"required": [name], "properties": {"wait": {"not": {"type": "boolean"}}}} if name == "wait"
            else {"required": [name]} for name in names]


def _option(name: str) -> dict:
    """A socket option's value as the loader takes it for the option's unit (sockets.option_value)."""
    unit = SOCKET_OPTIONS[name][2]
    low, high = so.OPTION_RANGES.get(name, (0, so.MAX_OPTION))
    integer = {"type": "integer", "minimum": low, "maximum": high}
    by_unit = {"bool": {"anyOf": [{"type": "boolean"}, {"enum": [0, 1]}]}, "int": integer,
               "bytes": {"$ref": "#/$defs/bytes"}, "s": {"$ref": "#/$defs/duration"}, "ms": {"$ref": "#/$defs/duration"},
               "linger": {"anyOf": [integer, {"$ref": "#/$defs/duration"}]}}
    return {**_or_templated(by_unit[unit]), "description": f"{unit}; e.g. {so.UNIT_EXAMPLES[unit]}"}


def _rate() -> str:
    """Rates are case-insensitive in the loader; spell each letter both ways."""
    units = "|".join("".join(f"[{c.upper()}{c}]" for c in u) for u in un._RATE)
    return rf"\s*{un._NUMBER}\s*({units})\s*"


def experiment_schema() -> dict:
    states = _state_order()
    sequence_number = {"oneOf": [{"type": "integer", "minimum": 0, "maximum": 2**32 - 1}, _pattern(ex._TERM.join("()"))]}
    step_properties = {
        "on": {"type": "string", "description": "the host that performs the step"},
        "at": {"$ref": "#/$defs/duration", "description": "time from the start; without it the step follows the previous one on its socket (its lane)"},
        "after": {"$ref": "#/$defs/waitFor", "description": "short for a wait step just before this one"},
        "listen": _port(),
        "connect": _or_templated(_pattern(r"[a-z]\w*:[0-9]{1,6}")),
        "send": {"anyOf": [{"$ref": "#/$defs/bytes"}, {"type": "string", "minLength": 1}],
                 "description": "a byte count (1000B, 64KiB) or a message"},
        "recv": {"oneOf": [{"const": "all"}, {"$ref": "#/$defs/bytes"}]},
        "shutdown": {"enum": list(st.SHUTDOWN_HOW)},
        "close": {"const": True},
        "abort": {"const": True},
        "wait": {"anyOf": [{"$ref": "#/$defs/waitFor"}, {"type": "boolean"}],
                 "description": "an action; beside connect: true|false (false: a non-blocking connect)"},
        "accept": _port(),
        "as": {**_pattern(so.NAME_RE), "description": "the name of the socket a connect or accept makes"},
        "socket": {"type": "string", "description": "the socket the step acts on: an as: name, client#1, server:5001#2; "
                                                    "a group c#* (one step per member) or one member c#3"},
        "times": {"type": "integer", "minimum": 1, "maximum": st.MAX_TIMES,
                  "description": "a connect made N times at once (needs as: NAME): sockets NAME#1 ... NAME#N, group NAME#*"},
        "bind": _or_templated({"type": "integer", "minimum": st.SETUP_PORTS[0], "maximum": st.SETUP_PORTS[1]}),
        "reuseaddr": {"type": "boolean"},
        "reuseport": {"type": "boolean"},
        "options": {"type": "object", "additionalProperties": False,
                    "properties": {name: _option(name) for name in SOCKET_OPTIONS}},
    }
    assert set(step_properties) == set(st.STEP_KEYS) | set(st.ACTIONS), "a step key without a schema"
    network_properties = {
        "network": {"enum": [a for a in st.NETWORK_ACTIONS if a != "inject"]},    # inject: its own keys (injectStep)
        "at": {"$ref": "#/$defs/duration"},
        "from": {"type": "string"},
        "to": {"type": "string"},
        "match": {"type": "object", "additionalProperties": False,
                  "properties": {"flags": _pattern(st.MATCH_FLAGS), "sport": _port(), "dport": _port(),
                                 "len": {"$ref": "#/$defs/segmentLength"}, "options": {"$ref": "#/$defs/segmentOptions"}}},
        "nth": _count(),
        "count": _count(),
        "for": {"$ref": "#/$defs/duration"},
    }
    assert set(network_properties) == set(st.NETWORK_KEYS) and set(network_properties["match"]["properties"]) == set(st.MATCH_KEYS)
    timing_properties = {"from": {"$ref": "#/$defs/event"}, "to": {"$ref": "#/$defs/event"},
                         "equals": {"$ref": "#/$defs/durationOrRtt"},
                         "within": _or_templated({"type": "string", "pattern": f"^({DURATION}|{PERCENT})$"}),
                         "between": {"type": "array", "items": {"$ref": "#/$defs/durationOrRtt"}, "minItems": 2, "maxItems": 2}}
    assert set(timing_properties) == set(ex.TIMING_KEYS)
    host_properties = {
        "states": {"type": "array", "items": {"anyOf": [{"$ref": "#/$defs/state"}, {"$ref": "#/$defs/optionalState"}]}},
        "received": {"$ref": "#/$defs/bytes"},
        "errors": {"type": "array", "items": {"type": "string", "pattern": "^E[A-Z0-9]+$"}},
        "accepted": _or_templated(_count(0)),
        "counters": {"type": "object", "description": "nstat's names -> the difference over the run: 1, \">=1\", \"<3\", \"1-3\"",
                     "propertyNames": _pattern(fg.NSTAT_NAME.pattern), "additionalProperties": {"$ref": "#/$defs/count"}},
        "tcp_info": {"$ref": "#/$defs/tcpInfo"},
    }
    assert set(host_properties) == set(ex.HOST_EXPECT_KEYS)
    handshake = {"$ref": "#/$defs/handshake"}
    socket_properties = {**{k: v for k, v in host_properties.items() if k not in ("accepted", "counters")}, "packets": {"$ref": "#/$defs/packets"},
                         "handshake": handshake}
    assert set(socket_properties) == set(ex.SOCKET_EXPECT_KEYS)
    group_properties = {k: v for k, v in socket_properties.items() if k in ex.GROUP_EXPECT_KEYS}
    assert set(group_properties) == set(ex.GROUP_EXPECT_KEYS)
    properties = {
        "name": {"type": "string"},
        "about": {"type": "string", "description": "what the experiment shows: printed with the verdicts and stored in result.json"},
        "claims": {"type": "array", "uniqueItems": True,
                   "items": {"type": "integer", "minimum": CLAIM_NUMBERS[0], "maximum": CLAIM_NUMBERS[-1]},
                   "description": "the seed's claims this experiment tests (numbers of ../shared/BRIEF.md §6), "
                                  "judged per kernel by the claims report, e.g. [5, 6]"},
        "topology": {"type": "string", "description": "a file in topologies/ (without .yaml) or a path next to the experiment"},
        "duration": {"$ref": "#/$defs/duration"},
        "sysctls": {"type": "object",
                    "description": "host name (or all) -> {sysctl: value}, applied inside the host's namespace and read back; "
                                   "a name ending in ? is optional: skipped, with a note, on a kernel that lacks it",
                    "additionalProperties": {"type": "object", "additionalProperties": {"type": ["string", "integer", "number"]}}},
        "steps": {"type": "array", "items": {"oneOf": [{"$ref": "#/$defs/step"}, {"$ref": "#/$defs/networkStep"},
                                                        {"$ref": "#/$defs/injectStep"}]}},
        "expect": {"type": "object",
                   "description": "keys: packets, timing, host names, socket names (quote automatic ones: \"server:5001#1\") "
                                  "and groups (\"c#*\": each socket of a times: connect)",
                   "properties": {"packets": {"$ref": "#/$defs/packets"},
                                  "timing": {"type": "object", "additionalProperties": {"$ref": "#/$defs/timing"}}},
                   "patternProperties": {"[:#]": {"$ref": "#/$defs/socketExpectation"},
                                         "#\\*$": {"$ref": "#/$defs/groupExpectation"}},
                   "additionalProperties": {"anyOf": [{"$ref": "#/$defs/hostExpectation"},
                                                      {"$ref": "#/$defs/socketExpectation"}]}},
        "matrix": {
            "type": "object",
            "description": "one cell per combination: {host or all: {sysctl: [values]}}, a bare sysctl name (all hosts), "
                           f"links: {{{'|'.join(LINK_PARAMETERS)}: [values]}} (every link), repeat: N",
            "properties": {"repeat": {"type": "integer", "minimum": 1},
                           "links": {"type": "object", "additionalProperties": False,
                                     "properties": {k: {"type": "array", "minItems": 1} for k in LINK_PARAMETERS}}},
            "patternProperties": {"\\.": {"type": "array", "minItems": 1}},
            "additionalProperties": {"type": "object", "additionalProperties": {"type": "array", "minItems": 1}},
        },
    }
    properties["let"] = {"type": "object", "propertyNames": _pattern("[a-z_][a-z0-9_]{0,39}"),
                         "additionalProperties": {"type": ["string", "number"]},
                         "description": "named values for expect: and about:, each an expression worked out once the lab "
                                        "is up, in order (it may read the matrix's names, kernel, HOST.sysctl and the "
                                        "values before it), e.g. linear: default(client.tcp_syn_linear_timeouts, 0)"}
    assert set(properties) == set(EXPERIMENT_KEYS) | {"matrix", "let"}
    timed = list(st.NETWORK_TIMED)
    return {
        "$schema": DRAFT,
        "$id": "https://tcp-testbed.invalid/schema/experiment.schema.json",
        "title": "tcp-testbed experiment",
        "description": "A topology, kernel settings, a timeline of steps and expectations. Generated from the loader's "
                       "tables by harness/schema/generate.py; the loader (harness/load/) checks the same rules and more "
                       "(host names, events, topology shape, a day's cap on durations) and names file:line on errors.",
        "type": "object", "additionalProperties": False, "required": list(EXPERIMENT_REQUIRED), "properties": properties,
        "$defs": {
            "duration": _or_templated(_pattern(DURATION)),
            "durationOrRtt": _or_templated({"type": "string", "pattern": f"^({DURATION}|{RTTS})$"}),
            "bytes": {"oneOf": [{"type": "integer", "minimum": 0, "maximum": un.MAX_BYTES}, _pattern(BYTES), TEMPLATED]},
            "state": {"enum": states},
            "waitState": {"enum": [s for s in states if s in st.WAIT_STATES]},
            "optionalState": _pattern(r"\((" + "|".join(states) + r")\)"),
            "waitFor": {"oneOf": [{"$ref": "#/$defs/duration"}, {"enum": sorted(st.WAIT_EVENTS)},
                                  {"type": "object", "additionalProperties": False, "required": ["state"],
                                   "properties": {"state": {"$ref": "#/$defs/waitState"}}}]},
            "step": {"type": "object", "additionalProperties": False, "required": ["on"], "properties": step_properties,
                     "oneOf": _one_action(st.ACTIONS), "not": {"required": ["at", "after"]},
                     "dependentRequired": {"accept": ["as"], "times": ["as"]},
                     "dependentSchemas": {key: {"anyOf": [{"required": [action]} for action in actions]}
                                          for key, actions in st.SETUP_KEYS.items()}},
            "packets": {"type": "array", "items": {"oneOf": [{"$ref": "#/$defs/packet"}, {"$ref": "#/$defs/either"}]}},
            "packet": {"type": "object", "additionalProperties": False, "required": ["from", "flags"],
                       "properties": {"when": WHEN, "from": {"type": "string"}, "flags": _pattern(ex.PATTERN_FLAGS),
                                      "seq": sequence_number, "ack": sequence_number,
                                      "len": {"$ref": "#/$defs/segmentLength"}, "options": {"$ref": "#/$defs/segmentOptions"}}},
            "either": {"type": "object", "additionalProperties": False, "required": ["either"],
                       "properties": {"when": WHEN, "either": {"type": "object", "minProperties": 1,
                                                 "additionalProperties": {"type": "array", "items": {"$ref": "#/$defs/packet"}}}}},
            **_segment_fields(),
            "event": _or_templated(_pattern(_event_regex())),
            "timing": {"type": "object", "additionalProperties": False, "properties": {"when": WHEN, **timing_properties},
                       "oneOf": [{"required": ["equals", "within"]}, {"required": ["between"]}],
                       "dependentRequired": {"from": ["to"], "to": ["from"]}},
            "hostExpectation": {"type": "object", "additionalProperties": False, "properties": {"when": WHEN, **host_properties}},
            "socketExpectation": {"type": "object", "additionalProperties": False,
                                  "properties": {"when": WHEN, **socket_properties}},
            "groupExpectation": {"type": "object", "additionalProperties": False, "properties": {"when": WHEN, **group_properties},
                                 "description": "for each member of the group; packets: only per member (c#3)"},
            "handshake": {"type": "object", "additionalProperties": False,
                          "description": "the socket's own handshake: SYN sent -> final ACK sent (connecting end), "
                                         "SYN received -> final ACK received (accepted end)",
                          "properties": {"when": WHEN, **{k: timing_properties[k] for k in ("equals", "within", "between")}},
                          "oneOf": [{"required": ["equals", "within"]}, {"required": ["between"]}]},
            "networkStep": {
                "type": "object", "additionalProperties": False, "required": list(st.NETWORK_REQUIRED),
                "description": "the network acting on chosen segments from one host to another, at the first switch on the path",
                "properties": network_properties,
                "not": {"required": ["nth", "count"]},
                "if": {"properties": {"network": {"enum": timed}}},
                "then": {"required": ["for"]},
                "else": {"not": {"required": ["for"]}},
            },
            "count": {"oneOf": [{"type": "integer", "minimum": 0},
                                _pattern(re.sub(r"\(\?P<\w+>", "(", fg._COUNT.pattern)), TEMPLATED]},
            "tcpInfo": {"type": "object", "additionalProperties": False,
                        "description": "fields of the socket's struct tcp_info (without tcpi_) as its agent last read it; "
                                       "rto, ato, rtt, rttvar: the kernel's µs or a duration (\">=200ms\")",
                        "properties": {**{f: {"$ref": "#/$defs/count"} for f in TCP_INFO_FIELDS if f not in fg.NOT_COUNTS},
                                       "options": {"type": "array", "items": {"enum": list(TCP_INFO_OPTIONS)}}}},
            "injectStep": _inject_step(),
            "templated": {"type": "string", "pattern": "\\$\\{[^}]+\\}",
                          "description": "${expression} over the matrix's names (under expect: also kernel, e.g. "
                                         "kernel >= 6.12, and HOST.sysctl as read back, e.g. "
                                         "default(client.tcp_syn_linear_timeouts, 0)), worked out per cell"},
        },
    }


def _segment_fields() -> dict:
    """len: and options: of a packet pattern or a network-step match (harness.load.segment_fields)."""
    length = re.sub(r"\(\?P<\w+>", "(", sf._LENGTH.pattern)
    options = {name: {"oneOf": [{"type": "boolean"}, {"type": "integer", "minimum": sf.OPTION_VALUES[name][0],
                                                      "maximum": sf.OPTION_VALUES[name][1]}]}
               if name in sf.OPTION_VALUES else {"type": "boolean"} for name in TCP_OPTION_KINDS}
    return {
        "segmentLength": {"oneOf": [{"type": "integer", "minimum": 0, "maximum": sf.MAX_LENGTH}, _pattern(length), TEMPLATED],
                          "description": "TCP payload bytes: 0 (no data), 1000, \">0\", \">=100\", \"<100\", \"1-1448\""},
        "segmentOptions": {"type": "object", "additionalProperties": False, "minProperties": 1, "properties": options,
                           "description": "true: present, false: absent, a number: present with that value "
                                          "(mss, wscale 0-14, sack: blocks)"},
    }


def _state_order() -> list[str]:
    """ss's states in the order a connection meets them (the schema lists them so)."""
    return list(TCP_STATE_ORDER)


def _inject_step() -> dict:
    """`network: inject` (harness.load.inject): a crafted TCP segment or ICMP error."""
    term = {"oneOf": [{"type": "integer", "minimum": 0, "maximum": 2**32 - 1},
                      _pattern(re.sub(r"\(\?P<\w+>", "(", inj._TERM.pattern)), TEMPLATED],
            "description": "a number or NAME.FIGURE [+|- N]: figures " + ", ".join(inj.FIGURES)}
    ranged = lambda low, high: _or_templated({"type": "integer", "minimum": low, "maximum": high})    # noqa: E731
    options = {"ts": {"oneOf": [{"type": "boolean"}, {"type": "integer", "minimum": 0, "maximum": 2**32 - 1},
                                _pattern(r"[+-]?[0-9]{1,10}")]},
               "sackok": {"type": "boolean"}, **{k: ranged(*v) for k, v in inj.VALUED_OPTIONS.items()}}
    properties = {
        "network": {"const": "inject"}, "from": {"type": "string"}, "to": {"type": "string"},
        "at": {"$ref": "#/$defs/duration"}, "wait": {"$ref": "#/$defs/duration"},
        "after": _or_templated(_pattern(rf"{so.SUBJECT_RE} receives [SAFRPU]+(#[0-9]+)?")),
        "socket": {"type": "string"}, "sport": _port(), "dport": _port(), "flags": _pattern(inj.INJECT_FLAGS),
        "seq": term, "ack": term, "window": ranged(0, 65535), "len": ranged(0, inj.MAX_PAYLOAD),
        "payload": {"type": "string", "minLength": 1},
        "options": {"type": "object", "additionalProperties": False, "properties": options},
        "ttl": ranged(1, 255), "icmp": {"enum": list(inj.ICMP_KINDS)}, "mtu": ranged(*inj.MTU_RANGE),
    }
    assert set(properties) == set(inj.INJECT_KEYS)
    return {"type": "object", "additionalProperties": False, "required": ["network", "from", "to"],
            "description": "a crafted segment (flags:) or ICMP error (icmp:) sent out of the switch port facing to:, "
                           "as if from from:, at: a time or after: an event",
            "properties": properties, "oneOf": [{"required": ["at"]}, {"required": ["after"]}],
            "dependentRequired": {"wait": ["after"], "mtu": ["icmp"]},
            "if": {"required": ["icmp"]},
            "then": {"not": {"anyOf": [{"required": [k]} for k in inj.TCP_ONLY_KEYS]}},
            "else": {"required": ["flags"]}}


def _event_regex() -> str:
    """The loader's event regex without Python's named groups (ECMA regexes name them differently)."""
    return re.sub(r"\(\?P<\w+>", "(", ex._EVENT.pattern)


def topology_schema() -> dict:
    impairment = {"delay": {"$ref": "#/$defs/duration"}, "jitter": {"$ref": "#/$defs/duration"},
                  "loss": {"$ref": "#/$defs/percent"}, "bw": {"$ref": "#/$defs/rate"},
                  "queue": {"type": "integer", "minimum": 1, "maximum": un.MAX_QUEUE}}
    assert tuple(impairment) == tp.IMPAIRMENT_KEYS
    link = {"a": {"$ref": "#/$defs/node"}, "b": {"$ref": "#/$defs/node"},
            "a_to_b": {"$ref": "#/$defs/impairment"}, "b_to_a": {"$ref": "#/$defs/impairment"}, **impairment,
            "mtu": {"type": "integer", "minimum": tp.MIN_MTU, "maximum": tp.MAX_MTU,
                    "description": "the MTU of the link's LAN (every interface on it), bytes of IP packet"},
            "cost": {"type": "integer", "minimum": 1, "maximum": tp.MAX_COST,
                     "description": "routing cost: routes follow the cheapest sum of the links crossed (default 1 each)"},
            "addresses": {"type": "object", "description": "an end's IPv4 address with prefix: {r1: 10.9.0.1/30}",
                          "propertyNames": {"$ref": "#/$defs/node"},
                          "additionalProperties": {"type": "string", "pattern": r"^[0-9.]+/[0-9]{1,2}$"}}}
    assert set(link) == set(tp.LINK_KEYS) | set(tp.IMPAIRMENT_KEYS)
    route = {"to": {"type": "string", "description": "a host (its subnet), a subnet (10.2.0.0/24) or default"},
             "via": {"type": "string", "description": "a router on a subnet the node is on, or its address"}}
    assert tuple(route) == tp.ROUTE_KEYS
    properties = {
        "name": {"type": "string"},
        "hosts": {"type": "array", "items": {"$ref": "#/$defs/node"}, "minItems": 1, "uniqueItems": True},
        "switches": {"type": "array", "items": {"$ref": "#/$defs/node"}, "uniqueItems": True},
        "routers": {"type": "array", "items": {"$ref": "#/$defs/node"}, "uniqueItems": True,
                    "description": "Linux nodes that forward (ip_forward on); each LAN around them is a subnet"},
        "routes": {"type": "object", "propertyNames": {"$ref": "#/$defs/node"},
                   "description": "static routes per host or router, replacing the computed ones to the same prefix",
                   "additionalProperties": {"type": "array", "items": {
                       "type": "object", "additionalProperties": False, "required": list(tp.ROUTE_KEYS),
                       "properties": route}}},
        "links": {"type": "array", "items": {"type": "object", "additionalProperties": False, "required": ["a", "b"],
                                             "properties": link}},
        "switch": {"enum": list(tp.SWITCH_KINDS),
                   "description": "bridge (default): Linux bridges; ovs: Open vSwitch bridges in standalone mode. "
                                  "Neither needs a controller."},
    }
    assert set(properties) == set(tp.TOPOLOGY_KEYS)
    return {
        "$schema": DRAFT,
        "$id": "https://tcp-testbed.invalid/schema/topology.schema.json",
        "title": "tcp-testbed topology",
        "description": "Hosts, switches, routers and links with per-direction impairments (netem/htb), MTU and routing cost. Generated from the loader's "
                       "tables by harness/schema/generate.py; the loader (harness/load/topology.py) checks the same rules "
                       "and more (names the machine's interfaces use, self-links, loops, islands, hosts with two links) "
                       "and names file:line on errors.",
        "type": "object", "additionalProperties": False, "required": list(tp.TOPOLOGY_REQUIRED), "properties": properties,
        "$defs": {
            "node": {"type": "string", "pattern": tp.NAME_RE,
                     "description": "1-9 lower-case letters/digits: Mininet names interfaces <node>-eth<N> (<= 15 chars); "
                                    "names of the machine's interfaces (eth0, lo, docker0...) are refused"},
            "duration": {**_pattern(DURATION), "description": "with a unit: 25ms, 1.5s, 500us"},
            "percent": _pattern(PERCENT),
            "rate": _pattern(_rate()),
            "impairment": {"type": "object", "additionalProperties": False, "properties": impairment},
        },
    }


SCHEMAS = {"experiment": experiment_schema, "topology": topology_schema}


def render(kind: str) -> str:
    return json.dumps(SCHEMAS[kind](), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    check = "--check" in (argv if argv is not None else sys.argv[1:])
    stale = []
    for kind in SCHEMAS:
        path = HERE / f"{kind}.schema.json"
        text = render(kind)
        if path.read_text() != text:
            stale.append(path.name)
            if not check:
                path.write_text(text)
    if check and stale:
        print(f"out of date: {', '.join(stale)}; run python -m harness.schema.generate", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
