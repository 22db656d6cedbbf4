#!/usr/bin/env python3
"""WebRTC (WHEP) viewers for load: N headless peers (aiortc) play one stream, and the
server's CPU per viewer is measured from /proc, all on 127.0.0.1 and bounded in time.

    tools/whep-load.py --pid PID --url 'http://127.0.0.1:PORT/NAME/whep?token=T' \\
        [--viewers 50] [--seconds 20]

Prints the server's CPU (% of one core) over SECONDS before the viewers come (idle) and
over SECONDS once all are connected, the difference per viewer, and how many viewers
received video and audio packets (getStats). Needs aiortc (PyPI; not in Debian):
    python3 -m venv /tmp/rtcenv && /tmp/rtcenv/bin/pip install aiortc aiohttp
    /tmp/rtcenv/bin/python tools/whep-load.py ...
The viewers decode what they receive (aiortc decodes as it receives) on the same cores:
the server's figure is its own CPU time, but it competes with them for the cores.
"""
import argparse
import asyncio
import os

import aiohttp
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaBlackhole

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


async def cpu_percent(pid, seconds):
    before = cpu_seconds(pid)
    await asyncio.sleep(seconds)
    return 100.0 * (cpu_seconds(pid) - before) / seconds


async def open_viewer(http, url):
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    pc.addTransceiver("audio", direction="recvonly")
    hole = MediaBlackhole()
    pc.on("track", hole.addTrack)
    await pc.setLocalDescription(await pc.createOffer())
    headers = {"content-type": "application/sdp"}
    async with http.post(url, data=pc.localDescription.sdp, headers=headers) as r:
        body = await r.text()
        if r.status != 201:
            await pc.close()
            raise RuntimeError(f"POST answered {r.status}: {body.strip()}")
    await pc.setRemoteDescription(RTCSessionDescription(body, "answer"))
    await hole.start()
    return pc, hole


async def received(pc):
    kinds = set()
    for s in (await pc.getStats()).values():
        if s.type == "inbound-rtp" and s.packetsReceived > 0:
            kinds.add(s.kind)
    return kinds


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--url", required=True)
    ap.add_argument("--viewers", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=20)
    a = ap.parse_args()
    idle = await cpu_percent(a.pid, a.seconds)
    async with aiohttp.ClientSession() as http:
        peers = []
        for _ in range(a.viewers):
            peers.append(await open_viewer(http, a.url))
        await asyncio.sleep(5)  # ICE, DTLS, the first keyframe
        busy = await cpu_percent(a.pid, a.seconds)
        kinds = [await received(pc) for pc, _ in peers]
        for pc, hole in peers:
            await hole.stop()
            await pc.close()
    both = sum(1 for k in kinds if {"video", "audio"} <= k)
    video = sum(1 for k in kinds if k == {"video"})
    audio = sum(1 for k in kinds if k == {"audio"})
    print(f"server CPU idle {idle:.1f}% of a core, with {a.viewers} WebRTC viewers "
          f"{busy:.1f}%: {(busy - idle) / a.viewers:.2f}% per viewer; of {a.viewers}, "
          f"{both} received video and audio, {video} video only, {audio} audio only")


asyncio.run(main())
