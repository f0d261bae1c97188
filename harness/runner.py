"""Run one experiment on this machine's kernel: lab up -> record -> drive -> analyse -> judge."""
from __future__ import annotations

import functools
import json
import os
import select
import shutil
import time
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path

from harness.analyse.connection import observe
from harness.analyse.network import check_step
from harness.analyse.segments import read_segments
from harness.lab.packet_rules import PacketRules, PlacedStep
from harness.errors import RunFailed
from harness.judge import judge_all
from harness.lab.leftovers import Interrupted, Ledger, LocalLock, clean_stale
from harness.lab.namespaces import Forked, stop_helpers
from harness.drive.agent import main as agent_main
from harness.record.sampler import sample_hosts
from harness.lab.network import mininet_lab, ping_rtt_s, warm_up
from harness.lab.sysctls import apply_sysctls
from harness.lab.preflight import check_local
from harness.model import Experiment
from harness.plan import agent_plans, new_run_dir, path_rtt_s, rule_placement
from harness.record.capture import Capture, startup_timeout_s, stop_captures
from harness.report import describe_network_step, verdict_table, write_result
from harness.report.evidence import (EvidenceIncomplete, full_disk_note, mark_incomplete, pcap_problem, publish,
                                      atomic_write, samples_problem, step_log_problem, sync_files)
from harness.report.timeline import DEAD_PING, terminal_copy, timeline
from harness.judge.schedule import judge_schedule, late_steps

SAMPLE_INTERVAL_S = 0.01


def _read_line(proc, timeout: float | None, what: str) -> str:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline().decode() if ready else ""
    if not line:
        raise RunFailed(f"{what}: no answer ({proc.stderr.read1(4096).decode(errors='replace') if proc.poll() is not None else 'timed out'})")
    return line


def run_local(experiment: Experiment, results_root: Path, log=print, run_dir: Path | None = None) -> tuple[int, Path]:
    """Run on this kernel; results go to results_root/<experiment>/<run-id>/, or to `run_dir`."""
    check_local(experiment)
    with ExitStack() as lifecycle:
        lock = LocalLock(log)         # one local lab at a time; released after the ledger's guardian is gone
        lifecycle.callback(lock.release)
        removed = clean_stale()
        if removed:
            log(f"removed interfaces left by a killed run: {', '.join(removed)}")
        # Inside a VM (TCP_TESTBED_STAGE) everything dies with the VM: no guardian needed.
        ledger = Ledger(guard=not os.environ.get("TCP_TESTBED_STAGE"), keep_fds=(lock.fd,))
        lifecycle.callback(ledger.close)
        try:
            return _staged(experiment, results_root, log, run_dir, ledger)
        except KeyboardInterrupt as exc:
            what = ("interrupted; the lab was torn down and nothing of it is left." if ledger.built()
                    else "interrupted before the lab was built; nothing was left behind.")
            raise Interrupted(what) from exc


def _staged(experiment: Experiment, results_root: Path, log, run_dir: Path | None, ledger: Ledger) -> tuple[int, Path]:
    # The VM target points TCP_TESTBED_STAGE at guest memory: recorders then never wait on the
    # host's 9p file server during the timeline (under the virtual clock an I/O wait is idle time,
    # which the clock skips); the run folder is copied to the results folder at the end.
    stage = os.environ.get("TCP_TESTBED_STAGE")
    final_dir = new_run_dir(results_root, experiment, run_dir)
    work_dir = new_run_dir(Path(stage), experiment, Path(stage) / "run") if stage else final_dir
    try:
        return _run(experiment, work_dir, final_dir, log, ledger)   # a finished run publishes its own folder
    except EvidenceIncomplete:
        raise            # its folder already says what is missing
    except BaseException:
        if stage:        # keep what there is for a look, never hiding why the run failed
            for problem in publish(work_dir, final_dir):
                log(f"not kept: {problem}")
        raise
    finally:
        if stage:
            shutil.rmtree(work_dir, ignore_errors=True)


