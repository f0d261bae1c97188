"""Which kernel a VM boots: an image given by the user, else the newest installed one with netem."""
from __future__ import annotations

import struct
from pathlib import Path

from harness.errors import UserError
from harness.load.facts import version_of

BOOT = Path("/boot")
MODULES = Path("/lib/modules")


def release_of(image: Path) -> str:
    return image.name.removeprefix("vmlinuz-")


def _version_key(release: str) -> tuple:
    """Newest first when sorted in reverse: the dotted numbers as numbers (6.12.118 after 6.12.57),
    then the whole release as text; never a comparison of a number with a text."""
    return (version_of(release) if release[:1].isdigit() else ()), release


def image_release(image: Path) -> str:
    """The release the image says it is (an x86 bzImage's header, which is what virtme-ng reads
    too), so an image named otherwise than vmlinuz-<release> finds its modules; else its name's."""
    try:
        with image.open("rb") as f:
            head = f.read(0x8000)
        if head[0x202:0x206] == b"HdrS":
            at = struct.unpack_from("<H", head, 0x20E)[0] + 0x200
            words = head[at:at + 256].split(b"\0")[0].split()
            if words:
                return words[0].decode("ascii", "replace")
    except (OSError, struct.error):
        pass
    return release_of(image)


def has_netem(release: str, modules: Path = MODULES) -> bool:
    """The VM loads its modules from this machine's /lib/modules/<release>: without sch_netem
    there (a module, or built in) no link can be emulated."""
    tree = modules / release
    if any((tree / "kernel/net/sched").glob("sch_netem.ko*")):
        return True
    builtin = tree / "modules.builtin"
    return builtin.is_file() and "/sch_netem.ko" in builtin.read_text(errors="replace")


def kernels_with_netem(boot: Path = BOOT, modules: Path = MODULES) -> list[Path]:
    return [image for image in installed_kernels(boot) if has_netem(release_of(image), modules)]


def installed_kernels(boot: Path = BOOT) -> list[Path]:
    """/boot's kernel images, newest first."""
    return sorted(boot.glob("vmlinuz-*"), key=lambda p: _version_key(release_of(p)), reverse=True)


def _choices(boot: Path, modules: Path) -> str:
    """The fix's list: the images that would work, and those installed that would not."""
    usable = kernels_with_netem(boot, modules)
    without = [str(p) for p in installed_kernels(boot) if p not in usable]
    lacking = f"; {', '.join(without)} {'lacks' if len(without) == 1 else 'lack'} sch_netem" if without else ""
    if not usable:
        return (f"run scripts/setup (it installs linux-image-amd64 on Debian): no kernel image in {boot} "
                f"has sch_netem{lacking}.")
    return (f"give one of: {', '.join(map(str, usable))} (or leave --kernel out: the newest with netem, "
            f"{usable[0]}, is used){lacking}.")


def pick_kernel(explicit: str | None, boot: Path = BOOT, modules: Path = MODULES) -> Path:
    if explicit:
        image = Path(explicit)
        if not image.is_file():
            raise UserError(f"kernel image '{explicit}' does not exist.", fix=_choices(boot, modules))
        release = image_release(image)
        if not has_netem(release, modules):
            raise UserError(f"kernel image '{explicit}' (release {release}) has no sch_netem in "
                            f"{modules / release}/kernel/net/sched (nor built in), so its VM could not "
                            "emulate the links.", fix=_choices(boot, modules))
        return image
    images = kernels_with_netem(boot, modules)
    if not images:
        raise UserError("no installed kernel image has sch_netem, so no VM can emulate the links.",
                        fix=_choices(boot, modules))
    return images[0]
