"""The sampler's pacing with and without the kernel's trace: what makes it sample at once, and
what it ignores (pure: socket pairs stand in for the packet and note sockets)."""
import socket
import time

import pytest

from harness.record.sampler import Pacer, _woken


class Host:
    def __init__(self) -> None:
        self.packets, self._packets_peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notes, self._notes_peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)

    def segment(self) -> None:
        self._packets_peer.send(b"frame")

    def note(self, when: float) -> None:
        self._notes_peer.send(str(when).encode())


def _pacer(now: float) -> Pacer:
    pacer = Pacer(0.01, 0.15, max_sleep_s=2.0)
    pacer.sampled(now - 1.0, [])           # the last sample a second ago: asleep
    return pacer


def test_traced_a_segment_makes_it_sample_at_once():
    host = Host()
    wake_on = {host.packets: host, host.notes: host}
    pacer = _pacer(time.time())
    assert not _woken([], wake_on, pacer, traced=True)
    host.segment()
    assert _woken([host.packets], wake_on, pacer, traced=True)
    assert pacer.dense_until > time.time()


@pytest.mark.parametrize("traced", [False, True])
def test_an_announced_call_makes_it_dense_around_it(traced):
    """Traced too: a connect() may take over a TIME-WAIT socket's four-tuple (tcp_tw_reuse), an
    end only the samples see."""
    host = Host()
    wake_on = {host.packets: host, host.notes: host}
    pacer = _pacer(time.time())
    when = time.time() + 0.5
    host.note(when)
    _woken([host.notes], wake_on, pacer, traced=traced)
    assert pacer.announced == [when]


def test_idle_it_sleeps_up_to_its_limit():
    pacer = Pacer(0.01, 0.15, max_sleep_s=2.0)
    pacer.sampled(100.0, [])
    assert pacer.next_sample() == 102.0
    pacer.sampled(100.0, [["TIME-WAIT", "10.0.0.1", 1, "10.0.0.2", 2, 3, 500, 0, 7]])   # a timer due in 0.5 s
    assert abs(pacer.next_sample() - (100.5 - pacer.margin_s)) < 1e-9
