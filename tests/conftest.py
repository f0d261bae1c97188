"""Fixtures shared by unit and integration tests."""
from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


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
