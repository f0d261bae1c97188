"""Evidence is written whole or not at all, checked before a verdict, and the verdict comes last.

The full disk is faked (ENOSPC from the writer) and, as root, real: a tiny tmpfs."""
import errno
import json
import os
from pathlib import Path

import pytest

from harness import cli
from harness.errors import UserError
from harness.report import evidence
from harness.report.evidence import (atomic_write, check_writable, mark_incomplete, pcap_problem, publish,
                                     samples_problem, step_log_problem)

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "handshake_vm"
REPO = Path(__file__).resolve().parents[2]
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


def disk_full_after(limit: int):
    """A writer that accepts `limit` bytes in all, then fails as a full disk does."""
    left = [limit]

    def write_all(fd, data):
        if len(data) > left[0]:
            os.write(fd, bytes(data[:left[0]]))
            left[0] = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        left[0] -= len(data)
        os.write(fd, bytes(data))
    return write_all


@pytest.fixture
def tiny_tmpfs(tmpfs):
    return tmpfs("64k")


def staged_run(tmp_path: Path, pcap_bytes: int = 200_000) -> Path:
    stage = tmp_path / "stage"
    for sub in ("pcap", "samples", "steps"):
        (stage / sub).mkdir(parents=True)
    (stage / "pcap" / "client-eth0.pcap").write_bytes((FIX / "pcap" / "client-eth0.pcap").read_bytes()
                                                      + b"\0" * pcap_bytes)
    (stage / "samples" / "client.jsonl").write_text('{"t": 1.0, "s": []}\n')
    (stage / "steps" / "client.jsonl").write_text('{"action": "listen", "result": "ok"}\n')
    (stage / "timeline.txt").write_text("what happened\n")
    (stage / "result.json").write_text(json.dumps({"passed": True, "complete": True}))
    return stage


def no_partials(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.endswith(".partial")]


def test_a_write_the_disk_refuses_leaves_no_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    target = tmp_path / "result.json"
    monkeypatch.setattr(evidence, "_write_all", disk_full_after(10))
    with pytest.raises(OSError):
        atomic_write(target, "x" * 100)
    assert not target.exists() and no_partials(tmp_path)
    monkeypatch.undo()
    atomic_write(target, "old verdict")
    monkeypatch.setattr(evidence, "_write_all", disk_full_after(3))
    with pytest.raises(OSError):
        atomic_write(target, "new verdict, longer")
    assert target.read_text() == "old verdict" and no_partials(tmp_path)


def test_publishing_onto_a_full_disk_copies_whole_files_or_none_and_never_the_verdict(tmp_path, monkeypatch):
    stage, final = staged_run(tmp_path), tmp_path / "final"
    monkeypatch.setattr(evidence, "_write_all", disk_full_after(1000))
    problems = publish(stage, final)
    assert problems and any("No space left" in p for p in problems)
    assert not (final / "result.json").exists(), "the verdict must not be published beside missing evidence"
    assert not (final / "pcap" / "client-eth0.pcap").exists()       # cut short: not there at all
    for path in final.rglob("*"):
        if path.is_file():
            assert path.read_bytes() == (stage / path.relative_to(final)).read_bytes()
    assert no_partials(final)


def test_publishing_copies_the_verdict_last(tmp_path, monkeypatch):
    stage, final = staged_run(tmp_path, pcap_bytes=0), tmp_path / "final"
    order = []
    real = evidence._write_chunks
    monkeypatch.setattr(evidence, "_write_chunks", lambda path, chunks: order.append(path.name) or real(path, chunks))
    assert publish(stage, final) == []
    assert order[-1] == "result.json" and len(order) == 5
    assert json.loads((final / "result.json").read_text())["complete"] is True


@root_only
def test_publishing_onto_a_real_full_tmpfs(tmp_path, tiny_tmpfs):
    stage = staged_run(tmp_path)          # a 200 KB pcap for a 64 KB file system
    problems = publish(stage, tiny_tmpfs / "run")
    assert any("client-eth0.pcap" in p and "No space left" in p for p in problems)
    assert not (tiny_tmpfs / "run" / "result.json").exists() and no_partials(tiny_tmpfs)
    assert mark_incomplete(tiny_tmpfs / "run", {"experiment": "x"}, problems)
    marked = json.loads((tiny_tmpfs / "run" / "result.json").read_text())
    assert marked["complete"] is False and marked["passed"] is False and marked["problems"] == problems


