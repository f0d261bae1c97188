"""Where results go: a run's id (a matrix cell's folder name is harness.load.names.cell_folder:
the matrix loader already needs it, to refuse two cells that would share a folder)."""
from __future__ import annotations

import time
import uuid


def run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:4]
