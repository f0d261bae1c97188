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


# --- the client's hand-over, the keeper's shutdown, the guest's exit codes (review of the warm VM) ---

def _client_run(tmp_path, monkeypatch, opens, started=None) -> tuple[int, list[str]]:
    """run_warm with `opens` (functions returning a WarmRun) in place of booting or reaching a keeper."""
    from harness.plan import kernels
    monkeypatch.setattr(kernels, "release_of", lambda kernel: "r")
    monkeypatch.setattr(warm, "code_fingerprint", lambda: "f")
    monkeypatch.setattr(warm, "_wait_gone", lambda state, wait_s: True)
    calls = iter(opens)
    monkeypatch.setattr(warm, "_open", lambda *args: next(calls)())
    lines: list[str] = []
    code = warm.run_warm(KERNEL, [], tmp_path / "results", on_line=lines.append, started=started)
    return code, lines


def _leftover_plans(tmp_path) -> list:
    return list((tmp_path / "results").glob(".warm-plan-*"))


def test_a_cancel_before_the_keeper_accepts_sends_no_run_and_returns_at_once(tmp_path, monkeypatch):
    import socket
    import threading
    import time
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(tmp_path / "s"))
    listener.listen(1)                        # a busy keeper: the connection waits in the backlog
    began = time.time()
    code, _ = _client_run(tmp_path, monkeypatch, [lambda: warm.WarmRun(warm._connect(tmp_path / "s", 1))],
                          started=lambda run: threading.Timer(0.3, run.cancel).start())
    assert code == 130 and time.time() - began < 4 and not _leftover_plans(tmp_path)
    connection, _ = listener.accept()         # the keeper, free at last, finds no run request
    connection.settimeout(2)
    assert connection.recv(100) == b""


def _keeper_side(script):
    """A WarmRun whose keeper end runs `script(sock)` in a thread."""
    import socket
    import threading
    mine, theirs = socket.socketpair()
    threading.Thread(target=script, args=(theirs,), daemon=True).start()
    return warm.WarmRun(mine)


def test_a_keeper_closing_before_it_accepts_makes_the_client_boot_a_fresh_one(tmp_path, monkeypatch):
    requests = []

    def closing(sock):
        sock.close()

    def serving(sock):
        sock.sendall(warm.encode({"accepted": True, "ready": True}))
        requests.append(warm.decode(sock.makefile("rb").readline()))
        sock.sendall(warm.encode({"line": "hello"}) + warm.encode({"end": 0}))
        sock.close()

    code, lines = _client_run(tmp_path, monkeypatch, [lambda: _keeper_side(closing), lambda: _keeper_side(serving)])
    assert code == 0 and "hello" in lines and any("stopping" in line for line in lines)
    assert requests[0]["op"] == "run" and not _leftover_plans(tmp_path)


def test_a_client_left_without_an_end_removes_its_plan(tmp_path, monkeypatch):
    def dying(sock):            # a keeper SIGKILLed mid-run
        sock.sendall(warm.encode({"accepted": True, "ready": True}))
        sock.makefile("rb").readline()
        sock.close()

    code, lines = _client_run(tmp_path, monkeypatch, [lambda: _keeper_side(dying)])
    assert code == 3 and not _leftover_plans(tmp_path)


def test_a_keeper_stopping_twice_raises_and_leaves_no_plan(tmp_path, monkeypatch):
    import pytest
    from harness.errors import RunFailed
    with pytest.raises(RunFailed):
        _client_run(tmp_path, monkeypatch, [lambda: _keeper_side(lambda sock: sock.close())] * 2)
    assert not _leftover_plans(tmp_path)


