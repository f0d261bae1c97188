"""Network steps made real: nftables bridge rules pick the segments, tc classes on the switch port
hold or delay them (netem), or a second chain drops them; a duplicate is made by nftables itself.

Two base chains sit in the bridge's forward hook of the root namespace (no br_netfilter, no
conntrack). The first ("rules", priority 0) only counts and marks: each step's rule counts what it
picks with `numgen inc`, evaluated only for segments that matched everything before it in that
rule, so `numgen inc mod M == N-1` is exactly the Nth match, and sets the step's own mark. Nothing
is dropped there, so every rule sees every segment its match fits, whatever the other steps do:
measured in the 6.1 VM (tests/fixtures/drop_second_and_third_syn.yaml), drop rules in that chain
counted only what earlier drop rules let through (`nth: 2`, `nth: 3`, `nth: 1` on one match dropped
SYNs #2, #4 and #1). The second ("drops", priority 10) drops the marks of drop steps; its rules go
in before the run, so a timed step switched on later changes only the first chain. On the port's
qdisc, a prio qdisc sends the marks of hold and delay steps to their own netem band and everything
else through the link's own netem, unchanged. A segment two steps pick carries the mark of the one
whose rule comes later in the chain (added later).

`len:` and `options:` of a match are nft expressions too: the payload length is the IP total
length less 20 (`ip hdrlength 5`: Linux sends TCP without IP options) and less the TCP header, so
it is matched as the pair (ip length, tcp doff) against a set with one range per header length;
options with `tcp option NAME exists|missing` or their value (maxseg size, window count, the sack
option's length for its number of blocks). A match flag P requires data (len > 0) unless len: is
given; the flags themselves are compared without PSH.

Duplicates cannot come from netem: kernel commit ec8e0e3d7ade (2025, "net/sched: Restrict
conditions for adding duplicating netems to qdisc tree", in stable 6.1.y and 6.12.y too) makes
sch_netem.c's check_netem_in_tree() refuse a duplicating netem on a device that has any other
netem ("netem: cannot mix duplicating netems with other netems in tree"), and the port always has
the link's (a 2026 revert was proposed, so kernels differ; nft works on all of them). So a duplicate step's rule sits in a netdev-family ingress chain on
the port the segments arrive by and does `dup to "<egress port>"` (nft_dup_netdev): the copy is
queued straight on the egress port, before the original has crossed the bridge, and both go
through the link's own netem there, so the copy carries the link's delay like the original.

At a router (a Linux namespace with ip_forward=1) the same chains sit in an `ip`-family table of
the router's own namespace, hook forward (after routing: `oifname` is the egress port, the TTL is
already decremented), and the tc bands on the router's egress port in that namespace. A duplicate
cannot use the netdev ingress chain there: `dup to` a device sends the frame as it arrived (the
router's own MAC as destination, the TTL not decremented): measured, the copy reached r2 with the
client's MAC pair and TTL 64 and went no further (the server saw one SYN). So its
rule sits in the forward chain and does `dup to <next hop> device "<egress port>"` (nf_dup_ipv4):
the copy is routed to the next hop (`ip route get` in the router gives it), leaves with the
router port's MAC, the next hop's MAC and the forwarded TTL, through the port's qdisc like the
original (measured on the host's 6.18 with three namespaces: tests/integration/test_router_steps.py).
"""
from __future__ import annotations

import json
import os
import subprocess
import threading
import time

from typing import NamedTuple

from harness.errors import RunFailed
from harness.lab.lifecycle import Lifecycle, stop_all
from harness.model import Impairment, LengthSpec, NetworkStep, OptionSpec, PacketMatch
from harness.lab.routing_setup import batch_command, qdisc_texts
from harness.runlog import node_pexec, run_command

_FLAG_WORDS = {"S": "syn", "F": "fin", "R": "rst", "A": "ack", "U": "urg"}
_BIG = 4_000_000_000


class PlacedStep(NamedTuple):
    """A network step with where it acts: the switch port the segments leave by (and its own
    impairment), the port they arrive on, and the addresses that pick its direction."""
    step: NetworkStep
    port: str
    impairment: Impairment
    src_ip: str
    dst_ip: str
    ingress: str
    node: str = ""              # the switch or router it acts at (NetworkRules groups by it)


def table_name() -> str:
    return f"tcptestbed_{os.getpid()}"


