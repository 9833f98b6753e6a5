//! The e-mail connector's configuration sections: `[mailbox]`, `[outbox]`, `[mail]` and
//! `[schedule]`.
//!
//! In: TOML (through the configuration's loader). Out: typed sections whose defaults run the
//! embedded deployment (a maildir under `var/mail`, `.eml` files into `var/outbox`, nightly
//! at 02:00 Europe/London), and the problems serde cannot express, for the config's list.

use std::path::PathBuf;

use serde::Deserialize;

use crate::config::secret::Secret;

/// How the sender of a message is verified when `require_dmarc_pass` is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SenderVerification {
    /// Our own MTA's `Authentication-Results` header (the default).
    Mta,
    /// DKIM and DMARC checked by the connector itself, over DNS.
    Dkim,
}

/// Where submissions are read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailboxKind {
    /// A local maildir folder (the embedded default).
    Maildir,
    /// An IMAP server.
    Imap,
}

/// How a connection to a mail server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// TLS from the first byte (IMAPS 993, SMTPS 465).
    Tls,
    /// A plain connection upgraded with STARTTLS, which must succeed.
    Starttls,
    /// No encryption at all: only for loopback test servers.
    Plain,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailboxConfig {
    /// `maildir` (local folders, the default) or `imap`.
    pub kind: MailboxKind,
    /// Maildir root: the inbox is `<path>/inbox` (with `new`, `cur`, `tmp`), handled
    /// messages go to `<path>/Processed` and `<path>/Rejected`.
    pub path: PathBuf,
    /// IMAP server host name or address.
    pub host: String,
    /// IMAP port; by default 993 for `tls` and 143 otherwise.
    pub port: Option<u16>,
    /// `tls` (default), `starttls`, or `plain` (loopback tests only).
    pub tls: TlsMode,
    /// PEM file of the CA that signed the server's certificate; the system's roots when unset.
    pub ca_file: Option<PathBuf>,
    /// IMAP login name.
    pub user: String,
    /// IMAP password (set it with `PUSH_CONNECTOR__MAILBOX__PASSWORD` or `..._FILE`).
    pub password: Option<Secret>,
    /// The folder new submissions arrive in.
    pub inbox: String,
    /// The folder handled submissions are moved to (created when missing).
    pub processed: String,
    /// The folder refused messages are moved to (created when missing).
    pub rejected: String,
    /// Seconds between looks at the mailbox when IDLE is not used.
    pub poll_seconds: u64,
    /// Whether to wait with IMAP IDLE when the server offers it.
    pub idle: bool,
}

impl Default for MailboxConfig {
    fn default() -> Self {
        MailboxConfig {
            kind: MailboxKind::Maildir,
            path: PathBuf::from("var/mail"),
            host: String::new(),
            port: None,
            tls: TlsMode::Tls,
            ca_file: None,
            user: String::new(),
            password: None,
            inbox: "INBOX".to_owned(),
            processed: "Processed".to_owned(),
            rejected: "Rejected".to_owned(),
            poll_seconds: 60,
            idle: true,
        }
    }
}

