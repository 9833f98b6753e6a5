#!/usr/bin/env bash
# Start throw-away mail servers for the end-to-end tests, on 127.0.0.1 only.
#
#   scripts/mail/up.sh [STATE_DIR]        (default ${MAIL_STATE_DIR:-/tmp/push-connector-mail})
#   eval "$(scripts/mail/up.sh)"          # or: source STATE_DIR/env.sh
#
# Postfix (SMTP in, submission) hands every accepted message to Dovecot
# (IMAP out) over an LMTP unix socket.  Everything -- configs, test CA and
# server certificate, mail store, queue, logs, pid files -- lives in STATE_DIR.
# A previous instance from the same STATE_DIR is stopped first.  Mailboxes and
# the Postfix queue start empty on every run unless MAIL_KEEP_MAIL=1; the CA is
# kept while it is valid, so MAIL_CA_FILE stays the same file across restarts.
#
# Endpoints (each overridable by the environment variable of the same name):
#   MAIL_IMAP_PORT=1143        IMAP, plaintext login allowed, STARTTLS offered
#   MAIL_IMAPS_PORT=1993       IMAP over TLS
#   MAIL_SMTP_PORT=2525        SMTP in: no AUTH, STARTTLS optional, any sender
#   MAIL_SUBMISSION_PORT=2587  STARTTLS required, then AUTH PLAIN/LOGIN required;
#                              the envelope sender must be the login's own address
#   MAIL_VERIFIED_PORT=2526    SMTP in like 2525, but for the test administrators'
#                              envelope senders the server itself prepends a passing
#                              DMARC result (see "Authentication-Results" below)
# Users, all with password ${MAIL_PASSWORD:-secret}:
#   connector@connector.test  admin@rxx.nhs.uk  admin@ryy.nhs.uk
#   operator@connector.test   intruder@evil.test
#   sink@sink.test            receives all mail addressed outside these domains
#   refused@rxx.nhs.uk        refused on the submission port with 550 5.1.1
#   deferred@ryy.nhs.uk       refused on the submission port with 450 4.2.0
#                             (both are delivered normally through port 2525)
# Unknown users in the test domains are refused at RCPT (550).
# undeliverable@rxx.nhs.uk is accepted at RCPT but Dovecot knows no such user,
# so Postfix's MAILER-DAEMON bounces it to the envelope sender (a real DSN).  Nothing can
# leave the machine: every non-local address is rewritten to the sink, and the
# default/relay/local transports are "error:" with no smtp client in master.cf.
#
# Authentication-Results (authserv-id mx.connector.test, MAIL_AUTHSERV_ID): this server
# verifies no SPF/DKIM/DMARC itself, but it does what RFC 8601 §5 asks of an MTA that
# writes such headers: header_checks IGNORE (delete) every incoming
# Authentication-Results header that names its authserv-id, on every port, so a sender
# cannot forge one.  Port MAIL_VERIFIED_PORT stands in for a verifying MX: for the
# envelope senders admin@rxx.nhs.uk and admin@ryy.nhs.uk only (others are refused
# there), its cleanup's header_checks write
#   Authentication-Results: mx.connector.test; dkim=pass header.d=<domain>;
#       dmarc=pass header.from=<domain>
# just above a From header naming one of them (so, with From first in the message,
# right below Postfix's own Received header).  Tests for the connector's own DKIM check sign messages with scripts/dns.
set -euo pipefail

