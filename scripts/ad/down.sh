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

STATE_DIR=${1:-${AD_STATE_DIR:-/tmp/push-connector-ad}}
STATE_DIR=${STATE_DIR%/}
if [[ ! -d $STATE_DIR ]]; then
    echo "down.sh: $STATE_DIR does not exist, nothing to stop" >&2
    exit 0
fi
STATE_DIR=$(cd "$STATE_DIR" && pwd -P)
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
descendants() {
    local pid=$1 child
    for child in $(ps -o pid= --ppid "$pid" 2>/dev/null || true); do
        echo "$child"
        descendants "$child"
    done
}
alive() {
    local pid left=()
    for pid in "${targets[@]}"; do
        if [[ -e /proc/$pid ]] && ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null; then
            left+=("$pid")
        fi
    done
    echo "${left[@]}"
}

if [[ ! -f $pidfile ]]; then
    echo "down.sh: nothing was running for $STATE_DIR" >&2
    exit 0
fi
pid=$(tr -dc '0-9' <"$pidfile")
if ! is_ours "$pid"; then
    echo "down.sh: samba pid '$pid' from $pidfile is not running (stale pid file)" >&2
    rm -f "$pidfile"
    echo "down.sh: nothing was running for $STATE_DIR" >&2
    exit 0
fi

mapfile -t kids < <(descendants "$pid")
targets=("$pid" "${kids[@]}")
kill -TERM "$pid" 2>/dev/null || true
for _ in $(seq 1 300); do            # up to 15 s
    [[ -z $(alive) ]] && break
    sleep 0.05
done
left=$(alive)
if [[ -n $left ]]; then
    echo "down.sh: still running after 15 s, sending SIGKILL to: $left" >&2
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
rm -f "$pidfile"
echo "down.sh: stopped samba($pid and ${#kids[@]} children)" >&2
