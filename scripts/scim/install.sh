#!/usr/bin/env bash
# Install the third-party SCIM 2.0 test server (scim2-server) and the SCIM
# compliance client (scim2-cli, which runs scim2-tester) into a venv.
#
#   scripts/scim/install.sh      (venv: ${SCIM_VENV:-$HOME/.cache/push-connector/scim-venv})
#
# Idempotent: when both commands are already in the venv nothing is installed.
# Needs python3 with the venv module (Debian: python3-venv, installed with apt
# when missing and we are root) and access to PyPI.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/../lib/servers.sh"

SCIM_VENV=${SCIM_VENV:-$HOME/.cache/push-connector/scim-venv}
PY=${SCIM_PYTHON:-python3}

if [[ -x $SCIM_VENV/bin/scim2-server && -x $SCIM_VENV/bin/scim2 ]] &&
   "$SCIM_VENV/bin/python" -c 'import scim2_server, scim2_cli' 2>/dev/null; then
    echo "install.sh: scim2-server and scim2-cli already in $SCIM_VENV"
    exit 0
fi

command -v "$PY" >/dev/null 2>&1 || PY=/usr/bin/python3
if ! "$PY" -c 'import venv, ensurepip' 2>/dev/null; then
    if [[ $(id -u) -ne 0 ]]; then
        echo "install.sh: $PY lacks the venv module; install python3-venv (as root)" >&2
        exit 1
    fi
    apt_install python3-venv
    PY=/usr/bin/python3
fi

if [[ ! -x $SCIM_VENV/bin/python ]]; then
    mkdir -p "$(dirname "$SCIM_VENV")"
    "$PY" -m venv "$SCIM_VENV"
fi
echo "install.sh: installing scim2-server scim2-cli into $SCIM_VENV"
"$SCIM_VENV/bin/pip" install --quiet --disable-pip-version-check scim2-server scim2-cli
"$SCIM_VENV/bin/pip" list --disable-pip-version-check 2>/dev/null | grep -iE '^scim2' || true
echo "install.sh: done"
