"""Run one experiment on this machine's kernel, as planned: lab up -> record -> drive -> analyse -> judge.

The runner carries out a RunPlan (harness.plan) and never plans: folders, addresses, agents' steps,
where network steps act and the configured RTTs are all decided before it starts."""
from __future__ import annotations

import functools
import shutil
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from harness import profile
from harness.analyse.connection import kernel_pcap_path, observe
from harness.analyse.kernel_check import check_kernel_sends
from harness.analyse.figures import conn_refs, ref_of_host
from harness.analyse.injected import check_injection, read_icmp, read_log
from harness.analyse.network import NetworkCheck, check_step
from harness.analyse.segments import Segment, read_segments
from harness.lab.injector import LOG_NAME, Injection, Injector, InjectorPlan, router_link
from harness.lab.packet_rules import NetworkRules, PlacedStep
from harness.errors import RunFailed
from harness.judge import judge_all
from harness.lab.leftovers import Interrupted, Ledger, LocalLock, clean_stale
from harness.lab.lifecycle import HelperGroup
from harness.drive.agent_process import AgentProcess
from harness.record.sampler import StateSampler
from harness.record.tracer import KernelTracer
from harness.lab.network import Lab, mininet_lab, ping_rtt_s, warm_up
from harness.lab.sysctls import apply_sysctls
from harness.lab.preflight import check_local
from harness.load.facts import RunFacts, describe_facts, fact_names
from harness.load.experiment import with_facts
from harness.model import Experiment, Impairment, StepRecord
from harness.plan import RunPlan, StepPlacement
from harness.record.capture import Capture
from harness.record import counters as mib
from harness.record.kernel_sends import kernel_capture
from harness.runlog import finish_run_log, held_records, run_log, say
from harness.report import describe_network_step, verdict_table, write_result
from harness.report.evidence import (EvidenceIncomplete, full_disk_note, mark_incomplete, pcap_problem, publish,
                                      atomic_write, samples_problem, step_log_problem, sync_files)
from harness.report.timeline import DEAD_PING, terminal_copy, timeline
from harness.report.topology_draw import topology_dict
from harness.judge.schedule import judge_schedule, late_steps

SAMPLE_INTERVAL_S = 0.01
TRACED_LINGER_MARGIN_S = 0.05      # traced, the sampler's margin beyond a segment's crossing
# How far ahead t0 is set when the agents are told it. 0.3 s was not enough on a loaded host: in
# one VM cell of a CI run both agents began their first steps 764 ms after t0 (the connect before
# the listen: "steps started on time" failed, rightly). On the virtual clock idle time is skipped,
# so the margin costs a VM run nothing; locally it costs 0.7 s.
START_MARGIN_S = 1.0


@dataclass
class Recording:
    """What the lab phase leaves behind for analysis, once every helper is stopped."""
    sysctls: dict = field(default_factory=dict)
    qdiscs: dict = field(default_factory=dict)
    ping_rtt: float | None = None
    placed: list[PlacedStep] = field(default_factory=list)
    captures: list[Capture] = field(default_factory=list)
    capture_stats: list[dict] = field(default_factory=list)
    sampler: StateSampler | None = None
    tracer: KernelTracer | None = None
    agents: HelperGroup = field(default_factory=HelperGroup)
    rules: NetworkRules | None = None
    injector: Injector | None = None
    counted: dict = field(default_factory=dict)
    host_intf: dict[str, str] = field(default_factory=dict)
    egress: dict[str, tuple[str, Impairment]] = field(default_factory=dict)   # link interface -> (node, impairment)
    ports: dict[tuple[str, str], str] = field(default_factory=dict)            # (node, towards) -> interface
    t0: float = 0.0
    mib: list[dict] = field(default_factory=list)     # each host's MIB before t0, then after the timeline
    unsaved: list[str] = field(default_factory=list)  # evidence the runner itself could not write (a full disk)
    skipped_sysctls: list[str] = field(default_factory=list)   # optional ones this kernel lacks, one note each
    experiment: Experiment | None = None              # the plan's, expectations worked out with the lab's facts
    # each pcap parsed once per run, whoever asks first (the kernel send check, the observation,
    # the network steps' checks): dpkt on an emulated CPU is seconds for a busy capture
    read: Callable[[Path], list[Segment]] = field(default_factory=lambda: functools.cache(read_segments))


