#!/usr/bin/env bash
# Installs the browser player's scripts (hls.js, dash.js) and the browser test's driver
# (playwright-core) into tools/player/node_modules, exactly as package-lock.json pins them.
# tessera serves the scripts at /_player/ when `player_assets` (or TESSERA_PLAYER_ASSETS)
# names that node_modules directory; see README.md, "Player page".
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v npm >/dev/null 2>&1; then
    echo "tools/player/install.sh: npm is missing (e.g. apt-get install npm)" >&2
    exit 1
fi
npm ci --no-audit --no-fund