def nft_rule(step: NetworkStep, port: str, src_ip: str, dst_ip: str, mark: int, next_hop: str | None = None) -> str:
    """The nft rule text for one network step (pure, so it is unit-tested). A duplicate's rule at
    a switch lives in its ingress port's own chain, so it names only the port the copy leaves by;
    at a router (`next_hop` given) it sits in the forward chain and routes the copy to the next
    hop. Every other step's rule only marks (a drop step's mark is dropped by the drops chain:
    drop_rule)."""
    duplicate = step.action == "duplicate"
    parts = [] if duplicate and next_hop is None else [f'oifname "{port}"']
    parts += [f"ip saddr {src_ip}", f"ip daddr {dst_ip}", "ip protocol tcp"]
    parts += match_exprs(step.match)
    if step.nth:
        parts.append(f"numgen inc mod {_BIG} == {step.nth - 1}")
    elif step.count:
        parts.append(f"numgen inc mod {_BIG} < {step.count}")
    parts.append("counter")
    if duplicate:
        parts.append(f'dup to "{port}"' if next_hop is None else f'dup to {next_hop} device "{port}"')
    else:
        parts.append(f"meta mark set {mark}")
    parts.append(f'comment "step-{step.index}"')
    return " ".join(parts)


def drop_rule(step: NetworkStep, mark: int) -> str:
    """The drops chain's rule for a drop step: drop what its rule in the "rules" chain marked."""
    return f'meta mark {mark} counter drop comment "drop-{step.index}"'


def match_exprs(match: PacketMatch) -> list[str]:
    """The nft expressions of a match's ports, flags (PSH ignored), payload length and options."""
    parts = []
    if match.sport is not None:
        parts.append(f"tcp sport {match.sport}")
    if match.dport is not None:
        parts.append(f"tcp dport {match.dport}")
    if match.flags:
        wanted = "|".join(_FLAG_WORDS[f] for f in match.flags if f != "P")     # P: data, below
        parts.append(f"tcp flags & (fin|syn|rst|ack|urg) == {f'({wanted})' if wanted else 0}")
    length = match_length(match)
    if length is not None:
        parts.append(length_expr(length))
    parts += [option_expr(o) for o in match.options]
    return parts


def match_length(match: PacketMatch) -> LengthSpec | None:
    """The payload length a match asks for: its len:, else "> 0" when its flags have P (data)."""
    if match.length is not None:
        return match.length
    if match.flags and "P" in match.flags:
        return LengthSpec(1, None, ">0")
    return None


_TCP_HEADER_WORDS = range(5, 16)          # tcp doff: 20 to 60 bytes of TCP header
_IP_MAX = 65535
_MAX_PAYLOAD = _IP_MAX - 20 - 20          # the most an IPv4 segment can carry


def length_expr(length: LengthSpec) -> str:
    """Payload bytes as (IP total length, TCP header) pairs: nft cannot subtract one field from
    another, so each TCP header length gets its own range of total lengths. The header length is
    read as the whole byte 12 of the TCP header (doff in its high 4 bits, so doff 5 is 0x50-0x5f):
    nft 1.0.6 garbles the 4-bit `tcp doff` in a concatenation (measured here: `ip length . tcp
    doff { 41-65535 . 5 }` lists back as `tcp doff >> 4 { 0 . 0 }`, and `nft -j list` then aborts
    with "concat_expr_msort_value: Assertion `ilen > 0' failed")."""
    elements = []
    for doff in _TCP_HEADER_WORDS:
        headers = 20 + 4 * doff
        low = headers + length.low
        high = min(_IP_MAX, headers + length.high) if length.high is not None else _IP_MAX
        if low > high:
            continue
        total = f"{low}" if low == high else f"{low}-{high}"
        elements.append(f"{total} . {doff << 4:#x}-{doff << 4 | 0xf:#x}")
    return f"ip hdrlength 5 ip length . @th,96,8 {{ {', '.join(elements)} }}"


# options: name -> (nft's name for it, nft's field holding the value)
_NFT_OPTIONS = {"mss": ("maxseg", "size"), "wscale": ("window", "count"), "sackok": ("sack-perm", None),
                "sack": ("sack", "length"), "ts": ("timestamp", None)}
_MAX_SACK_BLOCKS = 4                      # 2 + 8 * 4 = 34 of the 40 bytes of option space


