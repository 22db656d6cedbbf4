#!/usr/bin/env bash
# One pull per stream per node under load: a tessera origin (one `fake://` stream, 1 shard)
# and a tessera edge (SHARDS shards) whose `template` pulls it over HTTP MPEG-TS; VIEWERS
# per edge shard watch it as raw-socket HTTP MPEG-TS clients (tools/edge_viewers.py) for
# SECONDS. Counts the origin's connections from the edge (its sessions API, and `ss`) while
# they watch, and prints the edge's input metrics. 127.0.0.1 only, bounded in time.
#
#   tools/load-edge.sh [VIEWERS_PER_SHARD=1000] [SECONDS=20]
#   env: SHARDS (edge shards, default 2), BIN (default target/debug/tessera, built here)
set -euo pipefail
cd "$(dirname "$0")/.."
per_shard=${1:-1000}
secs=${2:-20}
shards=${SHARDS:-2}
bin=${BIN:-target/debug/tessera}
. tools/server-lib.sh
[ -n "${BIN:-}" ] || cargo build --quiet
ulimit -n "$(ulimit -Hn)"

dir=$(mktemp -d)
base=$(free_base)
o_http=$base; e_http=$((base + 1))
key=load-edge-api-key-0123456789
cat >"$dir/origin.conf" <<CONF
http 127.0.0.1:$o_http;
api_key $key;
auth_backend o { allow token origin1; }
stream tv/ch1 { input fake://fake; on_play auth://o; }
CONF
cat >"$dir/edge.conf" <<CONF
http 127.0.0.1:$e_http;
api_key $key;
# Every viewer comes from 127.0.0.1.
max_connections_per_ip 0;
auth_backend e { allow token edge1; }
template tv { prefix tv; input tshttp://127.0.0.1:$o_http/%s/mpegts?token=origin1; on_play auth://e; }
CONF
TESSERA_LOG=warn "$bin" --shards 1 "$dir/origin.conf" 2>"$dir/origin.log" &
opid=$!
TESSERA_LOG=info "$bin" --shards "$shards" "$dir/edge.conf" 2>"$dir/edge.log" &
epid=$!
trap 'kill $opid $epid 2>/dev/null; wait $opid $epid 2>/dev/null; rm -rf "$dir"' EXIT
# (The origin is not asked directly: a viewer there would be a second session.)
wait_served "http://127.0.0.1:$e_http/tv/ch1/index.m3u8?token=edge1" $epid "$dir/edge.log"

viewers=$((per_shard * shards))
echo "edge: $shards shards, $viewers HTTP MPEG-TS viewers of tv/ch1 for ${secs}s ($(nproc) cores)"
python3 tools/edge_viewers.py "$e_http" "/tv/ch1/mpegts?token=edge1" "$viewers" "$secs" \
    "$dir/ready" >"$dir/viewers.out" &
vpid=$!
for _ in $(seq 1 600); do [ -e "$dir/ready" ] && break; sleep 0.1; done
sleep 2
api() { curl -sf -H "Authorization: Bearer $key" "http://127.0.0.1:$1$2"; }
sessions=$(api "$o_http" /streamer/api/v3/sessions | grep -o '"name":"tv/ch1"' | wc -l)
conns=$(ss -Htn state established "( sport = :$o_http )" | wc -l)
metrics=$(api "$e_http" /metrics || echo "edge /metrics unanswered")
edge_sessions=$(grep -E '^tessera_sessions_open\{' <<<"$metrics" | grep -v ' 0$' | tr '\n' ' ' || true)
input=$(grep -E '^tessera_input_(state.*running|reconnects)' <<<"$metrics" || true)
wait $vpid
cat "$dir/viewers.out"
echo "origin_sessions_of_tv/ch1 $sessions"
echo "origin_established_connections $conns"
echo "edge sessions: $edge_sessions"
echo "$input"
