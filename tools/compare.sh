#!/usr/bin/env bash
# tessera against nginx (HTTP, 2 workers) + nginx-rtmp (1 worker), side by side in one run,
# on 127.0.0.1 only, fed by ONE ffmpeg publisher (testsrc2 320x240 25 fps, x264 300 kb/s,
# GOP 2 s, AAC) that pushes the same encoded stream into both (ffmpeg's tee muxer):
#   W1  token media playlist (wrk); nginx twice: with the `sub_filter` rewrite that puts the
#       token on every segment URI (what players need), and without it (unplayable, nginx's
#       best case)
#   W2  the newest segment with the token (wrk; compared in MiB/s: segment sizes vary)
#   W3  the media playlist without a token: the 403 path (wrk)
#   RTMP fan-out: VIEWERS rtmp-load players with the token (tools/load-rtmp.sh): CPU per
#       viewer and resident memory per viewer; then, once per server after the rounds,
#       LEAVE_VIEWERS players, and the resident memory 10 s after they have left
# Each server is alone under load (both stay up and ingest; only one is loaded at a time),
# and the runs are interleaved T N T N, so drift shows up as spread. Prints one table: each
# ratio as the mean of the per-run ratios, with the smallest and largest, and its goal
# (issue 15).
#
#   tools/compare.sh [RUNS=2] [SECONDS=10] [VIEWERS=1000] [LEAVE_VIEWERS=3000]
#   env: WRK_THREADS (2), WRK_CONNS (64), SKIP_BUILD=1 (use the existing release build),
#        TESSERA_BIN (another tessera binary, e.g. a baseline's), PARTS ("http rtmp": run
#        only one of them), KEEP=1 (keep the work directory with every raw output)
#
# Needs nginx, libnginx-mod-rtmp, wrk, ffmpeg, curl, python3 (installed with apt-get when
# missing and run as root) and release builds of tessera and rtmp-load (built once, here).
# Every background process is under `timeout`; every wrk run is bounded by its duration.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-2}
SECS=${2:-10}
VIEWERS=${3:-1000}
LEAVE_VIEWERS=${4:-3000}
THREADS=${WRK_THREADS:-2}
CONNS=${WRK_CONNS:-64}
target_dir=${CARGO_TARGET_DIR:-target}
export RTMP_LOAD=$target_dir/release/rtmp-load
tessera_bin=${TESSERA_BIN:-$target_dir/release/tessera}
# Everything started here dies after this many seconds whatever happens.
bound=$(( 300 + (RUNS + 1) * (8 * (SECS + 35) + 2 * (SECS + 40)) ))

packages=()
command -v nginx >/dev/null || packages+=(nginx)
[ -e /usr/lib/nginx/modules/ngx_rtmp_module.so ] || packages+=(libnginx-mod-rtmp)
for tool in wrk ffmpeg curl python3; do command -v "$tool" >/dev/null || packages+=("$tool"); done
. tools/peer-lib.sh
install_missing compare.sh "${packages[@]}"
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    cargo build --release --quiet --bin tessera --bin rtmp-load
fi

