"""Which kernel a VM boots: an image given by the user, else the newest installed one with netem."""
from __future__ import annotations

import re
from pathlib import Path

from harness.errors import UserError


def release_of(image: Path) -> str:
    return image.name.removeprefix("vmlinuz-")


def _version_key(release: str) -> list:
    return [int(x) if x.isdigit() else x for x in re.split(r"[.-]", release)]


def kernels_with_netem() -> list[Path]:
    images = []
    for image in Path("/boot").glob("vmlinuz-*"):
        mods = Path("/lib/modules") / release_of(image) / "kernel/net/sched"
        if any(mods.glob("sch_netem.ko*")):
            images.append(image)
    return sorted(images, key=lambda p: _version_key(release_of(p)), reverse=True)


def pick_kernel(explicit: str | None) -> Path:
    if explicit:
        image = Path(explicit)
        if not image.is_file():
            raise UserError(f"kernel image '{explicit}' does not exist.", fix="give a path like /boot/vmlinuz-6.1.0-26-amd64.")
        return image
    images = kernels_with_netem()
    if not images:
        raise UserError("no installed kernel image has sch_netem, so no VM can emulate the links.",
                        fix="run scripts/setup (it installs linux-image-amd64 on Debian).")
    return images[0]
