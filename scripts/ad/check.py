#!/usr/bin/env python3
"""Self-test of the Samba AD DC started by scripts/ad/up.sh.

    scripts/ad/check.py [STATE_DIR]

Endpoints come from STATE_DIR/env.sh when STATE_DIR is given, else from the
AD_* environment variables (after `source STATE_DIR/env.sh`), else from
${AD_STATE_DIR:-/tmp/push-connector-ad}/env.sh.  Uses OpenLDAP's ldapsearch /
ldapmodify / ldapadd / ldapdelete (ldap-utils) and the Python standard library.
Binds as the service account (AD_BIND_DN) unless a check says otherwise.
Changes one user's `info` and adds/deletes one user of its own per run.
Prints one line per check; exits 0 only if every check passes.
"""

import base64
import os
import re
import shlex
import subprocess
import sys
import time
import uuid

KEYS = ("AD_URL", "AD_BASE_DN", "AD_BIND_DN", "AD_BIND_PASSWORD", "AD_ADMIN_DN", "AD_ADMIN_PASSWORD")
DIRSYNC = "1.2.840.113556.1.4.841"
SHOW_DELETED = "1.2.840.113556.1.4.417"


def parse_env_file(path):
    env = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            words = shlex.split(line, comments=True)
            if len(words) == 2 and words[0] == "export" and "=" in words[1]:
                k, v = words[1].split("=", 1)
                env[k] = v
    return env


def load_env():
    if len(sys.argv) > 1:
        return parse_env_file(os.path.join(sys.argv[1], "env.sh"))
    if all(k in os.environ for k in KEYS):
        return dict(os.environ)
    state = os.environ.get("AD_STATE_DIR", "/tmp/push-connector-ad")
    return parse_env_file(os.path.join(state, "env.sh"))


ENV = load_env()
missing = [k for k in KEYS if k not in ENV]
if missing:
    sys.exit(f"check.py: missing {', '.join(missing)}; run scripts/ad/up.sh first")
URL = ENV["AD_URL"]
BASE = ENV["AD_BASE_DN"]
OU = ENV.get("AD_STAFF_OU", f"OU=Staff,{BASE}")
SVC = (ENV["AD_BIND_DN"], ENV["AD_BIND_PASSWORD"])
ADMIN = (ENV["AD_ADMIN_DN"], ENV["AD_ADMIN_PASSWORD"])
SEEDED = int(ENV.get("AD_SEED_USERS", "1000"))

results = []


def check(name):
    def run(fn):
        t0 = time.monotonic()
        try:
            detail = fn() or ""
            ok = True
        except Exception as e:  # noqa: BLE001 -- report any failure as a failed check
            detail = f"{type(e).__name__}: {e}"
            ok = False
        ms = (time.monotonic() - t0) * 1000
        results.append(ok)
        print(f"{'PASS' if ok else 'FAIL'}  {name:<24} {detail} ({ms:.0f} ms)", flush=True)
        return fn
    return run


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


def ldap(tool, args, who=SVC, url=URL, stdin=None, env=None):
    """Run an ldap-utils tool with a simple bind; the password goes through a
    pipe (-y /dev/fd/N), never on the command line.  Returns (rc, out, err)."""
    cmd = [tool, "-x", "-H", url, "-o", "nettimeout=10"]
    fds = ()
    r = None
    if who is not None:
        r, w = os.pipe()
        os.write(w, who[1].encode())
        os.close(w)
        cmd += ["-D", who[0], "-y", f"/dev/fd/{r}"]
        fds = (r,)
    if tool == "ldapsearch":
        cmd += ["-LLL", "-o", "ldif-wrap=no"]
    try:
        p = subprocess.run(cmd + args, input=stdin, capture_output=True, text=True, timeout=60,
                           pass_fds=fds, env=dict(os.environ, **(env or {})))
    finally:
        if r is not None:
            os.close(r)
    return p.returncode, p.stdout, p.stderr


def entries(ldif):
    """Parse `ldapsearch -LLL -o ldif-wrap=no` output: list of {attr: [values]}
    (base64 values decoded to bytes)."""
    out = []
    for block in ldif.strip().split("\n\n"):
        e = {}
        for line in block.splitlines():
            if not line or line.startswith("#"):
                continue
            if ":: " in line:
                k, v = line.split(":: ", 1)
                v = base64.b64decode(v)
            elif ": " in line:
                k, v = line.split(": ", 1)
            else:
                k, v = line.rstrip(":"), ""
            e.setdefault(k, []).append(v)
        if e:
            out.append(e)
    return out


def search(base, flt="(objectClass=*)", attrs=(), scope="sub", who=SVC, controls=(), url=URL, env=None):
    args = ["-b", base, "-s", scope]
    for c in controls:
        args += ["-E", c]
    rc, out, err = ldap("ldapsearch", args + [flt] + list(attrs), who=who, url=url, env=env)
    expect(rc == 0, f"ldapsearch exit {rc}: {err.strip()[:300]}")
    return [e for e in entries(out) if "dn" in e]


def root_dse(attrs=("highestCommittedUSN",)):
    es = search("", scope="base", attrs=attrs, who=None)
    expect(len(es) == 1, "no rootDSE")
    return es[0]


