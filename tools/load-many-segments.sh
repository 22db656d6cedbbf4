#!/usr/bin/env bash
# Segment load spread over many streams, bounded in time: wrk asks for the two newest
# segments of each of STREAMS fake streams in turn, so each shard has more large bodies hot
# at once than it keeps memory files for (`runtime::body_files`, 8 per shard). Prints wrk's
# requests/s and transfer rate.
#
#   tools/load-many-segments.sh [STREAMS=12] [SECONDS=10] [CONNECTIONS=64]
#   env: PORT (default 18087), SHARDS (default: one per core), TESSERA (the binary; default
#        the release build, built here when missing)
# Everything listens on 127.0.0.1 only; wrk shares the cores with the server.
set -euo pipefail
cd "$(dirname "$0")/.."
streams=${1:-12}
secs=${2:-10}
conns=${3:-64}
port=${PORT:-18087}
shards=${SHARDS:-$(nproc)}
bin=${TESSERA:-target/release/tessera}
command -v wrk >/dev/null || { echo "load-many-segments.sh: install wrk" >&2; exit 1; }
[ -x "$bin" ] || cargo build --release --quiet --bin tessera

dir=$(mktemp -d)
{
    echo "http 127.0.0.1:$port;"
    echo "auth_backend viewers { allow token t; }"
    for i in $(seq 1 "$streams"); do
        echo "stream s$i { input fake://fake; on_play auth://viewers; segment_duration 2; }"
    done
} >"$dir/many.conf"
TESSERA_LOG=warn timeout $((secs + 60)) "$bin" --shards "$shards" "$dir/many.conf" 2>"$dir/server.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT

# Two segments per stream exist after a segment duration or two.
sleep 7
paths=()
for i in $(seq 1 "$streams"); do
    for seg in $(curl -sf "http://127.0.0.1:$port/s$i/tracks-v1a1/mono.m3u8?token=t" | grep -v '^#' | tail -2); do
        paths+=("/s$i/tracks-v1a1/$seg")
    done
done
[ ${#paths[@]} -gt 0 ] || { echo "load-many-segments.sh: no segments" >&2; cat "$dir/server.log" >&2; exit 1; }
{
    echo 'local paths = {'
    printf '  "%s",\n' "${paths[@]}"
    echo '}'
    echo 'local n = 0'
    echo 'request = function() n = n + 1; return wrk.format("GET", paths[(n % #paths) + 1]) end'
} >"$dir/many.lua"
echo "${#paths[@]} segment bodies, $streams streams, $shards shards, wrk -t2 -c$conns -d${secs}s"
timeout $((secs + 30)) wrk -t2 -c"$conns" -d"${secs}s" -s "$dir/many.lua" "http://127.0.0.1:$port" |
    grep -E "Requests/sec|Transfer/sec|Non-2xx"
