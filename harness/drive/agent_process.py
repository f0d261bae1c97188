"""The runner's side of an agent (harness.drive.agent): a forked process in a host's namespace,
with the helpers' lifecycle (harness.lab.lifecycle) and the agent's line protocol spoken for it."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from harness.drive.agent import main as agent_main
from harness.lab.namespaces import Forked
from harness.model import AgentStep


class AgentProcess(Forked):
    """Started by the constructor in host `host` (namespace of `pid`; None: this one) with its
    plan sent at once; ready at its "ready" line; go(t0) starts its timeline; wait_done() waits for
    its "done" line (it ends its own steps at t0 + duration); stop() kills it, which closes the
    sockets it held, reaps it and closes its pipes."""

    def __init__(self, host: str, pid: int | None, steps: Sequence[AgentStep], duration_s: float, log_path: Path | str,
                 ledger=None) -> None:
        super().__init__(pid, agent_main, name=f"agent in {host}", ledger=ledger)
        self.host = host
        self.done_line: str | None = None
        try:
            self.send(json.dumps({"steps": [step.to_json() for step in steps], "duration": duration_s, "log": str(log_path),
                                  "host": host}))
        except BaseException:
            self.stop()          # it died at once: reaped here, its last words kept for summary()
            raise

    def go(self, t0: float) -> None:
        """Tell it the timeline's start (epoch seconds)."""
        self.send(f"{t0}")

    def wait_done(self, timeout: float | None = None) -> None:
        if self.done_line is None:
            self.done_line = self.read_line(timeout, f"the agent in {self.host} did not finish its steps")

    def summary(self) -> dict:
        return super().summary() | {"host": self.host, "finished": self.done_line is not None}
