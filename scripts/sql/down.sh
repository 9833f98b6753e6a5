#!/usr/bin/env bash
# Stop the SQL test servers started by up.sh from the same STATE_DIR.
#
#   scripts/sql/down.sh [STATE_DIR]       (default ${SQL_STATE_DIR:-/tmp/push-connector-sql})
#
# Only the pids recorded by up.sh (STATE_DIR/postgres.pid, STATE_DIR/mariadb.pid)
# and their children are signalled, and only after checking that each still
# is this instance's postgres (-D STATE_DIR/pg/data) or mariadbd
# (--datadir=STATE_DIR/mariadb/data): a stale pid file never leads to
# signalling a stranger.  PostgreSQL gets SIGINT (fast shutdown: clients are
# disconnected), MariaDB SIGTERM.  Waits until all of them have exited.
# The data directories are left in place (up.sh recreates them unless
# SQL_KEEP_DATA=1).  Idempotent: nothing running -> exit 0.
set -euo pipefail

STATE_DIR=${1:-${SQL_STATE_DIR:-/tmp/push-connector-sql}}
STATE_DIR=${STATE_DIR%/}
if [[ ! -d $STATE_DIR ]]; then
    echo "down.sh: $STATE_DIR does not exist, nothing to stop" >&2
    exit 0
fi
STATE_DIR=$(cd "$STATE_DIR" && pwd -P)

# is_ours PID EXE_GLOB NEEDLE: the process runs an executable matching
# EXE_GLOB and one of its arguments is NEEDLE.
is_ours() {
    local pid=$1 exe_glob=$2 needle=$3 exe
    [[ $pid =~ ^[0-9]+$ && -e /proc/$pid ]] || return 1
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
    # shellcheck disable=SC2053  # glob match intended
    [[ $exe == $exe_glob ]] || return 1
    tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -xF -e "$needle" >/dev/null
}

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
    local name=$1 sig=$2 exe_glob=$3 needle=$4 pidfile=$STATE_DIR/$1.pid pid
    [[ -f $pidfile ]] || return 0
    pid=$(tr -dc '0-9' <"$pidfile")
    if is_ours "$pid" "$exe_glob" "$needle"; then
        mapfile -t kids < <(descendants "$pid")
        targets+=("$pid" "${kids[@]}")
        kill "-$sig" "$pid" 2>/dev/null || true
        signalled+=("$name($pid)")
    else
        echo "down.sh: $name pid '$pid' from $pidfile is not running (stale pid file)" >&2
    fi
}

# pg_ctl starts "postgres -D DATADIR"; mariadbd gets --datadir=DATADIR.
stop_one postgres INT '/usr/lib/postgresql/*/bin/postgres' "$STATE_DIR/pg/data"
stop_one mariadb TERM '/usr/sbin/mariadbd' "--datadir=$STATE_DIR/mariadb/data"

alive() {
    local pid left=()
    for pid in "${targets[@]}"; do
        if [[ -e /proc/$pid ]] && ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null; then
            left+=("$pid")
        fi
    done
    echo "${left[@]}"
}

if [[ ${#targets[@]} -gt 0 ]]; then
    for _ in $(seq 1 600); do            # up to 30 s
        [[ -z $(alive) ]] && break
        sleep 0.05
    done
    left=$(alive)
    if [[ -n $left ]]; then
        echo "down.sh: still running after 30 s, sending SIGKILL to: $left" >&2
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

rm -f "$STATE_DIR/postgres.pid" "$STATE_DIR/mariadb.pid"
if [[ ${#signalled[@]} -gt 0 ]]; then
    echo "down.sh: stopped ${signalled[*]}" >&2
else
    echo "down.sh: nothing was running for $STATE_DIR" >&2
fi
