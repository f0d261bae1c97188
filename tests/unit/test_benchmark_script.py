"""scripts/benchmark fails loudly and prints clean figures to any stdout. A kernel that does not
exist makes every step fail at once (no VM boots): each is named with its tool's message, no
figures, exit 1. Stand-ins for vng and run-experiment check the output when stdout is a file:
QEMU reopens /proc/self/fd/1 (O_TRUNC, offset 0), which used to eat the first line and overwrite another."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not (REPO / ".venv" / "bin" / "vng").exists() or not (REPO / ".venv" / "bin" / "run-experiment").exists(),
                    reason="needs scripts/setup (.venv with vng and run-experiment)")
def test_every_failed_step_is_named_and_the_exit_is_non_zero(tmp_path):
    proc = subprocess.run([str(REPO / "scripts" / "benchmark"), "1"], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, KERNEL="/nonexistent", OUT=str(tmp_path / "bench")))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout == ""                                     # figures only, and there are none
    for name in ("topology", "handshake-virtual-1", "handshake-host-1", "stale_syn", "observer-samples", "observer-trace"):
        assert f"FAILED: {name} exited" in proc.stderr
    assert "kernel image '/nonexistent' does not exist" in proc.stderr
    assert "6 step(s) FAILED" in proc.stderr.splitlines()[-1]
    assert (tmp_path / "bench" / "logs" / "stale_syn.log").exists()


def test_a_bad_run_count_is_refused():
    proc = subprocess.run([str(REPO / "scripts" / "benchmark"), "three"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "RUNS must be a whole number" in proc.stderr


@pytest.mark.parametrize("args, env, says", [
    (["--only", "observers"], {}, "no section 'observers' (--only takes a comma-separated list of: topology,handshake,hold,observer,speed)"),
    (["--only"], {}, "--only needs a list of sections"),
    (["--only", ","], {}, "--only names no section"),
    (["--only", "observer"], {"OBSERVER_REPEATS": "0"}, "OBSERVER_REPEATS must be a whole number >= 1, not '0'"),
    (["--only", "observer"], {"OBSERVER_DELAYS": "12.5ms, 25ms"}, "OBSERVER_DELAYS must be delays separated by commas"),
])
def test_bad_sections_and_repeats_are_refused(tmp_path, args, env, says):
    proc = subprocess.run([str(REPO / "scripts" / "benchmark"), *args], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, OUT=str(tmp_path / "bench"), **env))
    assert proc.returncode == 2 and says in proc.stderr
    assert not (tmp_path / "bench").exists()                     # refused before anything is emptied or made


FAKE_VNG = """#!PYTHON
import os
fd = os.open("/proc/self/fd/1", os.O_WRONLY | os.O_TRUNC)       # what QEMU's file chardev does
os.write(fd, b"[    0.000000] Linux version 6.1.0 (kernel noise, longer than the figures that follow it)\\n" * 3
         + b"topology up+down, plain Mininet: median 5.00 s (min 5.00, max 5.00)\\n"
         + b"topology up+down, harness lab:   median 6.00 s (min 6.00, max 6.00)\\nharness overhead: +1.00 s\\n")
"""

FAKE_RUN = """#!PYTHON
import json, os, pathlib, re, sys
args = sys.argv[1:]
with open(os.environ["FAKE_CALLS"], "a") as calls:                  # what each call was given
    calls.write(json.dumps(args) + "\\n")
out = pathlib.Path(args[args.index("--results-dir") + 1])
source = pathlib.Path(args[-1])
text = source.read_text() if source.is_file() else ""                 # the observer section's own file
name = re.search(r"^name: (\\w+)", text, re.M).group(1) if text else args[-1].removesuffix(".yaml")
repeat = re.search(r"^matrix: {.*repeat: (\\d+)}", text, re.M)
repeat = int(repeat.group(1)) if repeat else 0                         # only the observer's file has one
delays = re.search(r"^matrix: {links: {delay: \\[(.*)\\]}", text, re.M)
delays = delays.group(1).split(", ") if delays else [""]       # "": handshake.yaml's own 25 ms links
clock = args[args.index("--vm-clock") + 1] if "--vm-clock" in args else "virtual"
observer = args[args.index("--observer") + 1] if "--observer" in args else "trace"
print("a line the run prints")
run = out / name / "20260101-000000-abcd"
segments = [{"t": 0.0}, {"t": 0.05}, {"t": 0.1001}]
result = {"experiment": name, "passed": clock != "host", "kernel": "6.1.0-test", "target": "vm/" + clock + "-clock",
          "configured_rtt_s": 0.1, "ping_rtt_s": 0.1, "observation": {"segments": {"client": segments}},
          "network": [{"segments": [{"flags": "S", "held_s": 3.000006}]}]}
code = int(os.environ.get("FAKE_EXIT_" + name + "_" + clock, 0 if clock != "host" else 1))
if repeat:         # samples: the second run misses its 5% (exit 1, a verdict); trace: all pass
    code = int(os.environ.get("FAKE_EXIT_observer_" + observer, 1 if observer == "samples" and repeat >= 2 else 0))
