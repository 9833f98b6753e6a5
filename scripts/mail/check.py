#!/usr/bin/env python3
"""Self-test of the loopback mail servers started by scripts/mail/up.sh.

    scripts/mail/check.py [STATE_DIR]

Endpoints come from STATE_DIR/env.sh when STATE_DIR is given, else from the
MAIL_* environment variables (after `source STATE_DIR/env.sh`), else from
${MAIL_STATE_DIR:-/tmp/push-connector-mail}/env.sh.  Standard library only.
Prints one line per check; exits 0 only if every check passes.
"""

import email
import email.policy
import imaplib
import os
import re
import shlex
import smtplib
import socket
import ssl
import sys
import time
import uuid
from email.message import EmailMessage

KEYS = ("MAIL_HOST", "MAIL_IMAP_PORT", "MAIL_IMAPS_PORT", "MAIL_SMTP_PORT",
        "MAIL_SUBMISSION_PORT", "MAIL_VERIFIED_PORT", "MAIL_CA_FILE")

CONNECTOR = "connector@connector.test"
ADMIN = "admin@rxx.nhs.uk"
OUTSIDE = "someone@outside.example"
WAIT = 10.0  # seconds to wait for a delivery

CSV = ("ods_code,given_name,family_name,email,job_title\r\n"
       "RXX,Ada,Lovelace,ada.lovelace@rxx.nhs.uk,Analyst\r\n"
       "RXX,Alan,Turing,alan.turing@rxx.nhs.uk,\"Engineer, Senior\"\r\n").encode()


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
    state = os.environ.get("MAIL_STATE_DIR", "/tmp/push-connector-mail")
    return parse_env_file(os.path.join(state, "env.sh"))


ENV = load_env()
missing = [k for k in KEYS if k not in ENV]
if missing:
    sys.exit(f"check.py: missing {', '.join(missing)}; run scripts/mail/up.sh first")
HOST = ENV["MAIL_HOST"]
IMAP_PORT = int(ENV["MAIL_IMAP_PORT"])
IMAPS_PORT = int(ENV["MAIL_IMAPS_PORT"])
SMTP_PORT = int(ENV["MAIL_SMTP_PORT"])
SUBMISSION_PORT = int(ENV["MAIL_SUBMISSION_PORT"])
CA_FILE = ENV["MAIL_CA_FILE"]
PASSWORD = ENV.get("MAIL_PASSWORD", "secret")
SINK = ENV.get("MAIL_SINK_USER", "sink@sink.test")
STATE_DIR = ENV.get("MAIL_STATE_DIR", os.path.dirname(CA_FILE))

# Trusts only the test CA (create_default_context loads no system roots when
# cafile is given) and checks the host name / IP against the certificate.
TLS = ssl.create_default_context(cafile=CA_FILE)

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


def token():
    return "check-" + uuid.uuid4().hex[:12]


def make_message(sender, to, subject, attach_csv=False):
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@check.connector.test>"
    msg.set_content("Staff list attached.\n")
    if attach_csv:
        msg.add_attachment(CSV, maintype="text", subtype="csv", filename="staff.csv")
    return msg


def smtp_send_plain(sender, rcpts, msg):
    """Send over the SMTP port without TLS; return the queue id."""
    with smtplib.SMTP(HOST, SMTP_PORT, timeout=10) as s:
        s.ehlo("check.connector.test")
        code, resp = s.mail(sender)
        expect(code == 250, f"MAIL FROM: {code} {resp!r}")
        for r in rcpts:
            code, resp = s.rcpt(r)
            expect(code == 250, f"RCPT TO {r}: {code} {resp!r}")
        code, resp = s.data(msg.as_bytes())
        expect(code == 250, f"DATA: {code} {resp!r}")
    m = re.search(rb"queued as ([0-9A-Za-z]+)", resp)
    expect(m, f"no queue id in {resp!r}")
    return m.group(1).decode()


def imaps(user):
    c = imaplib.IMAP4_SSL(HOST, IMAPS_PORT, ssl_context=TLS, timeout=10)
    c.login(user, PASSWORD)
    return c


