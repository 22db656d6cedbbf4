#!/usr/bin/env bash
# Prints the module import table, layer by layer (`from→{to,...}`; `(tests)`: only test code
# imports it), and fails on an import cycle or an upward import not listed with its reason.
# The check is tests/layers.rs, which the test suite (tools/test.sh) runs as well.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo test --quiet --test layers -- --nocapture