def option_expr(option: OptionSpec) -> str:
    """One option: present (any value), absent, or present with a value (sack: its number of
    blocks, which nft sees as the option's length, 2 + 8 per block)."""
    name, field = _NFT_OPTIONS[option.name]
    if not option.present:
        return f"tcp option {name} missing"
    if option.value is None:
        return f"tcp option {name} exists"
    value = 2 + 8 * option.value if option.name == "sack" else option.value
    return f"tcp option {name} {field} {value}"


def nft_can_express(match: PacketMatch) -> str | None:
    """Why the switch's nftables rule cannot pick what `match` asks for, or None when it can (for
    the loader to refuse such a match with the reason)."""
    length = match_length(match)
    if length is not None and length.low > _MAX_PAYLOAD:
        return f"len: {length.text or length.low} is more than an IPv4 TCP segment can carry ({_MAX_PAYLOAD} bytes)"
    for option in match.options:
        if option.name not in _NFT_OPTIONS:
            return f"the switch's rules cannot match the TCP option {option.name!r}"
        if option.value is None:
            continue
        if option.name in ("sackok", "ts"):
            return f"options: {option.name} takes only true or false at the switch"
        if option.name == "sack" and not 1 <= option.value <= _MAX_SACK_BLOCKS:
            return f"options: sack {option.value}: a SACK option holds 1 to {_MAX_SACK_BLOCKS} blocks"
        if option.name == "mss" and not 0 <= option.value <= 65535:
            return f"options: mss {option.value} is not a 16-bit value"
        if option.name == "wscale" and not 0 <= option.value <= 255:
            return f"options: wscale {option.value} is not an 8-bit value"
    return None


def rule_home(placed: list[PlacedStep], family: str = "bridge") -> list[tuple[str, str]]:
    """(family, chain) of each step's rule: at a switch, duplicates in a netdev ingress chain of
    the port the segments arrive by (one chain per port, named by position: port names need no
    quoting), everything else in the bridge table's forward chain; at a router (family ip), all in
    the ip table's forward chain."""
    if family == "ip":
        return [("ip", "rules")] * len(placed)
    ingress = sorted({p.ingress for p in placed if p.step.action == "duplicate"})
    return [("netdev", f"in{ingress.index(p.ingress)}") if p.step.action == "duplicate" else ("bridge", "rules")
            for p in placed]


def netdev_chains(placed: list[PlacedStep]) -> dict[str, str]:
    """Chain name -> the ingress port it hooks, for the duplicate steps."""
    return {chain: p.ingress for p, (family, chain) in zip(placed, rule_home(placed)) if family == "netdev"}


def _netem_args(delay_s: float, imp: Impairment | None = None) -> list[str]:
    args = ["netem", "delay", f"{delay_s * 1e3:.3f}ms"]
    if imp and imp.jitter_s:
        args.append(f"{imp.jitter_s * 1e3:.3f}ms")
    if imp and imp.loss_pct:
        args += ["loss", f"{imp.loss_pct:g}%"]
    return args + ["limit", str(imp.queue if imp and imp.queue else 1000)]


def _run(node, args: list[str]) -> str:
    out, err, code = node_pexec(node, args)
    if code:
        raise RunFailed(f"could not set up a network step: `{' '.join(args)}` failed: {err.strip() or out.strip()}")
    return out


def _nft(node, commands: list[str]) -> None:
    """Several nft commands in one process (in the VM each process costs 0.1-0.3 s of wall time),
    ' ; '-separated on one command line so run.log shows each; nft applies them as one
    transaction, so a failure leaves none of them in."""
    if commands:
        _run(node, ["nft", " ; ".join(commands)])


def band_lines(port: str, rules: list[tuple[PlacedStep, int]]) -> list[str]:
    """`tc -batch` lines of one egress port's bands: a prio qdisc, the link's own netem in band 1,
    one netem band per hold or delay step and the fw filter that sends the step's mark there."""
    imp = rules[0][0].impairment
    lines = [f"qdisc replace dev {port} root handle 1: prio bands {max(2, len(rules) + 1)} priomap {' '.join(['0'] * 16)}",
             f"qdisc add dev {port} parent 1:1 handle 10: {' '.join(_netem_args(imp.delay_s, imp))}"]
    for band, (placed_step, mark) in enumerate(rules, start=2):
        netem = _netem_args(imp.delay_s + (placed_step.step.extra_s or 0.0), None)
        lines += [f"qdisc add dev {port} parent 1:{band} handle {band}0: {' '.join(netem)}",
                  f"filter add dev {port} parent 1: protocol all prio 1 handle {mark} fw flowid 1:{band}"]
    return lines


