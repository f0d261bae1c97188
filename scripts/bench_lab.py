"""Topology up/down time: the harness's lab (build + tc verification + clean-up) vs plain Mininet."""
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness.lab.leftovers import Ledger  # noqa: E402
from harness.lab.network import mininet_lab  # noqa: E402
from harness.load import load_experiment  # noqa: E402


def plain() -> float:
    from mininet.link import TCLink
    from mininet.net import Mininet
    from mininet.nodelib import LinuxBridge
    t = time.time()
    net = Mininet(switch=LinuxBridge, controller=None, link=TCLink, build=False)
    c, s, sw = net.addHost("client"), net.addHost("server"), net.addSwitch("s1", cls=LinuxBridge)
    net.addLink(c, sw, delay="25ms")
    net.addLink(s, sw, delay="25ms")
    net.build()
    net.start()
    net.stop()
    return time.time() - t


def harness(exp) -> float:
    t = time.time()
    with mininet_lab(exp, Ledger()):
        pass
    return time.time() - t


runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
exp = load_experiment(Path(__file__).resolve().parents[1] / "experiments" / "handshake.yaml")
from mininet.log import setLogLevel  # noqa: E402
setLogLevel("error")
p = [plain() for _ in range(runs)]
h = [harness(exp) for _ in range(runs)]
print(f"topology up+down, plain Mininet: median {statistics.median(p):.2f} s (min {min(p):.2f}, max {max(p):.2f})")
print(f"topology up+down, harness lab:   median {statistics.median(h):.2f} s (min {min(h):.2f}, max {max(h):.2f})")
print(f"harness overhead: {statistics.median(h) - statistics.median(p):+.2f} s")