def _run(experiment: Experiment, run_dir: Path, final_dir: Path, log, ledger: Ledger) -> tuple[int, Path]:
    # Every helper is stopped on every way out (an error, a helper that does not answer, Ctrl-C):
    # `helpers` unwinds in reverse order of registration, i.e. sampler, captures (flushed before
    # the agents close their sockets), agents, packet rules (their timer threads joined), then the lab.
    with mininet_lab(experiment, ledger, log) as lab, ExitStack() as helpers:
        net = lab["net"]
        hosts = experiment.topology.hosts
        ips = {h: net.get(h).IP() for h in hosts}
        host_intf = {h: net.get(h).defaultIntf().name for h in hosts}
        sysctls = apply_sysctls(net, experiment)
        warm_up(net)
        pair = _connect_pair(experiment)
        ping_rtt = ping_rtt_s(net, *pair) if pair else None
        placed = _place_network_steps(experiment, lab, ips)
        rules = PacketRules(placed, net.get(experiment.topology.switches[0]), ledger) if placed else None
        if rules:
            helpers.callback(rules.close)
        agents: dict[str, Forked] = {}
        helpers.callback(stop_helpers, agents.values())
        captures: list[Capture] = []
        capture_stats: list[dict] = []
        helpers.callback(stop_captures, captures, capture_stats)
        for intf, (node, _) in lab["interfaces"].items():
            captures.append(Capture(net.get(node), intf, run_dir / "pcap" / f"{intf}.pcap"))
            ledger.add(pids=[captures[-1].proc.pid])
        for capture in captures:
            capture.wait_ready()
        (run_dir / "samples").mkdir(parents=True, exist_ok=True)
        sampler = Forked(None, sample_hosts, {h: (net.get(h).pid, str(run_dir / "samples" / f"{h}.jsonl")) for h in hosts},
                         SAMPLE_INTERVAL_S, _dense_after_activity_s(experiment))
        ledger.add(pids=[sampler.pid])
        helpers.callback(stop_helpers, [sampler])
        _read_line(sampler, startup_timeout_s(), "the state sampler did not start")
        plans = agent_plans(experiment, ips)
        for h in hosts:
            proc = agents[h] = Forked(net.get(h).pid, agent_main)
            ledger.add(pids=[proc.pid])
            proc.stdin.write((json.dumps({"steps": plans[h], "duration": experiment.duration_s,
                                          "log": str(run_dir / "steps" / f"{h}.jsonl")}) + "\n").encode())
            proc.stdin.flush()
        for h, proc in agents.items():
            _read_line(proc, startup_timeout_s(), f"the agent in {h} did not start")
        if rules:
            rules.install_untimed()
        t0 = time.time() + 0.3     # nothing between here and the agents may touch the disk
        for proc in agents.values():
            proc.stdin.write(f"{t0}\n".encode())
            proc.stdin.flush()
        if rules:
            rules.arm(t0)
        log(f"running the timeline ({experiment.duration_s:g} s)")
        _wait_with_progress(t0, experiment.duration_s, log)
        for h, proc in agents.items():   # agents end their own steps at the deadline
            _read_line(proc, startup_timeout_s(), f"the agent in {h} did not finish its steps")
        counted = rules.counters() if rules else {}
    log("analysing the captures")
    lost = [c for c in capture_stats if c["dropped_by_kernel"]]
    if lost:
        raise RunFailed(f"tcpdump lost packets: {lost}; the capture cannot support a verdict.")
    dead_ping = pair is not None and ping_rtt is None
    base = {"experiment": experiment.name, "source": str(experiment.source), "kernel": os.uname().release,
            "target": os.environ.get("TCP_TESTBED_TARGET", "local"), "switch": experiment.topology.switch_kind,
            "run_dir": str(final_dir), "ping_rtt_s": ping_rtt, "ping_answered": None if pair is None else not dead_ping,
            "sysctls": sysctls, "qdiscs": lab["qdiscs"], "captures": capture_stats}
    steps_log, problems = _evidence(run_dir, experiment, captures, sampler, t0)
    if problems:
        raise _incomplete(final_dir, base, problems)
    obs = observe(run_dir, steps_log, host_intf, ips)
    rtt = path_rtt_s(experiment, *(pair or (obs.client_host, obs.server_host)))
    verdicts = judge_all(experiment.expect, obs, rtt)
    late = late_steps(experiment.steps, experiment.network, steps_log, t0)
    schedule = judge_schedule(late)
    verdicts += [schedule] if schedule else []
    port_segments = functools.cache(lambda intf: read_segments(run_dir / "pcap" / f"{intf}.pcap"))
    network = [check_step(p.step, counted.get(p.step.index, 0), port_segments(p.ingress), port_segments(p.port),
                          p.src_ip, p.dst_ip, p.impairment.delay_s) for p in placed]
    result = dict(base, configured_rtt_s=rtt, steps=steps_log, observation=obs.to_json(), about=experiment.about,
                  network=network, network_qdiscs=rules.qdiscs if rules else {}, late_steps=[asdict(s) | {"late_s": s.late_s} for s in late],
                  expectations=verdicts, passed=all(v.passed for v in verdicts), complete=True)
    story = timeline(obs, dead_ping) + [f"late: {s.describe()}" for s in late]
    try:       # the evidence is in place and flushed; the timeline, then the verdict, last
        atomic_write(run_dir / "timeline.txt", "\n".join(story) + "\n")
        write_result(run_dir, result)
    except OSError as exc:
        raise _incomplete(final_dir, base, [f"timeline.txt or result.json could not be written: {exc.strerror or exc}"]) from None
    if run_dir != final_dir:
        problems = publish(run_dir, final_dir)
        if problems:
            raise _incomplete(final_dir, base, problems)
    ping_text = (f", ping RTT before the run {ping_rtt * 1e3:.1f} ms" if ping_rtt is not None
                 else f"; {DEAD_PING}" if dead_ping else "")
    log("\n" + "\n".join(terminal_copy(story, final_dir / "timeline.txt")))
    for report in network:
        log(describe_network_step(report))
    problems = [f"line {r['line']} ({r['action']} {r['from']} → {r['to']}): {p}" for r in network for p in r["problems"]]
    if problems:
        raise RunFailed("a network step did not act exactly as written, so the run proves nothing:\n  "
                        + "\n  ".join(problems) + f"\n(artifacts kept in {final_dir})")
    if experiment.about:
        log("\n" + experiment.about)
    log(f"\n{experiment.name} on kernel {os.uname().release} (configured RTT {rtt * 1e3:g} ms{ping_text})\n"
        + verdict_table(verdicts))
    log(f"\nresults: {final_dir}")
    return (0 if result["passed"] else 1), final_dir


