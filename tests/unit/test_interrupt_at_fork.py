"""A Ctrl-C that comes while the runner forks a helper (harness.lab.namespaces.interrupts_held):
held during the fork (Python's at-fork hooks would print it as "Exception ignored" and lose it),
delivered right after, with the helper already in the ledger; the helper itself still takes
SIGTERM."""
from __future__ import annotations

import os
import signal
import time

import pytest

from harness.lab.namespaces import Forked

_armed: list[bool] = []


def _interrupt_once() -> None:
    """An at-fork hook (as logging's lock release is one): a Ctrl-C lands while it runs."""
    if _armed:
        _armed.clear()
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)        # in the hook, where Python would run the handler


os.register_at_fork(after_in_parent=_interrupt_once)


def _sleep_forever() -> None:
    print("ready", flush=True)
    time.sleep(60)


class Ledger:
    def __init__(self):
        self.pids: list[int] = []

    def add(self, pids=()):
        self.pids += list(pids)


def test_a_ctrl_c_during_a_fork_arrives_after_it_with_the_helper_recorded(capfd):
    ledger = Ledger()
    _armed.append(True)
    with pytest.raises(KeyboardInterrupt):
        Forked(None, _sleep_forever, name="sleeper", ledger=ledger)
    assert len(ledger.pids) == 1 and "Exception ignored" not in capfd.readouterr().err
    os.kill(ledger.pids[0], signal.SIGTERM)         # the child takes SIGTERM again
    _, status = os.waitpid(ledger.pids[0], 0)
    assert os.waitstatus_to_exitcode(status) == -signal.SIGTERM


def test_a_helper_stops_at_sigterm_and_this_process_takes_interrupts_again():
    helper = Forked(None, _sleep_forever, name="sleeper")
    helper.wait_ready(10)
    started = time.time()
    helper.stop()
    assert helper.returncode == -signal.SIGTERM and time.time() - started < 5
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler    # the runner's handler is back