work=$(mktemp -d /tmp/compare.XXXXXX)
# nginx's workers run as another user: they read the config dir and write the HLS files.
chmod 755 "$work"
cleanup() {
    jobs -p | xargs -r kill 2>/dev/null || true
    wait 2>/dev/null || true
    if [ "${KEEP:-0}" = 1 ]; then echo "raw output kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

t_http=$(free_port) t_rtmp=$(free_port) n_http=$(free_port) n_rtmp=$(free_port)

# --- tessera: the publisher's stream, played with token test1.
cat >"$work/tessera.conf" <<EOF
http 127.0.0.1:$t_http;
rtmp 127.0.0.1:$t_rtmp;
max_connections_per_ip 0;
auth_backend play-auth { allow token test1; }
stream live { input publish://; on_play auth://play-auth; }
EOF
TESSERA_LOG=warn timeout "$bound" "$tessera_bin" "$work/tessera.conf" \
    2>"$work/tessera.log" &
t_job=$!

# --- nginx: nginx/peers' two processes (RTMP in one worker: rtmp_auto_push between workers
# hangs players with Debian's build, nginx-rtmp issue 1719), ports and paths made local.
mkdir -p "$work/nginx/logs" "$work/nginx/tmp" "$work/nginx/www/live"
chmod -R 777 "$work/nginx/www"
user_line=""
[ "$(id -u)" = 0 ] && user_line="user root;"
cat >"$work/nginx-rtmp.conf" <<EOF
$user_line
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
daemon off;
worker_processes 1;
worker_rlimit_nofile 16384;
pid $work/nginx/rtmp.pid;
error_log $work/nginx/logs/rtmp-error.log warn;
events { worker_connections 16384; multi_accept on; }
rtmp {
    server {
        listen 127.0.0.1:$n_rtmp;
        chunk_size 4096;
        application live {
            live on;
            wait_key on;
            wait_video on;
            allow publish 127.0.0.1;
            deny publish all;
            on_play http://127.0.0.1:$n_http/rtmp/on_play;
            notify_method get;
            hls on;
            hls_path $work/nginx/www/live;
            hls_nested on;
            hls_fragment 2s;
            hls_playlist_length 10s;
        }
    }
}
EOF
cat >"$work/nginx-http.conf" <<EOF
$user_line
daemon off;
worker_processes 2;
pid $work/nginx/http.pid;
error_log $work/nginx/logs/http-error.log warn;
events { worker_connections 4096; }
http {
$(nginx_http_settings "$work")
    server {
        listen 127.0.0.1:$n_http reuseport;
        root $work/nginx/www;
        # The token check, and the rewrite that carries it onto every segment URI.
        location /live/ {
            if (\$arg_token != "test1") { return 403; }
            sub_filter_types application/vnd.apple.mpegurl;
            sub_filter_once off;
            sub_filter '.ts' '.ts?token=\$arg_token';
            add_header Cache-Control no-cache;
            add_header Access-Control-Allow-Origin *;
        }
        # The same check without the rewrite: players get 403 on every segment.
        location /noprop/live/ {
            alias $work/nginx/www/live/;
            if (\$arg_token != "test1") { return 403; }
            add_header Cache-Control no-cache;
            add_header Access-Control-Allow-Origin *;
        }
        location = /rtmp/on_play {
            if (\$arg_token != "test1") { return 403; }
            return 200;
        }
    }
}
EOF
timeout "$bound" nginx -p "$work/nginx/" -c "$work/nginx-http.conf" -e "$work/nginx/logs/http-error.log" \
    >"$work/nginx/logs/http.out" 2>&1 &
timeout "$bound" nginx -p "$work/nginx/" -c "$work/nginx-rtmp.conf" -e "$work/nginx/logs/rtmp-error.log" \
    >"$work/nginx/logs/rtmp.out" 2>&1 &

listening() { [ -n "$(ss -Hltn "sport = :$1")" ]; }
for _ in $(seq 100); do
    listening "$t_rtmp" && listening "$n_rtmp" && listening "$n_http" && break
    sleep 0.1
done
listening "$t_rtmp" && listening "$n_rtmp" && listening "$n_http" || {
    echo "compare.sh: servers did not start" >&2
    cat "$work/tessera.log" "$work/nginx/logs/"* >&2
    exit 1
}
t_pid=$(pgrep -P "$t_job")
n_rtmp_pid=$(cat "$work/nginx/rtmp.pid")

# --- One publisher, one encode, both servers.
publish_tee "$bound" "$work/ffmpeg.log" \
    "rtmp://127.0.0.1:$t_rtmp/static/live" "rtmp://127.0.0.1:$n_rtmp/live/stream"

t_base="http://127.0.0.1:$t_http/live"
n_base="http://127.0.0.1:$n_http"
# tessera's media playlist: the master's first variant.
for _ in $(seq 300); do
    t_media=$(curl -sf --max-time 2 "$t_base/index.m3u8?token=test1" | grep -v '^#' | head -1 | cut -d'?' -f1) || true
    [ -n "$t_media" ] && break
    sleep 0.1
done
[ -n "$t_media" ] || { echo "compare.sh: tessera has no playlist" >&2; cat "$work/tessera.log" "$work/ffmpeg.log" >&2; exit 1; }
t_media="$t_base/$t_media"
segments() { curl -sf --max-time 2 "$1" | grep -c '\.ts' || true; }
for _ in $(seq 300); do
    [ "$(segments "$t_media?token=test1")" -ge 3 ] && [ "$(segments "$n_base/live/stream/index.m3u8?token=test1")" -ge 3 ] && break
    sleep 0.1
done
[ "$(segments "$t_media?token=test1")" -ge 3 ] && [ "$(segments "$n_base/live/stream/index.m3u8?token=test1")" -ge 3 ] || {
    echo "compare.sh: no 3-segment playlists within 30 s" >&2
    cat "$work/tessera.log" "$work/ffmpeg.log" "$work/nginx/logs/"* >&2
    exit 1
}

cat >"$work/summary.lua" <<'EOF'
done = function(summary, latency, requests)
  io.write(string.format("WRKSUM requests=%d bytes=%d duration_us=%d status_err=%d socket_err=%d\n",
    summary.requests, summary.bytes, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
EOF

# One wrk run: "req/s MiB/s". `deny` when every answer must be an error (the 403 path),
# `ok` when none may be.
run_wrk() {
    local expect=$1 url=$2 out line
    out=$(timeout $((SECS + 30)) wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" --timeout 5s \
        -s "$work/summary.lua" "$url" 2>&1) || true
    echo "$out" >>"$work/wrk.log"
    line=$(grep '^WRKSUM' <<<"$out") || { echo "compare.sh: wrk failed on $url: $out" >&2; exit 1; }
    python3 - "$expect" "$url" "$line" <<'EOF'
import sys
expect, url, line = sys.argv[1:]
f = {k: int(v) for k, v in (kv.split("=") for kv in line.split()[1:])}
bad = f["status_err"] if expect == "ok" else f["requests"] - f["status_err"]
if bad or f["requests"] == 0:
    sys.exit(f"compare.sh: {url}: {bad} of {f['requests']} answers not as expected ({expect})")
secs = f["duration_us"] / 1e6
print(f"{f['requests'] / secs:.0f} {f['bytes'] / secs / 2**20:.1f}")
EOF
}

# The newest segment a playlist lists, as a URL with the token.
newest_segment() {
    local seg
    seg=$(curl -sf --max-time 2 "$1?token=test1" | grep '\.ts' | tail -1 | cut -d'?' -f1)
    echo "$(dirname "$1")/$seg?token=test1"
}

declare -A res
record() { res[$1]+="$2;"; }

http_round() {
    local seg
    record t.w1 "$(run_wrk ok "$t_media?token=test1")"
    seg=$(newest_segment "$t_media")
    record t.seg_bytes "$(curl -sf --max-time 5 "$seg" | wc -c) 0"
    record t.w2 "$(run_wrk ok "$seg")"
    record t.w3 "$(run_wrk deny "$t_media")"
    record n.w1 "$(run_wrk ok "$n_base/live/stream/index.m3u8?token=test1")"
    record n.w1raw "$(run_wrk ok "$n_base/noprop/live/stream/index.m3u8?token=test1")"
    seg=$(newest_segment "$n_base/live/stream/index.m3u8")
    record n.seg_bytes "$(curl -sf --max-time 5 "$seg" | wc -c) 0"
    record n.w2 "$(run_wrk ok "$seg")"
    record n.w3 "$(run_wrk deny "$n_base/live/stream/index.m3u8")"
}

rss_of() {
    local p r=0 b
    for p in "$1" $(pgrep -P "$1" || true); do
        b=$(awk '/^VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null) || continue
        r=$((r + ${b:-0}))
    done
    echo "$r"
}

# One fan-out run of $4 players: "cpu% kept_up peak_kB after_kB" (after: 10 s after the
# players left).
fanout() {
    local pid=$1 url=$2 label=$3 players=$4 row
    row=$(SETTLE=0 tools/load-rtmp.sh --pid "$pid" --url "$url" --seconds "$SECS" \
        --label "$label" --all "$players" 2>>"$work/rtmp.log" | tail -1)
    echo "$row" >>"$work/rtmp.log"
    sleep 10
    awk -v after="$(rss_of "$pid")" '{print $4, $3, $8, after}' <<<"$row"
}

parts=${PARTS:-http rtmp}
t_play="rtmp://127.0.0.1:$t_rtmp/static/live?token=test1"
n_play="rtmp://127.0.0.1:$n_rtmp/live/stream?token=test1"
declare -A idle
for run in $(seq "$RUNS"); do
    if [[ $parts == *http* ]]; then
        echo "run $run of $RUNS: HTTP" >&2
        http_round
    fi
    [[ $parts == *rtmp* ]] || continue
    # Without the HTTP runs first, the frame ring and segment windows are still filling:
    # that growth is no viewer's.
    [[ $parts == *http* ]] || [ -n "${idle[t]:-}" ] || sleep 40
    [ -n "${idle[t]:-}" ] || { idle[t]=$(rss_of "$t_pid"); idle[n]=$(rss_of "$n_rtmp_pid"); }
    echo "run $run of $RUNS: RTMP fan-out, $VIEWERS viewers" >&2
    record t.rtmp "$(fanout "$t_pid" "$t_play" tessera "$VIEWERS")"
    record n.rtmp "$(fanout "$n_rtmp_pid" "$n_play" nginx-rtmp "$VIEWERS")"
done
if [[ $parts == *rtmp* ]]; then
    echo "RTMP: $LEAVE_VIEWERS viewers come and leave" >&2
    record t.leave "$(fanout "$t_pid" "$t_play" tessera "$LEAVE_VIEWERS")"
    record n.leave "$(fanout "$n_rtmp_pid" "$n_play" nginx-rtmp "$LEAVE_VIEWERS")"
fi

echo "== tools/compare.sh $RUNS $SECS $VIEWERS $LEAVE_VIEWERS, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores" \
    "($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(uname -r)"
echo "   wrk -t$THREADS -c$CONNS -d${SECS}s; tessera $(nproc) shards, nginx HTTP 2 workers +" \
    "nginx-rtmp 1 worker; one ffmpeg publisher (320x240, 300 kb/s) into both"
python3 - "$VIEWERS" "${idle[t]:-0}" "${idle[n]:-0}" "$LEAVE_VIEWERS" <<EOF
import sys
viewers, idle_t, idle_n, leave = (int(a) for a in sys.argv[1:])
raw = {
$(for k in "${!res[@]}"; do echo "    '$k': '${res[$k]}',"; done)
}
runs = lambda k: [[float(x) for x in r.split()] for r in raw.get(k, '').split(';') if r]
def col(k, i): return [r[i] for r in runs(k)]
def row(name, t, n, goal, unit=""):
    if not t or not n:
        return
    ratios = [a / b for a, b in zip(t, n)]
    mean = sum(ratios) / len(ratios)
    fmt = lambda xs: " / ".join(f"{x:,.1f}" if x < 100 else f"{x:,.0f}" for x in xs)
    print(f"| {name} | {fmt(t)}{unit} | {fmt(n)}{unit} | {mean:.2f}x ({min(ratios):.2f}-{max(ratios):.2f}) | {goal} |")
print("| path | tessera (runs) | nginx (runs) | ratio: mean (min-max) | goal |")
print("|---|---|---|---|---|")
row("W1 token playlist, req/s (nginx with sub_filter rewrite)", col('t.w1', 0), col('n.w1', 0), ">= 3x")
row("W1 token playlist, req/s (nginx without rewrite)", col('t.w1', 0), col('n.w1raw', 0), ">= 2x")
row("W2 segment, MiB/s", col('t.w2', 1), col('n.w2', 1), ">= 1.2x")
row("W2 segment, req/s", col('t.w2', 0), col('n.w2', 0), "(sizes differ)")
row("W3 403 path, req/s", col('t.w3', 0), col('n.w3', 0), ">= 1.3x")
tr, nr = runs('t.rtmp'), runs('n.rtmp')
row(f"RTMP CPU per viewer, % of a core per 1,000", [r[0] / viewers * 1000 for r in tr], [r[0] / viewers * 1000 for r in nr], "<= 0.7x")
row("RTMP resident kB per viewer (peak - idle)", [(r[2] - idle_t) / viewers for r in tr], [(r[2] - idle_n) / viewers for r in nr], "tessera <= 16 KiB")
tl, nl = runs('t.leave'), runs('n.leave')
row(f"RSS 10 s after {leave:,} viewers left, % over idle", [100 * (r[3] - idle_t) / idle_t for r in tl], [100 * (r[3] - idle_n) / idle_n for r in nl], "tessera <= 10%")
if tr and nr:
    print(f"RTMP players that kept up: tessera {[int(r[1]) for r in tr]}, nginx-rtmp {[int(r[1]) for r in nr]} of {viewers:,};"
          f" of {leave:,}: tessera {[int(r[1]) for r in tl]}, nginx-rtmp {[int(r[1]) for r in nl]}."
          f" Idle RSS (before the first fan-out) tessera {idle_t} kB, nginx-rtmp {idle_n} kB;"
          f" peak with {leave:,}: tessera {[int(r[2]) for r in tl]} kB, nginx-rtmp {[int(r[2]) for r in nl]} kB")
sb = lambda k: [int(r[0]) for r in runs(k)]
print(f"segment bytes: tessera {sb('t.seg_bytes')}, nginx {sb('n.seg_bytes')}")
EOF
