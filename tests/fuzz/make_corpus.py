#!/usr/bin/env python3
"""Generate a corpus of bad experiments and topologies: every key, type, bound, encoding, and the
bombs (alias, nesting, matrix size, ${} arithmetic, hostile names and paths).

Each case is a folder holding e.yaml (the experiment run-experiment is given) and t.yaml (its
topology). Every case must be refused at load with exit 2 and a message naming `e.yaml:N:` or
`t.yaml:N:` — never a traceback, a hang, or anything created.

    python tests/fuzz/make_corpus.py OUT_DIR      # writes OUT_DIR/<case>/{e,t}.yaml, prints the count
"""
from __future__ import annotations

import random
import sys
from dataclasses import dataclass
from pathlib import Path

GOOD_EXPERIMENT = """name: fuzz
topology: t.yaml
duration: 5s
sysctls: {all: {net.ipv4.tcp_timestamps: 1}, client: {net.ipv4.tcp_syn_retries: 3}}
steps:
  - {at: 0s, on: server, listen: 5001}
  - {at: 0.5s, on: client, connect: server:5001}
  - {at: 0s, network: drop, from: client, to: server, match: {flags: S, dport: 5001}, count: 1}
  - {on: client, send: 100B}
  - {on: server, recv: 100B}
  - {at: 2s, on: client, close: true}
  - {on: server, wait: peer-closed}
expect:
  client: {states: [SYN-SENT, ESTAB]}
  server: {accepted: 1, received: 100B}
  packets:
    - {from: client, flags: S, seq: x}
  timing:
    hs: {from: client calls connect, to: client returns from connect, equals: 1rtt, within: 5%}
    gone: {from: client calls close, to: client enters CLOSED, between: [0s, 2rtt]}
"""

GOOD_TOPOLOGY = """name: t
hosts: [client, server]
switches: [s1]
links:
  - {a: client, b: s1, delay: 25ms}
  - {a: server, b: s1, delay: 25ms}
"""

MATRIX = "matrix: {client: {net.ipv4.tcp_syn_retries: [1, 2]}}\n"


@dataclass(frozen=True)
class Case:
    name: str
    experiment: bytes
    topology: bytes
    about: str          # what is wrong, for the test's failure message


def _bomb(levels: int = 9, width: int = 9) -> str:
    """A ~1 KB flow sequence whose aliases expand to width**levels strings."""
    parts = ["&a0 [" + ",".join(['"lol"'] * width) + "]"]
    parts += [f"&a{k} [" + ",".join([f"*a{k - 1}"] * width) + "]" for k in range(1, levels)]
    return "[" + ",".join(parts) + "]"


def _interfaces() -> list[str]:
    """This machine's interface names: a topology node must never take one."""
    net = Path("/sys/class/net")
    return sorted(p.name for p in net.iterdir()) if net.is_dir() else []


class _Corpus:
    def __init__(self) -> None:
        self.cases: list[Case] = []

    def add(self, name: str, experiment: str | bytes = GOOD_EXPERIMENT, topology: str | bytes = GOOD_TOPOLOGY,
            about: str = "") -> None:
        enc = [x.encode() if isinstance(x, str) else x for x in (experiment, topology)]
        if enc[0] == GOOD_EXPERIMENT.encode() and enc[1] == GOOD_TOPOLOGY.encode():
            raise AssertionError(f"case {name} changes nothing")
        self.cases.append(Case(f"{len(self.cases):03d}-{name}", enc[0], enc[1], about or name))

    def exp(self, name: str, old: str, new: str, base: str = GOOD_EXPERIMENT) -> None:
        """The good experiment with `old` replaced by `new` (old must occur)."""
        if old not in base:
            raise AssertionError(f"case {name}: {old!r} is not in the base experiment")
        self.add(name, base.replace(old, new, 1), about=f"experiment: {old!r} -> {new[:80]!r}")

    def topo(self, name: str, old: str, new: str, base: str = GOOD_TOPOLOGY) -> None:
        if old not in base:
            raise AssertionError(f"case {name}: {old!r} is not in the base topology")
        self.add(name, topology=base.replace(old, new, 1), about=f"topology: {old!r} -> {new[:80]!r}")


