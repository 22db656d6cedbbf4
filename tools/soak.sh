#!/usr/bin/env bash
# Soak: tessera under a mixed, changing load for MINUTES, sampled every 5 s.
#
#   tools/soak.sh [MINUTES=15]
#   env: TESSERA (binary; default target/release/tessera, built when missing, with the
#        tessera-portal and rtmp-load tools), SHARDS=2, RTMP_VIEWERS=200, RTSP_VIEWERS=50,
#        WRK_CONNS=32, STREAMS=7, NO_RELOAD=1 (skip the SIGHUP every 30 s), OUT=DIR (where
#        the CSV, the plot and the logs go; default a new /tmp/tessera-soak.XXXXXX)
#
# Load, all on 127.0.0.1: wrk on the token-protected HLS playlist and its segments (a Lua
# script alternates them); RTMP_VIEWERS players (tools/rtmp_load.rs) and RTSP_VIEWERS ffmpeg
# viewers (RTSP over TCP, -c copy) of the fake stream; tessera-portal as the auth backend
# (every viewer's token is the portal's). Every second a new token is issued by the
# portal, played once with curl, and revoked (the portal passes the revocation on to
# tessera's operator API: `POST /streamer/api/v3/revoke`). Every 30 s the server gets
# SIGHUP (a config reload) and the outcome is logged in reloads.log (alive or not).
#
# Out: soak.csv (every 5 s: time, RSS, open files, open sessions per protocol and HTTP
# connections from /metrics, RTMP and RTSP viewer connections (ss), RTSP viewer processes
# alive), soak.png (gnuplot; installed with
# apt-get when missing and root), and a summary: wrk's requests and errors, rtmp-load's
# line (players that kept up), RTSP viewers that failed, churned tokens that did not play
# or were not refused after their revocation, reloads survived.
set -uo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-15}
secs=$(awk -v m="$minutes" 'BEGIN { printf "%d", m * 60 }')
rtmp_viewers=${RTMP_VIEWERS:-200}
rtsp_viewers=${RTSP_VIEWERS:-50}
bin=${TESSERA:-target/release/tessera}
tooldir=$(dirname "$bin")
if [ ! -x "$bin" ] || [ ! -x "$tooldir/tessera-portal" ] || [ ! -x "$tooldir/rtmp-load" ]; then
    cargo build --release --quiet --bins || exit 2
fi
for tool in wrk ffmpeg curl; do
    command -v $tool >/dev/null || { echo "soak.sh: needs $tool" >&2; exit 2; }
done
if ! command -v gnuplot >/dev/null && [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gnuplot-nox >/dev/null 2>&1
fi
ulimit -n "$(ulimit -Hn)"

out=${OUT:-$(mktemp -d /tmp/tessera-soak.XXXXXX)}
mkdir -p "$out"
. tools/server-lib.sh
base=$(free_base)
http=$base rtmp=$((base + 1)) rtsp=$((base + 2)) portal=$((base + 3))
key=soak-api-key-0123456789
cat >"$out/tessera.conf" <<CONF
http 127.0.0.1:$http;
rtmp 127.0.0.1:$rtmp;
rtsp 127.0.0.1:$rtsp;
api_key $key;
auth_backend portal {
    backend http://127.0.0.1:$portal/auth;
    backend_timeout 10;
}
CONF
for i in $(seq 1 "${STREAMS:-7}"); do
    printf 'stream s%d {\n    input fake://fake;\n    on_play auth://portal;\n}\n' "$i" >>"$out/tessera.conf"
done

pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
}
trap cleanup EXIT
"$tooldir/tessera-portal" --listen "127.0.0.1:$portal" --token soak:viewers \
    --tessera "http://127.0.0.1:$http" --api-key "$key" >"$out/portal.log" 2>&1 &
pids+=($!)
TESSERA_LOG=warn "$bin" --shards "${SHARDS:-2}" "$out/tessera.conf" 2>"$out/server.log" &
pid=$!
pids+=($pid)
hls="http://127.0.0.1:$http/s1"
wait_served "$hls/index.m3u8?token=soak" "$pid" "$out/server.log"
sleep 8 # segments in the window
# One decision per stream before the viewers come (the example portal is a thread per
# connection: on a loaded 2-core machine 250 first questions at once can outlast a 3 s
# backend timeout, which is the portal's limit, not the server's).
for i in $(seq 1 "${STREAMS:-7}"); do
    curl -s -o /dev/null --max-time 10 "http://127.0.0.1:$http/s$i/index.m3u8?token=soak"
