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

    def forget(self, nft_tables=()):
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


# --- len:, options: and P at the switch (nft 1.0.6; the texts below were run against real segments
# on kernel 6.1 in the VM and on the host's 6.18: tests/fixtures/drop_rules_len_options_vm)
from dataclasses import replace  # noqa: E402

from harness.lab.packet_rules import (drop_rule, length_expr, match_exprs, nft_can_express,  # noqa: E402
                                      nft_rule, option_expr)
from harness.model import LengthSpec, OptionSpec  # noqa: E402

SYN = NetworkStep("drop", "client", "server", PacketMatch("S", None, 5001), 13, 0.0, nth=2)


def test_an_exact_payload_length_is_one_total_length_per_tcp_header_length():
    text = length_expr(LengthSpec(0, 0, "0"))
    assert text.startswith("ip hdrlength 5 ip length . @th,96,8 { 40 . 0x50-0x5f, 44 . 0x60-0x6f, ")
    assert text.endswith("80 . 0xf0-0xff }") and text.count(", ") == 10      # doff 5 to 15


def test_open_and_closed_length_ranges():
    assert length_expr(LengthSpec(1, None, ">0")).startswith("ip hdrlength 5 ip length . @th,96,8 { 41-65535 . 0x50-0x5f, 45-65535 . 0x60-0x6f,")
    assert "52-1500 . 0x80-0x8f" in length_expr(LengthSpec(0, 1448, "<=1448"))   # doff 8: timestamps
    # the largest payloads fit only the shorter headers: no empty or inverted range is written
    big = length_expr(LengthSpec(65490, None, ">=65490"))
    assert big.endswith("{ 65530-65535 . 0x50-0x5f, 65534-65535 . 0x60-0x6f }")


def test_flags_with_p_require_data_unless_len_says_otherwise():
    data = " ".join(match_exprs(PacketMatch("PA")))
    assert "tcp flags & (fin|syn|rst|ack|urg) == (ack)" in data and "{ 41-65535 . 0x50-0x5f," in data
    assert "@th" not in " ".join(match_exprs(PacketMatch("A")))                  # A: data or not
    explicit = " ".join(match_exprs(PacketMatch("FPA", length=LengthSpec(0, 0, "0"))))
    assert "== (fin|ack)" in explicit and "{ 40 . 0x50-0x5f," in explicit and "41-65535" not in explicit


@pytest.mark.parametrize("option, text", [
    (OptionSpec("mss", True, 1460), "tcp option maxseg size 1460"),
    (OptionSpec("mss"), "tcp option maxseg exists"),
    (OptionSpec("wscale", True, 7), "tcp option window count 7"),
    (OptionSpec("wscale", False), "tcp option window missing"),
    (OptionSpec("sackok"), "tcp option sack-perm exists"),
    (OptionSpec("ts", False), "tcp option timestamp missing"),
    (OptionSpec("ts"), "tcp option timestamp exists"),
    (OptionSpec("sack", True, 3), "tcp option sack length 26"),       # 2 + 8 per block
    (OptionSpec("sack"), "tcp option sack exists"),
])
def test_each_option_as_nft_writes_it(option, text):
    assert option_expr(option) == text


def test_options_come_in_the_order_written_after_the_length():
    match = PacketMatch("S", None, 5001, options=(OptionSpec("mss", True, 1460), OptionSpec("ts", False)))
    rule = nft_rule(replace(SYN, match=match), "s1-eth2", "10.0.0.1", "10.0.0.2", 0x10)
    assert ("tcp dport 5001 tcp flags & (fin|syn|rst|ack|urg) == (syn) tcp option maxseg size 1460 "
            "tcp option timestamp missing numgen inc mod 4000000000 == 1 counter meta mark set 16") in rule


@pytest.mark.parametrize("match, words", [
    (PacketMatch(length=LengthSpec(65496, None, ">65495")), "more than an IPv4 TCP segment can carry (65495 bytes)"),
    (PacketMatch(options=(OptionSpec("sack", True, 5),)), "a SACK option holds 1 to 4 blocks"),
    (PacketMatch(options=(OptionSpec("sack", True, 0),)), "a SACK option holds 1 to 4 blocks"),
    (PacketMatch(options=(OptionSpec("ts", True, 1),)), "ts takes only true or false"),
    (PacketMatch(options=(OptionSpec("md5"),)), "cannot match the TCP option 'md5'"),
])
def test_what_the_switch_cannot_pick_is_said(match, words):
    assert words in nft_can_express(match)


def test_what_the_switch_can_pick():
    assert nft_can_express(PacketMatch("PA", length=LengthSpec(1, 1448, "1-1448"),
                                       options=(OptionSpec("ts"), OptionSpec("sack", True, 4)))) is None
    assert nft_can_express(PacketMatch("S", options=(OptionSpec("mss", True, 65535), OptionSpec("wscale", True, 14)))) is None


