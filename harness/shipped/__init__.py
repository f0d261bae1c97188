"""Where things are, in one place: the experiments and topologies that come with tcp-testbed, and
the folder that holds the harness package (helpers and the VM start `python -m harness...` there).

A wheel carries experiments/ and topologies/ inside this package (setup.py maps the top-level
folders here), so `pip install .` works without the source; a source checkout, or an editable
install of one, has them at its top level. Nothing else in the code knows the layout."""
from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import harness

CODE_ROOT = Path(harness.__file__).resolve().parent.parent   # a checkout, or site-packages: always exists


def _folder(kind: str) -> Path:
    packaged = files(__name__) / kind
    if packaged.is_dir():
        return Path(str(packaged))
    return CODE_ROOT / kind


def experiments_dir() -> Path:
    """The shipped experiments (run-experiment handshake.yaml looks here)."""
    return _folder("experiments")


def topologies_dir() -> Path:
    """The shipped topologies (an experiment's `topology: two_hosts` looks here)."""
    return _folder("topologies")


def source_checkout() -> Path | None:
    """The source checkout this code runs from (it has the Vagrantfile and scripts/), or None when
    installed from a wheel."""
    return CODE_ROOT if (CODE_ROOT / "pyproject.toml").is_file() else None
