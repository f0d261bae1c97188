"""Real runs: real Mininet, real tcpdump, real kernels (the VM where this kernel lacks netem)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "harness.cli"]
PLAIN = REPO / "tests" / "fixtures" / "handshake_plain.yaml"

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="building a lab needs root")]


def run(cli, args, tmp_path):
    """One CLI run through the `cli` fixture (conftest.py): its own process group, a generous limit,
    and whatever happens, killed and checked to have left nothing behind."""
    code, out, err = cli(args, tmp_path).finish()
    return SimpleNamespace(returncode=code, stdout=out, stderr=err)


def only_result(tmp_path: Path) -> dict:
    (path,) = tmp_path.glob("*/*/result.json")
    return json.loads(path.read_text())


def test_handshake_on_a_kernel_with_netem(cli, tmp_path):
    proc = run(cli, ["handshake.yaml"], tmp_path)
    print(proc.stdout, proc.stderr)
    result = only_result(tmp_path)
    verdicts = {v["name"]: v for v in result["expectations"]}
    for name in ("client states", "server states", "packets"):
        assert verdicts[name]["passed"], verdicts[name]
    assert result["configured_rtt_s"] == pytest.approx(0.1)
    handshake = result["observation"]["segments"]["client"]
    duration = handshake[2]["t"] - handshake[0]["t"]
    # One RTT at the client's interface: never less than the configured RTT, and far from two
    # (ARP inside the handshake, or a delay applied twice, would add a whole RTT). The VM's
    # virtual clock makes netem exact: runs here measured 100.0-100.2 ms.
    assert result["ping_rtt_s"] == pytest.approx(0.1, rel=0.05)
    assert duration == pytest.approx(0.1, rel=0.05)
    assert ("PASS" in proc.stdout) and f"results: {tmp_path}" in proc.stdout
    assert proc.returncode == (0 if result["passed"] else 1)


def test_handshake_over_open_vswitch(cli, tmp_path):
    proc = run(cli, [str(REPO / "tests" / "fixtures" / "handshake_ovs.yaml")], tmp_path)
    result = only_result(tmp_path)
    assert "Open vSwitch switches" in proc.stdout
    assert result["switch"] == "ovs" and result["passed"], proc.stdout[-3000:] + proc.stderr
    assert proc.returncode == 0


def test_local_run_without_impairments(cli, tmp_path):
    proc = run(cli, ["--target", "local", str(PLAIN)], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = only_result(tmp_path)
    assert result["kernel"] == os.uname().release
    assert result["sysctls"]["client"]["net.ipv4.tcp_syn_retries"] is not None
    assert all(c["dropped_by_kernel"] == 0 for c in result["captures"])


def test_ctrl_c_leaves_nothing_behind(cli, tmp_path):
    started = cli(["--target", "local", str(PLAIN)], tmp_path)
    started.wait_for("running the timeline")
    time.sleep(0.5)
    started.proc.send_signal(signal.SIGINT)
    code, out, err = started.finish()
    assert code == 130, out + err
    assert "Traceback" not in err and "the lab was torn down" in err
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert "client-eth0" not in links and "s1-eth1" not in links and " s1:" not in links
    procs = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(tmp_path) not in procs and "mininet:client" not in procs
    assert not list(Path("/run/tcp-testbed").glob(f"{started.proc.pid}*.json"))


def test_ctrl_c_before_the_lab_says_nothing_was_built(cli, tmp_path):
    started = cli(["--target", "local", str(PLAIN)], tmp_path)
    started.wait_for("target: local")
    started.proc.send_signal(signal.SIGINT)
    code, out, err = started.finish()
    assert code == 130, out + err
    # the signal lands before or while the lab is built: either way the message says which
    assert err.count("interrupted") == 1 and ("was started; nothing was left behind." in err or "built; nothing was "
                                              "left behind." in err or "torn down and nothing of it is left." in err), err


def test_two_local_runs_at_once_take_turns(cli, tmp_path):
    """Mininet's switch ports (s1-eth1...) live in the root namespace: the second run waits, says
    so, and both pass; never a collision."""
    first = cli(["--target", "local", str(PLAIN)], tmp_path / "a")
    second = cli(["--target", "local", str(PLAIN)], tmp_path / "b")
    results = [first.finish(), second.finish()]
    for code, out, err in results:
        assert code == 0, out + err
        assert "File exists" not in out + err
    assert any("is using the lab" in out and "waiting for it to finish" in out for _, out, _ in results), results


def test_bad_input_is_one_paragraph(cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(PLAIN.read_text().replace("listen: 5001", "listn: 5001"))   # the topology by name, from topologies/
    proc = run(cli, [str(bad)], tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert f"{bad}:6: unknown key 'listn'" in proc.stderr


TEARDOWN = ["teardown", "half_close", "server_closes_first", "simultaneous_close", "abort"]


def test_every_close_path_in_one_batch(cli, tmp_path):
    proc = run(cli, TEARDOWN + ["--jobs", "2"], tmp_path)
    print(proc.stdout, proc.stderr)
    assert "2 side by side" in proc.stdout and "\nsummary" in proc.stdout
    results = {p.parts[-3]: json.loads(p.read_text()) for p in tmp_path.glob("*/*/result.json")}
    assert sorted(results) == sorted(TEARDOWN)
    for name, result in results.items():
        failed = [v for v in result["expectations"] if not v["passed"]]
        assert result["passed"], (name, failed)
        assert result["target"] == "vm/virtual-clock"
    # TIME-WAIT: Linux's fixed 60 s, rounded up by the timer wheel (<= 2.048 s at HZ=250),
    # measured from samples to within one sampling gap.
    for name, host in (("teardown", "client"), ("server_closes_first", "server"), ("simultaneous_close", "client")):
        spans = results[name]["observation"]["states"][host]
        tw = next(s for s in spans if s["state"] == "TIME-WAIT")
        assert 60.0 - 0.02 <= tw["sample_after"] - tw["first_seen"] <= 62.1
        assert tw["sample_after"] - tw["last_seen"] <= 0.03
    assert proc.returncode == 0


NETWORK = ["stale_syn", "stale_syn_time_wait", "syn_loss", "synack_loss", "final_ack_loss", "time_wait_reack"]


def test_network_steps_in_one_batch(cli, tmp_path):
    proc = run(cli, NETWORK + ["--jobs", "2"], tmp_path)
    print(proc.stdout, proc.stderr)
    results = {p.parts[-3]: json.loads(p.read_text()) for p in tmp_path.glob("*/*/result.json")}
    assert sorted(results) == sorted(NETWORK)
    for name, result in results.items():
        assert result["passed"], (name, [v for v in result["expectations"] if not v["passed"]])
        assert result["network"] and all(not r["problems"] for r in result["network"])
    (hold,) = results["stale_syn"]["network"]
    assert hold["picked"] == hold["counted"] == 1
    assert hold["segments"][0]["held_s"] == pytest.approx(3.0, abs=0.005)
    (drop,) = results["syn_loss"]["network"]
    linear = int(results["syn_loss"]["sysctls"]["client"]["net.ipv4.tcp_syn_linear_timeouts"] or 0)   # None on 6.1
    assert drop["picked"] == drop["counted"] == 4 + linear    # the SYN and its 3 (+ linear) retransmissions
    assert proc.returncode == 0


def test_network_drop_on_the_local_kernel_leaves_no_rules(cli, tmp_path):
    proc = run(cli, ["--target", "local", str(REPO / "tests" / "fixtures" / "syn_drop_plain.yaml")], tmp_path)
    result = only_result(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (drop,) = result["network"]
    assert drop["picked"] == drop["counted"] == 1 and drop["matching"] == 2 and not drop["problems"]
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    assert "tcptestbed" not in tables


def test_sweeps_share_vms_and_are_compared(cli, tmp_path):
    proc = run(cli, ["syn_retries_sweep", "fin_timeout_sweep", "timestamps_stale_syn", "--jobs", "2"], tmp_path)
    print(proc.stdout, proc.stderr)
    assert "8 experiment(s) in 2 VM(s)" in proc.stdout and "parallelism" in proc.stdout
    (matrix,) = tmp_path.glob("syn_retries_sweep/*/")
    cells = sorted(p.parent for p in matrix.glob("*/result.json"))
    assert [c.name for c in cells] == [f"tcp_syn_retries={r}@client" for r in (1, 2, 3)]
    results = [json.loads((c / "result.json").read_text()) for c in cells]
    assert all(r["passed"] for r in results), [[v for v in r["expectations"] if not v["passed"]] for r in results]
    assert [r["sysctls"]["client"]["net.ipv4.tcp_syn_retries"] for r in results] == ["1", "2", "3"]
    assert (matrix / "comparison.csv").exists() and (matrix / "comparison.png").exists()
    assert list(tmp_path.glob("fin_timeout_sweep/*/comparison.png"))
    for timeout in (5, 10, 20):
        result = json.loads(next(tmp_path.glob(f"fin_timeout_sweep/*/tcp_fin_timeout={timeout}@client/result.json")).read_text())
        assert result["passed"], [v for v in result["expectations"] if not v["passed"]]
        (fw2,) = [v for v in result["expectations"] if v["name"].startswith("fin_wait_2")]
        assert timeout <= fw2["value"] <= timeout * 1.125 + 0.1
    for ts in (0, 1):
        result = json.loads(next(tmp_path.glob(f"timestamps_stale_syn/*/tcp_timestamps={ts}/result.json")).read_text())
        assert result["passed"] and result["sysctls"]["client"]["net.ipv4.tcp_timestamps"] == str(ts)
    assert proc.stdout.count("comparison of ") == 3 and proc.returncode == 0


def test_two_kernels_compared(cli, tmp_path):
    from harness.plan.kernels import kernels_with_netem
    kernels = kernels_with_netem()
    if len(kernels) < 2:
        pytest.skip("one kernel with netem installed; comparing kernels needs two")
    proc = run(cli, ["handshake", "--kernel", str(kernels[0]), "--kernel", str(kernels[-1])], tmp_path)
    print(proc.stdout, proc.stderr)
    (matrix,) = tmp_path.glob("handshake/*/")
    found = sorted(json.loads(p.read_text())["kernel"] for p in matrix.glob("kernel-*/*/result.json"))
    assert found == sorted(k.name.removeprefix("vmlinuz-") for k in (kernels[0], kernels[-1]))
    assert "comparison of 2 run(s)" in proc.stdout and proc.returncode == 0


def test_a_machine_wide_sysctl_is_refused_and_put_back(cli, tmp_path):
    before = subprocess.run(["sysctl", "-n", "vm.swappiness"], capture_output=True, text=True).stdout
    proc = run(cli, ["--target", "local", str(REPO / "tests" / "fixtures" / "global_sysctl.yaml")], tmp_path)
    assert proc.returncode == 3 and "not per network namespace" in proc.stderr
    assert subprocess.run(["sysctl", "-n", "vm.swappiness"], capture_output=True, text=True).stdout == before
