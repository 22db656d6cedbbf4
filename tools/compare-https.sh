#!/usr/bin/env bash
# HTTPS side by side: tessera and nginx (Debian's, OpenSSL) on the same ECDSA P-256
# certificate, the same wrk, one server at a time, interleaved runs (T N T N ...):
#   playlist   keep-alive GETs of the token media playlist
#   segment    keep-alive GETs of one ~120 KB segment
#   handshake  a new connection (a full TLS handshake) per request: `Connection: close`
# nginx serves the very bytes tessera served (the playlist with the token already on every
# URI, and the segment), from files, behind a `$arg_token` check: nginx's best case, with
# no playlist rewrite. Only 127.0.0.1; every run is bounded by wrk's duration.
#
#   tools/compare-https.sh [RUNS] [SECONDS]       (defaults 2 and 10)
#
# Needs: openssl, nginx, wrk, curl (installed with apt-get when missing and run as root),
# and a release build of tessera (built when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-2}
SECONDS_PER_RUN=${2:-10}
THREADS=${WRK_THREADS:-2}
CONNS=${WRK_CONNS:-64}
T_PORT=28443
N_PORT=28444
HTTP_PORT=28081

missing=()
for tool in openssl nginx wrk curl; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
. tools/peer-lib.sh
install_missing compare-https "${missing[@]}"
[ -x target/release/tessera ] || cargo build --release --bin tessera

work=$(mktemp -d /tmp/compare-https.XXXXXX)
# nginx's workers run as another user: they must be able to read the files.
chmod 755 "$work"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
}
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -keyout "$work/edge.key" -out "$work/edge.crt" 2>/dev/null

cat >"$work/tessera.conf" <<EOF
http 127.0.0.1:$HTTP_PORT;
https 127.0.0.1:$T_PORT;
ssl_certificate $work/edge.crt;
ssl_certificate_key $work/edge.key;
auth_backend play-auth { allow token test1; }
stream auth-check { input fake://fake; on_play auth://play-auth; }
EOF

start_tessera() {
    TESSERA_LOG=warn target/release/tessera "$work/tessera.conf" 2>"$work/tessera.log" &
    pids+=($!)
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$HTTP_PORT/auth-check/tracks-v1a1/mono.m3u8?token=test1" \
            >/dev/null && return
        sleep 0.1
    done
    echo "tessera did not start: $(cat "$work/tessera.log")" >&2
    exit 1
}
stop_tessera() {
    kill "${pids[-1]}" 2>/dev/null || true
    wait "${pids[-1]}" 2>/dev/null || true
}

# The bytes both serve: the media playlist (tokens on every URI) and its newest segment.
start_tessera
media="/auth-check/tracks-v1a1/mono.m3u8"
mkdir -p "$work/www/auth-check/tracks-v1a1"
curl -sf "http://127.0.0.1:$HTTP_PORT$media?token=test1" >"$work/www$media"
segment=$(grep '\.ts' "$work/www$media" | tail -1 | cut -d'?' -f1)
seg_path="/auth-check/tracks-v1a1/$segment"
mkdir -p "$(dirname "$work/www$seg_path")"
curl -sf "http://127.0.0.1:$HTTP_PORT$seg_path?token=test1" >"$work/www$seg_path"
stop_tessera
seg_bytes=$(stat -c %s "$work/www$seg_path")
chmod -R a+rX "$work/www"

mkdir -p "$work/nginx/logs" "$work/nginx/tmp"
cat >"$work/nginx.conf" <<EOF
daemon off;
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
$(nginx_http_settings "$work")
    ssl_session_cache shared:SSL:10m;
    server {
        listen 127.0.0.1:$N_PORT ssl reuseport;
        ssl_certificate $work/edge.crt;
        ssl_certificate_key $work/edge.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        root $work/www;
        location / {
            if (\$arg_token != "test1") { return 403; }
        }
    }
}
EOF

start_nginx() {
    nginx -p "$work/nginx/" -c "$work/nginx.conf" 2>>"$work/nginx/logs/stderr.log" &
    pids+=($!)
    for _ in $(seq 100); do
        curl -sfk "https://127.0.0.1:$N_PORT$media?token=test1" >/dev/null && return
        sleep 0.1
    done
    echo "nginx did not start: $(cat "$work/nginx/logs/error.log")" >&2
    exit 1
}
stop_nginx() {
    kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
    wait "${pids[-1]}" 2>/dev/null || true
}

# wrk's requests per second for one run; a run with any non-2xx answer is an error (the
# two servers must serve the same thing).
run_wrk() {
    local url=$1
    shift
    local out
    out=$(wrk -t"$THREADS" -c"$CONNS" -d"${SECONDS_PER_RUN}s" --timeout 5s "$@" "$url" 2>&1)
    if grep -q "Non-2xx" <<<"$out"; then
        echo "compare-https: $url answered errors:" >&2
        echo "$out" >&2
        exit 1
    fi
    awk '/Requests\/sec/ {print $2}' <<<"$out"
}

# The newest segment tessera lists now (its names carry the wall clock of this process).
newest_segment() {
    curl -sfk "https://127.0.0.1:$T_PORT$media?token=test1" | grep '\.ts' | tail -1 |
        cut -d'?' -f1 | sed 's|^|/auth-check/tracks-v1a1/|'
}

declare -A results
workload() {
    local server=$1 port=$2
    local base="https://127.0.0.1:$port" segment=$seg_path
    results[$server,playlist]+=" $(run_wrk "$base$media?token=test1")"
    # tessera's segment is looked up right before its run: a live window moves on.
    [ "$server" = tessera ] && segment=$(newest_segment)
    results[$server,segment]+=" $(run_wrk "$base$segment?token=test1")"
    results[$server,handshake]+=" $(run_wrk "$base$media?token=test1" -H 'Connection: close')"
}

for _ in $(seq "$RUNS"); do
    start_tessera
    workload tessera "$T_PORT"
    stop_tessera
    start_nginx
    workload nginx "$N_PORT"
    stop_nginx
done

echo "HTTPS, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, wrk -t$THREADS -c$CONNS -d${SECONDS_PER_RUN}s," \
    "ECDSA P-256, segment $seg_bytes bytes, $RUNS runs each (T N interleaved)"
printf '%-10s %-28s %-28s %s\n' path "tessera req/s (runs)" "nginx req/s (runs)" "ratio (mean)"
for path in playlist segment handshake; do
    t=${results[tessera,$path]}
    n=${results[nginx,$path]}
    ratio=$(python3 -c "import sys; t=[float(x) for x in '$t'.split()]; n=[float(x) for x in '$n'.split()]; print(f'{(sum(t)/len(t))/(sum(n)/len(n)):.2f}x')")
    printf '%-10s %-28s %-28s %s\n' "$path" "$t" "$n" "$ratio"
done
