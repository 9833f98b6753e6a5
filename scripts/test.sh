#!/usr/bin/env bash
# Runs the whole test suite from a fresh checkout: installs and starts what the tests need
# (Postfix + Dovecot on loopback for the e-mail tests, dnsmasq and a DKIM signer for the
# sender-verification tests, scim2-server for the SCIM tests,
# tinyproxy for the SCIM backend's proxy tests, a Samba AD DC and PostgreSQL + MariaDB for
# the directory sync tests, chromium + chromedriver and Prometheus for the console tests),
# runs them, and stops what it started, whatever the outcome.
set -euo pipefail
cd "$(dirname "$0")/.."

# Build artefacts outside the checkout, so a reused machine builds incrementally.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/push-connector/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# Each test-server set lives in scripts/<set>/ (install.sh, up.sh, down.sh) and keeps its
# state in /tmp/push-connector-<set> unless <SET>_STATE_DIR says otherwise; up.sh writes
# the endpoints the tests read into env.sh there:
#   mail  MAIL_*   (Postfix + Dovecot)      scim  SCIM_*  (scim2-server, scim2-cli)
#   dns   DNS_*    (dnsmasq, dkimpy signer)
#   proxy PROXY_*  (tinyproxy)              ad    AD_*    (Samba AD DC, ports 389/636, root)
#   sql   PG_URL, MARIADB_URL (PostgreSQL + MariaDB)
#   console CONSOLE_* (chromedriver + chromium, Prometheus, axe-core, nhsuk-frontend)
sets=(mail dns scim proxy ad sql console)
log=$(mktemp)
state_dir() {
    local var="${1^^}_STATE_DIR"
    printf '%s' "${!var:-/tmp/push-connector-$1}"
}
for set in "${sets[@]}"; do
    export "${set^^}_STATE_DIR=$(state_dir "$set")"
    bash "scripts/$set/install.sh"
done
stop_all() {
    for set in "${sets[@]}"; do
        bash "scripts/$set/down.sh" "$(state_dir "$set")" >/dev/null || true
    done
    rm -f "$log"
}
trap stop_all EXIT
for set in "${sets[@]}"; do
    bash "scripts/$set/up.sh" "$(state_dir "$set")" >/dev/null
    # shellcheck disable=SC1090
    source "$(state_dir "$set")/env.sh"
done

status=0
cargo test --all-targets --locked 2>&1 | tee "$log" || status=$?

# One closing line for the whole suite.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1) } }
     END { printf "suite: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
