"""The kernel send capture: each host's outgoing frames at the moment its stack hands them to its
interface, before the link's own egress delay.

Why: tcpdump on a host's interface sees an outgoing frame when the root qdisc (netem) lets it go,
so a host with 40 ms on its outgoing link seems to answer a SYN 40 ms late. A clsact qdisc's egress
hook runs in __dev_queue_xmit before the root qdisc's enqueue (net/core/dev.c: sch_handle_egress,
then __dev_xmit_skb -> q->enqueue); its filter mirrors every frame (mirred egress mirror) to a
device `<host>-tx` in the host's namespace, and tcpdump there writes pcap/<host>.kernel.pcap.

The device is a dummy where the kernel has one; a kernel built without it (this machine's 6.18 has
no dummy and no modules) gets a veth pair instead, both ends in the host's namespace and up (mirred
drops frames to a device without carrier); the peer just drops what it receives. The filter is
matchall, or u32 matching every frame where cls_matchall is missing. Either way tcpdump sees the
frame at its tap in the device's xmit, microseconds after the mirror.

Nothing here goes into the ledger: the device, its peer and the clsact qdisc live in the host's
network namespace (or on its own link interface), and the kernel deletes them with it when the
host's last process dies, which the ledger already sees to (its netns entry). A ledger interface
entry would even be wrong: `ip link del` there runs in the root namespace.
"""
from __future__ import annotations

import json
import shlex
from pathlib import Path

from harness.analyse.connection import kernel_pcap_path
from harness.errors import RunFailed
from harness.lab.preflight import send_capture_kinds
from harness.lab.routing_setup import output_start
from harness.record.capture import Capture
from harness.runlog import node_pexec

TX_SUFFIX = "-tx"          # host names are at most 9 characters: "<host>-txp" fits IFNAMSIZ


def tx_device(host: str) -> str:
    """The device a host's outgoing frames are mirrored to."""
    return f"{host}{TX_SUFFIX}"


def setup_commands(host: str, interfaces: list[str], device_kind: str, filter_kind: str) -> list[list[str]]:
    """The ip/tc commands, run in the host's namespace, that mirror each of its interfaces' egress
    to its `-tx` device (pure: the tests read them)."""
    tx = tx_device(host)
    if device_kind == "dummy":
        commands = [["ip", "link", "add", tx, "type", "dummy"]]
    else:
        commands = [["ip", "link", "add", tx, "type", "veth", "peer", "name", f"{tx}p"],
                    ["ip", "link", "set", f"{tx}p", "up", "arp", "off"]]
    commands.append(["ip", "link", "set", tx, "up", "arp", "off"])
    match = ["matchall"] if filter_kind == "matchall" else ["protocol", "all", "u32", "match", "u32", "0", "0"]
    for intf in interfaces:
        commands += [["tc", "qdisc", "add", "dev", intf, "clsact"],
                     ["tc", "filter", "add", "dev", intf, "egress", *match,
                      "action", "mirred", "egress", "mirror", "dev", tx]]
    return commands


def mirror_command(host: str, interfaces: list[str], device_kind: str, filter_kind: str) -> list[str]:
    """setup_commands in one process per host (in the VM each costs 0.1-0.3 s of wall time): an
    `ip -batch` of the device's lines, then a `tc -j -batch` of the qdisc and filter lines that
    ends by showing each interface's egress filters (one JSON array per interface, in order). Each
    stops at its first failing line and names it; every line is in the command run.log shows."""
    commands = setup_commands(host, interfaces, device_kind, filter_kind)
    lines = [f"{args[0]}: {shlex.join(args[1:])}" for args in commands]
    lines += [f"tc: filter show dev {intf} egress" for intf in interfaces]
    return ["sh", "-c", _PICK + 'pick ip "$@" | ip -batch - && pick tc "$@" | tc -j -batch -', "kernel-sends", *lines]


# the lines of one program ("ip: link add ..." -> "link add ..."), from the shell's arguments
_PICK = 'pick() { p=$1; shift; for l; do case $l in "$p: "*) printf "%s\\n" "${l#"$p: "}";; esac; done; }; '


def mirror_problems(host: str, interfaces: list[str], shown: str) -> list[str]:
    """The interfaces whose egress has no mirred filter to the host's `-tx` device, from the
    filter shows at the end of mirror_command's output (pure: the tests read recorded ones)."""
    decoder, arrays, at = json.JSONDecoder(), [], 0
    while (at := _skip_space(shown, at)) < len(shown):
        try:
            array, at = decoder.raw_decode(shown, at)
        except ValueError:      # a warning on stdout, a tc without -j: no read-back to trust
            return [f"tc's output is not the JSON filter lists asked for (at character {at}): {output_start(shown)}"]
        arrays.append(array)
    tx, problems = tx_device(host), []
    for intf, filters in zip(interfaces, arrays[-len(interfaces):] if len(arrays) >= len(interfaces) else []):
        if not _mirrors_to(filters, tx):
            problems.append(f"no mirred filter to {tx} on {intf}'s egress (tc shows: {json.dumps(filters)})")
    if len(arrays) < len(interfaces):
        problems.append(f"tc showed {len(arrays)} filter lists for {len(interfaces)} interfaces: {shown.strip() or 'nothing'}")
    return problems


def _mirrors_to(shown, tx: str) -> bool:
    """Whether a mirred action to `tx` is anywhere in a filter list's JSON (u32 and matchall nest
    their actions alike, under options; looked for at any depth, not by one layout)."""
    if isinstance(shown, dict):
        return (shown.get("kind") == "mirred" and shown.get("to_dev") == tx) or _mirrors_to(list(shown.values()), tx)
    return isinstance(shown, list) and any(_mirrors_to(item, tx) for item in shown)


def _skip_space(text: str, at: int) -> int:
    while at < len(text) and text[at].isspace():
        at += 1
    return at


def install_mirror(node, host: str, interfaces: list[str]) -> str:
    """Make the host's `-tx` device and mirror its interfaces' egress to it; read the filters back
    (a tc that printed an error but left no filter must not give a silently empty capture).
    Returns the device's name."""
    device_kind, filter_kind = send_capture_kinds()
    args = mirror_command(host, interfaces, device_kind, filter_kind)
    out, err, code = node_pexec(node, args)
    if code:
        raise RunFailed(f"the kernel send capture of {host} could not be set up: `{shlex.join(args[3:])}` "
                        f"failed: {err.strip() or f'exit {code}'}")
    problems = mirror_problems(host, interfaces, out)
    if problems:
        raise RunFailed(f"the kernel send capture of {host}: " + "; ".join(problems))
    return tx_device(host)


def kernel_capture(node, host: str, interfaces: list[str], run_dir: Path, ledger=None) -> Capture:
    """Set up the mirror and start tcpdump on the host's `-tx` device, writing where the analysis
    reads it (a Capture: the caller enters it in its ExitStack and waits for it to be ready, like
    the interface captures)."""
    tx = install_mirror(node, host, interfaces)
    return Capture(node, tx, kernel_pcap_path(run_dir, host), ledger)
