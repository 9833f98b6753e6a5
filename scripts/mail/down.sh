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

STATE_DIR=${1:-${MAIL_STATE_DIR:-/tmp/push-connector-mail}}
STATE_DIR=${STATE_DIR%/}

if [[ ! -d $STATE_DIR ]]; then
    echo "down.sh: $STATE_DIR does not exist, nothing to stop" >&2
    exit 0
fi
STATE_DIR=$(cd "$STATE_DIR" && pwd -P)

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

# All descendants of PID (children first found, recursively).
descendants() {
    local pid=$1 child
    for child in $(ps -o pid= --ppid "$pid" 2>/dev/null || true); do
        echo "$child"
        descendants "$child"
    done
}

targets=()
signalled=()

stop_one() {
    local name=$1 pidfile=$2 exe=$3 needle=$4 pid
    [[ -f $pidfile ]] || return 0
    pid=$(tr -dc '0-9' <"$pidfile")
    if is_ours "$pid" "$exe" "$needle"; then
        # Remember the children too, so we can wait for them to be gone.
        mapfile -t kids < <(descendants "$pid")
        targets+=("$pid" "${kids[@]}")
        kill -TERM "$pid" 2>/dev/null || true
        signalled+=("$name($pid)")
    else
        echo "down.sh: $name pid '$pid' from $pidfile is not running (stale pid file)" >&2
    fi
}

stop_one postfix "$STATE_DIR/postfix.pid" "$POSTFIX_MASTER" "$STATE_DIR/postfix/etc"
stop_one dovecot "$STATE_DIR/dovecot.pid" "$DOVECOT_MASTER" "$STATE_DIR/dovecot/dovecot.conf"

alive() {
    local pid left=()
    for pid in "${targets[@]}"; do
        # A zombie still has /proc/PID but is gone for our purpose.
        if [[ -e /proc/$pid ]] && ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null; then
            left+=("$pid")
        fi
    done
    echo "${left[@]}"
}

if [[ ${#targets[@]} -gt 0 ]]; then
    # Postfix's own "postfix stop" polls once a second; polling more often
    # makes a stop take ~0.1 s instead of ~2.5 s.
    for _ in $(seq 1 200); do            # up to 10 s
        [[ -z $(alive) ]] && break
        sleep 0.05
    done
    left=$(alive)
    if [[ -n $left ]]; then
        echo "down.sh: still running after 10 s, sending SIGKILL to: $left" >&2
        # shellcheck disable=SC2086  # word splitting of the pid list is intended
        kill -KILL $left 2>/dev/null || true
        for _ in $(seq 1 100); do
            [[ -z $(alive) ]] && break
            sleep 0.05
        done
    fi
    left=$(alive)
    if [[ -n $left ]]; then
        echo "down.sh: could not stop: $left" >&2
        exit 1
    fi
fi

rm -f "$STATE_DIR/postfix.pid" "$STATE_DIR/dovecot.pid"
if [[ ${#signalled[@]} -gt 0 ]]; then
    echo "down.sh: stopped ${signalled[*]}" >&2
else
    echo "down.sh: nothing was running for $STATE_DIR" >&2
fi
