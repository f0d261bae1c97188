"""dpkt's parts (harness.dpkt_parts, imported without dpkt's __init__ to spare a VM run ~300
module reads) decode every recorded capture exactly as the whole of dpkt does."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PCAPS = sorted(str(p) for p in (ROOT / "tests" / "fixtures").rglob("*.pcap"))
DECODE = """
import sys
{first}
from harness.analyse.segments import read_segments
from harness.analyse.icmp_path import read_icmp_errors
from pathlib import Path
import dpkt
for f in sys.argv[1:]:
    print(f, [repr(s) for s in read_segments(Path(f))], [repr(s) for s in read_icmp_errors(Path(f))])
print(len([m for m in sys.modules if m.startswith("dpkt")]))
"""


def _decoded(first: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", DECODE.format(first=first), *PCAPS], cwd=ROOT, text=True,
                         capture_output=True, check=True).stdout
    return out.splitlines()


def test_the_parts_decode_every_fixture_capture_as_the_whole_of_dpkt():
    assert len(PCAPS) > 20
    parts, whole = _decoded("from harness.dpkt_parts import dpkt"), _decoded("import dpkt")
    assert parts[:-1] == whole[:-1]
    assert any("flags=" in line or "seq" in line for line in parts[:-1])     # something was decoded
    assert int(parts[-1]) < 30 < int(whole[-1])        # and the parts imported a fraction of dpkt
