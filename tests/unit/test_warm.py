"""The warm VM's pure parts: what it is keyed on, its messages, the guest's commands, staleness."""
from __future__ import annotations

import os
from pathlib import Path

from harness.lab.leftovers import start_time
from harness.targets import warm
from harness.targets.warm_guest import END, LineReader, parse_command, parse_end, end_line, run_command

KERNEL = Path("/boot/vmlinuz-6.1.0-57-amd64")


def test_the_key_changes_with_what_the_boot_fixes_and_nothing_else(tmp_path):
    base = warm.warm_key(KERNEL, "6.1.0-57-amd64", "virtual", tmp_path)
    assert base == warm.warm_key(KERNEL, "6.1.0-57-amd64", "virtual", tmp_path / "." )
    assert len({base, warm.warm_key(KERNEL, "6.1.0-57-amd64", "host", tmp_path),
                warm.warm_key(Path("/boot/vmlinuz-6.12"), "6.12", "virtual", tmp_path),
                warm.warm_key(KERNEL, "6.1.0-57-amd64", "virtual", tmp_path / "other"),
                warm.warm_key(KERNEL, "6.1.0-57-amd64", "virtual", tmp_path, python="/usr/bin/python3")}) == 5


def test_a_relative_results_folder_keys_like_its_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert warm.warm_key(KERNEL, "r", "virtual", Path("results")) == warm.warm_key(KERNEL, "r", "virtual", tmp_path / "results")


def test_the_fingerprint_sees_an_edit_a_new_file_and_a_removal(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    first = warm.code_fingerprint(tmp_path)
    assert warm.code_fingerprint(tmp_path) == first
    (tmp_path / "a.py").write_text("x = 22\n")
    edited = warm.code_fingerprint(tmp_path)
    assert edited != first
    (tmp_path / "b.json").write_text("{}")
    added = warm.code_fingerprint(tmp_path)
    assert added != edited
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "a.pyc").write_bytes(b"x")
    assert warm.code_fingerprint(tmp_path) == added        # compiled files are not code
    (tmp_path / "b.json").unlink()
    assert warm.code_fingerprint(tmp_path) == edited


