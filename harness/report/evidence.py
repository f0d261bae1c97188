"""Evidence on disk: written whole or not at all, checked before any verdict, the verdict last.

A results disk that fills up mid-run must never leave a passing result.json beside empty pcaps.
Every file is written to a temporary name, fsynced and renamed (so a file either holds all its
bytes or does not exist), the run folder's evidence is checked (pcaps parse to their last record,
samples cover the timeline, each host's step log holds every step it ran), and result.json comes
last. A run whose evidence is incomplete gets a result.json with "complete": false and the
reasons (when even that cannot be written, none), and exits 3.
"""
from __future__ import annotations

import errno
import json
import os
import struct
import tempfile
from dataclasses import asdict
from pathlib import Path

from harness.errors import RunFailed, UserError
from harness.model import StepRecord

VERDICT = "result.json"
CHUNK = 1 << 20


class EvidenceIncomplete(RunFailed):
    """Some evidence of the run is missing or cut short: it cannot support a verdict (exit 3)."""

    def __init__(self, problems: list[str], folder: Path, marked: bool) -> None:
        self.problems, self.folder, self.marked = problems, folder, marked
        where = (f"{folder / VERDICT} marks the run incomplete (\"complete\": false)" if marked
                 else f"no {VERDICT} was written in {folder}")
        full = any("file system is full" in p for p in problems)
        advice = ("Free space in that folder (or give --results-dir elsewhere) and run again." if full else
                  "Nothing of it was judged; run it again (run.log in the run folder has every command and exit status).")
        super().__init__("its evidence is incomplete (a file is missing, empty or cut short):\n  " + "\n  ".join(problems)
                         + f"\n{where}. {advice}")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.partial")


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write `data` to `path` so that it holds all of it or does not exist (temp name, fsync, rename)."""
    _write_chunks(path, [data.encode() if isinstance(data, str) else data])


def _write_chunks(path: Path, chunks) -> int:
    temp = _temp_name(path)
    written = 0
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            for chunk in chunks:
                _write_all(fd, chunk)
                written += len(chunk)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
        _fsync_dir(path.parent)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return written


def _chunks_of(path: Path):
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


def write_json(path: Path, value: dict) -> None:
    atomic_write(path, json.dumps(value, indent=2, default=_plain))


def _plain(value: object) -> object:
    """A record as JSON: its own to_json when it has one (StepRecord, NetworkCheck...), else its fields."""
    if hasattr(value, "to_json"):
        return value.to_json()
    return asdict(value) if hasattr(value, "__dataclass_fields__") else str(value)


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


def publish(work_dir: Path, final_dir: Path) -> list[str]:
    """Copy a staged run folder to its final place, each file atomically, result.json last.

    Returns the problems (files not copied whole); result.json is not copied when any exist."""
    files = sorted(p for p in work_dir.rglob("*") if p.is_file() and not p.name.endswith(".partial"))
    files.sort(key=lambda p: p.relative_to(work_dir) == Path(VERDICT))   # the verdict last
    problems = []
    for src in files:
        rel = src.relative_to(work_dir)
        if rel == Path(VERDICT) and problems:
            break
        dst = final_dir / rel
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            copied = _write_chunks(dst, _chunks_of(src))
            if copied != src.stat().st_size:
                problems.append(f"{rel}: copied {copied} of {src.stat().st_size} bytes")
        except OSError as exc:
            problems.append(f"{rel} could not be copied to {final_dir}: {_why(exc)}")
    return problems


def sync_files(run_dir: Path) -> list[str]:
    """fsync every file the recorders wrote in place: a full disk may only say so now."""
    problems = []
    for path in sorted(p for p in run_dir.rglob("*") if p.is_file()):
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            problems.append(f"{path.relative_to(run_dir)} could not be flushed to disk: {_why(exc)}")
    return problems


def pcap_problem(path: Path) -> str | None:
    """Why a pcap is not whole (missing, empty, cut inside a record), or None."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"{path.name}: {_why(exc)}"
    if len(data) < 24:
        return f"{path.name} is {'empty' if not data else f'cut short ({len(data)} bytes, no whole pcap header)'}"
    magic = data[:4]
    order = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">" if magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d") else None
    if order is None:
        return f"{path.name} is not a pcap file"
    offset = 24
    while offset < len(data):
        if offset + 16 > len(data):
            return f"{path.name} is cut short inside a record header at byte {offset}"
        caplen = struct.unpack_from(order + "I", data, offset + 8)[0]
        if offset + 16 + caplen > len(data):
            return f"{path.name} is cut short inside a record at byte {offset}"
        offset += 16 + caplen
    return None


