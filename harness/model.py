"""Plain data passed between pipeline stages (no behaviour that touches the kernel)."""
from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from ipaddress import ip_address, ip_network
from pathlib import Path

# ss's names for TCP states in the order a connection meets them, each with the kernel's number
# (include/net/tcp_states.h); 7, TCP_CLOSE, is the CLOSED of the expectations (the socket left the
# kernel's tables). The one table: the loader's names, the agents' state waits and the schema derive from it.
_TCP_STATES = (("LISTEN", 10), ("SYN-SENT", 2), ("SYN-RECV", 3), ("ESTAB", 1), ("FIN-WAIT-1", 4), ("FIN-WAIT-2", 5),
               ("TIME-WAIT", 6), ("CLOSE-WAIT", 8), ("LAST-ACK", 9), ("CLOSING", 11), ("CLOSED", 7))
TCP_STATE_ORDER: tuple[str, ...] = tuple(name for name, _ in _TCP_STATES)
TCP_STATE_NAMES: dict[int, str] = {number: name for name, number in _TCP_STATES}


def flag_set(flags: str) -> str:
    """TCP flag letters in one form for comparing (order ignored, PSH left out: it says nothing of
    a segment's role). Packet patterns, network-step matches and the timeline all compare with it."""
    return "".join(sorted(flags.replace("P", "")))


# The hosts' subnet in a topology without routers: /8 around load.routing.FLAT_NETWORK (Mininet's
# ipBase 10.0.0.0/8). Here because both the plan (which gives the addresses) and the lab (which sets them) need it.
ADDRESS_PREFIX_LEN = 8

BLOCKED = "still waiting when the run ended"     # the result text of a call the run's end cut short
TCP_INFO_AT_END = "tcp_info"     # the action of a step log line carrying a socket still open at the run's end
# MIB tables whose fields the kernel lists only once it has counted one (/proc/net/snmp's IcmpMsg:
# InType3 appears with the first port unreachable received): a name missing there is 0, not unknown
MIB_SPARSE_PREFIXES = ("IcmpMsg",)

# struct tcp_info (include/uapi/linux/tcp.h, as of 6.1: 232 bytes; it grows with kernels and a
# reader takes the fields the returned length covers): (field without tcpi_, struct code, unit).
# Units: "us"/"ms" the kernel's time unit (expectations may write durations), "bits" the options
# mask (TCP_INFO_OPTIONS), "nibbles" byte 6 (snd_wscale low 4 bits, rcv_wscale high 4 bits),
# "bits7" byte 7 (delivery_rate_app_limited bit 0, fastopen_client_fail bits 1-2), "state" a TCP
# state number; "" a count.
TCP_INFO_LAYOUT: tuple[tuple[str, str, str], ...] = (
    ("state", "B", "state"), ("ca_state", "B", ""), ("retransmits", "B", ""), ("probes", "B", ""),
    ("backoff", "B", ""), ("options", "B", "bits"), ("wscale", "B", "nibbles"), ("flags", "B", "bits7"),
    ("rto", "I", "us"), ("ato", "I", "us"), ("snd_mss", "I", ""), ("rcv_mss", "I", ""),
    ("unacked", "I", ""), ("sacked", "I", ""), ("lost", "I", ""), ("retrans", "I", ""), ("fackets", "I", ""),
    ("last_data_sent", "I", "ms"), ("last_ack_sent", "I", "ms"), ("last_data_recv", "I", "ms"),
    ("last_ack_recv", "I", "ms"),
    ("pmtu", "I", ""), ("rcv_ssthresh", "I", ""), ("rtt", "I", "us"), ("rttvar", "I", "us"),
    ("snd_ssthresh", "I", ""), ("snd_cwnd", "I", ""), ("advmss", "I", ""), ("reordering", "I", ""),
    ("rcv_rtt", "I", "us"), ("rcv_space", "I", ""), ("total_retrans", "I", ""),
    ("pacing_rate", "Q", ""), ("max_pacing_rate", "Q", ""), ("bytes_acked", "Q", ""), ("bytes_received", "Q", ""),
    ("segs_out", "I", ""), ("segs_in", "I", ""), ("notsent_bytes", "I", ""), ("min_rtt", "I", "us"),
    ("data_segs_in", "I", ""), ("data_segs_out", "I", ""), ("delivery_rate", "Q", ""),
    ("busy_time", "Q", "us"), ("rwnd_limited", "Q", "us"), ("sndbuf_limited", "Q", "us"),
    ("delivered", "I", ""), ("delivered_ce", "I", ""), ("bytes_sent", "Q", ""), ("bytes_retrans", "Q", ""),
    ("dsack_dups", "I", ""), ("reord_seen", "I", ""), ("rcv_ooopack", "I", ""), ("snd_wnd", "I", ""),
)
# tcpi_options bits (TCPI_OPT_*) by the names expectations use
TCP_INFO_OPTIONS: dict[str, int] = {"ts": 1, "sack": 2, "wscale": 4, "ecn": 8, "ecn_seen": 16, "syn_data": 32}
# what a parsed snapshot holds, field -> unit: bytes 6 and 7 split in two each, the rest as laid out
TCP_INFO_FIELDS: dict[str, str] = {
    **{name: unit for name, _, unit in TCP_INFO_LAYOUT if unit not in ("nibbles", "bits7")},
    "snd_wscale": "", "rcv_wscale": "", "delivery_rate_app_limited": "", "fastopen_client_fail": ""}
