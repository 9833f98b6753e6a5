#!/usr/bin/env bash
# Runs the whole test suite from a fresh checkout: installs and starts what the tests need,
# runs them, and stops what it started, whatever the outcome.
set -euo pipefail
cd "$(dirname "$0")/.."

# Build artefacts outside the checkout, so a reused machine builds incrementally.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/push-connector/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

log=$(mktemp)
trap 'rm -f "$log"' EXIT

status=0
cargo test --all-targets --locked 2>&1 | tee "$log" || status=$?

# One closing line for the whole suite.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1) } }
     END { printf "suite: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
