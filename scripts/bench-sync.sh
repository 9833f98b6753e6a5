#!/usr/bin/env bash
# Directory sync timings (release build) against the real test servers:
#   AD:  a Samba AD DC seeded with N users (scripts/ad), source = OU=Staff;
#   SQL: a PostgreSQL table of N rows with an updated_at trigger (scripts/sql).
# For each source and size it times, with wall time and peak memory of the process:
#   full        the first sync: N accounts created, N portal IDs written back;
#   echo        the next delta: reads back the N entries our write-back touched, plans none;
#   delta-1%    a delta after 1% of the entries were changed at the source;
#   full-again  `sync --full` with nothing changed: N entries read and planned, all Unchanged.
# Usage: scripts/bench-sync.sh [ad|sql|all] [SIZES...]   (default: all 10000 100000)
# Needs root (Samba). Seeding 100,000 AD users takes several minutes the first time.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/push-connector/target}"
which=${1:-all}; shift || true
sizes=("${@:-10000 100000}")
cargo build --release --quiet
bin="$CARGO_TARGET_DIR/release/push-connector"

# One timed command: "<label> <seconds> s, <peak MiB> MiB peak, <summary>".
timed() {
    local label=$1; shift
    local out; out=$(mktemp)
    /usr/bin/time -f '%e %M' -o "$out.time" "$@" >"$out" 2>"$out.err" || true
    read -r secs kib <"$out.time"
    printf '  %-10s %8.2f s  %6d MiB peak  %s\n' "$label" "$secs" "$((kib / 1024))" \
        "$(grep -E '^(source|RXX|took)' "$out" | tr '\n' ' ' | cut -c1-260)"
    if grep -q '^Error\|^error' "$out.err"; then sed 's/^/    /' "$out.err"; fi
    rm -f "$out" "$out.time" "$out.err"
}

# A deployment directory with an empty RXX organisation and one source.
deployment() {
    local dir=$1 source=$2
    cat >"$dir/c.toml" <<TOML
[service]
state_dir = "$dir/state"
[directory]
path = "$dir/directory.sqlite"
[guard]
floor = 100000000
[[organisation]]
code = "RXX"
$source
TOML
    printf 'ID,ExternalSyncID,FirstName,LastName,Email,Organisation,Status\n' >"$dir/seed.csv"
    printf 'P0,X0,Seed,Account,seed.account@nhs.net,RXX,Active\n' >>"$dir/seed.csv"
    (cd "$dir" && "$bin" --config c.toml directory import seed.csv >/dev/null)
}

