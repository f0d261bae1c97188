"""The Vagrantfile is valid, and provisions with the same set-up script as the README and CI."""
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("vagrant") is None, reason="vagrant is not installed (scripts/setup --tests)")
def test_vagrant_validate_passes():
    # --ignore-provider: no VirtualBox or libvirt here (nor in CI); the Vagrantfile itself is checked.
    done = subprocess.run(["vagrant", "validate", "--ignore-provider"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "validated successfully" in done.stdout, done.stdout + done.stderr


def test_provisioning_is_the_setup_script():
    text = (REPO / "Vagrantfile").read_text()
    assert 'config.vm.box = boxes[debian]' in text      # which box: tests/unit/test_vagrant_box.py
    assert "bash /vagrant/scripts/setup" in text
