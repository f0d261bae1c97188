"""Agent run inside one host: performs its steps at t0 + at, logs each call's start and return.

Protocol: stdin line 1 = JSON {"steps": [...], "duration": s, "log": path}; the agent prints
"ready"; stdin line 2 = t0 (epoch seconds). Sockets stay open until t0 + duration.
"""
from __future__ import annotations

import json
import socket
import sys
import threading
import time


def main() -> None:
    plan = json.loads(sys.stdin.readline())
    log = open(plan["log"], "w")
    lock = threading.Lock()

    def record(**entry) -> None:
        with lock:
            log.write(json.dumps(entry) + "\n")
            log.flush()

    print("ready", flush=True)
    t0 = float(sys.stdin.readline())
    conns: list[socket.socket] = []
    for step in plan["steps"]:
        delay = t0 + step["at"] - time.time()
        if delay > 0:
            time.sleep(delay)
        start = time.time()
        entry = {"action": step["action"], "scheduled": t0 + step["at"], "start": start}
        try:
            if step["action"] == "listen":
                server = socket.socket()
                server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                server.bind(("0.0.0.0", step["port"]))
                server.listen(16)
                entry["local"] = list(server.getsockname())
                threading.Thread(target=_accept, args=(server, conns, record), daemon=True).start()
            elif step["action"] == "connect":
                client = socket.socket()
                client.bind((step["bind"], 0))
                entry["local"] = list(client.getsockname())
                entry["peer"] = [step["address"], step["port"]]
                conns.append(client)
                client.connect((step["address"], step["port"]))
            elif step["action"] == "close":
                for conn in conns:
                    conn.close()
            entry["result"] = "ok"
        except OSError as exc:
            entry["result"] = f"error: {exc.strerror or exc}"
            entry["errno"] = exc.errno
        entry["end"] = time.time()
        record(**entry)
    print("done", flush=True)
    sys.stdin.readline()   # hold every socket open until the driver has stopped the recorders


def _accept(server: socket.socket, conns: list, record) -> None:
    while True:
        try:
            conn, peer = server.accept()
        except OSError:
            return
        conns.append(conn)
        record(action="accepted", start=time.time(), end=time.time(), local=list(conn.getsockname()),
               peer=list(peer), result="ok")


if __name__ == "__main__":
    main()
