#!/usr/bin/env bash
# The whole e-mail loop on the embedded default, with the shipped sample e-mails:
# builds and installs the binary, seeds var/directory.sqlite from samples/directory.csv (accounts already there are
# skipped), copies samples/mail/*.eml into the maildir inbox (a message already handled is
# recognised by its Message-ID and not handled twice), runs one intake pass and the nightly
# step now, and prints where the reply .eml files are. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/push-connector/target}"
# One build, shared with scripts/test.sh, installed as push-connector in ~/.local/bin (or
# PREFIX/bin) so that every example of the README can call it by name.
prefix="${PREFIX:-$HOME/.local}"
if [ ! -x "$prefix/bin/push-connector" ]; then
    echo "Building push-connector. The first build compiles about 370 crates and takes several"
    echo "minutes (10 or more on a small 2-core machine); later builds take seconds."
fi
cargo install --locked --debug --path . --root "$prefix" --force 2>&1 \
    | grep -v -e '^  Installing' -e '^   Replacing' -e '^    Replaced' -e '^   Installed' || true
bin="$prefix/bin/push-connector"
[ -x "$bin" ] || { echo "quickstart: the build did not produce $bin" >&2; exit 2; }
echo "push-connector is installed as $bin"
case ":$PATH:" in
    *":$prefix/bin:"*) ;;
    *) echo "($prefix/bin is not on your PATH: add it, e.g. export PATH=\"$prefix/bin:\$PATH\")" ;;
esac
config=samples/connector.toml

"$bin" --config "$config" directory import samples/directory.csv || [ $? -eq 1 ]
mkdir -p var/mail/inbox/new var/mail/inbox/cur var/mail/inbox/tmp
for m in samples/mail/*.eml; do
    cp "$m" "var/mail/inbox/new/$(date +%s).$$.$(basename "$m" .eml)"
done
"$bin" --config "$config" run --once --now
echo
echo "Replies written by this run and earlier ones:"
ls -1 var/outbox/*.eml
echo "Open them with any mail program, or: less var/outbox/<file>.eml"
