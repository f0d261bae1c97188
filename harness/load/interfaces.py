"""Node names become kernel objects: a Linux bridge or OVS bridge named after the switch, and
`<node>-eth<N>` interfaces. Mininet deletes and re-creates a bridge that already exists under that
name, so a switch named `eth0` or `docker0` would take the machine's own interface down. Names that
look like the machine's interfaces, or that are the name of an interface on this machine now, are
refused at load (a killed tcp-testbed run's leftovers excepted: they are cleaned before building)."""
from __future__ import annotations

import json
import re
from pathlib import Path

SYS_NET = Path("/sys/class/net")
LEDGERS = Path("/run/tcp-testbed")     # harness.lab.leftovers.REGISTRY (not imported: load stays kernel-free)

# Prefixes of interfaces the kernel, udev, NetworkManager, Docker, libvirt, LXC, VPNs and tunnels make;
# the short, word-like ones only when a digit (or nothing) follows: `br0`, `lo`, but `browser` is fine.
RESERVED = re.compile(r"^(?:(eth|en|wl|ww|docker|virbr|lxc|lxd|veth|vnet|vmnet|vboxnet|tap|tun|bond|team|vlan|vxlan"
                      r"|dummy|ifb|ovs|gre|erspan|ip6|sit|ipip|nlmon|cni|flannel|cali|kube|weave|cilium|podman"
                      r"|tailscale|macvlan|macvtap|ipvlan)"
                      r"|(lo|br|ib|usb|sl|ppp|wg|can|bat|zt)(?:[0-9]|$))")


def ledger_interfaces(ledgers: Path = LEDGERS) -> set[str]:
    """Interfaces that tcp-testbed runs recorded (a killed run's are removed before the next build)."""
    names: set[str] = set()
    for ledger in sorted(ledgers.glob("*.json")) if ledgers.is_dir() else ():
        try:
            data = json.loads(ledger.read_text())
            names.update(str(n) for n in data.get("interfaces", []) + data.get("ovs_bridges", []))
        except (OSError, ValueError, AttributeError, TypeError):
            continue    # a corrupt ledger protects nothing: its interfaces count as the machine's
    return names


def machine_interfaces(sys_net: Path = SYS_NET, ledgers: Path = LEDGERS) -> set[str]:
    """This machine's interfaces now, without those a tcp-testbed run made: the ones its ledgers
    list, and bridges whose every port a ledger lists (runs before the ledger recorded bridges)."""
    try:
        present = {p.name for p in sys_net.iterdir()}
    except OSError:
        present = set()
    ours = ledger_interfaces(ledgers)
    for name in present - ours:
        try:
            ports = {p.name for p in (sys_net / name / "brif").iterdir()}
        except OSError:
            continue
        if ports and ports <= ours:
            ours.add(name)
    return present - ours


def derived_names(node: str, links: int) -> list[str]:
    """The kernel objects Mininet makes for a node: the node itself (switches: the bridge) and
    `<node>-eth<N>` for each of its links (numbered from 0 on hosts, from 1 on switches)."""
    return [node] + [f"{node}-eth{n}" for n in range(links + 1)]


def clash(node: str, links: int, existing: set[str]) -> str | None:
    """Why `node` cannot be used (the interface it would clash with), or None."""
    if node in existing:
        return f"this machine has an interface called '{node}' now, which building the switch would take down and re-create"
    m = RESERVED.match(node)
    if m:
        return (f"names starting with '{m.group(1) or m.group(2)}' are how Linux and common tools name real interfaces "
                f"(lo, eth0, enp3s0, wlan0, docker0, virbr0, veth..., tap0, tun0, bond0...)")
    for name in derived_names(node, links)[1:]:
        if name in existing:
            return f"this machine has an interface called '{name}' now, which Mininet would make for {node}'s links"
    return None