def _evidence(run_dir: Path, experiment: Experiment, captures: list[Capture], sampler: Forked,
              t0: float) -> tuple[dict[str, list[dict]], list[str]]:
    """Each host's step log, and everything that keeps the run's evidence from being whole: a
    recorder that failed, a pcap cut inside a record, samples that stop early, a step log short of
    the steps its agent ran, a file the disk would not flush."""
    problems = sync_files(run_dir)
    for c in captures:
        if c.proc.returncode not in (0, None):
            problems.append(f"tcpdump on {c.intf} ended with status {c.proc.returncode}")
        if problem := pcap_problem(c.out):
            problems.append(f"pcap/{problem}")
    if sampler.returncode != 0:
        ready = select.select([sampler.stderr], [], [], 1.0)[0]
        said = sampler.stderr.read1(65536).decode(errors="replace").strip().splitlines() if ready else []
        problems.append(f"the state sampler failed ({said[-1] if said else f'status {sampler.returncode}'})")
    # the sampler sleeps at most 0.5 s between samples and is stopped after the timeline ends
    until = t0 + experiment.duration_s - 1.0
    problems += [p for h in experiment.topology.hosts if (p := samples_problem(run_dir / "samples" / f"{h}.jsonl", until))]
    steps_log = {}
    for h in experiment.topology.hosts:
        planned = sum(1 for step in experiment.steps if step.host == h)
        steps_log[h], problem = step_log_problem(run_dir / "steps" / f"{h}.jsonl", planned)
        problems += [problem] if problem else []
    if problems:
        problems[-1] += full_disk_note(run_dir)
    return steps_log, problems


def _incomplete(folder: Path, base: dict, problems: list[str]) -> EvidenceIncomplete:
    """The error for a run whose evidence is not whole, after marking its folder so (if it can)."""
    return EvidenceIncomplete(problems, folder, mark_incomplete(folder, base, problems))

def _place_network_steps(experiment: Experiment, lab: dict, ips: dict[str, str]) -> list[PlacedStep]:
    placed = []
    for step in experiment.network:
        switch, before, after = rule_placement(experiment, step.sender, step.receiver)
        port = lab["ports"][(switch, after)]
        placed.append(PlacedStep(step, port, lab["interfaces"][port][1], ips[step.sender], ips[step.receiver],
                                 lab["ports"][(switch, before)]))
    return placed


def _dense_after_activity_s(experiment: Experiment) -> float:
    """How long the sampler stays dense after a segment or a call anywhere: long enough for any
    segment to cross the network (the slowest path's RTT, plus any hold or delay step) and 0.3 s."""
    hosts = experiment.topology.hosts
    rtts = [path_rtt_s(experiment, a, b) for a in hosts for b in hosts if a != b]
    held = [step.extra_s or 0.0 for step in experiment.network]
    return 0.3 + max(rtts, default=0.0) + max(held, default=0.0)


def _wait_with_progress(t0: float, duration_s: float, log) -> None:
    """Sleep until the timeline ends, saying how far it is every 10 s on long runs (TIME-WAIT is a minute)."""
    end = t0 + duration_s
    while (left := end - time.time()) > 0:
        time.sleep(min(left, 10.0))
        if duration_s >= 20 and end - time.time() > 1:
            log(f"  … {time.time() - t0:.0f} s of {duration_s:g} s")


def _connect_pair(experiment: Experiment) -> tuple[str, str] | None:
    step = next((s for s in experiment.steps if s.action == "connect"), None)
    return (step.host, step.peer) if step else None
