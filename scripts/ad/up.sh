#!/usr/bin/env bash
# Start a throw-away Active Directory domain controller (Samba AD DC) for the
# tests, on 127.0.0.1.
#
#   scripts/ad/up.sh [STATE_DIR]          (default ${AD_STATE_DIR:-/tmp/push-connector-ad})
#   eval "$(scripts/ad/up.sh)"            # or: source STATE_DIR/env.sh
#
# Domain CONNECTOR.TEST (NetBIOS CONNECTOR, DC name DC1), no DNS server,
# RFC 2307 attributes.  Every start begins from the same provisioned domain:
#   - OU=Staff,DC=connector,DC=test
#   - CN=svc-connector,CN=Users,DC=connector,DC=test (password $AD_SVC_PASSWORD)
#     with read on OU=Staff, write of info, employeeID and mail on the users
#     below it, "Replicating Directory Changes" on the domain head (DirSync)
#     and read on CN=Deleted Objects (to see tombstones)
#   - passwords never expire (the cached domain may be older than 42 days)
# then AD_SEED_USERS users (default 1000, 0 for none) are added under
# OU=Staff by seed.py straight into the database before Samba starts.
#
# Provisioning takes ~7 s, so the provisioned tree (with the OU, account and
# ACLs) is cached in $AD_CACHE (default
# $HOME/.cache/push-connector/samba-provisioned.tar) and restored on later
# runs (~0.1-0.6 s).  The cache is rebuilt when the Samba version, the
# passwords or this script's provisioning step change.  A second cache per
# AD_SEED_USERS value (samba-provisioned-seeded-N.tar) keeps the tree after
# seeding, for that seed.py version, so repeated starts skip seeding.
#
# Samba needs root and fixed ports (LDAP 389, LDAPS 636, Kerberos 88/464,
# CLDAP 389/udp), so only one instance can run on a machine: up.sh stops the
# previous one (this STATE_DIR's, and the last one any up.sh started) first.
#
#   AD_ADMIN_PASSWORD=Passw0rd-Test!   Administrator's password
#   AD_SVC_PASSWORD=Svc-Passw0rd!      svc-connector's password
#   AD_SEED_USERS=1000                 users seeded under OU=Staff
set -euo pipefail