def _names(c: _Corpus) -> None:
    bad = ["../../escape", "/abs/path", "a/b", '"."', '".."', '""', '"a\\nb"', '"a\\0b"', "x" * 65, "x" * 300,
           "-rf", ".hidden", "[1, 2]", "{a: 1}", "5", "null", "a b", '"a\\tb"', "é", "~", "'*'", "$(reboot)",
           "'`id`'", '"x;rm -rf /"', "true", "'a\\\\b'"]
    for i, name in enumerate(bad):
        c.exp(f"name{i}", "name: fuzz", f"name: {name}")
    refs = ["/etc/shadow", "/etc/passwd", "../../../../etc/shadow", "../x.yaml", "nope", "[1]", "{a: 1}", '""',
            "t.yaml/../../../../etc/passwd", "/dev/zero", "/proc/self/environ", "t.txt", "null", "5",
            "../../../../../../../../proc/self/status", "'t.yaml\\0'", "./../t.yaml", "/tmp", ".", "..", "~/t.yaml"]
    for i, ref in enumerate(refs):
        c.exp(f"topoRef{i}", "topology: t.yaml", f"topology: {ref}")
    for i, about in enumerate(["[1, 2]", "{a: 1}", "5", _bomb(), "[" * 100_000 + "]" * 100_000]):
        c.exp(f"about{i}", "name: fuzz", f"name: fuzz\nabout: {about}")


def _yaml_level(c: _Corpus) -> None:
    for key in ("name", "topology", "duration"):
        c.exp(f"aliasBomb-{key}", f"{key}: ", f"{key}: {_bomb()} #")
    c.exp("aliasBomb-steps", "steps:\n", f"steps: {_bomb()}\nx_steps:\n")
    c.exp("aliasBomb-expect", "expect:\n", f"x: {_bomb()}\nexpect:\n")
    c.exp("aliasBomb-merge", "expect:\n", "a0: &a {x: [1,1,1,1,1,1,1,1,1,1]}\n" +
          "".join(f"a{k}: &a{k} [" + ",".join(["*a" if k == 1 else f"*a{k - 1}"] * 10) + "]\n" for k in range(1, 7)) +
          "expect:\n")
    c.topo("aliasBomb-topology", "links:\n", f"x: {_bomb()}\nlinks:\n")
    c.exp("aliasRecursive", "name: fuzz", "name: &r [*r]")
    c.exp("aliasUndefined", "name: fuzz", "name: *nope")
    c.exp("anchorTwice", "name: fuzz", "name: &a x\nabout: &a y")
    for depth in (65, 1000, 100_000):
        c.exp(f"deepList{depth}", "name: fuzz", "name: fuzz\nabout: " + "[" * depth + "]" * depth)
        c.exp(f"deepMap{depth}", "name: fuzz", "name: fuzz\nabout: " + "{a: " * depth + "1" + "}" * depth)
    c.exp("deepSteps", "steps:\n", "steps: " + "[" * 100_000 + "]" * 100_000 + "\nx:\n")
    c.topo("deepTopo", "links:\n", "links: " + "[" * 100_000 + "]" * 100_000 + "\nx:\n")
    c.exp("deepBlock", "name: fuzz", "name: fuzz\nabout:\n" + "".join(" " * i + "- \n" for i in range(2, 400, 2)))
    for i, (where, bad) in enumerate([(3, b"\xe9"), (1, b"\xff\xfe"), (10, b"\xc3"), (20, b"\x80abc"), (5, b"\xed\xa0\x80")]):
        lines = GOOD_EXPERIMENT.encode().split(b"\n")
        lines[where - 1] = lines[where - 1] + b" # " + bad
        c.add(f"nonUtf8-{i}", b"\n".join(lines))
    c.add("utf16", GOOD_EXPERIMENT.encode("utf-16"))
    c.add("latin1Topo", topology=GOOD_TOPOLOGY.replace("name: t", "name: t # caf\xe9").encode("latin-1"))
    for i, (where, char) in enumerate([(1, "\0"), (7, "\0"), (19, "\0"), (2, "\x01"), (4, "\x1b[2J"), (6, "\x7f"),
                                        (3, "\x08"), (5, "\ufffe")]):
        lines = GOOD_EXPERIMENT.split("\n")
        lines[where - 1] += " # " + char
        c.add(f"control-{i}", "\n".join(lines))
    c.add("nulTopo", topology=GOOD_TOPOLOGY.replace("s1]", "s1\0]"))
    c.add("empty", "")
    c.add("onlyComment", "# nothing\n")
    c.add("topLevelList", "- name: fuzz\n")
    c.add("topLevelScalar", "fuzz\n")
    c.add("twoDocuments", GOOD_EXPERIMENT + "---\n" + GOOD_EXPERIMENT)
    c.exp("unclosed", "expect:\n", "expect: [\n")
    c.exp("tabIndent", "  client: {states", "\tclient: {states")
    c.exp("duplicateKey", "duration: 5s", "duration: 5s\nduration: 6s")
    c.exp("unhashableKeyFlow", "name: fuzz", "name: fuzz\n? [1, 2]\n: x")
    c.exp("unhashableKeyMap", "name: fuzz", "name: fuzz\n? {a: 1}\n: x")
    c.exp("unhashableKeyInSteps", "  - {on: client, send: 100B}", "  - {on: client, send: 100B, [1]: 2}")
    c.exp("pythonTag", "name: fuzz", "name: !!python/object/apply:os.system ['id']")
    c.exp("binaryTag", "name: fuzz", "name: !!binary aGVsbG8=")
    c.exp("setTag", "name: fuzz", "name: !!set {a, b}")
    c.exp("timestamp", "duration: 5s", "duration: 2001-12-14")
    c.exp("hugeInt", "count: 1", "count: " + "9" * 5000)
    c.exp("customTag", "name: fuzz", "name: !mine fuzz")
    c.add("tooLarge", GOOD_EXPERIMENT + "# " + "x" * 1_100_000 + "\n")
    rng = random.Random(11)
    for i in range(4):
        c.add(f"garbage-{i}", bytes(rng.randrange(256) for _ in range(600)))
    c.add("garbageTopo", topology=bytes(rng.randrange(256) for _ in range(600)))


