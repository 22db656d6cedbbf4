#!/usr/bin/env bash
# Connection floods against tessera, one protocol at a time, while a normal viewer is timed.
#
#   tools/flood.sh [COUNT=20000] [SECONDS=20] [PROTO...]     (default: http rtmp rtsp https srt)
#   env: TESSERA (binary; default target/release/tessera, built when missing), STREAMS=7
#        (fake streams served), SHARDS=2, PER_IP (max_connections_per_ip; default 1000),
#        SERVER_ENV (variables for the server only, e.g. "LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libmimalloc.so.2"
#        or "GLIBC_TUNABLES=glibc.malloc.trim_threshold=131072" to compare allocators),
#        SOURCES (flood source addresses; default one per 250 connections, 1 = a single
#        address, which max_connections_per_ip stops)
#
# For each protocol, tools/flood.py holds COUNT idle connections (TCP: connected, silent,
# reopened as soon as the server closes them; SRT: a handshake induction per socket every
# second) from 127.0.0.2... (250 per address), for SECONDS. Meanwhile a viewer fetches the
# token-protected HLS playlist and its newest segment with curl every 100 ms, and ffprobe
# plays the same stream over RTMP and RTSP once in the middle of the flood. Printed per
# protocol: the viewer's requests, failures and worst latency, the ffprobe time, and the
# server's RSS (MB) and open files before, at most during, and 10 s after the flood.
# Everything is on 127.0.0.1 and bounded in time. Raises the file limit to the hard one for
# both the server and the flood (so COUNT is bounded by `ulimit -Hn`).
set -uo pipefail
cd "$(dirname "$0")/.."
count=${1:-20000}
secs=${2:-20}
shift 2 || shift $#
protos=("$@")
[ ${#protos[@]} -gt 0 ] || protos=(http rtmp rtsp https srt)
bin=${TESSERA:-target/release/tessera}
[ -x "$bin" ] || cargo build --release --quiet || exit 2
ulimit -n "$(ulimit -Hn)"

dir=$(mktemp -d /tmp/tessera-flood.XXXXXX)
. tools/server-lib.sh
base=$(free_base)
http=$base rtmp=$((base + 1)) rtsp=$((base + 2)) https=$((base + 3)) srt=$((base + 4))
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$dir/k.pem" \
    -out "$dir/c.pem" -days 2 -subj /CN=localhost 2>/dev/null
{
    echo "http 127.0.0.1:$http; rtmp 127.0.0.1:$rtmp; rtsp 127.0.0.1:$rtsp;"
    echo "https 127.0.0.1:$https; srt 127.0.0.1:$srt;"
    echo "ssl_certificate c.pem; ssl_certificate_key k.pem;"
    [ -z "${PER_IP:-}" ] || echo "max_connections_per_ip $PER_IP;"
    echo "auth_backend play-auth { allow token test1; }"
    for i in $(seq 1 "${STREAMS:-7}"); do
        echo "stream s$i { input fake://fake; on_play auth://play-auth; }"
    done
} >"$dir/flood.conf"
env ${SERVER_ENV:-} TESSERA_LOG=warn "$bin" --shards "${SHARDS:-2}" "$dir/flood.conf" 2>"$dir/server.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT

hls="http://127.0.0.1:$http/s1"
wait_served "$hls/index.m3u8?token=test1" "$pid" "$dir/server.log"
sleep 25 # the segment window and the rings full: the idle figure

rss_mb() { awk '/VmRSS/ { printf "%d", $2 / 1024 }' "/proc/$pid/status"; }
files() { ls "/proc/$pid/fd" | wc -l; }
# The kernel's count of connections dropped because a listen queue was full (every socket
# of this network namespace): a viewer's SYN dropped there is retried after a second.
overflows() { awk '/^TcpExt:/ { if (!n) { for (i = 1; i <= NF; i++) if ($i == "ListenOverflows") c = i; n = 1 } else print $c }' /proc/net/netstat; }

# The viewer: playlist then newest segment, every 100 ms, until $1 (epoch s); one line per
# request: "seconds status".
viewer() {
    local until=$1 seg
    while [ "$(date +%s)" -lt "$until" ]; do
        out=$(curl -s -o "$dir/pl" -w '%{time_total} %{http_code}' --max-time 5 \
            "$hls/tracks-v1a1/mono.m3u8?token=test1") || out="${out% *} 000"
        echo "$out"
        seg=$(grep -v '^#' "$dir/pl" 2>/dev/null | tail -1)
        if [ -n "$seg" ]; then
            curl -s -o /dev/null -w '%{time_total} %{http_code}\n' --max-time 5 \
                "$hls/tracks-v1a1/$seg" || echo "5 000"
        fi
        sleep 0.1
    done
}

probe() { # URL: seconds to the first decoded video frame, or "fail"
    local t0 t1
    t0=$(date +%s.%N)
    if timeout 15 ffprobe -v error -select_streams v -read_intervals '%+#1' \
        -show_entries frame=pts -of csv "$1" >/dev/null 2>&1; then
        t1=$(date +%s.%N)
        awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2fs", b - a }'
    else
        echo fail
    fi
}

rows=()
for proto in "${protos[@]}"; do
    port=${!proto}
    rss0=$(rss_mb) files0=$(files) drops0=$(overflows)
    python3 tools/flood.py "$proto" "$port" "$count" "$secs" ${SOURCES:-} >"$dir/flood-$proto.txt" 2>&1 &
    flood=$!
    sleep 2
    viewer $(( $(date +%s) + secs - 3 )) >"$dir/viewer-$proto.txt" &
    v=$!
    sleep $(( secs / 2 - 2 ))
    p_rtmp=$(probe "rtmp://127.0.0.1:$rtmp/static/s1?token=test1")
    p_rtsp=$(probe "rtsp://127.0.0.1:$rtsp/s1?token=test1")
    rss1=$rss0 files1=$files0
    while kill -0 $flood 2>/dev/null; do
        r=$(rss_mb) f=$(files)
        [ "$r" -gt "$rss1" ] && rss1=$r
        [ "$f" -gt "$files1" ] && files1=$f
        sleep 1
    done
    wait $v
    sleep 10
    rss2=$(rss_mb) files2=$(files)
    stats=$(awk '{ n++; if ($2 != 200) f++; if ($1 > w) w = $1 } END { printf "%d %d %.0f", n, f, w * 1000 }' "$dir/viewer-$proto.txt")
    read -r n fails worst <<<"$stats"
    echo "== $proto: $(cat "$dir/flood-$proto.txt") listen_overflows=$(( $(overflows) - drops0 ))"
    # Why the viewer's failed requests failed (000: no answer within curl's 5 s), and how
    # its latencies spread.
    echo "   viewer: failures by status: $(awk '$2 != 200 { print $2 }' "$dir/viewer-$proto.txt" | sort | uniq -c | tr -s ' ' | paste -sd, -)" \
        "p50/p90/p99 ms: $(awk '{ print $1 * 1000 }' "$dir/viewer-$proto.txt" | sort -n | awk '{ a[NR] = $1 } END { printf "%.0f/%.0f/%.0f", a[int(NR * 0.5) + 1], a[int(NR * 0.9) + 1], a[int(NR * 0.99) + 1] }')"
    rows+=("$(printf '%-6s %7s %6s %8s %10s %10s %6s/%s/%s %6s/%s/%s' "$proto" "$n" "$fails" "$worst" \
        "$p_rtmp" "$p_rtsp" "$rss0" "$rss1" "$rss2" "$files0" "$files1" "$files2")")
done
kill -0 $pid 2>/dev/null || echo "the server died: $(tail -3 "$dir/server.log")"
printf '\n%-6s %7s %6s %8s %10s %10s %14s %14s\n' flood requests failed worst_ms rtmp_probe rtsp_probe \
    "rss_MB b/d/a" "files b/d/a"
printf '%s\n' "${rows[@]}"