# Step logs recorded before `blocked` existed said so only in `result`, with text starting like
# this. StepRecord.from_json reads such old logs (the recorded fixtures are some); nothing written
# now relies on it: the agent sets `blocked`, and every reader asks `blocked`.
_OLD_LOG_BLOCKED_PREFIX = "still waiting"


@dataclass
class StepRecord:
    """One line of steps/<host>.jsonl: a socket call an agent made, or a connection its listener
    accepted (action "accepted", no step index), with times on the lab's clock. The agent fills
    one in as its call goes (a read counts its bytes as they come) and writes it with to_json;
    analysis reads it back with from_json. `blocked` is the one sign of a call the run's end cut
    short (the agent sets it, and stops there); `result` is only text for people."""
    action: str
    start: float | None = None
    end: float | None = None
    index: int | None = None                 # the step's line in the experiment file ("step" in JSON)
    scheduled: float | None = None           # t0 + at:, for a step with at:
    local: tuple[str, int] | None = None
    peer: tuple[str, int] | None = None
    nbytes: int | None = None                # bytes sent, or read ("bytes" in JSON)
    result: str = ""                         # ok | error: <strerror> | BLOCKED
    errno: str | None = None                 # ECONNRESET, ...
    blocked: bool = False                    # still blocked when the run ended: the agent stopped there
    socket: str | None = None                # the named socket the call acted on or made (see Step.socket)
    cookie: int | None = None                # its SO_COOKIE: ties it to the sampler's rows (sock_diag cookie)
    alias: str | None = None                 # accept: the automatic name of the connection it took (server:5001#2)
    tcp_info: dict | None = None             # the socket's struct tcp_info as the call left it (TCP_INFO_FIELDS)

    @property
    def accepted(self) -> bool:
        return self.action == "accepted"

    @property
    def snapshot(self) -> bool:
        """A line that is no call: a socket's tcp_info read at the run's end (TCP_INFO_AT_END)."""
        return self.action == TCP_INFO_AT_END

    def to_json(self) -> dict:
        """The log line's fields, absent ones left out (the shape result.json's `steps` has always had)."""
        out = {"action": self.action, "step": self.index, "start": self.start, "scheduled": self.scheduled,
               "local": list(self.local) if self.local else None, "peer": list(self.peer) if self.peer else None,
               "bytes": self.nbytes, "result": self.result, "errno": self.errno, "end": self.end,
               "socket": self.socket, "cookie": self.cookie, "alias": self.alias, "tcp_info": self.tcp_info}
        out = {k: v for k, v in out.items() if v is not None}
        if self.blocked:
            out["blocked"] = True
        return out

    @classmethod
    def from_json(cls, data: dict) -> StepRecord:
        """A log line back into a record; ValueError if it is not one (not an object, no action).

        Old logs only: a line without `blocked` whose result starts "still waiting" (what the
        agent wrote before `blocked` existed, as in the recorded fixtures) is read as blocked."""
        if not isinstance(data, dict) or not isinstance(data.get("action"), str):
            raise ValueError(f"not a step record: {data!r:.80}")
        result = str(data.get("result", ""))

        def address(value) -> tuple[str, int] | None:
            return (str(value[0]), int(value[1])) if isinstance(value, (list, tuple)) and len(value) == 2 else None

        def number(key: str) -> float | None:
            return float(data[key]) if data.get(key) is not None else None

        return cls(data["action"], number("start"), number("end"),
                   int(data["step"]) if data.get("step") is not None else None, number("scheduled"),
                   address(data.get("local")), address(data.get("peer")),
                   int(data["bytes"]) if data.get("bytes") is not None else None, result,
                   str(data["errno"]) if data.get("errno") is not None else None,
                   bool(data.get("blocked")) or result.startswith(_OLD_LOG_BLOCKED_PREFIX),
                   str(data["socket"]) if data.get("socket") is not None else None,
                   int(data["cookie"]) if data.get("cookie") is not None else None,
                   str(data["alias"]) if data.get("alias") is not None else None,
                   dict(data["tcp_info"]) if isinstance(data.get("tcp_info"), dict) else None)


