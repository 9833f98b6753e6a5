#!/usr/bin/env bash
# E-mail connector timings on the embedded default (maildir in, .eml files out):
#   arrival -> acknowledgement: `run --once` on one message with an N-row attachment
#                               (read, check, validate, store, file, write the reply);
#   nightly start -> report:    `run --once --now` applying it (N new accounts, guard
#                               raised so the run is not held) and writing the result e-mail.
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
    t0=$(date +%s.%N)
    (cd "$dir" && "$bin" --config c.toml run --once >/dev/null 2>&1)
    t1=$(date +%s.%N)
    (cd "$dir" && "$bin" --config c.toml run --once --now > out.txt 2>/dev/null)
    t2=$(date +%s.%N)
    printf '%7d rows: arrival -> acknowledgement %6.2f s; nightly start -> result e-mail %6.2f s (%s)\n' \
        "$n" "$(echo "$t1 - $t0" | bc)" "$(echo "$t2 - $t1" | bc)" "$(grep -o 'applied: .*' "$dir/out.txt")"
    rm -rf "$dir"
done
