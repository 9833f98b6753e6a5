#!/usr/bin/env bash
# Runs the whole test suite from a fresh checkout: installs and starts what the tests need,
# runs them, and stops what it started, whatever the outcome.
set -euo pipefail
cd "$(dirname "$0")/.."

# Build artefacts outside the checkout, so a reused machine builds incrementally.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/push-connector/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

cargo test --all-targets --locked
