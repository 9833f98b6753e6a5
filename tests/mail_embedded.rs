//! The e-mail connector on the embedded default (maildir in, `.eml` files out), through the
//! binary: acknowledgement, nightly result, superseded files, refused senders and
//! attachments, and a kill during intake.

// Test code: a failure is a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use mail_parser::{MessageParser, MimeHeaders};

/// A deployment in a temp dir: config, seeded directory, empty maildir.
struct Deployment {
    dir: tempfile::TempDir,
}

impl Deployment {
    fn new() -> Deployment {
        let dir = tempfile::tempdir().unwrap();
        let codes = common::root().join("samples/codes");
        std::fs::write(
            dir.path().join("connector.toml"),
            format!(
                "[validation]\ntitles = \"{c}/titles.txt\"\nclinical_roles = \"{c}/clinical-roles.txt\"\n\
                 clinical_specialities = \"{c}/clinical-specialities.txt\"\nwork_areas = \"{c}/work-areas.txt\"\n\
                 [mail]\naddress = \"connector@connector.test\"\n\
                 [[organisation]]\ncode = \"RXX\"\nadministrators = [\"admin@rxx.nhs.uk\"]\n\
                 [[organisation]]\ncode = \"RYY\"\nadministrators = [\"admin@ryy.nhs.uk\"]\n",
                c = codes.display()
            ),
        )
        .unwrap();
        let d = Deployment { dir };
        common::import_samples(d.path());
        d
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        let mut all = vec!["--config", "connector.toml"];
        all.extend_from_slice(args);
        common::run_in(self.path(), &all)
    }

