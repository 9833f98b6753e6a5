#!/usr/bin/env bash
# Builds the Debian package of push-connector (cargo-deb; settings in Cargo.toml
# [package.metadata.deb]): the binary, the systemd unit, the configuration in
# /etc/push-connector (made here from samples/connector.toml with the server's paths), the
# e-mail templates in /usr/share/push-connector/templates, the docs.
#
#   scripts/package/build.sh [--profile release|dev] [--no-build] [--fast] [--output DIR]
#
# The build reuses CARGO_TARGET_DIR (default ~/.cache/push-connector/target, which
# quickstart.sh and test.sh share). --no-build packages the binary already built for the
# profile; --fast compresses less (the test suite packages the debug binary so). The last
# line printed is the path of the .deb.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
profile=release
build=1
fast=()
output=""
while [ $# -gt 0 ]; do
    case "$1" in
        --profile) profile=${2:?--profile needs a value}; shift 2 ;;
        --no-build) build=0; shift ;;
        --fast) fast=(--fast); shift ;;
        --output) output=${2:?--output needs a folder}; shift 2 ;;
        *) echo "build.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/push-connector/target}
case "$profile" in
    dev) dir=debug ;;
    *) dir=$profile ;;
esac
cd "$root"

# cargo-deb 3 (later majors may refuse to package a dev-profile binary, which the suite does).
if ! cargo deb --version 2>/dev/null | grep -q '^cargo-deb 3\.'; then
    echo "build.sh: installing cargo-deb 3 from crates.io (once, about a minute)" >&2
    # Its own build folder: the suite's may be locked by the cargo running it.
    env -u CARGO_TARGET_DIR cargo install cargo-deb --locked --version '^3.8'
fi
if [ "$build" = 1 ]; then
    echo "build.sh: building the $profile binary in $CARGO_TARGET_DIR (the first build takes several minutes)" >&2
    cargo build --locked --profile "$profile" --bin push-connector
fi
binary="$CARGO_TARGET_DIR/$dir/push-connector"
if [ ! -x "$binary" ]; then
    echo "build.sh: no binary at $binary: build it first, or leave out --no-build" >&2
    exit 2
fi

# The server's configuration: the fully commented sample with the server's paths, and its
# example organisations commented out (none is configured on a new install).
staging="$CARGO_TARGET_DIR/$dir/package"
mkdir -p "$staging"
{
    cat <<'HEADER'
# /etc/push-connector/connector.toml: the configuration of the push-connector service
# (systemd unit push-connector.service, running as the system user push-connector).
# Made from the repository's samples/connector.toml with this server's paths: state in
# /var/lib/push-connector, e-mail templates in /usr/share/push-connector/templates.
# No organisation is configured yet: see the commented [[organisation]] examples below.
# Secrets go in /etc/push-connector/environment. After a change, check it as the service:
#   runuser -u push-connector -- push-connector --config /etc/push-connector/connector.toml check
#
HEADER
    sed -e 's|^state_dir = "var"$|state_dir = "/var/lib/push-connector"|' \
        -e 's|^path = "var/|path = "/var/lib/push-connector/|' \
        -e 's|^\([a-z_]*\) = "samples/codes/\(.*\)"$|# \1 = "/usr/share/doc/push-connector/examples/codes/\2"|' \
        -e 's|^# templates = "/usr/share/push-connector/templates"$|templates = "/usr/share/push-connector/templates"|' \
        samples/connector.toml |
    awk '
        /^\[\[organisation\]\]/ && !seen {
            print "# Organisations: remove the leading \"# \" of an example to configure one."
            seen = 1
        }
        /^\[\[organisation\]\]/ { org = 1 }
        /^# -----/ { org = 0 }
        org && /^$/ { print; next }
        org { print "# " $0; next }
        { print }
    '
} >"$staging/connector.toml"
# Every path the server uses must be absolute: a setting left pointing into the repository
# would break the service.
if grep -nE '^[a-z_]+ = "(var|samples|templates)(/|")' "$staging/connector.toml" >&2; then
    echo "build.sh: the packaged configuration still has a relative path (above)" >&2
    exit 2
fi
for want in 'state_dir = "/var/lib/push-connector"' 'templates = "/usr/share/push-connector/templates"'; do
    if ! grep -qxF "$want" "$staging/connector.toml"; then
        echo "build.sh: the packaged configuration lacks: $want" >&2
        exit 2
    fi
done

args=(--no-build --profile "$profile" --locked "${fast[@]}")
if [ -n "$output" ]; then
    mkdir -p "$output"
    args+=(--output "$output")
fi
cargo deb "${args[@]}" | tail -n 1
