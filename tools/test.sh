#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine with only the Rust toolchain:
# installs what the tests drive (ffmpeg/ffprobe, srt-live-transmit, curl, openssl, Chromium,
# node/npm and the player's npm packages) when missing, then checks formatting, lints, builds
# every target (benches included) and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
command -v ffprobe >/dev/null 2>&1 || missing+=(ffmpeg)
command -v curl >/dev/null 2>&1 || missing+=(curl)
# The SRT tests receive with srt-live-transmit too (ffmpeg/ffprobe bring libsrt).
command -v srt-live-transmit >/dev/null 2>&1 || missing+=(srt-tools)
# The TLS tests make their certificates with openssl.
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
# The edge pull test takes an RTMP origin from nginx's RTMP module (tests/edge_pull.rs).
command -v nginx >/dev/null 2>&1 || missing+=(nginx)
[ -f /usr/lib/nginx/modules/ngx_rtmp_module.so ] || missing+=(libnginx-mod-rtmp)
# The fleet test (tests/fleet.rs) runs its own Redis.
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
# WebRTC's DTLS and SRTP (str0m's `openssl` backend) link the system's libssl.
[ -f /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)
# WebRTC audio's Opus encoder (the `opus` crate) links the system's libopus via pkg-config.
pkg-config --exists opus 2>/dev/null || missing+=(libopus-dev)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
# The RTSP pull's Digest test takes its origin from GStreamer's RTSP server with x264
# (tests/data/rtsp_digest_origin.py, run by Debian's python3 with its gi bindings).
/usr/bin/python3 -c 'import gi; gi.require_version("GstRtspServer", "1.0")' 2>/dev/null ||
    missing+=(python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good)
/usr/bin/python3 -c 'import gi; gi.require_version("Gst", "1.0"); from gi.repository import Gst
Gst.init(None); assert Gst.ElementFactory.find("x264enc")' 2>/dev/null || missing+=(gstreamer1.0-plugins-ugly)
# The browser test (tests/browser_playback.rs) drives Debian's Chromium.
[ -n "${TESSERA_CHROMIUM:-}" ] || [ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        echo "tools/test.sh: installing ${missing[*]}" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "tools/test.sh: please install ${missing[*]} (e.g. sudo apt-get install ${missing[*]})" >&2
        exit 1
    fi
fi

# tests/graceful_stop.rs swaps one server process for another on the same ports, as an
# operator's binary upgrade does; Linux then hands a closing listener's queued and
# half-open connections to the new process only with tcp_migrate_req (README, "Upgrading
# without dropping a connection"). It is per network namespace.
migrate=/proc/sys/net/ipv4/tcp_migrate_req
if [ -e "$migrate" ] && [ "$(cat "$migrate")" != 1 ]; then
    if [ "$(id -u)" = 0 ] && echo 1 >"$migrate" 2>/dev/null; then
        echo "tools/test.sh: set net.ipv4.tcp_migrate_req = 1" >&2
    else
        echo "tools/test.sh: please set net.ipv4.tcp_migrate_req = 1 (sudo sysctl -w net.ipv4.tcp_migrate_req=1)" >&2
        exit 1
    fi
fi

# The player's scripts and the browser test's driver, as package-lock.json pins them
# (again whenever the lock file is newer than the install).
if [ ! -f tools/player/node_modules/.package-lock.json ] ||
    [ tools/player/package-lock.json -nt tools/player/node_modules/.package-lock.json ]; then
    echo "tools/test.sh: installing the player's npm packages (tools/player/install.sh)" >&2
    tools/player/install.sh >/dev/null
fi

if cargo fmt --version >/dev/null 2>&1; then
    cargo fmt --all -- --check
fi
if cargo clippy --version >/dev/null 2>&1; then
    cargo clippy --all-targets -- -D warnings
fi
cargo build --all-targets
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --no-fail-fast
else
    cargo test --no-fail-fast
fi
