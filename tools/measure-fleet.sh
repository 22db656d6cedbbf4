#!/usr/bin/env bash
# What the fleet (issue #17, `cluster { redis ...; }`) costs, bounded in time:
#
#   tools/measure-fleet.sh [COLD=300] [SESSIONS=1000] [WINDOW_SECS=20]
#
# Prints:
#   1. cold decision latency (a new token's first playlist request: the portal is asked)
#      with the cluster off and on, median and p99 over COLD requests each, one keep-alive
#      connection, tokens whose portal answer carries X-UserId and X-Max-Sessions (so the
#      cluster's session admit runs for each);
#   2. Redis commands per new limited session (INFO commandstats around SESSIONS new
#      sessions), and per second for those SESSIONS live sessions over WINDOW_SECS (the
#      heartbeats and the sessions snapshot), scaled to 1,000 sessions.
# One node, two shards, its own redis-server and example portal, all on 127.0.0.1; the
# binaries of the dev profile (`cargo build`): compare on against off, not absolute times.
set -euo pipefail
cd "$(dirname "$0")/.."
cold=${1:-300}
sessions=${2:-1000}
window=${3:-20}
http=${HTTP_PORT:-18190}
portal=${PORTAL_PORT:-18191}
redis=${REDIS_PORT:-18192}
key=measure-key-0123456789

cargo build --quiet --bin tessera --bin tessera-portal
dir=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT

redis-server --port "$redis" --bind 127.0.0.1 --save '' --appendonly no >/dev/null &
pids+=($!)
grants=()
for i in $(seq 1 "$cold"); do grants+=(--token "off-$i:offuser-$i:2" --token "on-$i:onuser-$i:2"); done
for i in $(seq 1 "$sessions"); do grants+=(--token "s-$i:suser-$i:2"); done
target/debug/tessera-portal --listen "127.0.0.1:$portal" --token warmup "${grants[@]}" \
    >/dev/null 2>&1 &
pids+=($!)

# start_node CLUSTER_LINES: tessera on $http; its pid in $node.
start_node() {
    cat >"$dir/node.conf" <<CONF
http 127.0.0.1:$http;
api_key $key;
$1
auth_backend portal { backend http://127.0.0.1:$portal/auth; }
stream live { input fake://fake; on_play auth://portal; }
CONF
    TESSERA_LOG=warn target/debug/tessera --shards 2 "$dir/node.conf" 2>>"$dir/server.log" &
    node=$!
    pids+=("$node")
    for _ in $(seq 1 150); do
        curl -fs "http://127.0.0.1:$http/live/tracks-v1a1/mono.m3u8?token=warmup" >/dev/null && return
        sleep 0.2
    done
    echo "tessera did not become ready" >&2
    exit 1
}

# requests PREFIX COUNT: one keep-alive GET per token PREFIX-1..COUNT; prints "median p99" (us).
requests() {
    python3 - "$http" "$1" "$2" <<'PY'
import http.client, sys, time
port, prefix, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
took = []
for i in range(1, count + 1):
    t0 = time.perf_counter()
    conn.request("GET", f"/live/tracks-v1a1/mono.m3u8?token={prefix}-{i}")
    r = conn.getresponse()
    r.read()
    took.append((time.perf_counter() - t0) * 1e6)
    if r.status != 200:
        sys.exit(f"{prefix}-{i}: {r.status}")
took.sort()
print(f"{took[len(took) // 2]:.0f} {took[min(len(took) - 1, int(len(took) * 0.99))]:.0f}")
PY
}

cli() { redis-cli -p "$redis" "$@"; }
# Redis commands counted since the last reset (INFO and CONFIG themselves left out).
calls() {
    cli INFO commandstats | tr -d '\r' |
        awk -F'[:=,]' '/^cmdstat_/ && $1 !~ /info|config/ { n += $3 } END { print n + 0 }'
}

echo "== 1. cold decision latency, $cold new tokens each =="
start_node ""
read -r off_med off_p99 < <(requests off "$cold")
kill "$node"; wait "$node" 2>/dev/null || true
start_node "cluster_key measure-fleet-secret-01; cluster { redis redis://127.0.0.1:$redis; node m1; }"
read -r on_med on_p99 < <(requests on "$cold")
echo "cluster off: median ${off_med} us, p99 ${off_p99} us"
echo "cluster on:  median ${on_med} us, p99 ${on_p99} us"

echo "== 2. Redis commands =="
sleep 3
cli CONFIG RESETSTAT >/dev/null
requests s "$sessions" >/dev/null
sleep 1
opened=$(calls)
echo "per new session: $opened commands for $sessions sessions"
cli INFO commandstats | tr -d '\r' | grep '^cmdstat_' | grep -v -e info -e config
cli CONFIG RESETSTAT >/dev/null
sleep "$window"
steady=$(calls)
cli INFO commandstats | tr -d '\r' | grep '^cmdstat_' | grep -v -e info -e config
# Every limited session still live (part 1's included), as the node lists them.
live=$(curl -s -H "Authorization: Bearer $key" "http://127.0.0.1:$http/streamer/api/v3/sessions" |
    grep -o '"user_id":"[a-z]*user-' | wc -l)
awk -v n="$steady" -v w="$window" -v s="$sessions" -v o="$opened" -v l="$live" 'BEGIN {
    printf "per new session: %.2f commands (one EVALSHA round trip)\n", o / s
    printf "live: %d commands in %d s for %d limited sessions: %.1f per second per 1,000 sessions\n", n, w, l, n / w * 1000 / l
}'