def _top_keys(c: _Corpus) -> None:
    for key in ("name", "topology", "steps", "expect"):
        start = GOOD_EXPERIMENT.index(f"{key}:")
        end = GOOD_EXPERIMENT.index("\n", start) + 1
        if key in ("steps", "expect"):
            following = GOOD_EXPERIMENT[end:]
            while following.startswith(" "):
                end = GOOD_EXPERIMENT.index("\n", end) + 1
                following = GOOD_EXPERIMENT[end:]
        c.add(f"missing-{key}", GOOD_EXPERIMENT[:start] + GOOD_EXPERIMENT[end:])
    c.exp("unknownTopKey", "duration: 5s", "duration: 5s\ndurration: 6s")
    c.exp("nullKey", "duration: 5s", "duration: 5s\n~: 1")
    c.exp("intKey", "duration: 5s", "duration: 5s\n5: 1")
    for i, d in enumerate(["inf", ".inf", "-1s", "1e400s", "infs", "1e20s", "NaNs", "nan", "0s", '""', "[1]", "{a: 1}",
                           "5", "1.2.3s", "10ms", "-.inf", "1e30", "99999999999999999999999999s", "5 s s", "5sec",
                           "true", "null", "0x10s", "1_000s"]):
        c.exp(f"duration{i}", "duration: 5s", f"duration: {d}")
    for i, s in enumerate(["{client: 5}", "{client: [1]}", "{nobody: {net.ipv4.tcp_syn_retries: 3}}", "[1]", "5",
                           "{all: 5}", "{all: null}", "{client: {../../../../proc/sysrq-trigger: 1}}",
                           "{client: {net/ipv4/tcp_syn_retries: 3}}", "{client: {NET.IPV4.X: 1}}",
                           "{client: {net..ipv4: 1}}", "{client: {.net.ipv4: 1}}", "{client: {net.ipv4.: 1}}",
                           "{client: {a: 1}}", "{client: {'net.ipv4.x y': 1}}", "{client: {-w: 1}}",
                           "{client: {net.ipv4.tcp_syn_retries: [1, 2]}}", "{client: {net.ipv4.tcp_syn_retries: {a: 1}}}",
                           "{client: {net.ipv4.tcp_syn_retries: true}}", "{client: {net.ipv4.tcp_syn_retries: .inf}}",
                           "{client: {net.ipv4.tcp_syn_retries: \"1\\n2\"}}", "{client: {net.ipv4.tcp_syn_retries: null}}",
                           "{client: {net.ipv4.tcp_syn_retries: " + "1" * 300 + "}}",
                           "{client: {net.ipv4.tcp_syn_retries: '" + "x" * 300 + "'}}",
                           "{client: {'net.ipv4.x/../../y': 1}}", "{client: {[1]: 1}}", "{client: {5: 1}}",
                           "{client: {'net.ipv4.conf.*.x': 1}}"]):
        c.exp(f"sysctls{i}", "sysctls: {all: {net.ipv4.tcp_timestamps: 1}, client: {net.ipv4.tcp_syn_retries: 3}}",
              f"sysctls: {s}")


