#!/usr/bin/env bash
# Time from a viewer's first request to its first decoded frame, for an on-demand pull
# (`static false;`) of each input kind: a tessera origin serves `fake://fake` over RTMP,
# RTSP, SRT and HTTP MPEG-TS; for each kind a fresh edge pulls it on demand, and
# `ffmpeg -i http://EDGE/s/index.m3u8 -frames:v 1` runs against the cold edge (the pull
# starts with that request), then once more against the warm one. Also prints the time to
# the first playlist (curl). Everything on 127.0.0.1, each client bounded by `timeout`.
#
#   tools/pull-first-frame.sh [BINARY]     (default: target/debug/tessera, the dev profile)
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/server-lib.sh
bin=${1:-target/debug/tessera}
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT

start() { # NAME CONFIG HTTP_PORT
    printf '%s\n' "$2" >"$dir/$1.conf"
    "$bin" "$dir/$1.conf" >"$dir/$1.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 300); do # up to 30 s for the HTTP listener (any answer will do)
        curl -s -o /dev/null "http://127.0.0.1:$3/" && return
        sleep 0.1
    done
    echo "$0: $1 did not start: $(tail -3 "$dir/$1.log")" >&2
    exit 2
}

ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

o=$(free_base)
start origin "http 127.0.0.1:$o; rtmp 127.0.0.1:$((o + 1)); rtsp 127.0.0.1:$((o + 2)); srt 127.0.0.1:$((o + 3));
auth_backend a { allow token origin1; }
stream s { input fake://fake; on_play auth://a; }" "$o"
sleep 2 # the fake source's first segment

declare -A inputs=(
    [rtmp]="rtmp://127.0.0.1:$((o + 1))/live/s?token=origin1"
    [rtsp]="rtsp://127.0.0.1:$((o + 2))/s?token=origin1"
    [srt]="\"srt://127.0.0.1:$((o + 3))?streamid=#!::r=s,m=request,token=origin1\""
    [tshttp]="tshttp://127.0.0.1:$o/s/mpegts?token=origin1"
)
printf '%-7s %14s %16s %16s\n' input playlist_ms first_frame_ms warm_frame_ms
for kind in rtmp rtsp srt tshttp; do
    e=$(free_base)
    start "edge-$kind" "http 127.0.0.1:$e; rtmp 127.0.0.1:$((e + 1)); rtsp 127.0.0.1:$((e + 2));
auth_backend a { allow token edge1; }
stream s { input ${inputs[$kind]}; static false; on_play auth://a; }" "$e"
    url="http://127.0.0.1:$e/s/index.m3u8?token=edge1"
    t=$(date +%s%N)
    timeout 30 curl -sf -o /dev/null "$url"
    playlist=$(ms_since "$t")
    # The pull is running now: stop this edge and take a fresh one for the frame timing.
    kill "${pids[-1]}"
    e=$(free_base)
    start "edge2-$kind" "http 127.0.0.1:$e;
auth_backend a { allow token edge1; }
stream s { input ${inputs[$kind]}; static false; on_play auth://a; }" "$e"
    url="http://127.0.0.1:$e/s/index.m3u8?token=edge1"
    t=$(date +%s%N)
    timeout 30 ffmpeg -v error -i "$url" -frames:v 1 -f null - </dev/null
    cold=$(ms_since "$t")
    t=$(date +%s%N)
    timeout 30 ffmpeg -v error -i "$url" -frames:v 1 -f null - </dev/null
    warm=$(ms_since "$t")
    printf '%-7s %14s %16s %16s\n' "$kind" "$playlist" "$cold" "$warm"
    kill "${pids[-1]}"
done