def run(plan: RunPlan) -> tuple[int, Path]:
    """Carry out `plan` on this kernel; return the exit code and the run's (final) folder."""
    profile.phase("preflight")
    with ExitStack() as lifecycle:
        # run.log opens with the folder, which a run failing its preflight must not leave behind:
        # what runs before (the preflight's probes, the clean-up, the guardian) is held for it.
        lifecycle.enter_context(held_records())
        check_local(plan.experiment)
        lock = LocalLock()            # one local lab at a time; released after the ledger's guardian is gone
        lifecycle.callback(lock.release)
        removed = clean_stale()
        if removed:
            say(f"removed interfaces left by a killed run: {', '.join(removed)}")
        # Inside a VM everything dies with the VM: no guardian needed.
        ledger = Ledger(guard=not plan.in_vm, keep_fds=(lock.fd,))
        lifecycle.callback(ledger.close)
        try:
            return _staged(plan, ledger)
        except KeyboardInterrupt as exc:
            what = ("interrupted; the lab was torn down and nothing of it is left." if ledger.built()
                    else "interrupted before the lab was built; nothing was left behind.")
            raise Interrupted(what) from exc


def _staged(plan: RunPlan, ledger: Ledger) -> tuple[int, Path]:
    # A VM's plan stages the run in guest memory: recorders then never wait on the host's 9p file
    # server during the timeline (under the virtual clock an I/O wait is idle time, which the
    # clock skips); the run folder is copied to the results folder at the end.
    plan.make_folders()
    try:
        with run_log(plan.work_dir):       # run.log: every command, in the folder that is published
            return _run(plan, ledger)      # a finished run publishes its own folder
    except EvidenceIncomplete:
        raise            # its folder already says what is missing
    except BaseException:
        if plan.staged:  # keep what there is for a look, never hiding why the run failed
            for problem in publish(plan.work_dir, plan.final_dir):
                say(f"not kept: {problem}")
        raise
    finally:
        if plan.staged:
            shutil.rmtree(plan.work_dir, ignore_errors=True)


def _run(plan: RunPlan, ledger: Ledger) -> tuple[int, Path]:
    rec = Recording()
    profile.phase("lab")
    # Every helper is entered in one ExitStack as it starts, so every way out (an error, a helper
    # that does not answer, Ctrl-C) stops them in reverse order: sampler, captures (flushed before
    # the agents close their sockets), agents, packet rules (their timer threads joined), then the lab.
    with mininet_lab(plan.experiment, ledger, plan.addresses) as lab, ExitStack() as helpers:
        _prepare(plan, lab, ledger, helpers, rec)
        _start_recorders(plan, lab, ledger, helpers, rec)
        _drive(plan, lab, ledger, rec)
        profile.phase("stop")
    rec.capture_stats = [c.summary() for c in rec.captures]
    return _conclude(plan, rec)


def _prepare(plan: RunPlan, lab: Lab, ledger: Ledger, helpers: ExitStack, rec: Recording) -> None:
    """Sysctls, ARP warmed up, the RTT pinged, network steps' rules placed on their ports."""
    profile.phase("prepare")
    rec.host_intf, rec.qdiscs = lab.host_interfaces, lab.qdiscs
    rec.sysctls, rec.skipped_sysctls = apply_sysctls(lab.net, plan.experiment)
    for note in rec.skipped_sysctls:
        say(note)
    facts = RunFacts(plan.kernel, rec.sysctls)
    rec.experiment = with_facts(plan.experiment, facts)      # expectations that read the kernel or sysctls
    if plan.experiment.expect_source:
        say(f"expectations worked out for {describe_facts(rec.experiment, facts)}")
    warm_up(lab.net)
    rec.ping_rtt = ping_rtt_s(lab.net, *plan.connect_pair) if plan.connect_pair else None
    rec.placed = [_placed(p, lab) for p in plan.network_steps]
    ruled = [p for p in rec.placed if p.step.action != "inject"]      # inject steps: the injector's
    if ruled:
        rec.rules = helpers.enter_context(NetworkRules(ruled, lab.node, plan.experiment.topology.routers, ledger))
    injections = [_injection(plan, p, lab) for p in plan.network_steps if p.step.action == "inject"]
    if injections:     # its sockets open (ready) before the agents start: no cost without inject steps
        rec.injector = helpers.enter_context(Injector(
            InjectorPlan(tuple(injections), conn_refs(plan.experiment, plan.addresses), str(plan.work_dir / LOG_NAME),
                         lab.node(plan.experiment.topology.hosts[0]).pid), ledger))
        rec.injector.wait_ready(plan.startup_timeout_s)


