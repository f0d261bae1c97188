"""The run's log: every external command a run executes, with its exit status and time.

Why: a run executes dozens of tc, nft, sysctl, ip, ovs and tcpdump commands; when a result looks
wrong, the first question is what the lab really ran. Everything goes through Python's `logging`:

- `tcp_testbed` — user-facing messages (INFO: the lines a run prints), warnings;
- `tcp_testbed.cmd` — one DEBUG record per external command (`run_command`, `log_command`,
  `node_pexec`, `node_cmd`);
- `mininet` — Mininet's own logger (its `debug()` lines name every tc/ip/ethtool command it runs
  and the output it got); routed into `run.log` while a run log is open, never to the console.

`run_log(run_dir)` writes all of it, at DEBUG, to `run_dir/run.log`; `console(verbose)` prints
INFO lines to stdout as plain lines (unchanged output) and, with `-v`, DEBUG lines live on stderr.
"""
from __future__ import annotations

import logging
import os
import shlex
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Sequence

LOG = logging.getLogger("tcp_testbed")
CMD = logging.getLogger("tcp_testbed.cmd")
RUN_LOG = "run.log"
STDERR_LINES = 5                 # how many lines of a failing command's stderr the log keeps
OUTPUT_LINES = 5                 # how many lines of output a command without exit status keeps
INPUT_LINES = 40                 # how many lines of a command's stdin (an nft ruleset) the log keeps

_open_logs: list[logging.Handler] = []    # run.log handlers currently attached (innermost last)
_held: list["_Held"] = []                  # records kept until a run.log opens (see held_records)
_by_path: dict[Path, logging.Handler] = {}


def _head(text: str | bytes | None, lines: int) -> str:
    """The first `lines` non-empty lines of `text`, indented for the log; '' if there are none."""
    if not text:
        return ""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    kept = [line.rstrip() for line in text.replace("\r", "").splitlines() if line.strip()]
    more = len(kept) - lines
    body = "\n".join(f"    | {line}" for line in kept[:lines])
    return body + (f"\n    | … {more} more line(s)" if more > 0 else "")


def _where(where: str | None) -> str:
    return f"[{where}] " if where else ""


def log_command(args: Sequence[str] | str, returncode: int | None, seconds: float | None, *, where: str | None = None,
                stderr: str | bytes | None = None, output: str | bytes | None = None,
                input: str | bytes | None = None, note: str | None = None) -> None:
    """Record one external command started elsewhere (Popen, Mininet's node.cmd/pexec/popen).

    `returncode` None means the status is not known (Mininet's `cmd()` runs in a shell without
    one): the first lines of `output` are kept instead. On a failure the first lines of `stderr`.
    A command fed on stdin (`nft -f -`) keeps the first lines of what it was fed, marked `<`.
    `note` is said after the status (tcpdump's packet and drop counts)."""
    line = args if isinstance(args, str) else shlex.join(str(a) for a in args)
    status = "exit status unknown" if returncode is None else f"exit {returncode}"
    detail = _head(stderr, STDERR_LINES) if returncode else ""
    if returncode is None:
        detail = _head(output, OUTPUT_LINES)
    fed = _head(input, INPUT_LINES).replace("    | ", "    < ")
    detail = "\n".join(part for part in (fed, detail) if part)
    took = f" in {seconds:.3f} s" if seconds is not None else ""
    took += f" ({note})" if note else ""
    CMD.debug("%s$ %s -> %s%s%s", _where(where), line, status, took, "\n" + detail if detail else "")


def log_started(args: Sequence[str] | str, pid: int | None, *, where: str | None = None) -> None:
    """Record a long-lived process as it starts (tcpdump, the guardian, the VM); its end is a
    `log_command` with the exit status."""
    line = args if isinstance(args, str) else shlex.join(str(a) for a in args)
    CMD.debug("%s$ %s -> started%s", _where(where), line, f", pid {pid}" if pid is not None else "")


