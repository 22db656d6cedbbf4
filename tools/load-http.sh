#!/usr/bin/env bash
# HTTP load against a release build of tessera with wrk, bounded in time.
#
#   tools/load-http.sh [SECONDS=10] [CONNECTIONS=64] [WRK_THREADS=1]
#   env: PORT (default 18080), SHARDS (default: one per core)
#
# Runs three cases (SECONDS at most 15: a segment stays served for about 16 s) against the demo stream on 127.0.0.1 only: a token-protected media
# playlist, a segment, and the 403 path (no token). Prints requests/s, latency percentiles
# and transfer rate for each. wrk shares the machine's cores with the server: on a small
# machine the numbers are a floor, not a ceiling.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-64}
threads=${3:-1}
port=${PORT:-18080}
shards=${SHARDS:-$(nproc)}

if ! command -v wrk >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
    else
        echo "load-http.sh: install wrk (apt-get install wrk)" >&2
        exit 1
    fi
fi
cargo build --release --quiet

dir=$(mktemp -d)
cat >"$dir/load.conf" <<CONF
http 127.0.0.1:$port;
auth_backend play-auth { allow token test1; }
stream auth-check { input fake://fake; on_play auth://play-auth; }
CONF
TESSERA_LOG=warn target/release/tessera --shards "$shards" "$dir/load.conf" 2>"$dir/server.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT

base="http://127.0.0.1:$port/auth-check"
for _ in $(seq 1 100); do
    if curl -sf -o /dev/null "$base/tracks-v1a1/mono.m3u8?token=test1"; then break; fi
    sleep 0.2
done
# The newest segment; it stays in the window for about 16 s, so it is looked up right before
# its own run.
newest_segment() { curl -sf "$base/tracks-v1a1/mono.m3u8?token=test1" | grep -v '^#' | tail -n 1; }
[ -n "$(newest_segment)" ] || { echo "server never became ready:"; cat "$dir/server.log"; exit 1; }

echo "tessera $shards shards, wrk -t$threads -c$conns -d${secs}s, $(nproc) cores shared with wrk"
run() {
    echo "== $1"
    wrk -t"$threads" -c"$conns" -d"${secs}s" --latency "$2" \
        | grep -E 'Requests/sec|Transfer/sec|Non-2xx|Socket errors|^ +(50|90|99)%|Latency ' || true
}
run "media playlist with token (200)" "$base/tracks-v1a1/mono.m3u8?token=test1"
segment=$(newest_segment)
size=$(curl -sf "$base/tracks-v1a1/$segment" | wc -c)
run "segment with token (200, $size bytes)" "$base/tracks-v1a1/$segment"
run "master playlist without token (403)" "$base/index.m3u8"