def _run_tc(node, lines: list[str], ports: list[str]) -> dict[str, str]:
    """Run `lines` in one `tc -batch` process (it stops at the first failing line and names it,
    -:N), then read the ports' qdiscs back in the same process: port -> `tc qdisc show dev` text."""
    out = _run(node, batch_command(["tc", "-batch", "-"], [*lines, "qdisc show"]))
    texts = qdisc_texts(out)
    return {port: texts.get(port, "") for port in ports}


FAMILIES = ("bridge", "ip")


def route_next_hop(route_json: str, dst_ip: str) -> tuple[str, str]:
    """(next hop address, device) from `ip -j route get DST` in a router: the gateway when the
    route has one, else the destination itself (on the router's own subnet). Pure: unit-tested."""
    routes = json.loads(route_json or "[]")
    if not routes or "dev" not in routes[0]:
        raise RunFailed(f"the router has no route to {dst_ip}")
    return routes[0].get("gateway", dst_ip), routes[0]["dev"]


class PacketRules(Lifecycle):
    """The lifecycle of harness.lab.lifecycle: the constructor sets up the tables, chains and tc
    bands; wait_ready() installs the untimed rules; start(t0) arms each timed rule at its step's
    time; counters() reads what the rules picked; stop() (alias close()) cancels and joins the
    timers and removes the tables, and is safe at any point and twice. If the run is killed the
    ledger removes the bridge tables (they carry the ledger's name); a router's go with its namespace.

    family "bridge": `node` is any switch (its ports live in the root namespace); family "ip":
    `node` is a router, and every command runs in its namespace."""

    def __init__(self, placed: list[PlacedStep], root_node, ledger, family: str = "bridge") -> None:
        if family not in FAMILIES:
            raise ValueError(f"family must be one of {FAMILIES}, not {family!r}")
        placed = [p for p in placed if p.step.action != "inject"]     # harness.lab.injector sends those
        for p in placed:            # the loader refuses these; here so that no rule is ever half-written
            reason = nft_can_express(p.step.match)
            if reason:
                raise RunFailed(f"network step at line {p.step.index}: {reason}")
        self.node, self.table, self.family = root_node, table_name(), family
        # commands run outside node.pexec (timer threads, stop) enter a router's namespace themselves
        self.prefix = [] if family == "bridge" else ["nsenter", "-t", str(root_node.pid), "-n"]
        self.marked = [(p, 0x10 + i) for i, p in enumerate(placed)]    # each step's packet mark
        self.homes = rule_home(placed, family)
        self.next_hops: dict[int, str] = {}      # duplicate step line -> next hop (at a router)
        self.timers: list[threading.Timer] = []
        self.failed: list[str] = []
        # step line -> (before, after) its timed rule went in: segments that reached the switch
        # before it are not the step's to pick, and one arriving meanwhile cannot be told either way
        self.switched_on: dict[int, tuple[float, float]] = {}
        self.qdiscs: dict[str, str] = {}
        self.families = [family] + (["netdev"] if any(f == "netdev" for f, _ in self.homes) else [])
        self.closed = False
        self.installed = False
        self.counted: dict[int, int] | None = None
        self.ledger = ledger if family == "bridge" else None     # a router's table goes with its namespace
        if family == "bridge":
            ledger.add(nft_tables=[self.table])
        try:
            self._tables(placed)
            self._bands()
        except BaseException:
            self.stop()             # what was set up goes, and the error is the caller's
            raise

    def _tables(self, placed: list[PlacedStep]) -> None:
        """The table, its marking chain, the drops chain with every drop rule, the netdev chains
        of duplicates at a switch (one nft process, one transaction: all or nothing), and the
        next hop of duplicates at a router."""
        family, table = self.family, self.table
        commands = [f"add table {family} {table}",
                    f"add chain {family} {table} rules {{ type filter hook forward priority 0; policy accept; }}"]
        drops = [(p, mark) for p, mark in self.marked if p.step.action == "drop"]
        if drops:       # after "rules" on the same hook; all in now: a timed step only adds a mark
            commands.append(f"add chain {family} {table} drops {{ type filter hook forward priority 10; policy accept; }}")
            commands += [f"add rule {family} {table} drops {drop_rule(p.step, mark)}" for p, mark in drops]
        if "netdev" in self.families:
            commands.append(f"add table netdev {table}")
            commands += [f'add chain netdev {table} {chain} {{ type filter hook ingress device "{device}" priority 0; '
                         'policy accept; }' for chain, device in netdev_chains(placed).items()]
        _nft(self.node, commands)
        if family == "ip":
            for p in placed:
                if p.step.action == "duplicate":
                    self.next_hops[p.step.index] = self._next_hop(p)

    def _next_hop(self, p: PlacedStep) -> str:
        """Where the router sends p's segments, from its own routes; they must leave by p.port."""
        out, err, code = node_pexec(self.node, ["ip", "-j", "route", "get", p.dst_ip])
        if code:
            raise RunFailed(f"network step at line {p.step.index}: `ip route get {p.dst_ip}` failed: {err.strip()}")
        hop, dev = route_next_hop(out, p.dst_ip)
        if dev != p.port:
            raise RunFailed(f"network step at line {p.step.index}: the router sends {p.dst_ip} out of {dev}, "
                            f"not {p.port} as the plan says")
        return hop

    def _bands(self) -> None:
        """On each egress port with hold or delay steps: a prio qdisc, the link's own netem in
        band 1 and one netem band per step, picked by the step's mark."""
        by_port: dict[str, list[tuple[PlacedStep, int]]] = {}
        for placed_step, mark in self.marked:
            if placed_step.step.action in ("drop", "duplicate"):
                continue
            if placed_step.impairment.bw_mbit:
                raise RunFailed(f"network step at line {placed_step.step.index}: {placed_step.port} is rate-limited (bw), "
                                "and holding segments there is not supported yet; drop works.")
            by_port.setdefault(placed_step.port, []).append((placed_step, mark))
        if by_port:
            self.qdiscs = _run_tc(self.node, [line for port, rules in by_port.items() for line in band_lines(port, rules)],
                                  list(by_port))

    def install_untimed(self) -> None:
        """Add the rules of steps without a time, before the timeline's t0 is set: running nft
        waits on the file system, which moves the VM's virtual clock on. Done once."""
        if self.installed:
            return
        self.installed = True
        _nft(self.node, [self._add_rule(p, mark, home)[1] for (p, mark), home in zip(self.marked, self.homes)
                         if not p.step.at_s])

    def _add_rule(self, p: PlacedStep, mark: int, home: tuple[str, str]) -> list[str]:
        family, chain = home
        rule = nft_rule(p.step, p.port, p.src_ip, p.dst_ip, mark, self.next_hops.get(p.step.index))
        return ["nft", f"add rule {family} {self.table} {chain} {rule}"]

    def arm(self, t0: float) -> None:
        """Add each timed rule at its step's time, on a timer thread (none once closed)."""
        if self.closed:
            return
        for (p, mark), home in zip(self.marked, self.homes):
            if p.step.at_s:
                timer = threading.Timer(max(0.0, t0 + p.step.at_s - time.time()), self._add_later,
                                        (self.prefix + self._add_rule(p, mark, home), p.step.index))
                timer.daemon = True    # never keeps the process alive, even if stop() is skipped
                timer.start()
                self.timers.append(timer)

    def wait_ready(self, timeout: float | None = None) -> None:
        """Ready = the untimed rules are in (nft returns when they are)."""
        self.install_untimed()

    def start(self, t0: float) -> None:
        self.arm(t0)

    def cancel_timers(self) -> None:
        """Cancel and join every timer thread: no thread may outlive the cell (the next cell forks
        its helpers). Safe before arm() and safe to call twice."""
        timers, self.timers = self.timers, []
        for timer in timers:
            timer.cancel()
        for timer in timers:
            timer.join()

    def _stop(self) -> None:
        """Stop the timers and remove this run's nftables tables (read counters() first). Safe
        before arm() and safe to call twice; a table already gone is not an error."""
        self.closed = True          # arm() starts no timer from now on
        self.cancel_timers()
        if len(self.families) == 1:
            deleted = not run_command([*self.prefix, "nft", "delete", "table", self.families[0], self.table]).returncode
        else:       # made in one transaction, so both are there (or neither): one process
            together = run_command([*self.prefix, "nft", " ; ".join(f"delete table {f} {self.table}" for f in self.families)])
            # one already gone (the transaction then deletes neither): each alone, every one tried
            alone = [] if not together.returncode else [
                run_command([*self.prefix, "nft", "delete", "table", family, self.table]).returncode
                for family in self.families]
            deleted = not any(alone)
        if deleted and self.ledger is not None:      # the ledger's close() need not try again (two failing nfts)
            self.ledger.forget(nft_tables=[self.table])

    close = Lifecycle.stop

    def summary(self) -> dict:
        """The table's name, the tc qdiscs set up per port, the last counters read, and any timed
        rule that could not be switched on."""
        return {"table": self.table, "qdiscs": dict(self.qdiscs), "counters": self.counted, "failed": list(self.failed)}

    def _add_later(self, args: list[str], line: int | None = None) -> None:
        """On a timer thread: a failure is kept and reported with the counters, not lost. That
        includes a command that cannot run or hangs (OSError, TimeoutExpired): raised here it would
        only print the thread's traceback, and the step would silently never switch on."""
        before = time.time()
        try:
            done = run_command(args)
        except (OSError, subprocess.SubprocessError) as exc:
            self.failed.append(f"`{' '.join(args)}` did not run: {exc}")
            return
        if line is not None:
            self.switched_on[line] = (before, time.time())
        if done.returncode:
            self.failed.append(f"`{' '.join(args)}` failed: {done.stderr.strip()}")

    def counters(self) -> dict[int, int]:
        """Step line -> packets its rule picked (kept for summary())."""
        self.cancel_timers()
        if self.failed:
            raise RunFailed("a network step's rule could not be switched on: " + "; ".join(self.failed))
        counts = {}
        for family in self.families:
            out, err, code = node_pexec(self.node, ["nft", "-j", "list", "table", family, self.table])
            if code:
                raise RunFailed(f"could not read the network steps' counters: {err.strip()}")
            counts.update(step_counters(out))
        self.counted = counts
        return counts


