#!/usr/bin/env bash
# Install what the console's tests need: Debian's chromium, chromium-driver and prometheus,
# and from npm the NHS.UK frontend (the copy the binary ships is compared with it), axe-core
# (run in each page) and oidc-provider (an OpenID provider to sign in with).
#
#   scripts/console/install.sh
#
# Idempotent. The npm packages go to ${CONSOLE_NPM_DIR:-$HOME/.cache/push-connector/console-npm}
# at the versions pinned here. Needs root for apt (no package's service is started).
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/../lib/servers.sh"

NHSUK_FRONTEND=10.6.1
AXE_CORE=4.14.1
OIDC_PROVIDER=9.13.3
npm_dir=${CONSOLE_NPM_DIR:-$HOME/.cache/push-connector/console-npm}

missing=()
[[ -x /usr/bin/chromium ]] || missing+=(chromium)
[[ -x /usr/bin/chromedriver ]] || missing+=(chromium-driver)
[[ -x /usr/bin/prometheus ]] || missing+=(prometheus)
have npm || missing+=(npm)

want() { [[ -f $npm_dir/node_modules/$1/package.json ]] && grep -q "\"version\": \"$2\"" "$npm_dir/node_modules/$1/package.json"; }
if ! want nhsuk-frontend "$NHSUK_FRONTEND" || ! want axe-core "$AXE_CORE" || ! want oidc-provider "$OIDC_PROVIDER"; then
    if [[ ${#missing[@]} -gt 0 ]]; then
        need_root "apt-get install ${missing[*]}"
        apt_install "${missing[@]}"
        missing=()
    fi
    mkdir -p "$npm_dir"
    echo "install.sh: npm install nhsuk-frontend@$NHSUK_FRONTEND axe-core@$AXE_CORE oidc-provider@$OIDC_PROVIDER into $npm_dir"
    (cd "$npm_dir" && npm install --no-audit --no-fund --no-save --silent \
        "nhsuk-frontend@$NHSUK_FRONTEND" "axe-core@$AXE_CORE" "oidc-provider@$OIDC_PROVIDER")
fi
[[ ${#missing[@]} -eq 0 ]] || need_root "apt-get install ${missing[*]}"
install_missing "chromium, chromium-driver, prometheus" "${missing[@]}"