def test_a_pcap_cut_short_is_found(tmp_path):
    whole = (FIX / "pcap" / "client-eth0.pcap").read_bytes()
    assert pcap_problem(FIX / "pcap" / "client-eth0.pcap") is None
    (tmp_path / "cut.pcap").write_bytes(whole[:-7])
    (tmp_path / "empty.pcap").write_bytes(b"")
    assert "cut short inside a record" in pcap_problem(tmp_path / "cut.pcap")
    assert "empty" in pcap_problem(tmp_path / "empty.pcap")
    assert "No such file" in pcap_problem(tmp_path / "missing.pcap")


def test_samples_that_stop_early_or_are_cut_are_found(tmp_path):
    path = tmp_path / "client.jsonl"
    path.write_text("")
    assert "empty" in samples_problem(path, None)
    path.write_text('{"t": 1.0, "s": []}\n{"t": 2.0, "s": [[')
    assert "cut" in samples_problem(path, None)
    path.write_text('{"t": 1.0, "s": []}\n{"t": 2.0, "s": []}\n')
    assert "ends 8.000 s before" in samples_problem(path, 10.0)
    assert samples_problem(path, 2.0) is None


def test_a_step_log_short_of_its_steps_is_found(tmp_path):
    path = tmp_path / "client.jsonl"
    path.write_text('{"action": "connect", "result": "ok"}\n')
    assert step_log_problem(path, 1)[1] is None
    assert "logs 1 of the 2 step(s)" in step_log_problem(path, 2)[1]
    path.write_text('{"action": "connect", "result": "still waiting when the run ended"}\n')
    assert step_log_problem(path, 2)[1] is None       # the agent stops at a step still waiting
    path.write_text('{"action": "connect", "res')
    assert "cut" in step_log_problem(path, 1)[1]


def test_a_results_folder_through_a_file_is_refused_and_nothing_is_created(tmp_path):
    (tmp_path / "afile").write_text("")
    with pytest.raises(UserError, match="a part of its path is a file"):
        check_writable(tmp_path / "afile" / "results")
    check_writable(tmp_path / "new" / "results")
    assert not (tmp_path / "new").exists() and os.listdir(tmp_path) == ["afile"]


@root_only
@pytest.mark.parametrize("target", ["vm", "local"])
def test_a_read_only_results_dir_is_refused_before_anything_boots(tmpfs, target, capsys):
    ro = tmpfs("64k", "ro,")
    code = cli.main(["--target", target, "--results-dir", str(ro / "results"),
                     str(REPO / "tests" / "fixtures" / "handshake_plain.yaml")])
    err = capsys.readouterr()
    assert code == 2, err
    assert "read-only file system" in err.err and "Traceback" not in err.err + err.out
    assert "booting" not in err.out and "building" not in err.out


@root_only
def test_a_full_results_dir_is_refused_up_front(tmp_path, tiny_tmpfs, capsys):
    (tiny_tmpfs / "filler").write_bytes(b"\0" * 40_000)
    code = cli.main(["--target", "local", "--results-dir", str(tiny_tmpfs),
                     str(REPO / "tests" / "fixtures" / "handshake_plain.yaml")])
    err = capsys.readouterr().err
    assert code == 2 and "its file system is full" in err and "Traceback" not in err


def test_a_step_log_is_whole_per_socket(tmp_path):
    """Lanes run side by side: a step still waiting on one socket excuses only the missing steps
    of that socket, not a lost line of another."""
    from harness.model import StepRecord
    path = tmp_path / "client.jsonl"
    lines = [StepRecord("recv", 1.0, 9.0, index=3, socket="a", blocked=True, result="still waiting"),
             StepRecord("connect", 1.0, 1.1, index=4, socket="b", result="ok")]
    path.write_text("".join(json.dumps(e.to_json()) + "\n" for e in lines))
    assert step_log_problem(path, {"a": 2, "b": 1})[1] is None          # a's second step never ran: fine
    problem = step_log_problem(path, {"a": 2, "b": 2})[1]
    assert problem and "1 of the 2 step(s) on socket b" in problem
