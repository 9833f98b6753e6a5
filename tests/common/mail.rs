//! Helpers for the tests against the real test mail servers (`scripts/mail/up.sh`): the
//! endpoints from `MAIL_*`, delivery over SMTP as an MX receives it, reading over IMAP, and
//! the transfer encodings real clients write. Included with `#[path]` by the test files that
//! need it, so the other test binaries do not build the IMAP and SMTP clients.

// Test code: a failure is a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

use async_imap::Client;
use futures_util::TryStreamExt;
use lettre::address::Envelope;
use lettre::transport::smtp::client::Tls;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use mail_parser::{MessageParser, MimeHeaders};

/// Every user of the test servers whose folders the tests use.
pub const USERS: &[&str] = &[
    "connector@connector.test",
    "admin@rxx.nhs.uk",
    "admin@ryy.nhs.uk",
    "operator@connector.test",
    "intruder@evil.test",
    "sink@sink.test",
    "refused@rxx.nhs.uk",
    "deferred@ryy.nhs.uk",
];

pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: the real-server tests need the test mail servers. Run them \
             with scripts/test.sh, or start scripts/mail/up.sh and source its env.sh"
        )
    })
}

pub fn port(name: &str) -> u16 {
    env(name).parse().expect("a port number")
}

pub fn runtime() -> tokio::runtime::Runtime {
    let _ = rustls::crypto::ring::default_provider().install_default();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// An SMTP client for the MX port (2525: no AUTH, any sender), as another MTA connects.
pub fn mx() -> AsyncSmtpTransport<Tokio1Executor> {
    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(env("MAIL_HOST"))
        .port(port("MAIL_SMTP_PORT"))
        .tls(Tls::None)
        .build()
}

/// Delivers a message as an MTA would receive it, with envelope sender `from` (`""` for the
/// null sender of bounces and auto-replies).
pub async fn send_with(
    smtp: &AsyncSmtpTransport<Tokio1Executor>,
    from: &str,
    to: &str,
    raw: &[u8],
) {
    let sender = (!from.is_empty()).then(|| from.parse().unwrap());
    let envelope = Envelope::new(sender, vec![to.parse().unwrap()]).unwrap();
    smtp.send_raw(&envelope, raw).await.expect("SMTP accepts");
}

pub async fn send_in(from: &str, to: &str, raw: &[u8]) {
    send_with(&mx(), from, to, raw).await;
}

pub type Session = async_imap::Session<tokio::net::TcpStream>;

pub async fn login(user: &str) -> Session {
    let tcp = tokio::net::TcpStream::connect((env("MAIL_HOST"), port("MAIL_IMAP_PORT")))
        .await
        .unwrap();
    let mut client = Client::new(tcp);
    client.read_response().await.unwrap();
    client
        .login(user, env("MAIL_PASSWORD"))
        .await
        .map_err(|(e, _)| e)
        .expect("IMAP login")
}

/// Every message in a folder of a user (empty when the folder does not exist).
pub async fn messages(user: &str, folder: &str) -> Vec<Vec<u8>> {
    let mut s = login(user).await;
    if s.select(folder).await.is_err() {
        return Vec::new();
    }
    let fetched: Vec<_> = match s.fetch("1:*", "BODY.PEEK[]").await {
        Ok(stream) => stream.try_collect().await.unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let out = fetched
        .iter()
        .filter_map(|f| f.body().map(<[u8]>::to_vec))
        .collect();
    let _ = s.logout().await;
    out
}

/// How many messages a folder holds (0 when it does not exist).
pub async fn count(user: &str, folder: &str) -> usize {
    let mut s = login(user).await;
    let n = match s.examine(folder).await {
        Ok(m) => m.exists as usize,
        Err(_) => 0,
    };
    let _ = s.logout().await;
    n
}

/// Empties the INBOX, Processed and Rejected folders of every test user.
pub async fn clean() {
    for user in USERS {
        let mut s = login(user).await;
        for f in ["INBOX", "Processed", "Rejected"] {
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

/// Waits (at most `secs`) until a user's folder holds at least `n` messages; returns them.
pub async fn wait_for_in(user: &str, folder: &str, n: usize, secs: u64) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if count(user, folder).await >= n || Instant::now() > deadline {
            return messages(user, folder).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn wait_for(user: &str, n: usize) -> Vec<Vec<u8>> {
    wait_for_in(user, "INBOX", n, 20).await
}

/// Gives mail in flight time to arrive before a check that none did (a delivery through
/// Postfix to Dovecot takes well under this).
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(700)).await;
}

/// Base64 in 76-character lines, as mail clients write it.
pub fn base64(bytes: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut lines = Vec::new();
    for line in bytes.chunks(57) {
        let mut out = String::new();
        for chunk in line.chunks(3) {
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
        lines.push(out);
    }
    lines.join("\r\n")
}

/// Quoted-printable as Thunderbird writes a text attachment: CRLF kept as hard line
/// breaks, `=`, non-ASCII and trailing white space escaped, soft breaks (`=` CRLF) so that
/// no line is longer than 76 characters.
pub fn quoted_printable(bytes: &[u8]) -> String {
    let mut out = String::new();
    let text_lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    for (i, line) in text_lines.iter().enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut current = String::new();
        for (j, &b) in line.iter().enumerate() {
            let last = j + 1 == line.len();
            let token =
                if b == b'=' || !(32..127).contains(&b) || (last && (b == b' ' || b == b'\t')) {
                    format!("={b:02X}")
                } else {
                    (b as char).to_string()
                };
            if current.len() + token.len() > 75 {
                out.push_str(&current);
                out.push_str("=\r\n");
                current.clear();
            }
            current.push_str(&token);
        }
        out.push_str(&current);
        if i + 1 < text_lines.len() {
            out.push_str("\r\n");
        }
    }
    out
}

/// Every bare LF turned into CRLF (the messages are written with `\n` for legibility).
pub fn crlf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 20);
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' && (i == 0 || bytes[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

/// What the tests read from a reply.
#[derive(Debug)]
pub struct Mail {
    pub subject: String,
    pub text: String,
    pub message_id: Option<String>,
    pub in_reply_to: Option<String>,
    pub references: Option<String>,
    pub auto_submitted: Option<String>,
    pub to: String,
    /// The first attachment with a file name: its name and bytes.
    pub attachment: Option<(String, Vec<u8>)>,
}

pub fn parse(raw: &[u8]) -> Mail {
    let m = MessageParser::default().parse(raw).unwrap();
    let header = |name: &str| {
        m.headers_raw()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
    };
    Mail {
        subject: m.subject().unwrap_or_default().to_owned(),
        text: m.body_text(0).unwrap_or_default().into_owned(),
        message_id: m.message_id().map(str::to_owned),
        in_reply_to: m.in_reply_to().as_text().map(str::to_owned),
        references: header("References"),
        auto_submitted: header("Auto-Submitted"),
        to: header("To").unwrap_or_default(),
        attachment: m
            .attachments()
            .find(|a| a.attachment_name().is_some())
            .map(|a| {
                (
                    a.attachment_name().unwrap_or_default().to_owned(),
                    a.contents().to_vec(),
                )
            }),
    }
}

/// The Result column of a result report, by ExternalSyncID.
pub fn results(csv: &[u8]) -> std::collections::BTreeMap<String, String> {
    let text = String::from_utf8_lossy(csv);
    let mut r = csv::Reader::from_reader(text.trim_start_matches('\u{feff}').as_bytes());
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

/// The binary in `dir` with its `connector.toml` and the test servers' mail password (as
/// `run` and `check` ask for it), logs without colour.
pub fn binary(dir: &Path, args: &[&str]) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_push-connector"));
    c.args(["--config", "connector.toml"])
        .args(args)
        .current_dir(dir)
        .env_remove("PUSH_CONNECTOR_CONFIG")
        .env("NO_COLOR", "1")
        .env("PUSH_CONNECTOR__MAILBOX__PASSWORD", env("MAIL_PASSWORD"))
        .env("PUSH_CONNECTOR__OUTBOX__PASSWORD", env("MAIL_PASSWORD"));
    c
}

/// `run --once` in `dir` (with `nightly`: and the nightly step), which must succeed: its
/// stdout and log.
pub fn once(dir: &Path, nightly: bool) -> String {
    let args: &[&str] = if nightly {
        &["run", "--once", "--now"]
    } else {
        &["run", "--once"]
    };
    let out = binary(dir, args).output().expect("the binary runs");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    text
}