die() { echo "up.sh: $*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "must run as root (Postfix and Dovecot masters start as root)"
for bin in postfix postconf dovecot openssl; do
    command -v "$bin" >/dev/null 2>&1 || [[ -x /usr/sbin/$bin ]] ||
        die "$bin not found; run scripts/mail/install.sh first"
done
export PATH="$PATH:/usr/sbin:/usr/lib/postfix/sbin"

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/../lib/servers.sh"
STATE_DIR=${1:-${MAIL_STATE_DIR:-/tmp/push-connector-mail}}
[[ $STATE_DIR =~ ^[A-Za-z0-9._/+-]+$ ]] || die "STATE_DIR '$STATE_DIR' must be a path without spaces or special characters"
mkdir -p "$STATE_DIR"
STATE_DIR=$(cd "$STATE_DIR" && pwd -P)
# Unix socket paths are limited to 107 bytes.
(( ${#STATE_DIR} <= 70 )) || die "STATE_DIR path too long for unix sockets (max 70 characters): $STATE_DIR"

MAIL_HOST=127.0.0.1
MAIL_IMAP_PORT=${MAIL_IMAP_PORT:-1143}
MAIL_IMAPS_PORT=${MAIL_IMAPS_PORT:-1993}
MAIL_SMTP_PORT=${MAIL_SMTP_PORT:-2525}
MAIL_SUBMISSION_PORT=${MAIL_SUBMISSION_PORT:-2587}
MAIL_VERIFIED_PORT=${MAIL_VERIFIED_PORT:-2526}
MAIL_AUTHSERV_ID=mx.connector.test
MAIL_PASSWORD=${MAIL_PASSWORD:-secret}
for p in "$MAIL_IMAP_PORT" "$MAIL_IMAPS_PORT" "$MAIL_SMTP_PORT" "$MAIL_SUBMISSION_PORT" "$MAIL_VERIFIED_PORT"; do
    [[ $p =~ ^[0-9]+$ ]] && (( p > 0 && p < 65536 )) || die "bad port '$p'"
done
[[ -n $MAIL_PASSWORD && $MAIL_PASSWORD != *[:[:space:]]* ]] ||
    die "MAIL_PASSWORD must be non-empty without ':' or whitespace"

USERS=(connector@connector.test admin@rxx.nhs.uk admin@ryy.nhs.uk
       operator@connector.test intruder@evil.test sink@sink.test
       refused@rxx.nhs.uk deferred@ryy.nhs.uk)
# Accepted by Postfix, unknown to Dovecot: every message to it bounces.
UNDELIVERABLE=undeliverable@rxx.nhs.uk
# Refused by the submission port (the port replies are sent through).
SUBMISSION_REFUSED=refused@rxx.nhs.uk
SUBMISSION_DEFERRED=deferred@ryy.nhs.uk
SINK=sink@sink.test
DOMAINS=(connector.test rxx.nhs.uk ryy.nhs.uk evil.test sink.test)
MAIL_UID=$(id -u mail)   # Debian's "mail" user, uid/gid 8: Dovecot won't deliver as root
MAIL_GID=$(id -g mail)

# --- stop an earlier instance of this STATE_DIR -----------------------------
srv_stop_previous "$HERE/down.sh" "$STATE_DIR"

port_open() { (exec 3<>"/dev/tcp/$MAIL_HOST/$1") 2>/dev/null; }
for p in "$MAIL_IMAP_PORT" "$MAIL_IMAPS_PORT" "$MAIL_SMTP_PORT" "$MAIL_SUBMISSION_PORT" "$MAIL_VERIFIED_PORT"; do
    if port_open "$p"; then
        die "port $MAIL_HOST:$p is already in use (another instance? stop it with its down.sh or set MAIL_*_PORT)"
    fi
done

umask 022
chmod 755 "$STATE_DIR"
PF="$STATE_DIR/postfix"
PF_ETC="$PF/etc"
DC="$STATE_DIR/dovecot"
TLS="$STATE_DIR/tls"
LOGS="$STATE_DIR/logs"
MAILSTORE="$STATE_DIR/mail"

if [[ ${MAIL_KEEP_MAIL:-0} != 1 ]]; then
    rm -rf "$MAILSTORE" "$PF/queue" "$PF/data"
fi
rm -rf "$PF_ETC" "$DC"
mkdir -p "$PF_ETC" "$PF/queue" "$PF/data" "$DC" "$TLS" "$LOGS" "$MAILSTORE"
# Postfix creates the queue subdirectories itself; data_directory must be its own.
chown postfix:postfix "$PF/data"
chmod 700 "$PF/data"
: >"$LOGS/postfix.log"
: >"$LOGS/dovecot.log"

# --- TLS: test CA + server certificate signed by it ---------------------------
# (rustls refuses a self-signed certificate used as its own CA.)
if ! { [[ -s $STATE_DIR/ca.pem && -s $TLS/ca.key && -s $TLS/server.pem && -s $TLS/server.key ]] &&
       openssl x509 -in "$STATE_DIR/ca.pem" -noout -checkend 86400 >/dev/null &&
       openssl x509 -in "$TLS/server.pem" -noout -checkend 86400 >/dev/null; }; then
    rm -f "$STATE_DIR/ca.pem" "$STATE_DIR/ca.srl" "$TLS"/*
    openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$TLS/ca.key" -out "$STATE_DIR/ca.pem" -days 825 \
        -subj "/O=push-connector tests/CN=push-connector test CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash" 2>/dev/null
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$TLS/server.key" -out "$TLS/server.csr" \
        -subj "/O=push-connector tests/CN=localhost" 2>/dev/null
    cat >"$TLS/server.ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
EXT
    openssl x509 -req -in "$TLS/server.csr" -CA "$STATE_DIR/ca.pem" -CAkey "$TLS/ca.key" \
        -CAserial "$TLS/ca.srl" -CAcreateserial -out "$TLS/server.pem" -days 365 -extfile "$TLS/server.ext" 2>/dev/null
    rm -f "$TLS/server.csr"
fi
chmod 600 "$TLS/ca.key" "$TLS/server.key"
chmod 644 "$STATE_DIR/ca.pem" "$TLS/server.pem"

# --- Dovecot ------------------------------------------------------------------
: >"$DC/users"
for u in "${USERS[@]}"; do
    home="$MAILSTORE/${u#*@}/${u%@*}"
    mkdir -p "$home"
    # user:password:uid:gid:gecos:home:shell:extra
    echo "$u:{PLAIN}$MAIL_PASSWORD:$MAIL_UID:$MAIL_GID::$home::" >>"$DC/users"
done
chown -R mail:mail "$MAILSTORE"
# The auth process runs as the "dovecot" user.
chown root:dovecot "$DC/users"
chmod 640 "$DC/users"

instance=push-connector-mail-$(printf '%s' "$STATE_DIR" | cksum | cut -d' ' -f1)
cat >"$DC/dovecot.conf" <<CONF
# Generated by scripts/mail/up.sh -- test server for push-connector, loopback only.
instance_name = $instance
base_dir = $DC/run
state_dir = $DC/state
listen = $MAIL_HOST
protocols = imap lmtp

log_path = $LOGS/dovecot.log
info_log_path = $LOGS/dovecot.log

ssl = yes
ssl_cert = <$TLS/server.pem
ssl_key = <$TLS/server.key
ssl_dh = </usr/share/dovecot/dh.pem
ssl_min_protocol = TLSv1.2

# Plaintext LOGIN on port $MAIL_IMAP_PORT is allowed (tests of the non-TLS path);
# STARTTLS is offered there too.
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
auth_cache_size = 0

# Fixed list of users (passwd-file; unknown names cannot log in), all mail
# stored as Debian's "mail" user.
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%Lu $DC/users
}
userdb {
  driver = passwd-file
  args = username_format=%Lu $DC/users
}
first_valid_uid = $MAIL_UID
first_valid_gid = $MAIL_GID

mail_location = maildir:~/Maildir
namespace inbox {
  inbox = yes
  separator = /
}

service imap-login {
  inet_listener imap {
    address = $MAIL_HOST
    port = $MAIL_IMAP_PORT
  }
  inet_listener imaps {
    address = $MAIL_HOST
    port = $MAIL_IMAPS_PORT
    ssl = yes
  }
}
protocol imap {
  mail_max_userip_connections = 100
}

# Postfix delivers here (lmtp:unix:...) and authenticates submission users here.
service lmtp {
  unix_listener lmtp {
    mode = 0666
  }
}
protocol lmtp {
  postmaster_address = postmaster@connector.test
}
# No auth penalty: anvil would otherwise delay every login from 127.0.0.1 by
# 2..15 s after a failed one (auth_failure_delay does not cover this), which
# makes the tests of wrong passwords slow down all later tests.
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
service auth {
  unix_listener auth-postfix {
    mode = 0666
  }
}
CONF

# --- Postfix ------------------------------------------------------------------
: >"$PF_ETC/vmailbox"
: >"$PF_ETC/sender_logins"
for u in "${USERS[@]}"; do
    echo "$u ${u#*@}/${u%@*}/" >>"$PF_ETC/vmailbox"
    echo "$u $u" >>"$PF_ETC/sender_logins"
done
echo "$UNDELIVERABLE ${UNDELIVERABLE#*@}/${UNDELIVERABLE%@*}/" >>"$PF_ETC/vmailbox"
cat >"$PF_ETC/submission_recipients" <<CONF
$SUBMISSION_REFUSED 550 5.1.1 <$SUBMISSION_REFUSED>: Recipient address rejected: refused by the test mail server
$SUBMISSION_DEFERRED 450 4.2.0 <$SUBMISSION_DEFERRED>: Recipient address rejected: mailbox busy, try again later
CONF
domain_re=$(printf '%s|' "${DOMAINS[@]}" | sed 's/\./\\./g; s/|$//')
cat >"$PF_ETC/outside.regexp" <<CONF
# Every recipient outside the test domains goes to the sink mailbox.
if !/@($domain_re)\$/
/./ $SINK
endif
CONF

# RFC 8601 §5: incoming Authentication-Results headers that bear our authserv-id are
# deleted (whatever comes before the id: folding, comments, quotes), so the only ones left
# are those this server adds itself.
authserv_re=${MAIL_AUTHSERV_ID//./\\.}
cat >"$PF_ETC/header_checks" <<CONF
/^Authentication-Results:.*$authserv_re/ IGNORE
CONF
# The verified port's stand-in for a verifying MX (a DMARC milter, say): only the test
# administrators' envelope senders are accepted there, and its own cleanup service, after
# deleting forgeries as above, writes a passing result just above a From header of their
# domain.  (An smtpd access-map PREPEND cannot be used: cleanup's header_checks see the
# header it adds and would delete it with the forgeries.)
admins_re='admin@(rxx\.nhs\.uk|ryy\.nhs\.uk)'
cat >"$PF_ETC/verified_senders" <<CONF
/^$admins_re\$/ OK
CONF
cat >"$PF_ETC/header_checks_verified" <<CONF
/^Authentication-Results:.*$authserv_re/ IGNORE
/^From:.*[<[:space:]:]$admins_re>?[[:space:]]*\$/ PREPEND Authentication-Results: $MAIL_AUTHSERV_ID; dkim=pass header.d=\$1; dmarc=pass header.from=\$1
CONF

cat >"$PF_ETC/main.cf" <<CONF
# Generated by scripts/mail/up.sh -- test server for push-connector, loopback only.
compatibility_level = 3.6
queue_directory = $PF/queue
data_directory = $PF/data
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop

myhostname = mx.connector.test
mydomain = connector.test
myorigin = \$myhostname
inet_interfaces = $MAIL_HOST
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_banner = \$myhostname ESMTP push-connector test mail server
biff = no
append_dot_mydomain = no
readme_directory = no
smtputf8_enable = no
disable_vrfy_command = yes
message_size_limit = 52428800

# Headers stay as the sender wrote them, as on an MX receiving from other hosts.
# (By default a client on inet_interfaces -- every test client here -- counts as
# local, and cleanup would unquote "admin"@x and strip a trailing dot from
# header addresses, hiding what a hostile sender wrote.)
local_header_rewrite_clients =

# No syslog here: log to a file through the postlog service.
maillog_file = $LOGS/postfix.log
maillog_file_prefixes = $LOGS

# Nothing leaves the machine: no local delivery, no relaying, no smtp client.
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
relay_domains =
local_transport = error:5.1.1 local delivery is disabled in the test mail server
relay_transport = error:5.7.1 relaying is disabled in the test mail server
default_transport = error:5.7.1 mail never leaves the test mail server

# The test domains are Dovecot mailboxes reached over LMTP; every other
# address is rewritten to $SINK.  virtual_alias_domains must stay empty or
# the catch-all would make the test domains reject their own users.
virtual_mailbox_domains = ${DOMAINS[*]}
virtual_mailbox_maps = texthash:$PF_ETC/vmailbox
virtual_alias_maps = regexp:$PF_ETC/outside.regexp
virtual_alias_domains =
virtual_transport = lmtp:unix:$DC/run/lmtp
# Dovecot adds Delivered-To only when a transaction has a single recipient.
lmtp_destination_recipient_limit = 1

# TLS: STARTTLS offered on the SMTP port, required on submission.
smtpd_tls_cert_file = $TLS/server.pem
smtpd_tls_key_file = $TLS/server.key
smtpd_tls_security_level = may
smtpd_tls_loglevel = 0

# SASL through Dovecot (enabled on the submission port only).
smtpd_sasl_type = dovecot
smtpd_sasl_path = $DC/run/auth-postfix
smtpd_sasl_auth_enable = no
smtpd_sasl_security_options = noanonymous
smtpd_sasl_tls_security_options = noanonymous
smtpd_sender_login_maps = texthash:$PF_ETC/sender_logins

# Forged Authentication-Results headers with our authserv-id are deleted (RFC 8601 §5).
header_checks = regexp:$PF_ETC/header_checks

# Fast failures and retries for tests.
smtpd_error_sleep_time = 0
smtpd_soft_error_limit = 100
smtpd_hard_error_limit = 200
in_flow_delay = 0
queue_run_delay = 5s
minimal_backoff_time = 5s
maximal_backoff_time = 10s
maximal_queue_lifetime = 1h
bounce_queue_lifetime = 1h
CONF

cat >"$PF_ETC/master.cf" <<CONF
# Generated by scripts/mail/up.sh.  No chroot; no smtp/relay/local/virtual
# delivery agents, so no mail can be sent anywhere but Dovecot's LMTP socket.
# service type  private unpriv  chroot  wakeup  maxproc command + args
$MAIL_HOST:$MAIL_SMTP_PORT inet n - n - - smtpd
  -o syslog_name=postfix/smtp-in
$MAIL_HOST:$MAIL_VERIFIED_PORT inet n - n - - smtpd
  -o syslog_name=postfix/verified
  -o smtpd_sender_restrictions=check_sender_access,regexp:$PF_ETC/verified_senders,reject
  -o cleanup_service_name=cleanup-verified
$MAIL_HOST:$MAIL_SUBMISSION_PORT inet n - n - - smtpd
  -o syslog_name=postfix/submission
  -o smtpd_tls_security_level=encrypt
  -o smtpd_tls_auth_only=yes
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
  -o smtpd_sender_restrictions=reject_sender_login_mismatch
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
  -o smtpd_recipient_restrictions=check_recipient_access,texthash:$PF_ETC/submission_recipients,permit
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
cleanup-verified unix n -       n       -       0       cleanup
  -o header_checks=regexp:$PF_ETC/header_checks_verified
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
CONF

# Postfix ignores (and sleeps on) config files and tables changed within the
# last second; date the generated files a minute into the past.
touch -d '-1 minute' "$PF_ETC"/* "$DC/dovecot.conf" "$DC/users"

# --- start --------------------------------------------------------------------
started=()
fail() {
    echo "up.sh: $*" >&2
    echo "up.sh: last log lines:" >&2
    tail -n 20 "$LOGS/postfix.log" "$LOGS/dovecot.log" >&2 || true
    "$HERE/down.sh" "$STATE_DIR" >/dev/null 2>&1 || true
    exit 1
}

# wait_for_file FILE: up to 10 s
wait_for_file() {
    for _ in $(seq 1 200); do
        [[ -s $1 ]] && return 0
        sleep 0.05
    done
    return 1
}

dovecot -c "$DC/dovecot.conf" >>"$LOGS/dovecot.log" 2>&1 || fail "dovecot did not start"
wait_for_file "$DC/run/master.pid" || fail "dovecot wrote no pid file"
tr -dc '0-9' <"$DC/run/master.pid" >"$STATE_DIR/dovecot.pid"
started+=(dovecot)

postfix -c "$PF_ETC" start >>"$LOGS/postfix.log" 2>&1 || fail "postfix did not start"
wait_for_file "$PF/queue/pid/master.pid" || fail "postfix wrote no pid file"
tr -dc '0-9' <"$PF/queue/pid/master.pid" >"$STATE_DIR/postfix.pid"
started+=(postfix)

for p in "$MAIL_IMAP_PORT" "$MAIL_IMAPS_PORT" "$MAIL_SMTP_PORT" "$MAIL_SUBMISSION_PORT" "$MAIL_VERIFIED_PORT"; do
    ok=0
    for _ in $(seq 1 200); do
        if port_open "$p"; then ok=1; break; fi
        sleep 0.05
    done
    [[ $ok -eq 1 ]] || fail "port $p does not answer"
done
for s in "$DC/run/lmtp" "$DC/run/auth-postfix"; do
    [[ -S $s ]] || fail "socket $s missing"
done

# --- endpoints ----------------------------------------------------------------
{
    printf 'export MAIL_HOST=%q\n' "$MAIL_HOST"
    printf 'export MAIL_IMAP_PORT=%q\n' "$MAIL_IMAP_PORT"
    printf 'export MAIL_IMAPS_PORT=%q\n' "$MAIL_IMAPS_PORT"
    printf 'export MAIL_SMTP_PORT=%q\n' "$MAIL_SMTP_PORT"
    printf 'export MAIL_SUBMISSION_PORT=%q\n' "$MAIL_SUBMISSION_PORT"
    printf 'export MAIL_VERIFIED_PORT=%q\n' "$MAIL_VERIFIED_PORT"
    printf 'export MAIL_AUTHSERV_ID=%q\n' "$MAIL_AUTHSERV_ID"
    printf 'export MAIL_CA_FILE=%q\n' "$STATE_DIR/ca.pem"
    printf 'export MAIL_PASSWORD=%q\n' "$MAIL_PASSWORD"
    printf 'export MAIL_STATE_DIR=%q\n' "$STATE_DIR"
    printf 'export MAIL_SINK_USER=%q\n' "$SINK"
    printf 'export MAIL_UNDELIVERABLE=%q\n' "$UNDELIVERABLE"
    printf 'export MAIL_SUBMISSION_REFUSED=%q\n' "$SUBMISSION_REFUSED"
    printf 'export MAIL_SUBMISSION_DEFERRED=%q\n' "$SUBMISSION_DEFERRED"
} >"$STATE_DIR/env.sh"
cat "$STATE_DIR/env.sh"
echo "up.sh: ${started[*]} running from $STATE_DIR (pids $(cat "$STATE_DIR/dovecot.pid") $(cat "$STATE_DIR/postfix.pid"))" >&2
