#!/usr/bin/env bash
# Start a throw-away third-party SCIM 2.0 server (scim2-server) on 127.0.0.1.
#
#   scripts/scim/up.sh [STATE_DIR]        (default ${SCIM_STATE_DIR:-/tmp/push-connector-scim})
#   eval "$(scripts/scim/up.sh)"          # or: source STATE_DIR/env.sh
#
# The server keeps everything in memory: every start is empty.  It runs with
# --dynamic-tenants, so each test can use its own empty store under
# $SCIM_URL/<tenant>/v2 (created on the first request).  The schemas served are
# RFC 7643's User, Group and EnterpriseUser plus the NHS extension
# (urn:ietf:params:scim:schemas:extension:nhs:2.0:User, declared on User);
# see nhs-extension-schema.json and make-schemas.py.
# A previous instance from the same STATE_DIR is stopped first.
#
#   SCIM_PORT=18080          listen port
#   SCIM_TOKEN=test-token    bearer token the server requires
#   SCIM_VENV=$HOME/.cache/push-connector/scim-venv   (scripts/scim/install.sh)
set -euo pipefail

die() { echo "up.sh: $*" >&2; exit 1; }

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/../lib/servers.sh"
SCIM_VENV=${SCIM_VENV:-$HOME/.cache/push-connector/scim-venv}
[[ -x $SCIM_VENV/bin/scim2-server ]] || die "scim2-server not found in $SCIM_VENV; run scripts/scim/install.sh first"
SCIM_VENV=$(cd "$SCIM_VENV" && pwd)

STATE_DIR=${1:-${SCIM_STATE_DIR:-/tmp/push-connector-scim}}
[[ $STATE_DIR =~ ^[A-Za-z0-9._/+-]+$ ]] || die "STATE_DIR '$STATE_DIR' must be a path without spaces or special characters"
mkdir -p "$STATE_DIR"
STATE_DIR=$(cd "$STATE_DIR" && pwd -P)

SCIM_HOST=127.0.0.1
SCIM_PORT=${SCIM_PORT:-18080}
SCIM_TOKEN=${SCIM_TOKEN:-test-token}
[[ $SCIM_PORT =~ ^[0-9]+$ ]] && (( SCIM_PORT > 0 && SCIM_PORT < 65536 )) || die "bad port '$SCIM_PORT'"
[[ -n $SCIM_TOKEN && $SCIM_TOKEN != *[[:space:]]* ]] || die "SCIM_TOKEN must be non-empty without whitespace"

# --- stop an earlier instance of this STATE_DIR -----------------------------
srv_stop_previous "$HERE/down.sh" "$STATE_DIR"

port_open() { (exec 3<>"/dev/tcp/$SCIM_HOST/$1") 2>/dev/null; }
port_open "$SCIM_PORT" &&
    die "port $SCIM_HOST:$SCIM_PORT is already in use (another instance? stop it with its down.sh or set SCIM_PORT)"

mkdir -p "$STATE_DIR/logs"
"$SCIM_VENV/bin/python" "$HERE/make-schemas.py" "$STATE_DIR" "$HERE/nhs-extension-schema.json" >/dev/null
: >"$STATE_DIR/logs/scim2-server.log"

# setsid: its own session, so a test harness's Ctrl-C or closing terminal
# does not reach it; stdin/stdout detached so `eval "$(up.sh)"` returns.
setsid "$SCIM_VENV/bin/scim2-server" \
    --hostname "$SCIM_HOST" --port "$SCIM_PORT" \
    --bearer-token "$SCIM_TOKEN" \
    --schema "$STATE_DIR/schemas.json" \
    --resource-type "$STATE_DIR/resource-types.json" \
    --dynamic-tenants \
    </dev/null >>"$STATE_DIR/logs/scim2-server.log" 2>&1 &
pid=$!
echo "$pid" >"$STATE_DIR/scim2-server.pid"

fail() {
    echo "up.sh: $*" >&2
    echo "up.sh: last log lines:" >&2
    tail -n 20 "$STATE_DIR/logs/scim2-server.log" >&2 || true
    "$HERE/down.sh" "$STATE_DIR" >/dev/null 2>&1 || true
    exit 1
}

# Wait until it answers an authenticated request (up to 20 s).
ok=0
for _ in $(seq 1 400); do
    [[ -e /proc/$pid ]] || fail "scim2-server exited"
    if port_open "$SCIM_PORT" &&
       code=$(curl -s -o /dev/null -w '%{http_code}' -m 2 \
                   -H "Authorization: Bearer $SCIM_TOKEN" \
                   "http://$SCIM_HOST:$SCIM_PORT/up-check/v2/ServiceProviderConfig") &&
       [[ $code == 200 ]]; then
        ok=1; break
    fi
    sleep 0.05
done
[[ $ok -eq 1 ]] || fail "scim2-server does not answer on $SCIM_HOST:$SCIM_PORT"

{
    printf 'export SCIM_URL=%q\n' "http://$SCIM_HOST:$SCIM_PORT"
    printf 'export SCIM_TOKEN=%q\n' "$SCIM_TOKEN"
    printf 'export SCIM_VENV=%q\n' "$SCIM_VENV"
    printf 'export SCIM_STATE_DIR=%q\n' "$STATE_DIR"
} >"$STATE_DIR/env.sh"
cat "$STATE_DIR/env.sh"
echo "up.sh: scim2-server running from $STATE_DIR (pid $pid)" >&2