def _injection(plan: RunPlan, placement: StepPlacement, lab: Lab) -> Injection:
    """An inject step on the lab's ports: sent out of the port facing the receiver, with the MACs
    a forwarded frame has there; an after: event watched on the port facing its host."""
    step, switch = placement.step, placement.switch
    port = lab.port(switch, placement.egress_node)
    src_mac, dst_mac, netns_pid, ttl_drop = _frame_origin(plan, placement, lab, port)
    event = step.inject.after
    watched = ref_of_host(plan.experiment, event.host) if event else None
    watch_port = None if event is None else port if watched == step.receiver else lab.port(switch, placement.ingress_node)
    refs = conn_refs(plan.experiment, plan.addresses)
    return Injection(step, port, placement.src_ip, placement.dst_ip, src_mac, dst_mac, watch_port,
                     plan.addresses.get(watched), refs.get(event.host) if event else None,
                     netns_pid=netns_pid, ttl_drop=ttl_drop)


def _frame_origin(plan: RunPlan, placement: StepPlacement, lab: Lab, port: str) -> tuple[str, str, int | None, int]:
    """(source MAC, destination MAC, namespace pid, TTL drop) of an injected frame. At a router:
    its port's MAC and its next hop's (from its routes), in its namespace, one router crossed. At a
    switch: the sender's MAC and that of the sender's next hop on the path (the receiver, or the
    router that leaves the segment), in the root namespace, no router crossed."""
    topology, step = plan.experiment.topology, placement.step
    if placement.switch in topology.routers:
        router = lab.node(placement.switch)
        src_mac, dst_mac = router_link(router, port, placement.dst_ip)
        return src_mac, dst_mac, router.pid, 1
    path = topology.path(step.sender, step.receiver)
    hop = next(i for i in range(1, len(path)) if path[i] not in topology.switches)
    src_mac = lab.node(step.sender).intf(lab.port(step.sender, path[1])).MAC()
    dst_mac = lab.node(path[hop]).intf(lab.port(path[hop], path[hop - 1])).MAC()
    return src_mac, dst_mac, None, 0


def _placed(placement: StepPlacement, lab: Lab) -> PlacedStep:
    """A planned network step on the lab's real ports."""
    port = lab.port(placement.switch, placement.egress_node)
    return PlacedStep(placement.step, port, lab.interfaces[port][1], placement.src_ip, placement.dst_ip,
                      lab.port(placement.switch, placement.ingress_node), node=placement.switch)


def _start_recorders(plan: RunPlan, lab: Lab, ledger: Ledger, helpers: ExitStack, rec: Recording) -> None:
    """tcpdump on every link interface and on every host's kernel send mirror, then the state
    sampler; each ready before the next step."""
    profile.phase("recorders")
    rec.agents = helpers.enter_context(HelperGroup())     # started later, stopped after the recorders
    rec.egress, rec.ports = lab.interfaces, lab.ports
    for intf, (node, _) in lab.interfaces.items():
        rec.captures.append(helpers.enter_context(
            Capture(lab.node(node), intf, plan.work_dir / "pcap" / f"{intf}.pcap", ledger)))
    for h in plan.experiment.topology.hosts:    # pcap/<host>.kernel.pcap: sends before the link's delay
        intfs = [intf for intf, (node, _) in lab.interfaces.items() if node == h]
        rec.captures.append(helpers.enter_context(kernel_capture(lab.node(h), h, intfs, plan.work_dir, ledger)))
    for capture in rec.captures:
        capture.wait_ready(plan.startup_timeout_s)
    traced = False
    if plan.observer == "trace":
        rec.tracer = helpers.enter_context(KernelTracer(plan.work_dir / "trace", ledger))
        traced = rec.tracer.available
        if not traced:
            say(f"kernel tracepoints: none ({rec.tracer.problem}); states are sampled only")
    samples = {h: (lab.node(h).pid, str(plan.work_dir / "samples" / f"{h}.jsonl")) for h in plan.experiment.topology.hosts}
    # traced, the samples add only what a segment changes when it arrives: dense from the moment one
    # leaves until it can have arrived
    linger = plan.in_flight_s + TRACED_LINGER_MARGIN_S if traced else plan.sampler_linger_s
    rec.sampler = helpers.enter_context(StateSampler(samples, SAMPLE_INTERVAL_S, linger, ledger=ledger, traced=traced))
    rec.sampler.wait_ready(plan.startup_timeout_s)


