#!/usr/bin/env bash
# SCIM backend throughput (`push-connector bench scim`) against two servers on loopback:
#   - our own `push-connector serve` (release build) over an empty embedded directory in a
#     temporary folder, on a free port;
#   - the third-party scim2-server (scripts/scim/up.sh), with a state directory and port of
#     its own, one tenant per case.
# Both are stopped on exit, by their recorded pids, whatever the outcome.
#
# Usage: scripts/bench-scim.sh [SERVE_ROWS] [SCIM2_ROWS] [CONCURRENCIES]
#   SERVE_ROWS     sizes against serve, comma-separated        (default 1000,10000)
#   SCIM2_ROWS     sizes against scim2-server (slow Python)    (default 1000)
#   CONCURRENCIES  concurrencies of the SCIM backend           (default 1,8,32)
# Environment: BENCH_SCIM_PORT (scim2-server port, default 18190), BENCH_SCIM_STATE_DIR.
set -euo pipefail
unset PUSH_CONNECTOR_CONFIG
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/push-connector/target}"
serve_rows=${1:-1000,10000}
scim2_rows=${2:-1000}
concurrency=${3:-1,8,32}

cargo build --release --quiet
bin="$CARGO_TARGET_DIR/release/push-connector"
bash scripts/scim/install.sh >/dev/null

work=$(mktemp -d /tmp/push-connector-bench-scim.XXXXXX)
scim_state=${BENCH_SCIM_STATE_DIR:-$work/scim2}
serve_pid=
cleanup() {
    if [[ -n $serve_pid ]] && kill -0 "$serve_pid" 2>/dev/null; then
        kill "$serve_pid" 2>/dev/null || true
        wait "$serve_pid" 2>/dev/null || true
    fi
    bash scripts/scim/down.sh "$scim_state" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

# Our serve: port 0, the URL read from its first line.
token=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
mkdir -p "$work/serve"
(cd "$work/serve" && PUSH_CONNECTOR__SERVE__TOKEN=$token PUSH_CONNECTOR__SERVE__TOKEN_ORGANISATIONS='["*"]' \
    exec "$bin" serve --listen 127.0.0.1:0 >"$work/serve.out" 2>"$work/serve.err") &
serve_pid=$!
for _ in $(seq 1 200); do
    grep -q 'listening on' "$work/serve.out" 2>/dev/null && break
    kill -0 "$serve_pid" 2>/dev/null || { cat "$work/serve.err" >&2; exit 1; }
    sleep 0.05
done
serve_url=$(sed -n 's/^serve: listening on //p' "$work/serve.out")
[[ -n $serve_url ]] || { echo "bench-scim.sh: serve did not start" >&2; exit 1; }

# scim2-server: a state directory and port of its own.
SCIM_PORT=${BENCH_SCIM_PORT:-18190} SCIM_TOKEN=$token \
    bash scripts/scim/up.sh "$scim_state" >/dev/null
scim_pid=$(cat "$scim_state/scim2-server.pid")
scim_url=$(. "$scim_state/env.sh" && echo "$SCIM_URL")

echo "bench-scim.sh: serve at $serve_url (pid $serve_pid), scim2-server at $scim_url (pid $scim_pid); $(nproc) cores"
PUSH_CONNECTOR__DIRECTORY__TOKEN=$token \
    "$bin" bench scim --name serve --url "$serve_url" --rows "$serve_rows" \
    --concurrency "$concurrency" --server-pid "$serve_pid"
PUSH_CONNECTOR__DIRECTORY__TOKEN=$token \
    "$bin" bench scim --name scim2 --url "$scim_url/{case}/v2" --rows "$scim2_rows" \
    --concurrency "$concurrency" --server-pid "$scim_pid" | tail -n +2
