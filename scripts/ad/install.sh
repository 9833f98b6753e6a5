#!/usr/bin/env bash
# Install the Active Directory test server (Samba AD DC) and the LDAP tools
# used by check.py and seeding (ldapsearch/ldapmodify, ldbsearch/ldbadd).
#
# Idempotent: only packages whose binaries are missing are installed, so apt
# never upgrades anything already there.  Never starts a system-wide service:
# policy-rc.d denies service starts while apt runs, and the tests start their
# own instance with scripts/ad/up.sh.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/../lib/servers.sh"

need_root apt-get

pkgs=()
{ have samba || [[ -x /usr/sbin/samba ]]; } && have samba-tool || pkgs+=(samba)
# What Debian's samba-ad-dc metapackage would bring, named one by one (with
# --no-install-recommends, "samba" alone cannot provision a domain: the AD
# schema files are in samba-ad-provision, the DC's ldb modules in
# samba-dsdb-modules, and the DC starts winbindd from winbind).
[[ -d /usr/share/samba/setup/ad-schema ]] || pkgs+=(samba-ad-provision)
compgen -G '/usr/lib/*/samba/ldb/samba_dsdb.so' >/dev/null || pkgs+=(samba-dsdb-modules)
compgen -G '/usr/lib/*/samba/vfs/dfs_samba4.so' >/dev/null || pkgs+=(samba-vfs-modules)
{ have winbindd || [[ -x /usr/sbin/winbindd ]]; } || pkgs+=(winbind)
have ldbadd || pkgs+=(ldb-tools)
have ldapsearch || pkgs+=(ldap-utils)

install_missing "samba (AD DC), ldb-tools and ldap-utils" "${pkgs[@]}"
