"""The host-VM protocol: the plan file round-trips, markers are made and read back by the same
module, and a marker is never taken for (or shown as) an output line."""
from __future__ import annotations

from pathlib import Path

from harness.plan import GuestSettings
from harness.targets import protocol


def test_the_plan_file_carries_items_and_guest_settings(tmp_path):
    entries = [protocol.PlanItem(Path("/x/a.yaml"), 0, None, 64, 630.0).to_json(),
               protocol.PlanItem(Path("/x/b.yaml"), 2, Path("/r/m/cell"), 64, 700.0).to_json()]
    protocol.write_plan(tmp_path / "plan.json", entries, protocol.guest_settings("virtual"))
    items, guest = protocol.read_plan(tmp_path / "plan.json")
    assert items[0] == protocol.PlanItem(Path("/x/a.yaml"), 0, None, 64, 630.0)
    assert items[1].run_dir == Path("/r/m/cell") and items[1].cell == 2 and items[1].limit_s == 700.0
    assert guest == GuestSettings(protocol.GUEST_STAGE, "vm/virtual-clock") and guest.virtual_clock
    protocol.write_plan(tmp_path / "p2.json", [], GuestSettings())
    assert protocol.read_plan(tmp_path / "p2.json") == ([], GuestSettings())


def test_markers_round_trip():
    start = protocol.parse_marker(protocol.start_marker(3))
    assert (start.kind, start.index) == ("start", 3)
    done = protocol.parse_marker(protocol.done_marker(1, 2, 12.34, Path("/r/exp/run 1")))
    assert (done.kind, done.index, done.code, done.seconds, done.run_dir) == ("done", 1, 2, 12.3, "/r/exp/run 1")
    bare = protocol.parse_marker(protocol.done_marker(0, 3, 1.0, None).rstrip())   # the host strips line ends
    assert (bare.code, bare.run_dir) == (3, "")
    limit = protocol.parse_marker(protocol.limit_marker("boot", 900.4))
    assert (limit.kind, limit.what, limit.seconds) == ("limit", "boot", 900.0)
    assert protocol.parse_marker(protocol.limit_marker("4", 630)).index == 4


def test_output_lines_are_not_markers():
    for line in ("running the timeline (3 s)", "", "  @@start 0", "results: /r/@@done"):
        assert protocol.parse_marker(line) is None and not protocol.is_marker(line)
    assert protocol.is_marker(protocol.start_marker(0))


def test_the_vm_command_carries_no_environment_settings():
    source = (Path(protocol.__file__).parent / "vm.py").read_text()
    assert "TCP_TESTBED_" not in source


def test_batch_items_become_plan_entries_the_guest_reads_back(tmp_path):
    from types import SimpleNamespace

    from harness.plan.batch_plan import BatchItem
    from harness.targets import vm
    items = [BatchItem(Path("a.yaml"), "a", "vm", SimpleNamespace(duration_s=3), 0, None),
             BatchItem(Path("b.yaml"), "b[x=1]", "vm", SimpleNamespace(duration_s=65), 1, tmp_path / "m" / "x=1")]
    protocol.write_plan(tmp_path / "plan.json", vm.plan_entries(items, 8), protocol.guest_settings("host"))
    read, guest = protocol.read_plan(tmp_path / "plan.json")
    assert [i.path for i in read] == [Path("a.yaml").resolve(), Path("b.yaml").resolve()]
    assert [i.cell for i in read] == [0, 1] and read[1].run_dir == (tmp_path / "m" / "x=1").resolve()
    assert [i.limit_s for i in read] == [vm.item_limit_s(i.experiment) for i in items] and read[0].max_cells == 8
    assert guest.target == "vm/host-clock" and not guest.virtual_clock


def test_a_limit_after_the_last_item_round_trips():
    """A VM that overruns after its last item's @@done is stopped with a limit marker the host
    must read back (it used to say "after the last item", which crashed the batch)."""
    after = protocol.parse_marker(protocol.limit_marker(protocol.AFTER_LAST, 600))
    assert (after.kind, after.what, after.index, after.seconds) == ("limit", protocol.AFTER_LAST, None, 600.0)
    assert protocol.parse_marker(protocol.limit_marker(protocol.BOOT, 900)).index is None


def test_malformed_marker_lines_are_output_never_an_error():
    for line in ("@@start", "@@start x", "@@start 1 2", "@@done", "@@done 1", "@@done 1 x 2.0", "@@done 1 0 y",
                 "@@limit after the last item 600", "@@limit 3", "@@limit 3 x", "@@limit -1 5", "@@", "@@other 1",
                 "@@start -1"):
        assert protocol.parse_marker(line) is None and not protocol.is_marker(line), line
    import pytest
    with pytest.raises(ValueError):
        protocol.limit_marker("after the last item", 600)      # the host cannot make one it cannot read
