#!/usr/bin/env bash
# Stop the chromedriver, Prometheus and OpenID provider that up.sh started from the same STATE_DIR (and the
# browsers chromedriver started).
#
#   scripts/console/down.sh [STATE_DIR]   (default ${CONSOLE_STATE_DIR:-/tmp/push-connector-console})
#
# Only the recorded pids are signalled, after checking each still is ours. Idempotent.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/../lib/servers.sh"

srv_state_dir "${1:-${CONSOLE_STATE_DIR:-/tmp/push-connector-console}}" || exit 0

is_ours() {
    local pid=$1 what=$2
    [[ $pid =~ ^[0-9]+$ && -e /proc/$pid ]] || return 1
    local args
    args=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ $args == *"$what"* && $args == *"$STATE_DIR"* ]]
}

srv_stop_pidfile chromedriver TERM "$STATE_DIR/chromedriver.pid" is_ours chromedriver
srv_stop_pidfile prometheus TERM "$STATE_DIR/prometheus.pid" is_ours prometheus
srv_stop_pidfile oidc-provider TERM "$STATE_DIR/oidc-provider.pid" is_ours oidc-provider
srv_finish_stop 10 "$STATE_DIR/chromedriver.pid" "$STATE_DIR/prometheus.pid" "$STATE_DIR/oidc-provider.pid"
