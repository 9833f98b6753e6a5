#!/usr/bin/env bash
# Start throw-away PostgreSQL and MariaDB servers for the tests, on 127.0.0.1.
#
#   scripts/sql/up.sh [STATE_DIR]         (default ${SQL_STATE_DIR:-/tmp/push-connector-sql})
#   eval "$(scripts/sql/up.sh)"           # or: source STATE_DIR/env.sh
#
# Both servers get a fresh data directory in STATE_DIR on every start (unless
# SQL_KEEP_DATA=1 and one is already there), with a database "staff" and a
# user connector/secret that owns it / has all privileges on it.  PostgreSQL
# runs as the "postgres" system user (it refuses root), MariaDB's mariadbd
# drops to the "mysql" user.  Neither reads the system configs in /etc.
# A previous instance from the same STATE_DIR is stopped first.
#
#   PG_PORT=15432  MARIADB_PORT=13306       listen ports (127.0.0.1 only)
#   SQL_USER=connector  SQL_PASSWORD=secret  SQL_DATABASE=staff
#   SQL_SERVERS="postgres mariadb"          start only some of them
#   SQL_KEEP_DATA=1                         reuse existing data directories
#
# Superuser access for tests that need it (no password, unix sockets only):
#   runuser -u postgres -- psql -h STATE_DIR/pg/run -p $PG_PORT -d staff
#   mariadb --socket=STATE_DIR/mariadb/run/mariadb.sock -u root staff   (as root)
set -euo pipefail

