#!/usr/bin/env bash
# The whole e-mail loop on the embedded default, with the shipped sample e-mails:
# builds, seeds var/directory.sqlite from samples/directory.csv (accounts already there are
# skipped), copies samples/mail/*.eml into the maildir inbox (a message already handled is
# recognised by its Message-ID and not handled twice), runs one intake pass and the nightly
# step now, and prints where the reply .eml files are. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/push-connector/target}"
cargo build --quiet --locked
bin="$CARGO_TARGET_DIR/debug/push-connector"
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
