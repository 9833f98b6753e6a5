//! The e-mail connector against real-world mail, through the real test Postfix + Dovecot
//! (`scripts/mail/up.sh`): messages shaped as Outlook, Thunderbird, Apple Mail and Exchange
//! write them, a DSN Postfix itself generates, forwarded files, duplicates, another
//! organisation's file, replies the server refuses (5xx and 4xx), and a soak of 2,000 mixed
//! messages through the long-running service. Endpoints come from `MAIL_*`.

// Test code: a failure is a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "common/mail.rs"]
mod mail;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mail::{
    base64, clean, count, crlf, env, messages, parse, port, quoted_printable, results, runtime,
    send_in, send_with, settle, wait_for,
};
use serde_json::Value;

/// The servers' mailboxes are shared: one test at a time.
static SERVERS: Mutex<()> = Mutex::new(());

const CONNECTOR: &str = "connector@connector.test";
const RXX: &str = "admin@rxx.nhs.uk";
const RYY: &str = "admin@ryy.nhs.uk";
const OPERATOR: &str = "operator@connector.test";

/// A connector deployment reading connector@connector.test over IMAPS and sending through
/// the submission port (STARTTLS + AUTH), sender verification off.
struct Deployment {
    dir: tempfile::TempDir,
}

impl Deployment {
    fn new(organisations: &[(&str, &[&str])]) -> Deployment {
        Deployment::sending_to(organisations, port("MAIL_SUBMISSION_PORT"))
    }

    fn standard() -> Deployment {
        Deployment::new(&[("RXX", &[RXX]), ("RYY", &[RYY])])
    }