def samples_problem(path: Path, until: float | None) -> str | None:
    """Why a samples file does not cover the run (missing, empty, a cut line, ends early), or None."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        return f"samples/{path.name}: {getattr(exc, 'strerror', None) or exc}"
    if not lines:
        return f"samples/{path.name} is empty"
    try:
        last = json.loads(lines[-1])["t"]
        for line in lines[:-1]:
            json.loads(line)
    except (ValueError, KeyError, TypeError):
        return f"samples/{path.name} holds a cut or garbled line"
    if until is not None and last < until:
        return f"samples/{path.name} ends {until - last:.3f} s before the timeline did"
    return None


def step_log_problem(path: Path, planned: int | dict[str | None, int]) -> tuple[list[StepRecord], str | None]:
    """A host's step log and why it is not whole: a cut line, or fewer steps logged than the
    agent ran. `planned`: its steps per socket (each socket's lane runs all of its steps unless one
    was still waiting when the run ended), or one count for the host (logs without socket names)."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        return [], f"steps/{path.name}: {getattr(exc, 'strerror', None) or exc}"
    try:
        entries = [StepRecord.from_json(json.loads(line)) for line in lines]
    except (ValueError, TypeError):
        return [], f"steps/{path.name} holds a cut or garbled line"
    ran = [e for e in entries if not e.accepted and not e.snapshot]
    per_socket = planned if isinstance(planned, dict) else {None: planned}
    for socket, wanted in per_socket.items():
        mine = [e for e in ran if e.socket == socket] if isinstance(planned, dict) else ran
        if len(mine) < wanted and not any(e.blocked for e in mine):
            lane = f" on socket {socket}" if socket else ""
            return entries, f"steps/{path.name} logs {len(mine)} of the {wanted} step(s){lane} the agent ran"
    return entries, None


def full_disk_note(folder: Path) -> str:
    """' (its file system is full)' when it is: the likely reason evidence is missing."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return ""
    return " (its file system is full)" if st.f_bavail == 0 or st.f_favail == 0 else ""


def mark_incomplete(folder: Path, result: dict, problems: list[str]) -> bool:
    """Write result.json saying the run is incomplete, with why; False when even that fails."""
    marked = dict(result, complete=False, problems=problems, passed=False, expectations=[])
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / VERDICT, marked)
        return True
    except OSError:
        return False


def check_writable(folder: Path) -> None:
    """Before anything is built or booted: the results folder (or, while it does not exist, the
    nearest folder it would be made in: nothing is created for a run that may not happen) takes a
    file and some bytes."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(existing))
        fd, name = tempfile.mkstemp(prefix=".tcp-testbed-write-test-", dir=existing)
        try:
            _write_all(fd, b"\0" * 65536)
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(name)
    except OSError as exc:
        reason = {errno.EROFS: "it is on a read-only file system", errno.ENOSPC: "its file system is full",
                  errno.EDQUOT: "the disk quota is used up", errno.EACCES: "permission denied",
                  errno.EPERM: "permission denied", errno.ENOTDIR: "a part of its path is a file"}.get(
                      exc.errno, _why(exc))
        raise UserError(f"the results folder '{folder}' cannot be written ({reason}), so no run could keep its "
                        "evidence; nothing was built or booted.",
                        fix="give --results-dir a writable folder with free space (or free space there).") from None
