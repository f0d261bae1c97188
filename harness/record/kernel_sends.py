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

from pathlib import Path

from harness.analyse.connection import kernel_pcap_path
from harness.errors import RunFailed
from harness.lab.preflight import send_capture_kinds
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


def install_mirror(node, host: str, interfaces: list[str]) -> str:
    """Make the host's `-tx` device and mirror its interfaces' egress to it; read the filters back
    (a tc that printed an error but left no filter must not give a silently empty capture).
    Returns the device's name."""
    device_kind, filter_kind = send_capture_kinds()
    for args in setup_commands(host, interfaces, device_kind, filter_kind):
        _, err, code = node_pexec(node, args)
        if code:
            raise RunFailed(f"the kernel send capture of {host} could not be set up: `{' '.join(args)}` "
                            f"failed: {err.strip() or f'exit {code}'}")
    tx = tx_device(host)
    for intf in interfaces:
        shown, _, _ = node_pexec(node, ["tc", "filter", "show", "dev", intf, "egress"])
        if "mirred" not in shown or tx not in shown:
            raise RunFailed(f"the kernel send capture of {host}: no mirred filter to {tx} on {intf}'s egress "
                            f"(tc shows: {shown.strip() or 'nothing'})")
    return tx


def kernel_capture(node, host: str, interfaces: list[str], run_dir: Path, ledger=None) -> Capture:
    """Set up the mirror and start tcpdump on the host's `-tx` device, writing where the analysis
    reads it (a Capture: the caller enters it in its ExitStack and waits for it to be ready, like
    the interface captures)."""
    tx = install_mirror(node, host, interfaces)
    return Capture(node, tx, kernel_pcap_path(run_dir, host), ledger)
