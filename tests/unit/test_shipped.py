"""harness.shipped is the one place that knows where the shipped experiments and topologies are:
in a checkout its top-level folders; in an installed wheel, inside the package (no checkout)."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import UserError
from harness.load.experiment import resolve_experiment_path
from harness.shipped import CODE_ROOT, experiments_dir, source_checkout, topologies_dir

REPO = Path(__file__).resolve().parents[2]


def test_a_checkout_finds_its_top_level_folders():
    assert CODE_ROOT == REPO and source_checkout() == REPO
    assert experiments_dir() == REPO / "experiments" and (experiments_dir() / "handshake.yaml").is_file()
    assert topologies_dir() == REPO / "topologies" and (topologies_dir() / "two_hosts.yaml").is_file()


def test_a_shipped_experiment_is_found_by_name_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_experiment_path("handshake") == experiments_dir() / "handshake.yaml"
    assert resolve_experiment_path("handshake.yaml") == experiments_dir() / "handshake.yaml"
    mirror = next((experiments_dir() / "packetdrill").glob("*.yaml"))
    assert resolve_experiment_path(f"packetdrill/{mirror.stem}") == mirror     # a shipped subfolder


def test_a_name_that_climbs_out_of_the_shipped_folder_is_not_looked_up(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("../topologies/two_hosts", "/etc/passwd.yaml", "packetdrill/../handshake"):
        with pytest.raises(UserError, match="no experiment file"):
            resolve_experiment_path(name)


def test_an_installed_package_finds_them_inside_itself_and_has_no_checkout(tmp_path):
    """The layout a wheel installs (setup.py maps the folders into harness/shipped/), without a
    pyproject.toml or experiments/ next to the package: nothing may reach back into the source."""
    site = tmp_path / "site-packages"
    shutil.copytree(REPO / "harness", site / "harness", ignore=shutil.ignore_patterns("__pycache__"))
    for kind in ("experiments", "topologies"):
        shutil.copytree(REPO / kind, site / "harness" / "shipped" / kind)
    probe = ("from harness.shipped import *; from harness.load import load_cells, resolve_experiment_path as r; "
             "p = r('handshake'); print(CODE_ROOT, source_checkout(), experiments_dir(), topologies_dir(), p, "
             "load_cells(p)[0].experiment.topology.source, sep='\\n')")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run([sys.executable, "-c", probe], cwd=elsewhere, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(site)))
    assert done.returncode == 0, done.stderr
    shipped = site / "harness" / "shipped"
    assert done.stdout.splitlines() == [str(site), "None", str(shipped / "experiments"), str(shipped / "topologies"),
                                        str(shipped / "experiments" / "handshake.yaml"),
                                        str(shipped / "topologies" / "two_hosts.yaml")]