/// Where replies are delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboxKind {
    /// `.eml` files in a folder (the embedded default).
    File,
    /// An SMTP server.
    Smtp,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxConfig {
    /// `file` (`.eml` files, the default) or `smtp`.
    pub kind: OutboxKind,
    /// Folder the `.eml` files are written to.
    pub path: PathBuf,
    /// SMTP server host name or address.
    pub host: String,
    /// SMTP port; by default 465 for `tls` and 587 otherwise.
    pub port: Option<u16>,
    /// `starttls` (default), `tls`, or `plain` (loopback tests only).
    pub tls: TlsMode,
    /// PEM file of the CA that signed the server's certificate; the system's roots when unset.
    pub ca_file: Option<PathBuf>,
    /// SMTP AUTH login name; no AUTH when unset.
    pub user: Option<String>,
    /// SMTP AUTH password (`PUSH_CONNECTOR__OUTBOX__PASSWORD` or `..._FILE`).
    pub password: Option<Secret>,
    /// Longest wait between two attempts at an e-mail the server did not take, in seconds.
    pub max_retry_seconds: u64,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            kind: OutboxKind::File,
            path: PathBuf::from("var/outbox"),
            host: String::new(),
            port: None,
            tls: TlsMode::Starttls,
            ca_file: None,
            user: None,
            password: None,
            max_retry_seconds: 900,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    /// The connector's own address: the From of every reply.
    pub address: String,
    /// The display name of replies.
    pub name: String,
    /// Attempts at handling one message (each counted before it starts, so one that stops
    /// the process counts too) before it is filed to Rejected, unanswered, with the last error.
    pub max_attempts: u32,
    /// Messages larger than this are filed to Rejected unread and unanswered. Default: twice
    /// `service.max_file_bytes` plus 1 MiB (room for base64 and the rest of the message).
    pub max_message_bytes: Option<u64>,
    /// No e-mail we send is larger than this: refused lines beyond it are left out of the
    /// attached CSV (the e-mail says how many), and quoted cell values are shortened.
    pub max_reply_bytes: usize,
    /// Days the raw messages and files of handled submissions are kept (then only their
    /// record stays: sender, subject, verdict, counts).
    pub keep_processed_days: u32,
    /// Days the raw messages of rejected messages are kept.
    pub keep_rejected_days: u32,
    /// Refuse a sender unless DMARC passes for the From domain (as `sender_verification`
    /// says); off, nothing is verified.
    pub require_dmarc_pass: bool,
    /// `mta` (our MTA's `Authentication-Results` header, the default) or `dkim` (DKIM and
    /// DMARC checked by the connector over DNS).
    pub sender_verification: SenderVerification,
    /// The authserv-id our own MTA writes in `Authentication-Results` (`mta` mode); headers
    /// with any other id (which anyone can add) are ignored.
    pub trusted_authserv_id: Option<String>,
    /// DNS servers for `dkim` mode, `"IP"` or `"IP:port"`; the system resolver when empty.
    pub dns_servers: Vec<String>,
    /// Seconds a DNS query of `dkim` mode waits for an answer (each query is tried twice).
    pub dns_timeout_seconds: u64,
    /// Operators told about held runs (besides the sender).
    pub operators: Vec<String>,
    /// Days a `CONFIRM`/`CANCEL` code of a held notice or an acknowledgement can be used
    /// (it ends sooner once its run or file is decided).
    pub confirm_code_days: u32,
    /// A folder of e-mail templates (`acknowledgement.txt`, `acknowledgement.html`, …) used
    /// instead of the built-in ones; a template the folder does not have stays built in.
    pub templates: Option<std::path::PathBuf>,
}

impl Default for MailConfig {
    fn default() -> Self {
        MailConfig {
            address: "connector@localhost".to_owned(),
            name: "Staff directory connector".to_owned(),
            max_attempts: 5,
            max_message_bytes: None,
            max_reply_bytes: 10 * 1024 * 1024,
            keep_processed_days: 90,
            keep_rejected_days: 7,
            require_dmarc_pass: false,
            sender_verification: SenderVerification::Mta,
            trusted_authserv_id: None,
            dns_servers: Vec::new(),
            dns_timeout_seconds: 5,
            operators: Vec::new(),
            confirm_code_days: 7,
            templates: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    /// Local time the nightly run starts, `HH:MM`.
    pub nightly_at: String,
    /// Time zone of `nightly_at` (IANA name).
    pub timezone: String,
    /// Hours after `nightly_at` in which a late start (the service was down) still runs.
    pub window_hours: u32,
    /// Allow a nightly window that touches 08:00–17:00 (refused by default).
    pub allow_working_hours: bool,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            nightly_at: "02:00".to_owned(),
            timezone: "Europe/London".to_owned(),
            window_hours: 4,
            allow_working_hours: false,
        }
    }
}