def step_counters(nft_json: str) -> dict[int, int]:
    """Step line -> packets, from `nft -j list table` output (pure, so it is unit-tested)."""
    counts = {}
    for item in json.loads(nft_json)["nftables"]:
        rule = item.get("rule")
        if rule and rule.get("comment", "").startswith("step-"):
            packets = next((e["counter"]["packets"] for e in rule["expr"] if "counter" in e), 0)
            counts[int(rule["comment"][5:])] = packets
    return counts


def rule_groups(placed: list[PlacedStep], routers) -> dict[str, list[PlacedStep]]:
    """Node -> the steps whose rules it holds: every switch step in one group under the first
    switch's name (the Linux bridges' ports all live in the root namespace, one bridge table
    serves them all), each router's steps under its own name (its own namespace)."""
    groups: dict[str, list[PlacedStep]] = {}
    switch = next((p.node for p in placed if p.node not in routers), None)
    for p in placed:
        groups.setdefault(p.node if p.node in routers else switch, []).append(p)
    return groups


class NetworkRules(Lifecycle):
    """The network steps' rules of a whole lab: one PacketRules per node that holds rules (family
    bridge for the switches, family ip for each router), with PacketRules' own face: the runner
    uses it as one (wait_ready, start, counters, qdiscs, switched_on, summary, stop)."""

    def __init__(self, placed: list[PlacedStep], node_of, routers, ledger) -> None:
        self.parts: list[PacketRules] = []
        try:
            for name, steps in rule_groups([p for p in placed if p.step.action != "inject"], set(routers)).items():
                family = "ip" if name in routers else "bridge"
                self.parts.append(PacketRules(steps, node_of(name), ledger, family=family))
        except BaseException:
            self.stop()
            raise

    @property
    def qdiscs(self) -> dict[str, str]:
        return {port: text for part in self.parts for port, text in part.qdiscs.items()}

    @property
    def switched_on(self) -> dict[int, tuple[float, float]]:
        return {line: span for part in self.parts for line, span in part.switched_on.items()}

    def wait_ready(self, timeout: float | None = None) -> None:
        for part in self.parts:
            part.wait_ready(timeout)

    def start(self, t0: float) -> None:
        for part in self.parts:
            part.start(t0)

    def counters(self) -> dict[int, int]:
        """Step line -> packets its rule picked, over every node."""
        counts: dict[int, int] = {}
        for part in self.parts:
            counts.update(part.counters())
        return counts

    def _stop(self) -> None:
        stop_all(reversed(self.parts))

    close = Lifecycle.stop

    def summary(self) -> dict:
        """Each node's PacketRules summary, under the node's family and table."""
        return {"nodes": [part.summary() | {"family": part.family} for part in self.parts]}