def _steps(c: _Corpus) -> None:
    listen = "  - {at: 0s, on: server, listen: 5001}"
    connect = "  - {at: 0.5s, on: client, connect: server:5001}"
    for i, s in enumerate(["5", "x", "{a: 1}", "[5]", "[[1]]", "[x]", "null", "[]"]):
        c.exp(f"stepsForm{i}", "steps:\n" + listen + "\n", f"steps: {s}\nx:\n" + listen + "\n")
    for i, item in enumerate(["5", "[1]", "x", "null", "{}", "{on: server}", "{at: 0s, on: server, lisen: 5001}",
                              "{at: 0s, on: nobody, listen: 5001}", "{at: 0s, on: [server], listen: 5001}",
                              "{at: 0s, on: server, listen: 5001, connect: server:5001}",
                              "{at: 0s, after: 1s, on: server, listen: 5001}"]):
        c.exp(f"stepItem{i}", listen, f"  - {item}")
    for i, port in enumerate(["0", "65536", "-1", "1e20", "99999999999999999999", "abc", "[1]", "{a: 1}", "1.5",
                              "null", "true", "'5001'", ".inf"]):
        c.exp(f"listenPort{i}", "listen: 5001", f"listen: {port}")
    for i, target in enumerate(["server:0", "server:65536", "nowhere:5001", "server", "server:-1", "server:1e20",
                                "server:abc", "[server, 5001]", "{server: 5001}", ":5001",
                                "server:5001:1", "s1:5001", "5001", "'server: 5001'"]):
        c.exp(f"connect{i}", "connect: server:5001", f"connect: {target}")
    for i, at in enumerate(["inf", "-1s", "abc", "[1]", ".inf", "1e400s", "0", "NaNs", "{a: 1}", "10s"]):
        c.exp(f"at{i}", "{at: 0.5s, on: client", f"{{at: {at}, on: client")
    for i, size in enumerate(["-1B", "1e30B", "[]", "{a: 1}", "abcB", "1.5B", "99999999999999999999999B", "-5",
                              "1TB", "null", "true"]):
        c.exp(f"send{i}", "send: 100B", f"send: {size}")
    for i, size in enumerate(["-5B", "some", "[1]", "1e30B", "null", "1.5kB"]):
        c.exp(f"recv{i}", "recv: 100B", f"recv: {size}")
    for i, wait in enumerate(["forever", "{state: BOGUS}", "{state: [1]}", "[1]", "-1s", "inf", "{}", "{state: LISTEN, x: 1}",
                              "null", "5", "{state: LISTEN}", "peer-closed-ish"]):
        c.exp(f"wait{i}", "wait: peer-closed", f"wait: {wait}")
    for i, step in enumerate(["{on: client, shutdown: sideways}", "{on: client, shutdown: [1]}", "{on: client, close: 5}",
                              "{on: client, close: false}", "{on: client, abort: 5}", "{on: client, abort: [1]}",
                              "{after: -1s, on: client, close: true}", "{after: inf, on: client, close: true}",
                              "{after: abc, on: client, close: true}", "{at: 2s, on: client, close: true, send: 1B}",
                              "{at: 2s, on: client}"]):
        c.exp(f"action{i}", "{at: 2s, on: client, close: true}", step)