/// Problems of the sender-verification settings.
fn verification_problems(mail: &MailConfig) -> Vec<String> {
    let mut problems = Vec::new();
    match (mail.require_dmarc_pass, mail.sender_verification) {
        (true, SenderVerification::Mta) if mail.trusted_authserv_id.is_none() => problems.push(
            "mail.require_dmarc_pass needs mail.trusted_authserv_id (the authserv-id of our own \
             MTA's Authentication-Results header)"
                .to_owned(),
        ),
        (false, SenderVerification::Dkim) => problems.push(
            "mail.sender_verification = \"dkim\" verifies nothing without \
             mail.require_dmarc_pass = true"
                .to_owned(),
        ),
        _ => {}
    }
    if !(1..=60).contains(&mail.dns_timeout_seconds) {
        problems.push("mail.dns_timeout_seconds must be 1 to 60".to_owned());
    }
    for s in &mail.dns_servers {
        if parse_server(s).is_none() {
            problems.push(format!(
                "mail.dns_servers: \"{s}\" is not an IP address with an optional port \
                 (\"127.0.0.1:53\")"
            ));
        }
    }
    problems
}

/// The secrets the mailbox and outbox need that are not set. Asked only by what uses them
/// (`run`, `check`), so that the operator verbs (`runs`, `approve`, `validate`, …) start
/// without the mail passwords.
pub fn missing_secrets(mailbox: &MailboxConfig, outbox: &OutboxConfig) -> Vec<String> {
    let mut missing = Vec::new();
    if mailbox.kind == MailboxKind::Imap && mailbox.password.is_none() {
        missing.push(
            "mailbox.password must be set for kind = \"imap\" \
             (PUSH_CONNECTOR__MAILBOX__PASSWORD or _FILE)"
                .to_owned(),
        );
    }
    let o = outbox;
    if o.kind == OutboxKind::Smtp && o.user.is_some() && o.password.is_none() {
        missing.push(
            "outbox.password must be set when outbox.user is \
             (PUSH_CONNECTOR__OUTBOX__PASSWORD or _FILE)"
                .to_owned(),
        );
    }
    missing
}

/// The sections of the e-mail channel, as the configuration holds them.
#[derive(Debug, Clone, Copy)]
pub struct Sections<'a> {
    pub mail: &'a MailConfig,
    pub mailbox: &'a MailboxConfig,
    pub outbox: &'a OutboxConfig,
    pub schedule: &'a ScheduleConfig,
}

/// Problems of these sections, for the configuration's list.
pub fn problems(config: Sections<'_>) -> Vec<String> {
    let mut problems = Vec::new();
    let m = config.mailbox;
    if m.kind == MailboxKind::Imap {
        if m.host.is_empty() {
            problems.push("mailbox.host must be set for kind = \"imap\"".to_owned());
        }
        if m.user.is_empty() {
            problems.push("mailbox.user must be set for kind = \"imap\"".to_owned());
        }
    }
    if m.poll_seconds == 0 {
        problems.push("mailbox.poll_seconds must be at least 1".to_owned());
    }
    let o = config.outbox;
    if o.kind == OutboxKind::Smtp {
        if o.host.is_empty() {
            problems.push("outbox.host must be set for kind = \"smtp\"".to_owned());
        }
        if o.user.is_none() && o.password.is_some() {
            problems.push("outbox.password is set but outbox.user is not".into());
        }
    }
    for (name, path) in [
        ("mailbox.ca_file", &m.ca_file),
        ("outbox.ca_file", &o.ca_file),
    ] {
        if let Some(p) = path
            && !p.is_file()
        {
            problems.push(format!("{name}: no file at {}", p.display()));
        }
    }
    if let Some(dir) = &config.mail.templates
        && !dir.is_dir()
    {
        problems.push(format!("mail.templates: no folder at {}", dir.display()));
    }
    problems.extend(verification_problems(config.mail));
    if !config.mail.address.contains('@') {
        problems.push(format!(
            "mail.address \"{}\" is not an e-mail address",
            config.mail.address
        ));
    }
    problems
}

/// A DNS server as `[mail] dns_servers` gives it: an IP address with an optional port (53).
pub fn parse_server(s: &str) -> Option<std::net::SocketAddr> {
    let s = s.trim();
    s.parse::<std::net::SocketAddr>().ok().or_else(|| {
        s.parse::<std::net::IpAddr>()
            .ok()
            .map(|ip| std::net::SocketAddr::new(ip, 53))
    })
}
