#!/usr/bin/env bash
# Stop the test proxy started by up.sh from the same STATE_DIR.
#
#   scripts/proxy/down.sh [STATE_DIR]   (default ${PROXY_STATE_DIR:-/tmp/push-connector-proxy})
#
# Only the recorded pid is signalled, after checking it still is tinyproxy
# running this STATE_DIR's configuration. Idempotent.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/../lib/servers.sh"

srv_state_dir "${1:-${PROXY_STATE_DIR:-/tmp/push-connector-proxy}}" || exit 0
pidfile=$STATE_DIR/tinyproxy.pid

is_ours() {
    local pid=$1
    [[ $pid =~ ^[0-9]+$ && -e /proc/$pid ]] || return 1
    local args
    args=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ $args == *tinyproxy* && $args == *"$STATE_DIR/tinyproxy.conf"* ]]
}

srv_stop_pidfile tinyproxy TERM "$pidfile" is_ours
srv_finish_stop 10 "$pidfile"
