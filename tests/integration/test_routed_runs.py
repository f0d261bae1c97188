"""Issue 17's experiments on a real kernel (the VM where this kernel lacks netem), in one batch:
handshakes across routers and over an asymmetric path, PMTU discovery at a 1400-byte link, and
the ICMP errors routers send (time exceeded, host unreachable after ARP gives up), and two flows
sharing a dumbbell's bottleneck."""
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="building a lab needs root")]

ROUTED = ["handshake_routed", "asymmetric_handshake", "pmtu", "ttl_exceeded_in_syn_sent",
          "icmp_unreachable_during_connect", "dumbbell_two_flows"]


def verdicts(result: dict) -> dict:
    return {v["name"].split(" (", 1)[0]: v for v in result["expectations"]}


def test_routed_experiments_in_one_batch(cli, tmp_path):
    code, out, err = cli(ROUTED + ["--jobs", "2"], tmp_path).finish()
    print(out[-20000:], err)
    results = {Path(p.relative_to(tmp_path)).parts[0]: json.loads(p.read_text()) for p in tmp_path.glob("*/*/result.json")}
    assert sorted(results) == sorted(ROUTED)
    for name, result in results.items():
        assert result["passed"] and result["complete"], (name, [v for v in result["expectations"] if not v["passed"]])
    # every router interface was captured, and the routed handshake crossed both routers
    routed = results["handshake_routed"]
    captured = {c["interface"] for c in routed["captures"]}
    assert {"r1-eth0", "r1-eth1", "r2-eth0", "r2-eth1"} <= captured, captured
    assert all(c["dropped_by_kernel"] == 0 for c in routed["captures"])
    assert {r["node"] for r in routed["lab"]["routes"]} == {"client", "r1", "r2", "server"}
    assert routed["configured_rtt_s"] == pytest.approx(0.100) and routed["ping_rtt_s"] == pytest.approx(0.100, abs=0.003)
    # the asymmetric path: RTT 80 ms, the SYN crosses in 15 ms, the SYN+ACK in 65 ms
    asym = verdicts(results["asymmetric_handshake"])
    assert asym["syn_crossing"]["value"] == pytest.approx(0.015, abs=0.002)
    assert asym["synack_crossing"]["value"] == pytest.approx(0.065, abs=0.002)
    assert results["asymmetric_handshake"]["configured_rtt_s"] == pytest.approx(0.080)
    # the dead server link: no ping answer, and the router's unreachable ends connect() after ARP's 3 s
    down = results["icmp_unreachable_during_connect"]
    assert down["ping_answered"] is False
    assert 3.0 < verdicts(down)["unreachable_after_arp_gives_up"]["value"] < 3.2
    assert code == 0


PLAIN_ROUTED = """name: plain_routed
hosts: [client, server]
switches: [s1]
routers: [r1, r2]
links:
  - {a: client, b: s1}
  - {a: s1, b: r1}
  - {a: r1, b: r2, mtu: 1400}
  - {a: r2, b: server}
"""
PLAIN_EXPERIMENT = """name: plain_routed_handshake
topology: plain_routed.yaml
duration: 2s
steps:
  - {at: 0s,   on: server, listen: 5001}
  - {at: 0.5s, on: client, connect: server:5001}
expect:
  client: {states: [SYN-SENT, ESTAB]}
"""


@pytest.mark.parametrize("after_s", [0.0, 0.3, 0.6, 1.0, 1.5])
def test_ctrl_c_while_a_routed_lab_is_built_or_set_up_leaves_nothing(cli, tmp_path, after_s):
    """On this machine's kernel (no delays: no netem needed). A Ctrl-C that lands while a router's
    shell runs a command once left the node `waiting`, and Mininet's stop() then crashed on it
    (exit 70, "a bug in the test bed"): now every moment ends as an interrupt, and the fixture
    checks that no process, interface or ledger is left."""
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "plain_routed.yaml").write_text(PLAIN_ROUTED)
    (folder / "e.yaml").write_text(PLAIN_EXPERIMENT)
    started = cli(["--target", "local", str(folder / "e.yaml")], tmp_path / "results")
    started.wait_for("building 2 hosts, 2 routers")
    time.sleep(after_s)
    started.proc.send_signal(signal.SIGINT)
    code, out, err = started.finish()
    assert code in (0, 130), out + err            # 0: the run was over before the signal
    assert "Traceback" not in err and "a bug in the test bed" not in err, err
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert "r1-eth" not in links and "s1-eth" not in links and " s1:" not in links
