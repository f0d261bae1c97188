"""Every case of the fuzz corpus (tests/fuzz/make_corpus.py, 400+ bad experiments and topologies)
goes through `run-experiment --check` in this process: exit 2, a message naming file:line, no
traceback, quick, and nothing created (no process started, no folder made, no file written)."""
from __future__ import annotations

import importlib.util
import re
import sys
import time
from pathlib import Path

import pytest

from harness.cli import main

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("make_corpus", REPO / "tests" / "fuzz" / "make_corpus.py")
make_corpus = importlib.util.module_from_spec(_spec)
sys.modules["make_corpus"] = make_corpus          # its dataclass looks itself up there
_spec.loader.exec_module(make_corpus)
CASES = make_corpus.corpus()

# Cases refused only once the typed-values and topology-sanity work (H2) lands; each is checked
# strictly (an xfail that passes fails the suite), so this list can only shrink.
H2_PENDING: set[str] = set()

MAX_CPU_S = 2.0


class Recorder:
    """Fails the case if anything would be created: a process, a folder or a file opened to write."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import builtins
        import io
        import os
        import subprocess
        self.calls: list[str] = []
        real_open, real_os_open, real_mkdir = builtins.open, os.open, os.mkdir

        def popen(*args, **kwargs):
            self.calls.append(f"subprocess {args[:1]}")
            raise AssertionError("a process was started during --check")

        def mkdir(path, *args, **kwargs):
            self.calls.append(f"mkdir {path}")
            return real_mkdir(path, *args, **kwargs)

        def opener(file, mode="r", *args, **kwargs):
            if any(c in mode for c in "wax+"):
                self.calls.append(f"open {file} {mode}")
            return real_open(file, mode, *args, **kwargs)

        def os_open(path, flags, *args, **kwargs):
            if flags & (os.O_CREAT | os.O_WRONLY | os.O_RDWR):
                self.calls.append(f"os.open {path}")
            return real_os_open(path, flags, *args, **kwargs)

        monkeypatch.setattr(subprocess, "Popen", popen)
        monkeypatch.setattr(os, "mkdir", mkdir)
        monkeypatch.setattr(os, "fork", lambda: self.calls.append("fork") or (_ for _ in ()).throw(AssertionError("fork")))
        monkeypatch.setattr(builtins, "open", opener)
        monkeypatch.setattr(io, "open", opener)
        monkeypatch.setattr(os, "open", os_open)


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("corpus")
    make_corpus.write(out)
    return out


def test_corpus_is_large_and_covers_the_bombs():
    names = {c.name.split("-", 1)[1] for c in CASES}
    assert len(CASES) >= 400
    for needed in ("aliasBomb-name", "aliasBomb-topology", "deepList100000", "nonUtf8-0", "control-0", "matrix0",
                   "expr0", "expr1", "name0", "sysctls7", "nodeSwitch0", "tooLarge"):
        assert needed in names


def _run_check(case_dir: Path, tmp_path: Path, capsys, monkeypatch) -> tuple[int, str, float, list[str]]:
    results = tmp_path / "results"
    monkeypatch.chdir(tmp_path)
    with pytest.MonkeyPatch.context() as patches:
        recorder = Recorder(patches)
        began = time.process_time()
        code = main(["--check", "--target", "local", "--results-dir", str(results), str(case_dir / "e.yaml")])
        cpu = time.process_time() - began
    out, err = capsys.readouterr()
    assert not results.exists(), "--check made the results folder"
    return code, out + err, cpu, recorder.calls


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name, marks=[pytest.mark.xfail(reason="H2", strict=True)]
                                               if c.name.split("-", 1)[1] in H2_PENDING else [])
                                  for c in CASES])
def test_bad_file_exits_2_with_file_and_line(case, corpus_dir, tmp_path, capsys, monkeypatch):
    folder = corpus_dir / case.name
    code, text, cpu, calls = _run_check(folder, tmp_path, capsys, monkeypatch)
    assert "Traceback" not in text and "a bug in the test bed" not in text, f"{case.about}\n{text}"
    assert code == 2, f"{case.about}: exit {code}\n{text}"
    assert re.search(re.escape(str(folder)) + r"/[et]\.yaml:\d+: ", text), f"{case.about}: no file:line\n{text}"
    assert "root:" not in text, "a file outside the experiment's tree was quoted"
    assert cpu < MAX_CPU_S, f"{case.about}: {cpu:.2f} s of CPU"
    assert calls == [], f"{case.about}: --check created something: {calls}"


def test_good_base_passes_check(tmp_path, capsys, monkeypatch):
    """The corpus's base files are good: each case's refusal comes from its one change."""
    (tmp_path / "e.yaml").write_text(make_corpus.GOOD_EXPERIMENT)
    (tmp_path / "t.yaml").write_text(make_corpus.GOOD_TOPOLOGY)
    monkeypatch.setattr("harness.lab.preflight.check_tools", lambda experiment: None)   # tools: not this test's subject
    code, text, _, calls = _run_check(tmp_path, tmp_path, capsys, monkeypatch)
    assert code == 0, text
    assert calls == []
    (tmp_path / "e.yaml").write_text(make_corpus.MATRIX + make_corpus.GOOD_EXPERIMENT)
    code, text, _, _ = _run_check(tmp_path, tmp_path, capsys, monkeypatch)
    assert code == 0 and "2 cells" in text, text