@dataclass(frozen=True)
class Impairment:
    """What netem/htb apply to one direction of a link."""
    delay_s: float = 0.0
    jitter_s: float = 0.0
    loss_pct: float = 0.0
    bw_mbit: float | None = None
    queue: int | None = None

    @property
    def needs_netem(self) -> bool:
        return bool(self.delay_s or self.jitter_s or self.loss_pct or self.queue)


@dataclass(frozen=True)
class Link:
    a: str
    b: str
    a_to_b: Impairment
    b_to_a: Impairment
    mtu: int | None = None      # its LAN's MTU (every interface of the segment), None = the kernel's 1500
    cost: int = 1               # routing cost: routes follow the cheapest sum of the links crossed
    line: int | None = None     # where the topology file writes it


@dataclass(frozen=True)
class Interface:
    """A host's or router's end of a link, as the lab addresses it (switch ports have no address)."""
    node: str
    link: int                   # index in Topology.links
    peer: str                   # the node at the link's other end
    address: str
    prefix_len: int
    subnet: str                 # "10.1.0.0/24"
    mtu: int | None = None


@dataclass(frozen=True)
class Route:
    """A static route the lab installs: on `node`, `prefix` ("default" or a subnet) via a neighbour."""
    node: str
    prefix: str
    via: str                    # the next hop's address on a subnet `node` is on
    via_node: str
    link: int                   # the link of `node`'s interface it leaves by
    given: bool = False         # written in the topology's routes: (else computed)
    line: int | None = None     # where routes: writes it


