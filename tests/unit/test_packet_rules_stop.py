"""PacketRules' stop: its nftables tables deleted in one transaction, or (one already gone, so the
transaction deletes neither) each alone, every one tried; the ledger told only when all went."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from harness.lab import packet_rules
from harness.lab.packet_rules import PacketRules


class Ledger:
    def __init__(self):
        self.forgotten = []

    def forget(self, **kw):
        self.forgotten.append(kw)


def rules(families: list[str]) -> PacketRules:
    """A PacketRules past its constructor (which sets the tables up with nft), as _stop sees it."""
    made = object.__new__(PacketRules)
    made.table, made.families, made.prefix, made.timers = "tt_run", families, [], []
    made.closed, made.ledger = False, Ledger()
    return made


@pytest.fixture
def nft(monkeypatch):
    """Stands in for nft: the tables there, every command run."""
    tables, commands = {("bridge", "tt_run"), ("netdev", "tt_run")}, []

    def run_command(args, **kw):
        commands.append(args)
        deletes = [part.split()[2:4] for part in " ".join(args[1:]).split(" ; ")]
        if any(tuple(d) not in tables for d in deletes):
            return SimpleNamespace(returncode=1, stderr="Error: No such file or directory", stdout="")
        tables.difference_update(tuple(d) for d in deletes)
        return SimpleNamespace(returncode=0, stderr="", stdout="")
    monkeypatch.setattr(packet_rules, "run_command", run_command)
    return SimpleNamespace(tables=tables, commands=commands)


def test_both_tables_go_in_one_process(nft):
    made = rules(["bridge", "netdev"])
    made._stop()
    assert nft.commands == [["nft", "delete table bridge tt_run ; delete table netdev tt_run"]]
    assert nft.tables == set() and made.ledger.forgotten == [{"nft_tables": ["tt_run"]}]


def test_with_the_bridge_table_gone_the_netdev_table_still_goes(nft):
    nft.tables.discard(("bridge", "tt_run"))
    made = rules(["bridge", "netdev"])
    made._stop()
    assert nft.commands[1:] == [["nft", "delete", "table", "bridge", "tt_run"], ["nft", "delete", "table", "netdev", "tt_run"]]
    assert nft.tables == set()
    assert made.ledger.forgotten == []       # one delete failed: the ledger's close() tries again, harmlessly


def test_one_family_is_one_delete(nft):
    made = rules(["bridge"])
    made._stop()
    assert nft.commands == [["nft", "delete", "table", "bridge", "tt_run"]]
    assert made.ledger.forgotten == [{"nft_tables": ["tt_run"]}]
