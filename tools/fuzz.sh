#!/usr/bin/env bash
# Fuzzing campaign: runs each cargo-fuzz target for a bounded time, one after another, and
# prints a table of targets, minutes, runs, corpus size and crashes.
#
#   tools/fuzz.sh [MINUTES=30] [TARGET...]      (default: every target in fuzz/Cargo.toml)
#   env: NICE=19 (the campaign yields to everything else), MAX_LEN=8192, RSS_MB=2048,
#        TIMEOUT=10 (seconds per input: longer is reported as a crash, a hang)
#
# Corpora: each target starts from the small seeds kept in fuzz/seeds/TARGET (real client
# bytes: curl's and openssl's ClientHello, ffprobe's RTMP handshake and connect,
# srt-live-transmit's induction, a TS head...; tools/fuzz-seeds.sh regenerates them) and
# grows fuzz/corpus/TARGET (git-ignored) across runs. A crash leaves its input in
# fuzz/artifacts/TARGET; replay it with `cargo fuzz run TARGET fuzz/artifacts/TARGET/crash-...`.
# Logs go to fuzz/logs/TARGET.log. Exit status: 1 when any target crashed.
#
# Installs cargo-fuzz when missing. cargo-fuzz needs nightly features; on a stable toolchain
# RUSTC_BOOTSTRAP=1 enables them.
set -uo pipefail
cd "$(dirname "$0")/../fuzz"
minutes=${1:-30}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^tessera-fuzz$')
nice_level=${NICE:-19}
secs=$(awk -v m="$minutes" 'BEGIN { printf "%d", m * 60 }')
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
nice -n "$nice_level" cargo fuzz build || exit 2
mkdir -p logs

rows=()
crashed=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    before=$(find "artifacts/$t" -type f | wc -l)
    # Built before the clock starts, so the minutes are fuzzing, not compiling.
    nice -n "$nice_level" cargo fuzz build "$t" >/dev/null 2>&1
    echo "== fuzzing $t for ${minutes} min ($(date -u +%H:%M:%S) UTC)"
    start=$(date +%s)
    nice -n "$nice_level" cargo fuzz run "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$secs" -max_len="${MAX_LEN:-8192}" -rss_limit_mb="${RSS_MB:-2048}" \
        -timeout="${TIMEOUT:-10}" -print_final_stats=1 >"logs/$t.log" 2>&1
    status=$?
    took=$(( $(date +%s) - start ))
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "logs/$t.log" | tail -1)
    [ -n "$runs" ] || runs=$(grep -o '^#[0-9]*' "logs/$t.log" | tail -1 | tr -d '#')
    found=$(( $(find "artifacts/$t" -type f | wc -l) - before ))
    [ "$status" -eq 0 ] || [ "$found" -gt 0 ] || found="exit $status"
    [ "$found" = 0 ] || crashed=1
    rows+=("$(printf '%-16s %8.1f %12s %8s %8s' "$t" "$(awk -v s="$took" 'BEGIN { print s / 60 }')" \
        "${runs:-?}" "$(find "corpus/$t" -type f | wc -l)" "$found")")
    tail -n 3 "logs/$t.log"
done

printf '\n%-16s %8s %12s %8s %8s\n' target minutes runs corpus crashes
printf '%s\n' "${rows[@]}"
exit $crashed
