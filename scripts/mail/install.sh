#!/usr/bin/env bash
# Install the mail servers used by the end-to-end tests (Postfix + Dovecot).
#
# Idempotent: when the binaries are already present nothing is installed.
# Never starts a system-wide service: policy-rc.d denies service starts while
# apt runs, and the tests start their own instances with scripts/mail/up.sh.
set -euo pipefail

if [[ $(id -u) -ne 0 ]]; then
    echo "install.sh: must run as root (apt-get)" >&2
    exit 1
fi

have() { command -v "$1" >/dev/null 2>&1; }

# Binaries we need -> package that provides them.  Only packages whose
# binary is missing are named, so apt never upgrades anything already there.
pkgs=()
have postfix || [[ -x /usr/sbin/postfix ]] || pkgs+=(postfix)
have dovecot || [[ -x /usr/sbin/dovecot ]] || pkgs+=(dovecot-core)
[[ -x /usr/lib/dovecot/imap ]] || pkgs+=(dovecot-imapd)
[[ -x /usr/lib/dovecot/lmtp ]] || pkgs+=(dovecot-lmtpd)
have openssl || pkgs+=(openssl)

if [[ ${#pkgs[@]} -eq 0 ]]; then
    echo "install.sh: postfix, dovecot (imap, lmtp) and openssl already installed"
    exit 0
fi

echo "install.sh: installing ${pkgs[*]}"

if [[ " ${pkgs[*]} " == *" postfix "* ]]; then
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
fi

# Keep maintainer scripts from starting daemons (no systemd here, but the
# sysvinit scripts would otherwise try to start postfix/dovecot system-wide).
policy=/usr/sbin/policy-rc.d
created_policy=0
if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    created_policy=1
fi
cleanup() { if [[ $created_policy -eq 1 ]]; then rm -f "$policy"; fi; }
trap cleanup EXIT

# Only refresh the package lists when they were never fetched.
if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
    apt-get update
fi

DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends --no-upgrade "${pkgs[@]}"

echo "install.sh: done"
