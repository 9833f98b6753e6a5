#!/usr/bin/env bash
# Start a throw-away DNS server for the sender-verification tests, on 127.0.0.1 only.
#
#   scripts/dns/up.sh [STATE_DIR]         (default ${DNS_STATE_DIR:-/tmp/push-connector-dns})
#   eval "$(scripts/dns/up.sh)"           # or: source STATE_DIR/env.sh
#
# dnsmasq answers from its command line only (--no-resolv --no-hosts; the test domains are
# --local (uk, test), so any other name there is NXDOMAIN and nothing is forwarded anywhere):
#   sel._domainkey.rxx.nhs.uk  TXT  the DKIM key of rxx.nhs.uk       _dmarc.rxx.nhs.uk  TXT  v=DMARC1; p=reject
#   sel._domainkey.ryy.nhs.uk  TXT  the DKIM key of ryy.nhs.uk       (ryy.nhs.uk publishes no DMARC record)
#   sel._domainkey.evil.test   TXT  the DKIM key of evil.test        _dmarc.evil.test   TXT  v=DMARC1; p=none
# The key pairs (RSA 2048) are made anew by every up.sh, and STATE_DIR/sign signs a message
# with them (dkimpy, relaxed/relaxed, selector "sel"):
#   $DNS_SIGN_CMD [DOMAIN] < message > signed       (DOMAIN defaults to rxx.nhs.uk)
# A previous instance from the same STATE_DIR is stopped first.
#
# Endpoints (each overridable by the variable of the same name): DNS_PORT=5354 (not 5353,
# which mDNS daemons hold).
# env.sh: DNS_HOST, DNS_PORT, DNS_SERVER (host:port, for [mail] dns_servers),
# DNS_SIGN_CMD, DNS_DOMAIN, DNS_SELECTOR, DNS_STATE_DIR.
set -euo pipefail

die() { echo "up.sh: $*" >&2; exit 1; }

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/../lib/servers.sh"

DNSMASQ=/usr/sbin/dnsmasq
VENV=${DNS_VENV:-$HOME/.cache/push-connector/dkim-venv}
[[ -x $DNSMASQ ]] || die "dnsmasq not found; run scripts/dns/install.sh first"
"$VENV/bin/python" -c 'import dkim' 2>/dev/null || die "no dkimpy in $VENV; run scripts/dns/install.sh first"
command -v openssl >/dev/null || die "openssl not found"

STATE_DIR=${1:-${DNS_STATE_DIR:-/tmp/push-connector-dns}}
[[ $STATE_DIR =~ ^[A-Za-z0-9._/+-]+$ ]] || die "STATE_DIR '$STATE_DIR' must be a path without spaces or special characters"
mkdir -p "$STATE_DIR"
STATE_DIR=$(cd "$STATE_DIR" && pwd -P)

DNS_HOST=127.0.0.1
DNS_PORT=${DNS_PORT:-5354}
[[ $DNS_PORT =~ ^[0-9]+$ ]] && (( DNS_PORT > 0 && DNS_PORT < 65536 )) || die "bad port '$DNS_PORT'"
SELECTOR=sel
DOMAIN=rxx.nhs.uk

srv_stop_previous "$HERE/down.sh" "$STATE_DIR"

if (exec 3<>"/dev/tcp/$DNS_HOST/$DNS_PORT") 2>/dev/null; then
    die "port $DNS_HOST:$DNS_PORT is already in use (another instance? stop it with its down.sh or set DNS_PORT)"
fi

umask 022
KEYS=$STATE_DIR/keys
rm -rf "$KEYS"
mkdir -p "$KEYS"
: >"$STATE_DIR/dnsmasq.log"
chmod 666 "$STATE_DIR/dnsmasq.log"