state = {}

# ---------------------------------------------------------------------------


@check("rootDSE (anonymous)")
def _():
    e = root_dse(("highestCommittedUSN", "defaultNamingContext", "supportedControl", "dnsHostName"))
    expect(e["defaultNamingContext"] == [BASE], f"defaultNamingContext {e.get('defaultNamingContext')}")
    expect(DIRSYNC in e.get("supportedControl", []), "DirSync control not advertised")
    usn = int(e["highestCommittedUSN"][0])
    state["usn0"] = usn
    return f"{URL} {e['dnsHostName'][0]}, defaultNamingContext {BASE}, highestCommittedUSN {usn}, DirSync advertised"


@check("bad password refused")
def _():
    rc, _, err = ldap("ldapsearch", ["-b", "", "-s", "base"], who=(SVC[0], "wrong-" + uuid.uuid4().hex[:6]))
    expect(rc == 49, f"exit {rc}: {err.strip()[:200]}")
    return "svc-connector with a wrong password -> 49 invalidCredentials"


@check("count seeded users")
def _():
    es = search(OU, "(&(objectClass=user)(employeeID=*))", ["employeeID"], controls=["pr=500/noprompt"])
    seeded = [e for e in es if re.fullmatch(r"E\d{7}", e["employeeID"][0])]
    expect(len(seeded) == SEEDED, f"{len(seeded)} seeded users under {OU}, expected {SEEDED}")
    return f"{len(seeded)} users under {OU} as svc-connector (paged, 500 per page)"


@check("seeded attributes")
def _():
    flt = "(employeeID=E0000001)"
    if SEEDED == 0:
        # Nothing seeded: add one user like seed.py's as admin, to have one to read and write.
        cn = "check-" + uuid.uuid4().hex[:8]
        ldif = (f"dn: CN={cn},{OU}\nobjectClass: user\nsAMAccountName: {cn}\nuserAccountControl: 544\n"
                "givenName: Alan\nsn: Lovelace\nmail: alan.lovelace1@rxx.nhs.uk\ntitle: Ward Manager\n"
                "telephoneNumber: 0113 496 0001\nmobile: 07911 000001\ndepartment: Cardiology\n"
                f"employeeID: C{cn[-8:]}\nmsDS-cloudExtensionAttribute1: RXX\n")
        rc, _, err = ldap("ldapadd", [], who=ADMIN, stdin=ldif)
        expect(rc == 0, f"ldapadd as admin: exit {rc}: {err.strip()[:300]}")
        flt = f"(sAMAccountName={cn})"
    attrs = ["givenName", "sn", "mail", "title", "telephoneNumber", "mobile", "department",
             "employeeID", "msDS-cloudExtensionAttribute1", "objectGUID", "uSNChanged", "userAccountControl"]
    es = search(OU, flt, attrs)
    expect(len(es) == 1, f"{len(es)} entries with {flt}")
    e = es[0]
    for a in attrs:
        expect(a in e, f"{a} missing on {e['dn'][0]}")
    expect(re.fullmatch(r"[a-z-]+\.[a-z-]+1@rxx\.nhs\.uk", e["mail"][0]), f"mail {e['mail'][0]}")
    expect(re.fullmatch(r"0113 496 \d{4}", e["telephoneNumber"][0]), f"telephoneNumber {e['telephoneNumber'][0]}")
    expect(re.fullmatch(r"07911 0\d{5}", e["mobile"][0]), f"mobile {e['mobile'][0]}")
    expect(e["msDS-cloudExtensionAttribute1"] == ["RXX"], f"ODS {e['msDS-cloudExtensionAttribute1']}")
    guid = e["objectGUID"][0]
    expect(isinstance(guid, bytes) and len(guid) == 16, f"objectGUID {guid!r}")
    state.update(dn=e["dn"][0], usn=int(e["uSNChanged"][0]), employeeID=e["employeeID"][0])
    g = uuid.UUID(bytes_le=guid)
    return (f"{e['dn'][0]}: {e['mail'][0]}, {e['title'][0]}, {e['telephoneNumber'][0]}, "
            f"{e['mobile'][0]}, ODS {e['msDS-cloudExtensionAttribute1'][0]}, objectGUID {g}, "
            f"uSNChanged {state['usn']}")


@check("write info (allowed)")
def _():
    expect("dn" in state, "no seeded user to write to")
    text = f"push-connector check {uuid.uuid4().hex[:8]}"
    rc, _, err = ldap("ldapmodify", [], stdin=f"dn: {state['dn']}\nchangetype: modify\nreplace: info\ninfo: {text}\n")
    expect(rc == 0, f"ldapmodify exit {rc}: {err.strip()[:300]}")
    e = search(state["dn"], scope="base", attrs=["info", "uSNChanged"])[0]
    expect(e["info"] == [text], f"info reads back as {e.get('info')}")
    usn = int(e["uSNChanged"][0])
    expect(usn > state["usn"] and usn > state["usn0"], f"uSNChanged {state['usn']} -> {usn}")
    state["usn_written"] = usn
    rc, _, err = ldap("ldapmodify", [], stdin=f"dn: {state['dn']}\nchangetype: modify\nreplace: employeeID\n"
                                               f"employeeID: {state['employeeID']}\n-\nreplace: mail\nmail: "
                                               f"{search(state['dn'], scope='base', attrs=['mail'])[0]['mail'][0]}\n")
    expect(rc == 0, f"write of employeeID/mail: exit {rc}: {err.strip()[:300]}")
    return f"info, employeeID, mail written as svc-connector; uSNChanged {state['usn']} -> {usn}"


