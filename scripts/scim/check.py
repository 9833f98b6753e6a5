#!/usr/bin/env python3
"""Self-test of the SCIM 2.0 test server started by scripts/scim/up.sh.

    scripts/scim/check.py [STATE_DIR] [--compliance]

Endpoints come from STATE_DIR/env.sh when STATE_DIR is given, else from the
SCIM_* environment variables (after `source STATE_DIR/env.sh`), else from
${SCIM_STATE_DIR:-/tmp/push-connector-scim}/env.sh.  Standard library only.
Every run uses a fresh tenant (/<tenant>/v2), so runs never see each other's
users.  Prints one line per check; exits 0 only if every check passes.

--compliance also runs scim2-cli's compliance suite (`scim2 ... test`, from
SCIM_VENV) against another fresh tenant and reports its SUCCESS/ERROR counts.
That line is informational: it never fails the self-test.  Against this server
with the NHS extension the suite reports 3 errors, all from one tester quirk:
PATCH "add" to a multi-valued extension attribute (clinicalRoles,
clinicalSpecialities, workAreas) expects replacement, while the server appends
as RFC 7644 section 3.5.2.1 says.
"""

import http.client
import json
import os
import re
import shlex
import subprocess
import sys
import time
import uuid
from urllib.parse import quote

KEYS = ("SCIM_URL", "SCIM_TOKEN")
CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
NHS = "urn:ietf:params:scim:schemas:extension:nhs:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
BULK_REQ = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"


def parse_env_file(path):
    env = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            words = shlex.split(line, comments=True)
            if len(words) == 2 and words[0] == "export" and "=" in words[1]:
                k, v = words[1].split("=", 1)
                env[k] = v
    return env


def load_env(args):
    if args:
        return parse_env_file(os.path.join(args[0], "env.sh"))
    if all(k in os.environ for k in KEYS):
        return dict(os.environ)
    state = os.environ.get("SCIM_STATE_DIR", "/tmp/push-connector-scim")
    return parse_env_file(os.path.join(state, "env.sh"))


ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
COMPLIANCE = "--compliance" in sys.argv[1:]
ENV = load_env(ARGS)
missing = [k for k in KEYS if k not in ENV]
if missing:
    sys.exit(f"check.py: missing {', '.join(missing)}; run scripts/scim/up.sh first")
m = re.fullmatch(r"http://([^:/]+):(\d+)/?", ENV["SCIM_URL"])
if not m:
    sys.exit(f"check.py: SCIM_URL {ENV['SCIM_URL']!r} is not http://HOST:PORT")
HOST, PORT = m.group(1), int(m.group(2))
TOKEN = ENV["SCIM_TOKEN"]
VENV = ENV.get("SCIM_VENV", os.path.expanduser("~/.cache/push-connector/scim-venv"))
TENANT = "check-" + uuid.uuid4().hex[:10]
BASE = f"/{TENANT}/v2"

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
        print(f"{'PASS' if ok else 'FAIL'}  {name:<22} {detail} ({ms:.0f} ms)", flush=True)
        return fn
    return run


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


def req(method, path, body=None, token=True, headers=None):
    """(status, headers dict with lower-case names, parsed JSON or None)."""
    h = {"Accept": "application/scim+json"}
    if token:
        h["Authorization"] = f"Bearer {TOKEN}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/scim+json"
    h.update(headers or {})
    c = http.client.HTTPConnection(HOST, PORT, timeout=10)
    try:
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        raw = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        return r.status, hdrs, (json.loads(raw) if raw.strip() else None)
    finally:
        c.close()


def user(n, ext=None):
    body = {
        "schemas": [CORE, NHS],
        "userName": f"user{n}.{TENANT}@rxx.nhs.uk",
        "externalId": f"EXT-{n}-{uuid.uuid4().hex[:8]}",
        "name": {"givenName": "Ada", "familyName": f"Lovelace{n}"},
        "emails": [{"value": f"ada.lovelace{n}@rxx.nhs.uk", "type": "work", "primary": True}],
        NHS: ext or {"organisation": "RXX", "status": "Active"},
    }
    return body


NHS_ATTRS = {
    "organisation": "RXX",
    "organisationUnit": "Cardiology",
    "clinicalRoles": ["Staff Nurse", "Ward Manager"],
    "clinicalSpecialities": ["Cardiology"],
    "workAreas": ["Ward 7", "CCU"],
    "pager": "1234",
    "fax": "0113 496 0001",
    "notes": "created by scripts/scim/check.py",
    "status": "Active",
}
state = {}

# ---------------------------------------------------------------------------


