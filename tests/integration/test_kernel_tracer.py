"""The kernel tracer on this machine's kernel: a real connection between two namespaces traced
through its own tracefs instance, which is gone afterwards — after a normal stop, after an
interrupt, and through the ledger when the run was killed."""
import os
import subprocess
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import pytest

from harness.analyse.kernel_trace import read_kernel_trace
from harness.lab.leftovers import Ledger, remove
from harness.record.tracer import KernelTracer, tracefs_root

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
              pytest.mark.skipif(os.geteuid() == 0 and tracefs_root() is None, reason="no tracefs")]


def sh(command: str) -> None:
    subprocess.run(command, shell=True, check=True)


@pytest.fixture
def two_namespaces():
    a, b = f"tta{uuid.uuid4().hex[:6]}", f"ttb{uuid.uuid4().hex[:6]}"
    sh(f"ip netns add {a}; ip netns add {b}; ip link add {a} type veth peer name {b}; "
       f"ip link set {a} netns {a}; ip link set {b} netns {b}; "
       f"ip -n {a} addr add 10.98.0.1/24 dev {a}; ip -n {b} addr add 10.98.0.2/24 dev {b}; "
       f"ip -n {a} link set {a} up; ip -n {b} link set {b} up")
    try:
        yield a, b
    finally:
        sh(f"ip netns del {a}; ip netns del {b}")


def _exchange(a: str, b: str) -> None:
    """b listens on 10.98.0.2:5001 and closes first after one byte; a connects, then closes."""
    server = subprocess.Popen(["ip", "netns", "exec", b, "python3", "-c",
                               "import socket; s = socket.socket(); s.bind(('10.98.0.2', 5001)); s.listen()\n"
                               "c, _ = s.accept(); c.recv(1); c.close(); s.close()"])
    time.sleep(0.5)
    subprocess.run(["ip", "netns", "exec", a, "python3", "-c",
                    "import socket, time; s = socket.socket(); s.connect(('10.98.0.2', 5001)); s.send(b'x')\n"
                    "time.sleep(0.3); s.close()"], check=True)
    server.wait(timeout=10)


def test_a_connection_is_traced_and_the_instance_removed(tmp_path, two_namespaces):
    tracer = KernelTracer(tmp_path / "trace")
    assert tracer.available, tracer.problem
    instance = tracer.instance
    assert instance.is_dir()
    try:
        _exchange(*two_namespaces)
    finally:
        tracer.stop()
    assert not instance.exists()
    assert tracer.problems() == []
    trace = read_kernel_trace(tmp_path)
    (client,) = [s for s in trace.sockets if s.local[0] == "10.98.0.1" and s.peer == ("10.98.0.2", 5001)]
    assert [t.new for t in client.transitions] == ["SYN-SENT", "ESTAB", "CLOSE-WAIT", "LAST-ACK", "CLOSED"]
    (server,) = trace.sockets_of(("10.98.0.2", 5001), client.local)
    assert [t.new for t in server.transitions] == ["SYN-RECV", "ESTAB", "FIN-WAIT-1", "FIN-WAIT-2", "CLOSED"]
    # on the captures' clock (epoch seconds), in order
    assert abs(client.start - time.time()) < 60 and client.transitions[1].t >= client.start


def test_an_interrupt_leaves_no_instance(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with ExitStack() as helpers:
            tracer = helpers.enter_context(KernelTracer(tmp_path / "trace"))
            instance = tracer.instance
            raise KeyboardInterrupt
    assert not instance.exists()


def test_a_killed_runs_instance_goes_with_its_ledger(tmp_path):
    ledger = Ledger(suffix=f"-tracer-test-{uuid.uuid4().hex[:6]}")
    try:
        tracer = KernelTracer(tmp_path / "trace", ledger)
        assert str(tracer.instance) in ledger.data["trace_instances"]
        remove(dict(ledger.data))                 # what the guardian or the next run does
        assert not Path(tracer.instance).exists()
    finally:
        ledger.close()


def test_a_trace_that_cannot_be_written_is_said_not_raised(tmp_path):
    """A full disk (here: a folder that cannot be made) at the stop: the run's evidence check says
    so with the rest (exit 3), the instance still goes."""
    (tmp_path / "file").write_text("")
    tracer = KernelTracer(tmp_path / "file" / "trace")
    instance = tracer.instance
    tracer.stop()
    assert not instance.exists()
    (problem,) = tracer.problems()
    assert problem.startswith("the kernel trace could not be written (trace/: ")
