#!/usr/bin/env bash
# Runs the whole test suite from a fresh checkout: installs and starts what the tests need
# (Postfix + Dovecot on loopback for the e-mail tests), runs them, and stops what it
# started, whatever the outcome.
set -euo pipefail
cd "$(dirname "$0")/.."

# Build artefacts outside the checkout, so a reused machine builds incrementally.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/push-connector/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# Test mail servers: the real-server tests read their endpoints from MAIL_* (env.sh).
export MAIL_STATE_DIR="${MAIL_STATE_DIR:-/tmp/push-connector-mail}"
bash scripts/mail/install.sh
trap 'bash scripts/mail/down.sh "$MAIL_STATE_DIR" >/dev/null || true' EXIT
bash scripts/mail/up.sh "$MAIL_STATE_DIR" >/dev/null
# shellcheck disable=SC1091
source "$MAIL_STATE_DIR/env.sh"

cargo test --all-targets --locked
