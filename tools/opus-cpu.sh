#!/usr/bin/env bash
# The WebRTC audio transcode's CPU per stream (AAC → Opus on the input's shard), bounded in
# time.
#
#   tools/opus-cpu.sh [SECONDS (30)] [RATE (48000)]
#   env: TESSERA (the binary; default: the release build, else the debug build)
#
# Starts tessera (2 shards) with one `publish://` stream that ffmpeg feeds over RTMP in real
# time (x264 ultrafast 320x240 25 fps, AAC-LC stereo at RATE Hz of a 440 Hz sine at 128
# kbit/s), then reads the server's CPU time (utime + stime, /proc/PID/stat) over SECONDS
# twice: without WebRTC demand, then with it: the recorded Chromium offer POSTed to the
# stream's WHEP endpoint every 5 s. No peer ever connects (nothing sends ICE), so each
# session only holds the stream's demand until its 10 s ICE wait ends: the transcode is
# all that is added. Prints both figures and their difference in % of one core.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/server-lib.sh
secs=${1:-30} rate=${2:-48000}
bin=${TESSERA:-}
if [ -z "$bin" ]; then
    bin=target/release/tessera
    [ -x "$bin" ] || bin=target/debug/tessera
fi
[ -x "$bin" ] || { echo "opus-cpu.sh: build tessera first (cargo build --release)" >&2; exit 1; }
hz=$(getconf CLK_TCK)
dir=$(mktemp -d)
trap 'jobs -p | xargs -r kill 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT

base=$(free_base)
http=$base rtmp=$((base + 1)) webrtc=$((base + 2))
cat >"$dir/tessera.conf" <<EOF
http 127.0.0.1:$http;
rtmp 127.0.0.1:$rtmp;
webrtc 127.0.0.1:$webrtc;
auth_backend viewers {
    allow token t1;
}
stream cam {
    input publish://;
    on_play auth://viewers;
    on_publish auth://viewers;
}
EOF
"$bin" --shards 2 "$dir/tessera.conf" 2>"$dir/server.log" &
pid=$!
for _ in $(seq 1 100); do
    curl -s -o /dev/null "http://127.0.0.1:$http/" && break
    sleep 0.1
done
publish_secs=$((2 * secs + 40))
ffmpeg -v error -re -f lavfi -i "testsrc2=size=320x240:rate=25:duration=$publish_secs" \
    -f lavfi -i "sine=frequency=440:sample_rate=$rate:duration=$publish_secs" -ac 2 \
    -c:v libx264 -preset ultrafast -tune zerolatency -g 25 -c:a aac -b:a 128k \
    -f flv "rtmp://127.0.0.1:$rtmp/static/cam?token=t1" 2>"$dir/ffmpeg.log" &
wait_served "http://127.0.0.1:$http/cam/index.m3u8?token=t1" "$pid" "$dir/server.log"
sleep 3

ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
# cpu_over: the server's CPU over $secs, in % of one core.
cpu_over() {
    local t0 t1
    t0=$(ticks)
    sleep "$secs"
    t1=$(ticks)
    echo "scale=2; 100 * ($t1 - $t0) / $hz / $secs" | bc
}

idle=$(cpu_over)
(
    while :; do
        curl -s -o /dev/null -w '%{http_code}\n' -H 'content-type: application/sdp' \
            --data-binary @tests/data/chromium_whep_offer.sdp \
            "http://127.0.0.1:$http/cam/whep?token=t1" >>"$dir/offers"
        sleep 5
    done
) &
sleep 2
wanted=$(cpu_over)
grep -q "no WebRTC audio" "$dir/server.log" && grep "no WebRTC audio" "$dir/server.log" >&2
printf 'binary %s, AAC %s Hz stereo, %s s each; offers answered 201: %s of %s\n' \
    "$bin" "$rate" "$secs" "$(grep -c '^201$' "$dir/offers")" "$(wc -l <"$dir/offers")"
printf 'server CPU without WebRTC demand: %s%% of a core\n' "$idle"
printf 'server CPU with WebRTC demand:    %s%% of a core\n' "$wanted"
printf 'transcode (difference):           %s%% of a core\n' "$(echo "$wanted - $idle" | bc)"
