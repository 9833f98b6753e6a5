#!/usr/bin/env bash
# Start a throw-away HTTP proxy (tinyproxy) on 127.0.0.1, in the foreground of
# its own session, logging every request to STATE_DIR/logs/tinyproxy.log.
#
#   scripts/proxy/up.sh [STATE_DIR]     (default ${PROXY_STATE_DIR:-/tmp/push-connector-proxy})
#   eval "$(scripts/proxy/up.sh)"       # or: source STATE_DIR/env.sh
#
#   PROXY_PORT=18888   listen port
# A previous instance from the same STATE_DIR is stopped first. Prints the
# `export PROXY_URL=… PROXY_LOG=… PROXY_STATE_DIR=…` lines (also in STATE_DIR/env.sh).
set -euo pipefail

die() { echo "up.sh: $*" >&2; exit 1; }

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/../lib/servers.sh"
TINYPROXY=$(command -v tinyproxy || echo /usr/bin/tinyproxy)
[[ -x $TINYPROXY ]] || die "tinyproxy not found; run scripts/proxy/install.sh first"

STATE_DIR=${1:-${PROXY_STATE_DIR:-/tmp/push-connector-proxy}}
[[ $STATE_DIR =~ ^[A-Za-z0-9._/+-]+$ ]] || die "STATE_DIR '$STATE_DIR' must be a path without spaces or special characters"
mkdir -p "$STATE_DIR/logs"
STATE_DIR=$(cd "$STATE_DIR" && pwd -P)
PROXY_HOST=127.0.0.1
PROXY_PORT=${PROXY_PORT:-18888}
[[ $PROXY_PORT =~ ^[0-9]+$ ]] && (( PROXY_PORT > 0 && PROXY_PORT < 65536 )) || die "bad port '$PROXY_PORT'"

srv_stop_previous "$HERE/down.sh" "$STATE_DIR"

port_open() { (exec 3<>"/dev/tcp/$PROXY_HOST/$1") 2>/dev/null; }
port_open "$PROXY_PORT" &&
    die "port $PROXY_HOST:$PROXY_PORT is already in use (another instance? stop it with its down.sh or set PROXY_PORT)"

log=$STATE_DIR/logs/tinyproxy.log
: >"$log"
# Loopback only; every request logged (Info level logs each CONNECT/GET line).
cat >"$STATE_DIR/tinyproxy.conf" <<CONF
Port $PROXY_PORT
Listen $PROXY_HOST
Timeout 60
LogFile "$log"
LogLevel Info
MaxClients 50
Allow 127.0.0.1
ConnectPort 443
ConnectPort 0
DisableViaHeader Yes
CONF
[[ $(id -u) -eq 0 ]] && printf 'User nobody\nGroup nogroup\n' >>"$STATE_DIR/tinyproxy.conf" && chmod 777 "$STATE_DIR/logs" && chmod 666 "$log"

# -d: stay in the foreground, so the recorded pid is the proxy's own.
setsid "$TINYPROXY" -d -c "$STATE_DIR/tinyproxy.conf" </dev/null >>"$STATE_DIR/logs/stdout.log" 2>&1 &
pid=$!
echo "$pid" >"$STATE_DIR/tinyproxy.pid"

ok=0
for _ in $(seq 1 200); do
    [[ -e /proc/$pid ]] || { tail -n 20 "$log" "$STATE_DIR/logs/stdout.log" >&2 || true; die "tinyproxy exited"; }
    if port_open "$PROXY_PORT"; then ok=1; break; fi
    sleep 0.05
done
[[ $ok -eq 1 ]] || { "$HERE/down.sh" "$STATE_DIR" >/dev/null 2>&1 || true; die "tinyproxy does not listen on $PROXY_HOST:$PROXY_PORT"; }

{
    printf 'export PROXY_URL=%q\n' "http://$PROXY_HOST:$PROXY_PORT"
    printf 'export PROXY_LOG=%q\n' "$log"
    printf 'export PROXY_STATE_DIR=%q\n' "$STATE_DIR"
} >"$STATE_DIR/env.sh"
cat "$STATE_DIR/env.sh"
echo "up.sh: tinyproxy running from $STATE_DIR (pid $pid)" >&2