die() { echo "up.sh: $*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "must run as root (Samba AD DC)"
for bin in samba samba-tool ldbadd ldbmodify ldbsearch ldapsearch openssl tar; do
    command -v "$bin" >/dev/null 2>&1 || [[ -x /usr/sbin/$bin ]] ||
        die "$bin not found; run scripts/ad/install.sh first"
done
[[ -d /usr/share/samba/setup/ad-schema ]] || die "samba-ad-provision missing; run scripts/ad/install.sh first"
export PATH="$PATH:/usr/sbin"

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/../lib/servers.sh"
STATE_DIR=${1:-${AD_STATE_DIR:-/tmp/push-connector-ad}}
[[ $STATE_DIR =~ ^[A-Za-z0-9._/+-]+$ ]] || die "STATE_DIR '$STATE_DIR' must be a path without spaces or special characters"
mkdir -p "$STATE_DIR"
STATE_DIR=$(cd "$STATE_DIR" && pwd -P)
(( ${#STATE_DIR} <= 70 )) || die "STATE_DIR path too long for unix sockets (max 70 characters): $STATE_DIR"

AD_REALM=CONNECTOR.TEST
AD_DOMAIN=CONNECTOR
AD_HOSTNAME=DC1
AD_BASE_DN=DC=connector,DC=test
AD_STAFF_OU=OU=Staff,$AD_BASE_DN
AD_ADMIN_DN=CN=Administrator,CN=Users,$AD_BASE_DN
AD_BIND_DN=CN=svc-connector,CN=Users,$AD_BASE_DN
AD_ADMIN_PASSWORD=${AD_ADMIN_PASSWORD:-Passw0rd-Test!}
AD_SVC_PASSWORD=${AD_SVC_PASSWORD:-Svc-Passw0rd!}
AD_SEED_USERS=${AD_SEED_USERS:-1000}
AD_CACHE=${AD_CACHE:-$HOME/.cache/push-connector/samba-provisioned.tar}
[[ $AD_SEED_USERS =~ ^[0-9]+$ ]] || die "AD_SEED_USERS must be a number"
HOST=127.0.0.1
# Remembers the STATE_DIR of the instance started last, whatever its STATE_DIR.
LAST=${AD_LAST_FILE:-$HOME/.cache/push-connector/samba-last-state-dir}
mkdir -p "$(dirname "$AD_CACHE")" "$(dirname "$LAST")"

timings=()
t_start=$(date +%s%N)
lap() {
    local now ms; now=$(date +%s%N); ms=$(( (now - t_start) / 1000000 ))
    timings+=("$1 $((ms / 1000)).$(printf '%03d' $((ms % 1000)))s"); t_start=$now
}

# --- stop earlier instances -----------------------------------------------------
srv_stop_previous "$HERE/down.sh" "$STATE_DIR"
if [[ -s $LAST ]]; then
    prev=$(<"$LAST")
    if [[ $prev != "$STATE_DIR" && -d $prev ]]; then srv_stop_previous "$HERE/down.sh" "$prev"; fi
fi

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }
for p in 389 636 88 464 3268 3269; do
    port_open "$p" && die "port $HOST:$p is already in use (another Samba or LDAP server? stop it first)"
done
lap stop

umask 022
chmod 755 "$STATE_DIR"
SMB=$STATE_DIR/samba
LOGS=$STATE_DIR/logs
TLS=$STATE_DIR/tls
CONF=$STATE_DIR/smb.conf
mkdir -p "$LOGS" "$TLS"

# --- provision or restore ---------------------------------------------------------
# Bump when the provisioning steps below change, to invalidate old caches.
PROVISION_REV=1
samba_version=$(samba --version)
key=$(printf '%s\n' "rev=$PROVISION_REV" "$samba_version" "$AD_REALM" "$AD_DOMAIN" "$AD_HOSTNAME" \
        "$AD_ADMIN_PASSWORD" "$AD_SVC_PASSWORD" | sha256sum | cut -d' ' -f1)

provision() {
    local tmp=$STATE_DIR/provision.tmp st
    rm -rf "$tmp"
    mkdir -p "$tmp"
    echo "up.sh: provisioning $AD_REALM (cache $AD_CACHE missing or stale)" >&2
    samba-tool domain provision --targetdir="$tmp" --realm="$AD_REALM" --domain="$AD_DOMAIN" \
        --host-name="$AD_HOSTNAME" --server-role=dc --dns-backend=NONE --use-rfc2307 \
        --adminpass="$AD_ADMIN_PASSWORD" \
        --option="interfaces = $HOST" --option="bind interfaces only = yes" \
        >"$LOGS/provision.log" 2>&1 || { tail -n 20 "$LOGS/provision.log" >&2; die "provisioning failed"; }
    local H=(-s "$tmp/etc/smb.conf" -H "$tmp/private/sam.ldb")
    # (&& chains: set -e does not apply inside a { } that is tested with ||.)
    {
        samba-tool domain passwordsettings set "${H[@]}" --max-pwd-age=0 --min-pwd-age=0 &&
        samba-tool ou add "${H[@]}" "$AD_STAFF_OU" --description="Staff synced by push-connector" &&
        samba-tool user create "${H[@]}" svc-connector "$AD_SVC_PASSWORD" \
            --description="push-connector service account" &&
        samba-tool user setexpiry "${H[@]}" svc-connector --noexpiry &&
        samba-tool user setexpiry "${H[@]}" Administrator --noexpiry
    } >>"$LOGS/provision.log" 2>&1 || { tail -n 20 "$LOGS/provision.log" >&2; die "creating the OU/service account failed"; }

    local sid
    sid=$(ldbsearch "${H[@]:2}" -b "$AD_BASE_DN" '(sAMAccountName=svc-connector)' objectSid |
          sed -n 's/^objectSid: //p')
    [[ $sid == S-1-5-21-* ]] || die "could not read svc-connector's SID"
    # schemaIDGUIDs of the attributes the account may write, and of class user.
    guid() {
        ldbsearch "${H[@]:2}" -b "CN=Schema,CN=Configuration,$AD_BASE_DN" "(lDAPDisplayName=$1)" schemaIDGUID |
            sed -n 's/^schemaIDGUID: //p'
    }
    local g_user g_info g_emp g_mail
    g_user=$(guid user); g_info=$(guid info); g_emp=$(guid employeeID); g_mail=$(guid mail)
    for g in "$g_user" "$g_info" "$g_emp" "$g_mail"; do
        [[ $g =~ ^[0-9a-f-]{36}$ ]] || die "could not read a schemaIDGUID ($g)"
    done
    # Read (and list) on the OU and everything below it; write of info,
    # employeeID and mail on user objects below it; DirSync right
    # (DS-Replication-Get-Changes, 1131f6aa-…) on the domain head.
    local ou_sddl="(A;CI;RPLCLORC;;;$sid)"
    ou_sddl+="(OA;CIIO;WP;$g_info;$g_user;$sid)"
    ou_sddl+="(OA;CIIO;WP;$g_emp;$g_user;$sid)"
    ou_sddl+="(OA;CIIO;WP;$g_mail;$g_user;$sid)"
    {
        samba-tool dsacl set "${H[@]}" --objectdn="$AD_STAFF_OU" --sddl="$ou_sddl" &&
        samba-tool dsacl set "${H[@]}" --objectdn="$AD_BASE_DN" \
            --sddl="(OA;;CR;1131f6aa-9c07-11d1-f79f-00c04fc2dcd2;;$sid)"
    } >>"$LOGS/provision.log" 2>&1 || { tail -n 20 "$LOGS/provision.log" >&2; die "setting the ACLs failed"; }

    # Read on CN=Deleted Objects, so the account sees tombstones (show-deleted
    # control).  samba-tool dsacl cannot reach it; ldbmodify with the control can.
    local del="CN=Deleted Objects,$AD_BASE_DN" sd
    sd=$(ldbsearch "${H[@]:2}" --show-deleted -b "$del" -s base nTSecurityDescriptor |
         sed -n '/^nTSecurityDescriptor: /,/^$/p' | sed 's/^ //' | tr -d '\n' | sed 's/^nTSecurityDescriptor: //')
    [[ $sd == O:*D:* ]] || die "could not read the security descriptor of $del"
    local dacl=${sd%%S:*} sacl=
    [[ $sd == *S:* ]] && sacl=S:${sd#*S:}
    printf 'dn: %s\nchangetype: modify\nreplace: nTSecurityDescriptor\nnTSecurityDescriptor: %s\n' \
        "$del" "$dacl(A;;RPLCLORC;;;$sid)$sacl" |
        ldbmodify "${H[@]:2}" --controls=show_deleted:1 >>"$LOGS/provision.log" 2>&1 ||
        { tail -n 5 "$LOGS/provision.log" >&2; die "could not grant read on $del"; }

    # Cache private/ and state/ (smb.conf is written fresh on every start).
    tar --xattrs --xattrs-include='*' --acls -C "$tmp" -cf "$AD_CACHE.tmp.$$" private state
    mv -f "$AD_CACHE.tmp.$$" "$AD_CACHE"
    echo "$key" >"$AD_CACHE.key"
    rm -rf "$SMB"
    mkdir -p "$SMB"
    mv "$tmp/private" "$tmp/state" "$SMB/"
    rm -rf "$tmp"
    provisioned=1
}

# A second cache holds the tree with the seeded users, one per AD_SEED_USERS
# value (the tests' 1000 and a benchmark's 100000 side by side), so that later
# starts skip seeding too (~2 s for 1000, minutes for 100,000).
SEEDED_CACHE=${AD_CACHE%.tar}-seeded-$AD_SEED_USERS.tar
seeded_key="$key seed=$AD_SEED_USERS seed.py=$(sha256sum "$HERE/seed.py" | cut -d' ' -f1)"
provisioned=0
seeded=0
rm -rf "$SMB"
if (( AD_SEED_USERS > 0 )) && [[ -s $SEEDED_CACHE && -s $SEEDED_CACHE.key &&
        $(<"$SEEDED_CACHE.key") == "$seeded_key" ]] &&
   mkdir -p "$SMB" && tar --xattrs --xattrs-include='*' --acls -C "$SMB" -xf "$SEEDED_CACHE" 2>"$LOGS/restore.log"; then
    seeded=1
    lap "restore(seeded $AD_SEED_USERS)"
elif rm -rf "$SMB" && [[ -s $AD_CACHE && -s $AD_CACHE.key && $(<"$AD_CACHE.key") == "$key" ]]; then
    mkdir -p "$SMB"
    if tar --xattrs --xattrs-include='*' --acls -C "$SMB" -xf "$AD_CACHE" 2>"$LOGS/restore.log"; then
        lap restore
    else
        echo "up.sh: cache $AD_CACHE unreadable, provisioning again" >&2
        provision; lap provision
    fi
else
    provision; lap provision
fi
mkdir -p "$SMB/cache" "$SMB/lock" "$SMB/run" "$SMB/bind-dns" "$SMB/run/ncalrpc" "$SMB/run/winbindd"

# --- TLS: test CA + server certificate for 127.0.0.1 -------------------------------
# (Samba's own self-signed certificate names neither 127.0.0.1 nor localhost,
# and making it would cost a 4096-bit RSA key on every start.)
if ! { [[ -s $STATE_DIR/ca.pem && -s $TLS/ca.key && -s $TLS/server.pem && -s $TLS/server.key ]] &&
       openssl x509 -in "$STATE_DIR/ca.pem" -noout -checkend 86400 >/dev/null &&
       openssl x509 -in "$TLS/server.pem" -noout -checkend 86400 >/dev/null; }; then
    rm -f "$STATE_DIR/ca.pem" "$TLS"/*
    openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$TLS/ca.key" -out "$STATE_DIR/ca.pem" -days 825 \
        -subj "/O=push-connector tests/CN=push-connector test AD CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash" 2>/dev/null
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$TLS/server.key" -out "$TLS/server.csr" \
        -subj "/O=push-connector tests/CN=dc1.connector.test" 2>/dev/null
    cat >"$TLS/server.ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,DNS:dc1.connector.test,IP:127.0.0.1
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
EXT
    openssl x509 -req -in "$TLS/server.csr" -CA "$STATE_DIR/ca.pem" -CAkey "$TLS/ca.key" \
        -CAserial "$TLS/ca.srl" -CAcreateserial -out "$TLS/server.pem" -days 365 \
        -extfile "$TLS/server.ext" 2>/dev/null
    rm -f "$TLS/server.csr"
fi
# Samba refuses a key file readable by others.
chmod 600 "$TLS/ca.key" "$TLS/server.key"
chmod 644 "$STATE_DIR/ca.pem" "$TLS/server.pem"

# --- smb.conf -------------------------------------------------------------------------
cat >"$CONF" <<CONF
# Generated by scripts/ad/up.sh -- test AD DC for push-connector, loopback only.
[global]
	netbios name = $AD_HOSTNAME
	realm = $AD_REALM
	workgroup = $AD_DOMAIN
	server role = active directory domain controller
	# LDAP (+ CLDAP) and Kerberos only: no SMB, NetBIOS, RPC, DNS or winbindd.
	server services = ldap, cldap, kdc
	dcerpc endpoint servers = -winreg -srvsvc
	interfaces = $HOST
	bind interfaces only = yes
	private dir = $SMB/private
	state directory = $SMB/state
	cache directory = $SMB/cache
	lock directory = $SMB/lock
	pid directory = $SMB/run
	binddns dir = $SMB/bind-dns
	ncalrpc dir = $SMB/run/ncalrpc
	winbindd socket directory = $SMB/run/winbindd
	log file = $LOGS/samba.log
	logging = file
	log level = 1
	max log size = 0
	# Plain ldap:// simple binds for the tests (LDAPS/StartTLS on 636/389 too).
	ldap server require strong auth = no
	tls enabled = yes
	tls keyfile = $TLS/server.key
	tls certfile = $TLS/server.pem
	tls cafile = $STATE_DIR/ca.pem
	idmap_ldb:use rfc2307 = yes
	# Throwaway data: no fsync on each commit (a modify took ~60 ms with it, ~1.5 ms without).
	ldb:nosync = true
CONF

# --- seed -----------------------------------------------------------------------------
if (( AD_SEED_USERS > 0 && seeded == 0 )); then
    "$HERE/seed.py" --count "$AD_SEED_USERS" --base-dn "$AD_BASE_DN" --realm "$AD_REALM" \
        --ldb "$SMB/private/sam.ldb" >"$LOGS/seed.log" 2>&1 ||
        { cat "$LOGS/seed.log" >&2; die "seeding failed"; }
    lap "seed($AD_SEED_USERS)"
    tar --xattrs --xattrs-include='*' --acls -C "$SMB" -cf "$SEEDED_CACHE.tmp.$$" private state
    mv -f "$SEEDED_CACHE.tmp.$$" "$SEEDED_CACHE"
    echo "$seeded_key" >"$SEEDED_CACHE.key"
    lap "cache-seeded"
fi

# --- start ----------------------------------------------------------------------------
: >"$LOGS/samba.log"
fail() {
    echo "up.sh: $*" >&2
    echo "up.sh: last log lines:" >&2
    tail -n 30 "$LOGS/samba.log" >&2 || true
    "$HERE/down.sh" "$STATE_DIR" >/dev/null 2>&1 || true
    exit 1
}
echo "$STATE_DIR" >"$LAST"
samba -s "$CONF" -D </dev/null >>"$LOGS/samba.log" 2>&1 || fail "samba did not start"
for _ in $(seq 1 200); do
    [[ -s $SMB/run/samba.pid ]] && break
    sleep 0.05
done
[[ -s $SMB/run/samba.pid ]] || fail "samba wrote no pid file"
pid=$(tr -dc '0-9' <"$SMB/run/samba.pid")
echo "$pid" >"$STATE_DIR/samba.pid"

ok=0
for _ in $(seq 1 600); do           # up to 30 s
    [[ -e /proc/$pid ]] || fail "samba exited"
    if ldapsearch -x -H "ldap://$HOST:389" -b '' -s base -o nettimeout=2 highestCommittedUSN \
            >/dev/null 2>&1 && port_open 636; then
        ok=1; break
    fi
    sleep 0.05
done
[[ $ok -eq 1 ]] || fail "samba does not answer LDAP on $HOST:389"
lap start

# --- endpoints ------------------------------------------------------------------------
# Single quotes (printf %q would write DC=connector\,DC=test and Passw0rd-Test\!).
sq() { printf "export %s='%s'\n" "$1" "${2//\'/\'\\\'\'}"; }
{
    sq AD_URL "ldap://$HOST:389"
    sq AD_LDAPS_URL "ldaps://$HOST:636"
    sq AD_CA_FILE "$STATE_DIR/ca.pem"
    sq AD_BASE_DN "$AD_BASE_DN"
    sq AD_STAFF_OU "$AD_STAFF_OU"
    sq AD_BIND_DN "$AD_BIND_DN"
    sq AD_BIND_PASSWORD "$AD_SVC_PASSWORD"
    sq AD_ADMIN_DN "$AD_ADMIN_DN"
    sq AD_ADMIN_PASSWORD "$AD_ADMIN_PASSWORD"
    sq AD_REALM "$AD_REALM"
    sq AD_DOMAIN "$AD_DOMAIN"
    sq AD_SEED_USERS "$AD_SEED_USERS"
    sq AD_STATE_DIR "$STATE_DIR"
} >"$STATE_DIR/env.sh"
cat "$STATE_DIR/env.sh"
echo "up.sh: samba running from $STATE_DIR (pid $pid); ${timings[*]}" >&2
