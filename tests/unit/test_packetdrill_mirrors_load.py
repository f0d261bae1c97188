"""experiments/packetdrill/: one experiment per packetdrill script it mirrors. Each file loads (every
cell), validates against the experiment schema, and names its script — in its first comment and in
about: — so a reader can put the two side by side; the folder holds nothing else."""
import json
import re
from pathlib import Path

import jsonschema
import pytest

from harness.load import load_cells
from harness.load.yaml_lines import load_yaml

REPO = Path(__file__).resolve().parents[2]
FOLDER = REPO / "experiments" / "packetdrill"
GOOGLE = "gtests/net/tcp/"                                   # google/packetdrill
KERNEL = "tools/testing/selftests/net/packetdrill/"          # the Linux kernel's selftests

# The 17 establishment and close scripts of issue 14 -> the experiment mirroring each (None: not expressible,
# the README says why). tcp_close_no_rst.pkt is an 18th, mirrored too.
MIRRORS = {
    GOOGLE + "close/close-local-close-then-remote-fin.pkt": "close_local_close_then_remote_fin.yaml",
    GOOGLE + "close/close-on-syn-sent.pkt": "close_on_syn_sent.yaml",
    GOOGLE + "close/close-remote-fin-then-close.pkt": "close_remote_fin_then_close.yaml",
    GOOGLE + "shutdown/shutdown-rd-close.pkt": "shutdown_rd_close.yaml",
    GOOGLE + "shutdown/shutdown-rd-wr-close.pkt": "shutdown_rd_wr_close.yaml",
    GOOGLE + "shutdown/shutdown-rdwr-close.pkt": "shutdown_rdwr_close.yaml",
    GOOGLE + "shutdown/shutdown-rdwr-send-queue-ack-close.pkt": "shutdown_rdwr_send_queue_ack_close.yaml",
    GOOGLE + "shutdown/shutdown-rdwr-write-queue-close.pkt": "shutdown_rdwr_write_queue_close.yaml",
    GOOGLE + "shutdown/shutdown-wr-close.pkt": "shutdown_wr_close.yaml",
    GOOGLE + "ts_recent/fin_tsval.pkt": "fin_tsval.yaml",
    GOOGLE + "ts_recent/invalid_ack.pkt": "invalid_ack.yaml",
    GOOGLE + "ts_recent/reset_tsval.pkt": "reset_tsval.yaml",
    GOOGLE + "user_timeout/user_timeout.pkt": "user_timeout.yaml",
    GOOGLE + "user_timeout/user-timeout-probe.pkt": None,    # local qdisc drops (TCP_RESOURCE_PROBE_INTERVAL)
    KERNEL + "tcp_basic_client.pkt": "tcp_basic_client.yaml",
    KERNEL + "tcp_basic_server.pkt": "tcp_basic_server.yaml",
    KERNEL + "tcp_disorder_fin_in_FIN_WAIT.pkt": "tcp_disorder_fin_in_fin_wait.yaml",
    KERNEL + "tcp_close_no_rst.pkt": "tcp_close_no_rst.yaml",
}
SHIPPED = {script: name for script, name in MIRRORS.items() if name and (FOLDER / name).is_file()}


def test_at_least_15_of_the_17_are_mirrored():
    assert len(MIRRORS) == 18
    assert len([s for s in SHIPPED if not s.endswith("tcp_close_no_rst.pkt")]) >= 15, sorted(set(MIRRORS) - set(SHIPPED))


def test_the_folder_holds_only_mirrors():
    """A file nobody maps to a script would be run by the integration test but listed nowhere."""
    assert sorted(p.name for p in FOLDER.glob("*.yaml")) == sorted(SHIPPED.values())


@pytest.mark.parametrize("script, name", sorted(SHIPPED.items()), ids=lambda v: v.rsplit("/", 1)[-1])
def test_each_mirror_loads_and_names_its_script(script, name):
    path = FOLDER / name
    cells = load_cells(path)
    assert len(cells) == 1, "a mirror is one run (no matrix)"
    exp = cells[0].experiment
    base = script.rsplit("/", 1)[1]
    assert base in exp.about and ("packetdrill" in exp.about), exp.about[:200]
    # the first comment after the schema line names the script with its repository path
    comment = next(line for line in path.read_text().splitlines()[1:] if line.startswith("#"))
    assert script in comment, comment
    # ... and its numbers: the script's lines the file follows
    assert re.search(r"lines? \d+", comment), comment
    assert exp.name == "pd_" + Path(name).stem, "names say they are packetdrill mirrors, one per file"


@pytest.mark.parametrize("name", sorted(SHIPPED.values()))
def test_each_mirror_validates_against_the_schema(name):
    schema = json.loads((REPO / "harness" / "schema" / "experiment.schema.json").read_text())
    doc = json.loads(json.dumps(load_yaml(FOLDER / name)))
    assert not [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(doc)]
    assert (FOLDER / name).read_text().startswith("# yaml-language-server: $schema=../../harness/schema/")