    fn sending_to(organisations: &[(&str, &[&str])], smtp_port: u16) -> Deployment {
        let dir = tempfile::tempdir().unwrap();
        let codes = common::root().join("samples/codes");
        let mut toml = format!(
            "[validation]\ntitles = \"{c}/titles.txt\"\nclinical_roles = \"{c}/clinical-roles.txt\"\n\
             clinical_specialities = \"{c}/clinical-specialities.txt\"\nwork_areas = \"{c}/work-areas.txt\"\n\
             [mailbox]\nkind = \"imap\"\nhost = \"{host}\"\nport = {imaps}\ntls = \"tls\"\n\
             ca_file = \"{ca}\"\nuser = \"{CONNECTOR}\"\npoll_seconds = 1\n\
             [outbox]\nkind = \"smtp\"\nhost = \"{host}\"\nport = {smtp_port}\ntls = \"starttls\"\n\
             ca_file = \"{ca}\"\nuser = \"{CONNECTOR}\"\n\
             [mail]\naddress = \"{CONNECTOR}\"\nrequire_dmarc_pass = false\n\
             operators = [\"{OPERATOR}\"]\n",
            c = codes.display(),
            host = env("MAIL_HOST"),
            imaps = port("MAIL_IMAPS_PORT"),
            ca = env("MAIL_CA_FILE"),
        );
        for (code, admins) in organisations {
            let admins: Vec<String> = admins.iter().map(|a| format!("\"{a}\"")).collect();
            toml.push_str(&format!(
                "[[organisation]]\ncode = \"{code}\"\nadministrators = [{}]\n",
                admins.join(", ")
            ));
        }
        std::fs::write(dir.path().join("connector.toml"), toml).unwrap();
        let d = Deployment { dir };
        common::import_samples(d.path());
        d
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn command(&self, args: &[&str]) -> std::process::Command {
        mail::binary(self.path(), args)
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        self.command(args).output().expect("the binary runs")
    }

    /// `run --once` (with `--now`: and the nightly step): its stdout and log.
    fn once(&self, now: bool) -> String {
        mail::once(self.path(), now)
    }

    /// `outbox list --json` (with `--all`: sent and dropped ones too).
    fn outbox(&self, all: bool) -> Vec<Value> {
        let mut args = vec!["outbox", "list", "--json"];
        if all {
            args.push("--all");
        }
        let out = self.run(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout)
            .expect("JSON")
            .as_array()
            .expect("an array")
            .clone()
    }

    fn export(&self) -> String {
        String::from_utf8_lossy(&self.run(&["directory", "export"]).stdout).into_owned()
    }

    /// `validate --json` of these bytes saved as a file named `name`: (rows, valid, refused).
    fn validate(&self, name: &str, bytes: &[u8]) -> (usize, usize, usize) {
        let file = self.path().join(name);
        std::fs::write(&file, bytes).unwrap();
        let out = self.run(&["validate", "--json", file.to_str().unwrap()]);
        let v: Value = serde_json::from_slice(&out.stdout).expect("validate prints JSON");
        let rows = v["rows"].as_array().expect("rows");
        let valid = rows.iter().filter(|r| r["status"] == "valid").count();
        (rows.len(), valid, rows.len() - valid)
    }
}

/// The acknowledgement's counts: (rows read, accepted, refused).
fn ack_counts(text: &str) -> (usize, usize, usize) {
    let number = |label: &str| -> usize {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .unwrap_or_else(|| panic!("no \"{label}\" in {text}"))
            .trim()
            .parse()
            .unwrap()
    };
    (
        number("Rows read:"),
        number("Rows accepted for the nightly run:"),
        number("Rows refused:"),
    )
}

/// A new-format staff list: ExternalSyncID, FirstName, LastName, Organisation, JobTitle,
/// Notes, with CRLF line ends (as Excel saves a CSV).
fn staff_csv(rows: &[[&str; 6]]) -> String {
    let mut csv = String::from("ExternalSyncID,FirstName,LastName,Organisation,JobTitle,Notes\r\n");
    for r in rows {
        csv.push_str(&r.join(","));
        csv.push_str("\r\n");
    }
    csv
}

fn rxx_rows(tag: &str) -> String {
    staff_csv(&[
        [&format!("{tag}1"), "Olivia", "Walsh", "RXX", "Clerk", ""],
        [&format!("{tag}2"), "Priya", "Shah", "RXX", "Porter", ""],
        [&format!("{tag}3"), "Tomás", "Byrne", "RXX", "Cook", ""],
    ])
}

fn ryy_rows(tag: &str) -> String {
    staff_csv(&[
        [&format!("{tag}1"), "Hana", "Kato", "RYY", "Clerk", ""],
        [&format!("{tag}2"), "Idris", "Evans", "RYY", "Porter", ""],
    ])
}

// --- messages as the real clients write them -------------------------------------------------

/// Outlook (Microsoft 365): multipart/mixed → multipart/alternative (text + HTML), the CSV as
/// `application/vnd.ms-excel` in base64, the file name RFC 2231-encoded.
fn outlook(from: &str, id: &str, csv: &[u8]) -> Vec<u8> {
    let b = "_004_DB9PR02MB73211C0A8F2B4D1E9A3F7C41DB9PR02MB7321eurp_";
    let a = "_000_DB9PR02MB73211C0A8F2B4D1E9A3F7C41DB9PR02MB7321eurp_";
    let body = format!(
        "Received: from DB9PR02MB7321.eurprd02.prod.outlook.com ([fe80::1]) by\n \
         DB9PR02MB7321.eurprd02.prod.outlook.com ([fe80::1%5]) with mapi id 15.20.7828.000;\n \
         Tue, 1 Dec 2026 10:00:00 +0000\n\
         From: \"Admin, RXX (RXX NHS TRUST)\" <{from}>\n\
         To: \"{CONNECTOR}\" <{CONNECTOR}>\n\
         Subject: Staff list\n\
         Thread-Topic: Staff list\n\
         Thread-Index: AdlKc3p0n5x8YbcQTeWq2mY3s7dH4A==\n\
         Date: Tue, 1 Dec 2026 10:00:00 +0000\n\
         Message-ID: <{id}>\n\
         Accept-Language: en-GB, en-US\n\
         Content-Language: en-GB\n\
         X-MS-Has-Attach: yes\n\
         X-MS-TNEF-Correlator:\n\
         msip_labels:\n\
         x-ms-publictraffictype: Email\n\
         Content-Type: multipart/mixed;\n\tboundary=\"{b}\"\n\
         MIME-Version: 1.0\n\
         \n\
         --{b}\n\
         Content-Type: multipart/alternative;\n\tboundary=\"{a}\"\n\
         \n\
         --{a}\n\
         Content-Type: text/plain; charset=\"us-ascii\"\n\
         Content-Transfer-Encoding: quoted-printable\n\
         \n\
         Hello,=0D=0A=0D=0APlease find this month's staff list attached.=0D=0A=0D=0AKind regards\n\
         \n\
         --{a}\n\
         Content-Type: text/html; charset=\"us-ascii\"\n\
         Content-Transfer-Encoding: quoted-printable\n\
         \n\
         <html xmlns:o=3D\"urn:schemas-microsoft-com:office:office\"><head><meta http-equiv=3D=\n\
         \"Content-Type\" content=3D\"text/html; charset=3Dus-ascii\"></head><body lang=3D\"EN-GB\">=\n\
         <p class=3D\"MsoNormal\">Hello,<o:p></o:p></p><p class=3D\"MsoNormal\">Please find this =\n\
         month's staff list attached.<o:p></o:p></p></body></html>\n\
         \n\
         --{a}--\n\
         \n\
         --{b}\n\
         Content-Type: application/vnd.ms-excel; name=\"=?utf-8?B?U3RhZmYgbGlzdCDDqS5jc3Y=?=\"\n\
         Content-Description: =?utf-8?B?U3RhZmYgbGlzdCDDqS5jc3Y=?=\n\
         Content-Disposition: attachment;\n\tfilename*=utf-8''Staff%20list%20%C3%A9.csv; size={size};\n\t\
         creation-date=\"Tue, 01 Dec 2026 09:58:12 GMT\";\n\t\
         modification-date=\"Tue, 01 Dec 2026 09:58:12 GMT\"\n\
         Content-Transfer-Encoding: base64\n\
         \n\
         {data}\n\
         \n\
         --{b}--\n",
        size = csv.len(),
        data = base64(csv),
    );
    crlf(body.as_bytes())
}

/// Thunderbird: the CSV as `text/csv; charset=UTF-8` in quoted-printable.
fn thunderbird(from: &str, id: &str, csv: &[u8]) -> Vec<u8> {
    let b = "------------k3Jw0cYz5Nq8VbXr2Ht6Lp1D";
    let body = format!(
        "Message-ID: <{id}>\n\
         Date: Tue, 1 Dec 2026 10:05:12 +0000\n\
         MIME-Version: 1.0\n\
         User-Agent: Mozilla Thunderbird\n\
         Content-Language: en-GB\n\
         To: {CONNECTOR}\n\
         From: Admin <{from}>\n\
         Subject: Staff list\n\
         Content-Type: multipart/mixed; boundary=\"{b}\"\n\
         \n\
         This is a multi-part message in MIME format.\n\
         --{b}\n\
         Content-Type: text/plain; charset=UTF-8; format=flowed\n\
         Content-Transfer-Encoding: 7bit\n\
         \n\
         Please apply the attached.\n\
         \n\
         --{b}\n\
         Content-Type: text/csv; charset=UTF-8; name=\"staff.csv\"\n\
         Content-Disposition: attachment; filename=\"staff.csv\"\n\
         Content-Transfer-Encoding: quoted-printable\n\
         \n\
         {data}\n\
         --{b}--\n",
        data = quoted_printable(csv),
    );
    crlf(body.as_bytes())
}

/// Apple Mail: the CSV inline between two text parts.
fn apple_mail(from: &str, id: &str, csv: &[u8]) -> Vec<u8> {
    let b = "Apple-Mail=_6B0F0F7E-2C61-4E0B-9B3F-0C8E9D1A2B3C";
    let body = format!(
        "From: Admin <{from}>\n\
         Content-Type: multipart/mixed;\n\tboundary=\"{b}\"\n\
         Mime-Version: 1.0 (Mac OS X Mail 16.0 \\(3774.500.171.1.1\\))\n\
         Subject: Staff list\n\
         Message-Id: <{id}>\n\
         Date: Tue, 1 Dec 2026 10:10:00 +0000\n\
         To: {CONNECTOR}\n\
         X-Mailer: Apple Mail (2.3774.500.171.1.1)\n\
         \n\
         \n\
         --{b}\n\
         Content-Transfer-Encoding: 7bit\n\
         Content-Type: text/plain;\n\tcharset=us-ascii\n\
         \n\
         Here is the list\n\
         \n\
         --{b}\n\
         Content-Disposition: inline;\n\tfilename=staff.csv\n\
         Content-Type: text/csv;\n\tx-unix-mode=0644;\n\tname=\"staff.csv\"\n\
         Content-Transfer-Encoding: quoted-printable\n\
         \n\
         {data}\n\
         --{b}\n\
         Content-Transfer-Encoding: 7bit\n\
         Content-Type: text/plain;\n\tcharset=us-ascii\n\
         \n\
         \n\
         Sent from my Mac\n\
         \n\
         --{b}--\n",
        data = quoted_printable(csv),
    );
    crlf(body.as_bytes())
}

/// A single file part with no charset (`content_type` as given), the way a web mailer or an
/// older client attaches a file it cannot classify: `encoding` is `base64` or `8bit`.
fn bare_file(
    from: &str,
    id: &str,
    name: &str,
    content_type: &str,
    encoding: &str,
    file: &[u8],
) -> Vec<u8> {
    let b = "=_mixed_00512C6A80258B1E_=";
    let head = format!(
        "From: Admin <{from}>\r\n\
         To: {CONNECTOR}\r\n\
         Subject: Staff list\r\n\
         Message-ID: <{id}>\r\n\
         Date: Tue, 1 Dec 2026 10:15:00 +0000\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"{b}\"\r\n\
         \r\n\
         --{b}\r\n\
         Content-Type: text/plain; charset=\"us-ascii\"\r\n\
         \r\n\
         Staff list attached.\r\n\
         \r\n\
         --{b}\r\n\
         Content-Type: {content_type}; name=\"{name}\"\r\n\
         Content-Disposition: attachment; filename=\"{name}\"\r\n\
         Content-Transfer-Encoding: {encoding}\r\n\
         \r\n"
    );
    let mut raw = head.into_bytes();
    if encoding == "base64" {
        raw.extend_from_slice(base64(file).as_bytes());
    } else {
        raw.extend_from_slice(file);
    }
    raw.extend_from_slice(format!("\r\n--{b}--\r\n").as_bytes());
    raw
}

/// An Exchange out-of-office reply to one of our acknowledgements.
fn out_of_office(from: &str, id: &str, to_ours: &str) -> Vec<u8> {
    let b = "_000_AM6PR02MB4321E0B1C2D3A4F5A6B7C8D9AM6PR02MB4321eurp_";
    let body = format!(
        "From: \"Admin, RXX (RXX NHS TRUST)\" <{from}>\n\
         To: Staff directory connector <{CONNECTOR}>\n\
         Subject: Automatic reply: Received: staff list for RXX (staff.csv)\n\
         Thread-Topic: Received: staff list for RXX (staff.csv)\n\
         Thread-Index: AQHbQ2Zk0yq8rS3lXkW4vJmH2g1n9w==\n\
         Date: Tue, 1 Dec 2026 10:20:01 +0000\n\
         Message-ID: <{id}>\n\
         References: <{to_ours}>\n\
         In-Reply-To: <{to_ours}>\n\
         Auto-Submitted: auto-replied\n\
         X-MS-Has-Attach:\n\
         X-Auto-Response-Suppress: All\n\
         X-MS-Exchange-Inbox-Rules-Loop: {from}\n\
         X-MS-TNEF-Correlator:\n\
         Content-Type: multipart/alternative;\n\tboundary=\"{b}\"\n\
         MIME-Version: 1.0\n\
         \n\
         --{b}\n\
         Content-Type: text/plain; charset=\"us-ascii\"\n\
         \n\
         I am out of the office until Monday with no access to e-mail.\n\
         \n\
         --{b}\n\
         Content-Type: text/html; charset=\"us-ascii\"\n\
         \n\
         <html><body><p>I am out of the office until Monday with no access to e-mail.</p></body></html>\n\
         \n\
         --{b}--\n"
    );
    crlf(body.as_bytes())
}

/// Thunderbird's "Forward as Attachment": the staff list inside a message/rfc822 part.
fn forwarded(from: &str, id: &str, inner_subject: &str, csv: &[u8]) -> Vec<u8> {
    let inner_b = "------------inner0Zr8Kq2Lm4Xw";
    let outer_b = "------------outer9Tt1Ue3Vy5Ps";
    let inner = format!(
        "Message-ID: <{id}.inner@hr.rxx.nhs.uk>\n\
         Date: Mon, 30 Nov 2026 16:40:00 +0000\n\
         From: HR Systems <hr.systems@rxx.nhs.uk>\n\
         To: {from}\n\
         Subject: {inner_subject}\n\
         MIME-Version: 1.0\n\
         Content-Type: multipart/mixed; boundary=\"{inner_b}\"\n\
         \n\
         --{inner_b}\n\
         Content-Type: text/plain; charset=UTF-8\n\
         \n\
         Here is the list for this month.\n\
         --{inner_b}\n\
         Content-Type: text/csv; charset=UTF-8; name=\"staff.csv\"\n\
         Content-Disposition: attachment; filename=\"staff.csv\"\n\
         Content-Transfer-Encoding: base64\n\
         \n\
         {data}\n\
         --{inner_b}--\n",
        data = base64(csv),
    );
    let body = format!(
        "Message-ID: <{id}>\n\
         Date: Tue, 1 Dec 2026 10:25:00 +0000\n\
         MIME-Version: 1.0\n\
         User-Agent: Mozilla Thunderbird\n\
         To: {CONNECTOR}\n\
         From: Admin <{from}>\n\
         Subject: Fwd: {inner_subject}\n\
         Content-Type: multipart/mixed; boundary=\"{outer_b}\"\n\
         \n\
         This is a multi-part message in MIME format.\n\
         --{outer_b}\n\
         Content-Type: text/plain; charset=UTF-8; format=flowed\n\
         Content-Transfer-Encoding: 7bit\n\
         \n\
         Forwarding HR's list.\n\
         \n\
         --{outer_b}\n\
         Content-Type: message/rfc822; name=\"{inner_subject}.eml\"\n\
         Content-Disposition: attachment; filename=\"{inner_subject}.eml\"\n\
         \n\
         {inner}\n\
         --{outer_b}--\n"
    );
    crlf(body.as_bytes())
}

/// A plain message with no file.
fn no_attachment(from: &str, id: &str) -> Vec<u8> {
    crlf(
        format!(
            "From: Admin <{from}>\nTo: {CONNECTOR}\nSubject: Question about the staff list\n\
             Message-ID: <{id}>\nDate: Tue, 1 Dec 2026 10:30:00 +0000\nMIME-Version: 1.0\n\
             Content-Type: text/plain; charset=us-ascii\n\nWhen is the next run?\n"
        )
        .as_bytes(),
    )
}

/// A delivery status notification shaped as Postfix writes one (for the soak; the real one
/// is made by the test Postfix in its own test).
fn bounce_like(id: &str) -> Vec<u8> {
    let b = "7C3A198C1C6.1796152688/mx.rxx.nhs.uk";
    crlf(
        format!(
            "Return-Path: <>\nFrom: Mail Delivery System <MAILER-DAEMON@mx.rxx.nhs.uk>\n\
             Subject: Undelivered Mail Returned to Sender\nTo: {CONNECTOR}\n\
             Auto-Submitted: auto-replied\nMIME-Version: 1.0\n\
             Content-Type: multipart/report; report-type=delivery-status;\n\tboundary=\"{b}\"\n\
             Message-Id: <{id}>\nDate: Tue, 1 Dec 2026 10:35:00 +0000\n\n\
             This is a MIME-encapsulated message.\n\n--{b}\nContent-Description: Notification\n\
             Content-Type: text/plain; charset=us-ascii\n\nYour message could not be delivered.\n\n\
             --{b}\nContent-Description: Delivery report\nContent-Type: message/delivery-status\n\n\
             Reporting-MTA: dns; mx.rxx.nhs.uk\n\nFinal-Recipient: rfc822; gone@rxx.nhs.uk\n\
             Action: failed\nStatus: 5.1.1\n\n--{b}--\n"
        )
        .as_bytes(),
    )
}

/// Delivers messages to the connector's inbox and waits until all are there.
fn deliver(rt: &tokio::runtime::Runtime, mail: &[(&str, Vec<u8>)]) {
    let before = rt.block_on(count(CONNECTOR, "INBOX"));
    for (envelope_from, raw) in mail {
        rt.block_on(send_in(envelope_from, CONNECTOR, raw));
    }
    let got = rt.block_on(wait_for(CONNECTOR, before + mail.len()));
    assert_eq!(
        got.len(),
        before + mail.len(),
        "all delivered to the connector"
    );
}

fn folder_counts(rt: &tokio::runtime::Runtime) -> (usize, usize, usize) {
    rt.block_on(async {
        (
            count(CONNECTOR, "INBOX").await,
            count(CONNECTOR, "Processed").await,
            count(CONNECTOR, "Rejected").await,
        )
    })
}

// --- 1–4: files as the clients attach them ----------------------------------------------------

#[test]
fn outlook_csv_with_an_rfc2231_file_name_is_acknowledged() {
    let _one = SERVERS.lock().unwrap_or_else(|e| e.into_inner());
    let rt = runtime();
    rt.block_on(clean());
    let d = Deployment::standard();
    let id = "DB9PR02MB7321A1B2C3D4E5F60718293A@DB9PR02MB7321.eurprd02.prod.outlook.com";
    deliver(&rt, &[(RXX, outlook(RXX, id, rxx_rows("OUT").as_bytes()))]);

    let out = d.once(false);
    assert!(out.contains("intake: 1 accepted, 0 rejected"), "{out}");
    assert_eq!(folder_counts(&rt), (0, 1, 0));
    let inbox = rt.block_on(wait_for(RXX, 1));
    assert_eq!(inbox.len(), 1);
    let ack = parse(&inbox[0]);
    assert_eq!(
        ack.subject,
        "Received: staff list for RXX (Staff list é.csv)"
    );
    assert_eq!(ack_counts(&ack.text), (3, 3, 0), "{}", ack.text);
    assert_eq!(ack.in_reply_to.as_deref(), Some(id));
    assert!(
        ack.references.as_deref().is_some_and(|r| r.contains(id)),
        "{ack:?}"
    );
    assert_eq!(ack.auto_submitted.as_deref(), Some("auto-replied"));
}

#[test]
fn thunderbird_quoted_printable_csv_is_read_exactly() {
    let _one = SERVERS.lock().unwrap_or_else(|e| e.into_inner());
    let rt = runtime();
    rt.block_on(clean());
    let d = Deployment::standard();
    // A Notes cell long enough for soft line breaks, with `=` and non-ASCII in it.
    let notes = "Rota A=early week and B=late week; cover for the Pharmacy dispensary at Ward 7 \
                 (Zoë's team) until the end of March 2027";
    let csv = staff_csv(&[
        [
            "TBD1",
            "Zoë",
            "Ní Bhriain",
            "RXX",
            "Dispensary Assistant",
            notes,
        ],
        ["TBD2", "Marek", "Nowak", "RXX", "Porter", ""],
    ]);
    let raw = thunderbird(
        RXX,
        "4c1e9a0b-7d2f-4e61-9c3a-5b8d2e7f1a06@rxx.nhs.uk",
        csv.as_bytes(),
    );
    assert!(
        String::from_utf8_lossy(&raw).contains("=\r\n"),
        "the message has soft line breaks"
    );
    deliver(&rt, &[(RXX, raw)]);
    let out = d.once(false);
    assert!(out.contains("intake: 1 accepted, 0 rejected"), "{out}");
    let ack = parse(&rt.block_on(wait_for(RXX, 1))[0]);
    assert_eq!(
        ack_counts(&ack.text),
        d.validate("staff.csv", csv.as_bytes())
    );
    assert_eq!(ack_counts(&ack.text), (2, 2, 0), "{}", ack.text);

    let out = d.once(true);
    assert!(out.contains("nightly: RXX: run"), "{out}");
    let export = d.export();
    assert!(
        export.contains(notes),
        "the long cell is stored as sent:\n{export}"
    );
    assert!(export.contains("Zoë,Ní Bhriain"), "{export}");
    let result = parse(&rt.block_on(wait_for(RXX, 2))[1]);
    let got = results(&result.attachment.expect("result CSV").1);
    assert_eq!(got["TBD1"], "Created");
    assert_eq!(got["TBD2"], "Created");
}

#[test]
fn apple_mail_inline_csv_is_accepted() {
    let _one = SERVERS.lock().unwrap_or_else(|e| e.into_inner());
    let rt = runtime();
    rt.block_on(clean());
    let d = Deployment::standard();
    let id = "6F1A2B3C-4D5E-4F60-8172-93A4B5C6D7E8@rxx.nhs.uk";
    deliver(
        &rt,
        &[(RXX, apple_mail(RXX, id, rxx_rows("APL").as_bytes()))],
    );
    let out = d.once(false);
    assert!(out.contains("intake: 1 accepted, 0 rejected"), "{out}");
    assert_eq!(folder_counts(&rt), (0, 1, 0));
    let ack = parse(&rt.block_on(wait_for(RXX, 1))[0]);
    assert_eq!(ack.subject, "Received: staff list for RXX (staff.csv)");
    assert_eq!(ack_counts(&ack.text), (3, 3, 0), "{}", ack.text);
    assert_eq!(ack.in_reply_to.as_deref(), Some(id));
}

#[test]
fn utf16_unicode_text_and_windows_1252_csv_are_read_as_validate_reads_them() {
    let _one = SERVERS.lock().unwrap_or_else(|e| e.into_inner());
    let rt = runtime();
    rt.block_on(clean());
    let d = Deployment::standard();
    // Excel's "Unicode Text": UTF-16LE with a BOM, tab-delimited, CRLF. A name outside
    // Windows-1252, and one refused row (digits in a name).
    let text = "ExternalSyncID\tFirstName\tLastName\tOrganisation\tJobTitle\r\n\
                U16A\tŁucja\tDąbrowska\tRXX\tClerk\r\n\
                U16B\tΕλένη\tΠαπαδοπούλου\tRXX\tPorter\r\n\
                U16C\tR2D2\tDroid\tRXX\tCook\r\n";
    let mut utf16 = vec![0xFF, 0xFE];
    for unit in text.encode_utf16() {
        utf16.extend_from_slice(&unit.to_le_bytes());
    }
    // Windows-1252: ë is 0xEB, the curly apostrophe 0x92.
    let mut cp1252 = b"ExternalSyncID,FirstName,LastName,Organisation,JobTitle\r\nW52A,Zo".to_vec();
    cp1252.extend_from_slice(b"\xEB,Bront\xEB,RYY,Clerk\r\nW52B,Se\xE1n,O\x92Neill,RYY,Porter\r\n");

    deliver(
        &rt,
        &[
            (
                RXX,
                bare_file(
                    RXX,
                    "u16@rxx.nhs.uk",
                    "Staff list.txt",
                    "text/plain",
                    "base64",
                    &utf16,
                ),
            ),
            (
                RYY,
                bare_file(
                    RYY,
                    "w1252@ryy.nhs.uk",
                    "staff.csv",
                    "text/csv",
                    "8bit",
                    &cp1252,
                ),
            ),
        ],
    );
    let out = d.once(false);
    assert!(out.contains("intake: 2 accepted, 0 rejected"), "{out}");
    let rxx = parse(&rt.block_on(wait_for(RXX, 1))[0]);
    let ryy = parse(&rt.block_on(wait_for(RYY, 1))[0]);
    assert_eq!(ack_counts(&rxx.text), d.validate("Staff list.txt", &utf16));
    assert_eq!(ack_counts(&rxx.text), (3, 2, 1), "{}", rxx.text);
    assert!(
        rxx.text.contains("line 4:"),
        "the refused line is named: {}",
        rxx.text
    );
    assert_eq!(ack_counts(&ryy.text), d.validate("staff-1252.csv", &cp1252));
    assert_eq!(ack_counts(&ryy.text), (2, 2, 0), "{}", ryy.text);

    let out = d.once(true);
    assert!(
        out.contains("nightly: RXX: run") && out.contains("nightly: RYY: run"),
        "{out}"
    );
    let export = d.export();
    for name in [
        "Łucja,Dąbrowska",
        "Ελένη,Παπαδοπούλου",
        "Zoë,Brontë",
        "Seán,O'Neill",
    ] {
        assert!(
            export.contains(name),
            "{name} not in the directory:\n{export}"
        );
    }
    let result = parse(&rt.block_on(wait_for(RXX, 2))[1]);
    assert!(
        result.text.contains("\"Staff list.txt\""),
        "{}",
        result.text
    );
    assert!(
        result.text.contains("line 4:"),
        "lines not applied are listed: {}",
        result.text
    );
    let got = results(&result.attachment.expect("result CSV").1);
    assert_eq!(got["U16A"], "Created");
    assert_eq!(got["U16C"], "Rejected");
}

// --- 5–6: machine-sent mail gets no answer ----------------------------------------------------

#[test]
fn exchange_out_of_office_reply_is_filed_unanswered() {
    let _one = SERVERS.lock().unwrap_or_else(|e| e.into_inner());
    let rt = runtime();
    rt.block_on(clean());
    let d = Deployment::standard();
    let raw = out_of_office(
        RXX,
        "AM6PR02MB43219F8E7D6C5B4A@AM6PR02MB4321.eurprd02.prod.outlook.com",
        "ack-1@connector.test",
    );
    // Exchange sends it from the mailbox's own address, so only the headers say "automatic".
    deliver(&rt, &[(RXX, raw)]);
    let out = d.once(false);
    assert!(out.contains("intake: 0 accepted, 1 rejected"), "{out}");
    assert!(
        out.contains("message rejected"),
        "a log line says so: {out}"
    );
    assert!(out.contains("Auto-Submitted: auto-replied"), "{out}");
    assert_eq!(folder_counts(&rt), (0, 0, 1));
    rt.block_on(settle());
    assert!(rt.block_on(messages(RXX, "INBOX")).is_empty(), "no answer");
    assert!(d.outbox(true).is_empty(), "nothing queued");
}

/// A copy of a file that went to a mailing list the connector is on (Mailman's headers).
fn list_copy(id: &str) -> Vec<u8> {
    let mut raw = b"List-Id: RXX IT team <it-team.lists.rxx.nhs.uk>\r\n\
        List-Unsubscribe: <mailto:it-team-leave@lists.rxx.nhs.uk>\r\n\
        Precedence: list\r\nSender: \"it-team\" <it-team-bounces@lists.rxx.nhs.uk>\r\n"
        .to_vec();
    raw.extend_from_slice(&thunderbird(RXX, id, rxx_rows("LST").as_bytes()));
    raw
}

#[test]
fn list_mail_and_unusable_senders_get_no_answer() {
    let _one = SERVERS.lock().unwrap_or_else(|e| e.into_inner());
    let rt = runtime();
    rt.block_on(clean());
    let d = Deployment::standard();
    let csv = rxx_rows("BAD");
    let with_from = |from_lines: &str, id: &str| -> Vec<u8> {
        let raw = thunderbird(RXX, id, csv.as_bytes());
        let text = String::from_utf8(raw).unwrap();
        text.replacen(&format!("From: Admin <{RXX}>\r\n"), from_lines, 1)
            .into_bytes()
    };
    deliver(
        &rt,
        &[
            (RXX, list_copy("list@rxx.nhs.uk")),
            (
                RXX,
                with_from(
                    &format!("From: Admin <{RXX}>\r\nFrom: intruder@evil.test\r\n"),
                    "two-from@evil.test",
                ),
            ),
            (
                RXX,
                with_from(
                    &format!("From: <{RXX}>intruder@evil.test\r\n"),
                    "after@evil.test",
                ),
            ),
            (
                RXX,
                with_from("From: \"admin\"@rxx.nhs.uk\r\n", "quoted@evil.test"),
            ),
            (
                RXX,
                with_from("From: Admin <admin@rxx.nhs.uk.>\r\n", "dot@evil.test"),
            ),
        ],
    );
    let stored = rt.block_on(messages(CONNECTOR, "INBOX"));
    assert!(
        stored.iter().any(|m| String::from_utf8_lossy(m)
            .contains("From: Admin <admin@rxx.nhs.uk>\r\nFrom: intruder@evil.test")),
        "Postfix passes two From headers through as they were sent"
    );
    let out = d.once(false);
    assert!(out.contains("intake: 0 accepted, 5 rejected"), "{out}");
    assert!(out.contains("Precedence: list"), "{out}");
    assert!(out.contains("2 From headers"), "{out}");
    assert_eq!(folder_counts(&rt), (0, 0, 5));
    rt.block_on(settle());
    for user in [RXX, "intruder@evil.test", "sink@sink.test"] {
        assert!(
            rt.block_on(messages(user, "INBOX")).is_empty(),
            "nothing to {user}"
        );
    }
    assert!(d.outbox(true).is_empty(), "nothing queued");
}

#[test]
fn a_bounce_postfix_itself_generates_gets_no_answer() {
    let _one = SERVERS.lock().unwrap_or_else(|e| e.into_inner());
    let rt = runtime();
    rt.block_on(clean());
    let undeliverable = env("MAIL_UNDELIVERABLE");
    let d = Deployment::new(&[("RXX", &[RXX, &undeliverable]), ("RYY", &[RYY])]);
    // The administrator's address is accepted by Postfix but has no mailbox: our
    // acknowledgement (with its refused-lines CSV) bounces back to us as a real DSN.
    let mut csv = rxx_rows("DSN");
    csv.push_str("DSN9,R2D2,Droid,RXX,Cook\r\n");
    deliver(
        &rt,
        &[(
            RXX,
            thunderbird(&undeliverable, "to-bounce@rxx.nhs.uk", csv.as_bytes()),
        )],
    );
    let out = d.once(false);
    assert!(out.contains("intake: 1 accepted, 0 rejected"), "{out}");
    assert!(out.contains("outbox: 1 e-mail(s) sent"), "{out}");

    let dsn = rt.block_on(wait_for(CONNECTOR, 1));
    assert_eq!(dsn.len(), 1, "Postfix bounced the acknowledgement to us");
    let text = String::from_utf8_lossy(&dsn[0]);
    assert!(
        text.contains("multipart/report") && text.contains("MAILER-DAEMON"),
        "{text}"
    );
    assert!(
        text.contains("refused-lines-staff.csv"),
        "the returned message carries a file"
    );

    let out = d.once(false);
    assert!(out.contains("intake: 0 accepted, 1 rejected"), "{out}");
    assert!(out.contains("outbox: 0 e-mail(s) sent"), "{out}");
    assert_eq!(folder_counts(&rt), (0, 1, 1));
    rt.block_on(settle());
    let outbox = d.outbox(true);
    assert_eq!(
        outbox.len(),
        1,
        "only the acknowledgement was ever queued: {outbox:?}"
    );
    assert_eq!(outbox[0]["kind"], "acknowledgement");
    for user in ["sink@sink.test", OPERATOR, RXX] {
        assert!(
            rt.block_on(messages(user, "INBOX")).is_empty(),
            "nothing to {user}"
        );
    }
}

// --- 7–9: forwarded, duplicates, another organisation's file ----------------------------------

#[test]
fn a_forwarded_staff_list_is_accepted_and_the_acknowledgement_says_so() {
    let _one = SERVERS.lock().unwrap_or_else(|e| e.into_inner());
    let rt = runtime();
    rt.block_on(clean());
    let d = Deployment::standard();
    let raw = forwarded(
        RXX,
        "fwd-1@rxx.nhs.uk",
        "Staff list for December",
        rxx_rows("FWD").as_bytes(),
    );
    deliver(&rt, &[(RXX, raw)]);
    let out = d.once(false);
    assert!(out.contains("intake: 1 accepted, 0 rejected"), "{out}");
    let ack = parse(&rt.block_on(wait_for(RXX, 1))[0]);
    assert_eq!(ack.subject, "Received: staff list for RXX (staff.csv)");
    assert!(
        ack.text
            .contains("The file was taken from the forwarded message \"Staff list for December\""),
        "{}",
        ack.text
    );
    assert_eq!(ack_counts(&ack.text), (3, 3, 0));
    assert!(
        ack.to.trim_matches(['<', '>']) == RXX,
        "answered to the outer sender, not HR: {}",
        ack.to
    );
}

#[test]
fn a_reused_message_id_with_other_content_is_answered() {
    let _one = SERVERS.lock().unwrap_or_else(|e| e.into_inner());
    let rt = runtime();
    rt.block_on(clean());
    let d = Deployment::standard();
    let id = "reused-id@rxx.nhs.uk";
    deliver(
        &rt,
        &[(RXX, thunderbird(RXX, id, rxx_rows("RU1").as_bytes()))],
    );
    let out = d.once(false);
    assert!(out.contains("intake: 1 accepted"), "{out}");
    // A client that reuses Message-IDs (or a template) sends a different file under it.
    let mut other = rxx_rows("RU2");
    other.push_str("RU29,Nia,Jones,RXX,Clerk,\r\n");
    deliver(&rt, &[(RXX, thunderbird(RXX, id, other.as_bytes()))]);
    let out = d.once(false);
    assert!(out.contains("intake: 1 accepted, 0 rejected"), "{out}");
    let inbox = rt.block_on(wait_for(RXX, 2));
    assert_eq!(inbox.len(), 2);
    let acks: Vec<_> = inbox.iter().map(|m| parse(m)).collect();
    let counts: Vec<_> = acks.iter().map(|m| ack_counts(&m.text)).collect();
    assert_eq!(counts, [(3, 3, 0), (4, 4, 0)], "{}", acks[1].text);
}

#[test]
fn the_same_message_delivered_twice_is_answered_once() {
    let _one = SERVERS.lock().unwrap_or_else(|e| e.into_inner());
    let rt = runtime();
    rt.block_on(clean());
    let d = Deployment::standard();
    let raw = outlook(RXX, "twice@rxx.nhs.uk", rxx_rows("TWC").as_bytes());
    // Delivered twice (a retry after a lost reply, or two routes): Postfix gives each copy
    // its own Received header.
    deliver(&rt, &[(RXX, raw.clone()), (RXX, raw)]);
    let copies = rt.block_on(messages(CONNECTOR, "INBOX"));
    assert_ne!(
        copies[0], copies[1],
        "the copies differ in their trace headers"
    );
    let out = d.once(false);
    assert!(out.contains("intake: 1 accepted, 0 rejected"), "{out}");
    assert!(out.contains("1 already stored and now filed"), "{out}");
    assert_eq!(folder_counts(&rt), (0, 2, 0));
    let out = d.once(false);
    assert!(out.contains("intake: 0 accepted, 0 rejected"), "{out}");
    rt.block_on(settle());
    assert_eq!(
        rt.block_on(messages(RXX, "INBOX")).len(),
        1,
        "one answer only"
    );
}

#[test]
fn another_organisations_rows_are_rejected_whole_and_supersede_nothing() {
    let _one = SERVERS.lock().unwrap_or_else(|e| e.into_inner());
    let rt = runtime();
    rt.block_on(clean());
    let d = Deployment::standard();
    deliver(
        &rt,
        &[(
            RXX,
            outlook(RXX, "good@rxx.nhs.uk", rxx_rows("GOOD").as_bytes()),
        )],
    );
    d.once(false);
    // An RYY-only administrator sends a file whose rows are all for RXX.
    let raw = thunderbird(RYY, "wrong-org@ryy.nhs.uk", rxx_rows("EVIL").as_bytes());
    deliver(&rt, &[(RYY, raw)]);
    let out = d.once(false);
    assert!(out.contains("intake: 0 accepted, 1 rejected"), "{out}");
    let rejection = parse(&rt.block_on(wait_for(RYY, 1))[0]);
    assert!(
        rejection.subject.starts_with("Not accepted"),
        "{}",
        rejection.subject
    );
    assert!(
        rejection.text.contains("its rows are for RXX")
            && rejection
                .text
                .contains("connector administrator of RYY only"),
        "{}",
        rejection.text
    );
    assert_eq!(
        rejection.in_reply_to.as_deref(),
        Some("wrong-org@ryy.nhs.uk")
    );

    let out = d.once(true);
    assert!(out.contains("nightly: RXX: run"), "{out}");
    assert!(!out.contains("earlier submission(s) superseded"), "{out}");
    let export = d.export();
    assert!(
        export.contains("GOOD1") && !export.contains("EVIL1"),
        "{export}"
    );
    let result = parse(&rt.block_on(wait_for(RXX, 2))[1]);
    assert!(
        result.subject.starts_with("Result: staff list for RXX"),
        "{}",
        result.subject
    );
    assert_eq!(result.in_reply_to.as_deref(), Some("good@rxx.nhs.uk"));
}

#[test]
fn a_file_with_no_valid_row_is_acknowledged_and_supersedes_nothing() {
    let _one = SERVERS.lock().unwrap_or_else(|e| e.into_inner());
    let rt = runtime();
    rt.block_on(clean());
    let d = Deployment::standard();
    deliver(
        &rt,
        &[(
            RXX,
            outlook(RXX, "pending@rxx.nhs.uk", rxx_rows("KEEP").as_bytes()),
        )],
    );
    d.once(false);
    let none_valid = staff_csv(&[
        ["NV1", "R2D2", "Droid", "RXX", "Cook", ""],
        ["NV2", "", "Nobody", "RXX", "Cook", ""],
    ]);
    deliver(
        &rt,
        &[(
            RXX,
            apple_mail(RXX, "nothing@rxx.nhs.uk", none_valid.as_bytes()),
        )],
    );
    let out = d.once(false);
    assert!(out.contains("intake: 1 accepted, 0 rejected"), "{out}");
    let ack = parse(&rt.block_on(wait_for(RXX, 2))[1]);
    assert_eq!(ack_counts(&ack.text), (2, 0, 2), "{}", ack.text);
    assert!(
        ack.text.contains("Nothing in this file can be applied"),
        "{}",
        ack.text
    );
    assert!(
        ack.text.contains("Your earlier file \"Staff list é.csv\""),
        "{}",
        ack.text
    );
    assert!(
        ack.text.contains("line 2:") && ack.text.contains("line 3:"),
        "{}",
        ack.text
    );

    let out = d.once(true);
    assert!(out.contains("nightly: RXX: run"), "{out}");
    assert!(!out.contains("earlier submission(s) superseded"), "{out}");
    assert!(d.export().contains("KEEP1"));
    let result = parse(&rt.block_on(wait_for(RXX, 3))[2]);
    assert_eq!(result.in_reply_to.as_deref(), Some("pending@rxx.nhs.uk"));
}

// --- 10: replies the server refuses -----------------------------------------------------------

fn by_recipient<'v>(records: &'v [Value], to: &str) -> &'v Value {
    records
        .iter()
        .find(|r| {
            r["recipients"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == to))
        })
        .unwrap_or_else(|| panic!("no e-mail to {to} in {records:?}"))
}

