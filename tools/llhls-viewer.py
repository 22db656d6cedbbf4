#!/usr/bin/env python3
"""An LL-HLS viewer that uses blocking playlist reload, for measuring tessera.

    tools/llhls-viewer.py URL [SECONDS=10]

URL is an LL-HLS media playlist with the token, e.g.
http://127.0.0.1:8080/auth-check/index.ll.m3u8?token=test1. The viewer loads it once, then
repeats: ask for the playlist with _HLS_msn/_HLS_part naming the preload-hinted part (the
server holds the request until that part exists), note how far behind live the newest
part is (now minus the part's end, from EXT-X-PROGRAM-DATE-TIME plus the part durations
before it; client and server must share a clock, i.e. run on one host), then fetch the
parts it has not fetched yet. One keep-alive connection; bounded by SECONDS.

Prints the latency (min/median/p95/max, ms), the request rate (playlist + part requests
per second) and the bytes per second.
"""
import datetime
import http.client
import re
import sys
import time
import urllib.parse

PART = re.compile(r'#EXT-X-PART:DURATION=([0-9.]+),URI="([^"]+)"')
HINT = re.compile(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="[^"]*?(\d+)\.(\d+)\.m4s')
PDT = re.compile(r"#EXT-X-PROGRAM-DATE-TIME:(\S+)")


def parse(text):
    """Parts as (uri, end epoch seconds), and the hinted (msn, part)."""
    parts, at = [], None
    for line in text.splitlines():
        m = PDT.match(line)
        if m:
            stamp = m.group(1).replace("Z", "+00:00")
            at = datetime.datetime.fromisoformat(stamp).timestamp()
            continue
        m = PART.match(line)
        if m and at is not None:
            at += float(m.group(1))
            parts.append((m.group(2), at))
    hint = HINT.search(text)
    return parts, (int(hint.group(1)), int(hint.group(2))) if hint else None


def main():
    url = urllib.parse.urlsplit(sys.argv[1])
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
    base = url.path.rsplit("/", 1)[0] + "/"
    conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=20)
    requests, received = 0, 0

    def get(path):
        nonlocal requests, received
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        requests += 1
        received += len(body)
        if resp.status != 200:
            sys.exit(f"GET {path}: {resp.status} {body[:200]!r}")
        return body

    parts, hint = parse(get(f"{url.path}?{url.query}").decode())
    fetched = {uri for uri, _ in parts}
    latencies = []
    started = time.time()
    requests = 0
    received = 0
    while time.time() - started < seconds:
        msn, part = hint
        text = get(f"{url.path}?{url.query}&_HLS_msn={msn}&_HLS_part={part}").decode()
        now = time.time()
        parts, hint = parse(text)
        latencies.append((now - parts[-1][1]) * 1000)
        for uri, _ in parts:
            if uri not in fetched:
                get(base + uri)
                fetched.add(uri)
    elapsed = time.time() - started
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
    print(
        f"blocking reloads: {len(latencies)} in {elapsed:.1f} s; behind live at each return "
        f"(now - newest part's end): min {latencies[0]:.0f} ms, median {pick(0.5):.0f} ms, "
        f"p95 {pick(0.95):.0f} ms, max {latencies[-1]:.0f} ms"
    )
    print(
        f"requests: {requests} ({requests / elapsed:.2f}/s, playlist + parts), "
        f"{received * 8 / elapsed / 1000:.0f} kbit/s"
    )


if __name__ == "__main__":
    main()