# txt_args NAME TEXT: --txt-record for NAME, TEXT cut into the 255-byte strings of a TXT
# (no quotes: on the command line dnsmasq would keep them; TEXT has no commas).
records=()
txt_args() {
    local name=$1 text=$2 parts=() i
    for ((i = 0; i < ${#text}; i += 200)); do
        parts+=("${text:i:200}")
    done
    records+=("--txt-record=$name,$(IFS=,; echo "${parts[*]}")")
}

for d in rxx.nhs.uk ryy.nhs.uk evil.test; do
    openssl genrsa -out "$KEYS/$d.key" 2048 2>/dev/null
    pub=$(openssl rsa -in "$KEYS/$d.key" -pubout -outform DER 2>/dev/null | base64 -w0)
    txt_args "$SELECTOR._domainkey.$d" "v=DKIM1; k=rsa; p=$pub"
done
chmod 600 "$KEYS"/*.key
txt_args "_dmarc.rxx.nhs.uk" "v=DMARC1; p=reject"
txt_args "_dmarc.evil.test" "v=DMARC1; p=none"

cat >"$STATE_DIR/sign.py" <<'PY'
"""Signs the message on stdin with the test key of a domain (DKIM, relaxed/relaxed)."""
import os
import sys

import dkim

domain = sys.argv[1] if len(sys.argv) > 1 else "rxx.nhs.uk"
keys = os.path.join(os.path.dirname(os.path.abspath(__file__)), "keys")
with open(os.path.join(keys, domain + ".key"), "rb") as f:
    key = f.read()
message = sys.stdin.buffer.read()
signature = dkim.sign(
    message,
    b"sel",
    domain.encode(),
    key,
    canonicalize=(b"relaxed", b"relaxed"),
    include_headers=[b"from", b"to", b"subject", b"date", b"message-id",
                     b"mime-version", b"content-type"],
)
sys.stdout.buffer.write(signature + message)
PY
cat >"$STATE_DIR/sign" <<SH
#!/bin/sh
# Signs stdin with the test DKIM key of \${1:-rxx.nhs.uk}; see scripts/dns/up.sh.
exec "$VENV/bin/python" "$STATE_DIR/sign.py" "\$@"
SH
chmod 755 "$STATE_DIR/sign"

# dnsmasq writes its pid file before dropping root to the "dnsmasq" user.
"$DNSMASQ" --conf-file=/dev/null --no-resolv --no-hosts --no-poll \
    --listen-address="$DNS_HOST" --bind-interfaces --port="$DNS_PORT" \
    --local=/uk/ --local=/test/ \
    --pid-file="$STATE_DIR/dnsmasq.pid" --log-facility="$STATE_DIR/dnsmasq.log" --log-queries \
    "${records[@]}" || die "dnsmasq did not start (see $STATE_DIR/dnsmasq.log)"

for _ in $(seq 1 100); do
    [[ -s $STATE_DIR/dnsmasq.pid ]] && break
    sleep 0.05
done
[[ -s $STATE_DIR/dnsmasq.pid ]] || die "dnsmasq wrote no pid file"

# Ready when it answers over TCP (the resolver falls back to TCP for long answers).
for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/$DNS_HOST/$DNS_PORT") 2>/dev/null && break
    sleep 0.05
done
(exec 3<>"/dev/tcp/$DNS_HOST/$DNS_PORT") 2>/dev/null || { "$HERE/down.sh" "$STATE_DIR" >/dev/null 2>&1 || true; die "port $DNS_PORT does not answer"; }

{
    printf 'export DNS_HOST=%q\n' "$DNS_HOST"
    printf 'export DNS_PORT=%q\n' "$DNS_PORT"
    printf 'export DNS_SERVER=%q\n' "$DNS_HOST:$DNS_PORT"
    printf 'export DNS_SIGN_CMD=%q\n' "$STATE_DIR/sign"
    printf 'export DNS_DOMAIN=%q\n' "$DOMAIN"
    printf 'export DNS_SELECTOR=%q\n' "$SELECTOR"
    printf 'export DNS_STATE_DIR=%q\n' "$STATE_DIR"
} >"$STATE_DIR/env.sh"
cat "$STATE_DIR/env.sh"
echo "up.sh: dnsmasq running from $STATE_DIR (pid $(tr -dc '0-9' <"$STATE_DIR/dnsmasq.pid"), port $DNS_PORT)" >&2