def _drive(plan: RunPlan, lab: Lab, ledger: Ledger, rec: Recording) -> None:
    """Start an agent in every host, start the timeline, wait it out, collect the rules' counters."""
    profile.phase("agents")
    experiment = plan.experiment
    for h in experiment.topology.hosts:
        rec.agents.add(AgentProcess(h, lab.node(h).pid, plan.agents[h], experiment.duration_s,
                                    plan.work_dir / "steps" / f"{h}.jsonl", ledger=ledger))
    rec.agents.wait_ready(plan.startup_timeout_s)
    if rec.rules:
        rec.rules.wait_ready()         # the untimed rules: nft waits on the disk, so before t0
    pids = {h: lab.node(h).pid for h in experiment.topology.hosts}     # /proc/<pid>/net: the host's namespace
    rec.mib.append(mib.snapshot(pids))
    rec.t0 = time.time() + START_MARGIN_S     # nothing between here and the agents may touch the disk
    for agent in rec.agents:
        agent.go(rec.t0)
    if rec.rules:
        rec.rules.start(rec.t0)
    if rec.injector:
        rec.injector.go(rec.t0)
    say(f"running the timeline ({experiment.duration_s:g} s)")
    profile.phase("timeline", rec.t0)
    _wait_with_progress(rec.t0, experiment.duration_s)
    for agent in rec.agents:   # agents end their own steps at the deadline
        agent.wait_done(plan.startup_timeout_s)
    rec.mib.append(mib.snapshot(pids))
    unsaved = mib.save_raw(plan.work_dir, *rec.mib)
    rec.unsaved += [unsaved] if unsaved else []
    rec.counted = rec.rules.counters() if rec.rules else {}


def _conclude(plan: RunPlan, rec: Recording) -> tuple[int, Path]:
    """Analyse, judge, write the result, publish the folder, tell the user."""
    profile.phase("analyse")
    experiment, run_dir, final_dir = rec.experiment or plan.experiment, plan.work_dir, plan.final_dir
    say("analysing the captures")
    lost = [c for c in rec.capture_stats if c["dropped_by_kernel"]]
    if lost:
        raise RunFailed(f"tcpdump lost packets: {lost}; the capture cannot support a verdict.")
    pair = plan.connect_pair
    dead_ping = pair is not None and rec.ping_rtt is None
    base = {"experiment": experiment.name, "source": str(experiment.source), "kernel": plan.kernel,
            "target": plan.target, "switch": experiment.topology.switch_kind, "duration_s": experiment.duration_s,
            "run_dir": str(final_dir), "ping_rtt_s": rec.ping_rtt, "ping_answered": None if pair is None else not dead_ping,
            "sysctls": rec.sysctls, "qdiscs": rec.qdiscs, "captures": rec.capture_stats,
            "sysctls_skipped": rec.skipped_sysctls, "facts_read": fact_names(experiment),
            "lab": lab_section(experiment, plan, rec.ports, rec.host_intf), "claims": list(experiment.claims),
            "observer": {"asked": plan.observer, "tracepoints": rec.tracer.summary() if rec.tracer else None}}
    steps_log, obs = _observed(plan, rec, experiment, base)
    rtt = plan.configured_rtt_s(*(pair or (obs.client_host, obs.server_host)))
    result, verdicts, late, network = _judge(plan, rec, base, steps_log, obs, rtt)
    story = timeline(obs, dead_ping) + [f"late: {s.describe()}" for s in late]
    _write_and_publish(plan, base, result, story)
    ping_text = (f", ping RTT before the run {rec.ping_rtt * 1e3:.1f} ms" if rec.ping_rtt is not None
                 else f"; {DEAD_PING}" if dead_ping else "")
    say("\n" + "\n".join(terminal_copy(story, final_dir / "timeline.txt")))
    _tell_network(network, final_dir)
    if experiment.about:
        say("\n" + experiment.about)
    say(f"\n{experiment.name} on kernel {plan.kernel} (configured RTT {rtt * 1e3:g} ms{ping_text})\n"
        + verdict_table(verdicts))
    _tell_where(final_dir)
    return (0 if result["passed"] else 1), final_dir


