//! The e-mail connector against real mail servers: Postfix (SMTP in, submission with AUTH)
//! delivering into Dovecot (IMAP), as `scripts/mail/up.sh` starts them on loopback.
//! Endpoints come from the `MAIL_*` variables that `scripts/test.sh` sets; without them these
//! tests fail and say so.
//!
//! Sender verification: in `mta` mode the genuine DMARC pass comes from the servers
//! themselves (their verified port writes one for the test administrators, and every port
//! deletes incoming `Authentication-Results` headers bearing their authserv-id, see
//! scripts/mail/up.sh); in `dkim` mode messages are signed with the test DNS server's keys
//! (`DNS_*`, scripts/dns/up.sh).

// Test code: a failure is a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "common/mail.rs"]
mod mail;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use lettre::address::Envelope;
use lettre::transport::smtp::client::Tls;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use mail::{env, login, messages, port, runtime};
use mail_parser::{MessageParser, MimeHeaders};

/// The servers' mailboxes are shared: one test at a time.
static SERVERS: Mutex<()> = Mutex::new(());

const TRUSTED: &str = "mx.connector.test";

/// A connector deployment reading connector@connector.test over IMAPS and sending through
/// the submission port with STARTTLS and AUTH.
struct Deployment {
    dir: tempfile::TempDir,
    /// Lines added to the `[mail]` section.
    mail: String,
}

impl Deployment {
    fn new(smtp_port: u16) -> Deployment {
        Deployment::with_mail(smtp_port, "")
    }

    fn with_mail(smtp_port: u16, mail: &str) -> Deployment {
        let dir = tempfile::tempdir().unwrap();
        let d = Deployment {
            dir,
            mail: mail.to_owned(),
        };
        d.configure(smtp_port);
        common::import_samples(d.dir.path());
        d
    }

    fn configure(&self, smtp_port: u16) {
        let codes = common::root().join("samples/codes");
        std::fs::write(
            self.dir.path().join("connector.toml"),
            format!(
                "[validation]\ntitles = \"{c}/titles.txt\"\nclinical_roles = \"{c}/clinical-roles.txt\"\n\
                 clinical_specialities = \"{c}/clinical-specialities.txt\"\nwork_areas = \"{c}/work-areas.txt\"\n\
                 [mailbox]\nkind = \"imap\"\nhost = \"{host}\"\nport = {imaps}\ntls = \"tls\"\n\
                 ca_file = \"{ca}\"\nuser = \"connector@connector.test\"\npoll_seconds = 1\n\
                 [outbox]\nkind = \"smtp\"\nhost = \"{host}\"\nport = {smtp_port}\ntls = \"starttls\"\n\
                 ca_file = \"{ca}\"\nuser = \"connector@connector.test\"\n\
                 [mail]\naddress = \"connector@connector.test\"\nrequire_dmarc_pass = true\n\
                 trusted_authserv_id = \"{TRUSTED}\"\noperators = [\"operator@connector.test\"]\n{mail}\
                 [[organisation]]\ncode = \"RXX\"\nadministrators = [\"admin@rxx.nhs.uk\"]\n\
                 [[organisation]]\ncode = \"RYY\"\nadministrators = [\"admin@ryy.nhs.uk\"]\n",
                c = codes.display(),
                host = env("MAIL_HOST"),
                imaps = port("MAIL_IMAPS_PORT"),
                ca = env("MAIL_CA_FILE"),
                mail = self.mail,
            ),
        )
        .unwrap();
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        mail::binary(self.dir.path(), args)
            .output()
            .expect("the binary runs")
    }

    fn once(&self, nightly: bool) -> String {
        mail::once(self.dir.path(), nightly)
    }

    fn export(&self) -> String {
        String::from_utf8_lossy(&self.run(&["directory", "export"]).stdout).into_owned()
    }
}

