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

. "$(dirname "${BASH_SOURCE[0]}")/../lib/servers.sh"

srv_state_dir "${1:-${SQL_STATE_DIR:-/tmp/push-connector-sql}}" || exit 0

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

# pg_ctl starts "postgres -D DATADIR"; mariadbd gets --datadir=DATADIR.
srv_stop_pidfile postgres INT "$STATE_DIR/postgres.pid" \
    is_ours '/usr/lib/postgresql/*/bin/postgres' "$STATE_DIR/pg/data"
srv_stop_pidfile mariadb TERM "$STATE_DIR/mariadb.pid" \
    is_ours '/usr/sbin/mariadbd' "--datadir=$STATE_DIR/mariadb/data"

srv_finish_stop 30 "$STATE_DIR/postgres.pid" "$STATE_DIR/mariadb.pid"
