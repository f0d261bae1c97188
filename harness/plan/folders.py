"""Where results go: a run's id, a matrix cell's folder name."""
from __future__ import annotations

import time
import uuid

from harness.load.names import cell_folder  # noqa: F401 (load checks cells' folders apart; plan lays them out)


def run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:4]