@check("write title (refused)")
def _():
    expect("dn" in state, "no seeded user")
    rc, _, err = ldap("ldapmodify", [], stdin=f"dn: {state['dn']}\nchangetype: modify\nreplace: title\ntitle: X\n")
    expect(rc == 50, f"expected 50 insufficientAccessRights, got {rc}: {err.strip()[:200]}")
    return "title as svc-connector -> 50 insufficientAccessRights"


@check("highestCommittedUSN")
def _():
    usn = int(root_dse()["highestCommittedUSN"][0])
    expect(usn >= state.get("usn_written", 0) > state["usn0"], f"rootDSE {state['usn0']} -> {usn}")
    es = search(OU, f"(uSNChanged>={state['usn0'] + 1})", ["uSNChanged"])
    dns = [e["dn"][0] for e in es]
    expect(state["dn"] in dns, f"uSNChanged>={state['usn0'] + 1} does not return the written user ({dns})")
    return f"{state['usn0']} -> {usn}; (uSNChanged>={state['usn0'] + 1}) under the OU -> {len(dns)} entr{'y' if len(dns) == 1 else 'ies'}"


@check("DirSync (svc-connector)")
def _():
    rc, out, err = ldap("ldapsearch", ["-b", BASE, "-s", "sub", "-E", "!dirSync=0/0",
                                       f"(&(objectClass=user)(employeeID=*))", "employeeID"])
    expect(rc == 0, f"ldapsearch exit {rc}: {err.strip()[:300]}")
    n = len([e for e in entries(out) if "dn" in e])
    m = re.search(r"^# cookie:: (\S+)", out, re.M)
    expect(m, "no DirSync cookie in the response")
    expect(n >= max(SEEDED, 1), f"DirSync returned {n} users")
    return f"{n} users and a {len(base64.b64decode(m.group(1)))}-byte cookie (Replicating Directory Changes works)"


@check("tombstone visible")
def _():
    cn = "check-" + uuid.uuid4().hex[:8]
    dn = f"CN={cn},{OU}"
    rc, _, err = ldap("ldapadd", [], who=ADMIN, stdin=f"dn: {dn}\nobjectClass: user\nsAMAccountName: {cn[:20]}\n"
                                                      f"userAccountControl: 544\nemployeeID: X{cn[-8:]}\n")
    expect(rc == 0, f"ldapadd as admin: exit {rc}: {err.strip()[:300]}")
    guid = search(dn, scope="base", attrs=["objectGUID"])[0]["objectGUID"][0]
    rc, _, err = ldap("ldapdelete", [dn], who=ADMIN)
    expect(rc == 0, f"ldapdelete as admin: exit {rc}: {err.strip()[:300]}")
    es = search(f"CN=Deleted Objects,{BASE}", f"(&(isDeleted=TRUE)(sAMAccountName={cn[:20]}))",
                ["isDeleted", "objectGUID", "lastKnownParent"], controls=[f"!{SHOW_DELETED}"], scope="one")
    expect(len(es) == 1, f"{len(es)} tombstones found as svc-connector")
    expect(es[0]["objectGUID"][0] == guid, "tombstone objectGUID differs")
    return f"admin added+deleted {cn}; svc-connector sees its tombstone (same objectGUID) with show-deleted"


@check("LDAPS + StartTLS")
def _():
    ca = ENV.get("AD_CA_FILE")
    expect(ca and os.path.exists(ca), f"AD_CA_FILE {ca} missing")
    tls_env = {"LDAPTLS_CACERT": ca, "LDAPTLS_REQCERT": "demand"}
    url = ENV.get("AD_LDAPS_URL", "ldaps://127.0.0.1:636")
    search("", scope="base", attrs=["highestCommittedUSN"], url=url, env=tls_env)
    rc, _, err = ldap("ldapsearch", ["-ZZ", "-b", "", "-s", "base", "highestCommittedUSN"], env=tls_env)
    expect(rc == 0, f"StartTLS: exit {rc}: {err.strip()[:300]}")
    # Without the test CA the certificate must be refused.
    rc, _, err = ldap("ldapsearch", ["-b", "", "-s", "base"], url=url,
                      env={"LDAPTLS_CACERT": "/etc/ssl/certs/ca-certificates.crt", "LDAPTLS_REQCERT": "demand"})
    expect(rc != 0, "certificate accepted without the test CA")
    return f"{url} and StartTLS bind as svc-connector with the test CA; refused without it"


passed = sum(results)
print(f"{passed} passed, {len(results) - passed} failed")
sys.exit(0 if passed == len(results) else 1)