@check("401 without token")
def _():
    st, _, body = req("GET", f"{BASE}/Users", token=False)
    expect(st == 401, f"status {st}")
    st2, _, _ = req("GET", f"{BASE}/Users", token=False, headers={"Authorization": "Bearer wrong"})
    expect(st2 == 401, f"wrong token: status {st2}")
    return f"no token -> {st}, wrong token -> {st2}"


@check("ServiceProviderConfig")
def _():
    st, _, body = req("GET", f"{BASE}/ServiceProviderConfig")
    expect(st == 200, f"status {st}")
    feats = {k: body[k]["supported"] for k in ("patch", "bulk", "filter", "etag", "sort")}
    expect(all(feats.values()), f"unsupported: {feats}")
    schemes = [s.get("type") for s in body.get("authenticationSchemes", [])]
    expect("oauthbearertoken" in schemes, f"authenticationSchemes {schemes}")
    return (f"patch/bulk(max {body['bulk']['maxOperations']} ops)/filter(max "
            f"{body['filter']['maxResults']})/etag/sort supported, auth {schemes}")


@check("Schemas + ResourceType")
def _():
    st, _, body = req("GET", f"{BASE}/Schemas")
    expect(st == 200, f"status {st}")
    ids = [s["id"] for s in body["Resources"]]
    for want in (CORE, "urn:ietf:params:scim:schemas:core:2.0:Group", ENTERPRISE, NHS):
        expect(want in ids, f"{want} missing from /Schemas ({ids})")
    st, _, ext = req("GET", f"{BASE}/Schemas/{NHS}")
    expect(st == 200, f"/Schemas/{NHS}: status {st}")
    attrs = {a["name"]: a for a in ext["attributes"]}
    expect(set(attrs) == set(NHS_ATTRS), f"extension attributes {sorted(attrs)}")
    expect(attrs["clinicalRoles"]["multiValued"], "clinicalRoles not multi-valued")
    canon = attrs["status"].get("canonicalValues")
    expect(canon == ["Pending", "Active", "Leaver", "Disabled", "Deleted"], f"status canonicalValues {canon}")
    st, _, rt = req("GET", f"{BASE}/ResourceTypes/User")
    expect(st == 200, f"/ResourceTypes/User: status {st}")
    exts = [e["schema"] for e in rt.get("schemaExtensions", [])]
    expect(NHS in exts and ENTERPRISE in exts, f"User schemaExtensions {exts}")
    return f"{len(ids)} schemas incl. NHS extension ({len(attrs)} attributes), declared on User"


@check("create user")
def _():
    body = user(1, dict(NHS_ATTRS))
    body["schemas"].append(ENTERPRISE)
    body[ENTERPRISE] = {"employeeNumber": "E0001", "department": "Cardiology"}
    st, h, got = req("POST", f"{BASE}/Users", body)
    expect(st == 201, f"status {st}: {got}")
    expect(got["externalId"] == body["externalId"], f"externalId {got.get('externalId')}")
    expect(got.get(NHS) == NHS_ATTRS, f"extension came back as {got.get(NHS)}")
    expect(got[ENTERPRISE]["employeeNumber"] == "E0001", "enterprise extension lost")
    expect(h.get("etag") and h["etag"] == got["meta"]["version"], f"ETag {h.get('etag')} vs meta.version")
    expect(h.get("location", "").endswith(f"{BASE}/Users/{got['id']}"), f"Location {h.get('location')}")
    state.update(id=got["id"], ext=body["externalId"], etag=h["etag"], userName=body["userName"])
    return f"201 id={got['id']} ETag {h['etag']} in tenant /{TENANT}"


@check("filter externalId eq")
def _():
    req("POST", f"{BASE}/Users", user(2))   # a second user the filter must not return
    st, _, body = req("GET", f"{BASE}/Users?filter=" + quote(f'externalId eq "{state["ext"]}"'))
    expect(st == 200, f"status {st}")
    expect(LIST in body["schemas"], f"schemas {body['schemas']}")
    expect(body["totalResults"] == 1, f"totalResults {body['totalResults']}")
    expect(body["Resources"][0]["id"] == state["id"], "wrong user returned")
    st, _, body2 = req("GET", f"{BASE}/Users?filter=" + quote(f'{NHS}:workAreas eq "CCU"'))
    expect(st == 200 and body2["totalResults"] == 1, f"extension filter: {st} {body2 and body2.get('totalResults')}")
    st, _, all_ = req("GET", f"{BASE}/Users")
    return f"1 of {all_['totalResults']} users by externalId; extension filter workAreas eq \"CCU\" -> 1"


