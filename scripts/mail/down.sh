#!/usr/bin/env bash
# Stop the test mail servers started by up.sh from the same STATE_DIR.
#
#   scripts/mail/down.sh [STATE_DIR]      (default ${MAIL_STATE_DIR:-/tmp/push-connector-mail})
#
# Only the processes whose pids up.sh recorded (STATE_DIR/postfix.pid,
# STATE_DIR/dovecot.pid) and their children are signalled, and only after
# checking that each recorded pid still is that instance's Postfix master or
# Dovecot master (a stale pid file never leads to signalling a stranger).
# Waits until all of them have exited.  Idempotent: nothing running -> exit 0.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/../lib/servers.sh"

srv_state_dir "${1:-${MAIL_STATE_DIR:-/tmp/push-connector-mail}}" || exit 0

POSTFIX_MASTER=/usr/lib/postfix/sbin/master
DOVECOT_MASTER=/usr/sbin/dovecot

# is_ours PID EXE ENV_OR_ARG: the process runs EXE and its environment or
# command line mentions this instance's config.
is_ours() {
    local pid=$1 exe=$2 needle=$3
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ -e /proc/$pid ]] || return 1
    [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == "$exe" ]] || return 1
    { tr '\0' '\n' <"/proc/$pid/environ"; tr '\0' '\n' <"/proc/$pid/cmdline"; } 2>/dev/null |
        grep -xF -e "$needle" -e "MAIL_CONFIG=$needle" >/dev/null   # not -q: SIGPIPE + pipefail
}

srv_stop_pidfile postfix TERM "$STATE_DIR/postfix.pid" is_ours "$POSTFIX_MASTER" "$STATE_DIR/postfix/etc"
srv_stop_pidfile dovecot TERM "$STATE_DIR/dovecot.pid" is_ours "$DOVECOT_MASTER" "$STATE_DIR/dovecot/dovecot.conf"

# Postfix's own "postfix stop" polls once a second; srv_finish_stop polls
# every 50 ms, so a stop takes ~0.1 s instead of ~2.5 s.
srv_finish_stop 10 "$STATE_DIR/postfix.pid" "$STATE_DIR/dovecot.pid"
