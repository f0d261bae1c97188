"""Hostile and broken input is refused at load, with file:line, before anything is made: names
that would become paths or kernel objects, YAML bombs, bad encodings, huge matrices, ${} bombs,
topology references outside the tree. And the CLI's exit codes keep their meaning."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from harness.cli import BUG, main
from harness.errors import UserError
from harness.load import load_cells
from harness.load.expressions import evaluate
from harness.load.names import safe_component, sysctl_name

TOPO = "name: t\nhosts: [client, server]\nswitches: [s1]\nlinks:\n  - {a: client, b: s1, delay: 25ms}\n  - {a: server, b: s1, delay: 25ms}\n"
GOOD = """name: e
topology: t.yaml
duration: 3s
steps:
  - {at: 0s, on: server, listen: 5001}
  - {at: 0.5s, on: client, connect: server:5001}
expect:
  client: {states: [SYN-SENT, ESTAB]}
"""


def write(tmp_path: Path, text: str | bytes, topo: str = TOPO) -> Path:
    (tmp_path / "t.yaml").write_text(topo)
    path = tmp_path / "e.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def refused(path: Path, **kwargs) -> UserError:
    with pytest.raises(UserError) as info:
        load_cells(path, **kwargs)
    assert info.value.line, f"no line in: {info.value}"
    return info.value


@pytest.mark.parametrize("name", ["../../escape", "/abs/path", "a/b", "'.'", "'..'", "''", '"a\\nb"', '"a\\0b"',
                                  "x" * 65, "x" * 300, "-rf", ".hidden", "[1]", "{a: 1}", "5", "a b"])
def test_experiment_name_that_is_not_one_folder_is_refused(tmp_path, name):
    error = refused(write(tmp_path, GOOD.replace("name: e", f"name: {name}")))
    assert error.line == 1 and "folder name" in error.message


@pytest.mark.parametrize("name", ["../../../../proc/sysrq-trigger", "net/ipv4/tcp_syn_retries", "net..ipv4", ".net.ipv4",
                                  "NET.IPV4.X", "a", "'net.ipv4.x y'", "-w", "'net.ipv4.x/../../y'"])
def test_sysctl_name_that_is_not_dotted_words_is_refused(tmp_path, name):
    error = refused(write(tmp_path, GOOD.replace("duration: 3s", f"duration: 3s\nsysctls:\n  client: {{{name}: 1}}")))
    assert error.line == 5 and "not a sysctl name" in error.message


@pytest.mark.parametrize("sysctls, words", [("{client: 5}", "wrong form"), ("{client: [1]}", "wrong form"),
                                            ("{client: {net.ipv4.tcp_syn_retries: [1, 2]}}", "not a sysctl value"),
                                            ("{client: {net.ipv4.tcp_syn_retries: {a: 1}}}", "not a sysctl value"),
                                            ("{client: {net.ipv4.tcp_syn_retries: true}}", "not a sysctl value"),
                                            ('{client: {net.ipv4.tcp_syn_retries: "1\\n2"}}', "not a sysctl value")])
def test_sysctl_values_that_are_not_one_value_are_load_errors(tmp_path, sysctls, words):
    error = refused(write(tmp_path, GOOD.replace("duration: 3s", f"duration: 3s\nsysctls: {sysctls}")))
    assert words in error.message and error.line == 4


def test_name_helpers_accept_the_shipped_forms():
    assert safe_component("stale_syn_time_wait", "name", "f", 1) == "stale_syn_time_wait"
    assert sysctl_name("net.ipv4.conf.client-eth0.rp_filter", "f", 1)


def _bomb() -> str:
    parts = ["&a0 [" + ",".join(['"lol"'] * 9) + "]"] + [f"&a{k} [" + ",".join([f"*a{k - 1}"] * 9) + "]" for k in range(1, 9)]
    return "[" + ",".join(parts) + "]"


@pytest.mark.parametrize("key", ["name", "topology", "about"])
def test_alias_bomb_is_refused_with_its_line(tmp_path, key):
    text = GOOD.replace("duration: 3s", f"duration: 3s\n{key}: {_bomb()}") if key == "about" else \
        GOOD.replace(f"{key}: ", f"{key}: {_bomb()} #")
    assert len(_bomb()) < 1100
    error = refused(write(tmp_path, text))
    assert "alias" in error.message


def test_recursive_alias_is_refused(tmp_path):
    assert "own anchor" in refused(write(tmp_path, GOOD.replace("name: e", "name: &r [*r]"))).message


@pytest.mark.parametrize("opening, closing", [("[", "]"), ("{a: ", "}")])
def test_deep_nesting_is_refused_with_its_line(tmp_path, opening, closing):
    text = GOOD.replace("duration: 3s", "duration: 3s\nabout: " + opening * 100_000 + "1" * (opening != "[") + closing * 100_000)
    error = refused(write(tmp_path, text))
    assert error.line == 4 and "nest" in error.message


@pytest.mark.parametrize("raw, line, words", [
    (GOOD.encode().replace(b"duration: 3s", b"duration: 3s # caf\xe9"), 3, "not UTF-8"),
    (GOOD.encode().replace(b"steps:", b"steps: # \xff"), 4, "not UTF-8"),
    (GOOD.encode().replace(b"name: e", b"name: e\0"), 1, "NUL"),
    (GOOD.encode().replace(b"steps:", b"steps: # \0"), 4, "NUL"),
    (GOOD.encode().replace(b"steps:", b"steps: # \x1b[2J"), 4, "control character"),
])
def test_encoding_errors_name_the_line(tmp_path, raw, line, words):
    error = refused(write(tmp_path, raw))
    assert error.line == line and words in error.message


@pytest.mark.parametrize("key", ["? [1, 2]\n: x", "? {a: 1}\n: x"])
def test_unhashable_key_is_a_load_error(tmp_path, key):
    assert "plain word" in refused(write(tmp_path, GOOD + key + "\n")).message


def test_topology_outside_the_tree_is_refused_without_quoting_it(tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "secret.yaml").write_text("root:*:20228:0:99999:7:::\n")
    exp_dir = tmp_path / "exp"
    exp_dir.mkdir()
    (exp_dir / "link.yaml").symlink_to(outside / "secret.yaml")
    for ref in ["/etc/shadow", "../elsewhere/secret.yaml", "link.yaml", "link", "/dev/zero", "t.txt", "../../../etc/passwd"]:
        path = write(exp_dir, GOOD.replace("topology: t.yaml", f"topology: {ref}"))
        error = refused(path)
        assert error.line == 2 and "root:" not in str(error) and str(path) in str(error)


def test_topology_next_to_the_experiment_and_by_name_still_load(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "mine.yaml").write_text(TOPO)
    assert load_cells(write(tmp_path, GOOD.replace("topology: t.yaml", "topology: sub/mine.yaml")))
    assert load_cells(write(tmp_path, GOOD.replace("topology: t.yaml", "topology: two_hosts")))


MATRIX = "matrix: {client: {net.ipv4.tcp_syn_retries: [1, 2]}}\n"


@pytest.mark.parametrize("matrix, cells", [("{repeat: 1000000000000}", "1,000,000,000,000"),
                                           ("{client: {net.ipv4.a: [" + ",".join(map(str, range(100))) + "]}, repeat: 20}",
                                            "2,000")])
def test_matrix_is_counted_before_it_is_expanded(tmp_path, matrix, cells):
    error = refused(write(tmp_path, f"matrix: {matrix}\n" + GOOD))
    assert error.line == 1 and cells in error.message and "--max-cells" in error.fix


def test_max_cells_raises_the_limit(tmp_path):
    path = write(tmp_path, "matrix: {repeat: 5}\n" + GOOD)
    refused(path, max_cells=4)
    assert len(load_cells(path, max_cells=5)) == 5


def test_duplicate_matrix_values_would_share_a_folder(tmp_path):
    assert "twice" in refused(write(tmp_path, "matrix: {client: {net.ipv4.tcp_syn_retries: [1, 1]}}\n" + GOOD)).message


@pytest.mark.parametrize("expression", ["9**9**9", "10**10**10", "10**400", "2**10000", "(-8)**0.5", "1/0", "0**-1",
                                        "1e400", "10**18*10**18", "2.0**5000", "(" * 300 + "1" + ")" * 300, "1j",
                                        "__import__(os).system(id)", "x" * 300])
def test_arithmetic_bombs_are_load_errors_with_a_line(tmp_path, expression):
    text = MATRIX + GOOD.replace("duration: 3s", f"duration: '${{{expression}}}s'")
    error = refused(write(tmp_path, text))
    assert error.line == 4 and "cannot work out" in error.message


def test_bounded_arithmetic_still_works():
    assert evaluate("2**(tcp_syn_retries+1)-1+0.6", {"tcp_syn_retries": 3}) == pytest.approx(15.6)
    assert evaluate("-2**3", {}) == -8 and evaluate("(-8)**(1/1)", {}) == -8


class NothingMade:
    """Records (and refuses) every process, fork and folder the CLI would make."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[str] = []

        def refuse(what):
            def call(*args, **kwargs):
                self.calls.append(f"{what} {args!r:.200}")
                raise AssertionError(f"{what} during a run that should have been refused at load")
            return call
        monkeypatch.setattr(subprocess, "Popen", refuse("subprocess"))
        monkeypatch.setattr(os, "fork", refuse("fork"))
        monkeypatch.setattr(os, "mkdir", refuse("mkdir"))
        monkeypatch.setattr(os, "makedirs", refuse("makedirs"))


