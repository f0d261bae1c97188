"""--kernel: a wrong path, or an image whose modules lack sch_netem, is a paragraph naming the images
that would work, before anything boots (the VM would otherwise fail inside, 40 s later)."""
from __future__ import annotations

import struct

import pytest

from harness.errors import UserError
from harness.plan.kernels import image_release, kernels_with_netem, pick_kernel


@pytest.fixture
def machine(tmp_path):
    """A /boot with 6.1 and 6.12 (both with netem, 6.12 as a compressed module) and 5.10 without."""
    boot, modules = tmp_path / "boot", tmp_path / "modules"
    boot.mkdir()
    for release, module in [("6.1.0-57-amd64", "sch_netem.ko"), ("6.12.118+deb12-amd64", "sch_netem.ko.xz"),
                            ("5.10.0-30-amd64", "sch_prio.ko")]:
        (boot / f"vmlinuz-{release}").write_bytes(b"image")
        sched = modules / release / "kernel/net/sched"
        sched.mkdir(parents=True)
        (sched / module).write_bytes(b"")
    return boot, modules


def test_the_newest_kernel_with_netem_is_the_default(machine):
    boot, modules = machine
    assert [p.name for p in kernels_with_netem(boot, modules)] == ["vmlinuz-6.12.118+deb12-amd64", "vmlinuz-6.1.0-57-amd64"]
    assert pick_kernel(None, boot, modules) == boot / "vmlinuz-6.12.118+deb12-amd64"


def test_a_missing_image_lists_the_installed_ones_and_which_lack_netem(machine):
    boot, modules = machine
    with pytest.raises(UserError) as caught:
        pick_kernel(str(boot / "vmlinuz-6.1.0-26-amd64"), boot, modules)
    fix = caught.value.fix
    assert "does not exist" in caught.value.message
    assert f"give one of: {boot}/vmlinuz-6.12.118+deb12-amd64, {boot}/vmlinuz-6.1.0-57-amd64 (" in fix
    assert "leave --kernel out" in fix
    assert f"{boot}/vmlinuz-5.10.0-30-amd64 lacks sch_netem" in fix


def test_an_image_without_netem_modules_is_refused_before_booting(machine):
    boot, modules = machine
    with pytest.raises(UserError) as caught:
        pick_kernel(str(boot / "vmlinuz-5.10.0-30-amd64"), boot, modules)
    assert "has no sch_netem" in caught.value.message and "5.10.0-30-amd64" in caught.value.message
    assert "give one of:" in caught.value.fix


def test_an_image_without_modules_at_all_is_refused(machine, tmp_path):
    boot, modules = machine
    custom = tmp_path / "bzImage"
    custom.write_bytes(b"image")
    with pytest.raises(UserError, match="has no sch_netem"):
        pick_kernel(str(custom), boot, modules)


def test_an_image_with_netem_is_taken_as_given(machine):
    boot, modules = machine
    assert pick_kernel(str(boot / "vmlinuz-6.1.0-57-amd64"), boot, modules) == boot / "vmlinuz-6.1.0-57-amd64"


def test_netem_built_in_counts(machine):
    boot, modules = machine
    (modules / "5.10.0-30-amd64/modules.builtin").write_text("kernel/net/sched/sch_netem.ko\n")
    assert pick_kernel(str(boot / "vmlinuz-5.10.0-30-amd64"), boot, modules).name == "vmlinuz-5.10.0-30-amd64"


def test_an_image_named_otherwise_finds_its_modules_by_the_release_in_its_header(machine, tmp_path):
    boot, modules = machine
    head = bytearray(0x400)
    head[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", head, 0x20E, 0x100)
    head[0x300:0x300 + 40] = b"6.1.0-57-amd64 (someone@example) #1 SMP\0".ljust(40, b"\0")
    custom = tmp_path / "bzImage"
    custom.write_bytes(bytes(head))
    assert image_release(custom) == "6.1.0-57-amd64"
    assert pick_kernel(str(custom), boot, modules) == custom


def test_no_kernel_with_netem_says_to_run_setup(tmp_path):
    boot = tmp_path / "boot"
    boot.mkdir()
    (boot / "vmlinuz-5.10.0-30-amd64").write_bytes(b"image")
    with pytest.raises(UserError) as caught:
        pick_kernel(None, boot, tmp_path / "modules")
    assert "scripts/setup" in caught.value.fix and "vmlinuz-5.10.0-30-amd64 lacks sch_netem" in caught.value.fix
