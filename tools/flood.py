#!/usr/bin/env python3
"""flood.py: holds COUNT idle connections to one of tessera's listeners for SECONDS.

    flood.py PROTO PORT COUNT SECONDS [SOURCES]
    PROTO: http | https | rtmp | rtsp (TCP: connect, send nothing) or srt (UDP: an SRT
    handshake induction from each socket, again every second: what a caller sends first)

TCP connections the server closes (its caps, its first-request deadline) are opened again
at once, so COUNT are kept trying for the whole run: a flood, not a single wave. Sockets are
bound to SOURCES loopback addresses in turn (127.0.0.2 ...; default COUNT/250 of them) so
the per-address cap is not what stops them. Prints one line of key=value: connections
opened, closed by the server, connect errors, the most held at once. Loopback only.
"""
import errno
import os
import resource
import selectors
import socket
import struct
import sys
import time


def raise_file_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def srt_induction(socket_id):
    """An SRT handshake induction (draft-sharabayko-srt §4.3.1: caller's first packet)."""
    header = struct.pack(">IIII", 0x80000000, 0, 0, 0)  # control, type 0 = handshake
    body = struct.pack(
        ">IHHIIIIIII",
        4,  # version (HSv4 for induction)
        0,  # encryption
        2,  # extension field: 2 in an induction request
        0x12345678,  # initial sequence number
        1500,  # MTU
        8192,  # flow window
        1,  # handshake type: induction
        socket_id,
        0,  # SYN cookie
        0x0100007F,  # peer IP: its first word, then 12 zero bytes
    ) + b"\x00" * 12
    return header + body


def flood_srt(port, count, seconds, sources):
    socks = []
    for i in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((f"127.0.0.{2 + i % sources}", 0))
        s.setblocking(False)
        socks.append(s)
    sent = replies = errors = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        start = time.monotonic()
        for i, s in enumerate(socks):
            try:
                s.sendto(srt_induction(0x1000 + i), ("127.0.0.1", port))
                sent += 1
            except OSError:
                errors += 1
            try:
                while s.recv(2048):
                    replies += 1
            except OSError:
                pass
        time.sleep(max(0.0, 1.0 - (time.monotonic() - start)))
    print(f"proto=srt sockets={count} inductions={sent} replies={replies} errors={errors}")


def flood_tcp(proto, port, count, seconds, sources):
    sel = selectors.DefaultSelector()
    state = {"opened": 0, "closed": 0, "errors": 0, "held": 0, "most": 0}
    next_source = [0]

    def open_one():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.bind((f"127.0.0.{2 + next_source[0] % sources}", 0))
        next_source[0] += 1
        s.setblocking(False)
        err = s.connect_ex(("127.0.0.1", port))
        if err not in (0, errno.EINPROGRESS):
            state["errors"] += 1
            s.close()
            return False
        sel.register(s, selectors.EVENT_READ)
        state["opened"] += 1
        state["held"] += 1
        state["most"] = max(state["most"], state["held"])
        return True

    def topup():
        misses = 0
        while state["held"] < count and misses < 100:
            if not open_one():
                misses += 1

    topup()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for key, _ in sel.select(timeout=0.2):
            s = key.fileobj
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if not data:  # the server closed it (or refused it)
                sel.unregister(s)
                s.close()
                state["held"] -= 1
                state["closed"] += 1
        topup()
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    print(
        f"proto={proto} target={count} opened={state['opened']} closed_by_server={state['closed']} "
        f"connect_errors={state['errors']} most_held={state['most']}"
    )


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    proto, port, count, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    sources = int(sys.argv[5]) if len(sys.argv) > 5 else max(1, -(-count // 250))
    if sources > 250:
        sys.exit("at most 250 source addresses")
    hard = raise_file_limit()
    count = min(count, hard - 64)
    if proto == "srt":
        flood_srt(port, count, seconds, sources)
    else:
        flood_tcp(proto, port, count, seconds, sources)


if __name__ == "__main__":
    main()
