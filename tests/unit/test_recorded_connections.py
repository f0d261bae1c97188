"""Issue 13's experiments judged on runs recorded in the 6.1 VM (virtual clock): they pass as
shipped, and each fails when Linux is said to behave otherwise — the expectations are precise."""
import json
from dataclasses import replace
from pathlib import Path

import pytest

from harness.analyse.connection import observe
from harness.judge import judge_all
from harness.load import load_experiment
from harness.load.matrix import load_cells
from harness.load.units import parse_bytes, parse_time_spec
from harness.model import StateExpectation, StepRecord

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
HOSTS = {"client": "client-eth0", "server": "server-eth0"}
IPS = {"client": "10.0.0.1", "server": "10.0.0.2"}


def observed(run: Path):
    steps = {h: [StepRecord.from_json(json.loads(line)) for line in (run / "steps" / f"{h}.jsonl").read_text().splitlines()]
             for h in HOSTS}
    return observe(run, steps, HOSTS, IPS)


def by_name(verdicts) -> dict:
    return {v.name.split(" (", 1)[0]: v for v in verdicts}


@pytest.fixture(scope="module")
def old_duplicate():
    """time_wait_old_duplicate, the tcp_timestamps=1 cell, and what its run saw."""
    (cell,) = [c for c in load_cells(REPO / "experiments" / "time_wait_old_duplicate.yaml") if "=1" in c.label]
    return cell.experiment, observed(FIXTURES / "time_wait_old_duplicate_vm")


def test_the_old_duplicate_run_passes_as_shipped(old_duplicate):
    experiment, obs = old_duplicate
    verdicts = judge_all(experiment.expect, obs, 0.1)
    assert verdicts and all(v.passed for v in verdicts), [v for v in verdicts if not v.passed]
    # two incarnations of one four-tuple, each with its own sockets at both ends
    assert obs.sockets["a"].local == obs.sockets["b"].local == ("10.0.0.1", 40000)
    assert (obs.sockets["a"].incarnation, obs.sockets["b"].incarnation) == (1, 2)
    assert obs.sockets["s2"].incarnation == 2 and obs.sockets["s1"].incarnation == 1


@pytest.mark.parametrize("change, failing", [
    # had the old segment been taken, the new incarnation's reader would have 1100 bytes
    (lambda e: replace(e, received={**e.received, "s2": parse_bytes("1100B")}), "s2 received"),
    # had TIME-WAIT run its 60 s, s1 would end in TIME-WAIT, not CLOSED when the new SYN came
    (lambda e: replace(e, states={**e.states, "s1": tuple(map(StateExpectation.parse,
                                                             ["SYN-RECV", "ESTAB", "FIN-WAIT-1", "(FIN-WAIT-2)", "TIME-WAIT"]))}),
     "s1 states"),
])
def test_the_old_duplicate_run_fails_when_linux_is_said_to_behave_otherwise(old_duplicate, change, failing):
    experiment, obs = old_duplicate
    verdicts = by_name(judge_all(change(experiment.expect), obs, 0.1))
    assert not verdicts[failing].passed
    assert all(v.passed for name, v in verdicts.items() if name != failing)


def test_a_delayed_dup_ack_would_fail(old_duplicate):
    """Linux answers the old segment at once (packetdrill's tolerance); 40 ms (a delayed ACK) would fail."""
    experiment, obs = old_duplicate
    (dup,) = [t for t in experiment.expect.timing if t.name == "dup_ack_at_once"]
    late = replace(dup, between=(parse_time_spec("40ms"), parse_time_spec("200ms")))
    verdicts = by_name(judge_all(replace(experiment.expect, timing=(late,)), obs, 0.1))
    assert not verdicts["dup_ack_at_once"].passed and verdicts["dup_ack_at_once"].value < 0.004


def test_kernel_time_and_wire_time_differ_by_the_link():
    experiment = load_experiment(REPO / "experiments" / "kernel_send_time.yaml")
    obs = observed(FIXTURES / "kernel_send_time_vm")
    verdicts = by_name(judge_all(experiment.expect, obs, 0.05))
    assert all(v.passed for v in verdicts.values()), [v for v in verdicts.values() if not v.passed]
    assert verdicts["synack_turnaround"].value < 0.001
    assert verdicts["synack_on_the_link"].value == pytest.approx(0.040, abs=0.0001)
    # Read from the interface capture alone (the old meaning of "sends"), the server would seem to
    # take 40 ms to answer the SYN: the same expectation then fails.
    (turnaround,) = [t for t in experiment.expect.timing if t.name == "synack_turnaround"]
    wire = replace(turnaround, end=replace(turnaround.end, verb="transmits"))
    (verdict,) = judge_all(replace(experiment.expect, states={}, timing=(wire,)), obs, 0.05)
    assert not verdict.passed and verdict.value == pytest.approx(0.040, abs=0.0001)