def _observed(plan: RunPlan, rec: Recording, experiment: Experiment, base: dict):
    """The step logs and the observation, once the evidence is whole (every file read through, the
    kernel captures and trace sound, samples and trace agreeing); else the run ends incomplete."""
    run_dir, final_dir = plan.work_dir, plan.final_dir
    steps_log, problems = _evidence(run_dir, experiment, rec.captures, rec.sampler, rec.t0, rec.unsaved)
    problems = problems or _kernel_send_problems(plan, rec) + (rec.tracer.problems() if rec.tracer else [])
    if problems:
        raise _incomplete(final_dir, base, problems)
    obs = observe(run_dir, steps_log, rec.host_intf, plan.addresses, rec.read)
    if obs.disagreements:      # two observers of one kernel contradict each other: no verdict stands
        raise _incomplete(final_dir, base, ["the sampled socket states contradict the kernel's trace: "
                                            + d for d in obs.disagreements])
    return steps_log, obs


def lab_section(experiment: Experiment, plan: RunPlan, ports: dict[tuple[str, str], str],
                host_intf: dict[str, str]) -> dict:
    """result.json's `lab`: the network as built (see topology_dict), so a report drawn from the
    folder alone never re-reads a topology file that may have changed since."""
    return topology_dict(experiment.topology, plan.addresses, host_intf, ports, plan.network_steps)


def _judge(plan: RunPlan, rec: Recording, base: dict, steps_log, obs, rtt: float) -> tuple[dict, list, list, list[NetworkCheck]]:
    """The verdicts (expectations, steps on time), the network steps' checks, and result.json's content."""
    experiment = rec.experiment or plan.experiment
    counters = mib.counters_result(*rec.mib, rec.t0)
    verdicts = judge_all(experiment.expect, obs, rtt, counters, rec.t0)
    late = late_steps(experiment.steps, experiment.network, steps_log, rec.t0)
    schedule = judge_schedule(late)
    verdicts += [schedule] if schedule else []
    network = _network_checks(plan.work_dir, rec)
    result = dict(base, configured_rtt_s=rtt, steps=steps_log, observation=obs.to_json(), about=experiment.about,
                  network=network, network_qdiscs=rec.rules.qdiscs if rec.rules else {}, late_steps=[s.to_json() for s in late],
                  counters=counters, expectations=verdicts, passed=all(v.passed for v in verdicts), complete=True)
    return result, verdicts, late, network


def _network_checks(run_dir: Path, rec: Recording) -> list[NetworkCheck]:
    """Each network step checked against the pcaps of the ports it sits between."""
    def port_segments(intf: str) -> list[Segment]:
        return rec.read(run_dir / "pcap" / f"{intf}.pcap")
    switched_on = rec.rules.switched_on if rec.rules else {}
    checks = [check_step(p.step, rec.counted.get(p.step.index, 0), port_segments(p.ingress), port_segments(p.port),
                         p.src_ip, p.dst_ip, p.impairment.delay_s, switched_on.get(p.step.index))
              for p in rec.placed if p.step.action != "inject"]
    injected = [p for p in rec.placed if p.step.action == "inject"]
    if injected:
        log = read_log(run_dir / LOG_NAME)
        if rec.injector and rec.injector.returncode not in (0, None):
            log = f"the injector failed ({rec.injector.summary()['last_error'] or f'status {rec.injector.returncode}'})"
        checks += [check_injection(p.step, log, port_segments(p.port), read_icmp(run_dir / "pcap" / f"{p.port}.pcap"),
                                   p.impairment.delay_s) for p in injected]
    return sorted(checks, key=lambda c: c.line)


def _write_and_publish(plan: RunPlan, base: dict, result: dict, story: list[str]) -> None:
    """The evidence is in place and flushed; the timeline, then the verdict, last; then the
    staged folder is published to its final place."""
    profile.phase("write")
    try:
        atomic_write(plan.work_dir / "timeline.txt", "\n".join(story) + "\n")
        write_result(plan.work_dir, result)
    except OSError as exc:
        raise _incomplete(plan.final_dir, base, [f"timeline.txt or result.json could not be written: {exc.strerror or exc}"]) from None
    if not plan.in_vm:       # in a VM the host draws it, natively (harness.targets.vm.report_on_host)
        _draw_report(plan.work_dir)
    if plan.staged:
        finish_run_log(plan.work_dir)      # run.log whole and closed before the folder is copied out
        problems = publish(plan.work_dir, plan.final_dir)
        if problems:
            raise _incomplete(plan.final_dir, base, problems)


