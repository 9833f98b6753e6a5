#!/usr/bin/env bash
# Runs the whole test suite from a fresh checkout: installs and starts what the tests need
# (Postfix + Dovecot on loopback for the e-mail tests, scim2-server for the SCIM tests,
# tinyproxy for the SCIM backend's proxy tests), runs
# them, and stops what it started, whatever the outcome.
set -euo pipefail
cd "$(dirname "$0")/.."

# Build artefacts outside the checkout, so a reused machine builds incrementally.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/push-connector/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

log=$(mktemp)
# Test mail servers: the real-server tests read their endpoints from MAIL_* (env.sh).
export MAIL_STATE_DIR="${MAIL_STATE_DIR:-/tmp/push-connector-mail}"
bash scripts/mail/install.sh
# Test SCIM server (scim2-server, and scim2-cli for the compliance suite): SCIM_* (env.sh).
export SCIM_STATE_DIR="${SCIM_STATE_DIR:-/tmp/push-connector-scim}"
bash scripts/scim/install.sh
# Test HTTP proxy (tinyproxy): PROXY_* (env.sh).
export PROXY_STATE_DIR="${PROXY_STATE_DIR:-/tmp/push-connector-proxy}"
bash scripts/proxy/install.sh
trap 'bash scripts/mail/down.sh "$MAIL_STATE_DIR" >/dev/null || true; bash scripts/scim/down.sh "$SCIM_STATE_DIR" >/dev/null || true; bash scripts/proxy/down.sh "$PROXY_STATE_DIR" >/dev/null || true; rm -f "$log"' EXIT
bash scripts/mail/up.sh "$MAIL_STATE_DIR" >/dev/null
# shellcheck disable=SC1091
source "$MAIL_STATE_DIR/env.sh"
bash scripts/scim/up.sh "$SCIM_STATE_DIR" >/dev/null
# shellcheck disable=SC1091
source "$SCIM_STATE_DIR/env.sh"
bash scripts/proxy/up.sh "$PROXY_STATE_DIR" >/dev/null
# shellcheck disable=SC1091
source "$PROXY_STATE_DIR/env.sh"

status=0
cargo test --all-targets --locked 2>&1 | tee "$log" || status=$?

# One closing line for the whole suite.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1) } }
     END { printf "suite: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
