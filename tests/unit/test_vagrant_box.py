"""TCP_TESTBED_DEBIAN picks the Vagrant VM's box (13 trixie by default, or 12 bookworm), and any
other value stops `vagrant` with one line saying what to give. Read by Ruby with a stand-in for
Vagrant's configure, so no Vagrant (nor a provider) is needed, only the ruby Vagrant runs on."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# config.vm.box= (and every other setting) lands on one stand-in that remembers the assignments.
STAND_IN = """
class StandIn
  def initialize(log); @log = log; end
  def method_missing(name, *args)
    @log[name.to_s.chomp("=")] = args.first if name.to_s.end_with?("=")
    self
  end
  def respond_to_missing?(*); true; end
end
module Vagrant
  def self.configure(_version)
    log = {}
    yield StandIn.new(log)
    puts log["box"]
  end
end
load ARGV[0]
"""

pytestmark = pytest.mark.skipif(shutil.which("ruby") is None, reason="ruby is not installed (vagrant brings it)")


def box(value: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TCP_TESTBED_DEBIAN"}
    if value is not None:
        env["TCP_TESTBED_DEBIAN"] = value
    return subprocess.run(["ruby", "-e", STAND_IN, str(REPO / "Vagrantfile")], env=env, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("value, expected", [(None, "debian/trixie64"), ("", "debian/trixie64"),
                                             ("13", "debian/trixie64"), ("12", "debian/bookworm64"),
                                             (" 12 ", "debian/bookworm64")])
def test_the_variable_picks_the_box(value, expected):
    done = box(value)
    assert done.returncode == 0 and done.stdout.strip() == expected, done.stdout + done.stderr


@pytest.mark.parametrize("value", ["11", "bookworm", "debian/bookworm64"])
def test_another_value_is_one_line_saying_what_to_give(value):
    done = box(value)
    assert done.returncode != 0 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and f'TCP_TESTBED_DEBIAN="{value}"' in done.stderr
    assert "Fix: give 13 (trixie" in done.stderr and "12 (bookworm" in done.stderr
