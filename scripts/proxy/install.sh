#!/usr/bin/env bash
# Install the test HTTP proxy (Debian's tinyproxy) for the SCIM backend's `proxy` tests.
#
#   scripts/proxy/install.sh
#
# Idempotent: nothing is installed when tinyproxy is already there. Needs root
# for apt (the package's own service is never started: see apt_install).
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/../lib/servers.sh"

missing=()
have tinyproxy || [[ -x /usr/bin/tinyproxy ]] || missing+=(tinyproxy)
[[ ${#missing[@]} -eq 0 ]] || need_root "apt-get install ${missing[*]}"
install_missing tinyproxy "${missing[@]}"
