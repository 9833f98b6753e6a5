#!/usr/bin/env bash
# Start what the console's tests drive, on 127.0.0.1, each in its own session:
# chromedriver (WebDriver for Debian's chromium), a Prometheus server that scrapes the
# targets the tests write into STATE_DIR/targets/*.json every second, and an OpenID
# provider (oidc-provider) with one client whose callback is the console on
# 127.0.0.1:$CONSOLE_OIDC_CONSOLE_PORT.
#
#   scripts/console/up.sh [STATE_DIR]   (default ${CONSOLE_STATE_DIR:-/tmp/push-connector-console})
#
#   CONSOLE_WEBDRIVER_PORT=19515   chromedriver's port
#   CONSOLE_PROMETHEUS_PORT=19090  Prometheus's port
#   CONSOLE_OIDC_PORT=19300        the OpenID provider's port
#   CONSOLE_OIDC_CONSOLE_PORT=19443 the console port its client's callback names
# A previous instance from the same STATE_DIR is stopped first. Writes STATE_DIR/env.sh:
# CONSOLE_WEBDRIVER_URL, CONSOLE_CHROMIUM, CONSOLE_PROMETHEUS_URL, CONSOLE_TARGETS_DIR,
# CONSOLE_AXE_JS, CONSOLE_NHSUK_DIR, CONSOLE_OIDC_ISSUER, CONSOLE_OIDC_CLIENT_ID,
# CONSOLE_OIDC_CLIENT_SECRET, CONSOLE_OIDC_CONSOLE_PORT.
set -euo pipefail

die() { echo "up.sh: $*" >&2; exit 1; }

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/../lib/servers.sh"
npm_dir=${CONSOLE_NPM_DIR:-$HOME/.cache/push-connector/console-npm}
for f in /usr/bin/chromium /usr/bin/chromedriver /usr/bin/prometheus; do
    [[ -x $f ]] || die "$f not found; run scripts/console/install.sh first"
done
axe=$npm_dir/node_modules/axe-core/axe.min.js
nhsuk=$npm_dir/node_modules/nhsuk-frontend/dist/nhsuk
[[ -f $axe && -d $nhsuk && -d $npm_dir/node_modules/oidc-provider ]] || die "npm packages missing in $npm_dir; run scripts/console/install.sh first"

STATE_DIR=${1:-${CONSOLE_STATE_DIR:-/tmp/push-connector-console}}
[[ $STATE_DIR =~ ^[A-Za-z0-9._/+-]+$ ]] || die "STATE_DIR '$STATE_DIR' must be a path without spaces or special characters"
mkdir -p "$STATE_DIR/logs" "$STATE_DIR/targets" "$STATE_DIR/prometheus"
STATE_DIR=$(cd "$STATE_DIR" && pwd -P)
HOST=127.0.0.1
WD_PORT=${CONSOLE_WEBDRIVER_PORT:-19515}
PROM_PORT=${CONSOLE_PROMETHEUS_PORT:-19090}
OIDC_PORT=${CONSOLE_OIDC_PORT:-19300}
OIDC_CONSOLE_PORT=${CONSOLE_OIDC_CONSOLE_PORT:-19443}
OIDC_SECRET=$(head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')

srv_stop_previous "$HERE/down.sh" "$STATE_DIR"
rm -f "$STATE_DIR"/targets/*.json

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }
for p in "$WD_PORT" "$PROM_PORT" "$OIDC_PORT"; do
    port_open "$p" && die "port $HOST:$p is already in use (another instance? stop it with its down.sh)"
done

setsid /usr/bin/chromedriver --port="$WD_PORT" --allowed-ips=127.0.0.1 --log-path="$STATE_DIR/logs/chromedriver.log" \
    </dev/null >>"$STATE_DIR/logs/chromedriver.out" 2>&1 &
echo $! >"$STATE_DIR/chromedriver.pid"

cat >"$STATE_DIR/prometheus.yml" <<CONF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: push-connector
    file_sd_configs:
      - files: ["$STATE_DIR/targets/*.json"]
        refresh_interval: 1s
CONF
setsid /usr/bin/prometheus --config.file="$STATE_DIR/prometheus.yml" --storage.tsdb.path="$STATE_DIR/prometheus" \
    --web.listen-address="$HOST:$PROM_PORT" </dev/null >>"$STATE_DIR/logs/prometheus.log" 2>&1 &
echo $! >"$STATE_DIR/prometheus.pid"

# The provider runs from the npm folder (where its module is), as a copy named for STATE_DIR.
cp "$HERE/oidc-provider.mjs" "$npm_dir/oidc-provider-test.mjs"
setsid node "$npm_dir/oidc-provider-test.mjs" "$OIDC_PORT" "http://$HOST:$OIDC_CONSOLE_PORT/signin/oidc/callback" \
    push-connector-console "$OIDC_SECRET" "$STATE_DIR" </dev/null >>"$STATE_DIR/logs/oidc-provider.log" 2>&1 &
echo $! >"$STATE_DIR/oidc-provider.pid"

for name in chromedriver prometheus oidc-provider; do
    case $name in
        chromedriver) port=$WD_PORT ;;
        prometheus) port=$PROM_PORT ;;
        *) port=$OIDC_PORT ;;
    esac
    pid=$(cat "$STATE_DIR/$name.pid")
    ok=0
    for _ in $(seq 1 200); do
        [[ -e /proc/$pid ]] || { tail -n 20 "$STATE_DIR"/logs/* >&2 || true; die "$name exited"; }
        if port_open "$port"; then ok=1; break; fi
        sleep 0.05
    done
    [[ $ok -eq 1 ]] || { "$HERE/down.sh" "$STATE_DIR" >/dev/null 2>&1 || true; die "$name does not listen on $HOST:$port"; }
done

{
    printf 'export CONSOLE_WEBDRIVER_URL=%q\n' "http://$HOST:$WD_PORT"
    printf 'export CONSOLE_CHROMIUM=%q\n' /usr/bin/chromium
    printf 'export CONSOLE_PROMETHEUS_URL=%q\n' "http://$HOST:$PROM_PORT"
    printf 'export CONSOLE_TARGETS_DIR=%q\n' "$STATE_DIR/targets"
    printf 'export CONSOLE_AXE_JS=%q\n' "$axe"
    printf 'export CONSOLE_NHSUK_DIR=%q\n' "$nhsuk"
    printf 'export CONSOLE_OIDC_ISSUER=%q\n' "http://$HOST:$OIDC_PORT"
    printf 'export CONSOLE_OIDC_CLIENT_ID=%q\n' push-connector-console
    printf 'export CONSOLE_OIDC_CLIENT_SECRET=%q\n' "$OIDC_SECRET"
    printf 'export CONSOLE_OIDC_CONSOLE_PORT=%q\n' "$OIDC_CONSOLE_PORT"
    printf 'export CONSOLE_STATE_DIR=%q\n' "$STATE_DIR"
} >"$STATE_DIR/env.sh"
cat "$STATE_DIR/env.sh"
echo "up.sh: chromedriver, prometheus and oidc-provider running from $STATE_DIR" >&2
