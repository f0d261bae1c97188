"""The agent locks the pages a file backs (a fault on them would read over 9p in the VM, idle time
the virtual clock skips) and leaves anonymous memory alone: locking the heap it shares with the
runner copied all of it (~1 s of wall time per agent under emulation)."""
from __future__ import annotations


from harness.drive.agent import file_mappings

MAPS = """\
55d0c0a00000-55d0c0a4f000 r--p 00000000 00:1f 1844 /usr/bin/python3.11
55d0c0a4f000-55d0c0d5f000 r-xp 0004f000 00:1f 1844 /usr/bin/python3.11
55d0c2000000-55d0c9000000 rw-p 00000000 00:00 0 [heap]
7f1e2c000000-7f1e2c021000 rw-p 00000000 00:00 0
7f1e30200000-7f1e30228000 r--p 00000000 00:1f 77 /usr/lib/x86_64-linux-gnu/libc.so.6
7f1e30400000-7f1e30402000 rw-p 00200000 00:1f 77 /usr/lib/x86_64-linux-gnu/libc.so.6
7f1e30500000-7f1e30501000 r--p 00000000 00:1f 99 /tmp/a file with spaces
7ffd1c000000-7ffd1c021000 rw-p 00000000 00:00 0 [stack]
7ffd1c1f0000-7ffd1c1f4000 r--p 00000000 00:00 0 [vvar]
"""


def test_only_what_a_file_backs_is_locked():
    assert file_mappings(MAPS) == [(0x55d0c0a00000, 0x55d0c0a4f000), (0x55d0c0a4f000, 0x55d0c0d5f000),
                                   (0x7f1e30200000, 0x7f1e30228000), (0x7f1e30400000, 0x7f1e30402000),
                                   (0x7f1e30500000, 0x7f1e30501000)]


def test_this_processes_own_map_has_its_interpreter_and_no_anonymous_range():
    maps = open("/proc/self/maps").read()
    ranges = file_mappings(maps)
    assert ranges and all(end > start for start, end in ranges)
    heap = next(line for line in maps.splitlines() if line.endswith("[heap]")) if "[heap]" in maps else None
    if heap:
        start = int(heap.split("-")[0], 16)
        assert all(s != start for s, _ in ranges)
