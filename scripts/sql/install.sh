#!/usr/bin/env bash
# Install the SQL servers used by the tests: PostgreSQL and MariaDB (Debian
# packages).  Their clients (psql, mariadb) come with them.
#
# Idempotent: only packages whose binaries are missing are installed, so apt
# never upgrades anything already there.  Never starts a system-wide service:
# policy-rc.d denies service starts while apt runs, and the tests start their
# own instances with scripts/sql/up.sh.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/../lib/servers.sh"

need_root apt-get

pkgs=()
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || pkgs+=(postgresql)
have psql || compgen -G '/usr/lib/postgresql/*/bin/psql' >/dev/null || pkgs+=(postgresql-client)
{ have mariadbd || [[ -x /usr/sbin/mariadbd ]]; } && have mariadb-install-db || pkgs+=(mariadb-server)
have mariadb || pkgs+=(mariadb-client)

install_missing "postgresql and mariadb-server" "${pkgs[@]}"
