#!/usr/bin/env bash
# tessera against nginx-rtmp (nginx + Debian's libnginx-mod-rtmp) as RTMP fan-out servers,
# on 127.0.0.1 only, same machine, same stream, same bitrate, same load client.
#
#   tools/compare-nginx-rtmp.sh [N ...]        (default N: 50 100 200 400 800)
#   env: SECONDS_PER_RUN (10), NGINX_WORKERS ("1 2": one nginx run per value),
#        SHARDS (tessera's shards; default one per core), SKIP_BUILD=1 (use the existing
#        release build), RAMP_MS / SETTLE (passed to load-rtmp.sh)
#
# 1. Builds tessera and rtmp-load (release) and installs nginx + libnginx-mod-rtmp with
#    apt-get when they are missing and we are root.
# 2. Starts tessera with the default config (config/tessera.conf, listeners moved to free
#    loopback ports) and runs tools/load-rtmp.sh against it (players of
#    rtmp://127.0.0.1:PORT/static/auth-check?token=test1).
# 3. For each NGINX_WORKERS value: writes an nginx config into a temp dir (rtmp on a free
#    port, `application live { live on; }`, chunk_size 4096 like tessera, `rtmp_auto_push on`
#    and multi_accept when there is more than one worker, since nginx-rtmp's live streams
#    are per worker),
#    relays tessera's stream into it with `ffmpeg -c copy` (the same stream at the same
#    bitrate), and runs load-rtmp.sh against it. tessera keeps running as the source.
# 4. Prints both tables. Stops everything it started; every process is bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(50 100 200 400 800)
secs=${SECONDS_PER_RUN:-10}
workers_list=${NGINX_WORKERS:-"1 2"}
shards=${SHARDS:-$(nproc)}
target_dir=${CARGO_TARGET_DIR:-target}
export RTMP_LOAD=$target_dir/release/rtmp-load
# Every background process dies after this many seconds whatever happens.
bound=$(( 600 + ${#counts[@]} * 3 * (secs + 25) ))

command -v ffmpeg >/dev/null || { echo "compare-nginx-rtmp.sh: install ffmpeg" >&2; exit 1; }
if ! command -v nginx >/dev/null || [ ! -e /usr/lib/nginx/modules/ngx_rtmp_module.so ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx libnginx-mod-rtmp >/dev/null
    else
        echo "compare-nginx-rtmp.sh: install nginx libnginx-mod-rtmp (apt-get)" >&2
        exit 1
    fi
fi
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    cargo build --release --quiet --bin tessera --bin rtmp-load
fi

dir=$(mktemp -d)
chmod 755 "$dir"
cleanup() {
    jobs -p | xargs -r kill 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT

# A loopback TCP port nobody listens on.
free_port() {
    local p
    while :; do
        p=$(( 20000 + RANDOM % 20000 ))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
    done
}
# Waits until the resident memory of $1 grows by less than 1% in 10 s (at most 120 s): a
# fresh tessera fills its frame ring and segment window during its first minute, which is
# not memory per viewer.
wait_rss_steady() {
    local a b i
    a=$(awk '/^VmRSS/ {print $2}' "/proc/$1/status")
    for i in $(seq 1 12); do
        sleep 10
        b=$(awk '/^VmRSS/ {print $2}' "/proc/$1/status")
        [ $(( (b - a) * 100 )) -lt "$a" ] && { echo "$b"; return; }
        a=$b
    done
    echo "$b"
}
# Waits until one player of $1 keeps up for 3 s (the stream flows), at most 5 tries.
wait_stream() {
    local i
    for i in 1 2 3 4 5; do
        if timeout 20 "$RTMP_LOAD" "$1" --players 1 --seconds 3 | grep -q ' kept_up=1 '; then
            return 0
        fi
        sleep 1
    done
    echo "compare-nginx-rtmp.sh: no stream at $1" >&2
    return 1
}

http=$(free_port) rtmp=$(free_port) rtsp=$(free_port)
sed -e "s/^http .*/http 127.0.0.1:$http;/" -e "s/^rtmp .*/rtmp 127.0.0.1:$rtmp;/" \
    -e "s/^rtsp .*/rtsp 127.0.0.1:$rtsp;/" config/tessera.conf >"$dir/tessera.conf"
TESSERA_LOG=warn timeout "$bound" "$target_dir/release/tessera" --shards "$shards" \
    "$dir/tessera.conf" 2>"$dir/tessera.log" &
sleep 0.5
tessera_pid=$(pgrep -P $! -x tessera)
source_url="rtmp://127.0.0.1:$rtmp/static/auth-check?token=test1"
wait_stream "$source_url" || { cat "$dir/tessera.log" >&2; exit 1; }
echo "tessera warming up (frame ring and segment window filling)..." >&2
echo "tessera resident memory steady at $(wait_rss_steady "$tessera_pid") kB" >&2

echo "== $(nproc) cores shared by the server, rtmp-load and (for nginx) the ffmpeg relay and" \
    "tessera as its source; ${secs}s per run; CPU in % of one core"
tools/load-rtmp.sh --pid "$tessera_pid" --url "$source_url" --seconds "$secs" \
    --label "tessera-${shards}sh" "${counts[@]}" | tee "$dir/table"

for workers in $workers_list; do
    port=$(free_port)
    ndir="$dir/nginx-$workers"
    mkdir -p "$ndir/logs"
    chmod 755 "$ndir"
    {
        [ "$(id -u)" = 0 ] && echo "user root;"
        cat <<CONF
daemon off;
master_process on;
worker_processes $workers;
worker_rlimit_nofile 16384;
pid $ndir/nginx.pid;
error_log $ndir/error.log warn;
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
events { worker_connections 8192; multi_accept on; }
CONF
        # nginx-rtmp keeps a live stream in the worker its publisher landed on; with more
        # workers, auto-push relays it to the others over unix sockets (players that land
        # on another worker hang without it; with Debian's nginx also without multi_accept,
        # nginx-rtmp issue #1719).
        [ "$workers" -gt 1 ] && printf 'rtmp_auto_push on;\nrtmp_socket_dir %s;\n' "$ndir"
        cat <<CONF
rtmp {
    server {
        listen 127.0.0.1:$port;
        chunk_size 4096;
        application live { live on; }
    }
}
CONF
    } >"$ndir/nginx.conf"
    timeout "$bound" nginx -p "$ndir" -c "$ndir/nginx.conf" -e "$ndir/error.log" &
    nginx_job=$!
    for _ in $(seq 1 50); do [ -s "$ndir/nginx.pid" ] && break; sleep 0.1; done
    nginx_pid=$(cat "$ndir/nginx.pid")
    timeout "$bound" ffmpeg -nostdin -v error -i "$source_url" -c copy -f flv \
        "rtmp://127.0.0.1:$port/live/auth-check" 2>"$ndir/relay.log" &
    relay_job=$!
    nginx_url="rtmp://127.0.0.1:$port/live/auth-check"
    if wait_stream "$nginx_url"; then
        tools/load-rtmp.sh --pid "$nginx_pid" --url "$nginx_url" --seconds "$secs" \
            --label "nginx-${workers}w" "${counts[@]}" | tail -n +2 | tee -a "$dir/table"
    else
        cat "$ndir/error.log" "$ndir/relay.log" >&2
    fi
    kill "$relay_job" "$nginx_job" 2>/dev/null || true
    wait "$relay_job" "$nginx_job" 2>/dev/null || true
done

echo "== summary"
cat "$dir/table"
