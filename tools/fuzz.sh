#!/usr/bin/env bash
# Runs a cargo-fuzz target for a bounded time (default 60 s each).
#   tools/fuzz.sh [SECONDS] [TARGET...]    targets: config_parser http_request rtsp_request
#                                          rtmp_chunk rtmp_amf0 portal_response ts_demux
#                                          srt_packet srt_handshake
#                                          (default: all)
# Installs cargo-fuzz when missing. cargo-fuzz needs nightly features; on a stable toolchain
# RUSTC_BOOTSTRAP=1 enables them.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(config_parser http_request rtsp_request rtmp_chunk rtmp_amf0 portal_response ts_demux srt_packet srt_handshake)
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
for t in "${targets[@]}"; do
    echo "== fuzzing $t for ${secs}s"
    RUSTC_BOOTSTRAP=1 cargo fuzz run "$t" -- -max_total_time="$secs" -max_len=8192
done
