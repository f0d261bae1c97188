"""Plan: the stage between loading and running. Everything a run (or a batch of runs) needs is
decided here, once, into frozen data: RunPlan for one run, BatchPlan for an invocation."""
from __future__ import annotations

from harness.plan.folders import run_id
from harness.plan.paths import hop_path, host_addresses, path_rtt_s, rule_placement
from harness.plan.run_plan import LOCAL, GuestSettings, RunPlan, StepPlacement, agent_plans, plan_run

__all__ = ["LOCAL", "GuestSettings", "RunPlan", "StepPlacement", "agent_plans", "hop_path",
           "host_addresses", "path_rtt_s", "plan_run", "rule_placement", "run_id"]
