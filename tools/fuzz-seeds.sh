#!/usr/bin/env bash
# Regenerates the fuzz seeds that are real client bytes (fuzz/seeds/TARGET): curl's and
# openssl's TLS ClientHello, ffprobe's RTMP handshake and connect command, srt-live-transmit's
# induction. A one-shot listener on 127.0.0.1 records what each client sends first. The
# hand-written seeds (HTTP, RTSP, portal answers, config) are kept in the repo as they are.
set -euo pipefail
cd "$(dirname "$0")/../fuzz/seeds"
cap=$(mktemp -d)
trap 'rm -rf "$cap"' EXIT
cat >"$cap/capture.py" <<'PY'
# capture.py tcp|rtmp|udp PORT OUT SECONDS: records what the first client sends (an RTMP
# client gets a plain S0+S1+S2 so it goes on to its connect command; UDP datagrams are kept
# length-prefixed, the srt_packet target's input format).
import socket, sys, time
mode, port, out, secs = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
data = b""
if mode == "udp":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", port))
    s.settimeout(secs); grams = []
    try:
        while len(grams) < 4:
            d, _ = s.recvfrom(2000); grams.append(d)
    except socket.timeout:
        pass
    data = b"".join(bytes([min(len(g), 255)]) + g[:255] for g in grams)
else:
    l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind(("127.0.0.1", port)); l.listen(1); l.settimeout(secs)
    c, _ = l.accept(); c.settimeout(0.5); end = time.time() + secs; sent = False
    while time.time() < end:
        try:
            d = c.recv(65536)
        except socket.timeout:
            continue
        if not d:
            break
        data += d
        if mode == "rtmp" and not sent and len(data) >= 1537:
            c.sendall(b"\x03" + b"\x00" * 3072); sent = True
open(out, "wb").write(data)
PY
port=${PORT:-19400}
capture() { # MODE OUT CLIENT...
    local mode=$1 out=$2; shift 2
    python3 "$cap/capture.py" "$mode" "$port" "$cap/$out" 4 &
    local listener=$!
    sleep 0.5
    timeout 3 "$@" >/dev/null 2>&1 </dev/null || true
    wait "$listener"
}
capture tcp tls13 curl -sk --max-time 2 "https://127.0.0.1:$port/s/index.m3u8"
capture tcp tls12 openssl s_client -tls1_2 -servername example.com -alpn http/1.1 -connect "127.0.0.1:$port"
capture rtmp rtmp ffprobe -v quiet "rtmp://127.0.0.1:$port/static/s?token=t"
capture udp srt srt-live-transmit "srt://127.0.0.1:$port?streamid=#!::r=s,m=request,token=t" file://con
# The first byte of each seed is the target's mode byte (piece size, prefix choice).
{ printf '\001'; cat "$cap/tls13"; } >tls_record/curl-tls13
{ printf '\003'; cat "$cap/tls12"; } >tls_record/openssl-tls12-sni-alpn
{ printf '\000'; cat "$cap/rtmp"; } >rtmp_handshake/ffprobe-play
{ printf '\101'; tail -c +1538 "$cap/rtmp"; } >rtmp_handshake/digest-then-connect
{ printf '\100'; tail -c +3074 "$cap/rtmp"; } >rtmp_chunk/ffprobe-connect
tail -c +3074 "$cap/rtmp" | tail -c +13 | head -c 128 >rtmp_amf0/connect
cp "$cap/srt" srt_packet/srt-live-transmit-induction
ls -l tls_record rtmp_handshake rtmp_chunk rtmp_amf0 srt_packet
