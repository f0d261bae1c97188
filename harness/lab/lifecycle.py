"""One lifecycle for every helper a run starts (tcpdump, the state sampler, the agents, the
packet rules, the VM), after Flent's runners (check/start/join/kill/parse):

    helper = Helper(...)          # starts it (a process, rules on the switch...)
    helper.wait_ready(timeout)    # blocks until it does its job (tcpdump "listening on", "ready"...)
    helper.stop()                 # kills and reaps, joins threads, closes pipes; idempotent
    helper.summary()              # what it has to say afterwards (drops, exit status, counters)

Every helper is a context manager whose exit is stop(), so a runner enters each one into a single
ExitStack as it starts it and every way out (an error, a helper that never got ready, Ctrl-C)
stops them all in reverse order. stop() must be safe before ready, after a failure and twice.
"""
from __future__ import annotations

from typing import Iterable, Protocol, runtime_checkable


@runtime_checkable
class Helper(Protocol):
    """What the runner may rely on for any helper."""

    def wait_ready(self, timeout: float | None = None) -> None: ...

    def stop(self) -> None: ...

    def summary(self) -> dict: ...

    def __enter__(self): ...

    def __exit__(self, *exc) -> bool | None: ...


class Lifecycle:
    """Base class: stop() runs the subclass's _stop() once, even when called again or when
    _stop() itself fails part-way (a second stop() must not retry what already half-ran)."""

    stopped: bool = False

    def wait_ready(self, timeout: float | None = None) -> None:
        """Most helpers are ready once started; those with a ready signal override this."""

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        self._stop()

    def _stop(self) -> None:
        raise NotImplementedError

    def summary(self) -> dict:
        return {}

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        """Stop; if the block is already failing, that error stays the one raised (it says why
        the run failed) and a failure to stop is added to it as a note."""
        try:
            self.stop()
        except Exception as error:      # noqa: BLE001 - raised, or noted on the error in flight
            if exc is None:
                raise
            exc.add_note(f"also, stopping {type(self).__name__} failed: {error}")


class HelperGroup(Lifecycle):
    """Helpers started one by one that must stop together at one place in the ExitStack's order
    (the agents start after the captures yet must stop after them, so their sockets' closing is
    not recorded): enter the group early, add() each helper as it starts."""

    def __init__(self) -> None:
        self.helpers: list[Helper] = []

    def add(self, helper):
        """Take `helper` into the group (stopped with it; at once if the group already stopped)."""
        self.helpers.append(helper)
        if self.stopped:
            helper.stop()
        return helper

    def wait_ready(self, timeout: float | None = None) -> None:
        """Wait for each in turn (all were started first, so they get ready side by side)."""
        for helper in self.helpers:
            helper.wait_ready(timeout)

    def _stop(self) -> None:
        stop_all(reversed(self.helpers))

    def summary(self) -> dict:
        return {"helpers": [helper.summary() for helper in self.helpers]}

    def __iter__(self):
        return iter(self.helpers)


def recorded_or_stopped(helper: Lifecycle, ledger, **things) -> None:
    """Record a just-started helper's processes in the run's ledger; if that fails (a full
    /run), stop the helper before raising: nobody else holds it yet."""
    try:
        ledger.add(**things)
    except BaseException:
        helper.stop()
        raise


def stop_all(helpers: Iterable[Helper]) -> None:
    """Stop every helper in order; one that fails to stop does not keep the others running (the
    first error is raised after all were stopped)."""
    error: BaseException | None = None
    for helper in list(helpers):
        try:
            helper.stop()
        except Exception as exc:      # noqa: BLE001 - re-raised below, after the others
            error = error or exc
    if error:
        raise error
