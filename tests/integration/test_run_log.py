"""run.log: a real local run's folder lists the external commands it executed, with their exit
statuses; -v shows them live without changing stdout."""
import os
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PLAIN = REPO / "tests" / "fixtures" / "handshake_plain.yaml"
SYN_DROP = REPO / "tests" / "fixtures" / "syn_drop_plain.yaml"

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="building a lab needs root")]


def _run_log(cli, args, results: Path) -> tuple[str, str, str]:
    code, out, err = cli(args, results).finish()
    assert code == 0, out + err
    (path,) = results.glob("*/*/run.log")
    return path.read_text(), out, err


def _commands(text: str) -> list[str]:
    """The lines that record a command this run executed (ours, and Mininet's own)."""
    return [line for line in text.splitlines() if " $ " in line or "executing command" in line
            or "errRun" in line or re.search(r"mininet: \*\*\* \S+ : \(", line)]


def test_a_local_run_logs_its_commands_with_exit_statuses(cli, tmp_path):
    text, out, _ = _run_log(cli, ["--target", "local", str(PLAIN)], tmp_path)
    commands = _commands(text)
    assert text.startswith(tuple("0123456789")) and "+" in text.split()[1]       # wall clock, monotonic offset
    assert any(re.search(r"\$ sysctl -e .* -> exit 0 in [0-9.]+ s", line) for line in commands), commands
    # the qdiscs read back: one process per namespace, with its addresses and routes
    assert any(re.search(r"\$ sh -c .*tc qdisc show .*-> exit 0", line) for line in commands), commands
    # the links set up: one process per node, every tc and ip line among its arguments
    assert any(re.search(r"\$ sh -c .*ip -batch .*'ip: link set dev \S+ up'.* -> exit 0", line) for line in commands), commands
    assert any(re.search(r"\$ .*tcpdump .*-i \S+ -w \S+\.pcap .*-> started, pid \d+", line)
               for line in commands), commands
    assert any(re.search(r"\$ .*tcpdump .*-> exit 0 .*packets captured", line) for line in commands), commands
    assert any(re.search(r"\bip\b.*link", line) for line in commands), commands    # Mininet makes the veths with ip
    assert any("ping -c" in line for line in commands), commands
    assert "mininet" in text                                                       # Mininet's own debug lines
    # what ran before the run folder existed (the guardian, started with the ledger) is in it too
    assert any(re.search(r"\[guardian\] \$ .*harness\.lab\.guardian .*-> started, pid \d+", line)
               for line in commands), commands
    # what the run printed is in the log too, and nothing of the log reached stdout
    assert "results:" in out and " $ " not in out and "DEBUG" not in out


def test_network_steps_log_their_nft_and_tc_commands(cli, tmp_path):
    text, _, _ = _run_log(cli, ["--target", "local", str(SYN_DROP)], tmp_path)
    commands = _commands(text)
    assert any(re.search(r"\$ nft '?add table bridge tcptestbed_\d+ .*-> exit 0", line) for line in commands), commands
    assert any(re.search(r"\$ nft '?add rule bridge tcptestbed_\d+ .*-> exit 0", line) for line in commands), commands
    assert any(re.search(r"\$ nft -j list table bridge tcptestbed_\d+ -> exit 0", line) for line in commands), commands
    assert any(re.search(r"\$ nft delete table bridge tcptestbed_\d+ -> exit 0", line) for line in commands), commands
    # the preflight's probe (run before the run folder is made) is in the log, before the lab's commands
    probe = [i for i, line in enumerate(commands) if re.search(r"\$ nft -f - -> exit 0", line)]
    lab = [i for i, line in enumerate(commands) if re.search(r"nft '?add table bridge", line)]
    assert probe and lab and probe[0] < lab[0], commands
    assert "table bridge tcptestbed_probe_" in text


def test_verbose_shows_the_commands_live_and_stdout_is_unchanged(cli, tmp_path):
    text, out, err = _run_log(cli, ["--target", "local", "-v", str(PLAIN)], tmp_path)
    assert " $ " not in out and "results:" in out
    assert re.search(r"\$ sysctl -e .* -> exit 0", err), err[-2000:]
    assert re.search(r"\$ sysctl -e .* -> exit 0", text)
