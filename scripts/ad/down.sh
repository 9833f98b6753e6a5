#!/usr/bin/env bash
# Stop the Samba AD DC started by up.sh from the same STATE_DIR.
#
#   scripts/ad/down.sh [STATE_DIR]        (default ${AD_STATE_DIR:-/tmp/push-connector-ad})
#
# Only the pid recorded in STATE_DIR/samba.pid and its children are
# signalled, and only after checking that it still is /usr/sbin/samba with
# this STATE_DIR's files open (Samba renames its processes, so the command line
# cannot tell): a stale pid file never leads to signalling a stranger.  Waits
# until all of them have exited.  Idempotent: nothing running -> exit 0.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/../lib/servers.sh"

srv_state_dir "${1:-${AD_STATE_DIR:-/tmp/push-connector-ad}}" || exit 0
pidfile=$STATE_DIR/samba.pid

is_ours() {
    local pid=$1 fd
    [[ $pid =~ ^[0-9]+$ && -e /proc/$pid ]] || return 1
    [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == /usr/sbin/samba ]] || return 1
    for fd in /proc/"$pid"/fd/*; do
        [[ $(readlink "$fd" 2>/dev/null) == "$STATE_DIR"/* ]] && return 0
    done
    return 1
}

srv_stop_pidfile samba TERM "$pidfile" is_ours
if [[ ${#srv_signalled[@]} -gt 0 ]]; then
    srv_signalled=("samba($srv_pid and $srv_nkids children)")
fi
srv_finish_stop 15 "$pidfile"