@dataclass(frozen=True)
class Topology:
    name: str
    hosts: tuple[str, ...]
    switches: tuple[str, ...]
    links: tuple[Link, ...]
    source: Path
    switch_kind: str = "bridge"     # bridge (Linux bridge) | ovs (Open vSwitch, standalone): no controller
    routers: tuple[str, ...] = ()
    interfaces: tuple[Interface, ...] = ()    # every host and router interface (harness.load.routing)
    routes: tuple[Route, ...] = ()            # every static route, computed and overridden

    def address(self, node: str) -> str:
        """A host's address (its only interface; a router's first)."""
        return next(i.address for i in self.interfaces if i.node == node)

    def path(self, a: str, b: str) -> list[str]:
        """The nodes a segment from host a to host b crosses (hosts, switches, routers), following the
        routes, or [] if it cannot get there. Without routers the one path through the switches."""
        if not self.interfaces:         # a hand-made Topology without an address plan (unit tests)
            return self._l2_path(a, b, set())
        target, here, path = self.address(b), a, [a]
        for _ in range(len(self.routers) + 1):
            mine = [i for i in self.interfaces if i.node == here]
            local = [i for i in mine if _in_subnet(target, i.subnet)]
            if local:
                return path + self._l2_path(here, b, set(self.routers) | set(self.hosts))[1:]
            route = self.route_for(here, target)
            if route is None:
                return []
            hop = self._l2_path(here, route.via_node, set(self.routers) | set(self.hosts))
            if not hop:
                return []
            path += hop[1:]
            here = route.via_node
        return []      # a routing loop: the loader refuses it (harness.load.topology)

    def route_for(self, node: str, destination: str) -> Route | None:
        """The route `node` uses for `destination`: longest prefix first, as the kernel does."""
        best, best_len = None, -1
        for route in (r for r in self.routes if r.node == node):
            length = 0 if route.prefix == "default" else int(route.prefix.split("/")[1])
            if (route.prefix == "default" or _in_subnet(destination, route.prefix)) and length > best_len:
                best, best_len = route, length
        return best

    def _l2_path(self, a: str, b: str, stops: set[str]) -> list[str]:
        """Breadth-first over the links from a to b, never through a node in `stops` (routers,
        hosts) other than a and b; [] if b is unreachable. A LAN has no loops: one path."""
        adj: dict[str, list[str]] = {}
        for link in self.links:
            adj.setdefault(link.a, []).append(link.b)
            adj.setdefault(link.b, []).append(link.a)
        previous: dict[str, str | None] = {a: None}
        queue = deque([a])
        while queue:
            node = queue.popleft()
            if node != a and node in stops:
                continue
            for nxt in adj.get(node, []):
                if nxt not in previous:
                    previous[nxt] = node
                    queue.append(nxt)
        if b not in previous:
            return []
        path = [b]
        while path[-1] != a:
            path.append(previous[path[-1]])
        return path[::-1]


def _in_subnet(address: str, subnet: str) -> bool:
    return ip_address(address) in ip_network(subnet)


# Socket options a connect or listen step may set (`options: {TCP_USER_TIMEOUT: 2s}`), by the
# names of the C headers: name -> (level, optname, unit). The loader turns a value into the int the
# kernel takes (unit: bool 0/1, int, bytes, s = whole seconds, ms = milliseconds; linger = SO_LINGER
# on with that many seconds). The agent calls setsockopt(level, optname, value) before bind.
SOL_SOCKET, IPPROTO_IP, IPPROTO_TCP = 1, 0, 6
SOCKET_OPTIONS: dict[str, tuple[int, int, str]] = {
    "SO_LINGER": (SOL_SOCKET, 13, "linger"), "SO_RCVBUF": (SOL_SOCKET, 8, "bytes"),
    "SO_SNDBUF": (SOL_SOCKET, 7, "bytes"), "SO_KEEPALIVE": (SOL_SOCKET, 9, "bool"),
    "TCP_NODELAY": (IPPROTO_TCP, 1, "bool"), "TCP_MAXSEG": (IPPROTO_TCP, 2, "bytes"),
    "TCP_KEEPIDLE": (IPPROTO_TCP, 4, "s"), "TCP_KEEPINTVL": (IPPROTO_TCP, 5, "s"),
    "TCP_KEEPCNT": (IPPROTO_TCP, 6, "int"), "TCP_SYNCNT": (IPPROTO_TCP, 7, "int"),
    "TCP_LINGER2": (IPPROTO_TCP, 8, "s"), "TCP_DEFER_ACCEPT": (IPPROTO_TCP, 9, "s"),
    "TCP_WINDOW_CLAMP": (IPPROTO_TCP, 10, "bytes"), "TCP_QUICKACK": (IPPROTO_TCP, 12, "bool"),
    "TCP_USER_TIMEOUT": (IPPROTO_TCP, 18, "ms"), "IP_TTL": (IPPROTO_IP, 2, "int"),
}


def accepted_name(host: str, port: int, nth: int) -> str:
    """The automatic name of the Nth connection a host's listener on `port` accepted: server:5001#2."""
    return f"{host}:{port}#{nth}"