def run_command(args: Sequence[str], *, input: str | bytes | None = None, timeout: float | None = None,
                check: bool = False, text: bool = True, where: str | None = None, cwd: str | Path | None = None,
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`subprocess.run(args, capture_output=True)`, logged: the command, its exit status, its time,
    and the first lines of stderr when it fails. A timeout or a missing program is logged, then raised."""
    args = [str(a) for a in args]
    start = time.monotonic()
    try:
        done = subprocess.run(args, input=input, timeout=timeout, capture_output=True, text=text, cwd=cwd, env=env)
    except subprocess.TimeoutExpired as e:
        CMD.debug("%s$ %s -> timed out after %.3f s", _where(where), shlex.join(args), time.monotonic() - start)
        raise e
    except OSError as e:
        CMD.debug("%s$ %s -> not started: %s", _where(where), shlex.join(args), e)
        raise
    log_command(args, done.returncode, time.monotonic() - start, where=where, stderr=done.stderr, input=input)
    if check:
        done.check_returncode()
    return done


def node_pexec(node, args: Sequence[str]) -> tuple[str, str, int]:
    """Mininet's `node.pexec(args)` (out, err, exit code), logged with the node's name."""
    start = time.monotonic()
    out, err, code = node.pexec([str(a) for a in args])
    log_command(args, code, time.monotonic() - start, where=getattr(node, "name", None), stderr=err)
    return out, err, code


def node_cmd(node, command: str) -> str:
    """Mininet's `node.cmd(command)` (its shell gives no exit status): logged with its output."""
    start = time.monotonic()
    out = node.cmd(command)
    log_command(command, None, time.monotonic() - start, where=getattr(node, "name", None), output=out)
    return out


class _RunLogFormatter(logging.Formatter):
    """Wall clock (ISO, UTC) and seconds since the run began (monotonic: its first held record, else
    when the log was opened) on every line."""

    def __init__(self, t0: float | None = None) -> None:
        super().__init__()
        self.t0 = time.monotonic() if t0 is None else t0

    def format(self, record: logging.LogRecord) -> str:
        wall = datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")
        offset = getattr(record, "monotonic", time.monotonic()) - self.t0
        message = record.getMessage().strip("\n")
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        return f"{wall} +{offset:9.3f}s {record.levelname:<7} {record.name}: {message}"


class _NotBlank(logging.Filter):
    """Mininet logs fragments ('\\n', '(') meant to be joined on a terminal: keep only text."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            return bool(record.getMessage().strip())
        except Exception:      # a malformed third-party record must not break the run
            return True


def route_mininet() -> None:
    """Mininet's logger at DEBUG while a run log is open (its console handler stays quiet), at
    ERROR otherwise. Call after anything that calls Mininet's `setLogLevel`, which resets both."""
    if "mininet.log" not in sys.modules:
        return
    from mininet.log import lg
    console_handler = getattr(lg, "ch", None)
    if console_handler is not None:
        console_handler.setLevel(logging.ERROR)
    lg.setLevel(logging.DEBUG if _open_logs else logging.ERROR)
    for handler in _open_logs:
        if handler not in lg.handlers:
            lg.addHandler(handler)


class _Held(logging.Handler):
    """Keeps every record (stamped with the monotonic clock) until a run.log takes them."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not _open_logs:          # once a run.log is open it has the records itself
            record.monotonic = time.monotonic()
            self.records.append(record)


@contextmanager
def held_records() -> Iterator[None]:
    """Keep the records of a run's first moments — its preflight probes (modprobe, `nft -f -`), the
    clean-up of a killed run, the guardian's start — which come before its folder may be made (a
    run that fails its preflight leaves nothing behind): the next `run_log` writes them first.
    Without one, they are dropped at exit."""
    handler = _Held()
    level = LOG.level
    LOG.addHandler(handler)
    LOG.setLevel(logging.DEBUG)
    _held.append(handler)
    try:
        yield
    finally:
        _held.remove(handler)
        LOG.removeHandler(handler)
        LOG.setLevel(level)


def _take_held() -> list[logging.LogRecord]:
    """The records held so far (oldest first), handed over once."""
    records = sorted((r for h in _held for r in h.records), key=lambda r: r.monotonic)
    for h in _held:
        h.records.clear()
    return records


class _RunLogFile(logging.FileHandler):
    """run.log is diagnostics, not evidence: when its disk is full the run's own checks say what
    evidence is missing, so a failed write is remembered here instead of printing logging's
    "--- Logging error ---" traceback into the user's terminal."""
    failed: str | None = None

    def handleError(self, record: logging.LogRecord) -> None:
        if self.failed is None:
            self.failed = str(sys.exc_info()[1])

    def flush(self) -> None:
        try:
            super().flush()
        except OSError as exc:     # a full disk
            self.failed = self.failed or str(exc)

    def close(self) -> None:
        try:
            super().close()
        except OSError as exc:     # the last flush on a full disk
            self.failed = self.failed or str(exc)


