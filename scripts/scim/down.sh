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

STATE_DIR=${1:-${SCIM_STATE_DIR:-/tmp/push-connector-scim}}
STATE_DIR=${STATE_DIR%/}
if [[ ! -d $STATE_DIR ]]; then
    echo "down.sh: $STATE_DIR does not exist, nothing to stop" >&2
    exit 0
fi
STATE_DIR=$(cd "$STATE_DIR" && pwd -P)
pidfile=$STATE_DIR/scim2-server.pid

is_ours() {
    local pid=$1
    [[ $pid =~ ^[0-9]+$ && -e /proc/$pid ]] || return 1
    local args
    args=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ $args == *scim2-server* && $args == *"$STATE_DIR/schemas.json"* ]]
}
alive() {
    [[ -e /proc/$1 ]] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

if [[ ! -f $pidfile ]]; then
    echo "down.sh: nothing was running for $STATE_DIR" >&2
    exit 0
fi
pid=$(tr -dc '0-9' <"$pidfile")
if ! is_ours "$pid"; then
    echo "down.sh: scim2-server pid '$pid' from $pidfile is not running (stale pid file)" >&2
    rm -f "$pidfile"
    echo "down.sh: nothing was running for $STATE_DIR" >&2
    exit 0
fi

kill -TERM "$pid" 2>/dev/null || true
for _ in $(seq 1 200); do          # up to 10 s
    alive "$pid" || break
    sleep 0.05
done
if alive "$pid"; then
    echo "down.sh: still running after 10 s, sending SIGKILL to $pid" >&2
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        alive "$pid" || break
        sleep 0.05
    done
fi
if alive "$pid"; then
    echo "down.sh: could not stop $pid" >&2
    exit 1
fi
rm -f "$pidfile"
echo "down.sh: stopped scim2-server($pid)" >&2
