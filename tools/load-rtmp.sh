#!/usr/bin/env bash
# RTMP player load against a running server (tessera, nginx-rtmp, ...), bounded in time.
#
#   tools/load-rtmp.sh --pid PID --url rtmp://127.0.0.1:PORT/APP/NAME[?token=...] \
#       [--seconds S (10)] [--label NAME] [--all] N [N ...]
#   env: RTMP_LOAD (the rtmp-load binary; default: the release build), RAMP_MS (default:
#        10 ms, less for large N so that starting all players takes at most 4 s),
#        SETTLE (seconds between runs, 3)
#
# For each N: samples the server's resident memory (VmRSS) and CPU time (utime + stime from
# /proc/PID/stat), PID and its child processes summed (nginx's workers are children of its
# master), runs `rtmp-load URL --players N --seconds S`, sampling every 0.5 s, and prints
# one table row: players that kept up, the server's CPU over the steady part of the run
# (all players connected; % of one core, so 200% is both cores of a 2-core machine), the
# load tool's own CPU over the same window (it shares the machine's cores with the server),
# RSS of the idle server (before the first run), right before the run and the most during
# it, RSS per viewer ((during - idle) / N), the tool's received Mbit/s and worst gap. Stops after the first N where a player did not
# keep up, unless --all. Each run lasts at most its ramp + S + 15 s.
set -euo pipefail
cd "$(dirname "$0")/.."
pid= url= secs=10 label=server all=0 counts=()
while [ $# -gt 0 ]; do
    case $1 in
        --pid) pid=$2; shift 2 ;;
        --url) url=$2; shift 2 ;;
        --seconds) secs=$2; shift 2 ;;
        --label) label=$2; shift 2 ;;
        --all) all=1; shift ;;
        -*) echo "load-rtmp.sh: unknown option $1" >&2; exit 2 ;;
        *) counts+=("$1"); shift ;;
    esac
done
[ -n "$pid" ] && [ -n "$url" ] && [ ${#counts[@]} -gt 0 ] || {
    sed -n '2,9p' "$0" >&2
    exit 2
}
[ -r "/proc/$pid/stat" ] || { echo "load-rtmp.sh: no process $pid" >&2; exit 1; }
tool=${RTMP_LOAD:-${CARGO_TARGET_DIR:-target}/release/rtmp-load}
[ -x "$tool" ] || { echo "load-rtmp.sh: build it first: cargo build --release --bin rtmp-load" >&2; exit 1; }
settle=${SETTLE:-3}
hz=$(getconf CLK_TCK)

# $1 and its children: "ticks rss_kB" summed.
usage_of() {
    local p t=0 r=0 a b
    for p in "$1" $(pgrep -P "$1" || true); do
        a=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null) || continue
        b=$(awk '/^VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null) || continue
        t=$((t + a)); r=$((r + ${b:-0}))
    done
    echo "$t $r"
}

dir=$(mktemp -d)
trap 'jobs -p | xargs -r kill 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT

# Memory per viewer is measured from the idle server's RSS before the first run: allocators
# keep memory that earlier (smaller) runs freed, so the RSS right before a run is no baseline.
read -r _ rss_idle < <(usage_of "$pid")
printf '%-14s %6s %8s %8s %8s %9s %9s %9s %9s %8s %8s\n' \
    "$label" players kept_up cpu% tool_cpu% idle_kB before_kB load_kB kB/viewer mbit_s gap_ms
for n in "${counts[@]}"; do
    ramp=${RAMP_MS:-$(( n * 10 > 4000 ? 4000 / n : 10 ))}
    [ "$ramp" -ge 1 ] || ramp=1
    read -r _ rss0 < <(usage_of "$pid")
    bound=$(( (n * ramp) / 1000 + secs + 15 ))
    t0=$(date +%s%N)
    timeout -k 2 "$bound" "$tool" "$url" --players "$n" --seconds "$secs" --ramp-ms "$ramp" \
        >"$dir/out" 2>"$dir/err" &
    tpid=$!
    : >"$dir/samples"
    while kill -0 "$tpid" 2>/dev/null; do
        now=$(( ($(date +%s%N) - t0) / 1000000 ))
        echo "$now $(usage_of "$pid") $(usage_of "$tpid")" >>"$dir/samples"
        sleep 0.5
    done
    wait "$tpid" || true
    line=$(grep '^rtmp-load ' "$dir/out" || true)
    if [ -z "$line" ]; then
        echo "load-rtmp.sh: rtmp-load gave no summary for N=$n:" >&2
        cat "$dir/err" >&2
        exit 1
    fi
    get() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }
    # The steady window: every player started (50 ms lead-in + the ramp) plus 1 s, until
    # 0.5 s before the end.
    from=$(( 50 + (n - 1) * ramp + 1000 ))
    to=$(( 50 + (n - 1) * ramp + secs * 1000 - 500 ))
    read -r cpu tcpu rss < <(awk -v f="$from" -v t="$to" -v hz="$hz" '
        $1 >= f && $1 <= t {
            if (!seen) { t0 = $1; s0 = $2; k0 = $4; seen = 1 }
            t1 = $1; s1 = $2; k1 = $4; if ($3 > rss) rss = $3
        }
        END {
            dt = (t1 - t0) / 1000
            if (dt <= 0) { print "nan nan " rss; exit }
            printf "%.1f %.1f %d\n", (s1 - s0) * 100 / hz / dt, (k1 - k0) * 100 / hz / dt, rss
        }' "$dir/samples")
    per=$(awk -v a="$rss_idle" -v b="$rss" -v n="$n" 'BEGIN { printf "%.1f", (b - a) / n }')
    kept=$(get kept_up)
    printf '%-14s %6s %8s %8s %8s %9s %9s %9s %9s %8s %8s\n' "$label" "$n" "$kept" "$cpu" \
        "$tcpu" "$rss_idle" "$rss0" "$rss" "$per" "$(get mbit_s)" "$(get worst_gap_ms)"
    echo "  $line" >&2
    if [ "$kept" != "$n" ] && [ "$all" = 0 ]; then
        echo "  not every player kept up at N=$n; stopping (--all runs every N)" >&2
        break
    fi
    sleep "$settle"
done
