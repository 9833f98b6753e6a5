#!/usr/bin/env bash
# E-mail connector timings on the embedded default (maildir in, .eml files out):
#   arrival -> acknowledgement: `run --once` on one message with an N-row attachment
#                               (read, check, validate, store, file, write the reply);
#   nightly start -> report:    `run --once --now` applying it (N new accounts, guard
#                               raised so the run is not held) and writing the result e-mail;
#   the peer:                   `apply` of the same file in a fresh folder, so the ratio
#                               nightly / apply is the e-mail path's own cost.
# Each with its peak memory (GNU time).
# Usage: scripts/bench-mail.sh [PROFILE] [ROWS...]   (PROFILE: release (default) or debug)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/push-connector/target}"
profile=${1:-release}; shift || true
rows=("${@:-10000 100000}")
if [ "$profile" = release ]; then cargo build --release --quiet; else cargo build --quiet; fi
bin="$CARGO_TARGET_DIR/$profile/push-connector"
for n in ${rows[@]}; do
    dir=$(mktemp -d)
    cat > "$dir/c.toml" <<TOML
[guard]
floor = 100000000
[[organisation]]
code = "RXX"
administrators = ["admin@rxx.nhs.uk"]
TOML
    python3 - "$dir" "$n" <<'PY'
import sys, base64
d, n = sys.argv[1], int(sys.argv[2])
rows = ["ExternalSyncID,FirstName,LastName,Organisation,JobTitle,OfficePhone"]
for i in range(n):
    s = "".join(chr(97 + (i // 26**k) % 26) for k in range(4))
    rows.append(f"B{i:07},Person,Name{s},RXX,Clerk,0113 496 {i % 10000:04}")
csv = ("\n".join(rows) + "\n").encode()
b64 = base64.encodebytes(csv).decode().replace("\n", "\r\n")
msg = ("From: admin@rxx.nhs.uk\r\nTo: connector@localhost\r\nSubject: bench\r\n"
       f"Message-ID: <bench-{n}@rxx>\r\nMIME-Version: 1.0\r\n"
       "Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nx\r\n"
       "--B\r\nContent-Type: text/csv\r\nContent-Disposition: attachment; filename=staff.csv\r\n"
       f"Content-Transfer-Encoding: base64\r\n\r\n{b64}--B--\r\n")
import os
os.makedirs(f"{d}/var/mail/inbox/new", exist_ok=True)
open(f"{d}/var/mail/inbox/new/1.bench", "w").write(msg)
PY
    (cd "$dir" && printf 'ID,ExternalSyncID,FirstName,LastName,Email,Organisation,Status\n1,X1,A,B,a.b@nhs.net,RXX,Active\n' > seed.csv \
        && "$bin" --config c.toml directory import seed.csv >/dev/null)
    # Each step under GNU time: elapsed seconds and peak resident memory (KiB).
    timed() { /usr/bin/time -f '%e %M' -o "$dir/time" "$@" >"$dir/out.txt" 2>/dev/null; cat "$dir/time"; }
    read -r ack_s ack_kib < <(cd "$dir" && timed "$bin" --config c.toml run --once)
    read -r night_s night_kib < <(cd "$dir" && timed "$bin" --config c.toml run --once --now)
    applied=$(grep -o 'applied: .*' "$dir/out.txt" || true)
    # The peer, in the same run: the same file applied by `apply` in a fresh folder (the
    # same pipeline without the mailbox, the state of the e-mail and the result e-mail).
    peer=$(mktemp -d)
    cp "$dir/c.toml" "$dir/seed.csv" "$peer/"
    python3 - "$dir/var/mail" "$peer/staff.csv" <<'PY'
import sys, email, glob
from email import policy
path = glob.glob(f"{sys.argv[1]}/*/cur/*") + glob.glob(f"{sys.argv[1]}/*/new/*")
msg = email.message_from_binary_file(open(path[0], "rb"), policy=policy.default)
part = next(p for p in msg.iter_attachments())
open(sys.argv[2], "wb").write(part.get_payload(decode=True))
PY
    (cd "$peer" && "$bin" --config c.toml directory import seed.csv >/dev/null)
    read -r apply_s apply_kib < <(cd "$peer" && timed "$bin" --config c.toml apply staff.csv)
    printf '%7d rows: arrival -> acknowledgement %6.2f s (%4.0f MiB); nightly start -> result e-mail %6.2f s (%4.0f MiB, %6.0f rows/s); apply of the same file %6.2f s (%4.0f MiB): nightly / apply %4.2f (%s)\n' \
        "$n" "$ack_s" "$(echo "$ack_kib / 1024" | bc -l)" "$night_s" "$(echo "$night_kib / 1024" | bc -l)" \
        "$(echo "$n / $night_s" | bc -l)" "$apply_s" "$(echo "$apply_kib / 1024" | bc -l)" \
        "$(echo "$night_s / $apply_s" | bc -l)" "$applied"
    rm -rf "$dir" "$peer"
done
