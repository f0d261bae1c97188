"""dpkt's decoders that a run uses, imported without dpkt's package __init__.

Why: `import dpkt` imports every protocol module dpkt has, about 330 modules: two thirds of all
the modules a run imports, each read over 9p under emulation in a VM. A run decodes only what
its captures hold (tcpdump's filter: tcp, arp, icmp): Ethernet, ARP, IPv4, TCP, ICMP and the
pcap format, 21 modules. The package object stands in for dpkt's own with the names of
dpkt.dpkt (Error, UnpackError, NeedData, in_cksum, ...), as `from .dpkt import *` gives it. If
dpkt was imported whole already (a test, a user's script), that one is used as it is.

The other way round it is not: this partial package stays in sys.modules, so a later `import
dpkt` anywhere in the same process gets it, not the whole one. It has only the modules listed
below (dpkt.udp, dpkt.ip6, ... are missing until imported by name: `import dpkt.udp`), and
Ethernet and IP decode only what is set at the end (IPv4 and ARP; TCP and ICMP): an IPv6 or UDP
frame stays undecoded bytes. Code outside the harness that needs more of dpkt in the same
process (a plugin, a notebook, an analysis script) must `import dpkt` before importing anything
from the harness.

Use: `from harness.dpkt_parts import dpkt`, then dpkt.ethernet.Ethernet, dpkt.pcap.Reader, ...
"""
from __future__ import annotations

import importlib.util
import sys

if "dpkt" not in sys.modules:
    _spec = importlib.util.find_spec("dpkt")
    sys.modules["dpkt"] = importlib.util.module_from_spec(_spec)     # its __init__ is not run

import dpkt  # noqa: E402
import dpkt.arp  # noqa: E402,F401
import dpkt.dpkt  # noqa: E402
import dpkt.ethernet  # noqa: E402,F401
import dpkt.icmp  # noqa: E402,F401
import dpkt.ip  # noqa: E402,F401
import dpkt.pcap  # noqa: E402,F401
import dpkt.tcp  # noqa: E402,F401
import dpkt.utils  # noqa: E402,F401

for _name in getattr(dpkt.dpkt, "__all__", None) or [n for n in vars(dpkt.dpkt) if not n.startswith("_")]:
    if not hasattr(dpkt, _name):
        setattr(dpkt, _name, getattr(dpkt.dpkt, _name))

# dpkt's __init__ ends by filling each decoder's table of what it carries (every module it has);
# these are the entries the captures need. Anything else stays undecoded bytes, which the
# analysis skips as it skips any frame that is not IPv4 TCP/ICMP or ARP.
if not dpkt.ethernet.Ethernet._typesw:
    dpkt.ethernet.Ethernet.set_type(dpkt.ethernet.ETH_TYPE_IP, dpkt.ip.IP)
    dpkt.ethernet.Ethernet.set_type(dpkt.ethernet.ETH_TYPE_ARP, dpkt.arp.ARP)
if not dpkt.ip.IP._protosw:
    dpkt.ip.IP.set_proto(dpkt.ip.IP_PROTO_TCP, dpkt.tcp.TCP)
    dpkt.ip.IP.set_proto(dpkt.ip.IP_PROTO_ICMP, dpkt.icmp.ICMP)

__all__ = ["dpkt"]
