"""Lab set-up time for a 20-node routed topology (tests/fixtures/routed_20.yaml): from the first
Mininet call to a lab whose addresses, routes, MTUs and forwarding sysctls all read back as
planned (harness.lab.network.mininet_lab), the routing part of it alone, then the hosts' ARP
warm-up and the teardown.
Usage: bench_routed_lab.py [RUNS] (default 3); figures on stdout, the median of RUNS."""
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from harness.lab.leftovers import Ledger, LocalLock  # noqa: E402
from harness.lab.network import mininet_lab, warm_up  # noqa: E402
from harness.lab.routing_setup import configure, verify  # noqa: E402
from harness.load.topology import load_topology  # noqa: E402
from harness.model import Expectations, Experiment  # noqa: E402

TOPOLOGY = REPO / "tests" / "fixtures" / "routed_20.yaml"


def once(experiment: Experiment) -> tuple[float, float, float, float]:
    """(build to verified, of it the routing set-up and read-back, ARP warm-up, teardown) seconds
    for one lab. The routing share is timed by doing it again on the built lab (it is idempotent:
    sysctl -w, link set mtu, route replace)."""
    topo = experiment.topology
    t0 = time.monotonic()
    with mininet_lab(experiment, Ledger(), {h: topo.address(h) for h in topo.hosts}) as lab:
        t1 = time.monotonic()
        configure(lab.net, topo, lab.link_ports)
        verify(lab.net, topo, lab.link_ports)
        t2 = time.monotonic()
        warm_up(lab.net)
        t3 = time.monotonic()
    return t1 - t0, t2 - t1, t3 - t2, time.monotonic() - t3


def figure(name: str, values: list[float]) -> str:
    return f"{name}: median {statistics.median(values):.2f} s (min {min(values):.2f}, max {max(values):.2f})"


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    topo = load_topology(TOPOLOGY)
    experiment = Experiment(topo.name, topo, 1.0, (), {}, Expectations(), TOPOLOGY)
    lock = LocalLock()       # one local lab at a time (switch ports share the machine's namespace)
    try:
        times = [once(experiment) for _ in range(runs)]
    finally:
        lock.release()
    size = (f"{len(topo.hosts) + len(topo.routers) + len(topo.switches)} nodes: {len(topo.routers)} routers, "
            f"{len(topo.switches)} switches, {len(topo.hosts)} hosts, {len(topo.links)} links, {len(topo.routes)} routes")
    print(figure(f"routed lab set-up, build to verified ({size})", [t[0] for t in times]))
    print(figure("routed lab set-up, of it addresses/routes/MTU/sysctls set and read back", [t[1] for t in times]))
    print(figure(f"routed lab ARP warm-up ({len(topo.hosts)} hosts, every pair)", [t[2] for t in times]))
    print(figure("routed lab teardown", [t[3] for t in times]))


if __name__ == "__main__":
    main()
