"""The run's profile (harness.profile): phases marked as they begin become lengths on the host's
clock; a VM's console marks are split into its items and the boot goes with the first, the
shutdown with the last; the guest's marks are protocol markers the host never shows."""
from __future__ import annotations

import json
import time

import pytest

from harness import profile
from harness.targets import protocol


def test_each_phase_lasts_until_the_next_mark_and_the_last_until_the_end():
    marks = [("preflight", 100.0), ("lab", 101.5), ("timeline", 104.0)]
    assert profile.durations(marks, 110.0) == [
        {"name": "preflight", "start": 0.0, "seconds": 1.5}, {"name": "lab", "start": 1.5, "seconds": 2.5},
        {"name": "timeline", "start": 4.0, "seconds": 6.0}]
    assert profile.durations([], 1.0) == []


def test_an_unknown_phase_is_a_bug_said_at_once():
    with pytest.raises(ValueError, match="no phase 'labb'"):
        profile.phase("labb")


def test_marks_are_taken_once_and_a_guest_prints_them_as_markers(capsys):
    profile.take()
    profile.phase("lab")
    profile.to_console()
    try:
        profile.phase("stop")
    finally:
        profile.to_console(False)
    assert [name for name, _ in profile.take()] == ["lab", "stop"] and profile.take() == []
    line = capsys.readouterr().out.strip()
    marker = protocol.parse_marker(line)
    assert line == "@@phase stop" and (marker.kind, marker.what) == ("phase", "stop") and protocol.is_marker(line)


def test_a_phase_marker_with_a_stray_word_is_output():
    assert protocol.parse_marker("@@phase lab now") is None and protocol.parse_marker("@@phase 1") is None


def test_a_vms_marks_are_split_into_its_items_with_the_boot_first_and_the_shutdown_last(tmp_path, monkeypatch):
    clock = iter([10.0, 12.0, 20.0, 21.0, 30.0, 31.0])
    monkeypatch.setattr(time, "time", lambda: next(clock))
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    marks = profile.ProfileCollector([("host-start", 0.0), ("plan", 0.5), ("vm-boot", 1.0)])
    marks.mark("guest-python")      # 10
    marks.mark("lab")               # 12
    marks.done(str(first))          # 20
    marks.mark("lab")               # 21
    marks.mark("not-a-phase")       # ignored, no clock read
    marks.done(str(second))         # 30
    marks.finish("vm 6.12 (virtual clock)")      # 31
    a, b = (json.loads((d / "profile.json").read_text()) for d in (first, second))
    assert [(p["name"], p["seconds"]) for p in a["phases"]] == [
        ("host-start", 0.5), ("plan", 0.5), ("vm-boot", 9.0), ("guest-python", 2.0), ("lab", 8.0)]
    assert a["total_s"] == 20.0 and a["clock"] == "host" and a["where"] == "vm 6.12 (virtual clock)"
    assert [(p["name"], p["seconds"]) for p in b["phases"]] == [("lab", 9.0), ("vm-shutdown", 1.0)]


def test_this_process_started_before_now():
    started = profile.process_start()
    assert started is not None and time.time() - 3600 < started <= time.time()


def test_a_warm_run_has_no_shutdown_phase(tmp_path, monkeypatch):
    clock = iter([10.0, 20.0, 21.0])
    monkeypatch.setattr(time, "time", lambda: next(clock))
    marks = profile.ProfileCollector([("host-start", 0.0)])
    marks.mark("lab")               # 10
    marks.done(str(tmp_path))       # 20
    marks.finish("warm vm 6.12 (virtual clock)", shutdown=False)
    phases = json.loads((tmp_path / "profile.json").read_text())["phases"]
    assert [(p["name"], p["seconds"]) for p in phases] == [("host-start", 10.0), ("lab", 10.0)]