done

# --- sampler: every 5 s into soak.csv
metric() { # NAME LABEL -> sum over lines; empty when /metrics did not answer
    awk -v n="$1" -v l="$2" '$1 ~ "^"n && (l == "" || index($1, l)) { s += $2; f = 1 } END { if (f) print s }' "$out/metrics"
}
sampler() {
    echo "seconds,rss_mb,open_files,hls_sessions,rtmp_sessions,rtsp_sessions,http_connections,rtmp_viewers,rtsp_viewers,rtsp_viewer_procs"
    local t0 now
    t0=$(date +%s)
    while kill -0 "$pid" 2>/dev/null; do
        now=$(( $(date +%s) - t0 ))
        # Sessions count one per token, stream and shard; viewers are the connections.
        curl -s --max-time 4 -H "Authorization: Bearer $key" "http://127.0.0.1:$http/metrics" >"$out/metrics" ||
            : >"$out/metrics"
        printf '%d,%d,%d,%s,%s,%s,%s,%d,%d,%d\n' "$now" \
            "$(awk '/VmRSS/ { print int($2 / 1024) }' "/proc/$pid/status")" \
            "$(ls "/proc/$pid/fd" | wc -l)" \
            "$(metric tessera_sessions_open 'proto="hls"')" \
            "$(metric tessera_sessions_open 'proto="rtmp"')" \
            "$(metric tessera_sessions_open 'proto="rtsp"')" \
            "$(metric tessera_http_connections_open '')" \
            "$(ss -Htn state established "( sport = :$rtmp )" | wc -l)" \
            "$(ss -Htn state established "( sport = :$rtsp )" | wc -l)" \
            "$(pgrep -c -f "^ffmpeg .*rtsp://127.0.0.1:$rtsp/" || true)"
        sleep 5
    done
}
sampler >"$out/soak.csv" &
pids+=($!)

# --- load
cat >"$out/hls.lua" <<'LUA'
-- alternates the media playlist and the newest segment it lists
local segment = nil
local n = 0
request = function()
  n = n + 1
  if segment and n % 2 == 0 then return wrk.format("GET", segment) end
  return wrk.format("GET", "/s1/tracks-v1a1/mono.m3u8?token=soak")
end
response = function(status, headers, body)
  if status == 200 and body then
    local last = nil
    for line in body:gmatch("[^\r\n]+") do
      if line:sub(1, 1) ~= "#" and line:find("%.ts") then last = line end
    end
    if last then segment = "/s1/tracks-v1a1/" .. last end
  end
end
done = function(summary, latency, requests)
  io.write(string.format("wrk requests=%d non2xx_or_errors=%d connect=%d read=%d write=%d timeout=%d p99_ms=%.1f\n",
    summary.requests, summary.errors.status, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.timeout, latency:percentile(99) / 1000))
end
LUA
wrk -t1 -c"${WRK_CONNS:-32}" -d"${secs}s" --timeout 5s -s "$out/hls.lua" "http://127.0.0.1:$http" \
    >"$out/wrk.log" 2>&1 &
pids+=($!)
wrk_pid=$!
"$tooldir/rtmp-load" "rtmp://127.0.0.1:$rtmp/static/s2?token=soak" --players "$rtmp_viewers" \
    --seconds "$secs" --ramp-ms 20 --verbose >"$out/rtmp-load.log" 2>&1 &
pids+=($!)
rtmp_pid=$!
rtsp_pids=()
for i in $(seq 1 "$rtsp_viewers"); do
    s=$(( 3 + i % 5 ))
    # ffmpeg exits 0 when the server closes: a viewer failed when it exits early too.
    (
        started=$(date +%s)
        ffmpeg -nostdin -v error -rtsp_transport tcp -i "rtsp://127.0.0.1:$rtsp/s$s?token=soak" \
            -t "$secs" -c copy -f null - >"$out/rtsp-$i.log" 2>&1 || exit 1
        [ $(( $(date +%s) - started )) -ge $(( secs - 10 )) ]
    ) &
    rtsp_pids+=($!)
    sleep 0.05
done
pids+=("${rtsp_pids[@]}")