/// Sends a message as an MX would receive it from the Internet: through port 2525, no AUTH,
/// no verification (forged `Authentication-Results` headers with our id are deleted).
async fn send_in(from: &str, to: &str, raw: &[u8]) {
    send_to(port("MAIL_SMTP_PORT"), from, to, raw).await
}

/// Sends a message through the verified port: the server writes its own DMARC pass for the
/// test administrators (and deletes forged ones), as a verifying MX would.
async fn send_verified(from: &str, to: &str, raw: &[u8]) {
    send_to(port("MAIL_VERIFIED_PORT"), from, to, raw).await
}

async fn send_to(smtp_port: u16, from: &str, to: &str, raw: &[u8]) {
    let smtp: AsyncSmtpTransport<Tokio1Executor> =
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(env("MAIL_HOST"))
            .port(smtp_port)
            .tls(Tls::None)
            .build();
    let envelope = Envelope::new(Some(from.parse().unwrap()), vec![to.parse().unwrap()]).unwrap();
    smtp.send_raw(&envelope, raw).await.expect("SMTP accepts");
}

/// Empties the folders the tests use.
async fn clean() {
    for (user, folders) in [
        (
            "connector@connector.test",
            &["INBOX", "Processed", "Rejected"][..],
        ),
        ("admin@rxx.nhs.uk", &["INBOX"][..]),
        ("operator@connector.test", &["INBOX"][..]),
        ("intruder@evil.test", &["INBOX"][..]),
    ] {
        let mut s = login(user).await;
        for f in folders {
            if s.select(f).await.is_ok() {
                let _: Vec<_> = s
                    .store("1:*", "+FLAGS.SILENT (\\Deleted)")
                    .await
                    .map(|st| st.try_collect())
                    .unwrap()
                    .await
                    .unwrap_or_default();
                let _: Vec<_> = s.expunge().await.unwrap().try_collect().await.unwrap();
            }
        }
        let _ = s.logout().await;
    }
}

