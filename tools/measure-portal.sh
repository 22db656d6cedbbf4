#!/usr/bin/env bash
# The portal path against release builds of tessera and the example portal, bounded in time.
#
#   tools/measure-portal.sh [SECONDS=10] [VIEWERS=100]      (env: SHARDS, default one per core)
#
# env: BIN_DIR=DIR runs DIR/tessera and DIR/tessera-portal instead of building (to compare
# two builds with one script); PHASES=1 runs tessera at trace level and adds, for part 2,
# tessera's own account of each cold decision (medians of its trace lines: total, the
# portal's share, tessera's share and its phases, and the parked request's wait). Trace lines
# cost a write each, so compare latencies of runs without PHASES.
#
# Prints:
#   1. backend requests per 10,000 viewer requests: wrk reloads playlists for VIEWERS
#      viewers (one token each) for SECONDS; the portal counts what it was asked;
#   2. the latency a cold decision adds over the portal's own: 200 requests with new tokens
#      (each a portal question) against 200 requests straight to the portal, medians; and
#      200 requests with a token already decided (tessera's HTTP path alone), interleaved;
#   3. revoke-to-cut: an RTMP player (ffmpeg) is revoked through the API; the time until
#      tessera closed its connection (the server's log) and until ffmpeg exited.
# Everything listens on 127.0.0.1 only; wrk and curl share the cores with the servers.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
viewers=${2:-100}
http=${HTTP_PORT:-18090}
rtmp=${RTMP_PORT:-19350}
portal=${PORTAL_PORT:-18091}
key=measure-key-0123456789

for tool in wrk curl ffmpeg; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ]; then
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk curl ffmpeg >/dev/null
        else
            echo "measure-portal.sh: install $tool" >&2
            exit 1
        fi
    fi
done
bin=${BIN_DIR:-target/release}
if [ -z "${BIN_DIR:-}" ]; then
    cargo build --release --quiet --bin tessera --bin tessera-portal
fi
level=info
if [ -n "${PHASES:-}" ]; then level=trace; fi

dir=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT

tokens=()
for i in $(seq 1 "$viewers"); do tokens+=(--token "viewer-$i"); done
"$bin/tessera-portal" --listen "127.0.0.1:$portal" "${tokens[@]}" --token revokee \
    --tessera "http://127.0.0.1:$http" --api-key "$key" >"$dir/portal.out" 2>/dev/null &
pids+=($!)
cat >"$dir/measure.conf" <<CONF
http 127.0.0.1:$http;
rtmp 127.0.0.1:$rtmp;
api_key $key;
auth_backend portal { backend http://127.0.0.1:$portal/auth; }
stream live { input fake://fake; on_play auth://portal; }
CONF
TESSERA_LOG=$level "$bin/tessera" ${SHARDS:+--shards "$SHARDS"} "$dir/measure.conf" 2>"$dir/server.log" &
pids+=($!)
for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$http/live/tracks-v1a1/mono.m3u8?token=viewer-1" >/dev/null && break
    sleep 0.2
done

stat() { curl -s "http://127.0.0.1:$portal/stats" | awk -v k="$1" '$1 == k { print $2 }'; }

echo "== 1. backend requests per 10,000 viewer requests ($viewers viewers, ${secs}s) =="
cat >"$dir/viewers.lua" <<LUA
local i = 0
request = function()
  i = (i % $viewers) + 1
  return wrk.format("GET", "/live/tracks-v1a1/mono.m3u8?token=viewer-" .. i)
end
LUA
before=$(stat requests)
wrk -t1 -c32 -d"${secs}s" -s "$dir/viewers.lua" "http://127.0.0.1:$http" | tee "$dir/wrk.out" | grep -E "Requests/sec|Latency"
after=$(stat requests)
total=$(awk '/requests in/ { print $1 }' "$dir/wrk.out")
asked=$((after - before))
awk -v a="$asked" -v t="$total" 'BEGIN { printf "viewer requests %d, backend requests %d: %.2f per 10,000\n", t, a, a * 10000 / t }'

echo "== 2. cold decision latency (200 new tokens) =="
: >"$dir/cold"; : >"$dir/direct"; : >"$dir/warm"
logged=$(wc -l <"$dir/server.log")
for i in $(seq 1 200); do
    curl -s -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$http/live/tracks-v1a1/mono.m3u8?token=cold-$i" >>"$dir/cold"
    curl -s -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$portal/auth?name=live&proto=hls&ip=127.0.0.1&token=direct-$i&session_id=x&request_type=new_session&request_number=1" >>"$dir/direct"
    curl -s -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$http/live/tracks-v1a1/mono.m3u8?token=viewer-1" >>"$dir/warm"
done
med() { sort -n "$1" | awk '{ a[NR] = $1 } END { printf "%.0f", a[int((NR + 1) / 2)] * 1e6 }'; }
cold=$(med "$dir/cold"); direct=$(med "$dir/direct"); warm=$(med "$dir/warm")
echo "median: through tessera (cold) ${cold} us, portal alone ${direct} us, added $((cold - direct)) us"
echo "median: through tessera (token already decided) ${warm} us"
if [ -n "${PHASES:-}" ]; then
    # Each field of tessera's trace lines for part 2's decisions: its median.
    tail -n +"$((logged + 1))" "$dir/server.log" >"$dir/phases.log"
    for field in total_us portal_us tessera_us dispatch_us prepare_us send_us settle_us resumed_us; do
        grep -o "$field=[0-9]*" "$dir/phases.log" | cut -d= -f2 >"$dir/field" || true
        if [ -s "$dir/field" ]; then
            printf '%s median %s (%s decisions)\n' "$field" \
                "$(sort -n "$dir/field" | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')" \
                "$(wc -l <"$dir/field")"
        fi
    done
    echo "decisions asked on the viewer's shard: $(grep -c 'asked=here' "$dir/phases.log" || true), answered by another: $(grep -c 'asked=elsewhere' "$dir/phases.log" || true)"
fi

echo "== 3. revoke to cut (RTMP) =="
ffmpeg -hide_banner -v error -i "rtmp://127.0.0.1:$rtmp/static/live?token=revokee" -t 60 -f null - &
player=$!
for _ in $(seq 1 100); do
    grep -q "rtmp play allowed" "$dir/server.log" && break
    sleep 0.1
done
sleep 1
t0=$(date +%s%N)
curl -s -X POST -H "Authorization: Bearer $key" "http://127.0.0.1:$http/streamer/api/v3/revoke?token=revokee" >/dev/null
t1=$(date +%s%N)
wait "$player" || true
t2=$(date +%s%N)
echo "API answered in $(( (t1 - t0) / 1000000 )) ms; ffmpeg exited $(( (t2 - t0) / 1000000 )) ms after the revoke"
grep -E "play ended: session_revoked" "$dir/server.log" | head -1