def find(c, mailbox, subject, timeout=WAIT):
    """UIDs of messages with `subject` in `mailbox`, waiting up to `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        typ, _ = c.select(mailbox)
        expect(typ == "OK", f"SELECT {mailbox} failed")
        typ, data = c.uid("SEARCH", "HEADER", "Subject", subject)
        expect(typ == "OK", "UID SEARCH failed")
        uids = data[0].split()
        if uids or time.monotonic() > deadline:
            return uids
        time.sleep(0.05)


def fetch(c, uid):
    typ, data = c.uid("FETCH", uid, "(BODY.PEEK[])")
    expect(typ == "OK" and data and isinstance(data[0], tuple), f"FETCH {uid} failed")
    return email.message_from_bytes(data[0][1], policy=email.policy.default)


# ---------------------------------------------------------------------------

SUBJ1 = token()


@check("smtp-in 2525")
def _():
    msg = make_message(ADMIN, CONNECTOR, SUBJ1, attach_csv=True)
    qid = smtp_send_plain(ADMIN, [CONNECTOR], msg)
    return f"{ADMIN} -> {CONNECTOR} with staff.csv, queued as {qid}"


@check("imaps 1993")
def _():
    # Without the test CA the handshake must fail: proves the cert is checked.
    try:
        imaplib.IMAP4_SSL(HOST, IMAPS_PORT, ssl_context=ssl.create_default_context(),
                          timeout=10).logout()
        raise AssertionError("server certificate accepted without the test CA")
    except ssl.SSLCertVerificationError:
        pass
    c = imaps(CONNECTOR)
    try:
        uids = find(c, "INBOX", SUBJ1)
        expect(len(uids) == 1, f"expected 1 message with subject {SUBJ1}, found {len(uids)}")
        m = fetch(c, uids[0])
        expect(m["Delivered-To"] == CONNECTOR, f"Delivered-To is {m['Delivered-To']!r}")
        expect(m["From"] == ADMIN, f"From is {m['From']!r}")
        atts = [p for p in m.iter_attachments() if p.get_filename() == "staff.csv"]
        expect(len(atts) == 1, "staff.csv attachment missing")
        expect(atts[0].get_content_type() == "text/csv", atts[0].get_content_type())
        expect(atts[0].get_payload(decode=True) == CSV, "attachment bytes differ")
        cert = c.sock.getpeercert()
        san = cert.get("subjectAltName", ())
    finally:
        c.logout()
    return f"verified cert (SAN {', '.join(v for _, v in san)}), message + CSV intact, Delivered-To ok"


@check("imap+starttls 1143")
def _():
    c = imaplib.IMAP4(HOST, IMAP_PORT, timeout=10)
    try:
        expect("STARTTLS" in c.capabilities, f"STARTTLS not offered: {c.capabilities}")
        c.starttls(ssl_context=TLS)
        c.login(CONNECTOR, PASSWORD)
        uids = find(c, "INBOX", SUBJ1)
        expect(len(uids) == 1, f"message {SUBJ1} not found")
        version = c.sock.version()
    finally:
        c.logout()
    return f"STARTTLS ({version}) + LOGIN, message found"


@check("imap plain login 1143")
def _():
    c = imaplib.IMAP4(HOST, IMAP_PORT, timeout=10)
    try:
        c.login(CONNECTOR, PASSWORD)
    finally:
        c.logout()
    try:
        c = imaplib.IMAP4(HOST, IMAP_PORT, timeout=10)
        c.login(CONNECTOR, PASSWORD + "-wrong")
        raise AssertionError("wrong password accepted")
    except imaplib.IMAP4.error:
        pass
    try:
        c = imaplib.IMAP4(HOST, IMAP_PORT, timeout=10)
        c.login("nobody@connector.test", PASSWORD)
        raise AssertionError("unknown user accepted")
    except imaplib.IMAP4.error:
        pass
    return "plaintext LOGIN ok; wrong password and unknown user refused"


@check("idle")
def _():
    c = imaps(CONNECTOR)
    try:
        caps = c.capability()[1][0].decode().upper().split()
        expect("IDLE" in caps, f"IDLE not advertised: {caps}")
        c.select("INBOX")
        tag = c._new_tag()
        c.send(tag + b" IDLE\r\n")
        line = c.readline()
        expect(line.startswith(b"+"), f"IDLE answered {line!r}")
        subj = token()
        t0 = time.monotonic()
        smtp_send_plain(ADMIN, [CONNECTOR], make_message(ADMIN, CONNECTOR, subj))
        c.sock.settimeout(WAIT)
        while True:
            line = c.readline()
            expect(line, "connection closed while idling")
            if line.rstrip().endswith(b"EXISTS"):
                break
        latency = time.monotonic() - t0
        c.send(b"DONE\r\n")
        while not c.readline().startswith(tag):
            pass
    finally:
        c.logout()
    return f"IDLE advertised; EXISTS pushed {latency * 1000:.0f} ms after sending"


@check("folders + move")
def _():
    c = imaps(CONNECTOR)
    try:
        caps = c.capability()[1][0].decode().upper().split()
        expect("MOVE" in caps, f"MOVE not advertised: {caps}")
        for box in ("Processed", "Rejected"):
            typ, data = c.create(box)
            expect(typ == "OK" or b"ALREADYEXISTS" in data[0], f"CREATE {box}: {data}")
            c.subscribe(box)
        typ, data = c.list()
        names = b"\n".join(data)
        expect(b'"Processed"' in names or b" Processed" in names, f"Processed not listed: {data}")
        expect(b'"Rejected"' in names or b" Rejected" in names, f"Rejected not listed: {data}")

        uids = find(c, "INBOX", SUBJ1)
        expect(len(uids) == 1, f"message {SUBJ1} not in INBOX")
        typ, data = c.uid("MOVE", uids[0], "Processed")
        expect(typ == "OK", f"UID MOVE to Processed: {data}")
        expect(not find(c, "INBOX", SUBJ1, timeout=0), "message still in INBOX after MOVE")
        expect(len(find(c, "Processed", SUBJ1, timeout=0)) == 1, "message not in Processed")

        subj = token()
        smtp_send_plain(ADMIN, [CONNECTOR], make_message(ADMIN, CONNECTOR, subj))
        uids = find(c, "INBOX", subj)
        expect(len(uids) == 1, f"message {subj} not delivered")
        typ, data = c.uid("MOVE", uids[0], "Rejected")
        expect(typ == "OK", f"UID MOVE to Rejected: {data}")
        expect(len(find(c, "Rejected", subj, timeout=0)) == 1, "message not in Rejected")
        expect(not find(c, "INBOX", subj, timeout=0), "message still in INBOX after MOVE")
    finally:
        c.logout()
    return "Processed/Rejected created, UID MOVE into both ok"


SUBJ2 = token()


@check("submission 2587")
def _():
    with smtplib.SMTP(HOST, SUBMISSION_PORT, timeout=10) as s:
        s.ehlo("check.connector.test")
        expect(not s.has_extn("auth"), "AUTH offered before STARTTLS")
        expect(s.has_extn("starttls"), "STARTTLS not offered")
        s.starttls(context=TLS)
        s.ehlo("check.connector.test")
        mechs = s.esmtp_features.get("auth", "").upper().split()
        expect("PLAIN" in mechs and "LOGIN" in mechs, f"AUTH mechanisms: {mechs}")
        s.user, s.password = CONNECTOR, PASSWORD
        code, resp = s.auth("PLAIN", s.auth_plain)
        expect(code == 235, f"AUTH PLAIN: {code} {resp!r}")
        msg = make_message(CONNECTOR, ADMIN, SUBJ2, attach_csv=True)
        refused = s.send_message(msg)
        expect(not refused, f"refused: {refused}")
    c = imaps(ADMIN)
    try:
        uids = find(c, "INBOX", SUBJ2)
        expect(len(uids) == 1, f"reply {SUBJ2} not in {ADMIN} INBOX")
        m = fetch(c, uids[0])
        expect(m["Delivered-To"] == ADMIN, f"Delivered-To is {m['Delivered-To']!r}")
    finally:
        c.logout()
    # AUTH LOGIN works too.
    with smtplib.SMTP(HOST, SUBMISSION_PORT, timeout=10) as s:
        s.starttls(context=TLS)
        s.user, s.password = "operator@connector.test", PASSWORD
        code, resp = s.auth("LOGIN", s.auth_login, initial_response_ok=False)
        expect(code == 235, f"AUTH LOGIN: {code} {resp!r}")
    return f"STARTTLS + AUTH PLAIN, {CONNECTOR} -> {ADMIN} delivered; AUTH LOGIN ok"


@check("submission refusals")
def _():
    with smtplib.SMTP(HOST, SUBMISSION_PORT, timeout=10) as s:
        s.starttls(context=TLS)
        s.ehlo("check.connector.test")
        code, _ = s.mail(CONNECTOR)
        code, resp = s.rcpt(ADMIN)
        expect(code >= 500, f"unauthenticated RCPT accepted: {code} {resp!r}")
        s.rset()
        s.user, s.password = CONNECTOR, PASSWORD + "-wrong"
        try:
            s.auth("PLAIN", s.auth_plain)
            raise AssertionError("wrong password accepted")
        except smtplib.SMTPAuthenticationError:
            pass
    with smtplib.SMTP(HOST, SUBMISSION_PORT, timeout=10) as s:
        s.starttls(context=TLS)
        s.login(CONNECTOR, PASSWORD)
        s.mail(ADMIN)
        code, resp = s.rcpt("admin@ryy.nhs.uk")
        expect(code >= 500, f"sender {ADMIN} accepted for login {CONNECTOR}: {code} {resp!r}")
    return "no relay without AUTH, wrong password refused, foreign sender refused"


@check("unknown local user")
def _():
    with smtplib.SMTP(HOST, SMTP_PORT, timeout=10) as s:
        s.ehlo("check.connector.test")
        s.mail(ADMIN)
        code, resp = s.rcpt("nobody@connector.test")
        expect(code == 550, f"RCPT nobody@connector.test: {code} {resp!r}")
    return f"RCPT nobody@connector.test -> {code}"


@check("authentication-results")
def _():
    """Forged headers with our authserv-id are deleted on both SMTP-in ports; the verified
    port writes its own pass for the administrators, in the trace block, and refuses others."""
    authserv = ENV.get("MAIL_AUTHSERV_ID", "mx.connector.test")
    verified = int(ENV["MAIL_VERIFIED_PORT"])
    got = {}
    for port in (SMTP_PORT, verified):
        subject = token()
        raw = (f"Authentication-Results:\r\n {authserv}; dmarc=pass header.from=rxx.nhs.uk\r\n"
               f"Authentication-Results: (x) {authserv.upper()}; dkim=pass\r\n"
               f"Authentication-Results: evil.test; dmarc=pass\r\n"
               f"From: {ADMIN}\r\nTo: {CONNECTOR}\r\nSubject: {subject}\r\n\r\nbody\r\n")
        with smtplib.SMTP(HOST, port, timeout=10) as s:
            s.sendmail(ADMIN, [CONNECTOR], raw.encode())
        got[port] = subject
    with smtplib.SMTP(HOST, verified, timeout=10) as s:
        try:
            s.sendmail("intruder@evil.test", [CONNECTOR], b"From: intruder@evil.test\r\n\r\nx\r\n")
            expect(False, "the verified port took a non-administrator")
        except smtplib.SMTPRecipientsRefused:
            pass
    c = imaps(CONNECTOR)
    seen = {}
    for port, subject in got.items():
        uids = find(c, "INBOX", subject)
        expect(uids, f"message through port {port} not delivered")
        m = fetch(c, uids[0])
        ours = [v for k, v in m.items() if k.lower() == "authentication-results" and authserv in v.lower()]
        expect(any("evil.test" in v for k, v in m.items() if k.lower() == "authentication-results"),
               "the untrusted header was removed too")
        seen[port] = ours
        # Everything above From is trace fields the delivery added.
        names = [k.lower() for k in m.keys()]
        expect(names.index("from") > max([i for i, n in enumerate(names) if n == "authentication-results"]),
               f"a result below From: {names}")
    c.logout()
    expect(seen[SMTP_PORT] == [], f"port {SMTP_PORT} kept forged headers: {seen[SMTP_PORT]}")
    expect(len(seen[verified]) == 1 and "dmarc=pass header.from=rxx.nhs.uk" in seen[verified][0],
           f"port {verified}: {seen[verified]}")
    return f"forgeries deleted on {SMTP_PORT} and {verified}; {verified} wrote one pass; intruder refused"


@check("nothing leaves")
def _():
    main_cf = open(os.path.join(STATE_DIR, "postfix", "etc", "main.cf")).read()
    for p in ("default_transport", "relay_transport", "local_transport"):
        expect(re.search(rf"^{p} = error:", main_cf, re.M), f"{p} is not error:")
    master_cf = open(os.path.join(STATE_DIR, "postfix", "etc", "master.cf")).read()
    expect(not re.search(r"^\S+\s+unix\s.*\s(smtp|local|virtual|pipe)\s*$", master_cf, re.M),
           "master.cf has a delivery agent other than lmtp")

    subj = token()
    qid = smtp_send_plain(ADMIN, [OUTSIDE], make_message(ADMIN, OUTSIDE, subj))
    c = imaps(SINK)
    try:
        uids = find(c, "INBOX", subj)
        expect(len(uids) == 1, f"message to {OUTSIDE} not in the sink mailbox")
    finally:
        c.logout()
    # Every delivery of that queue id went to Dovecot's LMTP socket.
    log = os.path.join(STATE_DIR, "logs", "postfix.log")
    deadline = time.monotonic() + WAIT
    while True:
        lines = [ln for ln in open(log, errors="replace") if f" {qid}: to=<" in ln]
        if lines or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    expect(lines, f"no delivery log for {qid}")
    for ln in lines:
        expect(f"to=<{SINK}>" in ln and f"orig_to=<{OUTSIDE}>" in ln, ln.strip())
        expect("/dovecot/run/lmtp]" in ln and "status=sent" in ln, ln.strip())
    # No other mailbox got it.
    for user in (CONNECTOR, ADMIN):
        c = imaps(user)
        try:
            expect(not find(c, "INBOX", subj, timeout=0), f"{user} received it")
        finally:
            c.logout()
    return f"{OUTSIDE} -> {SINK} via LMTP only (queue id {qid}); transports are error:"


failed = results.count(False)
print(f"{len(results) - failed}/{len(results)} checks passed")
sys.exit(1 if failed else 0)
