#!/usr/bin/env bash
# Stop the test DNS server started by up.sh from the same STATE_DIR.
#
#   scripts/dns/down.sh [STATE_DIR]       (default ${DNS_STATE_DIR:-/tmp/push-connector-dns})
#
# Only the pid up.sh recorded (STATE_DIR/dnsmasq.pid) is signalled, and only after checking
# that it still is dnsmasq started with this STATE_DIR's pid file. Waits until it has
# exited. Idempotent: nothing running -> exit 0.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/../lib/servers.sh"

srv_state_dir "${1:-${DNS_STATE_DIR:-/tmp/push-connector-dns}}" || exit 0

# is_ours PID PIDFILE: the process is /usr/sbin/dnsmasq with --pid-file=PIDFILE.
is_ours() {
    local pid=$1 pidfile=$2
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ -e /proc/$pid ]] || return 1
    [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == /usr/sbin/dnsmasq ]] || return 1
    tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -xF -e "--pid-file=$pidfile" >/dev/null
}

srv_stop_pidfile dnsmasq TERM "$STATE_DIR/dnsmasq.pid" is_ours "$STATE_DIR/dnsmasq.pid"
srv_finish_stop 10 "$STATE_DIR/dnsmasq.pid"