@check("PATCH replace")
def _():
    patch = {"schemas": [PATCH_OP], "Operations": [
        {"op": "replace", "path": "title", "value": "Senior Staff Nurse"},
        {"op": "replace", "path": f"{NHS}:status", "value": "Leaver"},
        {"op": "replace", "path": f"{NHS}:workAreas", "value": ["Ward 9"]},
    ]}
    st_patch, h, body = req("PATCH", f"{BASE}/Users/{state['id']}", patch)
    expect(st_patch in (200, 204), f"status {st_patch}: {body}")
    st, h, got = req("GET", f"{BASE}/Users/{state['id']}")
    expect(st == 200, f"GET status {st}")
    expect(got.get("title") == "Senior Staff Nurse", f"title {got.get('title')}")
    expect(got[NHS]["status"] == "Leaver", f"status {got[NHS]['status']}")
    expect(got[NHS]["workAreas"] == ["Ward 9"], f"workAreas {got[NHS]['workAreas']}")
    expect(h["etag"] != state["etag"], "ETag did not change")
    state.update(old_etag=state["etag"], etag=h["etag"])
    return f"PATCH -> {st_patch}{' (no body)' if body is None else ''}; ETag {state['old_etag']} -> {h['etag']}"


@check("If-Match stale -> 412")
def _():
    patch = {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "title", "value": "X"}]}
    st, _, body = req("PATCH", f"{BASE}/Users/{state['id']}", patch, headers={"If-Match": state["old_etag"]})
    expect(st == 412, f"stale PATCH: status {st}: {body}")
    st_put, _, _ = req("PUT", f"{BASE}/Users/{state['id']}",
                       {"schemas": [CORE], "userName": state["userName"]},
                       headers={"If-Match": state["old_etag"]})
    expect(st_put == 412, f"stale PUT: status {st_put}")
    st_ok, h, _ = req("PATCH", f"{BASE}/Users/{state['id']}", patch, headers={"If-Match": state["etag"]})
    expect(st_ok in (200, 204), f"current If-Match: status {st_ok}")
    st_nm, _, _ = req("GET", f"{BASE}/Users/{state['id']}", headers={"If-None-Match": h.get("etag", "")})
    return f"stale PATCH/PUT -> 412/412, current ETag -> {st_ok}, GET If-None-Match current -> {st_nm}"


@check("Bulk")
def _():
    u = user(3)
    bulk = {"schemas": [BULK_REQ], "Operations": [
        {"method": "POST", "path": "/Users", "bulkId": "b1", "data": u},
        {"method": "PATCH", "path": "/Users/bulkId:b1", "data": {"schemas": [PATCH_OP], "Operations": [
            {"op": "replace", "path": f"{NHS}:status", "value": "Disabled"}]}},
        {"method": "DELETE", "path": f"/Users/{state['id']}"},
    ]}
    st, _, body = req("POST", f"{BASE}/Bulk", bulk)
    expect(st == 200, f"status {st}: {body}")
    codes = [op["status"] for op in body["Operations"]]
    expect([str(c) for c in codes] == ["201", "204", "204"] or
           [str(c) for c in codes] == ["201", "200", "204"], f"operation statuses {codes}")
    st, _, found = req("GET", f"{BASE}/Users?filter=" + quote(f'externalId eq "{u["externalId"]}"'))
    expect(found["totalResults"] == 1, f"bulk-created user not found ({found['totalResults']})")
    expect(found["Resources"][0][NHS]["status"] == "Disabled", "bulk PATCH via bulkId not applied")
    st, _, _ = req("GET", f"{BASE}/Users/{state['id']}")
    expect(st == 404, f"deleted user still there ({st})")
    return f"POST+PATCH(bulkId)+DELETE -> {codes}"


if COMPLIANCE:
    @check("scim2 test (info)")
    def _():
        scim2 = os.path.join(VENV, "bin", "scim2")
        tenant = "compliance-" + uuid.uuid4().hex[:8]
        env = dict(os.environ, SCIM_CLI_HEADERS=f"Authorization: Bearer {TOKEN}")
        p = subprocess.run([scim2, "--url", f"http://{HOST}:{PORT}/{tenant}/v2", "test"],
                           env=env, capture_output=True, text=True, timeout=300)
        out = p.stdout + p.stderr
        counts = {}
        for line in out.splitlines():
            w = line.split(" ", 1)[0]
            if w.isupper() and w.isalpha() and line[len(w):len(w) + 1] == " ":
                counts[w] = counts.get(w, 0) + 1
        expect(counts, f"no results parsed (exit {p.returncode}): {out[-300:]!r}")
        errs = sorted({line.split(" ", 1)[1] for line in out.splitlines()
                       if line.startswith(("ERROR ", "CRITICAL "))})
        return (f"exit {p.returncode}: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) +
                (f" (failing: {', '.join(errs)})" if errs else ""))

passed = sum(results)
print(f"{passed} passed, {len(results) - passed} failed")
sys.exit(0 if passed == len(results) else 1)