def test_the_fingerprint_skips_dotfiles_editor_leftovers_and_files_that_vanish(tmp_path, monkeypatch):
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "schema").mkdir()
    (tmp_path / "schema" / "s.json").write_text("{}")
    first = warm.code_fingerprint(tmp_path)
    for junk in (".a.py.swp", "a.py~", "#a.py#", ".hidden.py", "notes.txt"):
        (tmp_path / junk).write_text("junk")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x.py").write_text("")
    assert warm.code_fingerprint(tmp_path) == first
    (tmp_path / "schema" / "s.json").write_text('{"a": 1}')
    assert warm.code_fingerprint(tmp_path) != first           # a run reads the schemas
    real_stat = Path.stat
    monkeypatch.setattr(Path, "stat", lambda self, **kw: (_ for _ in ()).throw(FileNotFoundError(self))
                        if self.name == "a.py" else real_stat(self, **kw))
    warm.code_fingerprint(tmp_path)                            # an editor's save between listing and stat


def test_a_shutting_down_keeper_closes_its_socket_first_so_a_waiting_client_sees_eof(tmp_path):
    import socket
    keeper = _keeper(tmp_path)
    keeper.paths = warm.Paths("k", tmp_path)
    keeper._listen()
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(str(keeper.paths.socket))            # waits in the backlog
    plan = tmp_path / ".warm-plan-p.json"
    plan.write_text("{}")
    keeper.pending, keeper.stopping = {"plan": str(plan)}, "idle"
    keeper._shutdown()
    assert keeper.listener is None and not keeper.paths.socket.exists() and not plan.exists()
    client.settimeout(2)
    try:
        assert client.recv(100) == b""
    except ConnectionResetError:
        pass


def test_a_plan_the_keeper_cannot_read_is_removed(tmp_path):
    keeper = _keeper(tmp_path)
    sent = []
    keeper._to_client = sent.append
    plan = tmp_path / ".warm-plan-bad.json"
    plan.write_text("not json")
    keeper._start_run({"plan": str(plan)})
    assert sent[-1] == {"end": 3} and not plan.exists() and keeper.current is None


def test_the_idle_guest_is_paused_and_resumed_before_its_next_command(tmp_path):
    from harness.targets.warm_guest import IDLE
    keeper = _keeper(tmp_path)
    done = []
    keeper._qmp = lambda command: done.append(command) or True
    keeper.commands = None                       # no guest: _command fails after resuming
    keeper._to_client = lambda message: None
    keeper.qemu_seen = True
    keeper._on_line(IDLE)
    assert keeper.paused and done == ["stop"]
    keeper._on_line(IDLE)
    assert done == ["stop"]                      # once
    keeper._command("cancel")
    assert not keeper.paused and done == ["stop", "cont"]
    keeper.current = {"plan": tmp_path / "p", "items": [], "cancelled": False}
    keeper._on_line(IDLE)                        # a run was handed meanwhile: the guest runs on
    assert not keeper.paused and done == ["stop", "cont"]


def test_a_child_killed_by_a_signal_is_130_if_interrupted_else_3():
    import signal
    from harness.targets.warm_guest import exit_code
    assert exit_code(signal.SIGINT) == 130 and exit_code(signal.SIGTERM) == 130
    assert exit_code(signal.SIGKILL) == 3 and exit_code(signal.SIGSEGV) == 3
    assert exit_code(7 << 8) == 7 and exit_code(0) == 0


def test_a_batch_interrupted_says_warm_vms_stay_up():
    from harness.targets.batch import _interrupted_text

    class Cold:
        pass

    class Warm:
        def cancel(self):
            pass
    assert "nothing of them keeps running" in _interrupted_text([Cold(), Cold()])
    mixed = _interrupted_text([Cold(), Warm()])
    assert "the 1 VM(s) were stopped" in mixed and "--warm-stop" in mixed
    assert "nothing of them" not in _interrupted_text([Warm()])


def test_a_new_keeper_waits_a_moment_for_the_lock_of_one_that_is_going(tmp_path):
    import fcntl
    import threading
    from harness.targets.warm_keeper import _take_lock
    held = os.open(tmp_path / "lock", os.O_RDWR | os.O_CREAT)
    wanted = os.open(tmp_path / "lock", os.O_RDWR)
    fcntl.flock(held, fcntl.LOCK_EX)
    assert not _take_lock(wanted, 0.2)
    threading.Timer(0.3, os.close, args=(held,)).start()
    assert _take_lock(wanted, 5)
    os.close(wanted)
