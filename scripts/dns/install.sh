#!/usr/bin/env bash
# Install what the sender-verification tests need: dnsmasq (a real DNS server, run on a
# loopback high port by up.sh) and a Python venv with dkimpy (a real DKIM signer).
#
#   scripts/dns/install.sh                 venv in ${DNS_VENV:-$HOME/.cache/push-connector/dkim-venv}
#
# Idempotent: dnsmasq-base (the binary, without Debian's system-wide service) is installed
# only when dnsmasq is missing, and the venv is made only when it cannot import dkim yet.
# Never starts a system-wide service.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/../lib/servers.sh"

need_root apt-get

VENV=${DNS_VENV:-$HOME/.cache/push-connector/dkim-venv}
DKIMPY_VERSION=1.1.8

if [[ ! -x $VENV/bin/python ]] || ! "$VENV/bin/python" -c 'import dkim' 2>/dev/null; then
    py=$(command -v /usr/bin/python3 || command -v python3 || true)
    [[ -n $py ]] || { echo "install.sh: python3 not found" >&2; exit 1; }
    if ! "$py" -c 'import venv, ensurepip' 2>/dev/null; then
        apt_install python3-venv
    fi
    echo "install.sh: making $VENV with dkimpy $DKIMPY_VERSION"
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    "$py" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "dkimpy==$DKIMPY_VERSION"
    "$VENV/bin/python" -c 'import dkim' || { echo "install.sh: dkimpy does not import" >&2; exit 1; }
fi

pkgs=()
have dnsmasq || [[ -x /usr/sbin/dnsmasq ]] || pkgs+=(dnsmasq-base)

install_missing "dnsmasq (and dkimpy in $VENV)" "${pkgs[@]}"
