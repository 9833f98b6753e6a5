#!/usr/bin/env python3
"""Add N staff users to the test Active Directory (scripts/ad/up.sh).

    scripts/ad/seed.py [--count N] [--start K] [--ou DN] [--ods RXX]
                       [--ldb STATE_DIR/samba/private/sam.ldb | --ldif | [STATE_DIR]]

Users K..K+N-1 (default 1..N, N = $AD_SEED_USERS or 1000) go under
OU=Staff,<base DN>, each with givenName, sn, displayName, mail
(first.lastN@<ods>.nhs.uk), title, telephoneNumber (0113 496 xxxx), mobile
(07911 0xxxxx), department, employeeID (E + 7 digits), an ODS code in
msDS-cloudExtensionAttribute1, sAMAccountName stfNNNNNN and
userPrincipalName stfNNNNNN@<realm>.  They are enabled accounts without a
password (userAccountControl 544: NORMAL_ACCOUNT | PASSWD_NOTREQD): they are
directory entries to sync, not logins.  The values depend only on N, so runs
are reproducible.

Ways to load them:
  (default)  over LDAP with ldapadd, as the domain admin, to the server whose
             env.sh is in STATE_DIR (or from the AD_* environment variables).
  --ldb P    straight into the sam.ldb file P with ldbadd while Samba is NOT
             running (what up.sh does): one transaction in ldb's batch mode, with an
             index cache sized for the count (100,000 users in about 5 minutes;
             see batch_options).
  --ldif     print the LDIF to stdout and load nothing.
Standard library only.
"""

import argparse
import os
import shlex
import subprocess
import sys
import time

GIVEN = ["Ada", "Alan", "Grace", "Mary", "Edward", "Florence", "Joseph", "Elizabeth", "Aneurin",
         "Rosalind", "Nye", "Mary-Jane", "Siobhan", "Oluwaseun", "Priya", "Mohammed", "Wei",
         "Zofia", "Connor", "Aoife", "Chidi", "Fatima", "Gareth", "Ioana"]
SURNAMES = ["Lovelace", "Turing", "Hopper", "Seacole", "Jenner", "Nightingale", "Lister",
            "Garrett", "Bevan", "Franklin", "O'Neill", "Smith-Jones", "Okafor", "Patel",
            "Khan", "Zhang", "Nowak", "Murphy", "Byrne", "Evans", "Williams", "Popescu"]
TITLES = ["Staff Nurse", "Ward Manager", "Consultant Cardiologist", "Healthcare Assistant",
          "Physiotherapist", "Pharmacist", "Radiographer", "Medical Secretary",
          "Foundation Year 1 Doctor", "Specialty Registrar", "Porter", "Matron"]
DEPARTMENTS = ["Cardiology", "Emergency Department", "Radiology", "Pharmacy", "Oncology",
               "Paediatrics", "Estates and Facilities", "Medical Records", "Critical Care",
               "Maternity"]


# ldb options for the one ldbadd transaction of --ldb (what `samba-tool domain join`
# and provisioning use for large loads).  Without them ldbadd slows down as the
# database grows: each add in a transaction opens an index sub-transaction that
# copies, value by value, every index list it touches (objectClass=user,
# objectCategory, OU=Staff's one-level index… hold every seeded user), and the
# in-memory index cache is a hash table of a few hundred buckets that ends up with
# a million keys.  batch_mode:1 drops the sub-transactions (a failed add fails the
# whole load, which seeding wants anyway); transaction_index_cache_size sizes the
# cache (about 20 index keys per user).  The entries written are the same.
def batch_options(count):
    return ["-o", "batch_mode:1", "-o", f"transaction_index_cache_size:{max(10007, 25 * count)}"]


def parse_env_file(path):
    env = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            words = shlex.split(line, comments=True)
            if len(words) == 2 and words[0] == "export" and "=" in words[1]:
                k, v = words[1].split("=", 1)
                env[k] = v
    return env


def ascii_part(s):
    return "".join(c for c in s.lower() if c.isalpha() or c == "-")