cells = [(delay, i, run / f"{'delay=' + delay if delay else ''}#{i}") for delay in delays
         for i in range(1, repeat + 1 - int(os.environ.get("FAKE_CELLS_LOST", 0)))] or [("", 1, run)]
for delay, i, cell in cells:
    rtt = 4 * float(delay.removesuffix("ms")) / 1e3 if delay else 0.1
    client = 0.1062 if observer == "samples" and i == 2 else 0.1001 + i * 1e-5      # 6.2% late: named in the figures
    result["configured_rtt_s"] = rtt
    result["expectations"] = [{"name": "handshake_client", "passed": client < 0.105, "value": client * rtt / 0.1},
                              {"name": "handshake_server", "passed": True, "value": 0.1002 * rtt / 0.1}]
    cell.mkdir(parents=True)
    (cell / "result.json").write_text(json.dumps(dict(result, duration_s=2.0)))
    (cell / "profile.json").write_text(json.dumps({"clock": "host", "phases": [
        {"name": "lab", "start": 0.0, "seconds": 1.5}, {"name": "timeline", "start": 1.5, "seconds": 2.5}], "total_s": 4.0}))
sys.exit(code)
"""


def _stand_ins(tmp_path: Path) -> dict:
    for name, text in (("vng", FAKE_VNG), ("run-experiment", FAKE_RUN)):
        (tmp_path / name).write_text(text.replace("PYTHON", sys.executable))
        (tmp_path / name).chmod(0o755)
    return dict(os.environ, KERNEL="/boot/fake", OUT=str(tmp_path / "bench"), VNG=str(tmp_path / "vng"),
                RUN_EXPERIMENT=str(tmp_path / "run-experiment"), OBSERVER_REPEATS="3",
                FAKE_CALLS=str(tmp_path / "calls.jsonl"))


def _calls(tmp_path: Path) -> list[list[str]]:
    return [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]


OBSERVER_FIGURES = [
    "observer samples, client handshake / RTT over 3 runs: min 1.0011, median 1.0013, max 1.0620, "
    "max deviation 0.0620; within 1%: 2/3 (outside: #2 1.0620)",
    "observer samples, server handshake / RTT over 3 runs: min 1.0020, median 1.0020, max 1.0020, "
    "max deviation 0.0020; within 1%: 3/3",
    "observer trace, client handshake / RTT over 3 runs: min 1.0011, median 1.0012, max 1.0013, "
    "max deviation 0.0013; within 1%: 3/3",
    "observer trace, server handshake / RTT over 3 runs: min 1.0020, median 1.0020, max 1.0020, "
    "max deviation 0.0020; within 1%: 3/3"]


def test_figures_reach_a_file_whole_and_alone(tmp_path):
    env = _stand_ins(tmp_path)
    with open(tmp_path / "figures.txt", "w") as stdout:
        proc = subprocess.run([str(REPO / "scripts" / "benchmark"), "2"], stdout=stdout, stderr=subprocess.PIPE,
                              text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr
    lines = (tmp_path / "figures.txt").read_text().splitlines()
    assert lines[:3] == ["topology up+down, plain Mininet: median 5.00 s (min 5.00, max 5.00)",
                         "topology up+down, harness lab:   median 6.00 s (min 6.00, max 6.00)",
                         "harness overhead: +1.00 s"]
    assert [l.split("  (")[0] for l in lines[3:7]] == ["handshake at client: 100.1 ms / configured RTT 100 ms = 1.001"] * 4
    assert [l.endswith("its expectations failed)") for l in lines[3:7]] == [False, False, True, True]
    assert lines[7:8] == ["network hold (for: 3s): segment S held 3.000006 s at the switch"]
    assert [l.split("  [")[0] for l in lines[8:]] == OBSERVER_FIGURES
    assert lines[8].endswith("  [dense sampler alone; RTT 100 ms, kernel 6.1.0-test, vm/virtual-clock]")
    assert "handshake-host-1: some expectations failed" in proc.stderr
    assert "observer-samples: some expectations failed" in proc.stderr


def test_a_failed_run_among_good_ones_is_named_and_its_figure_left_out(tmp_path):
    env = dict(_stand_ins(tmp_path), FAKE_EXIT_handshake_virtual="3")
    proc = subprocess.run([str(REPO / "scripts" / "benchmark"), "1"], capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 1
    assert "FAILED: handshake-virtual-1 exited 3" in proc.stderr and "a line the run prints" in proc.stderr
    assert "handshake-virtual-1" not in proc.stdout and "handshake-host-1" in proc.stdout
    assert proc.stderr.splitlines()[-1].endswith("handshake-virtual-1 (exit 3)")


def test_the_observer_section_alone_runs_each_observer_once_in_one_vm(tmp_path):
    env = dict(_stand_ins(tmp_path), OBSERVER_REPEATS="3")
    proc = subprocess.run([str(REPO / "scripts" / "benchmark"), "--only", "observer"], capture_output=True, text=True,
                          timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr
    assert [l.split("  [")[0] for l in proc.stdout.splitlines()] == OBSERVER_FIGURES
    calls = _calls(tmp_path)
    assert [c[c.index("--observer") + 1] for c in calls] == ["samples", "trace"]      # nothing else ran
    for call in calls:                       # all repeats in one invocation, one VM, on the virtual clock
        assert call[call.index("--jobs") + 1] == "1" and call[call.index("--vm-clock") + 1] == "virtual"
        assert call[call.index("--target") + 1] == "vm" and call[call.index("--kernel") + 1] == "/boot/fake"
    handshake = (REPO / "experiments" / "handshake.yaml").read_text()
    text = Path(calls[0][-1]).read_text()
    assert text.startswith(handshake) and text.endswith("matrix: {repeat: 3}\n")   # the user's experiment, repeated
    assert (tmp_path / "bench" / "logs" / "observer-trace.log").exists()


def test_an_observer_run_short_of_repeats_is_named_and_its_figures_left_out(tmp_path):
    env = dict(_stand_ins(tmp_path), FAKE_CELLS_LOST="1")
    proc = subprocess.run([str(REPO / "scripts" / "benchmark"), "--only=hold,observer"], capture_output=True,
                          text=True, timeout=600, env=env)
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == ["network hold (for: 3s): segment S held 3.000006 s at the switch"]
    assert "FAILED: observer samples: " in proc.stderr and "holds 2 result.json files, not 3" in proc.stderr
    assert proc.stderr.splitlines()[-1].endswith(
        "observer-samples figures (reading result.json) observer-trace figures (reading result.json)")


def test_observer_runs_are_read_in_repeat_order(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("bench_observer", REPO / "scripts" / "bench_observer.py")
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_observer", bench)      # dataclasses look their module up
    spec.loader.exec_module(bench)
    assert sorted(["#10", "#9", "#1"], key=bench._cell_number) == ["#1", "#9", "#10"]
    assert sorted(["delay=25ms#2", "delay=12.5ms#10", "delay=12.5ms#9"], key=bench._cell_number) == \
        ["delay=12.5ms#9", "delay=12.5ms#10", "delay=25ms#2"]
    result = {"kernel": "k", "configured_rtt_s": 0.05, "expectations": [{"name": "handshake_client", "value": 0.0505}]}
    (tmp_path / "#1").mkdir()
    (tmp_path / "#1" / "result.json").write_text(json.dumps(result))
    with pytest.raises(bench.MissingRuns, match="no handshake_server value"):
        bench.read_runs(tmp_path, 1)


def test_observer_delays_give_figures_per_rtt(tmp_path):
    env = dict(_stand_ins(tmp_path), OBSERVER_DELAYS="12.5ms,25ms")
    proc = subprocess.run([str(REPO / "scripts" / "benchmark"), "--only", "observer"], capture_output=True, text=True,
                          timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    samples = [[OBSERVER_FIGURES[0].replace("#2", f"delay={d}#2"), OBSERVER_FIGURES[1]] for d in ("12.5ms", "25ms")]
    assert [l.split("  [")[0] for l in lines] == samples[0] + samples[1] + OBSERVER_FIGURES[2:] * 2   # a miss names its cell
    assert ["RTT 50 ms" in l for l in lines] == [True, True, False, False] * 2
    assert ["RTT 100 ms" in l for l in lines] == [False, False, True, True] * 2
    text = Path(_calls(tmp_path)[0][-1]).read_text()
    assert text.endswith("matrix: {links: {delay: [12.5ms, 25ms]}, repeat: 3}\n")


def test_the_speed_section_times_the_verdict_and_the_suite_and_prints_the_profile(tmp_path):
    env = dict(_stand_ins(tmp_path), SPEED_KERNELS="/boot/a,/boot/b")
    proc = subprocess.run([str(REPO / "scripts" / "benchmark"), "--only", "speed"], capture_output=True, text=True,
                          timeout=600, env=env)
    calls = _calls(tmp_path)
    assert calls[0][-1] == "experiments/stale_syn.yaml" and calls[1][-1] == "experiments/"
    assert calls[1][calls[1].index("--jobs") + 1] == "2"
    assert [calls[1][i + 1] for i, a in enumerate(calls[1]) if a == "--kernel"] == ["/boot/a", "/boot/b"]
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("command to verdict, stale_syn.yaml, cold VM (boot included): ")
    assert lines[0].endswith(" s (before issue 19: 68 s)") and lines[1].startswith("phase ")
    assert "lab             1.50" in proc.stdout and "timeline        2.50" in proc.stdout
    assert any(l.startswith("shipped suite (experiments/, 1 runs) on /boot/a,/boot/b, --jobs 2: ") for l in lines)
    assert any(l.startswith("per-run overhead (") and "1 runs: median 2.0 s" in l for l in lines)      # 4.0 - 2.0
