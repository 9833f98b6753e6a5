#!/usr/bin/env bash
# Stop the SCIM test server started by up.sh from the same STATE_DIR.
#
#   scripts/scim/down.sh [STATE_DIR]      (default ${SCIM_STATE_DIR:-/tmp/push-connector-scim})
#
# Only the pid recorded in STATE_DIR/scim2-server.pid is signalled, and only
# after checking that it still is scim2-server serving this STATE_DIR's schema
# file (a stale pid file never leads to signalling a stranger).  Waits until it
# has exited.  Idempotent: nothing running -> exit 0.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/../lib/servers.sh"

srv_state_dir "${1:-${SCIM_STATE_DIR:-/tmp/push-connector-scim}}" || exit 0
pidfile=$STATE_DIR/scim2-server.pid

is_ours() {
    local pid=$1
    [[ $pid =~ ^[0-9]+$ && -e /proc/$pid ]] || return 1
    local args
    args=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ $args == *scim2-server* && $args == *"$STATE_DIR/schemas.json"* ]]
}

srv_stop_pidfile scim2-server TERM "$pidfile" is_ours
srv_finish_stop 10 "$pidfile"