def _network(c: _Corpus) -> None:
    base = "{at: 0s, network: drop, from: client, to: server, match: {flags: S, dport: 5001}, count: 1}"
    variants = [
        "{at: 0s, network: explode, from: client, to: server}",
        "{at: 0s, network: drop, from: nobody, to: server, count: 1}",
        "{at: 0s, network: drop, from: client, to: nobody, count: 1}",
        "{at: 0s, network: drop, from: client, to: client, count: 1}",
        "{at: 0s, network: drop, from: [client], to: server, count: 1}",
        "{at: 0s, network: drop, from: client, to: server, match: {flags: Q}, count: 1}",
        "{at: 0s, network: drop, from: client, to: server, match: {sport: 0}, count: 1}",
        "{at: 0s, network: drop, from: client, to: server, match: {dport: 65536}, count: 1}",
        "{at: 0s, network: drop, from: client, to: server, match: {dport: -1}, count: 1}",
        "{at: 0s, network: drop, from: client, to: server, match: {dport: 1e20}, count: 1}",
        "{at: 0s, network: drop, from: client, to: server, match: {bogus: 1}, count: 1}",
        "{at: 0s, network: drop, from: client, to: server, match: 5, count: 1}",
        "{at: 0s, network: drop, from: client, to: server, match: {flags: [S]}, count: 1}",
        "{at: 0s, network: drop, from: client, to: server, nth: 0}",
        "{at: 0s, network: drop, from: client, to: server, nth: -1}",
        "{at: 0s, network: drop, from: client, to: server, nth: 1e30}",
        "{at: 0s, network: drop, from: client, to: server, nth: 1.5}",
        "{at: 0s, network: drop, from: client, to: server, nth: abc}",
        "{at: 0s, network: drop, from: client, to: server, count: 1e30}",
        "{at: 0s, network: drop, from: client, to: server, count: 0}",
        "{at: 0s, network: drop, from: client, to: server, count: -5}",
        "{at: 0s, network: drop, from: client, to: server, count: 99999999999999999999999999}",
        "{at: 0s, network: drop, from: client, to: server, count: 1, nth: 1}",
        "{at: 0s, network: hold, from: client, to: server, nth: 1, for: inf}",
        "{at: 0s, network: hold, from: client, to: server, nth: 1, for: -1s}",
        "{at: 0s, network: hold, from: client, to: server, nth: 1, for: abc}",
        "{at: 0s, network: hold, from: client, to: server, nth: 1, for: 1e400s}",
        "{at: 0s, network: hold, from: client, to: server, nth: 1}",
        "{at: 0s, network: drop, from: client, to: server, count: 1, for: 1s}",
        "{at: 0s, network: delay, from: client, to: server, count: 1}",
        "{at: inf, network: drop, from: client, to: server, count: 1}",
        "{at: 0s, network: drop, from: client, to: server, count: 1, bogus: 1}",
        "{at: 0s, network: drop, to: server, count: 1}",
        "{at: 0s, network: [drop], from: client, to: server, count: 1}",
    ]
    for i, v in enumerate(variants):
        c.exp(f"network{i}", base, v)
    direct = "name: t\nhosts: [client, server]\nlinks:\n  - {a: client, b: server, delay: 25ms}\n"
    c.add("networkNoSwitch", topology=direct, about="a network step on a path with no switch")
    c.add("networkOvs", topology=GOOD_TOPOLOGY.replace("switches: [s1]", "switches: [s1]\nswitch: ovs"),
          about="network steps on Open vSwitch")


