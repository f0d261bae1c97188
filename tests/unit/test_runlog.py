"""run.log: every command with its exit status and time; the console unchanged without -v."""
import logging
import subprocess
import sys

import pytest

from harness import runlog


@pytest.fixture(autouse=True)
def _clean_console():
    yield
    for handler in list(runlog._console):
        runlog.LOG.removeHandler(handler)
    runlog._console.clear()
    runlog.LOG.setLevel(logging.NOTSET)


def test_run_command_logs_command_exit_status_and_time(tmp_path):
    with runlog.run_log(tmp_path) as path:
        done = runlog.run_command(["echo", "two words"], where="h1")
    assert done.returncode == 0 and done.stdout == "two words\n"
    text = path.read_text()
    assert path == tmp_path / "run.log"
    line = next(line for line in text.splitlines() if "echo" in line)
    assert "[h1] $ echo 'two words' -> exit 0 in " in line and line.endswith(" s")
    assert "DEBUG" in line and "tcp_testbed.cmd" in line
    assert line[:4].isdigit() and "+" in line.split()[1]        # wall clock, then monotonic offset


def test_a_failure_is_logged_with_the_first_lines_of_stderr(tmp_path):
    script = "for i in 1 2 3 4 5 6 7; do echo problem $i >&2; done; exit 3"
    with runlog.run_log(tmp_path) as path:
        done = runlog.run_command(["sh", "-c", script])
    assert done.returncode == 3
    text = path.read_text()
    assert "-> exit 3 in" in text
    assert "| problem 1" in text and "| problem 5" in text and "| problem 6" not in text
    assert "2 more line(s)" in text


def test_what_a_command_is_fed_is_logged(tmp_path):
    ruleset = "table bridge t {\n chain c {\n }\n}\n"
    with runlog.run_log(tmp_path) as path:
        runlog.run_command(["cat"], input=ruleset)
    assert "$ cat -> exit 0 in" in path.read_text() and "    < table bridge t {\n    <  chain c {" in path.read_text()


def test_check_raises_and_a_timeout_or_missing_program_is_logged_then_raised(tmp_path):
    with runlog.run_log(tmp_path) as path:
        with pytest.raises(subprocess.CalledProcessError):
            runlog.run_command(["false"], check=True)
        with pytest.raises(subprocess.TimeoutExpired):
            runlog.run_command(["sleep", "5"], timeout=0.2)
        with pytest.raises(FileNotFoundError):
            runlog.run_command(["no-such-program-here"])
    text = path.read_text()
    assert "$ false -> exit 1" in text
    assert "$ sleep 5 -> timed out after" in text
    assert "$ no-such-program-here -> not started" in text


def test_the_file_handler_detaches_and_the_file_is_whole_at_exit(tmp_path):
    with runlog.run_log(tmp_path / "run") as path:
        runlog.run_command(["true"])
        assert any(isinstance(h, logging.FileHandler) for h in runlog.LOG.handlers)
    assert not any(isinstance(h, logging.FileHandler) for h in runlog.LOG.handlers)
    runlog.run_command(["echo", "after the run"])
    text = path.read_text()
    assert "$ true -> exit 0" in text and "after the run" not in text
    assert text.endswith("run log closed\n")


def test_finish_run_log_closes_it_before_the_folder_is_published(tmp_path):
    with runlog.run_log(tmp_path) as path:
        runlog.run_command(["true"])
        runlog.finish_run_log(tmp_path)            # the runner, right before publish()
        whole = path.read_text()
        runlog.run_command(["echo", "after publishing"])
        runlog.finish_run_log(tmp_path)            # twice is fine
    assert whole.endswith("run log closed\n") and path.read_text() == whole
    assert not any(isinstance(h, logging.FileHandler) for h in runlog.LOG.handlers)


def test_console_prints_plain_lines_and_no_commands_without_verbose(tmp_path, capsys):
    runlog.console(verbose=False)
    with runlog.run_log(tmp_path) as path:
        runlog.say("running the timeline (2 s)")
        runlog.run_command(["true"])
    out, err = capsys.readouterr()
    assert out == "running the timeline (2 s)\n" and err == ""
    assert "INFO    tcp_testbed: running the timeline (2 s)" in path.read_text()


def test_say_prints_even_when_no_console_was_set_up(capsys):
    runlog.say("results: here")
    assert capsys.readouterr().out == "results: here\n"


def test_verbose_shows_commands_live_on_stderr_and_stdout_is_unchanged(tmp_path, capsys):
    runlog.console(verbose=True)
    runlog.say("hello")
    runlog.run_command(["true"])
    out, err = capsys.readouterr()
    assert out == "hello\n"
    assert "$ true -> exit 0" in err and "hello" not in err