# --- churn (a token per second, played then revoked) and reloads (every 30 s)
churn_ok=0 churn_bad=0 reloads=0 reload_fail=0
end=$(( $(date +%s) + secs ))
next_reload=$(( $(date +%s) + 30 ))
while [ "$(date +%s)" -lt "$end" ] && kill -0 "$pid" 2>/dev/null; do
    tick=$(date +%s)
    token=$(curl -s --max-time 2 -X POST "http://127.0.0.1:$portal/tokens?user=churn$((tick % 50))")
    before=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$hls/index.m3u8?token=$token")
    curl -s -o /dev/null --max-time 5 -X POST "http://127.0.0.1:$portal/revoke?token=$token"
    for _ in $(seq 1 10); do # a revocation holds within a second on every shard
        after=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$hls/index.m3u8?token=$token")
        [ "$after" = 403 ] && break
        sleep 0.1
    done
    if [ "$before" = 200 ] && [ "$after" = 403 ]; then
        churn_ok=$((churn_ok + 1))
    else
        churn_bad=$((churn_bad + 1))
        echo "$(date -u +%T) token played $before, after revoke $after" >>"$out/churn.log"
    fi
    if [ "${NO_RELOAD:-0}" != 1 ] && [ "$tick" -ge "$next_reload" ]; then
        next_reload=$(( tick + 30 ))
        reloads=$((reloads + 1))
        kill -HUP "$pid" 2>/dev/null
        sleep 1
        if kill -0 "$pid" 2>/dev/null; then
            echo "$(date -u +%T) reload $reloads: server alive; log: $(tail -1 "$out/server.log")" >>"$out/reloads.log"
        else
            reload_fail=$((reload_fail + 1))
            echo "$(date -u +%T) reload $reloads: server gone" >>"$out/reloads.log"
        fi
    fi
    while [ "$(date +%s)" -le "$tick" ]; do sleep 0.1; done
done

wait "$wrk_pid" "$rtmp_pid"
rtsp_failed=0
for p in "${rtsp_pids[@]}"; do
    wait "$p" || rtsp_failed=$((rtsp_failed + 1))
done
sleep 6
alive=yes
kill -0 "$pid" 2>/dev/null || alive=no

if command -v gnuplot >/dev/null; then
    gnuplot <<PLOT 2>"$out/gnuplot.log"
set datafile separator ","
set terminal pngcairo size 1200,700 noenhanced
set output "$out/soak.png"
set title "tessera soak: ${minutes} min, ${rtmp_viewers} RTMP + ${rtsp_viewers} RTSP viewers, wrk on HLS"
set xlabel "seconds"
set ylabel "MB / files"
set y2label "sessions / connections"
set y2tics
set y2range [0:$(( rtmp_viewers * 5 / 4 + 10 ))]
set key outside bottom center horizontal
plot "$out/soak.csv" using 1:2 with lines lw 2 title "RSS MB", \
     "" using 1:3 with lines lw 2 title "open files", \
     "" using 1:8 axes x1y2 with lines title "RTMP viewers", \
     "" using 1:9 axes x1y2 with lines title "RTSP viewers", \
     "" using 1:7 axes x1y2 with lines title "HTTP connections", \
     "" using 1:5 axes x1y2 with points title "RTMP sessions", \
     "" using 1:6 axes x1y2 with points title "RTSP sessions"
PLOT
fi

echo "out: $out"
echo "server alive at the end: $alive"
tail -1 "$out/wrk.log"
grep '^rtmp-load' "$out/rtmp-load.log"
echo "rtsp viewers: $rtsp_viewers, failed: $rtsp_failed"
echo "churned tokens: played then refused $churn_ok, otherwise $churn_bad"
echo "reloads: $reloads sent, server gone after $reload_fail (NO_RELOAD=${NO_RELOAD:-0})"
awk -F, 'NR > 1 { n++; r[n] = $2; f[n] = $3 } END {
    w = int(n / 4) + 1
    printf "rss_mb: after warm-up (sample %d) %d, last %d, max %d; open files: after warm-up %d, last %d\n",
        w, r[w], r[n], mx(r, n), f[w], f[n] }
    function mx(a, n,   i, m) { for (i = 1; i <= n; i++) if (a[i] > m) m = a[i]; return m }' "$out/soak.csv"
[ -f "$out/soak.png" ] && echo "plot: $out/soak.png"
