#!/usr/bin/env bash
# Before/after of the RTMP fan-out: two tessera binaries side by side on 127.0.0.1, fed by
# ONE ffmpeg publisher (the stream compare.sh uses, tee'd into both), loaded in turn
# (A B A B ...) with VIEWERS rtmp-load players each (tools/load-rtmp.sh), so drift on a
# shared machine shows up as spread. Prints load-rtmp.sh's rows, then per binary the CPU
# per 1,000 viewers (% of a core) and resident kB per viewer (peak over the idle RSS before
# the binary's first run) of each run.
#
#   tools/ab-rtmp.sh BASE_BIN NEW_BIN [RUNS=3] [SECONDS=10] [VIEWERS=1000]
#   env: RTMP_LOAD (the rtmp-load binary; default: the release build)
# Every background process is under `timeout`.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { sed -n '2,9p' "$0" >&2; exit 2; }
bins=("$1" "$2")
RUNS=${3:-3}
SECS=${4:-10}
VIEWERS=${5:-1000}
bound=$(( 120 + RUNS * 2 * (SECS + 30) ))
work=$(mktemp -d /tmp/ab-rtmp.XXXXXX)
trap 'jobs -p | xargs -r kill 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

. tools/peer-lib.sh
ports=() pids=()
for i in 0 1; do
    ports[i]=$(free_port)
    cat >"$work/$i.conf" <<CONF
http 127.0.0.1:$(free_port);
rtmp 127.0.0.1:${ports[i]};
max_connections_per_ip 0;
auth_backend play-auth { allow token test1; }
stream live { input publish://; on_play auth://play-auth; }
CONF
    TESSERA_LOG=warn timeout "$bound" "${bins[i]}" "$work/$i.conf" 2>"$work/$i.log" &
    job=$!
    for _ in $(seq 100); do [ -n "$(ss -Hltn "sport = :${ports[i]}")" ] && break; sleep 0.1; done
    pids[i]=$(pgrep -P "$job")
done
publish_tee "$bound" "$work/ffmpeg.log" \
    "rtmp://127.0.0.1:${ports[0]}/static/live" "rtmp://127.0.0.1:${ports[1]}/static/live"
# The rings fill first: that growth is no viewer's.
sleep 30
for run in $(seq "$RUNS"); do
    for i in 0 1; do
        SETTLE=0 tools/load-rtmp.sh --pid "${pids[i]}" --seconds "$SECS" --label "bin$i" --all \
            --url "rtmp://127.0.0.1:${ports[i]}/static/live?token=test1" "$VIEWERS" 2>/dev/null \
            | tail -1 | tee -a "$work/rows"
        sleep 5
    done
done
# Resident kB per viewer: the run's peak over the binary's idle RSS before its first run
# (allocators keep what earlier runs freed, so the RSS right before a later run is no base).
for i in 0 1; do
    awk -v n="$VIEWERS" -v label="bin$i" -v bin="${bins[i]}" '$1 == label {
        if (idle == "") idle = $6
        cpu = cpu sprintf(" %.1f", $4 / n * 1000); kb = kb sprintf(" %.1f", ($8 - idle) / n)
        kept = kept " " $3
    } END { print bin ": CPU % per 1,000 viewers:" cpu "; kB per viewer:" kb "; kept up:" kept }' \
        "$work/rows"
done
