"""The catalogue: the seed's claims (seed/000_67cc4729f50668e6.txt, in Chinese), each translated,
with what Linux does as the shipped experiments show it and the verdict their passing runs support.

A verdict is what a PASS of every experiment declaring the claim shows, on any kernel: no claim
needs a per-kernel verdict (the kernels' differences — SYN retransmission timing, the FIN past a
full window — touch none of the seed's statements), so there is no per-kernel field. `linux`
cites the experiments by file name; tests/unit/test_claims.py checks each named file declares
the claim."""
from __future__ import annotations

from dataclasses import dataclass

VERDICTS = ("confirmed", "refuted", "nuanced")


@dataclass(frozen=True)
class Claim:
    number: int
    seed_zh: str                 # a short quote from the seed, as written (its typos kept: SNY)
    seed_en: str                 # the same, in English
    linux: str                   # one sentence: what Linux does, as the experiments show it
    verdict: str                 # confirmed | refuted | nuanced, when every run of its experiments passed
    no_experiment: str = ""      # why no shipped experiment declares it (empty: some does)


CLAIMS: tuple[Claim, ...] = (
    Claim(1,
          "6种TCP标志位(位码); SYN: synchronization, 置1表示建立连接; ACK: acknowledgement, 置1表示确认确认序号有效; "
          "FIN: finish, 置1表示数据发送完毕, 希望释放连接; RST: reset, 置1表示出现严重错误, 必须释放连接, 然后再重新建立; "
          "PSH: push, 传送; URG: urgent, 紧急",
          "Six flags: SYN opens a connection, ACK says the acknowledgement number is valid, FIN says the "
          "sender has finished and wants to release the connection, RST means a serious error (release "
          "the connection, then build it again); PSH (push) and URG (urgent) exist.",
          "SYN, ACK and FIN do what the seed says (ACK is set on every segment but the first SYN and a "
          "RST answering a segment without ACK, FIN ends one direction only), but RST is not only for errors: Linux sends it for an abortive close "
          "(SO_LINGER 0, abort.yaml), for close() with unread data (close_with_unread_data.yaml) and to "
          "any segment that meets no socket, and the peer's read fails with ECONNRESET; PSH marks the end "
          "of a write (PA in the captures).",
          "nuanced"),
    Claim(2,
          "客户端将SYN位置1, 随机生成int数值sequence number, 将数据包发送给服务端; 客户端进入SYN_SENT(同步已发送)状态",
          "Handshake 1: the client sets SYN, picks a random sequence number, sends the segment and enters "
          "SYN_SENT.",
          "connect() sends a SYN and the socket is SYN-SENT until the SYN+ACK, but the ISN is not a plain "
          "random number: it is a keyed hash of the four-tuple plus a 64 ns clock (RFC 6528, "
          "secure_tcp_seq), a retransmitted SYN keeps it (stale_syn.yaml), and a connection that takes a "
          "TIME-WAIT four-tuple over with tcp_tw_reuse started at exactly the old snd_nxt + 65537 where "
          "measured (tw_reuse.yaml).",
          "nuanced"),
    Claim(3,
          "服务端收到数据包后根据标志位SNY=1得知客户端请求建立连接, 设置acknowledgement number为sequence number加1; "
          "服务端随机生成int数值sequence number, 服务端将SYN和ACK位都置1 ... 服务端进入SYN_RCVD(同步已收到)状态",
          "Handshake 2: the server sees SYN, sets ack = the client's sequence number + 1, picks its own "
          "random sequence number, sends SYN+ACK and enters SYN_RCVD.",
          "The SYN+ACK acks the client's ISN + 1 with the server's own ISN and the server shows SYN-RECV "
          "(handshake.yaml) — kept as a small request socket beside the listener, the full socket made "
          "only by the final ACK; a copy of the SYN gets the same SYN+ACK again at once, not a second "
          "request (duplicate_syn.yaml), and a lost SYN+ACK is sent again after about 1 s "
          "(synack_loss.yaml).",
          "confirmed"),
    Claim(4,
          "客户端收到数据包后需要检查(1)ACK标志位是否为1 (2)acknowledgement number是否正确 ... 客户端进入ESTABLISHED状态; "
          "服务端收到数据包后需要检查 ... 服务端检查完成后进入ESTABLISHED状态",
          "Handshake 3: the client checks the ACK flag and the acknowledgement number, sends ACK (seq = the "
          "SYN+ACK's ack, ack = the server's sequence number + 1) and enters ESTABLISHED; the server checks "
          "it and enters ESTABLISHED on receipt.",
          "As the seed says: the final ACK carries seq = x+1, ack = y+1, the client is ESTABLISHED when it "
          "sends it (connect() returns one RTT after the SYN) and the server when it arrives "
          "(handshake.yaml); if that ACK is lost the client stays ESTABLISHED while the server holds only "
          "its request until its retransmitted SYN+ACK is answered (final_ack_loss.yaml).",
          "confirmed"),
    Claim(5,
          "为了防止已失效的连接请求延迟到达服务器而产生的问题 ... 如果是三次握手, client不会向server的确认发出确认报文段, "
          "server收不到确认就知道了client没有要求建立连接",
          "Why three segments: a stale connection request that reaches the server late is answered, the "
          "client does not confirm the answer, and the server, getting no confirmation, knows no "
          "connection was wanted: no server resources are wasted.",
          "The outcome holds — a stale SYN never becomes an accepted connection — but not by silence: the "
          "server makes a request (SYN-RECV) and sends a SYN+ACK acking the old ISN + 1, the client's "
          "kernel answers with a RST (seq = old ISN + 1) and the server drops the request one RTT after "
          "the stale SYN arrived instead of retransmitting its SYN+ACK for a minute (stale_syn.yaml; with "
          "the client in TIME-WAIT it first answers with an ACK of the old connection, "
          "stale_syn_time_wait.yaml).",
          "nuanced"),
    Claim(6,
          "client认为自己没有发送连接请求, client处于CLOSED状态, 接到任何包都会丢弃",
          "The client, which sent no such request, is CLOSED and discards anything it receives.",
          "Linux answers a segment that meets no socket with a RST (tcp_v4_send_reset): the stale SYN's "
          "SYN+ACK gets R with seq = old ISN + 1 (stale_syn.yaml), a SYN+ACK arriving after close() in "
          "SYN-SENT gets a RST whose seq is its ACK (close_in_syn_sent.yaml), and a FIN or ACK for a socket "
          "that is gone gets R (fin_timeout_sweep.yaml, packetdrill/close_remote_fin_then_close.yaml); "
          "only an incoming RST is dropped silently.",
          "refuted"),
    Claim(7,
          "client向server发送释放连接报文段(FIN=1, 序列号seq=u), 进入FIN-WAIT-1(终止等待1)状态 ... "
          "client完成第一次挥手后, 就不能再向server发送数据了",
          "Close 1: the client sends FIN (seq = u) and enters FIN-WAIT-1; after it the client can send no "
          "more data.",
          "close() or shutdown(SHUT_WR) sends the FIN (with ACK set) at seq u and the socket is FIN-WAIT-1 "
          "until it is acknowledged (teardown.yaml, half_close.yaml); a later write() fails with EPIPE "
          "(packetdrill/shutdown_wr_close.yaml); with data still queued the FIN rides on the last data "
          "segment (fin_behind_data.yaml).",
          "confirmed"),
    Claim(8,
          "server收到client发送的释放连接报文段后即发出确认报文段(ACK=1, 序列号seq=v, 确认号ack=u+1), "
          "server进入CLOSE-WAIT(关闭等待)状态; client收到server发送的确认报文段后, 进入FIN-WAIT-2(终止等待2)状态",
          "Close 2: on the FIN the server at once sends ACK (seq = v, ack = u+1) and enters CLOSE-WAIT; the "
          "client, on that ACK, enters FIN-WAIT-2.",
          "The ACK (ack = u+1), CLOSE-WAIT and FIN-WAIT-2 are as the seed says, but the ACK is not sent at "
          "once: Linux delays the ACK of a FIN (about 40 ms, the delayed-ACK minimum: teardown.yaml), and "
          "when the application closes within that time the ACK rides on its own FIN — three segments, "
          "and the first closer's FIN-WAIT-2 lasts no time at all (server_closes_first.yaml).",
          "nuanced"),
    Claim(9,
          "(在收到释放报文段之前还需要接受server发送的最后的数据)",
          "Half-close: before the server's FIN the client still receives the last data the server sends "
          "(from CLOSE-WAIT).",
          "True when the client closed with shutdown(SHUT_WR): it reads all 100000 bytes the server sends "
          "in CLOSE-WAIT (half_close.yaml, packetdrill/shutdown_wr_close.yaml); after close() the socket "
          "is orphaned and data arriving for it is answered with a RST (TcpExtTCPAbortOnData), not "
          "received (packetdrill/user_timeout.yaml).",
          "nuanced"),
    Claim(10,
          "server将最后的数据发送完毕之后, 向client发送连接释放报文段(FIN=1, ACK=1, 序列号seq=w, 确认号ack=u+1); "
          "server进入LAST-ACK(最后确认)状态",
          "Close 3: having sent its last data, the server sends FIN+ACK (seq = w, ack = u+1) and enters "
          "LAST-ACK.",
          "The server's close() sends FIN+ACK with seq = w and ack = u+1, w being v plus every byte it sent "
          "in CLOSE-WAIT (v + 100000 in half_close.yaml), and the socket is LAST-ACK until the client's "
          "ACK (teardown.yaml).",
          "confirmed"),
    Claim(11,
          "client收到server发送的连接释放报文段后, 向server发出确认报文段(ACK=1, seq=u+1, ack=w+1); "
          "client进入TIME-WAIT(时间等待)状态 ... 需要经过时间等待计时器设置的时间2MSL后, A才进入CLOSED状态",
          "Close 4: the client ACKs (seq = u+1, ack = w+1) and enters TIME-WAIT; only after the timer's "
          "2MSL does it reach CLOSED.",
          "The ACK (u+1, w+1) and TIME-WAIT are as the seed says (teardown.yaml), but the wait is Linux's "
          "fixed 60 s, restarted when the peer's FIN comes again (its ACK was lost: the client ACKs it "
          "again, time_wait_reack.yaml) and cut short by a RST at exactly rcv_nxt under the default "
          "tcp_rfc1337 0 (time_wait_assassination.yaml) or by a new SYN that takes a TIME-WAIT four-tuple over "
          "(time_wait_old_duplicate.yaml).",
          "nuanced"),
    Claim(12,
          "server只要收到client的确认报文段, 立即进入CLOSED状态, 可以看到, server结束TCP连接的时间要早于client",
          "The server enters CLOSED as soon as the client's ACK arrives: it ends the connection earlier "
          "than the client.",
          "The server in LAST-ACK is gone one RTT after its close(), when the last ACK arrives, while the "
          "client waits 60 s (teardown.yaml) — true of whichever side closes second: when the server "
          "closes first it keeps the TIME-WAIT (server_closes_first.yaml), and when both close at once "
          "both wait (simultaneous_close.yaml).",
          "confirmed"),
    Claim(13,
          "MSL: Maximum Segment Lifetime, 任何报文在网络上存在的最长时间, 超过这个时间报文将被丢弃 ... "
          "需要经过时间等待计时器设置的时间2MSL",
          "MSL is the longest any segment can exist in the network, after which it is discarded; TIME-WAIT "
          "lasts 2MSL.",
          "Linux keeps no segment lifetime: nothing discards a segment for its age (an old segment held 4 s is refused by "
          "the new incarnation's sequence window or PAWS, time_wait_old_duplicate.yaml), and TIME-WAIT is "
          "the fixed TCP_TIMEWAIT_LEN of 60 s, ending 60.0-62.1 s after it began (timer-wheel rounding; "
          "teardown.yaml, server_closes_first.yaml) — no setting changes it: tcp_fin_timeout governs the "
          "orphaned FIN-WAIT-2 only (fin_timeout_sweep.yaml), and a RST or tcp_tw_reuse can end it early "
          "(time_wait_assassination.yaml, tw_reuse.yaml).",
          "nuanced"),
)