def listener_name(host: str, port: int) -> str:
    """The automatic name of a host's listening socket: server:5001."""
    return f"{host}:{port}"


@dataclass(frozen=True)
class Step:
    """One thing a host's agent does: at t0 + at_s if given, else when the previous step on the
    same socket returns (each socket is its own lane: a blocking call holds back only its own)."""
    host: str
    action: str                 # listen | connect | accept | send | recv | shutdown | close | abort | wait
    index: int                  # position in the experiment file, as reported in the step log
    at_s: float | None = None
    port: int | None = None
    peer: str | None = None
    size: int | None = None     # send/recv: bytes (recv None: until EOF)
    message: str | None = None  # send: this text instead of `size` bytes
    how: str | None = None      # shutdown: write | read | both
    until: str | None = None    # wait: connected | peer-closed | state:NAME
    seconds: float | None = None  # wait: a duration
    # The socket the step acts on, resolved at load: connect/accept name the socket they make (`as:`,
    # else client#1 for the host's Nth unnamed connect), listen its listener (server:5001), every
    # other step the socket in `socket:` or the host's only one (None: a host with no socket at all).
    socket: str | None = None
    local_port: int | None = None     # connect: bind: this port first (0/None: the kernel picks)
    reuseaddr: bool = False
    reuseport: bool = False
    options: tuple[tuple[str, int], ...] = ()   # (SOCKET_OPTIONS name, value as the kernel takes it)
    blocking: bool = True             # connect: wait: false makes it non-blocking (returns at once)


@dataclass(frozen=True)
class AgentStep:
    """A Step as its host's agent performs it: addresses resolved by the plan. It crosses the pipe
    to the forked agent as JSON (to_json on the runner's side, from_json in the agent)."""
    action: str
    index: int
    at: float | None = None         # seconds after t0
    port: int | None = None
    bind: str | None = None         # the host's own address (connect binds to it)
    address: str | None = None      # the peer's address (connect)
    size: int | None = None
    message: str | None = None
    how: str | None = None
    until: str | None = None
    seconds: float | None = None
    socket: str | None = None       # Step.socket: the lane the step runs in and the socket it acts on
    local_port: int | None = None
    reuseaddr: bool = False
    reuseport: bool = False
    options: tuple[tuple[str, int], ...] = ()
    blocking: bool = True

    def to_json(self) -> dict:
        """The fields as the agent's stdin plan carries them (address only when there is a peer)."""
        out = {name: getattr(self, name) for name in self.__dataclass_fields__}
        out["options"] = [list(pair) for pair in self.options]
        if self.address is None:
            del out["address"]
        return out

    @classmethod
    def from_json(cls, data: dict) -> AgentStep:
        """One step of the plan read from stdin; absent fields take their defaults."""
        fields = {name: data[name] for name in cls.__dataclass_fields__ if data.get(name) is not None}
        fields["options"] = tuple((str(n), int(v)) for n, v in fields.get("options", ()))
        return cls(**fields)


@dataclass(frozen=True)
class LengthSpec:
    """`len:` of a packet pattern or a network-step match: the TCP payload length in bytes, exact
    (`len: 0`, `len: 1000`) or a range (`len: ">0"`, `len: "1-1448"`); high None: no upper bound."""
    low: int
    high: int | None
    text: str = ""              # as written, for reports

    def fits(self, length: int) -> bool:
        return length >= self.low and (self.high is None or length <= self.high)

    def __str__(self) -> str:
        return self.text


# TCP options a pattern, a match or an injected segment can name: name -> (kind, what a value means)
TCP_OPTION_KINDS: dict[str, tuple[int, str]] = {
    "mss": (2, "the maximum segment size, bytes"),
    "wscale": (3, "the window scale shift, 0-14"),
    "sackok": (4, "SACK permitted (SYN and SYN+ACK only); no value"),
    "sack": (5, "SACK blocks; value: how many"),
    "ts": (8, "timestamps; no value (TSval/TSecr are the stack's)"),
}