#[test]
fn replies_refused_with_5xx_fail_4xx_wait_and_the_rest_go_out() {
    let _one = SERVERS.lock().unwrap_or_else(|e| e.into_inner());
    let rt = runtime();
    rt.block_on(clean());
    let refused = env("MAIL_SUBMISSION_REFUSED");
    let deferred = env("MAIL_SUBMISSION_DEFERRED");
    let d = Deployment::new(&[("RXX", &[RXX, &refused]), ("RYY", &[RYY, &deferred])]);
    deliver(
        &rt,
        &[
            (
                &refused,
                thunderbird(&refused, "r5xx@rxx.nhs.uk", rxx_rows("R5X").as_bytes()),
            ),
            (
                &deferred,
                thunderbird(&deferred, "r4xx@ryy.nhs.uk", ryy_rows("R4X").as_bytes()),
            ),
            (
                RXX,
                outlook(RXX, "ok-rxx@rxx.nhs.uk", rxx_rows("OKX").as_bytes()),
            ),
            (
                RYY,
                apple_mail(RYY, "ok-ryy@ryy.nhs.uk", ryy_rows("OKY").as_bytes()),
            ),
        ],
    );
    let out = d.once(false);
    assert!(out.contains("intake: 4 accepted, 0 rejected"), "{out}");
    // Both good replies, and the operators' notice of the refused one, in this pass.
    assert!(out.contains("outbox: 3 e-mail(s) sent"), "{out}");

    let open = d.outbox(false);
    assert_eq!(open.len(), 2, "{open:?}");
    let failed = by_recipient(&open, &refused);
    assert_eq!(failed["state"], "failed");
    let error = failed["last_error"].as_str().unwrap();
    assert!(
        error.contains("550") && error.contains("5.1.1"),
        "the server's answer: {error}"
    );
    let waiting = by_recipient(&open, &deferred);
    assert_eq!(waiting["state"], "waiting");
    assert_eq!(waiting["attempts"], 1);
    assert!(
        waiting["last_error"].as_str().unwrap().contains("450"),
        "{waiting}"
    );
    let next = chrono::DateTime::parse_from_rfc3339(waiting["next_attempt_at"].as_str().unwrap())
        .expect("a time");
    assert!(next > chrono::Utc::now(), "retried later: {next}");

    let listed = d.run(&["outbox", "list"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains("failed") && listed.contains("waiting") && listed.contains("5.1.1"),
        "{listed}"
    );

    for (user, id) in [(RXX, "ok-rxx@rxx.nhs.uk"), (RYY, "ok-ryy@ryy.nhs.uk")] {
        let inbox = rt.block_on(wait_for(user, 1));
        assert_eq!(inbox.len(), 1, "{user}");
        assert_eq!(parse(&inbox[0]).in_reply_to.as_deref(), Some(id));
    }
    let notices = rt.block_on(wait_for(OPERATOR, 1));
    assert_eq!(notices.len(), 1);
    let notice = parse(&notices[0]);
    assert!(
        notice
            .subject
            .starts_with("Not delivered: Received: staff list for RXX"),
        "{}",
        notice.subject
    );
    assert!(notice.text.contains("5.1.1"), "{}", notice.text);

    // The next pass: the 4xx one is tried again, nobody is told twice.
    let out = d.once(false);
    assert!(out.contains("outbox: 0 e-mail(s) sent"), "{out}");
    rt.block_on(settle());
    assert_eq!(
        rt.block_on(messages(OPERATOR, "INBOX")).len(),
        1,
        "told once"
    );
    let open = d.outbox(false);
    assert_eq!(by_recipient(&open, &deferred)["attempts"], 2);

    // retry and drop, through the binary.
    let failed_id = by_recipient(&open, &refused)["id"]
        .as_i64()
        .unwrap()
        .to_string();
    let waiting_id = by_recipient(&open, &deferred)["id"]
        .as_i64()
        .unwrap()
        .to_string();
    let retry = d.run(&["outbox", "retry", &failed_id]);
    assert!(retry.status.success(), "{retry:?}");
    assert!(String::from_utf8_lossy(&retry.stdout).contains("waiting"));
    assert_eq!(by_recipient(&d.outbox(false), &refused)["state"], "waiting");
    for id in [&failed_id, &waiting_id] {
        let dropped = d.run(&["outbox", "drop", id, "--reason", "mailbox closed"]);
        assert!(dropped.status.success(), "{dropped:?}");
    }
    assert!(d.outbox(false).is_empty(), "nothing open after the drops");
    let all = d.outbox(true);
    let gone = by_recipient(&all, &refused);
    assert_eq!(gone["state"], "dropped");
    assert_eq!(gone["closed_reason"], "mailbox closed");
    let again = d.run(&["outbox", "retry", &failed_id]);
    assert_eq!(
        again.status.code(),
        Some(1),
        "a dropped e-mail is not retried"
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("dropped"));
    let sent_id = by_recipient(&all, RXX)["id"].as_i64().unwrap().to_string();
    assert_eq!(
        d.run(&["outbox", "drop", &sent_id, "--reason", "x"])
            .status
            .code(),
        Some(1)
    );
    let unknown = d.run(&["outbox", "retry", "999999"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no e-mail 999999"));
    let no_reason = d.run(&["outbox", "drop", &waiting_id, "--reason", " "]);
    assert_eq!(no_reason.status.code(), Some(2));

    let out = d.once(false);
    assert!(out.contains("outbox: 0 e-mail(s) sent"), "{out}");
    rt.block_on(settle());
    assert_eq!(rt.block_on(messages(OPERATOR, "INBOX")).len(), 1);
    assert_eq!(rt.block_on(messages(RXX, "INBOX")).len(), 1);
}

// --- 11: the soak ---------------------------------------------------------------------------

/// What a soak message is and who must answer it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Shape {
    Outlook,
    Thunderbird,
    Apple,
    Forwarded,
    Windows1252,
    NoAttachment,
    Unauthorised,
    OutOfOffice,
    Bounce,
}

const SHAPES: [Shape; 10] = [
    Shape::Outlook,
    Shape::Thunderbird,
    Shape::Apple,
    Shape::Forwarded,
    Shape::Windows1252,
    Shape::NoAttachment,
    Shape::Unauthorised,
    Shape::OutOfOffice,
    Shape::Bounce,
    Shape::Outlook,
];

/// Strangers whose files are refused: each gets one rejection a day, however many they send.
const STRANGERS: usize = 5;

fn soak_message(i: usize) -> (Shape, String, String, Vec<u8>) {
    let shape = SHAPES[i % SHAPES.len()];
    let id = format!("soak-{i:05}@client.example");
    let tag = format!("S{i:05}X");
    let (from, raw) = match shape {
        Shape::Outlook => (RXX.to_owned(), outlook(RXX, &id, rxx_rows(&tag).as_bytes())),
        Shape::Thunderbird => (
            RYY.to_owned(),
            thunderbird(RYY, &id, ryy_rows(&tag).as_bytes()),
        ),
        Shape::Apple => (
            RXX.to_owned(),
            apple_mail(RXX, &id, rxx_rows(&tag).as_bytes()),
        ),
        Shape::Forwarded => (
            RYY.to_owned(),
            forwarded(RYY, &id, "HR list", ryy_rows(&tag).as_bytes()),
        ),
        Shape::Windows1252 => {
            let csv = format!(
                "ExternalSyncID,FirstName,LastName,Organisation,JobTitle\r\n{tag}1,Zo\u{eb},Bront\u{eb},RYY,Clerk\r\n"
            );
            let bytes: Vec<u8> = csv.chars().map(|c| c as u32 as u8).collect();
            (
                RYY.to_owned(),
                bare_file(RYY, &id, "staff.csv", "text/csv", "8bit", &bytes),
            )
        }
        Shape::NoAttachment => (RXX.to_owned(), no_attachment(RXX, &id)),
        Shape::Unauthorised => {
            let who = format!(
                "stranger{}@elsewhere.example",
                (i / SHAPES.len()) % STRANGERS
            );
            let raw = thunderbird(&who, &id, rxx_rows(&tag).as_bytes());
            (who, raw)
        }
        Shape::OutOfOffice => (
            RXX.to_owned(),
            out_of_office(RXX, &id, "ours@connector.test"),
        ),
        Shape::Bounce => (String::new(), bounce_like(&id)),
    };
    (shape, id, from, raw)
}

fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// Every message in a folder, by its In-Reply-To.
fn answers(rt: &tokio::runtime::Runtime, user: &str) -> Vec<(Option<String>, String)> {
    rt.block_on(messages(user, "INBOX"))
        .iter()
        .map(|m| {
            let m = parse(m);
            (m.in_reply_to, m.subject)
        })
        .collect()
}

#[test]
fn soak_two_thousand_mixed_messages_through_the_running_service() {
    const MESSAGES: usize = 2_000;
    const MAX_RSS_MIB: u64 = 300;
    let _one = SERVERS.lock().unwrap_or_else(|e| e.into_inner());
    let rt = runtime();
    rt.block_on(clean());
    let d = Deployment::standard();
    let log = std::fs::File::create(d.path().join("service.log")).unwrap();
    let mut service = d
        .command(&["run"])
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("the service starts");
    let started = Instant::now();
    // Bounds every wait below; about 2.5 min is usual here (see the README).
    let deadline = started + Duration::from_secs(200);

    let soak: Vec<_> = (0..MESSAGES).map(soak_message).collect();
    rt.block_on(async {
        use futures_util::StreamExt;
        let smtp = mail::mx();
        futures_util::stream::iter(&soak)
            .for_each_concurrent(4, |(_, _, from, raw)| {
                let smtp = &smtp;
                async move { send_with(smtp, from, CONNECTOR, raw).await }
            })
            .await;
    });
    let delivered = started.elapsed();

    // Every message filed.
    let filed = loop {
        let (inbox, processed, rejected) = folder_counts(&rt);
        if (inbox == 0 && processed + rejected == MESSAGES) || Instant::now() > deadline {
            break (inbox, processed, rejected);
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let intake_done = started.elapsed();
    let expect_processed = soak
        .iter()
        .filter(|(s, ..)| {
            !matches!(
                s,
                Shape::NoAttachment | Shape::Unauthorised | Shape::OutOfOffice | Shape::Bounce
            )
        })
        .count();
    assert_eq!(
        filed,
        (0, expect_processed, MESSAGES - expect_processed),
        "inbox, Processed, Rejected"
    );

    // Every administrator message answered (the replies are delivered by then).
    let answered: BTreeSet<&str> = soak
        .iter()
        .filter(|(s, ..)| !matches!(s, Shape::Unauthorised | Shape::OutOfOffice | Shape::Bounce))
        .map(|(_, id, ..)| id.as_str())
        .collect();
    loop {
        let n = rt.block_on(async { count(RXX, "INBOX").await + count(RYY, "INBOX").await });
        if n >= answered.len() || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let peak_kib = vm_hwm_kib(service.id());
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &service.id().to_string()])
        .status();
    let stop_by = Instant::now() + Duration::from_secs(20);
    let stopped = loop {
        if let Some(status) = service.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > stop_by {
            let _ = service.kill();
            let _ = service.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let elapsed = started.elapsed();
    if let Some(keep) = std::env::var_os("MAIL_SOAK_LOG") {
        // For a look at where the time went: the service's log, kept.
        std::fs::copy(d.path().join("service.log"), keep).unwrap();
    }
    let peak_mib = peak_kib / 1024;
    println!(
        "soak: {MESSAGES} messages ({} answered) delivered in {:.1} s, filed after {:.1} s, \
         all answered and stopped after {:.1} s; service peak RSS (VmHWM) {peak_mib} MiB",
        answered.len(),
        delivered.as_secs_f64(),
        intake_done.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    rt.block_on(settle());

    let mut replies: BTreeMap<String, usize> = BTreeMap::new();
    for user in [RXX, RYY, "sink@sink.test", OPERATOR] {
        for (in_reply_to, subject) in answers(&rt, user) {
            let id = in_reply_to
                .unwrap_or_else(|| panic!("a reply to {user} without In-Reply-To: {subject}"));
            *replies.entry(id).or_default() += 1;
        }
    }
    for id in &answered {
        assert_eq!(
            replies.get(*id),
            Some(&1),
            "administrator message {id}: one answer"
        );
    }
    let machine: Vec<&str> = soak
        .iter()
        .filter(|(s, ..)| matches!(s, Shape::OutOfOffice | Shape::Bounce))
        .map(|(_, id, ..)| id.as_str())
        .filter(|id| replies.contains_key(*id))
        .collect();
    assert!(
        machine.is_empty(),
        "auto-replies and bounces answered: {machine:?}"
    );
    let strangers = soak
        .iter()
        .filter(|(s, id, ..)| *s == Shape::Unauthorised && replies.contains_key(id))
        .count();
    assert_eq!(
        strangers, STRANGERS,
        "one rejection per unauthorised address a day"
    );
    for (_, subject) in answers(&rt, "sink@sink.test") {
        assert_eq!(
            subject, "Not accepted: your message to the staff directory connector",
            "nothing of a stranger's message is quoted back"
        );
    }
    assert_eq!(
        replies.values().sum::<usize>(),
        answered.len() + STRANGERS,
        "no other e-mail went out"
    );
    let open = d.outbox(false);
    assert!(
        open.iter()
            .all(|r| r["state"] == "failed" && r["last_error"].is_string()),
        "the outbox holds only failed e-mails with their reasons: {open:?}"
    );
    assert!(
        stopped.is_some_and(|s| s.success()),
        "the service stops on SIGTERM: {stopped:?}"
    );

    assert!(
        peak_mib < MAX_RSS_MIB,
        "peak RSS {peak_mib} MiB over {MAX_RSS_MIB} MiB"
    );
}