@pytest.mark.parametrize("change", [
    ("name: e", "name: ../../escape"), ("name: e", "name: /abs/path"), ("name: e", "name: '..'"),
    ("duration: 3s", "duration: 3s\nsysctls: {client: {../../../../proc/sysrq-trigger: 1}}"),
    ("duration: 3s", "duration: 3s\nsysctls: {all: {'net.ipv4.x/../../../y': 1}}"),
])
def test_dangerous_names_never_reach_the_kernel_or_the_filesystem(tmp_path, monkeypatch, capsys, change):
    path = write(tmp_path, GOOD.replace(*change))
    monkeypatch.chdir(tmp_path)
    with pytest.MonkeyPatch.context() as patches:
        made = NothingMade(patches)
        code = main(["--target", "local", "--results-dir", str(tmp_path / "results"), str(path)])
    assert code == 2 and made.calls == [], capsys.readouterr().err
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("node", ["eth0", "lo", "docker0"] + sorted(os.listdir("/sys/class/net"))[:5])
def test_dangerous_node_names_never_reach_the_kernel(tmp_path, monkeypatch, capsys, node):
    topo = TOPO.replace("switches: [s1]", f"switches: [s1, {node}]") + f"  - {{a: {node}, b: s1}}\n"
    path = write(tmp_path, GOOD, topo)
    with pytest.MonkeyPatch.context() as patches:
        made = NothingMade(patches)
        code = main(["--target", "local", "--results-dir", str(tmp_path / "results"), str(path)])
    err = capsys.readouterr().err
    assert code == 2 and made.calls == [] and "t.yaml:" in err, err