@dataclass(frozen=True)
class OptionSpec:
    """One entry of `options:` on a pattern or match: the option is there (value None: any value),
    is there with this value, or is absent (present False)."""
    name: str                   # a key of TCP_OPTION_KINDS
    present: bool = True
    value: int | None = None

    def fits(self, options: dict[str, int]) -> bool:
        """`options`: a segment's options, name -> value (1 for those without one; see Segment.options)."""
        if not self.present:
            return self.name not in options
        return self.name in options and (self.value is None or options[self.name] == self.value)

    def __str__(self) -> str:
        return f"no {self.name}" if not self.present else self.name + (f"={self.value}" if self.value is not None else "")


@dataclass(frozen=True)
class PacketMatch:
    """Which segments a network step acts on (every field given must match)."""
    flags: str | None = None    # exact set of S F R A U (PSH ignored), e.g. S, SA, A
    sport: int | None = None
    dport: int | None = None
    length: LengthSpec | None = None          # len: payload bytes
    options: tuple[OptionSpec, ...] = ()      # options: each must hold


@dataclass(frozen=True)
class ConnTerm:
    """A sequence or ack number of an injected segment, as written: a number, or a named
    connection's figure as the capture at the switch has seen it so far plus an offset
    (`a.snd_nxt`, `a.rcv_nxt + 1`, `a.snd_una - 1`). Figures are those of the named socket's own
    side: snd_nxt (next sequence it will send), snd_una (highest ack it has received), rcv_nxt
    (next sequence it expects from its peer), isn, peer_isn."""
    socket: str | None          # None: the number `offset`
    figure: str | None = None   # snd_nxt | snd_una | rcv_nxt | isn | peer_isn
    offset: int = 0
    text: str = ""

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class InjectSpec:
    """What `network: inject` sends, from `sender`'s side toward `receiver`, out of the switch
    port facing the receiver (so it crosses the receiver's link, delay included). A TCP segment on
    `socket`'s four-tuple (or on sport/dport given), or an ICMP error about the last segment the
    receiver sent on that connection."""
    socket: str | None = None             # the named connection whose four-tuple and figures it uses
    sport: int | None = None              # the injected segment's ports (default: the connection's)
    dport: int | None = None
    flags: str = ""                       # S A F R P U letters, as sent (PSH counts here)
    seq: ConnTerm | None = None           # default: the sender side's snd_nxt
    ack: ConnTerm | None = None           # default: the sender side's rcv_nxt (when A is in flags)
    window: int | None = None             # default: the last window the sender side advertised
    length: int = 0                       # payload bytes (zeros), or...
    payload: str | None = None            # ...this text
    options: tuple[tuple[str, int | None], ...] = ()   # (TCP_OPTION_KINDS name, value) to put in, in order
    ttl: int = 64
    icmp: str | None = None               # net-unreachable | host-unreachable | port-unreachable | frag-needed
    mtu: int | None = None                # frag-needed: the next-hop MTU it reports
    after: Event | None = None            # inject when this event is seen at the switch (`client receives FA`)...
    wait_s: float = 0.0                   # ...plus this long (the step's at: is then unused)


@dataclass(frozen=True)
class NetworkStep:
    """The network acting on chosen segments from `sender` to `receiver`, at the egress port of
    the first switch on the path (never in the sender's own qdisc: Linux would not retransmit a
    segment still queued on its host)."""
    action: str                 # hold | drop | delay | duplicate | inject
    sender: str
    receiver: str
    match: PacketMatch
    index: int                  # the step's line in the experiment file
    at_s: float | None = None   # when the rule is switched on (None: before the timeline starts)
    nth: int | None = None      # only the Nth matching segment...
    count: int | None = None    # ...or the first N; neither: every one
    extra_s: float | None = None  # hold/delay: time added on top of the link's own delay
    inject: InjectSpec | None = None  # inject: the segment it sends (match/nth/count unused)


