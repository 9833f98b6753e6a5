#!/usr/bin/env bash
# Install the mail servers used by the end-to-end tests (Postfix + Dovecot).
#
# Idempotent: when the binaries are already present nothing is installed.
# Never starts a system-wide service: policy-rc.d denies service starts while
# apt runs, and the tests start their own instances with scripts/mail/up.sh.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/../lib/servers.sh"

need_root apt-get

# Binaries we need -> package that provides them.  Only packages whose
# binary is missing are named, so apt never upgrades anything already there.
pkgs=()
have postfix || [[ -x /usr/sbin/postfix ]] || pkgs+=(postfix)
have dovecot || [[ -x /usr/sbin/dovecot ]] || pkgs+=(dovecot-core)
[[ -x /usr/lib/dovecot/imap ]] || pkgs+=(dovecot-imapd)
[[ -x /usr/lib/dovecot/lmtp ]] || pkgs+=(dovecot-lmtpd)
have openssl || pkgs+=(openssl)

if [[ " ${pkgs[*]} " == *" postfix "* ]]; then
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
fi

install_missing "postfix, dovecot (imap, lmtp) and openssl" "${pkgs[@]}"
