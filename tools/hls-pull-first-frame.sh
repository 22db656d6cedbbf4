#!/usr/bin/env bash
# Time from a viewer's first request to media for an on-demand HLS pull: a tessera origin
# (`fake://`, 2 s segments) and a tessera edge pulling it with `input hls://...; static
# false;` on 127.0.0.1. After the origin has segments, each run waits until the edge's
# pull has stopped (no viewer: session idle 30 s + clients_timeout 1 s), then times with
# curl a first `/s/mpegts` request to its first byte: the first frame (the request waits
# for the pull). `pulls started` shows each run started one. (A playlist request is no
# measure after the first run: the ended stream's last segments still answer it.)
#
#   tools/hls-pull-first-frame.sh [BIN=target/debug/tessera] [ROUNDS=4]
# Every background process is under `timeout`.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/debug/tessera}
ROUNDS=${2:-4}
work=$(mktemp -d /tmp/hls-first.XXXXXX)
trap 'jobs -p | xargs -r kill 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
. tools/peer-lib.sh
o=$(free_port) e=$(free_port)
cat >"$work/o.conf" <<CONF
http 127.0.0.1:$o;
auth_backend o { allow token origin1; }
stream s { input fake://fake; on_play auth://o; }
CONF
cat >"$work/e.conf" <<CONF
http 127.0.0.1:$e;
auth_backend e { allow token edge1; }
stream s { input hls://127.0.0.1:$o/s/index.m3u8?token=origin1; static false; clients_timeout 1; on_play auth://e; }
CONF
timeout $(( 60 + ROUNDS * 40 )) "$BIN" "$work/o.conf" 2>"$work/o.log" &
timeout $(( 60 + ROUNDS * 40 )) env TESSERA_LOG=debug "$BIN" "$work/e.conf" 2>"$work/e.log" &
sleep 5
stopped() { grep -c "pull stopped" "$work/e.log" || true; }
started() { grep -c "pull started" "$work/e.log" || true; }
printf '%-6s %-34s %-8s %s\n' run request seconds "pulls started"
for r in $(seq 1 "$ROUNDS"); do
    # Every run starts with the pull stopped: an HTTP viewer counts until its session idles
    # out (30 s) plus clients_timeout.
    for _ in $(seq 1 900); do [ "$(stopped)" -ge "$((r - 1))" ] && break; sleep 0.1; done
    t=$(curl -s -o /dev/null --max-time 3 -w '%{time_starttransfer}' "http://127.0.0.1:$e/s/mpegts?token=edge1" || true)
    printf '%-6s %-34s %-8s %s\n' "$r" "/s/mpegts (first TS bytes)" "$t" "$(started)"
done
