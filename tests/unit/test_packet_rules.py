"""A timed network-step rule is added on a timer thread: whatever stops its command (nft missing,
a hang) is a network-step problem reported with the counters, never a thread's traceback."""
from __future__ import annotations

import json
import subprocess
import threading
import time

import pytest

from harness.errors import RunFailed
from harness.lab import packet_rules
from harness.lab.packet_rules import PacketRules, PlacedStep
from harness.model import Impairment, NetworkStep, PacketMatch


class Switch:
    name = "s1"

    def pexec(self, args):
        return json.dumps({"nftables": []}), "", 0

    def cmd(self, text):
        return "qdisc prio 1: root"


class Ledger:
    def add(self, nft_tables=()):
        pass


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"),
                                   subprocess.TimeoutExpired(["nft"], 30)])
def test_a_timed_rule_whose_command_raises_is_reported_as_a_network_step_problem(monkeypatch, error):
    tracebacks = []
    monkeypatch.setattr(threading, "excepthook", tracebacks.append)

    def nft(args, **kw):
        if "add rule" in " ".join(args):
            raise error
        return subprocess.CompletedProcess(args, 0, "", "")
    monkeypatch.setattr(packet_rules, "run_command", nft)
    drop = NetworkStep("drop", "client", "server", PacketMatch("S", None, 5001), 17, 0.01, nth=1)
    rules = PacketRules([PlacedStep(drop, "s1-eth2", Impairment(delay_s=0.025), "10.0.0.1", "10.0.0.2", "s1-eth1")],
                        Switch(), Ledger())
    try:
        rules.start(time.time())
        for timer in list(rules.timers):
            timer.join(10)
        assert tracebacks == []
        with pytest.raises(RunFailed, match=r"rule could not be switched on: `nft add rule .*step-17.*` did not run: "):
            rules.counters()
        assert rules.summary()["failed"] and str(error) in rules.summary()["failed"][0]
    finally:
        rules.close()