/// Waits until a user's inbox holds `n` messages.
async fn wait_for(user: &str, n: usize) -> Vec<Vec<u8>> {
    let start = Instant::now();
    loop {
        let got = messages(user, "INBOX").await;
        if got.len() >= n || start.elapsed() > Duration::from_secs(20) {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A submission; `headers` (whole lines, CRLF-ended) go above its From.
fn submission(from: &str, id: &str, headers: &str, csv: &[u8]) -> Vec<u8> {
    use std::fmt::Write;
    let mut b64 = String::new();
    let engine = csv
        .chunks(57)
        .map(lettre_base64)
        .collect::<Vec<_>>()
        .join("\r\n");
    write!(
        b64,
        "{headers}From: Admin <{from}>\r\n\
         To: connector@connector.test\r\nSubject: staff list\r\nMessage-ID: <{id}>\r\n\
         Date: Tue, 3 Jun 2025 10:00:00 +0100\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"BOUNDARY\"\r\n\r\n\
         --BOUNDARY\r\nContent-Type: text/plain\r\n\r\nPlease apply.\r\n\
         --BOUNDARY\r\nContent-Type: text/csv; name=\"staff.csv\"\r\n\
         Content-Disposition: attachment; filename=\"staff.csv\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{engine}\r\n--BOUNDARY--\r\n"
    )
    .unwrap();
    b64.into_bytes()
}

fn lettre_base64(bytes: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            out.push(if k <= chunk.len() {
                T[((n >> (18 - 6 * k)) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

struct Mail {
    subject: String,
    text: String,
    in_reply_to: Option<String>,
    attachment: Option<String>,
}

fn parse(raw: &[u8]) -> Mail {
    let m = MessageParser::default().parse(raw).unwrap();
    Mail {
        subject: m.subject().unwrap_or_default().to_owned(),
        text: m.body_text(0).unwrap_or_default().into_owned(),
        in_reply_to: m.in_reply_to().as_text().map(str::to_owned),
        attachment: m
            .attachments()
            .find(|a| a.attachment_name().is_some())
            .map(|a| String::from_utf8_lossy(a.contents()).into_owned()),
    }
}

fn results(csv: &str) -> BTreeMap<String, String> {
    let mut r = csv::Reader::from_reader(csv.trim_start_matches('\u{feff}').as_bytes());
    let headers = r.headers().unwrap().clone();
    let key = headers.iter().position(|h| h == "ExternalSyncID").unwrap();
    let result = headers.iter().position(|h| h == "Result").unwrap();
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            (rec[key].to_owned(), rec[result].to_owned())
        })
        .collect()
}

fn sample_csv() -> Vec<u8> {
    std::fs::read(common::root().join("samples/submission-rxx.csv")).unwrap()
}

#[test]
fn admin_sends_a_file_and_gets_acknowledgement_and_result_by_imap() {
    let _one = SERVERS.lock().unwrap_or_else(|e| e.into_inner());
    let rt = runtime();
    rt.block_on(clean());
    let d = Deployment::new(port("MAIL_SUBMISSION_PORT"));
    let check = d.run(&["check"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );

    let raw = submission("admin@rxx.nhs.uk", "real1@rxx", "", &sample_csv());
    rt.block_on(send_verified(
        "admin@rxx.nhs.uk",
        "connector@connector.test",
        &raw,
    ));
    rt.block_on(wait_for("connector@connector.test", 1));
    let out = d.once(false);
    assert!(out.contains("intake: 1 accepted, 0 rejected"), "{out}");
    assert_eq!(
        rt.block_on(messages("connector@connector.test", "Processed"))
            .len(),
        1
    );
    assert!(
        rt.block_on(messages("connector@connector.test", "INBOX"))
            .is_empty()
    );

    let inbox = rt.block_on(wait_for("admin@rxx.nhs.uk", 1));
    assert_eq!(inbox.len(), 1);
    let ack = parse(&inbox[0]);
    assert!(
        ack.subject.starts_with("Received: staff list for RXX"),
        "{}",
        ack.subject
    );
    assert_eq!(ack.in_reply_to.as_deref(), Some("real1@rxx"));
    assert!(
        ack.text.contains("Rows accepted for the nightly run: 9"),
        "{}",
        ack.text
    );

    d.once(true);
    let inbox = rt.block_on(wait_for("admin@rxx.nhs.uk", 2));
    assert_eq!(inbox.len(), 2);
    let result = parse(&inbox[1]);
    assert!(
        result.subject.starts_with("Result: staff list for RXX"),
        "{}",
        result.subject
    );
    let got = results(&result.attachment.expect("result CSV"));
    assert_eq!(got["RXX0200"], "Created");
    assert_eq!(got["RXX0002"], "Updated");
    assert_eq!(got["RXX0001"], "Unchanged");
    assert_eq!(got["RXX0203"], "Rejected");
    assert_eq!(got.len(), 16);
}

#[test]
fn spoofed_sender_is_refused_without_a_reply() {
    let _one = SERVERS.lock().unwrap_or_else(|e| e.into_inner());
    let rt = runtime();
    rt.block_on(clean());
    let d = Deployment::new(port("MAIL_SUBMISSION_PORT"));
    let before = d.export();
    // The forger writes a passing result under our own authserv-id (folded, upper-cased,
    // with a comment in front: the MTA deletes them all), and one under an id we do not
    // trust, and sends it in as any Internet sender would.
    let forged = submission(
        "admin@rxx.nhs.uk",
        "spoof1@evil",
        &format!(
            "Authentication-Results:\r\n {TRUSTED}; dkim=pass header.d=rxx.nhs.uk;\r\n \
             dmarc=pass header.from=rxx.nhs.uk\r\n\
             Authentication-Results: (ours) MX.CONNECTOR.TEST; dmarc=pass header.from=rxx.nhs.uk\r\n\
             Authentication-Results: evil.test; dmarc=pass header.from=rxx.nhs.uk\r\n"
        ),
        &sample_csv(),
    );
    let untrusted_only = submission(
        "admin@rxx.nhs.uk",
        "spoof2@evil",
        "Authentication-Results: evil.test; dmarc=pass header.from=rxx.nhs.uk\r\n",
        &sample_csv(),
    );
    rt.block_on(send_in(
        "intruder@evil.test",
        "connector@connector.test",
        &forged,
    ));
    rt.block_on(send_in(
        "intruder@evil.test",
        "connector@connector.test",
        &untrusted_only,
    ));
    rt.block_on(wait_for("connector@connector.test", 2));
    let out = d.once(true);
    assert!(out.contains("intake: 0 accepted, 2 rejected"), "{out}");
    assert_eq!(
        out.matches("our mail server recorded no DMARC result")
            .count(),
        2,
        "{out}"
    );
    let rejected = rt.block_on(messages("connector@connector.test", "Rejected"));
    assert_eq!(rejected.len(), 2);
    for m in &rejected {
        let text = String::from_utf8_lossy(m).to_ascii_lowercase();
        assert!(
            !text.contains("dkim=pass header.d=rxx.nhs.uk") && !text.contains("(ours)"),
            "the MTA deleted the forged headers: {text}"
        );
        assert!(text.contains("authentication-results: evil.test"), "{text}");
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        rt.block_on(messages("admin@rxx.nhs.uk", "INBOX"))
            .is_empty(),
        "no reply goes to an address that was not verified"
    );
    assert_eq!(d.export(), before, "nothing changed");
}

/// The message signed by the test DNS server's key of `domain` (dkimpy).
fn signed(domain: &str, raw: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let sign = std::env::var("DNS_SIGN_CMD").unwrap_or_else(|_| {
        panic!("DNS_SIGN_CMD is not set: run with scripts/test.sh (it starts scripts/dns)")
    });
    let mut child = std::process::Command::new(sign)
        .arg(domain)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the signer runs");
    child.stdin.take().unwrap().write_all(raw).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the signer failed");
    out.stdout
}

#[test]
fn dkim_mode_accepts_a_signed_file_and_refuses_unsigned_tampered_and_forged_ones() {
    let _one = SERVERS.lock().unwrap_or_else(|e| e.into_inner());
    let rt = runtime();
    rt.block_on(clean());
    let d = Deployment::with_mail(
        port("MAIL_SUBMISSION_PORT"),
        &format!(
            "sender_verification = \"dkim\"\ndns_servers = [\"{}\"]\ndns_timeout_seconds = 2\n",
            env("DNS_SERVER")
        ),
    );
    let check = d.run(&["check"]);
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{said}");
    assert!(
        said.contains("ok      sender verification: dkim: the DNS resolver answers"),
        "{said}"
    );
    let before = d.export();
    let good = signed(
        "rxx.nhs.uk",
        &submission("admin@rxx.nhs.uk", "dkim1@rxx", "", &sample_csv()),
    );
    // A signed message with one more row slipped into its file on the way.
    let text = String::from_utf8(signed(
        "rxx.nhs.uk",
        &submission("admin@rxx.nhs.uk", "dkim2@rxx", "", &sample_csv()),
    ))
    .unwrap();
    let tampered = text.replacen("\r\n--BOUNDARY--", "\r\nUkVYWA==\r\n--BOUNDARY--", 1);
    assert_ne!(tampered, text);
    let unsigned = submission("admin@rxx.nhs.uk", "dkim3@evil", "", &sample_csv());
    // A forged pass from "our MTA" changes nothing in dkim mode (sent through the verified
    // port, it even carries a genuine one: the connector does not read it).
    let forged = submission(
        "admin@rxx.nhs.uk",
        "dkim4@evil",
        &format!("Authentication-Results: {TRUSTED}; dmarc=pass header.from=rxx.nhs.uk\r\n"),
        &sample_csv(),
    );
    rt.block_on(send_in(
        "admin@rxx.nhs.uk",
        "connector@connector.test",
        &good,
    ));
    rt.block_on(send_in(
        "intruder@evil.test",
        "connector@connector.test",
        tampered.as_bytes(),
    ));
    rt.block_on(send_in(
        "intruder@evil.test",
        "connector@connector.test",
        &unsigned,
    ));
    rt.block_on(send_verified(
        "admin@rxx.nhs.uk",
        "connector@connector.test",
        &forged,
    ));
    rt.block_on(wait_for("connector@connector.test", 4));
    let out = d.once(false);
    assert!(out.contains("intake: 1 accepted, 3 rejected"), "{out}");
    assert!(out.contains("body hash does not match"), "{out}");
    assert_eq!(
        out.matches("(the message has no DKIM signature)").count(),
        2,
        "{out}"
    );
    let rejected = rt.block_on(messages("connector@connector.test", "Rejected"));
    assert_eq!(rejected.len(), 3);
    let inbox = rt.block_on(wait_for("admin@rxx.nhs.uk", 1));
    std::thread::sleep(Duration::from_millis(500));
    let inbox = if inbox.len() == 1 {
        rt.block_on(messages("admin@rxx.nhs.uk", "INBOX"))
    } else {
        inbox
    };
    assert_eq!(
        inbox.len(),
        1,
        "one acknowledgement, no reply to unverified senders"
    );
    let ack = parse(&inbox[0]);
    assert!(
        ack.subject.starts_with("Received: staff list for RXX"),
        "{}",
        ack.subject
    );
    assert_eq!(ack.in_reply_to.as_deref(), Some("dkim1@rxx"));
    assert_eq!(d.export(), before, "nothing applied before the nightly run");
}

#[test]
fn dkim_mode_with_dns_down_leaves_the_message_for_the_next_pass() {
    let _one = SERVERS.lock().unwrap_or_else(|e| e.into_inner());
    let rt = runtime();
    rt.block_on(clean());
    let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let mail = |server: &str| {
        format!(
            "sender_verification = \"dkim\"\ndns_servers = [\"{server}\"]\ndns_timeout_seconds = 1\n\
             max_attempts = 1\n"
        )
    };
    let d = Deployment::with_mail(
        port("MAIL_SUBMISSION_PORT"),
        &mail(&format!("127.0.0.1:{closed_port}")),
    );
    let good = signed(
        "rxx.nhs.uk",
        &submission("admin@rxx.nhs.uk", "dnsdown1@rxx", "", &sample_csv()),
    );
    rt.block_on(send_in(
        "admin@rxx.nhs.uk",
        "connector@connector.test",
        &good,
    ));
    rt.block_on(wait_for("connector@connector.test", 1));
    // Twice, with one attempt allowed: waiting for DNS uses up no attempt.
    for _ in 0..2 {
        let out = d.once(false);
        assert!(
            out.contains("intake: 0 accepted, 0 rejected, 1 left in the mailbox"),
            "{out}"
        );
    }
    assert_eq!(
        rt.block_on(messages("connector@connector.test", "INBOX"))
            .len(),
        1
    );
    // DNS is back: the same message is verified and taken.
    std::fs::write(
        d.dir.path().join("connector.toml"),
        std::fs::read_to_string(d.dir.path().join("connector.toml"))
            .unwrap()
            .replace(&format!("127.0.0.1:{closed_port}"), &env("DNS_SERVER")),
    )
    .unwrap();
    let out = d.once(false);
    assert!(out.contains("intake: 1 accepted, 0 rejected\n"), "{out}");
    assert!(
        rt.block_on(messages("connector@connector.test", "INBOX"))
            .is_empty()
    );
}

#[test]
fn smtp_down_while_replies_are_due_then_each_delivered_once() {
    let _one = SERVERS.lock().unwrap_or_else(|e| e.into_inner());
    let rt = runtime();
    rt.block_on(clean());
    // A port nothing listens on: the submission server is "down".
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let d = Deployment::new(closed_port);
    let raw = submission("admin@rxx.nhs.uk", "down1@rxx", "", &sample_csv());
    rt.block_on(send_verified(
        "admin@rxx.nhs.uk",
        "connector@connector.test",
        &raw,
    ));
    rt.block_on(wait_for("connector@connector.test", 1));
    let out = d.once(true);
    assert!(out.contains("2 e-mail(s) still waiting"), "{out}");
    let out = d.once(false);
    assert!(out.contains("2 e-mail(s) still waiting"), "{out}");

    d.configure(port("MAIL_SUBMISSION_PORT"));
    let out = d.once(false);
    assert!(out.contains("outbox: 2 e-mail(s) sent"), "{out}");
    let out = d.once(false);
    assert!(out.contains("outbox: 0 e-mail(s) sent"), "{out}");
    let inbox = rt.block_on(wait_for("admin@rxx.nhs.uk", 2));
    std::thread::sleep(Duration::from_millis(500));
    let inbox_again = rt.block_on(messages("admin@rxx.nhs.uk", "INBOX"));
    assert_eq!(inbox.len(), 2);
    assert_eq!(inbox_again.len(), 2, "each e-mail delivered once");
    let subjects: Vec<String> = inbox.iter().map(|m| parse(m).subject).collect();
    assert!(
        subjects[0].starts_with("Received") && subjects[1].starts_with("Result"),
        "{subjects:?}"
    );
}

#[test]
fn fifty_thousand_rows_are_held_then_approved_and_reported() {
    let _one = SERVERS.lock().unwrap_or_else(|e| e.into_inner());
    let rt = runtime();
    rt.block_on(clean());
    let d = Deployment::new(port("MAIL_SUBMISSION_PORT"));
    let mut csv = String::from("ExternalSyncID,FirstName,LastName,Organisation,JobTitle\n");
    for i in 0..50_000 {
        csv.push_str(&format!(
            "BIG{i:06},Person,Number{},RXX,Clerk\n",
            letters(i)
        ));
    }
    let raw = submission("admin@rxx.nhs.uk", "big1@rxx", "", csv.as_bytes());
    rt.block_on(send_verified(
        "admin@rxx.nhs.uk",
        "connector@connector.test",
        &raw,
    ));
    rt.block_on(wait_for("connector@connector.test", 1));
    let out = d.once(false);
    assert!(out.contains("intake: 1 accepted"), "{out}");
    let ack = parse(&rt.block_on(wait_for("admin@rxx.nhs.uk", 1))[0]);
    assert!(
        ack.text
            .contains("Rows accepted for the nightly run: 50000"),
        "{}",
        ack.text
    );

    // 50,000 new accounts for an organisation of a few: over the guard, held.
    let out = d.once(true);
    assert!(out.contains("HELD"), "{out}");
    let run = out
        .split("run ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .expect("run ID")
        .to_owned();
    let held = parse(&rt.block_on(wait_for("admin@rxx.nhs.uk", 2))[1]);
    assert!(
        held.subject.starts_with("Held for approval"),
        "{}",
        held.subject
    );
    let operator = rt.block_on(wait_for("operator@connector.test", 1));
    assert_eq!(parse(&operator[0]).subject, held.subject);

    let approve = d.run(&["approve", &run]);
    assert!(
        approve.status.success(),
        "{}",
        String::from_utf8_lossy(&approve.stderr)
    );
    d.once(false);
    let inbox = rt.block_on(wait_for("admin@rxx.nhs.uk", 3));
    let result = parse(&inbox[2]);
    assert!(result.subject.starts_with("Result"), "{}", result.subject);
    let got = results(&result.attachment.expect("result CSV"));
    assert_eq!(got.len(), 50_000);
    assert!(got.values().all(|r| r == "Created"));
}

/// A distinct surname part for each row (names are letters only).
fn letters(mut i: usize) -> String {
    let mut s = String::new();
    for _ in 0..4 {
        s.push((b'a' + (i % 26) as u8) as char);
        i /= 26;
    }
    s
}