def _expect(c: _Corpus) -> None:
    for i, e in enumerate(["[1]", "5", "{timing: [1]}", "{nobody: {states: [LISTEN]}}", "{client: {states: [BOGUS]}}",
                           "{client: {states: 5}}", "{client: {states: [[1]]}}", "{client: {received: -1B}}",
                           "{client: {received: abc}}", "{client: {errors: [EBOGUS]}}", "{client: {errors: 5}}",
                           "{client: {accepted: -1}}", "{client: {accepted: 1e30}}", "{client: {accepted: x}}",
                           "{client: {bogus: 1}}", "{client: 5}", "{client: [1]}", "{packets: 5}", "{packets: [5]}",
                           "{packets: [{from: nobody}]}", "{packets: [{from: client, flags: Q}]}",
                           "{packets: [{from: client, seq: 'x+'}]}", "{packets: [{from: client, seq: 1e30}]}",
                           "{packets: [{from: client, bogus: 1}]}", "{packets: [{either: 5}]}",
                           "{packets: [{either: {a: 5}}]}", "{packets: [{either: {a: [5]}}]}",
                           "{timing: {x: 5}}", "{timing: {x: {from: bogus, to: client enters CLOSED, between: [0s, 1s]}}}",
                           "{timing: {x: {from: client calls connect, to: nobody enters CLOSED, between: [0s, 1s]}}}",
                           "{timing: {x: {from: client calls connect, to: client enters CLOSED}}}",
                           "{timing: {x: {from: client calls connect, to: client enters CLOSED, between: 5}}}",
                           "{timing: {x: {from: client calls connect, to: client enters CLOSED, between: [1s]}}}",
                           "{timing: {x: {from: client calls connect, to: client enters CLOSED, between: [2s, 1s]}}}",
                           "{timing: {x: {from: client calls connect, to: client enters CLOSED, between: [abc, 1s]}}}",
                           "{timing: {x: {from: client calls connect, to: client enters CLOSED, between: [0s, inf]}}}",
                           "{timing: {x: {from: [1], to: client enters CLOSED, between: [0s, 1s]}}}",
                           "{timing: {x: {from: client calls connect#0, to: client enters CLOSED, between: [0s, 1s]}}}",
                           "{timing: {x: {from: client calls connect#1e30, to: client enters CLOSED, between: [0s, 1s]}}}",
                           "{timing: {handshake_client: {equals: 1rtt}}}", "{timing: {handshake_client: 5}}",
                           "{timing: {handshake_client: {equals: 1rtt, within: 5%, between: [0s, 1s]}}}"]):
        c.exp(f"expect{i}", "expect:\n  client: {states: [SYN-SENT, ESTAB]}\n",
              f"expect: {e}\nx_expect:\n  client: {{states: [SYN-SENT, ESTAB]}}\n")
    for i, (eq, within) in enumerate([("1rtt", "abc%"), (".rtt", "5%"), ("1.2.3rtt", "5%"), ("1rtt", "-5%"),
                                      ("1rtt", "5"), ("inf", "5%"), ("1rtt", "inf"), ("abc", "5%"), ("[1]", "5%"),
                                      ("1rtt", "[1]"), ("-1rtt", "5%"), ("1e400s", "5%"), ("1rtt", "1e400ms"),
                                      ("1 rtt rtt", "5%"), ("1rtt", "5%%"), ("1rtt", ".%"),
                                      ("nanrtt", "5%"), ("1rtt", "nan%"), ("1ms", "-1ms")]):
        c.exp(f"equalsWithin{i}", "equals: 1rtt, within: 5%", f"equals: {eq}, within: {within}")


def _matrix(c: _Corpus) -> None:
    base = MATRIX + GOOD_EXPERIMENT
    for i, m in enumerate(["{repeat: 1000000000000}", "{repeat: 0}", "{repeat: -1}", "{repeat: 1.5}", "{repeat: x}",
                           "{repeat: true}", "{repeat: [1]}", "5", "[1]",
                           "{client: {net.ipv4.a: [" + ",".join(map(str, range(100))) + "], net.ipv4.b: ["
                           + ",".join(map(str, range(100))) + "], net.ipv4.c: [" + ",".join(map(str, range(100))) + "]}}",
                           "{client: {net.ipv4.a: [" + ",".join(map(str, range(40))) + "]}, repeat: 30}",
                           "{repeat: 10000}",
                           "{client: {../../proc/sysrq-trigger: [1, 2]}}", "{'../../x.y': [1]}", "{client: {net.ipv4.a: []}}",
                           "{client: {net.ipv4.a: [1, 1]}}", "{client: {net.ipv4.a: [[1], [2]]}}",
                           "{client: {net.ipv4.a: [{a: 1}]}}", "{client: {net.ipv4.a: [true]}}", "{client: {net.ipv4.a: 5}}",
                           "{client: 5}", "{nobody: {net.ipv4.a: [1]}}", "{5: {net.ipv4.a: [1]}}",
                           "{links: {bogus: [1ms]}}", "{links: {delay: [abc]}}", "{links: {queue: [-5]}}",
                           "{links: {queue: [1.9]}}", "{links: {queue: [1e30]}}", "{links: {delay: [inf]}}",
                           "{links: {loss: [101%]}}", "{links: {delay: 5}}", "{links: 5}",
                           "{client: {net.ipv4.a: [\"1\\n2\"]}}", "{client: {net.ipv4.a: ['" + "x" * 300 + "']}}",
                           "{net.ipv4.a: ['a b', 'a_b']}", "{client: {NET.a: [1]}}"]):
        c.exp(f"matrix{i}", MATRIX, f"matrix: {m}\n", base)
    exprs = ["${9**9**9}", "${10**10**10}", "${10**400}", "${2**10000}", "${(-8)**0.5}", "${1/0}", "${1%0}", "${1//0}",
             "${0**-1}", "${1e400}", "${abc}", "${__import__('os').system('id')}", "${().__class__}", "${'a'*9}",
             "${" + "(" * 300 + "1" + ")" * 300 + "}", "${-}", "${1 if 1 else 2}", "${x[0]}", "${10**18*10**18}",
             "${" + "+".join(["1"] * 200) + "}", "${" + "-" * 500 + "1}", "${tcp_syn_retries()}", "${lambda: 1}",
             "${[1]}", "${1e308*10}", "${2.0**5000}", "${(-1)**0.5}", "${" + "9" * 5000 + "}", "${tcp_syn_retries**99}",
             "${repeat**repeat**repeat**99}", "${1 < 2}", "${not 1}", "${~1}", "${1 << 10000}", "${1 & 1}",
             "${f'{1}'}", "${b'1'}", "${...}", "${1j}", "${True}", "${None}"]
    for i, e in enumerate(exprs):
        c.exp(f"expr{i}", "duration: 5s", f"duration: '{e.replace(chr(39), chr(39) * 2)}s'", base)


