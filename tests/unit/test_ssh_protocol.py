"""The SSH target's pieces that need no server: decoding the remote's output stream, and the shell
commands it sends (run with a local sh and stub programs, so the quoting and the privilege switch
are exercised for real)."""
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from harness.cli import parse_args
from harness.targets.ssh import TerminalText, as_runner, cleanup_command, run_command


def _feed_in_chunks(data: bytes, size: int) -> str:
    text = TerminalText()
    out = "".join(text.feed(data[i:i + size]) for i in range(0, len(data), size))
    return out + text.flush()


@pytest.mark.parametrize("size", [1, 2, 3, 4095, 4096])
def test_a_character_split_across_chunks_is_decoded_whole(size):
    line = "observed  100.0 ms ± 3.2 ms … LISTEN → SYN-RECV → ESTAB\r\n" * 200
    assert _feed_in_chunks(line.encode(), size) == line.replace("\r\n", "\n")


def test_a_split_crlf_is_one_newline_and_a_lone_cr_stays():
    assert _feed_in_chunks(b"a\r\nb\r\n", 2) == "a\nb\n"
    text = TerminalText()
    assert text.feed(b"a\r") == "a" and text.feed(b"\nb\r") == "\nb" and text.feed(b"c") == "\rc"
    assert text.flush() == ""


def test_invalid_bytes_become_one_replacement_each_and_a_cut_tail_is_flushed():
    text = TerminalText()
    assert text.feed(b"ok \xff ") == "ok \ufffd "
    assert text.feed("→".encode()[:2]) == ""
    assert text.flush() == "\ufffd"


def _stubs(tmp_path: Path, uid: str) -> dict:
    """PATH with an `id` that says `uid`, a `sudo` that logs and runs, and a run-experiment that logs its argv."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "log"
    (bin_dir / "id").write_text(f"#!/bin/sh\necho {uid}\n")
    (bin_dir / "sudo").write_text(f'#!/bin/sh\necho "sudo $*" >> {log}\n[ "$1" = -n ] && shift\nexec "$@"\n')
    (bin_dir / "run-experiment").write_text(
        f'#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a" >> {log}.argv; done\n')
    for stub in bin_dir.iterdir():
        stub.chmod(0o755)
    return dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")


def test_a_file_named_like_an_option_stays_a_file(tmp_path):
    remote_dir = tmp_path / "remote dir"
    remote_dir.mkdir()
    env = _stubs(tmp_path, "0")
    names = ["-x.yaml", "--target=local.yaml", "a b.yaml"]
    command = run_command(str(remote_dir), ["--vm-clock", "virtual", "--kernel=/boot/k"], names)
    subprocess.run(["sh", "-c", command], env=env, check=True)
    argv = (tmp_path / "log.argv").read_text().splitlines()
    assert argv[-len(names):] == names and argv[-len(names) - 1] == "--"
    assert argv[:2] == ["--results-dir", f"{remote_dir}/results"]
    assert not (tmp_path / "log").exists()           # uid 0: no sudo
    parsed = parse_args(argv)                          # the remote's parser: every name is an experiment
    assert parsed.experiments == names and parsed.target == "auto"


def test_run_and_cleanup_switch_to_root_the_same_way(tmp_path):
    remote_dir = tmp_path / "tcp-testbed.abc"
    (remote_dir / "results" / "x").mkdir(parents=True)
    env = _stubs(tmp_path, "1000")
    subprocess.run(["sh", "-c", run_command(str(remote_dir), [], ["e.yaml"])], env=env, check=True)
    subprocess.run(["sh", "-c", cleanup_command(str(remote_dir))], env=env, check=True)
    sudo_calls = (tmp_path / "log").read_text().splitlines()
    assert sudo_calls[0].startswith("sudo -n run-experiment ")
    assert sudo_calls[1] == f"sudo -n rm -rf -- {remote_dir}"
    assert not remote_dir.exists()


def test_as_runner_quotes_everything():
    assert as_runner(["rm", "-rf", "--", "/tmp/a b"]) == (
        'if [ "$(id -u)" = 0 ]; then rm -rf -- \'/tmp/a b\'; else sudo -n rm -rf -- \'/tmp/a b\'; fi')
    assert shlex.split(as_runner(["true"]))  # a valid shell word list
