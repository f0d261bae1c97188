"""tcpdump on one interface inside its node: started before traffic, flushed before teardown."""
from __future__ import annotations

import os
import re
import select
import shutil
import signal
import subprocess
import time
from pathlib import Path

from harness.errors import RunFailed
from harness.lab.lifecycle import Lifecycle, recorded_or_stopped
from harness.lab.namespaces import die_with_parent, interrupts_held
from harness.runlog import log_command, log_started


SNAP_LEN = 2048        # bytes kept of each frame: every header, and the start of any payload
BUFFER_KIB = 16384     # the capture's ring in the kernel


class Capture(Lifecycle):
    """tcpdump on `intf` inside `node` (anything with Mininet's popen), writing `out`: started by
    the constructor (recorded in `ledger`), ready at its "listening on" line, stopped by SIGINT so
    the file is flushed whole; summary() has the kernel's drop count and tcpdump's exit status."""

    def __init__(self, node, intf: str, out: Path, ledger=None) -> None:
        self.intf, self.out = intf, out
        parent = os.getpid()          # tcpdump (mnexec execs it) dies with the runner, even by SIGKILL
        # --immediate-mode: otherwise libpcap hands packets over in blocks (at least once a second)
        # and tcpdump, stopped by SIGINT, never writes the last block, silently ("0 dropped by kernel")
        # -s/-B: in immediate mode libpcap's ring has one slot per frame, each as big as the snap
        # length (up to 256 KiB on an interface with GSO): the default 2 MiB held a handful of
        # frames, and 100 connects at once lost 35-90 per interface. 2 KiB slots in 16 MiB hold
        # 8000; the analysis reads lengths from the IP header, so cut payloads lose nothing it uses.
        self._stderr = b""
        self._summary: dict | None = None
        self._patience: float | None = 30.0   # how long stop() waits for the flush (wait_ready's limit)
        tcpdump = ["tcpdump", "--immediate-mode", "-U", "-n", "-Z", "root", "-s", str(SNAP_LEN),
                   "-B", str(BUFFER_KIB), "-i", intf, "-w", str(out), "tcp or arp or icmp"]
        # setpriv (util-linux) sets the death signal in the child, so Python starts it with vfork: a
        # preexec_fn forces a full fork of the runner, whose page tables are copied (six a run, each
        # ~0.1-0.3 s under emulation). Without setpriv, the preexec_fn as before.
        how = ({"args": ["setpriv", "--pdeathsig", "KILL", "--", *tcpdump]} if shutil.which("setpriv")
               else {"args": tcpdump, "preexec_fn": lambda: die_with_parent(parent)})
        with interrupts_held():     # preexec_fn runs Python's at-fork hooks, where a Ctrl-C would be lost
            self.proc = node.popen(how.pop("args"), **how)
            log_started(self.proc.args, self.proc.pid, where=getattr(node, "name", None))
            if ledger is not None:      # in the ledger before an interrupt can come
                recorded_or_stopped(self, ledger, pids=[self.proc.pid])

    def wait_ready(self, timeout: float | None = 120.0) -> None:
        """Block until tcpdump listens (all captures are started first, then waited for). None
        waits until it listens or dies: the run's plan says so on a VM's virtual clock, which
        skips ahead while the guest idles (a guest-time limit fired after a few real seconds)."""
        self._patience = timeout          # stopping is held to the same clock (None: wait for the flush)
        deadline = time.time() + (timeout if timeout is not None else float("inf"))
        while b"listening on" not in self._stderr:
            if self.proc.poll() is not None or time.time() > deadline:
                raise RunFailed(f"tcpdump on {self.intf} did not start: {self._stderr.decode(errors='replace').strip()}")
            ready, _, _ = select.select([self.proc.stderr], [], [], 0.5)
            if ready:
                self._stderr += self.proc.stderr.read1(4096)

    def stop(self) -> dict:
        """SIGINT, wait for the file to be flushed, and report the kernel's drop count (summary())."""
        super().stop()
        return self.summary()

    def _stop(self) -> None:
        if self.proc.poll() is None:
            self._wait_drained()
            self.proc.send_signal(signal.SIGINT)
        try:
            try:
                _, err = self.proc.communicate(timeout=self._patience)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                _, err = self.proc.communicate()
        except BaseException:
            self.proc.kill()          # never left running, whatever went wrong
            self.proc.wait()
            raise
        text = (self._stderr + (err or b"")).decode(errors="replace")
        dropped = re.search(r"(\d+) packets? dropped by kernel", text)
        log_command(self.proc.args, self.proc.returncode, None, where=self.intf, stderr=text,
                    note="; ".join(line.strip() for line in text.splitlines() if " packets " in line))
        self._summary = {"interface": self.intf, "file": self.out.name,
                         "dropped_by_kernel": int(dropped.group(1)) if dropped else None,
                         "exit_status": self.proc.returncode}

    def _wait_drained(self, limit_s: float = 2.0) -> None:
        """Wait (briefly) until tcpdump sleeps: in immediate mode it sleeps only in poll() with
        no packet left unread, and a SIGINT while packets wait in its ring loses them unsaid."""
        deadline = time.monotonic() + limit_s
        while b"listening on" in self._stderr and time.monotonic() < deadline:
            try:
                stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
            except OSError:
                return
            if stat[stat.rindex(")") + 2] == "S":
                return
            time.sleep(0.001)

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def summary(self) -> dict:
        """Drops and exit status once stopped; before that, what is known (no drop count yet)."""
        return dict(self._summary) if self._summary else {"interface": self.intf, "file": self.out.name,
                                                           "dropped_by_kernel": None, "exit_status": self.proc.poll()}