def _topology(c: _Corpus) -> None:
    names = ["eth0", "lo", "docker0", "ens3", "br0", "virbr0", "wlan0", "bond0", "veth0", "tap0", "ovs", "a-b", "A",
             "1abc", "abcdefghij", '""', "'a b'", "'a/b'", "'..'", "[1]", "{a: 1}", "5", "null", "all", "'client\\n'",
             "xn--", "é", "s1", "client"]
    names += [n for n in _interfaces() if n not in names]
    for i, name in enumerate(names):
        host_list = f"hosts: [client, server, {name}]"
        c.topo(f"nodeHost{i}", "hosts: [client, server]",
               host_list, base=GOOD_TOPOLOGY + f"  - {{a: {name}, b: s1}}\n" if name not in ("s1", "client") else GOOD_TOPOLOGY)
        c.topo(f"nodeSwitch{i}", "switches: [s1]", f"switches: [s1, {name}]",
               base=GOOD_TOPOLOGY + f"  - {{a: {name}, b: s1}}\n" if name not in ("s1", "client") else GOOD_TOPOLOGY)
    for i, (old, new) in enumerate([
        ("hosts: [client, server]", "hosts: client"), ("hosts: [client, server]", "hosts: {client: 1}"),
        ("hosts: [client, server]", "hosts: []"), ("switches: [s1]", "switches: s1"), ("switches: [s1]", "switches: 5"),
        ("switches: [s1]", "switches: [s1]\nswitch: hub"), ("switches: [s1]", "switches: [s1]\nswitch: [ovs]"),
        ("links:\n  - {a: client, b: s1, delay: 25ms}\n  - {a: server, b: s1, delay: 25ms}\n", "links: 5\n"),
        ("links:\n  - {a: client, b: s1, delay: 25ms}\n  - {a: server, b: s1, delay: 25ms}\n", "links: []\n"),
        ("{a: client, b: s1, delay: 25ms}", "5"), ("{a: client, b: s1, delay: 25ms}", "[client, s1]"),
        ("{a: client, b: s1, delay: 25ms}", "{a: nobody, b: s1}"), ("{a: client, b: s1, delay: 25ms}", "{a: [1], b: s1}"),
        ("{a: client, b: s1, delay: 25ms}", "{a: {x: 1}, b: s1}"), ("{a: client, b: s1, delay: 25ms}", "{a: client, b: [s1, s2]}"),
        ("{a: client, b: s1, delay: 25ms}", "{a: client}"), ("{a: client, b: s1, delay: 25ms}", "{a: client, b: s1, bogus: 1}"),
        ("{a: client, b: s1, delay: 25ms}", "{a: s1, b: s1}"), ("{a: client, b: s1, delay: 25ms}", "{a: client, b: client}"),
        ("{a: client, b: s1, delay: 25ms}", "{a: client, b: s1, a_to_b: 5}"),
        ("{a: client, b: s1, delay: 25ms}", "{a: client, b: s1, a_to_b: {bogus: 1}}"),
        ("{a: client, b: s1, delay: 25ms}", "{a: client, b: s1, b_to_a: [1]}"),
        ("name: t", "name: [1]"), ("name: t", "name: {a: 1}"), ("name: t", "bogus: 1\nname: t"),
        ("hosts: [client, server]\n", ""),
    ]):
        c.topo(f"topoShape{i}", old, new)
    for i, (key, value) in enumerate([
        ("delay", "inf"), ("delay", "-1ms"), ("delay", "1e400ms"), ("delay", "abc"), ("delay", "25"), ("delay", "[1]"),
        ("delay", ".inf"), ("delay", "NaNms"), ("delay", "99999999999999999999s"), ("loss", "101%"), ("loss", "-1%"),
        ("loss", "abc%"), ("loss", "5"), ("loss", "nan%"), ("bw", "-1mbit"), ("bw", "fast"), ("bw", "0mbit"),
        ("bw", "1e400mbit"), ("queue", "-5"), ("queue", "1.9"), ("queue", "1e30"), ("queue", "[1]"), ("queue", "x"),
        ("queue", "0"), ("queue", "99999999999999999999"), ("jitter", "5ms, delay: 0ms"), ("jitter", "-1ms"),
        ("jitter", "inf"),
    ]):
        c.topo(f"impairment{i}", "{a: server, b: s1, delay: 25ms}", f"{{a: server, b: s1, delay: 25ms, {key}: {value}}}"
               if key != "delay" else f"{{a: server, b: s1, delay: {value}}}")
    links = "links:\n  - {a: client, b: s1, delay: 25ms}\n  - {a: server, b: s1, delay: 25ms}\n"
    for name, text in [
        ("disconnectedSwitches", "switches: [s1, s2]\nlinks:\n  - {a: client, b: s1}\n  - {a: server, b: s2}\n"),
        ("switchLoop", "switches: [s1, s2, s3]\nlinks:\n  - {a: client, b: s1}\n  - {a: server, b: s2}\n"
                       "  - {a: s1, b: s2}\n  - {a: s2, b: s3}\n  - {a: s3, b: s1}\n"),
        ("parallelLinks", "switches: [s1]\nlinks:\n  - {a: client, b: s1}\n  - {a: server, b: s1}\n  - {a: server, b: s1}\n"),
        ("hostTwoLinks", "switches: [s1, s2]\nlinks:\n  - {a: client, b: s1}\n  - {a: client, b: s2}\n  - {a: server, b: s2}\n"),
        ("hostNoLink", "switches: [s1]\nlinks:\n  - {a: client, b: s1}\n"),
        ("switchNoLink", "switches: [s1, s2]\nlinks:\n  - {a: client, b: s1}\n  - {a: server, b: s1}\n"),
        ("hostToHostAndSwitch", "switches: [s1]\nlinks:\n  - {a: client, b: server}\n  - {a: client, b: s1}\n  - {a: server, b: s1}\n"),
        ("selfLink", "switches: [s1]\nlinks:\n  - {a: client, b: s1}\n  - {a: server, b: s1}\n  - {a: s1, b: s1}\n"),
    ]:
        c.topo(name, "switches: [s1]\n" + links, text)
    c.topo("missingHosts", "hosts: [client, server]\n", "")
    c.topo("missingLinks", links, "")


def corpus() -> list[Case]:
    c = _Corpus()
    for part in (_names, _yaml_level, _top_keys, _steps, _network, _expect, _matrix, _topology):
        part(c)
    return c.cases


def write(out: Path) -> list[tuple[Case, Path]]:
    """Write every case into out/<case>/ and return (case, experiment path) pairs."""
    written = []
    for case in corpus():
        folder = out / case.name
        folder.mkdir(parents=True)
        (folder / "e.yaml").write_bytes(case.experiment)
        (folder / "t.yaml").write_bytes(case.topology)
        (folder / "t.txt").write_text("not a topology\n")
        written.append((case, folder / "e.yaml"))
    return written


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(len(write(Path(sys.argv[1]))), "cases written to", sys.argv[1])
