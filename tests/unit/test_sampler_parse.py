"""The sock_diag reply parser, on a reply built byte for byte as the kernel lays it out."""
import socket
import struct

import pytest

from harness.record.sampler import NLMSG_DONE, NLMSG_ERROR, SOCK_DIAG_BY_FAMILY, dump_request, parse_dump


def diag_msg(state: int, src: str, sport: int, dst: str, dport: int, timer: int = 0, expires: int = 0,
             cookie: int = 0) -> bytes:
    body = struct.pack("=BBBB", socket.AF_INET, state, timer, 0) + struct.pack(">HH", sport, dport)
    body += socket.inet_aton(src) + bytes(12) + socket.inet_aton(dst) + bytes(12)
    body += struct.pack("=I2I", 0, cookie & 0xFFFFFFFF, cookie >> 32) + struct.pack("=5I", expires, 0, 0, 0, 0)
    return struct.pack("=IHHII", 16 + len(body), SOCK_DIAG_BY_FAMILY, 2, 1, 0) + body


def test_rows_carry_state_addresses_and_timer():
    data = (diag_msg(6, "10.0.0.1", 40000, "10.0.0.2", 5001, timer=3, expires=59000, cookie=(7 << 32) | 4096)
            + diag_msg(10, "0.0.0.0", 5001, "0.0.0.0", 0, cookie=1))
    rows, done = parse_dump(data)
    assert rows == [["TIME-WAIT", "10.0.0.1", 40000, "10.0.0.2", 5001, 3, 59000, 0, (7 << 32) | 4096],
                    ["LISTEN", "0.0.0.0", 5001, "0.0.0.0", 0, 0, 0, 0, 1]]
    assert not done


def test_done_ends_the_dump_and_errors_raise():
    assert parse_dump(struct.pack("=IHHIIi", 20, NLMSG_DONE, 2, 1, 0, 0)) == ([], True)
    with pytest.raises(OSError):
        parse_dump(struct.pack("=IHHIIi", 20, NLMSG_ERROR, 0, 1, 0, -1))


def test_request_asks_for_every_tcp_state():
    req = dump_request(7)
    length, kind, flags, seq, _ = struct.unpack_from("=IHHII", req)
    assert (length, kind, seq) == (len(req), SOCK_DIAG_BY_FAMILY, 7) and flags & 0x300
    assert struct.unpack_from("=BBBBI", req, 16) == (socket.AF_INET, socket.IPPROTO_TCP, 0, 0, 0xFFF)