def test_an_unexpected_exception_is_a_bug_exit_not_1(tmp_path, monkeypatch, capsys):
    path = write(tmp_path, GOOD)
    (tmp_path / "results").mkdir()

    def broken(*args, **kwargs):
        raise RuntimeError("something nobody anticipated")
    monkeypatch.setattr("harness.load.load_cells", broken)
    code = main(["--target", "local", "--results-dir", str(tmp_path / "results"), str(path)])
    err = capsys.readouterr().err.strip()
    assert code == BUG != 1
    assert len(err.splitlines()) == 1 and "bug" in err and "Traceback" not in err
    saved = Path(err.split("the traceback is in ")[1].split(" (")[0])
    assert saved.parent == tmp_path / "results" and "something nobody anticipated" in saved.read_text()


def test_kernel_with_local_target_is_refused(tmp_path, capsys):
    assert main(["--target", "local", "--kernel", "/boot/x", "--check", str(write(tmp_path, GOOD))]) == 2
    assert "--kernel" in capsys.readouterr().err


def test_folder_run_skips_topologies_next_to_experiments(tmp_path, capsys, monkeypatch):
    write(tmp_path, GOOD)                 # e.yaml and its topology t.yaml side by side
    monkeypatch.setattr("harness.lab.preflight.check_tools", lambda experiment: None)
    code = main(["--check", "--target", "local", str(tmp_path)])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "e.yaml: ok" in out.out and "t.yaml" not in out.out


def test_check_loads_every_cell_and_makes_nothing(tmp_path, capsys, monkeypatch):
    path = write(tmp_path, "matrix: {client: {net.ipv4.tcp_syn_retries: [1, 2, 3]}}\n" + GOOD)
    monkeypatch.setattr("harness.lab.preflight.check_tools", lambda experiment: None)
    monkeypatch.chdir(tmp_path)
    with pytest.MonkeyPatch.context() as patches:
        made = NothingMade(patches)
        code = main(["--check", "--target", "local", str(path)])
    assert code == 0 and "3 cells" in capsys.readouterr().out and made.calls == []
    assert not (tmp_path / "results").exists()


def test_compare_runs_bug_is_exit_70_with_one_line(tmp_path, monkeypatch, capsys):
    from harness.cli import compare_runs
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "result.json").write_text("{not json")
    code = compare_runs([str(tmp_path / "r"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code in (2, BUG) and "Traceback" not in err, err
    if code == BUG:
        assert len(err.splitlines()) == 1 and "compare-runs: a bug" in err