    fn once(&self, now: bool) -> String {
        let args: &[&str] = if now {
            &["run", "--once", "--now"]
        } else {
            &["run", "--once"]
        };
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn deliver(&self, name: &str, raw: &[u8]) {
        let new = self.path().join("var/mail/inbox/new");
        std::fs::create_dir_all(&new).unwrap();
        std::fs::write(new.join(name), raw).unwrap();
    }

    /// The `.eml` files written so far, in order.
    fn outbox(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.path().join("var/outbox"))
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|e| e == "eml"));
        files.sort();
        files
    }

    fn export(&self) -> String {
        let out = self.run(&["directory", "export"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn filed(&self, folder: &str) -> usize {
        std::fs::read_dir(self.path().join("var/mail").join(folder).join("cur"))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

/// A reply as the recipient sees it.
struct Mail {
    to: String,
    subject: String,
    text: String,
    html: String,
    in_reply_to: Option<String>,
    attachment: Option<(String, String)>,
}

fn read_mail(path: &Path) -> Mail {
    let raw = std::fs::read(path).unwrap();
    let m = MessageParser::default().parse(&raw).unwrap();
    Mail {
        to: m
            .to()
            .unwrap()
            .first()
            .unwrap()
            .address()
            .unwrap()
            .to_owned(),
        subject: m.subject().unwrap_or_default().to_owned(),
        text: m.body_text(0).unwrap_or_default().into_owned(),
        html: m.body_html(0).unwrap_or_default().into_owned(),
        in_reply_to: m.in_reply_to().as_text().map(str::to_owned),
        attachment: m.attachment(0).map(|a| {
            (
                a.attachment_name().unwrap_or_default().to_owned(),
                String::from_utf8_lossy(a.contents()).into_owned(),
            )
        }),
    }
}

/// `ExternalSyncID → Result` of a report CSV.
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

fn message(from: &str, id: &str, attachments: &[(&str, &[u8])]) -> Vec<u8> {
    let mut m = format!(
        "From: Admin <{from}>\r\nTo: connector@connector.test\r\nSubject: staff list\r\n\
         Message-ID: <{id}>\r\nDate: Tue, 3 Jun 2025 10:00:00 +0100\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"BOUNDARY\"\r\n\r\n\
         --BOUNDARY\r\nContent-Type: text/plain\r\n\r\nPlease apply.\r\n"
    );
    for (name, body) in attachments {
        use std::fmt::Write;
        let b64 = base64(body);
        write!(
            m,
            "--BOUNDARY\r\nContent-Type: text/csv; name=\"{name}\"\r\n\
             Content-Disposition: attachment; filename=\"{name}\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{b64}\r\n"
        )
        .unwrap();
    }
    m.push_str("--BOUNDARY--\r\n");
    m.into_bytes()
}

fn base64(bytes: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for (i, chunk) in bytes.chunks(3).enumerate() {
        if i > 0 && i % 19 == 0 {
            out.push_str("\r\n");
        }
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(T[((n >> (18 - 6 * k)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn sample_csv() -> Vec<u8> {
    std::fs::read(common::root().join("samples/submission-rxx.csv")).unwrap()
}

#[test]
fn acknowledgement_then_nightly_result_with_per_row_results() {
    let d = Deployment::new();
    let before = d.export();
    d.deliver(
        "1.a",
        &message(
            "admin@rxx.nhs.uk",
            "m1@rxx",
            &[("staff.csv", &sample_csv())],
        ),
    );

    let out = d.once(false);
    assert!(out.contains("intake: 1 accepted, 0 rejected"), "{out}");
    assert_eq!(d.filed("Processed"), 1);
    let files = d.outbox();
    assert_eq!(files.len(), 1, "only the acknowledgement so far");
    let ack = read_mail(&files[0]);
    assert_eq!(ack.to, "admin@rxx.nhs.uk");
    assert_eq!(ack.in_reply_to.as_deref(), Some("m1@rxx"));
    assert!(ack.text.contains("Rows read: 16"), "{}", ack.text);
    // Checked against the directory as it is now: the second Anne Lee (a likely duplicate of
    // line 2), the mover, the leaver, the keys naming two people and the unit move are refused
    // already, beside the two invalid lines.
    assert!(
        ack.text.contains("Rows accepted for the nightly run: 9"),
        "{}",
        ack.text
    );
    assert!(
        ack.text.contains(
            "Rows refused: 7 (5 of them by the directory as it is now: the nightly run checks \
             them again)"
        ),
        "{}",
        ack.text
    );
    assert!(
        ack.text.contains("line 9: OfficePhone \"12345\""),
        "{}",
        ack.text
    );
    assert!(
        ack.text.contains("at 02:00 (Europe/London)"),
        "{}",
        ack.text
    );
    assert!(
        ack.text.contains("the later file replaces this one"),
        "{}",
        ack.text
    );
    let (name, refused) = ack.attachment.expect("refused lines CSV");
    assert_eq!(name, "refused-lines-staff.csv");
    let refused = results(&refused);
    assert_eq!(refused.len(), 7, "{refused:?}");
    for key in [
        "RXX0201", "RXX0203", "RXX0204", "RYY0002", "RXX0006", "RXX0008", "RXX0010",
    ] {
        assert_eq!(refused[key], "Rejected", "{key}");
    }
    assert_eq!(
        d.export(),
        before,
        "nothing is applied before the nightly run"
    );

    let out = d.once(true);
    assert!(out.contains("RXX: run"), "{out}");
    let files = d.outbox();
    assert_eq!(files.len(), 2);
    let result = read_mail(&files[1]);
    assert!(
        result
            .subject
            .starts_with("Result: staff list for RXX, run "),
        "{}",
        result.subject
    );
    assert!(result.text.contains("Created:   2"), "{}", result.text);
    assert!(
        result.html.contains("<td>Updated</td><td>3</td>"),
        "{}",
        result.html
    );
    let (_, report) = result.attachment.expect("result CSV");
    let got = results(&report);
    let expected: BTreeMap<String, String> = [
        ("RXX0001", "Unchanged"),
        ("RXX0002", "Updated"),
        ("RXX0003", "Updated"),
        ("RXX0104", "Updated"),
        ("RXX0200", "Created"),
        ("RXX0201", "Rejected"),
        ("RXX0202", "Created"),
        ("RXX0203", "Rejected"),
        ("RXX0204", "Rejected"),
        ("RYY0002", "Rejected"),
        ("RXX0006", "Rejected"),
        ("RXX0008", "Rejected"),
        ("RXX0009", "Unchanged"),
        ("RXX0010", "Rejected"),
        ("RXX0011", "Unchanged"),
        ("RXX0012", "Unchanged"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(got, expected, "{report}");
    assert_ne!(d.export(), before, "the nightly run changed the directory");

    // Ben Carter's history names the channel, the administrator, the attachment and line.
    let out = d.run(&["history", "ben.carter@nhs.net", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let history: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let changes = history["changes"].as_array().unwrap();
    let fields: Vec<&str> = changes
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["JobTitle", "MobilePhone"], "{history:#}");
    assert_eq!(changes[0]["after"], "Senior Staff Nurse");
    for c in changes {
        assert_eq!(c["channel"], "e-mail", "{c}");
        assert_eq!(c["sender"], "admin@rxx.nhs.uk", "{c}");
        assert_eq!(c["file"], "staff.csv", "{c}");
        assert_eq!(c["line"], 3, "{c}");
        assert!(
            result.subject.ends_with(c["run"].as_str().unwrap()),
            "the result e-mail's run: {c}"
        );
    }
    let out = d.run(&["history", "ben.carter@nhs.net"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("    e-mail from admin@rxx.nhs.uk, staff.csv line 3"),
        "{text}"
    );

    // A second nightly step has nothing to do and sends nothing.
    let out = d.once(true);
    assert!(out.contains("no submission waiting"), "{out}");
    assert_eq!(d.outbox().len(), 2);
}

#[test]
fn the_latest_of_two_files_is_applied_and_the_first_superseded() {
    let d = Deployment::new();
    let first = b"ExternalSyncID,FirstName,LastName,Organisation,JobTitle\nRXX0001,Anne,Lee,RXX,First Title\n";
    let second = b"ExternalSyncID,FirstName,LastName,Organisation,JobTitle\nRXX0001,Anne,Lee,RXX,Second Title\n";
    d.deliver(
        "1.a",
        &message("admin@rxx.nhs.uk", "first@rxx", &[("first.csv", first)]),
    );
    d.once(false);
    d.deliver(
        "2.b",
        &message("admin@rxx.nhs.uk", "second@rxx", &[("second.csv", second)]),
    );
    d.once(true);
    let mails: Vec<Mail> = d.outbox().iter().map(|p| read_mail(p)).collect();
    let subjects: Vec<&str> = mails.iter().map(|m| m.subject.as_str()).collect();
    assert_eq!(subjects.len(), 4, "{subjects:?}");
    let superseded = mails
        .iter()
        .find(|m| m.subject.starts_with("Superseded"))
        .expect("superseded notice");
    assert_eq!(superseded.in_reply_to.as_deref(), Some("first@rxx"));
    assert!(
        superseded.text.contains("\"second.csv\""),
        "{}",
        superseded.text
    );
    let second_ack = mails
        .iter()
        .find(|m| {
            m.subject.starts_with("Received") && m.in_reply_to.as_deref() == Some("second@rxx")
        })
        .expect("the second file's acknowledgement");
    assert!(
        second_ack
            .text
            .contains("This file replaces your earlier file \"first.csv\""),
        "{}",
        second_ack.text
    );
    let result = mails
        .iter()
        .find(|m| m.subject.starts_with("Result"))
        .expect("result");
    assert_eq!(result.in_reply_to.as_deref(), Some("second@rxx"));
    let export = d.export();
    assert!(export.contains("Second Title") && !export.contains("First Title"));
}

#[test]
fn unauthorised_sender_and_bad_attachments_are_rejected_with_the_reason() {
    let d = Deployment::new();
    let before = d.export();
    let csv = sample_csv();
    d.deliver(
        "1",
        &message("intruder@evil.test", "x1@evil", &[("staff.csv", &csv)]),
    );
    d.deliver("2", &message("admin@rxx.nhs.uk", "x2@rxx", &[]));
    d.deliver(
        "3",
        &message(
            "admin@rxx.nhs.uk",
            "x3@rxx",
            &[("a.csv", &csv), ("b.csv", &csv)],
        ),
    );
    // An RYY administrator sending RXX's rows: the file is rejected whole.
    d.deliver(
        "4",
        &message("admin@ryy.nhs.uk", "x4@ryy", &[("rxx.csv", &csv)]),
    );
    let out = d.once(false);
    assert!(out.contains("intake: 0 accepted, 4 rejected"), "{out}");
    assert_eq!(d.filed("Rejected"), 4);
    let mails: BTreeMap<String, Mail> = d
        .outbox()
        .iter()
        .map(|p| read_mail(p))
        .map(|m| (m.in_reply_to.clone().unwrap(), m))
        .collect();
    assert!(
        mails["x1@evil"]
            .text
            .contains("intruder@evil.test is not an authorised connector administrator")
    );
    assert_eq!(mails["x1@evil"].to, "intruder@evil.test");
    assert!(mails["x2@rxx"].text.contains("has no staff list attached"));
    assert!(
        mails["x3@rxx"]
            .text
            .contains("has 2 staff lists attached (a.csv, b.csv)")
    );
    assert!(
        mails["x4@ryy"].text.contains(
            "its rows are for RXX, and admin@ryy.nhs.uk is a connector administrator of RYY only"
        ),
        "{}",
        mails["x4@ryy"].text
    );
    d.once(true);
    assert_eq!(d.export(), before, "nothing changed");
}

#[test]
fn a_message_stored_but_not_filed_is_filed_without_a_second_reply() {
    // The state a stop between storing and filing leaves: the message is in the database and
    // still in the inbox.
    let d = Deployment::new();
    let raw = message(
        "admin@rxx.nhs.uk",
        "m1@rxx",
        &[("staff.csv", &sample_csv())],
    );
    d.deliver("1.a", &raw);
    d.once(false);
    d.deliver("1.a", &raw);
    let out = d.once(false);
    assert!(out.contains("1 already stored and now filed"), "{out}");
    assert_eq!(d.outbox().len(), 1, "one acknowledgement only");
    // The same message delivered again under another name is recognised by its Message-ID.
    d.deliver("9.z", &raw);
    d.once(true);
    let kinds: Vec<String> = d.outbox().iter().map(|p| read_mail(p).subject).collect();
    assert_eq!(kinds.len(), 2, "{kinds:?}");
}

#[test]
fn killed_during_intake_loses_nothing_and_answers_each_message_once() {
    let d = Deployment::new();
    let csv = sample_csv();
    let n = 40;
    for i in 0..n {
        d.deliver(
            &format!("{i:03}.m"),
            &message(
                "admin@rxx.nhs.uk",
                &format!("k{i}@rxx"),
                &[("staff.csv", &csv)],
            ),
        );
    }
    // The service, killed with SIGKILL part-way through its first intake pass.
    let mut child = Command::new(env!("CARGO_BIN_EXE_push-connector"))
        .args(["--config", "connector.toml", "run"])
        .current_dir(d.path())
        .env_remove("PUSH_CONNECTOR_CONFIG")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until some, but not all, messages have been filed.
    let start = std::time::Instant::now();
    while d.filed("Processed") < 3 && start.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let filed_at_kill = d.filed("Processed");
    assert!(filed_at_kill < n, "the kill came too late to test anything");

    d.once(false);
    assert_eq!(d.filed("Processed"), n, "every message filed");
    let acks: Vec<String> = d
        .outbox()
        .iter()
        .map(|p| read_mail(p).in_reply_to.unwrap())
        .collect();
    let unique: std::collections::BTreeSet<&String> = acks.iter().collect();
    assert_eq!(acks.len(), n, "one acknowledgement per message");
    assert_eq!(unique.len(), n, "no message acknowledged twice");
}

#[test]
fn the_service_answers_new_mail_while_running_and_stops_cleanly_on_sigterm() {
    let d = Deployment::new();
    let config = d.path().join("connector.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("[mailbox]\npoll_seconds = 1\n");
    std::fs::write(&config, text).unwrap();

    let mut service = Command::new(env!("CARGO_BIN_EXE_push-connector"))
        .args(["--config", "connector.toml", "run"])
        .current_dir(d.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The service is already waiting when the message arrives.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    d.deliver(
        "1700000000.svc.host",
        &message(
            "admin@rxx.nhs.uk",
            "<svc-1@rxx.nhs.uk>",
            &[("staff.csv", &sample_csv())],
        ),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while d.outbox().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no acknowledgement within 30 s"
        );
        assert!(service.try_wait().unwrap().is_none(), "the service stopped");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let ack = read_mail(&d.outbox()[0]);
    assert_eq!(ack.to, "admin@rxx.nhs.uk");
    assert!(ack.subject.starts_with("Received"), "{}", ack.subject);

    let term = Command::new("kill")
        .args(["-TERM", &service.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let status = loop {
        if let Some(status) = service.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running 15 s after SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    assert_eq!(d.filed("Processed"), 1);
}

/// The message with one header line replaced (`From:` etc.), or added at the top.
fn with_header(raw: &[u8], name: &str, value: &str) -> Vec<u8> {
    let text = String::from_utf8(raw.to_vec()).unwrap();
    let prefix = format!("{name}:");
    let mut replaced = false;
    let mut lines: Vec<String> = text
        .split("\r\n")
        .map(|l| {
            if !replaced && l.starts_with(&prefix) {
                replaced = true;
                format!("{name}: {value}")
            } else {
                l.to_owned()
            }
        })
        .collect();
    if !replaced {
        lines.insert(0, format!("{name}: {value}"));
    }
    lines.join("\r\n").into_bytes()
}

#[test]
fn unusable_senders_and_machine_mail_get_no_answer_and_do_not_stop_the_pass() {
    let d = Deployment::new();
    let good = message(
        "admin@rxx.nhs.uk",
        "good@rxx",
        &[("staff.csv", &sample_csv())],
    );
    let mut n = 0;
    let mut deliver = |raw: Vec<u8>| {
        n += 1;
        d.deliver(&format!("{n:02}.m"), &raw);
    };
    for (i, from) in [
        "<hr.systems@nhs.net>evil@evil.example",
        "\"x\"@nhs.net",
        "a@nhs.net.",
        "<@relay.example:admin@rxx.nhs.uk>",
        "admin@rxx.nhs.uk, intruder@evil.test",
    ]
    .iter()
    .enumerate()
    {
        deliver(with_header(
            &with_header(&good, "Message-ID", &format!("<bad{i}@x>")),
            "From",
            from,
        ));
    }
    // Two From headers: the first is an administrator.
    let two = String::from_utf8(with_header(&good, "Message-ID", "<two@x>"))
        .unwrap()
        .replacen("From:", "From: intruder@evil.test\r\nFrom:", 1);
    deliver(two.into_bytes());
    // An out-of-office from the administrator, a bounce, a list message.
    let ooo = with_header(
        &with_header(&good, "Message-ID", "<ooo@rxx>"),
        "Auto-Submitted",
        "auto-replied",
    );
    deliver(with_header(&ooo, "X-Auto-Response-Suppress", "All"));
    deliver(with_header(
        &with_header(&good, "Message-ID", "<bounce@rxx>"),
        "Return-Path",
        "<>",
    ));
    deliver(with_header(
        &with_header(&good, "Message-ID", "<list@rxx>"),
        "List-Id",
        "<staff.lists.rxx.nhs.uk>",
    ));
    deliver(with_header(
        &with_header(&good, "Message-ID", "<bulk@rxx>"),
        "Precedence",
        "bulk",
    ));
    // And last, the real submission: it is still handled in the same pass.
    deliver(good);
    let out = d.once(false);
    assert!(out.contains("intake: 1 accepted, 10 rejected"), "{out}");
    assert_eq!(d.filed("Rejected"), 10);
    let mails: Vec<Mail> = d.outbox().iter().map(|p| read_mail(p)).collect();
    assert_eq!(mails.len(), 1, "only the acknowledgement");
    assert_eq!(mails[0].in_reply_to.as_deref(), Some("good@rxx"));
}

#[test]
fn a_message_that_keeps_failing_is_set_aside_after_its_attempts() {
    let d = Deployment::new();
    d.deliver(
        "1.poison",
        &message("admin@rxx.nhs.uk", "p@rxx", &[("staff.csv", &sample_csv())]),
    );
    d.deliver(
        "2.next",
        &message("admin@rxx.nhs.uk", "n@rxx", &[("staff.csv", &sample_csv())]),
    );
    // Five earlier attempts died with the process (as a file exhausting memory would make them).
    d.once(false);
    let db = d.path().join("var/state.sqlite");
    let conn = |sql: &str| -> Result<String, sqlx::Error> {
        use sqlx::Row;
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let pool = sqlx::SqlitePool::connect(&format!("sqlite:{}", db.display())).await?;
                let rows = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
                    .fetch_all(&pool)
                    .await?;
                let first = rows.first().and_then(|r| r.try_get::<String, _>(0).ok());
                pool.close().await;
                Ok(first.unwrap_or_default())
            })
    };
    conn("DELETE FROM mail_submissions; DELETE FROM mail_messages; DELETE FROM mail_outbox;")
        .unwrap();
    for dir in ["Processed/cur", "Rejected/cur"] {
        for e in std::fs::read_dir(d.path().join("var/mail").join(dir)).unwrap() {
            let e = e.unwrap();
            std::fs::rename(
                e.path(),
                d.path().join("var/mail/inbox/new").join(e.file_name()),
            )
            .unwrap();
        }
    }
    for f in d.outbox() {
        std::fs::remove_file(f).unwrap();
    }
    conn(
        "INSERT INTO mail_attempts (mailbox_key, attempts, last_error, updated_at) \
         VALUES ('maildir:1.poison', 5, NULL, '2025-06-03T10:00:00+00:00')",
    )
    .unwrap();
    let out = d.once(false);
    assert!(out.contains("intake: 1 accepted, 1 rejected"), "{out}");
    assert!(d.path().join("var/mail/Rejected/cur/1.poison").is_file());
    let reason =
        conn("SELECT reason FROM mail_messages WHERE mailbox_key = 'maildir:1.poison'").unwrap();
    assert!(
        reason.contains("could not be handled in 5 attempts")
            && reason.contains("the service stopped while handling it"),
        "{reason}"
    );
    let mails: Vec<Mail> = d.outbox().iter().map(|p| read_mail(p)).collect();
    assert_eq!(mails.len(), 1, "no answer to the poison message");
    assert_eq!(mails[0].in_reply_to.as_deref(), Some("n@rxx"));
}

#[test]
fn a_reused_message_id_is_answered_and_a_true_duplicate_is_not() {
    let d = Deployment::new();
    let first = message(
        "admin@rxx.nhs.uk",
        "same@rxx",
        &[("staff.csv", &sample_csv())],
    );
    d.deliver("1.a", &first);
    d.once(false);
    // The same message again, by another route (other trace headers): nothing.
    d.deliver(
        "2.b",
        &with_header(&first, "Received", "from relay by mx; Tue, 3 Jun 2025"),
    );
    // Another message reusing the Message-ID: answered.
    d.deliver("3.c", &message("admin@rxx.nhs.uk", "same@rxx", &[]));
    let out = d.once(false);
    assert!(out.contains("1 already stored and now filed"), "{out}");
    let mails: Vec<Mail> = d.outbox().iter().map(|p| read_mail(p)).collect();
    assert_eq!(
        mails.len(),
        2,
        "{:?}",
        mails.iter().map(|m| &m.subject).collect::<Vec<_>>()
    );
    assert!(mails[1].text.contains("has no staff list attached"));
}

#[test]
fn a_file_with_nothing_to_apply_says_so_and_replaces_nothing() {
    let d = Deployment::new();
    d.deliver(
        "1.a",
        &message(
            "admin@rxx.nhs.uk",
            "good@rxx",
            &[("staff.csv", &sample_csv())],
        ),
    );
    let broken =
        b"ExternalSyncID,FirstName,LastName,Organisation\r\nE1,=1+1,Lee,RXX\r\nE2,,Ng,RXX\r\n";
    d.deliver(
        "2.b",
        &message("admin@rxx.nhs.uk", "broken@rxx", &[("broken.csv", broken)]),
    );
    d.once(false);
    let mails: Vec<Mail> = d.outbox().iter().map(|p| read_mail(p)).collect();
    let ack = mails
        .iter()
        .find(|m| m.in_reply_to.as_deref() == Some("broken@rxx"))
        .unwrap();
    assert!(
        ack.text.contains("Nothing in this file can be applied"),
        "{}",
        ack.text
    );
    assert!(
        ack.text.contains("Your earlier file \"staff.csv\""),
        "{}",
        ack.text
    );
    assert!(
        !ack.text.contains("will be applied in the next nightly run"),
        "{}",
        ack.text
    );
    d.once(true);
    let mails: Vec<Mail> = d.outbox().iter().map(|p| read_mail(p)).collect();
    assert!(
        !mails.iter().any(|m| m.subject.starts_with("Superseded")),
        "the broken file replaced nothing"
    );
    let result = mails
        .iter()
        .find(|m| m.subject.starts_with("Result"))
        .expect("the good file was applied");
    assert_eq!(result.in_reply_to.as_deref(), Some("good@rxx"));
    // The result lists the lines that were not applied, with their reasons, in its body.
    assert!(
        result.text.contains("Lines not applied, with the reason:"),
        "{}",
        result.text
    );
    assert!(result.text.contains("  line "), "{}", result.text);
}

#[test]
fn strangers_get_one_rejection_a_day_quoting_nothing() {
    let d = Deployment::new();
    for (i, name) in ["1.a", "2.b", "3.c"].iter().enumerate() {
        let m = message(
            "intruder@evil.test",
            &format!("x{i}@evil"),
            &[("staff.csv", &sample_csv())],
        );
        d.deliver(
            name,
            &with_header(&m, "Subject", "CLICK https://evil.example now"),
        );
    }
    let out = d.once(false);
    assert!(out.contains("intake: 0 accepted, 3 rejected"), "{out}");
    let mails: Vec<Mail> = d.outbox().iter().map(|p| read_mail(p)).collect();
    assert_eq!(
        mails.len(),
        1,
        "one rejection a day to an address that is not an administrator"
    );
    assert!(
        !mails[0].subject.contains("evil.example"),
        "{}",
        mails[0].subject
    );
    assert!(!mails[0].text.contains("evil.example"), "{}", mails[0].text);
    assert!(!mails[0].html.contains("evil.example"), "{}", mails[0].html);
}

#[cfg(unix)]
#[test]
fn the_state_is_private_to_the_service() {
    use std::os::unix::fs::PermissionsExt;
    let d = Deployment::new();
    d.once(false);
    let mode = |p: &str| {
        std::fs::metadata(d.path().join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("var/state.sqlite"), 0o600);
    assert_eq!(mode("var/directory.sqlite"), 0o600);
    assert_eq!(mode("var"), 0o700);
}

#[test]
fn a_huge_cell_does_not_make_a_huge_reply() {
    let d = Deployment::new();
    let toml = d.path().join("connector.toml");
    let config = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(
        &toml,
        config.replace("[mail]\n", "[mail]\nmax_reply_bytes = 200000\n"),
    )
    .unwrap();
    let mut csv = b"ExternalSyncID,FirstName,LastName,Organisation\r\n".to_vec();
    csv.extend(format!("E1,={},Lee,RXX\r\n", "A".repeat(3_000_000)).into_bytes());
    for i in 2..400 {
        csv.extend(format!("E{i},Ann{i}x,=Lee,RXX\r\n").into_bytes());
    }
    csv.extend(b"E999,Ann,Lee,RXX\r\n");
    d.deliver(
        "1.a",
        &message("admin@rxx.nhs.uk", "big@rxx", &[("big.csv", &csv)]),
    );
    d.once(false);
    let files = d.outbox();
    assert_eq!(files.len(), 1);
    let size = std::fs::metadata(&files[0]).unwrap().len();
    assert!(size < 200_000, "the acknowledgement is {size} bytes");
    let ack = read_mail(&files[0]);
    assert!(ack.text.contains("Rows refused: 399"), "{}", ack.text);
    assert!(ack.text.contains("lists 398 of them"), "{}", ack.text);
    assert!(
        ack.text.contains("… and 349 more") || ack.text.contains("... and 349 more"),
        "{}",
        ack.text
    );
    let (_, attached) = ack.attachment.expect("the refused lines");
    assert!(!attached.contains("AAAAAAAAAA"), "the huge row is left out");
}

#[test]
fn operator_verbs_need_no_mail_passwords_and_logs_are_plain_off_a_terminal() {
    let d = Deployment::new();
    let toml = d.path().join("connector.toml");
    let config = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(
        &toml,
        format!(
            "[mailbox]\nkind = \"imap\"\nhost = \"127.0.0.1\"\nuser = \"connector@connector.test\"\n\
             [outbox]\nkind = \"smtp\"\nhost = \"127.0.0.1\"\nuser = \"connector@connector.test\"\n{config}"
        ),
    )
    .unwrap();
    for verb in [&["runs"][..], &["outbox", "list"], &["directory", "export"]] {
        let out = d.run(verb);
        assert!(
            out.status.success(),
            "{verb:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let sample = common::root().join("samples/submission-rxx.csv");
    let out = d.run(&["validate", sample.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The service itself says which secrets it lacks, all at once.
    let out = d.run(&["run", "--once"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mailbox.password must be set"), "{err}");
    assert!(err.contains("outbox.password must be set"), "{err}");
    // Logs written to a pipe carry no colour escapes.
    let d = Deployment::new();
    d.deliver(
        "1.a",
        &message("admin@rxx.nhs.uk", "m@rxx", &[("s.csv", &sample_csv())]),
    );
    let out = d.run(&["-v", "run", "--once"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("submission received"), "{log}");
    assert!(!log.contains('\u{1b}'), "{log}");
}

#[test]
fn intake_holds_one_message_at_a_time_whatever_the_inbox_holds() {
    // 48 messages of 10 MB each (480 MB): read all at once, they would not fit in the
    // 450 MB of address space the service is given here; read one at a time, they do.
    // One malloc arena: the C allocator's per-thread arenas reserve 64 MB of address space
    // each, as many as there are database threads, which would make the cap measure them.
    let d = Deployment::new();
    let picture: Vec<u8> = (0..7_500_000u64).map(|i| (i * 7919 % 251) as u8).collect();
    for i in 0..48 {
        d.deliver(
            &format!("{i:02}.big"),
            &message(
                "admin@rxx.nhs.uk",
                &format!("big{i}@rxx"),
                &[("scan.png", &picture)],
            ),
        );
    }
    let out = capped_once(&d, 450_000_000, 240);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("intake: 0 accepted, 48 rejected"),
        "{stdout}"
    );
    assert_eq!(d.filed("Rejected"), 48);
}

#[test]
fn a_rejection_never_quotes_the_connector_key() {
    let d = Deployment::new();
    let toml = d.path().join("connector.toml");
    let config = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(
        &toml,
        config.replace(
            "administrators = [\"admin@ryy.nhs.uk\"]\n",
            "administrators = [\"admin@ryy.nhs.uk\"]\nconnector_key = \"S3cretKey42\"\n",
        ),
    )
    .unwrap();
    let m = message("admin@ryy.nhs.uk", "k@ryy", &[]);
    d.deliver("1.a", &with_header(&m, "Subject", "staff list S3cretKey42"));
    d.once(false);
    let files = d.outbox();
    assert_eq!(files.len(), 1);
    let raw = String::from_utf8_lossy(&std::fs::read(&files[0]).unwrap()).into_owned();
    let mail = read_mail(&files[0]);
    assert!(
        mail.text.contains("has no staff list attached"),
        "{}",
        mail.text
    );
    assert!(mail.subject.contains("[connector key]"), "{}", mail.subject);
    assert!(!raw.contains("S3cretKey42"), "{raw}");
}

/// Accounts whose ExternalSyncIDs are numbers with leading zeros, as an HR system keeps them.
fn import_numeric_keys(d: &Deployment) {
    let csv = "ID,ExternalSyncID,Title,FirstName,LastName,DisplayName,Email,JobTitle,Organisation,\
               OrganisationUnit,OfficePhone,MobilePhone,Fax,Pager,Notes,ClinicalRole,\
               ClinicalSpeciality,WorkArea,Status,SecondaryEmails\n\
               3000001,000123,Mr,Omar,Shah,\"Shah, Omar (RXX)\",omar.shah@nhs.net,Porter,RXX,,,,,,,,,,Active,\n\
               3000002,004567,Ms,Rosa,Diaz,\"Diaz, Rosa (RXX)\",rosa.diaz@nhs.net,Cook,RXX,,,,,,,,,,Active,\n";
    std::fs::write(d.path().join("numeric.csv"), csv).unwrap();
    let out = d.run(&["directory", "import", "numeric.csv"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.contains("imported 2 accounts"),
        "{said}"
    );
}

#[test]
fn a_file_excel_damaged_is_answered_under_one_heading_per_mistake_and_changes_nothing() {
    let d = Deployment::new();
    import_numeric_keys(&d);
    let before = d.export();
    // As Excel saves it after opening the CSV: leading zeros gone from the keys; and a name
    // typed in UTF-8 but read as Windows-1252 somewhere on the way ("José" as "JosÃ©").
    let file = "ExternalSyncID,FirstName,LastName,JobTitle,Organisation\r\n\
                123,Omar,Shah,Senior Porter,RXX\r\n\
                4567,Rosa,Diaz,Head Cook,RXX\r\n\
                RXX0300,JosÃ©,Martins,Porter,RXX\r\n\
                RXX0301,Nia,Rees,Porter,RXX\r\n";
    d.deliver(
        "1.a",
        &message(
            "admin@rxx.nhs.uk",
            "excel@rxx",
            &[("staff.csv", file.as_bytes())],
        ),
    );
    let out = d.once(false);
    assert!(out.contains("intake: 1 accepted, 0 rejected"), "{out}");
    let ack = read_mail(&d.outbox()[0]);
    let text = &ack.text;
    assert!(
        text.contains("Rows accepted for the nightly run: 1"),
        "{text}"
    );
    assert!(
        text.contains(
            "Keys damaged by a spreadsheet: nothing was created for them (2 lines: 2, 3)"
        ),
        "{text}"
    );
    assert!(
        text.contains("Format the ExternalSyncID column as Text"),
        "{text}"
    );
    assert!(
        text.contains("the account with ExternalSyncID 000123 is omar.shah@nhs.net"),
        "{text}"
    );
    assert!(
        text.contains("Text in the wrong encoding (1 line: 4)"),
        "{text}"
    );
    assert!(text.contains("CSV UTF-8 (Comma delimited)"), "{text}");
    assert!(
        ack.html.contains("<h3>Keys damaged by a spreadsheet"),
        "{}",
        ack.html
    );

    // The nightly run creates only the sound row, and its result says the same.
    let out = d.once(true);
    assert!(out.contains("RXX: run"), "{out}");
    let result = read_mail(&d.outbox()[1]);
    assert!(result.text.contains("Created:   1"), "{}", result.text);
    assert!(
        result.text.contains(
            "Keys damaged by a spreadsheet: nothing was created for them (2 lines: 2, 3)"
        ),
        "{}",
        result.text
    );
    assert!(
        result
            .text
            .contains("Text in the wrong encoding (1 line: 4)"),
        "{}",
        result.text
    );
    let after = d.export();
    assert!(!after.contains("Ã"), "a mis-read name was written: {after}");
    assert!(after.contains(",RXX0301,"), "{after}");
    assert_eq!(
        after.lines().count(),
        before.lines().count() + 1,
        "only the sound row made an account"
    );
    assert!(after.contains(",000123,Mr,Omar,Shah,") && after.contains(",Porter,"));
}

/// A reply to one of the connector's e-mails, as Thunderbird writes it.
fn reply_to(from: &str, id: &str, to: &Mail, command: &str) -> Vec<u8> {
    let quoted: String = to.text.lines().map(|l| format!("> {l}\r\n")).collect();
    format!(
        "From: <{from}>\r\nTo: connector@connector.test\r\nSubject: Re: {}\r\n\
         Message-ID: <{id}>\r\nDate: Wed, 2 Dec 2026 09:00:00 +0000\r\n\
         Content-Type: text/plain; charset=UTF-8\r\n\r\n{command}\r\n\r\n\
         On 02/12/2026 04:00, Staff directory connector wrote:\r\n{quoted}",
        to.subject
    )
    .into_bytes()
}

#[test]
fn replies_to_a_held_notice_are_refused_for_what_they_may_not_do_and_cancel_drops_the_run() {
    let d = Deployment::new();
    let config = d.path().join("connector.toml");
    let mut toml = std::fs::read_to_string(&config).unwrap();
    toml.push_str("[guard]\nfloor = 0\nmax_updated = 0\nmax_created = 0\nmax_renamed = 0\n");
    std::fs::write(&config, toml).unwrap();
    d.deliver(
        "1.file",
        &message(
            "admin@rxx.nhs.uk",
            "f1@rxx",
            &[("staff.csv", &sample_csv())],
        ),
    );
    d.once(false);
    let out = d.once(true);
    assert!(out.contains("HELD"), "{out}");
    let held = d
        .outbox()
        .iter()
        .map(|p| read_mail(p))
        .find(|m| m.subject.starts_with("Held"))
        .expect("held notice");
    let run = held.subject.rsplit("run ").next().unwrap().to_owned();
    // Administrators may not confirm runs here (no admin_confirm_max): only CANCEL is offered.
    assert!(!held.text.contains("CONFIRM "), "{}", held.text);
    let at = held.text.find("CANCEL ").unwrap();
    let code: String = held.text[at + 7..].chars().take(11).collect();
    let before = d.export();
    let db = d.path().join("var/state.sqlite");
    let sql = |q: &str| {
        let q = q.to_owned();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let pool = sqlx::SqlitePool::connect(&format!("sqlite:{}", db.display()))
                    .await
                    .unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(q))
                    .execute(&pool)
                    .await
                    .unwrap();
                pool.close().await;
            })
    };

    let mut n = 0;
    let mut answer = |d: &Deployment, from: &str, command: &str| -> Option<Mail> {
        n += 1;
        let sent = d.outbox().len();
        d.deliver(
            &format!("{n}.reply"),
            &reply_to(from, &format!("r{n}@x"), &held, command),
        );
        d.once(false);
        let files = d.outbox();
        assert!(files.len() <= sent + 1, "one answer at most");
        files.get(sent).map(|p| read_mail(p))
    };
    let cases = [
        (
            "admin@rxx.nhs.uk",
            format!("CONFIRM {code}"),
            "may not approve runs by reply",
        ),
        (
            "stranger@evil.test",
            format!("CONFIRM {code}"),
            "is not an authorised connector administrator",
        ),
        ("admin@rxx.nhs.uk", "CONFIRM".to_owned(), "has no code"),
    ];
    for (from, command, why) in &cases {
        let a = answer(&d, from, command).unwrap_or_else(|| panic!("{from} {command} answered"));
        assert_eq!(a.to, *from);
        assert!(a.subject.starts_with("Not done"), "{}", a.subject);
        assert!(a.text.contains(why), "{why}: {}", a.text);
        assert_eq!(d.export(), before);
    }
    // A stranger is answered once a day, whatever they send.
    assert!(answer(&d, "stranger@evil.test", &format!("CANCEL {code}")).is_none());

    // Expired: refused, the run stays held.
    sql("UPDATE mail_codes SET expires_at = '2000-01-01T00:00:00+00:00'");
    let a = answer(&d, "admin@rxx.nhs.uk", &format!("CANCEL {code}")).unwrap();
    assert!(a.text.contains("the code expired"), "{}", a.text);
    let runs = String::from_utf8_lossy(&d.run(&["runs"]).stdout).into_owned();
    assert!(runs.contains("held"), "{runs}");
    sql("UPDATE mail_codes SET expires_at = '2999-01-01T00:00:00+00:00'");

    // CANCEL drops the run: answered, and the sender gets the "not applied" e-mail.
    let sent = d.outbox().len();
    d.deliver(
        "9.cancel",
        &reply_to(
            "admin@rxx.nhs.uk",
            "cancel@x",
            &held,
            &format!("cancel {code}"),
        ),
    );
    d.once(false);
    let mails: Vec<Mail> = d.outbox()[sent..].iter().map(|p| read_mail(p)).collect();
    let subjects: Vec<&str> = mails.iter().map(|m| m.subject.as_str()).collect();
    assert!(
        subjects.iter().any(|s| s.starts_with("Dropped: run")),
        "{subjects:?}"
    );
    assert!(
        subjects.iter().any(|s| s.starts_with("Not applied")),
        "{subjects:?}"
    );
    assert_eq!(d.export(), before);
    let runs = String::from_utf8_lossy(&d.run(&["runs"]).stdout).into_owned();
    assert!(runs.contains("rejected"), "{runs}");
    assert!(
        runs.contains("rejected by reply from admin@rxx.nhs.uk"),
        "{runs}"
    );
    assert!(runs.contains(&run), "{runs}");
}

#[test]
fn a_likely_duplicate_is_gathered_under_its_heading_with_the_remedy() {
    let d = Deployment::new();
    // Deborah Evans (1000004) has no ExternalSyncID: the file brings her staff number.
    let csv = b"ExternalSyncID,FirstName,LastName,Organisation\n\
                RXX0300,DEBORAH,EVANS,RXX\n\
                RXX0301,Zoe,Quinn,RXX\n";
    d.deliver(
        "1.a",
        &message("admin@rxx.nhs.uk", "dup@rxx", &[("staff.csv", csv)]),
    );
    d.once(false);
    // The acknowledgement says so at once, as the directory stands.
    let ack = read_mail(&d.outbox()[0]).text.replace("\r\n", "\n");
    assert!(
        ack.contains(
            "Possibly the same person as an existing account (will not be created):\n\
             Each of these rows would create an account, but RXX already has an account of the \
             same name without an ExternalSyncID"
        ),
        "{ack:?}"
    );
    assert!(
        ack.contains(
            "set the row's NewAccount column to yes. Then send the file again.\n  \
             line 2: possibly deborah.evans@nhs.net (ID 1000004)\n"
        ),
        "{ack:?}"
    );
    d.once(true);
    let files = d.outbox();
    assert_eq!(files.len(), 2, "acknowledgement and result");
    let result = read_mail(&files[1]);
    let text = result.text.replace("\r\n", "\n");
    assert!(
        text.contains(
            "Possibly the same person as an existing account (not created):\n\
             Each of these rows would have created an account, but RXX already has an account \
             of the same name without an ExternalSyncID, most likely made by hand for the same \
             person. If the row is that person, put the account's ID in the row's ID column: the \
             account is updated and takes the row's ExternalSyncID. If it is another person with \
             the same name, set the row's NewAccount column to yes. Then send the file again.\n  \
             line 2: possibly deborah.evans@nhs.net (ID 1000004)\n"
        ),
        "{text:?}"
    );
    assert!(
        !result.text.contains("Lines not applied"),
        "the duplicate is not listed twice: {}",
        result.text
    );
    assert!(
        result
            .html
            .contains("<li>line 2: possibly deborah.evans@nhs.net (ID 1000004)</li>"),
        "{}",
        result.html
    );
    let (_, report) = result.attachment.unwrap();
    let got = results(&report);
    assert_eq!(got["RXX0300"], "Rejected");
    assert_eq!(got["RXX0301"], "Created");
    assert!(
        report.contains("set the row's NewAccount column to yes"),
        "{report}"
    );
}

#[test]
fn a_file_with_swapped_name_columns_is_refused_once_at_the_top() {
    let d = Deployment::new();
    let before = d.export();
    let csv = b"ExternalSyncID,FirstName,LastName,Organisation\n\
                RXX0001,Lee,Anne,RXX\n\
                RXX0002,Carter,Ben,RXX\n\
                RXX0003,Davies,Chloe,RXX\n";
    d.deliver(
        "1.a",
        &message("admin@rxx.nhs.uk", "swap@rxx", &[("staff.csv", csv)]),
    );
    d.once(false);
    let ack = read_mail(&d.outbox()[0]).text.replace("\r\n", "\n");
    assert!(
        ack.contains(
            "THE WHOLE FILE WILL BE REFUSED as the directory stands now: the FirstName and \
             LastName columns look swapped: 3 of 3 rows that match an account"
        ),
        "{ack:?}"
    );
    d.once(true);
    let files = d.outbox();
    assert_eq!(files.len(), 2, "acknowledgement and result");
    let result = read_mail(&files[1]);
    let text = result.text.replace("\r\n", "\n");
    assert!(
        text.contains(
            "was NOT applied: nothing was changed.\n\nWhy: the FirstName and LastName columns \
             look swapped: 3 of 3 rows that match an account give them the other way round \
             (line 2 gives FirstName \"Lee\" and LastName \"Anne\" for anne.lee@nhs.net (ID \
             1000001);"
        ),
        "{text:?}"
    );
    assert!(
        result.text.contains(
            "every row is refused: put each value in its own column and send the file again"
        ),
        "{}",
        result.text
    );
    assert!(
        !result.text.contains("Lines not applied"),
        "said once: {}",
        result.text
    );
    assert!(result.text.contains("Rejected:  3"), "{}", result.text);
    assert_eq!(d.export(), before, "nothing renamed");
}

/// `run --once` under a cap on address space (`prlimit --as`, one malloc arena so the cap
/// measures the heap, not per-thread reservations) and a deadline; the run must succeed.
fn capped_once(d: &Deployment, bytes: u64, seconds: u64) -> std::process::Output {
    let started = std::time::Instant::now();
    let mut child = Command::new("prlimit")
        .env("MALLOC_ARENA_MAX", "1")
        .arg(format!("--as={bytes}"))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_push-connector"))
        .args(["--config", "connector.toml", "run", "--once"])
        .current_dir(d.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("prlimit (util-linux) runs");
    let deadline = started + std::time::Duration::from_secs(seconds);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("run --once took over {seconds} s");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let out = child.wait_with_output().unwrap();
    assert!(
        status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn a_hostile_reply_costs_bounded_memory_and_time_and_changes_nothing() {
    // Replies without a file, as an attacker who has read the reply parser would send them:
    // an HTML-only body of 20 MB of nested tags that never opens a quote, then the command;
    // a plain body of a million quoted lines (25 MB) hiding a command among them; and a subject
    // of nothing but reply prefixes. Each is read under the cap, none approves anything,
    // and the file behind them is still taken in the same pass.
    let d = Deployment::new();
    let before = d.export();
    let html = format!(
        "<html><body>{}CONFIRM ABCDE-FGHJK</body></html>",
        "<div><span><b>".repeat(1_400_000)
    );
    let headers = |id: &str, subject: &str, kind: &str| {
        format!(
            "From: Admin <admin@rxx.nhs.uk>\r\nTo: connector@connector.test\r\n\
             Subject: {subject}\r\nMessage-ID: <{id}>\r\nDate: Wed, 2 Dec 2026 09:00:00 +0000\r\n\
             MIME-Version: 1.0\r\nContent-Type: {kind}; charset=UTF-8\r\n\r\n"
        )
    };
    d.deliver(
        "1.html",
        format!("{}{html}\r\n", headers("h1@rxx", "Re: Held", "text/html")).as_bytes(),
    );
    let quoted = "> CONFIRM ABCDE-FGHJK\r\n".repeat(1_000_000);
    d.deliver(
        "2.quoted",
        format!("{}{quoted}", headers("h2@rxx", "Re: Held", "text/plain")).as_bytes(),
    );
    let prefixes = "Re: ".repeat(200_000);
    d.deliver(
        "3.subject",
        format!("{}CONFIRM\r\n", headers("h3@rxx", &prefixes, "text/plain")).as_bytes(),
    );
    d.deliver(
        "4.file",
        &message(
            "admin@rxx.nhs.uk",
            "f1@rxx",
            &[("staff.csv", &sample_csv())],
        ),
    );
    let out = capped_once(&d, 450_000_000, 120);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("intake: 1 accepted, 3 rejected"),
        "{stdout}"
    );
    assert_eq!(
        d.export(),
        before,
        "nothing is applied by a reply or before the nightly run"
    );
    assert_eq!(d.filed("Rejected"), 3);
}