@dataclass(frozen=True)
class SeqTerm:
    """A packet pattern's seq: or ack:, parsed once at load: a number, or a name plus an offset.
    A bare name (`x`) binds to the first segment that fits; `x+1` must agree with it."""
    name: str | None            # None: the number `offset`
    offset: int = 0
    text: str = ""              # as written, for reports

    @property
    def binds(self) -> bool:
        """A bare name: it takes the value of the segment it first matches."""
        return self.name is not None and self.text == self.name

    def value(self, bound: dict[str, int]) -> int | None:
        """The sequence number it stands for under the names bound so far (None: its name is unbound)."""
        if self.name is None:
            return self.offset
        return None if self.name not in bound else (bound[self.name] + self.offset) % 2**32

    @classmethod
    def parse(cls, written: object) -> SeqTerm:
        """`x`, `x+1`, `y-2` or a number (the loader has checked the form and the range)."""
        text = str(written)
        m = re.fullmatch(r"([a-z]\w*)?([+-]?[0-9]+)?", text)
        if not text or m is None:
            raise ValueError(f"{text!r} is not a name, name+N or a number")
        return cls(m.group(1), int(m.group(2) or 0), text)

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class PacketPattern:
    sender: str
    flags: str                  # PSH ignored, but a pattern written with P needs data (len > 0)
    seq: SeqTerm | None = None
    ack: SeqTerm | None = None
    length: LengthSpec | None = None          # len: payload bytes
    options: tuple[OptionSpec, ...] = ()      # options: each must hold


@dataclass(frozen=True)
class PacketChoice:
    """Alternative segment sequences (e.g. a four- or three-segment close); the report names the one seen."""
    options: tuple[tuple[str, tuple[PacketPattern, ...]], ...]


@dataclass(frozen=True)
class Event:
    """Something observed at a moment: `client enters TIME-WAIT`, `server sends F#2`, `a calls close`,
    `client retransmits S#1`, `client resets`, `server is reset`.
    `host` is the subject as written: a host, or a named socket (a, server:5001#1), whose own
    states, segments and calls the event is looked up in."""
    host: str
    verb: str              # enters | leaves | sends (kernel time) | transmits (wire) | receives | calls | returns
                           # | retransmits | resets (sent a RST) | is reset (took one): the kernel trace's
    what: str              # a state, TCP flags (R for the resets), or a step action
    nth: int = 1
    text: str = ""


@dataclass(frozen=True)
class TimeSpec:
    """A time as an expectation writes it: fixed seconds, or N times the path RTT, which is known
    only when the run's topology is (parsed once at load; the judge only resolves it)."""
    seconds: float = 0.0
    rtts: float | None = None   # `N rtt`: seconds is then unused
    text: str = ""              # as written, for reports

    def resolve(self, rtt_s: float) -> float:
        return self.rtts * rtt_s if self.rtts is not None else self.seconds

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Tolerance:
    """`within:` of an expected time: a fixed duration or a percentage of the expected value."""
    seconds: float | None = None
    percent: float | None = None
    text: str = ""

    def of(self, expected_s: float) -> float:
        return abs(expected_s) * self.percent / 100 if self.percent is not None else float(self.seconds or 0.0)

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class StateExpectation:
    """One state of an expected sequence, parsed at load: `(FIN-WAIT-1)` is FIN-WAIT-1, optional."""
    name: str                   # ss's name, one of TCP_STATE_ORDER
    optional: bool = False      # may be missing from what was seen (a state too short to sample)

    @classmethod
    def parse(cls, written: str) -> StateExpectation:
        """`NAME` or `(NAME)` as written (the loader checks NAME is a state)."""
        optional = written.startswith("(") and written.endswith(")")
        return cls(written[1:-1] if optional else written, optional)

    def __str__(self) -> str:
        return f"({self.name})" if self.optional else self.name


@dataclass(frozen=True)
class TimingExpectation:
    name: str                   # handshake_client | handshake_server | any name with start/end events
    equals: TimeSpec | None     # a duration or N rtt, with `within`...
    within: Tolerance | None
    start: Event | None = None
    end: Event | None = None
    between: tuple[TimeSpec, TimeSpec] | None = None   # ...or a range [low, high]
    builtin: str | None = None  # "client" | "server": the handshake measured at that end (no start/end)