def test_a_touch_without_a_change_of_size_still_counts(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    first = warm.code_fingerprint(tmp_path)
    os.utime(tmp_path / "a.py", ns=(1, 1))
    assert warm.code_fingerprint(tmp_path) != first


def test_messages_round_trip_and_garbage_is_empty():
    message = {"line": "@@done 0 0 1.0 /r/x", "end": 0}
    assert warm.decode(warm.encode(message)) == message
    assert warm.encode(message).endswith(b"\n") and warm.encode(message).count(b"\n") == 1
    assert warm.encode({"line": "a\nb"}).count(b"\n") == 1      # a console line never splits a message
    assert warm.decode(b"not json") == {} and warm.decode("[1]") == {} and warm.decode("") == {}


def test_guest_commands_round_trip_and_anything_else_is_no_command():
    command = parse_command(run_command("/results dir/.warm-plan-x.json", True, 1796413905.25))
    assert (command.op, command.plan_file, command.verbose, command.epoch) == ("run", "/results dir/.warm-plan-x.json",
                                                                               True, 1796413905.25)
    assert parse_command(run_command("/r/p.json", False, 0)).verbose is False
    assert parse_command("cancel").op == "cancel" and parse_command("quit").op == "quit"
    for junk in ("", "run", "run /p", "run /p 2 1", "run /p 1 x", "cancel now", "rm -rf /", "run '/p 1 1"):
        assert parse_command(junk).op == "", junk


def test_end_lines_carry_the_code_and_other_lines_none():
    assert parse_end(end_line(3)) == 3 and parse_end(end_line(0)) == 0
    assert parse_end(f"{END} x") is None and parse_end(f"{END}") is None and parse_end("@@done 0 0 1.0 /r") is None


def _state(**changes) -> dict:
    state = {"pid": os.getpid(), "start": start_time(os.getpid()), "fingerprint": "abc"}
    return {**state, **changes}


def test_freshness_reuses_a_live_keeper_with_the_same_code_only():
    assert warm.freshness(_state(), "abc") == "reuse"
    assert warm.freshness(_state(), "abd") == "restart"
    assert warm.freshness(_state(fingerprint="changed-during-boot"), "abc") == "restart"
    assert warm.freshness(None, "abc") == "boot"
    assert warm.freshness(_state(start=1), "abc") == "boot"          # the PID was reused by another process
    assert warm.freshness({"pid": "x"}, "abc") == "boot"


def test_the_line_reader_splits_across_reads_and_ends_a_last_partial_line():
    read, write = os.pipe()
    reader = LineReader(read)
    os.write(write, b"run /a 0 1\ncan")
    assert reader.read_available() == ["run /a 0 1"]
    os.write(write, b"cel\nquit")
    os.close(write)
    assert reader.next_line() == "cancel"
    assert reader.next_line() == "quit"
    assert reader.next_line() is None and reader.eof
    os.close(read)


def test_paths_live_under_the_registry():
    paths = warm.Paths("k1")
    assert {paths.socket.name, paths.state.name, paths.lock.name, paths.log.name} == {"k1.sock", "k1.json", "k1.lock",
                                                                                     "k1.log"}
    assert paths.socket.parent == warm.REGISTRY / "warm"


def test_the_guest_learns_what_a_run_imported_and_skips_what_fails(tmp_path, monkeypatch):
    import sys
    from harness.targets import warm_guest
    learned = tmp_path / "modules"
    learned.write_text("colorsys\nno_such_module_for_the_warm_test\n__main__\n")
    monkeypatch.setattr(warm_guest, "LEARNED", str(learned))
    monkeypatch.delitem(sys.modules, "colorsys", raising=False)
    warm_guest.learn()
    assert "colorsys" in sys.modules and "no_such_module_for_the_warm_test" not in sys.modules
    monkeypatch.setattr(warm_guest, "LEARNED", str(tmp_path / "absent"))
    assert warm_guest.learn() == len(sys.modules)


def _keeper(tmp_path, idle_s: float = 600.0):
    import time
    from harness.targets.warm_keeper import Keeper
    keeper = Keeper(KERNEL, "virtual", tmp_path, "k", idle_s)
    keeper.ready, keeper.last_used = True, time.time()
    return keeper


def test_an_idle_keeper_stops_itself_and_a_busy_one_does_not(tmp_path):
    keeper = _keeper(tmp_path, idle_s=600)
    keeper._check_time()
    assert keeper.stopping == ""
    keeper.last_used -= 601
    keeper.current = {"plan": tmp_path / "p", "items": [], "cancelled": False}
    keeper.deadline = keeper.last_used + 10_000
    keeper._check_time()
    assert keeper.stopping == ""                      # a run in the guest is not idleness
    keeper.current = None
    keeper._check_time()
    assert keeper.stopping == "idle for 600 s"


def test_a_run_with_other_code_is_told_stale_and_stops_the_keeper(tmp_path):
    keeper = _keeper(tmp_path)
    sent = []
    keeper._to_client = sent.append
    keeper._on_request({"op": "run", "plan": str(tmp_path / "p.json"), "fingerprint": "not-the-boot-code"})
    assert sent == [{"stale": True}] and keeper.stopping and keeper.current is None


def test_a_run_with_the_same_code_waits_for_the_guest_until_it_is_ready(tmp_path):
    keeper = _keeper(tmp_path)
    keeper.ready = False
    request = {"op": "run", "plan": str(tmp_path / "p.json"), "fingerprint": keeper.fingerprint}
    keeper._on_request(request)
    assert keeper.pending == request and keeper.stopping == ""


def test_a_cancel_while_the_guest_boots_drops_the_waiting_run(tmp_path):
    keeper = _keeper(tmp_path)
    keeper.ready = False
    plan = tmp_path / ".warm-plan-x.json"
    plan.write_text("{}")
    sent = []
    keeper._to_client = sent.append
    keeper._on_request({"op": "run", "plan": str(plan), "fingerprint": keeper.fingerprint})
    keeper._on_request({"op": "cancel"})
    assert keeper.pending is None and not plan.exists() and sent[-1] == {"end": 130}
