#!/usr/bin/env bash
# Install the SQL servers used by the tests: PostgreSQL and MariaDB (Debian
# packages).  Their clients (psql, mariadb) come with them.
#
# Idempotent: only packages whose binaries are missing are installed, so apt
# never upgrades anything already there.  Never starts a system-wide service:
# policy-rc.d denies service starts while apt runs, and the tests start their
# own instances with scripts/sql/up.sh.
set -euo pipefail

if [[ $(id -u) -ne 0 ]]; then
    echo "install.sh: must run as root (apt-get)" >&2
    exit 1
fi

have() { command -v "$1" >/dev/null 2>&1; }

pkgs=()
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || pkgs+=(postgresql)
have psql || compgen -G '/usr/lib/postgresql/*/bin/psql' >/dev/null || pkgs+=(postgresql-client)
{ have mariadbd || [[ -x /usr/sbin/mariadbd ]]; } && have mariadb-install-db || pkgs+=(mariadb-server)
have mariadb || pkgs+=(mariadb-client)

if [[ ${#pkgs[@]} -eq 0 ]]; then
    echo "install.sh: postgresql and mariadb-server already installed"
    exit 0
fi
echo "install.sh: installing ${pkgs[*]}"

# Keep maintainer scripts from starting daemons system-wide.
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