def entries(start, count, ou, ods, realm):
    for n in range(start, start + count):
        given = GIVEN[n % len(GIVEN)]
        sn = SURNAMES[(n // len(GIVEN)) % len(SURNAMES)]
        sam = f"stf{n:06d}"
        yield "\n".join([
            f"dn: CN={given} {sn} {n:06d},{ou}",
            "objectClass: user",
            f"cn: {given} {sn} {n:06d}",
            f"sAMAccountName: {sam}",
            f"userPrincipalName: {sam}@{realm.lower()}",
            "userAccountControl: 544",
            f"givenName: {given}",
            f"sn: {sn}",
            f"displayName: {given} {sn}",
            f"mail: {ascii_part(given)}.{ascii_part(sn)}{n}@{ods.lower()}.nhs.uk",
            f"title: {TITLES[n % len(TITLES)]}",
            f"telephoneNumber: 0113 496 {n % 10000:04d}",
            f"mobile: 07911 0{n % 100000:05d}",
            f"department: {DEPARTMENTS[(n // 3) % len(DEPARTMENTS)]}",
            f"employeeID: E{n:07d}",
            f"msDS-cloudExtensionAttribute1: {ods.upper()}",
        ]) + "\n\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("state_dir", nargs="?")
    ap.add_argument("--count", type=int, default=int(os.environ.get("AD_SEED_USERS", "1000")))
    ap.add_argument("--start", type=int, default=1)
    ap.add_argument("--ou")
    ap.add_argument("--base-dn")
    ap.add_argument("--realm")
    ap.add_argument("--ods", default="RXX")
    ap.add_argument("--ldb")
    ap.add_argument("--ldif", action="store_true")
    a = ap.parse_args()
    if a.count < 0 or a.start < 0:
        sys.exit("seed.py: --count and --start must be >= 0")

    env = {}
    if not (a.ldb or a.ldif):
        if a.state_dir:
            env = parse_env_file(os.path.join(a.state_dir, "env.sh"))
        elif "AD_URL" in os.environ:
            env = dict(os.environ)
        else:
            env = parse_env_file(os.path.join(os.environ.get("AD_STATE_DIR", "/tmp/push-connector-ad"), "env.sh"))
    base = a.base_dn or env.get("AD_BASE_DN") or os.environ.get("AD_BASE_DN") or "DC=connector,DC=test"
    realm = a.realm or env.get("AD_REALM") or os.environ.get("AD_REALM") or "CONNECTOR.TEST"
    ou = a.ou or env.get("AD_STAFF_OU") or f"OU=Staff,{base}"

    ldif = "".join(entries(a.start, a.count, ou, a.ods, realm))
    if a.ldif:
        sys.stdout.write(ldif)
        return
    if a.count == 0:
        print("seed.py: nothing to add")
        return

    t0 = time.monotonic()
    if a.ldb:
        cmd = ["ldbadd", *batch_options(a.count), "-H", a.ldb]
        target = a.ldb
    else:
        for k in ("AD_URL", "AD_ADMIN_DN", "AD_ADMIN_PASSWORD"):
            if k not in env:
                sys.exit(f"seed.py: {k} missing; run scripts/ad/up.sh first or give STATE_DIR")
        cmd = ["ldapadd", "-x", "-H", env["AD_URL"], "-D", env["AD_ADMIN_DN"], "-y", "/dev/stdin"]
        # The password goes through a pipe on fd 3, never on the command line.
        r, w = os.pipe()
        os.write(w, env["AD_ADMIN_PASSWORD"].encode())
        os.close(w)
        cmd[-1] = f"/dev/fd/{r}"
        target = env["AD_URL"]
    p = subprocess.run(cmd, input=ldif, text=True, capture_output=True,
                       pass_fds=() if a.ldb else (r,))
    if not a.ldb:
        os.close(r)
    if p.returncode != 0:
        sys.stderr.write(p.stdout[-2000:] + p.stderr[-2000:])
        sys.exit(f"seed.py: {cmd[0]} failed with exit {p.returncode}")
    print(f"seed.py: added {a.count} users under {ou} via {target} in {time.monotonic() - t0:.1f} s")


if __name__ == "__main__":
    main()
