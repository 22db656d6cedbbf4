#!/usr/bin/env bash
# SRT viewer load next to RTMP's, on the same stream, in one run, bounded in time.
#
#   tools/load-srt.sh [--seconds S (15)] [--shards K (2)] N
#   env: TESSERA (server binary; default target/debug/tessera, which the dev profile
#        optimizes), RTMP_LOAD (default target/debug/rtmp-load), RAMP_MS (10)
#
# Two phases, each on a fresh server (so each has its own idle baseline; allocators keep
# what an earlier phase freed) with the fake source `auth-check` behind a token rule:
#   srt:  N `srt-live-transmit` viewers (libsrt 1.5, output to /dev/null), RAMP_MS apart;
#   rtmp: `rtmp-load --players N` (tools/rtmp_load.rs) on the same stream.
# Once every viewer of a phase plays (its "play started" log line), the server's CPU
# (utime + stime of /proc/PID/stat, % of one core) and RSS (VmRSS, sampled every 0.5 s, the
# most) are taken over S seconds. Per viewer: CPU % / N and (RSS during - idle RSS) / N.
# Time to first frame, with the N viewers on: 5 new viewers one after another, from the
# client's start to its first media byte (SRT: the first 1316-byte payload, which starts
# with PAT, PMT and a keyframe; RTMP: rtmp-load's first media message), median and most.
# Every client is killed at the end of its phase; the whole run lasts about
# 2 * (ramp + S + 25) s.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=15 shards=2 n=
while [ $# -gt 0 ]; do
    case $1 in
        --seconds) secs=$2; shift 2 ;;
        --shards) shards=$2; shift 2 ;;
        -*) echo "load-srt.sh: unknown option $1" >&2; exit 2 ;;
        *) n=$1; shift ;;
    esac
done
[ -n "$n" ] || { sed -n '2,6p' "$0" >&2; exit 2; }
server_bin=${TESSERA:-target/debug/tessera}
rtmp_load=${RTMP_LOAD:-target/debug/rtmp-load}
ramp_ms=${RAMP_MS:-10}
for b in "$server_bin" "$rtmp_load"; do
    [ -x "$b" ] || { echo "load-srt.sh: build it first: cargo build --bins ($b)" >&2; exit 1; }
done
command -v srt-live-transmit >/dev/null || { echo "load-srt.sh: install srt-tools" >&2; exit 1; }
hz=$(getconf CLK_TCK)
dir=$(mktemp -d)
server=
cleanup() {
    jobs -p | xargs -r kill 2>/dev/null || true
    wait 2>/dev/null || true
    grep -E "WARN|ERROR" "$dir/server.log" >&2 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# Starts a fresh server; sets $server, $http, $srt, $rtmp.
start_server() {
    http=$(free_port) srt=$(free_port) rtmp=$(free_port)
    cat > "$dir/tessera.conf" <<EOF
http 127.0.0.1:$http;
rtmp 127.0.0.1:$rtmp;
srt 127.0.0.1:$srt;
auth_backend play-auth { allow token test1; }
stream auth-check { input fake://fake; on_play auth://play-auth; }
EOF
    TESSERA_LOG=info "$server_bin" --shards "$shards" "$dir/tessera.conf" 2> "$dir/server.log" &
    server=$!
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$http/auth-check/tracks-v1a1/mono.m3u8?token=test1" >/dev/null && break
        sleep 0.2
    done
    sleep 3 # a few segments and GOPs in the ring, the idle server settled
}

# Viewers of proto $1 that started playing (one log line each; sessions are per client
# IP and token, so the API lists these viewers as one).
sessions() { grep -c "$1 play started" "$dir/server.log" || true; }

# Waits (at most 60 s) until $2 viewers of proto $1 play.
wait_sessions() {
    for _ in $(seq 300); do
        [ "$(sessions "$1")" -ge "$2" ] && return 0
        sleep 0.2
    done
    echo "load-srt.sh: only $(sessions "$1") of $2 $1 viewers play" >&2
}

# Samples the server over $secs: prints "cpu_percent rss_max_kb".
measure() {
    local t0 t1 r max=0
    t0=$(ticks "$server")
    for _ in $(seq $((secs * 2))); do
        r=$(rss_kb "$server"); [ "$r" -gt "$max" ] && max=$r
        sleep 0.5
    done
    t1=$(ticks "$server")
    echo "$(( (t1 - t0) * 100 * 100 / hz / secs ))" "$max"
}

srt_url() { echo "srt://127.0.0.1:$srt?streamid=#!::r=auth-check,m=request,token=test1"; }

# One SRT viewer's time from its start to its first payload (ms).
srt_first_frame() {
    local s e
    s=$(now_ms)
    timeout 10 srt-live-transmit -q "$(srt_url)" file://con 2>/dev/null | head -c 1316 > /dev/null || true
    e=$(now_ms)
    echo $((e - s))
}

# One RTMP viewer's time to its first media message (ms), from rtmp-load.
rtmp_first_frame() {
    "$rtmp_load" "rtmp://127.0.0.1:$rtmp/static/auth-check?token=test1" --players 1 --seconds 1 |
        sed -n 's/.*worst_first_media_ms=\([0-9]*\).*/\1/p'
}

# median and max of the numbers on stdin
stats() { sort -n | awk '{a[NR]=$1} END {printf "%d/%d", a[int((NR+1)/2)], a[NR]}'; }

row() { # proto idle_kb cpu_x100 rss_kb ttff
    local per_cpu per_rss
    per_cpu=$(awk -v c="$3" -v n="$n" 'BEGIN {printf "%.3f", c / 100 / n}')
    per_rss=$(awk -v r="$4" -v i="$2" -v n="$n" 'BEGIN {printf "%.1f", (r - i) / n}')
    printf '%-5s %7s %9s %10s %10s %10s %11s %14s\n' "$1" "$n" \
        "$(awk -v c="$3" 'BEGIN {printf "%.1f", c / 100}')" "$per_cpu" "$(( $2 / 1024 ))" \
        "$(( $4 / 1024 ))" "$per_rss" "$5"
}

printf '%-5s %7s %9s %10s %10s %10s %11s %14s\n' proto viewers cpu_% cpu_%/view idle_MiB rss_MiB KiB/viewer ttff_ms_med/max

# SRT
start_server
idle=$(rss_kb "$server")
for _ in $(seq "$n"); do
    srt-live-transmit -q "$(srt_url)" file://con > /dev/null 2>&1 &
    sleep "$(awk -v m="$ramp_ms" 'BEGIN {print m / 1000}')"
done
wait_sessions srt "$n"
read -r cpu rss < <(measure)
ttff=$(for _ in 1 2 3 4 5; do srt_first_frame; done | stats)
row srt "$idle" "$cpu" "$rss" "$ttff"
jobs -p | xargs -r kill 2>/dev/null || true
wait 2>/dev/null || true

# RTMP
start_server
idle=$(rss_kb "$server")
"$rtmp_load" "rtmp://127.0.0.1:$rtmp/static/auth-check?token=test1" --players "$n" \
    --seconds $((secs + 30)) --ramp-ms "$ramp_ms" > "$dir/rtmp-load.out" &
load=$!
wait_sessions rtmp "$n"
read -r cpu rss < <(measure)
ttff=$(for _ in 1 2 3 4 5; do rtmp_first_frame; done | stats)
row rtmp "$idle" "$cpu" "$rss" "$ttff"
kill "$load" 2>/dev/null || true