die() { echo "up.sh: $*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "must run as root (switches to the postgres and mysql users)"

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/../lib/servers.sh"
STATE_DIR=${1:-${SQL_STATE_DIR:-/tmp/push-connector-sql}}
[[ $STATE_DIR =~ ^[A-Za-z0-9._/+-]+$ ]] || die "STATE_DIR '$STATE_DIR' must be a path without spaces or special characters"
mkdir -p "$STATE_DIR"
STATE_DIR=$(cd "$STATE_DIR" && pwd -P)
# Unix socket paths are limited to 107 bytes.
(( ${#STATE_DIR} <= 70 )) || die "STATE_DIR path too long for unix sockets (max 70 characters): $STATE_DIR"

PG_PORT=${PG_PORT:-15432}
MARIADB_PORT=${MARIADB_PORT:-13306}
SQL_USER=${SQL_USER:-connector}
SQL_PASSWORD=${SQL_PASSWORD:-secret}
SQL_DATABASE=${SQL_DATABASE:-staff}
SQL_SERVERS=${SQL_SERVERS:-postgres mariadb}
HOST=127.0.0.1
for p in "$PG_PORT" "$MARIADB_PORT"; do
    [[ $p =~ ^[0-9]+$ ]] && (( p > 0 && p < 65536 )) || die "bad port '$p'"
done
# Kept simple so they can go into URLs and SQL literals unquoted.
[[ $SQL_USER =~ ^[a-z_][a-z0-9_]*$ ]] || die "SQL_USER must match [a-z_][a-z0-9_]*"
[[ $SQL_DATABASE =~ ^[a-z_][a-z0-9_]*$ ]] || die "SQL_DATABASE must match [a-z_][a-z0-9_]*"
[[ $SQL_PASSWORD =~ ^[A-Za-z0-9._~-]+$ ]] || die "SQL_PASSWORD must match [A-Za-z0-9._~-]+"
want() { [[ " $SQL_SERVERS " == *" $1 "* ]]; }
want postgres || want mariadb || die "SQL_SERVERS must name postgres and/or mariadb"

PG_BIN=
if want postgres; then
    PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [[ -x $PG_BIN/initdb && -x $PG_BIN/pg_ctl ]] || die "PostgreSQL not found; run scripts/sql/install.sh first"
fi
if want mariadb; then
    for bin in mariadb-install-db mariadb; do
        command -v "$bin" >/dev/null 2>&1 || die "$bin not found; run scripts/sql/install.sh first"
    done
    [[ -x /usr/sbin/mariadbd ]] || die "mariadbd not found; run scripts/sql/install.sh first"
fi

# The server users must be able to reach STATE_DIR.
d=$STATE_DIR
while [[ $d != / ]]; do
    [[ $(stat -c %A "$d") == ?????????[xt] ]] ||
        die "$d is not searchable by other users; postgres/mysql could not reach $STATE_DIR"
    d=$(dirname "$d")
done

# --- stop an earlier instance of this STATE_DIR -----------------------------
srv_stop_previous "$HERE/down.sh" "$STATE_DIR"

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }
want postgres && port_open "$PG_PORT" && die "port $HOST:$PG_PORT is already in use (set PG_PORT)"
want mariadb && port_open "$MARIADB_PORT" && die "port $HOST:$MARIADB_PORT is already in use (set MARIADB_PORT)"

umask 022
chmod 755 "$STATE_DIR"
LOGS=$STATE_DIR/logs
mkdir -p "$LOGS"

fail() {
    echo "up.sh: $*" >&2
    echo "up.sh: last log lines:" >&2
    tail -n 20 "$LOGS"/*.log >&2 || true
    "$HERE/down.sh" "$STATE_DIR" >/dev/null 2>&1 || true
    exit 1
}

# --- PostgreSQL ---------------------------------------------------------------
PG=$STATE_DIR/pg
if want postgres; then
    pg() { runuser -u postgres -- "$@"; }
    if [[ ${SQL_KEEP_DATA:-0} != 1 || ! -s $PG/data/PG_VERSION ]]; then
        rm -rf "$PG"
        mkdir -p "$PG/data" "$PG/run"
        chown -R postgres:postgres "$PG"
        chmod 700 "$PG/data"
        printf '%s\n' "$SQL_PASSWORD" >"$PG/pwfile"   # initdb reads the superuser's password from here
        chown postgres "$PG/pwfile"; chmod 600 "$PG/pwfile"
        pg "$PG_BIN/initdb" -D "$PG/data" -U postgres --pwfile="$PG/pwfile" -E UTF8 --locale=C.UTF-8 \
            --auth-local=trust --auth-host=scram-sha-256 --no-sync >"$LOGS/pg-initdb.log" 2>&1 ||
            fail "initdb failed (see $LOGS/pg-initdb.log)"
        rm -f "$PG/pwfile"
        cat >>"$PG/data/postgresql.conf" <<CONF

# --- push-connector test server (scripts/sql/up.sh) ---
listen_addresses = '$HOST'
port = $PG_PORT
unix_socket_directories = '$PG/run'
max_connections = 100
shared_buffers = 32MB
fsync = off
synchronous_commit = off
full_page_writes = off
logging_collector = off
log_min_messages = warning
CONF
        cat >"$PG/data/pg_hba.conf" <<CONF
# TYPE  DATABASE  USER  ADDRESS       METHOD
local   all       all                 trust
host    all       all   127.0.0.1/32  scram-sha-256
CONF
        fresh_pg=1
    else
        fresh_pg=0
    fi
    : >"$LOGS/postgres.log"; chown postgres "$LOGS/postgres.log"
    pg "$PG_BIN/pg_ctl" -D "$PG/data" -l "$LOGS/postgres.log" -w -t 30 -s start ||
        fail "PostgreSQL did not start"
    head -n 1 "$PG/data/postmaster.pid" | tr -dc '0-9' >"$STATE_DIR/postgres.pid"
    if [[ $fresh_pg -eq 1 ]]; then
        pg "$PG_BIN/psql" -h "$PG/run" -p "$PG_PORT" -U postgres -d postgres -qX -v ON_ERROR_STOP=1 \
            >>"$LOGS/pg-initdb.log" 2>&1 <<SQL || fail "could not create the user/database in PostgreSQL"
CREATE ROLE $SQL_USER LOGIN PASSWORD '$SQL_PASSWORD';
CREATE DATABASE $SQL_DATABASE OWNER $SQL_USER;
GRANT ALL PRIVILEGES ON DATABASE $SQL_DATABASE TO $SQL_USER;
\c $SQL_DATABASE
ALTER SCHEMA public OWNER TO $SQL_USER;
SQL
    fi
fi

# --- MariaDB ------------------------------------------------------------------
MDB=$STATE_DIR/mariadb
MDB_SOCK=$MDB/run/mariadb.sock
if want mariadb; then
    if [[ ${SQL_KEEP_DATA:-0} != 1 || ! -d $MDB/data/mysql ]]; then
        rm -rf "$MDB"
        mkdir -p "$MDB/data" "$MDB/run" "$MDB/tmp"
        chown -R mysql:mysql "$MDB"
        mariadb-install-db --no-defaults --user=mysql --datadir="$MDB/data" \
            --auth-root-authentication-method=socket --skip-test-db \
            >"$LOGS/mariadb-install.log" 2>&1 || fail "mariadb-install-db failed (see $LOGS/mariadb-install.log)"
        fresh_mdb=1
    else
        fresh_mdb=0
    fi
    : >"$LOGS/mariadb.log"; chown mysql "$LOGS/mariadb.log"
    # setsid: its own session, so Ctrl-C in a test harness does not reach it.
    setsid /usr/sbin/mariadbd --no-defaults --user=mysql \
        --datadir="$MDB/data" --socket="$MDB_SOCK" --pid-file="$MDB/run/mariadbd.pid" \
        --tmpdir="$MDB/tmp" --log-error="$LOGS/mariadb.log" \
        --bind-address="$HOST" --port="$MARIADB_PORT" \
        --skip-name-resolve --skip-log-bin \
        --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci \
        --innodb-buffer-pool-size=64M --innodb-log-file-size=48M \
        --innodb-flush-log-at-trx-commit=0 --innodb-doublewrite=0 \
        </dev/null >/dev/null 2>>"$LOGS/mariadb.log" &
    echo "$!" >"$STATE_DIR/mariadb.pid"
    ok=0
    for _ in $(seq 1 600); do         # up to 30 s
        [[ -e /proc/$(cat "$STATE_DIR/mariadb.pid") ]] || fail "mariadbd exited"
        if [[ -S $MDB_SOCK ]] && mariadb --no-defaults --socket="$MDB_SOCK" -u root -e 'SELECT 1' >/dev/null 2>&1; then
            ok=1; break
        fi
        sleep 0.05
    done
    [[ $ok -eq 1 ]] || fail "MariaDB does not answer on $MDB_SOCK"
    if [[ $fresh_mdb -eq 1 ]]; then
        mariadb --no-defaults --socket="$MDB_SOCK" -u root >>"$LOGS/mariadb-install.log" 2>&1 <<SQL ||
CREATE DATABASE $SQL_DATABASE CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE USER '$SQL_USER'@'127.0.0.1' IDENTIFIED BY '$SQL_PASSWORD';
CREATE USER '$SQL_USER'@'localhost' IDENTIFIED BY '$SQL_PASSWORD';
GRANT ALL PRIVILEGES ON $SQL_DATABASE.* TO '$SQL_USER'@'127.0.0.1';
GRANT ALL PRIVILEGES ON $SQL_DATABASE.* TO '$SQL_USER'@'localhost';
SQL
            fail "could not create the user/database in MariaDB"
    fi
    port_open "$MARIADB_PORT" || fail "MariaDB does not listen on $HOST:$MARIADB_PORT"
fi

# --- endpoints ----------------------------------------------------------------
{
    if want postgres; then
        printf 'export PG_URL=%q\n' "postgres://$SQL_USER:$SQL_PASSWORD@$HOST:$PG_PORT/$SQL_DATABASE"
        printf 'export PG_PORT=%q\n' "$PG_PORT"
        printf 'export PG_SOCKET_DIR=%q\n' "$PG/run"
    fi
    if want mariadb; then
        printf 'export MARIADB_URL=%q\n' "mysql://$SQL_USER:$SQL_PASSWORD@$HOST:$MARIADB_PORT/$SQL_DATABASE"
        printf 'export MARIADB_PORT=%q\n' "$MARIADB_PORT"
        printf 'export MARIADB_SOCKET=%q\n' "$MDB_SOCK"
    fi
    printf 'export SQL_STATE_DIR=%q\n' "$STATE_DIR"
} >"$STATE_DIR/env.sh"
cat "$STATE_DIR/env.sh"
pids=()
for n in postgres mariadb; do [[ -f $STATE_DIR/$n.pid ]] && pids+=("$n $(cat "$STATE_DIR/$n.pid")"); done
echo "up.sh: running from $STATE_DIR (${pids[*]})" >&2