# --- several steps on one match: the "rules" chain only counts and marks, the "drops" chain drops
class Recorder(Switch):
    def __init__(self):
        self.commands: list[str] = []

    def pexec(self, args):
        """Each nft command on its own (PacketRules runs several, ' ; '-separated, in one process)."""
        joined = " ".join(args)
        self.commands += [f"nft {c}" for c in joined[4:].split(" ; ")] if joined.startswith("nft ") else [joined]
        return super().pexec(args)


def test_a_drop_step_only_marks_and_the_drops_chain_drops_its_mark():
    rule = nft_rule(SYN, "s1-eth2", "10.0.0.1", "10.0.0.2", 0x11)
    assert rule.endswith('numgen inc mod 4000000000 == 1 counter meta mark set 17 comment "step-13"')
    assert " drop" not in rule
    assert drop_rule(SYN, 0x11) == 'meta mark 17 counter drop comment "drop-13"'


def test_drop_rules_go_in_up_front_in_a_later_chain_and_timed_steps_only_add_marks(monkeypatch):
    added = []
    def nft(args, **kw):
        added.append(" ".join(args))
        return subprocess.CompletedProcess(args, 0, "", "")
    monkeypatch.setattr(packet_rules, "run_command", nft)
    steps = [replace(SYN, nth=2), replace(SYN, index=14, nth=3, at_s=30.0), replace(SYN, index=15, nth=1),
             replace(SYN, action="inject", index=16)]
    switch = Recorder()
    rules = PacketRules([PlacedStep(s, "s1-eth2", Impairment(delay_s=0.025), "10.0.0.1", "10.0.0.2", "s1-eth1")
                         for s in steps], switch, Ledger())
    try:
        t = rules.table
        made = list(switch.commands)
        assert made[:3] == [f"nft add table bridge {t}",
                            f"nft add chain bridge {t} rules {{ type filter hook forward priority 0; policy accept; }}",
                            f"nft add chain bridge {t} drops {{ type filter hook forward priority 10; policy accept; }}"]
        # every drop step's drop is in before the run, the timed one's too
        assert made[3:] == [f'nft add rule bridge {t} drops meta mark {m} counter drop comment "drop-{line}"'
                            for m, line in ((0x10, 13), (0x11, 14), (0x12, 15))]
        rules.install_untimed()
        marking = switch.commands[len(made):]
        assert [c.split("comment ")[-1] for c in marking] == ['"step-13"', '"step-15"']   # no inject, no timed
        assert all(c.startswith(f"nft add rule bridge {t} rules ") and " drop" not in c for c in marking)
        rules.start(time.time() - 29.99)
        for timer in list(rules.timers):
            timer.join(10)
        assert [a for a in added if "add rule" in a] == [
            f'nft add rule bridge {t} rules {nft_rule(steps[1], "s1-eth2", "10.0.0.1", "10.0.0.2", 0x11)}']
    finally:
        rules.close()


def test_without_drop_steps_there_is_no_drops_chain():
    switch = Recorder()
    hold = replace(SYN, action="hold", extra_s=1.0)
    rules = PacketRules([PlacedStep(hold, "s1-eth2", Impairment(delay_s=0.025), "10.0.0.1", "10.0.0.2", "s1-eth1")],
                        switch, Ledger())
    rules.close()
    assert not any("drops" in c for c in switch.commands)


def test_a_match_the_switch_cannot_express_stops_the_set_up_before_any_rule():
    switch = Recorder()
    huge = replace(SYN, match=PacketMatch("PA", length=LengthSpec(65500, None, ">=65500")))
    with pytest.raises(RunFailed, match="network step at line 13: len: >=65500 is more than an IPv4 TCP segment can carry"):
        PacketRules([PlacedStep(huge, "s1-eth2", Impairment(delay_s=0.025), "10.0.0.1", "10.0.0.2", "s1-eth1")],
                    switch, Ledger())
    assert not any("add rule" in c for c in switch.commands)


def test_everything_the_loader_takes_the_switch_can_pick():
    """The loader's bounds (harness.load.segment_fields) are within what nft can match, so
    nft_can_express is only a backstop: the largest length, and each option value at both ends."""
    from harness.load.segment_fields import MAX_LENGTH, OPTION_VALUES
    for length in (LengthSpec(MAX_LENGTH, None, f">={MAX_LENGTH}"), LengthSpec(0, MAX_LENGTH, f"<={MAX_LENGTH}")):
        assert nft_can_express(PacketMatch("PA", length=length)) is None
        assert length_expr(length).count(" . ") >= 2                      # not an empty set
    for name, ends in OPTION_VALUES.items():
        for value in ends:
            assert nft_can_express(PacketMatch(options=(OptionSpec(name, True, value),))) is None, (name, value)
    assert nft_can_express(PacketMatch(length=LengthSpec(MAX_LENGTH + 1, None, "past"))) is not None
