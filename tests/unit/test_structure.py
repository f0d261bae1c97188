"""The shape the code keeps: the command line and the runner stay simple enough to read (no
function above cyclomatic complexity 15), and the pipeline runs one way (the runner carries out
a plan and never calls back into planning)."""
from __future__ import annotations

import ast
from pathlib import Path

from radon.complexity import cc_visit

HARNESS = Path(__file__).resolve().parents[2] / "harness"
LIMIT = 15
PLAN_TYPES = {"RunPlan", "StepPlacement", "GuestSettings"}


def _too_complex(source: str) -> list[str]:
    return [f"{b.name} ({b.complexity})" for b in cc_visit(source) if b.complexity > LIMIT]


def test_no_function_in_the_cli_or_the_runner_is_above_the_limit():
    for name in ("cli.py", "runner.py"):
        assert _too_complex((HARNESS / name).read_text()) == [], name


def test_the_complexity_check_catches_a_complex_function():
    branches = "\n".join(f"    if x == {n}:\n        return {n}" for n in range(LIMIT + 1))
    assert _too_complex(f"def f(x):\n{branches}\n    return -1\n") == [f"f ({LIMIT + 2})"]


def _planning_imports(source: str) -> list[str]:
    """Names the module imports from harness.plan (any module of it) other than the plan's types."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("harness.plan"):
            found += [a.name for a in node.names if a.name not in PLAN_TYPES]
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("harness.plan")]
    return found


def test_the_runner_takes_a_plan_and_never_plans():
    assert _planning_imports((HARNESS / "runner.py").read_text()) == []
    assert _planning_imports("from harness.plan import RunPlan, path_rtt_s\nimport harness.plan.paths\n") == [
        "path_rtt_s", "harness.plan.paths"]


def test_no_environment_variable_is_a_hidden_setting():
    for name in ("runner.py", "cli.py", "record/capture.py", "targets/vm.py"):
        assert "TCP_TESTBED_" not in (HARNESS / name).read_text(), name
