"""Fixtures shared by unit and integration tests."""
from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


def pytest_configure(config) -> None:
    """Ctrl-C as from a terminal, even when the tests were started in the background: a shell
    without job control starts background jobs with SIGINT ignored, Python then installs no
    KeyboardInterrupt handler, and every child inherits the ignore (seen: the Ctrl-C tests of a
    backgrounded CI run saw their interrupts vanish). A handler set here is reset to the default in
    every program the tests start."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """tmpfs("64k") -> a fresh folder with a tmpfs of that size mounted on it (root only): a disk that
    can really fill (or, with "ro,64k"-style options first, be read-only). Every mount is taken down
    after the test, whatever happened."""
    mounts: list[Path] = []

    def mount(size: str, options: str = "") -> Path:
        folder = tmp_path / f"tmpfs-{len(mounts)}"
        folder.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"{options}size={size}", "tmpfs", str(folder)], check=True)
        mounts.append(folder)
        return folder

    try:
        yield mount
    finally:
        for folder in mounts:
            subprocess.run(["umount", "-l", str(folder)], check=False)
