#!/usr/bin/env bash
# RTSP figures for a release build of tessera, on 127.0.0.1 only, bounded in time:
#   1. time from connect to the first decoded video frame (median of RUNS ffmpeg runs);
#   2. server CPU and resident memory with VIEWERS concurrent RTSP viewers (ffmpeg -c copy,
#      so the viewers cost little), against a baseline with none.
#
#   tools/load-rtsp.sh [VIEWERS=20] [SECONDS=20] [TRANSPORT=tcp|udp] [RUNS=9]
#   env: HTTP_PORT (18081), RTSP_PORT (18555), SHARDS (one per core)
set -euo pipefail
cd "$(dirname "$0")/.."
viewers=${1:-20}
secs=${2:-20}
transport=${3:-tcp}
runs=${4:-9}
http_port=${HTTP_PORT:-18081}
rtsp_port=${RTSP_PORT:-18555}
shards=${SHARDS:-$(nproc)}
command -v ffmpeg >/dev/null || { echo "load-rtsp.sh: install ffmpeg" >&2; exit 1; }
cargo build --release --quiet

dir=$(mktemp -d)
cat >"$dir/rtsp.conf" <<CONF
http 127.0.0.1:$http_port;
rtsp 127.0.0.1:$rtsp_port;
auth_backend play-auth { allow token test1; }
stream auth-check { input fake://fake; on_play auth://play-auth; }
CONF
TESSERA_LOG=warn target/release/tessera --shards "$shards" "$dir/rtsp.conf" 2>"$dir/server.log" &
pid=$!
cleanup() { jobs -p | xargs -r kill 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
for _ in $(seq 1 100); do
    curl -sf -o /dev/null "http://127.0.0.1:$http_port/auth-check/tracks-v1a1/mono.m3u8?token=test1" && break
    sleep 0.2
done
url="rtsp://127.0.0.1:$rtsp_port/auth-check?token=test1"

# 1. Connect to first decoded frame, with ffmpeg's default stream analysis and with a short
# one (the default waits for about a second of media whatever the server does).
first_frame() { # $1: label, rest: extra ffmpeg input options
    local label=$1 times=() t0 t1
    shift
    for _ in $(seq 1 "$runs"); do
        t0=$(date +%s%N)
        timeout 20 ffmpeg -v error "$@" -rtsp_transport "$transport" -i "$url" -frames:v 1 -f null - </dev/null
        t1=$(date +%s%N)
        times+=($(( (t1 - t0) / 1000000 )))
    done
    local sorted median
    sorted=$(printf '%s\n' "${times[@]}" | sort -n | tr '\n' ' ')
    median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p")
    echo "first decoded frame over $transport, $label, $runs runs (ms, ffmpeg start-up included): $sorted-> median $median ms"
}
first_frame "default analysis"
first_frame "-analyzeduration 100000" -analyzeduration 100000
# ffprobe: connect, DESCRIBE..PLAY, and its stream analysis.
probe_times=()
for _ in $(seq 1 "$runs"); do
    t0=$(date +%s%N)
    timeout 20 ffprobe -v error -rtsp_transport "$transport" "$url" </dev/null
    t1=$(date +%s%N)
    probe_times+=($(( (t1 - t0) / 1000000 )))
done
echo "ffprobe over $transport, $runs runs (ms): $(printf '%s\n' "${probe_times[@]}" | sort -n | tr '\n' ' ')-> median $(printf '%s\n' "${probe_times[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p") ms"

# 2. CPU per viewer.
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }
hz=$(getconf CLK_TCK)
measure() { # prints CPU % of one core over $secs
    local a b
    a=$(ticks); sleep "$secs"; b=$(ticks)
    awk -v a="$a" -v b="$b" -v hz="$hz" -v s="$secs" 'BEGIN { printf "%.2f", (b - a) * 100 / hz / s }'
}
base_cpu=$(measure)
base_rss=$(rss_kb)
for _ in $(seq 1 "$viewers"); do
    timeout $((secs + 30)) ffmpeg -v error -rtsp_transport "$transport" -i "$url" -c copy -f null - </dev/null &
done
sleep 3
load_cpu=$(measure)
load_rss=$(rss_kb)
alive=$(pgrep -fc "^ffmpeg .*rtsp_transport $transport .*-c copy" || true)
per=$(awk -v l="$load_cpu" -v b="$base_cpu" -v n="$viewers" 'BEGIN { printf "%.3f", (l - b) / n }')
echo "server CPU: $base_cpu% of a core idle, $load_cpu% with $viewers $transport viewers ($alive still playing) -> $per% per viewer"
echo "server RSS: $base_rss kB idle, $load_rss kB with $viewers viewers"
