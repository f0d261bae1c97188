"""The lab's impairments read back from one `tc qdisc show` per namespace (harness.lab.network):
each link interface gets the text its own `tc qdisc show dev` would print, and a wrong or missing
netem is refused as before."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from harness.errors import RunFailed
from harness.lab.network import _interface_qdiscs, verify_impairments
from harness.model import Impairment

LINK = Impairment(delay_s=0.025)
EGRESS = {"client-eth0": ("client", LINK), "s1-eth1": ("s1", LINK), "s1-eth2": ("s1", LINK),
          "server-eth0": ("server", LINK)}
TOPO = SimpleNamespace(switches=["s1"])


def got(server_delay: str = "25ms") -> dict[str, dict[str, str]]:
    """read_lab's sections as the 6.12 VM's stale_syn lab would print them (the switch's: the machine's)."""
    return {"client": {"qdisc": "qdisc netem 10: dev client-eth0 root refcnt 2 limit 1000 delay 25ms\n"
                                "qdisc noqueue 0: dev lo root refcnt 2"},
            "server": {"qdisc": f"qdisc netem 10: dev server-eth0 root refcnt 2 limit 1000 delay {server_delay}"},
            "s1": {"qdisc": "qdisc netem 10: dev s1-eth1 root refcnt 2 limit 1000 delay 25ms\n"
                            "qdisc netem 10: dev s1-eth2 root refcnt 2 limit 1000 delay 25ms\n"
                            "qdisc fq_codel 0: dev eth0 root refcnt 2 limit 10240p flows 1024"}}


def test_each_interface_reads_as_its_own_show():
    shown = _interface_qdiscs(TOPO, EGRESS, got())
    assert shown == {intf: "qdisc netem 10: root refcnt 2 limit 1000 delay 25ms" for intf in EGRESS}
    assert verify_impairments(EGRESS, shown) == shown


def test_a_wrong_delay_or_a_missing_netem_is_refused():
    with pytest.raises(RunFailed, match="server-eth0: netem delay 40 ms, configured 25 ms"):
        verify_impairments(EGRESS, _interface_qdiscs(TOPO, EGRESS, got("40ms")))
    missing = got()
    missing["s1"]["qdisc"] = "qdisc netem 10: dev s1-eth1 root refcnt 2 limit 1000 delay 25ms"
    with pytest.raises(RunFailed, match=r"s1-eth2: no netem qdisc \(tc shows: nothing\)"):
        verify_impairments(EGRESS, _interface_qdiscs(TOPO, EGRESS, missing))
