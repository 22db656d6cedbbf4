#!/usr/bin/env python3
"""HTTP MPEG-TS viewers as raw sockets, for tools/load-edge.sh.

    edge_viewers.py PORT PATH VIEWERS SECONDS READY_FILE

Opens VIEWERS connections to 127.0.0.1:PORT, sends `GET PATH`, reads every response for
SECONDS after the last one connected (touching READY_FILE once all are in). Prints, as
`key value` lines: viewers, answered (200 heads), with_media (got a TS sync byte after the
head), per-shard counts (from `x-shard`), total bytes, ended early.
"""
import selectors
import socket
import sys
import time

port, path, viewers, seconds, ready = (
    int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5])
sel = selectors.DefaultSelector()
request = f"GET {path} HTTP/1.1\r\nHost: edge\r\n\r\n".encode()
state = {}
for i in range(viewers):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(request)
    s.setblocking(False)
    state[s] = {"head": b"", "done_head": False, "shard": "?", "status": "", "first": None,
                "bytes": 0, "ended": False}
    sel.register(s, selectors.EVENT_READ)
    # Read what is there while connecting, so early viewers are not left behind.
    for key, _ in sel.select(timeout=0):
        pass
open(ready, "w").close()
deadline = time.time() + seconds
while time.time() < deadline:
    for key, _ in sel.select(timeout=0.5):
        s = key.fileobj
        st = state[s]
        try:
            data = s.recv(65536)
        except BlockingIOError:
            continue
        except OSError:
            data = b""
        if not data:
            st["ended"] = True
            sel.unregister(s)
            continue
        st["bytes"] += len(data)
        if st["done_head"]:
            if st["first"] is None:
                st["first"] = data[:1]
            continue
        st["head"] += data
        at = st["head"].find(b"\r\n\r\n")
        if at < 0:
            continue
        st["done_head"] = True
        head = st["head"][:at].decode("latin-1")
        st["status"] = head.split(" ", 2)[1] if " " in head else ""
        for line in head.split("\r\n"):
            if line.lower().startswith("x-shard:"):
                st["shard"] = line.split(":", 1)[1].strip()
        body = st["head"][at + 4:]
        st["head"] = b""
        if body:
            st["first"] = body[:1]
states = list(state.values())
print("viewers", len(states))
print("answered", sum(1 for st in states if st["status"] == "200"))
print("with_media", sum(1 for st in states if st["first"] == b"\x47"))
for shard in sorted({st["shard"] for st in states}):
    print(f"shard_{shard}", sum(1 for st in states if st["shard"] == shard))
print("bytes", sum(st["bytes"] for st in states))
print("ended_early", sum(1 for st in states if st["ended"]))
