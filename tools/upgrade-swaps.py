#!/usr/bin/env python3
"""upgrade-swaps.py: the zero-downtime binary upgrade, SWAPS times in a row, under load.

    tools/upgrade-swaps.py [SWAPS=20] [CLIENTS=3] [BINARY=target/release/tessera]

Starts tessera (2 shards, one fake stream behind `allow token`) on a free loopback port,
then CLIENTS threads request its playlist as fast as they can, each on a new connection.
SWAPS times: a new process starts on the same port (SO_REUSEPORT), gets 2.5 s to cut its
first segments, and the old one gets SIGTERM and must exit 0. Prints one line of
key=value: requests answered 200, failed ones (a reset, a refusal, another status) and
the first few failures. Needs net.ipv4.tcp_migrate_req = 1 (README, "Upgrading without
dropping a connection"). Loopback only; logs go to a new /tmp/tessera-swaps.XXXXXX.
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

REQUEST = b"GET /live/index.m3u8?token=one HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(port):
    """One request on a new connection: its status, or what went wrong."""
    try:
        conn = socket.create_connection(("127.0.0.1", port), timeout=10)
    except OSError as e:
        return f"connect: {e}"
    out = b""
    with conn:
        try:
            conn.sendall(REQUEST)
            while chunk := conn.recv(65536):
                out += chunk
        except OSError as e:
            return f"{e} after {len(out)} bytes"
    return int(out.split(b" ", 2)[1]) if out else "closed without an answer"


def main():
    swaps = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    clients = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    binary = sys.argv[3] if len(sys.argv) > 3 else "target/release/tessera"
    migrate = "/proc/sys/net/ipv4/tcp_migrate_req"
    if os.path.exists(migrate) and open(migrate).read().strip() != "1":
        sys.exit("upgrade-swaps.py: set net.ipv4.tcp_migrate_req = 1 first")
    out = tempfile.mkdtemp(prefix="tessera-swaps.")
    port = free_port()
    conf = os.path.join(out, "tessera.conf")
    with open(conf, "w") as f:
        f.write(f"http 127.0.0.1:{port};\nauth_backend viewers {{\n    allow token one;\n}}\n"
                "stream live {\n    input fake://fake;\n    on_play auth://viewers;\n"
                "    segment_duration 1;\n}\n")

    def start(n):
        log = open(os.path.join(out, f"server-{n}.log"), "w")
        return subprocess.Popen([binary, "--shards", "2", conf],
                                stdout=subprocess.DEVNULL, stderr=log)

    old = start(0)
    deadline = time.time() + 20
    while fetch(port) != 200:
        if time.time() > deadline:
            sys.exit(f"upgrade-swaps.py: the first server never answered 200 (logs: {out})")
        time.sleep(0.05)
    stop = threading.Event()
    began = time.time()
    signalled = []
    ok, failed = [0] * clients, [[] for _ in range(clients)]

    def client(i):
        while not stop.is_set():
            status = fetch(port)
            if status == 200:
                ok[i] += 1
            else:
                failed[i].append(f"{status} at {time.time() - began:.3f} s")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    bad_exits = 0
    for n in range(1, swaps + 1):
        new = start(n)
        time.sleep(2.5)
        signalled.append(f"{time.time() - began:.3f}")
        old.send_signal(signal.SIGTERM)
        bad_exits += old.wait(30) != 0
        old = new
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join()
    old.send_signal(signal.SIGTERM)
    old.wait(30)
    failures = [f for per in failed for f in per]
    print(f"swaps={swaps} clients={clients} ok={sum(ok)} failed={len(failures)} "
          f"bad_exits={bad_exits} first_failures={failures[:5]} logs={out}")
    if failures:
        print(f"SIGTERMs at (s): {' '.join(signalled)}")


if __name__ == "__main__":
    main()