@dataclass(frozen=True)
class HandshakeExpectation:
    """A socket's own handshake time (`handshake:` under a socket or a group in expect:): at a
    connecting end, SYN sent -> final ACK sent (kernel time); at an accepted end, SYN received ->
    final ACK received. Either equals + within, or between."""
    equals: TimeSpec | None = None
    within: Tolerance | None = None
    between: tuple[TimeSpec, TimeSpec] | None = None


@dataclass(frozen=True)
class CountExpectation:
    """A kernel figure's expected value, as written: `1`, `">=1"`, `"<3"`, `"1-3"` (low..high
    inclusive, high None: no upper bound). Used by `counters:` (a host's TCP MIB counters, nstat's
    names, as a difference over the run) and `tcp_info:` (a socket's struct tcp_info fields)."""
    name: str                   # TcpExtTCPChallengeACK, TcpRetransSegs, ... | total_retrans, backoff, snd_mss, ...
    low: int
    high: int | None
    text: str = ""

    def fits(self, value: int) -> bool:
        return value >= self.low and (self.high is None or value <= self.high)


@dataclass(frozen=True)
class Expectations:
    """Per subject (a host, or a named socket: its own states, packets, bytes and errors) and overall."""
    states: dict[str, tuple[StateExpectation, ...]] = field(default_factory=dict)   # subject -> sequence
    packets: tuple[PacketPattern | PacketChoice, ...] = ()
    timing: tuple[TimingExpectation, ...] = ()
    received: dict[str, int] = field(default_factory=dict)             # host -> bytes its reads got
    accepted: dict[str, int] = field(default_factory=dict)             # host -> connections it accepted
    errors: dict[str, tuple[str, ...]] = field(default_factory=dict)   # host -> errno names its calls got
    # each expectation's line in the file, by its place under expect: "client.states", "packets",
    # "timing.time_wait": verdicts name it, as packetdrill names the script line of every failure
    lines: dict[str, int] = field(default_factory=dict)
    # socket name -> patterns matched against that socket's own incarnation, at its host's interface
    socket_packets: dict[str, tuple[PacketPattern | PacketChoice, ...]] = field(default_factory=dict)
    handshakes: dict[str, HandshakeExpectation] = field(default_factory=dict)   # subject -> its handshake
    # a group ("c#*": every socket a `times: N` connect made, c#1 ... c#N) -> its members; the
    # states, received, errors and handshake keyed by the group hold for each member, judged as one verdict
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    counters: dict[str, tuple[CountExpectation, ...]] = field(default_factory=dict)   # host -> MIB deltas
    tcp_info: dict[str, tuple[CountExpectation, ...]] = field(default_factory=dict)   # socket -> tcp_info fields


@dataclass(frozen=True)
class ExpectSource:
    """expect: and about: as written, for files whose expectations read the run's facts (kernel,
    HOST.sysctl): worked out again once the lab is up (harness.load.experiment.with_facts)."""
    expect: object                           # the raw YAML mapping (a LineDict, lines kept)
    about: object
    names: dict                              # the cell's ${...} names
    kernel: bool                             # reads the kernel's release
    sysctls: dict[str, frozenset[str]]       # host -> dotted sysctl names it reads back
    let: object = None                       # the raw let: mapping (named values), when there is one


@dataclass(frozen=True)
class Experiment:
    name: str
    topology: Topology
    duration_s: float
    steps: tuple[Step, ...]
    sysctls: dict[str, dict[str, str]]       # host (or "all") -> {name: value}
    expect: Expectations
    source: Path
    network: tuple[NetworkStep, ...] = ()
    about: str = ""                          # what the experiment shows, printed with the verdicts
    optional_sysctls: frozenset[str] = frozenset()   # names skipped (with a note) where the kernel lacks them
    expect_source: ExpectSource | None = None
    claims: tuple[int, ...] = ()             # the seed's claims it tests (harness/claims), for the claims report