def _tell_where(final_dir: Path) -> None:
    """The run's folder, and the page that shows it (when it could be drawn)."""
    report = final_dir / "report.html"
    say(f"\nresults: {final_dir}" + (f"\nreport:  {report}" if report.exists() else ""))


def _draw_report(run_dir: Path) -> None:
    """report.html (harness.report.page.draw_report); a failure to draw is said, not raised."""
    from harness.report.page import draw_report
    problem = draw_report(run_dir)
    if problem:
        say(problem)


def _tell_network(network: list[NetworkCheck], final_dir: Path) -> None:
    """Say what each network step did; a step that did not act as written voids the run."""
    for report in network:
        say(describe_network_step(report))
    problems = [line for check in network for line in check.problem_lines()]
    if problems:
        raise RunFailed("a network step did not act exactly as written, so the run proves nothing:\n  "
                        + "\n  ".join(problems) + f"\n(artifacts kept in {final_dir})")


def _evidence(run_dir: Path, experiment: Experiment, captures: list[Capture], sampler: StateSampler,
              t0: float, unsaved: list[str]) -> tuple[dict[str, list[StepRecord]], list[str]]:
    """Each host's step log, and everything that keeps the run's evidence from being whole: a
    recorder that failed, a pcap cut inside a record, samples that stop early, a step log short of
    the steps its agent ran, a file the disk would not flush."""
    problems = unsaved + sync_files(run_dir)      # unsaved: what the runner itself could not write
    for c in captures:
        if c.proc.returncode not in (0, None):
            problems.append(f"tcpdump on {c.intf} ended with status {c.proc.returncode}")
        if problem := pcap_problem(c.out):
            problems.append(f"pcap/{problem}")
    if sampler.returncode != 0:
        said = sampler.summary()["last_error"]
        problems.append(f"the state sampler failed ({said or f'status {sampler.returncode}'})")
    # the sampler sleeps at most 0.5 s between samples and is stopped after the timeline ends
    until = t0 + experiment.duration_s - 1.0
    problems += [p for h in experiment.topology.hosts if (p := samples_problem(run_dir / "samples" / f"{h}.jsonl", until))]
    steps_log = {}
    for h in experiment.topology.hosts:
        planned = Counter(step.socket for step in experiment.steps if step.host == h)   # per lane
        steps_log[h], problem = step_log_problem(run_dir / "steps" / f"{h}.jsonl", planned)
        problems += [problem] if problem else []
    if problems:
        problems[-1] += full_disk_note(run_dir)
    return steps_log, problems


def _kernel_send_problems(plan: RunPlan, rec: Recording) -> list[str]:
    """Each host's kernel send capture against its interfaces' captures (analyse.kernel_check):
    a kernel capture that misses or misplaces a send would move every "sends" verdict."""
    pcaps = plan.work_dir / "pcap"
    problems = []
    for h in plan.experiment.topology.hosts:
        kernel = rec.read(kernel_pcap_path(plan.work_dir, h))
        problems += [p for intf, (node, egress) in rec.egress.items() if node == h
                     for p in check_kernel_sends(h, plan.addresses[h], rec.read(pcaps / f"{intf}.pcap"),
                                                 kernel, egress)]
    return problems


def _incomplete(folder: Path, base: dict, problems: list[str]) -> EvidenceIncomplete:
    """The error for a run whose evidence is not whole, after marking its folder so (if it can)."""
    return EvidenceIncomplete(problems, folder, mark_incomplete(folder, base, problems))


def _wait_with_progress(t0: float, duration_s: float) -> None:
    """Sleep until the timeline ends, saying how far it is every 10 s on long runs (TIME-WAIT is a minute)."""
    end = t0 + duration_s
    while (left := end - time.time()) > 0:
        time.sleep(min(left, 10.0))
        if duration_s >= 20 and end - time.time() > 1:
            say(f"  … {time.time() - t0:.0f} s of {duration_s:g} s")