def test_commands_started_elsewhere_are_logged(tmp_path):
    class Node:                       # the two Mininet node methods the lab uses, without a network
        name = "s1"

        def pexec(self, args):
            done = subprocess.run(args, capture_output=True, text=True)
            return done.stdout, done.stderr, done.returncode

        def cmd(self, command):
            return subprocess.run(command, shell=True, capture_output=True, text=True).stdout

    with runlog.run_log(tmp_path) as path:
        assert runlog.node_pexec(Node(), ["sh", "-c", "echo bad >&2; exit 2"])[2] == 2
        assert runlog.node_cmd(Node(), "echo qdisc netem 10: root") == "qdisc netem 10: root\n"
        runlog.log_command(["tcpdump", "-i", "h1-eth0"], 0, 2.5, where="h1")
        runlog.log_started(["tcpdump", "-i", "h2-eth0"], 1234, where="h2")
        runlog.log_command(["tcpdump", "-i", "h2-eth0"], -15, None, where="h2", note="3 packets captured")
    text = path.read_text()
    assert "[s1] $ sh -c 'echo bad >&2; exit 2' -> exit 2" in text and "| bad" in text
    assert "[s1] $ echo qdisc netem 10: root -> exit status unknown" in text and "| qdisc netem 10: root" in text
    assert "[h1] $ tcpdump -i h1-eth0 -> exit 0 in 2.500 s" in text
    assert "[h2] $ tcpdump -i h2-eth0 -> started, pid 1234" in text
    assert "[h2] $ tcpdump -i h2-eth0 -> exit -15 (3 packets captured)\n" in text + "\n"


def test_mininet_debug_goes_to_run_log_and_not_to_the_console(tmp_path, capsys):
    mininet_log = pytest.importorskip("mininet.log")
    mininet_log.setLogLevel("error")                 # what the lab does before building
    runlog.console(verbose=False)
    with runlog.run_log(tmp_path) as path:
        mininet_log.setLogLevel("error")             # a reset inside the run ...
        runlog.route_mininet()                       # ... is undone by the lab right after
        mininet_log.debug(" *** executing command: tc qdisc add dev h1-eth0 root handle 10: netem delay 25ms\n")
        mininet_log.debug("\n")
    mininet_log.debug(" *** after the run\n")
    out, err = capsys.readouterr()
    assert out == "" and err == ""
    text = path.read_text()
    assert "DEBUG   mininet:  *** executing command: tc qdisc add dev h1-eth0 root handle 10: netem" in text
    assert "after the run" not in text
    assert not any(line.endswith("mininet: ") for line in text.splitlines())     # blank fragments dropped
    assert mininet_log.lg.level == logging.ERROR and mininet_log.lg.ch.level == logging.ERROR
    assert "harness.runlog" in sys.modules


def test_records_before_the_run_folder_exists_are_written_first_when_run_log_opens(tmp_path):
    """The preflight's probes, the clean-up and the guardian's start come before the run folder
    (a run failing its preflight leaves none): held, then written first into run.log."""
    with runlog.held_records():
        runlog.run_command(["echo", "probe"], where="preflight")
        runlog.log_started(["guardian"], 42, where="guardian")
        folder = tmp_path / "run"
        assert not folder.exists()
        with runlog.run_log(folder) as path:
            runlog.run_command(["echo", "lab"])
        runlog.run_command(["echo", "after"])
    lines = [line for line in path.read_text().splitlines() if " $ " in line]
    assert ["probe" in lines[0], "guardian" in lines[1], "lab" in lines[2]] == [True, True, True], lines
    assert len(lines) == 3                                 # nothing after the log closed, nothing twice
    assert all("+" in line.split()[1] for line in lines)   # offsets from the run's start: never negative
    assert not runlog._held and runlog.LOG.level == logging.NOTSET


def test_held_records_are_dropped_when_no_run_log_opens(tmp_path):
    with runlog.held_records():
        runlog.run_command(["echo", "probe"])
    with runlog.run_log(tmp_path) as path:
        pass
    assert "probe" not in path.read_text()


def test_a_full_disk_under_run_log_prints_no_logging_traceback(tmp_path, capsys, monkeypatch):
    """run.log is diagnostics: when its writes fail (ENOSPC) nothing like logging's
    '--- Logging error ---' traceback reaches the terminal, and the failure is remembered."""
    import logging
    from harness import runlog

    with runlog.run_log(tmp_path):
        handler = [h for h in logging.getLogger("tcp_testbed").handlers if isinstance(h, runlog._RunLogFile)][0]
        monkeypatch.setattr(handler, "stream", _FullStream())
        logging.getLogger("tcp_testbed.cmd").debug("a command")
    captured = capsys.readouterr()
    assert "Logging error" not in captured.err + captured.out and "Traceback" not in captured.err
    assert handler.failed and "No space" in handler.failed


class _FullStream:
    def write(self, text):
        import errno
        raise OSError(errno.ENOSPC, "No space left on device")

    def flush(self):
        import errno
        raise OSError(errno.ENOSPC, "No space left on device")

    def close(self):
        pass
