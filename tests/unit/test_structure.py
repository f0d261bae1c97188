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


# Which stages a stage may import: loading knows nothing of what comes after it, and the pure
# stages (analysis, judging, reporting) never reach into the lab, the recorders or the targets.
FORBIDDEN = {
    "load": {"plan", "targets", "lab", "record", "drive", "analyse", "judge", "report", "runner", "cli"},
    "plan": {"targets", "lab", "record", "drive", "analyse", "judge", "report", "runner", "cli"},
    "analyse": {"plan", "targets", "lab", "record", "drive", "runner", "cli"},
    "judge": {"plan", "targets", "lab", "record", "drive", "load", "runner", "cli"},
    "report": {"plan", "targets", "lab", "record", "drive", "runner", "cli"},
}


def _stage(module: str) -> str:
    """harness.X.Y -> X; the pre-flight probes count apart from the lab: planning may ask what this
    machine has (which kernel features, which tools) without building anything."""
    return "preflight" if module.startswith("harness.lab.preflight") else module.split(".")[1]


def _stages_imported(path: Path) -> set[str]:
    stages = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("harness."):
            stages.add(_stage(node.module))
        elif isinstance(node, ast.Import):
            stages |= {_stage(a.name) for a in node.names if a.name.startswith("harness.")}
    return stages


def test_each_stage_imports_only_what_comes_before_it_or_is_pure():
    wrong = {f"{path.relative_to(HARNESS)} imports {sorted(_stages_imported(path) & banned)}"
             for stage, banned in FORBIDDEN.items() for path in (HARNESS / stage).rglob("*.py")
             if _stages_imported(path) & banned}
    assert not wrong, sorted(wrong)


def test_the_stage_check_sees_a_wrong_import(tmp_path):
    bad = tmp_path / "m.py"
    bad.write_text("from harness.plan import run_id\nimport harness.lab.network\n")
    assert _stages_imported(bad) == {"plan", "lab"}


def _log_parameters(source: str) -> list[str]:
    """Functions that take a `log` callable to print with (harness.runlog.say and logging do that)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
            found += [node.name for a in args if a.arg == "log"]
    return found


def test_no_log_callable_is_passed_around():
    # run_batch keeps an optional `log` (default runlog.say): its unit tests collect the lines
    allowed = {("targets/batch.py", "run_batch")}
    found = [(str(p.relative_to(HARNESS)), name) for p in HARNESS.rglob("*.py") for name in _log_parameters(p.read_text())]
    assert [f for f in found if f not in allowed] == []
    assert _log_parameters("def f(a, log):\n    log(a)\n") == ["f"]


def test_test_module_basenames_are_unique_across_unit_and_integration():
    """pytest imports test modules by basename (rootdir-relative, no packages): two test_x.py
    stop the whole suite at collection (it happened: tests/{unit,integration}/test_inject.py)."""
    tests = Path(__file__).resolve().parents[1]
    names = [p.name for folder in ("unit", "integration") for p in (tests / folder).glob("test_*.py")]
    assert sorted(n for n in set(names) if names.count(n) > 1) == []
