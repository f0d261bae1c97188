"""Where results go: a run's id, a matrix cell's folder name."""
from __future__ import annotations

import hashlib
import re
import time
import uuid


def run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:4]


def cell_folder(label: str) -> str:
    """A matrix cell's folder name: its settings, safe for every filesystem (one component, never
    '.', '..', hidden or an option; long labels shortened and told apart by a hash)."""
    name = re.sub(r"[^A-Za-z0-9_.=,#@-]", "_", label).lstrip(".-") or "cell"
    if len(name) > 100:
        name = name[:90] + "-" + hashlib.sha1(label.encode()).hexdigest()[:8]
    return name