bench_ad() {
    local n=$1 dir; dir=$(mktemp -d)
    AD_SEED_USERS=$n bash scripts/ad/up.sh >/dev/null
    # shellcheck disable=SC1091
    source "${AD_STATE_DIR:-/tmp/push-connector-ad}/env.sh"
    deployment "$dir" "[[source]]
name = \"ad\"
organisations = [\"RXX\"]
create_accounts = true
[source.ldap]
url = \"$AD_URL\"
tls = \"plain\"
bind_dn = \"$AD_BIND_DN\"
bind_password = \"$AD_BIND_PASSWORD\"
base_dn = \"$AD_STAFF_OU\"
page_size = 1000
[source.map]
FirstName = \"givenName\"
LastName = \"sn\"
JobTitle = \"title\"
OfficePhone = \"telephoneNumber\"
MobilePhone = \"mobile\"
[source.constant]
Organisation = \"RXX\"
[source.write_back]
ID = \"info\""
    echo "AD (Samba), $n users"
    cd "$dir"
    timed full "$bin" --config c.toml sync ad
    timed echo "$bin" --config c.toml sync ad
    # 1% of the users get a new job title, as the administrator.
    ldapsearch -x -LLL -o ldif-wrap=no -H "$AD_URL" -D "$AD_ADMIN_DN" -w "$AD_ADMIN_PASSWORD" -b "$AD_STAFF_OU" \
        -E pr=1000/noprompt '(objectClass=user)' dn 2>/dev/null |
        awk -v every=100 '/^dn: / { if (n++ % every == 0) print }' |
        sed 's/$/\nchangetype: modify\nreplace: title\ntitle: Ward Manager\n/' |
        ldapmodify -x -H "$AD_URL" -D "$AD_ADMIN_DN" -w "$AD_ADMIN_PASSWORD" >/dev/null
    timed delta-1% "$bin" --config c.toml sync ad
    timed full-again "$bin" --config c.toml sync ad --full
    # The floors, in the same run: the OpenLDAP tools reading the same entries (paged, the
    # mapped attributes), and making as many one-attribute modifies, one at a time.
    local t; t=$(mktemp)
    /usr/bin/time -f '%e' -o "$t" ldapsearch -x -LLL -o ldif-wrap=no -H "$AD_URL" -D "$AD_BIND_DN" \
        -w "$AD_BIND_PASSWORD" -b "$AD_STAFF_OU" -E pr=1000/noprompt '(objectClass=user)' \
        objectGUID uSNChanged givenName sn title telephoneNumber mobile info >/dev/null
    printf '  %-10s %8.2f s  (ldapsearch of every entry, paged)\n' floor-read "$(cat "$t")"
    ldapsearch -x -LLL -o ldif-wrap=no -H "$AD_URL" -D "$AD_ADMIN_DN" -w "$AD_ADMIN_PASSWORD" -b "$AD_STAFF_OU" \
        -E pr=1000/noprompt '(objectClass=user)' dn 2>/dev/null | grep '^dn: ' |
        sed 's/$/\nchangetype: modify\nreplace: description\ndescription: floor\n/' >"$t.ldif"
    /usr/bin/time -f '%e' -o "$t" ldapmodify -x -H "$AD_URL" -D "$AD_ADMIN_DN" \
        -w "$AD_ADMIN_PASSWORD" -f "$t.ldif" >/dev/null
    printf '  %-10s %8.2f s  (ldapmodify, %d one-attribute modifies, one at a time)\n' \
        floor-write "$(cat "$t")" "$(grep -c '^dn: ' "$t.ldif")"
    rm -f "$t" "$t.ldif"
    cd - >/dev/null
    bash scripts/ad/down.sh >/dev/null
    rm -rf "$dir"
}

bench_sql() {
    local n=$1 dir; dir=$(mktemp -d)
    bash scripts/sql/up.sh >/dev/null
    # shellcheck disable=SC1091
    source "${SQL_STATE_DIR:-/tmp/push-connector-sql}/env.sh"
    local table="bench_staff_$n"
    psql "$PG_URL" -q -v ON_ERROR_STOP=1 <<SQL
DROP TABLE IF EXISTS $table;
CREATE TABLE $table (
    staff_no text PRIMARY KEY,
    first_name text NOT NULL,
    last_name text NOT NULL,
    job_title text,
    phone text,
    portal_id text,
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX ON $table (updated_at);
INSERT INTO $table (staff_no, first_name, last_name, job_title, phone)
SELECT 'S' || lpad(i::text, 7, '0'), 'Person',
       'Name' || translate(lpad(i::text, 7, '0'), '0123456789', 'abcdefghij'),
       'Clerk', '0113 496 ' || lpad((i % 10000)::text, 4, '0')
FROM generate_series(1, $n) AS i;
CREATE OR REPLACE FUNCTION ${table}_touch() RETURNS trigger AS \$\$
BEGIN NEW.updated_at := clock_timestamp(); RETURN NEW; END \$\$ LANGUAGE plpgsql;
CREATE TRIGGER ${table}_touch BEFORE UPDATE ON $table FOR EACH ROW EXECUTE FUNCTION ${table}_touch();
SQL
    deployment "$dir" "[[source]]
name = \"hr\"
organisations = [\"RXX\"]
create_accounts = true
[source.sql]
url = \"$PG_URL\"
table = \"$table\"
anchor = \"staff_no\"
change_column = \"updated_at\"
[source.map]
FirstName = \"first_name\"
LastName = \"last_name\"
JobTitle = \"job_title\"
OfficePhone = \"phone\"
ID = \"portal_id\"
[source.constant]
Organisation = \"RXX\"
[source.write_back]
ID = \"portal_id\""
    echo "SQL (PostgreSQL), $n rows"
    cd "$dir"
    timed full "$bin" --config c.toml sync hr
    timed echo "$bin" --config c.toml sync hr
    psql "$PG_URL" -q -c "UPDATE $table SET job_title = 'Ward Manager' WHERE right(staff_no, 2) = '00'"
    timed delta-1% "$bin" --config c.toml sync hr
    timed full-again "$bin" --config c.toml sync hr --full
    psql "$PG_URL" -q -c "DROP TABLE $table"
    cd - >/dev/null
    bash scripts/sql/down.sh >/dev/null
    rm -rf "$dir"
}

for n in ${sizes[@]}; do
    case $which in
        ad) bench_ad "$n" ;;
        sql) bench_sql "$n" ;;
        all) bench_ad "$n"; bench_sql "$n" ;;
        *) echo "usage: $0 [ad|sql|all] [SIZES...]" >&2; exit 2 ;;
    esac
done