@contextmanager
def run_log(run_dir: Path, verbose: bool = False) -> Iterator[Path]:
    """Write every record of the `tcp_testbed` and `mininet` loggers, at DEBUG, to
    `run_dir/run.log` for the duration; the handler is flushed, closed and detached at exit (so
    the file is whole before the folder is published). `verbose` is for the console (`console`)."""
    path = Path(run_dir) / RUN_LOG
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = _RunLogFile(path, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    held = _take_held()
    handler.setFormatter(_RunLogFormatter(held[0].monotonic if held else None))
    handler.addFilter(_NotBlank())
    for record in held:            # what the run did before its folder existed, first
        handler.handle(record)
    level = LOG.level
    LOG.addHandler(handler)
    LOG.setLevel(logging.DEBUG)
    _open_logs.append(handler)
    _by_path[path.resolve()] = handler
    route_mininet()
    LOG.debug("run log opened: pid %d, argv %s, verbose %s", os.getpid(), shlex.join(sys.argv), verbose)
    try:
        yield path
    finally:
        finish_run_log(path)
        LOG.setLevel(level)


def finish_run_log(run_dir_or_file: Path) -> None:
    """Flush, close and detach the run log of a folder (or its run.log) now, e.g. just before the
    folder is published (copied out of a VM's staging area); `run_log`'s exit is then a no-op.
    Safe to call twice and for a folder without an open log."""
    path = Path(run_dir_or_file)
    path = (path if path.name == RUN_LOG else path / RUN_LOG).resolve()
    handler = _by_path.pop(path, None)
    if handler is None:
        return
    LOG.debug("run log closed")
    _open_logs.remove(handler)
    LOG.removeHandler(handler)
    if "mininet.log" in sys.modules:
        sys.modules["mininet.log"].lg.removeHandler(handler)
        route_mininet()
    handler.flush()                # a failed flush is kept in handler.failed, never raised
    handler.close()


class _Stream(logging.Handler):
    """Writes to whatever sys.stdout/sys.stderr is at the time (pytest, redirections), flushed at
    once: the VM target's output interleaves with ours on the same terminal."""

    def __init__(self, stream_name: str, level: int, high: int | None = None) -> None:
        super().__init__(level)
        self.stream_name = stream_name
        self.high = high

    def emit(self, record: logging.LogRecord) -> None:
        if self.high is not None and record.levelno >= self.high:
            return
        try:
            stream = getattr(sys, self.stream_name)
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:
            self.handleError(record)


_console: list[logging.Handler] = []


def console(verbose: bool = False) -> None:
    """The terminal: INFO and above from `tcp_testbed` on stdout as plain lines (exactly what
    `print` gave), and with `verbose` every DEBUG record (each command) live on stderr, so stdout
    reads the same with or without -v. Idempotent: a second call replaces the first."""
    for handler in _console:
        LOG.removeHandler(handler)
    _console.clear()
    plain = _Stream("stdout", logging.INFO)
    plain.setFormatter(logging.Formatter("%(message)s"))
    _console.append(plain)
    if verbose:
        live = _Stream("stderr", logging.DEBUG, high=logging.INFO)
        live.setFormatter(logging.Formatter("  %(name)s: %(message)s"))
        _console.append(live)
    for handler in _console:
        LOG.addHandler(handler)
    if LOG.level == logging.NOTSET or LOG.level > logging.DEBUG:
        LOG.setLevel(logging.DEBUG)


def say(message: str) -> None:
    """A user-facing line (INFO): printed by `console`, kept in run.log. Without a console set
    up (a library caller, not the CLI) the default one is, so the line is printed as before."""
    if not _console:
        console()
    LOG.info(message)
