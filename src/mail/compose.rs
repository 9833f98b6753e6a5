//! The connector's e-mails, from the templates in `templates/` (built into the binary), or
//! those of the folder `mail.templates` names (a server install's `/usr/share/…/templates`).
//!
//! In: a [`Reply`] (which e-mail, to whom, the values its templates show, an optional CSV)
//! and the time (passed in). Out: a [`QueuedMail`]: the whole RFC 5322 message with a plain
//! text and an HTML body, ready for the outbox. The Message-ID is derived from the content
//! and time, so the same reply composed twice has the same ID.

use std::time::SystemTime;

use chrono::{DateTime, Utc};
use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, MultiPart};
use minijinja::Environment;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::config::MailConfig;
use crate::store::outbox::QueuedMail;

/// Every e-mail the connector sends: (name, plain text template, HTML template).
const TEMPLATES: &[(&str, &str, &str)] = &[
    (
        "acknowledgement",
        include_str!("../../templates/acknowledgement.txt"),
        include_str!("../../templates/acknowledgement.html"),
    ),
    (
        "rejection",
        include_str!("../../templates/rejection.txt"),
        include_str!("../../templates/rejection.html"),
    ),
    (
        "superseded",
        include_str!("../../templates/superseded.txt"),
        include_str!("../../templates/superseded.html"),
    ),
    (
        "held",
        include_str!("../../templates/held.txt"),
        include_str!("../../templates/held.html"),
    ),
    (
        "quiet",
        include_str!("../../templates/quiet.txt"),
        include_str!("../../templates/quiet.html"),
    ),
    (
        "result",
        include_str!("../../templates/result.txt"),
        include_str!("../../templates/result.html"),
    ),
    (
        "dropped",
        include_str!("../../templates/dropped.txt"),
        include_str!("../../templates/dropped.html"),
    ),
    (
        "command",
        include_str!("../../templates/command.txt"),
        include_str!("../../templates/command.html"),
    ),
    (
        "undelivered",
        include_str!("../../templates/undelivered.txt"),
        include_str!("../../templates/undelivered.html"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("template {name}: {source}")]
    Template {
        name: String,
        source: minijinja::Error,
    },
    #[error("reading the template {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("address \"{0}\" cannot be used: {1}")]
    Address(String, lettre::address::AddressError),
    #[error("building the e-mail: {0}")]
    Build(#[from] lettre::error::Error),
}

/// One e-mail to compose.
#[derive(Debug, Clone)]
pub struct Reply<C: Serialize> {
    /// Which template: `acknowledgement`, `rejection`, `superseded`, `held`, `quiet`,
    /// `result`, `dropped`, `command` (the answer to a `CONFIRM`/`CANCEL` reply), `undelivered`.
    pub kind: &'static str,
    pub to: Vec<String>,
    pub subject: String,
    /// The values the templates show (`connector_name` is added).
    pub context: C,
    /// A CSV to attach: (file name, bytes).
    pub attachment: Option<(String, Vec<u8>)>,
    /// The Message-ID of the message this answers.
    pub in_reply_to: Option<String>,
    pub organisation: Option<String>,
}

/// A template of the folder, or `None` when the folder does not have it. Templates are
/// small: one larger than 1 MiB is refused rather than read.
fn read_template(path: &std::path::Path) -> Result<Option<String>, ComposeError> {
    const MAX: u64 = 1024 * 1024;
    let read = |path: &std::path::Path| -> std::io::Result<Option<String>> {
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
            Ok(m) if m.len() > MAX => {
                return Err(std::io::Error::other("larger than 1 MiB"));
            }
            Ok(_) => {}
        }
        std::fs::read_to_string(path).map(Some)
    };
    read(path).map_err(|source| ComposeError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Renders replies.
#[derive(Debug)]
pub struct Composer {
    env: Environment<'static>,
    from: Mailbox,
    name: String,
}

impl Composer {
    pub fn new(config: &MailConfig) -> Result<Composer, ComposeError> {
        let mut env = Environment::new();
        for (name, text, html) in TEMPLATES {
            for (suffix, built_in) in [("txt", text), ("html", html)] {
                let full = format!("{name}.{suffix}");
                let source = match &config.templates {
                    Some(dir) => read_template(&dir.join(&full))?,
                    None => None,
                }
                .unwrap_or_else(|| (*built_in).to_owned());
                env.add_template_owned(full.clone(), source)
                    .map_err(|source| ComposeError::Template { name: full, source })?;
            }
        }
        let from = Mailbox::new(
            Some(config.name.clone()),
            config
                .address
                .parse()
                .map_err(|e| ComposeError::Address(config.address.clone(), e))?,
        );
        Ok(Composer {
            env,
            from,
            name: config.name.clone(),
        })
    }

    /// Where the templates come from, for `check`: the folder and how many of the
    /// templates it holds.
    pub fn templates_in_use(config: &MailConfig) -> String {
        let Some(dir) = &config.templates else {
            return "built in".to_owned();
        };
        let found = TEMPLATES
            .iter()
            .flat_map(|(name, _, _)| [format!("{name}.txt"), format!("{name}.html")])
            .filter(|f| dir.join(f).is_file())
            .count();
        format!(
            "{} ({found} of {} from there, the others built in)",
            dir.display(),
            TEMPLATES.len() * 2
        )
    }

    /// The connector's own address.
    pub fn from_address(&self) -> String {
        self.from.email.to_string()
    }

    /// Renders one template pair to (plain text, HTML).
    pub fn render<C: Serialize>(
        &self,
        kind: &str,
        context: &C,
    ) -> Result<(String, String), ComposeError> {
        let ctx = minijinja::context! {
            connector_name => &self.name,
            ..minijinja::Value::from(minijinja::value::Serde(context))
        };
        let render = |suffix: &str| {
            let name = format!("{kind}.{suffix}");
            self.env
                .get_template(&name)
                .and_then(|t| t.render(&ctx))
                .map_err(|source| ComposeError::Template { name, source })
        };
        Ok((render("txt")?, render("html")?))
    }

    /// The whole message, ready to queue.
    pub fn compose<C: Serialize>(
        &self,
        reply: &Reply<C>,
        now: DateTime<Utc>,
    ) -> Result<QueuedMail, ComposeError> {
        let (text, html) = self.render(reply.kind, &reply.context)?;
        let mut hash = Sha256::new();
        for part in [
            reply.kind,
            &reply.subject,
            &reply.to.join(","),
            reply.in_reply_to.as_deref().unwrap_or(""),
            &now.to_rfc3339(),
            &text,
        ] {
            hash.update(part.as_bytes());
            hash.update([0]);
        }
        let digest: String = hash
            .finalize()
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect();
        let mut builder = lettre::Message::builder()
            .from(self.from.clone())
            .subject(reply.subject.clone())
            .date(SystemTime::from(now))
            .message_id(Some(format!(
                "<{digest}.{}@{}>",
                reply.kind,
                self.from.email.domain()
            )));
        for to in &reply.to {
            builder = builder.to(to
                .parse::<Mailbox>()
                .map_err(|e| ComposeError::Address(to.clone(), e))?);
        }
        // RFC 3834: what a program sends says so, so that other programs do not answer it.
        builder = builder
            .header(AutoSubmitted(if reply.in_reply_to.is_some() {
                "auto-replied"
            } else {
                "auto-generated"
            }))
            .header(AutoResponseSuppress);
        if let Some(id) = reply.in_reply_to.as_deref().filter(|id| is_usable_id(id)) {
            builder = builder
                .in_reply_to(format!("<{id}>"))
                .references(format!("<{id}>"));
        }
        let bodies = MultiPart::alternative_plain_html(text, html);
        let message = match &reply.attachment {
            Some((name, bytes)) => {
                let csv = ContentType::parse("text/csv; charset=utf-8")
                    .unwrap_or(ContentType::TEXT_PLAIN);
                builder.multipart(
                    MultiPart::mixed()
                        .multipart(bodies)
                        .singlepart(Attachment::new(name.clone()).body(bytes.clone(), csv)),
                )?
            }
            None => builder.multipart(bodies)?,
        };
        Ok(QueuedMail {
            kind: reply.kind.to_owned(),
            organisation: reply.organisation.clone(),
            recipients: reply.to.clone(),
            message: message.formatted(),
        })
    }
}

/// A Message-ID that can be quoted in In-Reply-To: printable ASCII without spaces or angle
/// brackets, of a sane length. Any other is left out rather than failing the reply.
fn is_usable_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 250
        && id
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>')
}

/// `Auto-Submitted` (RFC 3834 §5).
#[derive(Debug, Clone, Copy)]
struct AutoSubmitted(&'static str);

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(match s.trim() {
            "auto-replied" => AutoSubmitted("auto-replied"),
            _ => AutoSubmitted("auto-generated"),
        })
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.to_owned())
    }
}

/// `X-Auto-Response-Suppress: All`: asks Exchange and Outlook not to send out-of-office and
/// other automatic answers to our e-mails.
#[derive(Debug, Clone, Copy)]
struct AutoResponseSuppress;

impl Header for AutoResponseSuppress {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("X-Auto-Response-Suppress")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AutoResponseSuppress)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "All".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn composer() -> Composer {
        Composer::new(&MailConfig::default()).unwrap()
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-06-03T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn acknowledgement_lists_counts_refused_lines_next_run_and_the_reminder() {
        let (text, html) = composer()
            .render(
                "acknowledgement",
                &json!({
                    "file_name": "staff.csv", "organisation": "RXX", "organisation_name": null,
                    "received_at": "3 June 2025 11:00", "rows": 3, "valid": 2, "refused": 1,
                    "refused_lines": [{"line": 4, "message": "LastName is missing"}],
                    "more_refused": 0, "refused_file": "refused.csv",
                    "next_run": "Wednesday 4 June 2025 at 02:00 (Europe/London)",
                }),
            )
            .unwrap();
        assert!(
            text.contains("Rows accepted for the nightly run: 2"),
            "{text}"
        );
        assert!(text.contains("line 4: LastName is missing"), "{text}");
        assert!(text.contains("Wednesday 4 June 2025 at 02:00"), "{text}");
        assert!(text.contains("the later file replaces this one"), "{text}");
        assert!(html.contains("<td>Rows refused</td><td>1</td>"), "{html}");
    }

    #[test]
    fn a_template_folder_replaces_the_templates_it_holds() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("rejection.txt"),
            "Local wording: {{ reason }} ({{ connector_name }})",
        )
        .unwrap();
        let config = MailConfig {
            templates: Some(dir.path().to_owned()),
            ..MailConfig::default()
        };
        let (text, html) = Composer::new(&config)
            .unwrap()
            .render(
                "rejection",
                &json!({"subject": "s", "received_at": "now", "reason": "r"}),
            )
            .unwrap();
        assert_eq!(text, "Local wording: r (Staff directory connector)");
        // The HTML the folder does not have is the built-in one.
        assert_eq!(
            html,
            composer()
                .render(
                    "rejection",
                    &json!({"subject": "s", "received_at": "now", "reason": "r"})
                )
                .unwrap()
                .1
        );
        assert!(
            Composer::templates_in_use(&config)
                .ends_with("(1 of 18 from there, the others built in)")
        );

        std::fs::write(dir.path().join("held.html"), "{% if %}").unwrap();
        let err = Composer::new(&config).unwrap_err().to_string();
        assert!(err.starts_with("template held.html:"), "{err}");
    }

    #[test]
    fn html_escapes_what_senders_wrote_and_text_does_not() {
        let (text, html) = composer()
            .render(
                "rejection",
                &json!({"subject": "<script>", "received_at": "now", "reason": "a & b"}),
            )
            .unwrap();
        assert!(
            html.contains("&lt;script&gt;") && html.contains("a &amp; b"),
            "{html}"
        );
        assert!(
            text.contains("\"<script>\"") && text.contains("a & b"),
            "{text}"
        );
    }

    #[test]
    fn a_result_mail_has_both_bodies_and_the_csv() {
        let mail = composer()
            .compose(
                &Reply {
                    kind: "result",
                    to: vec!["admin@rxx.nhs.uk".into()],
                    subject: "Result".into(),
                    context: json!({"file_name": "f.csv", "organisation": "RXX", "run": "R1",
                        "counts": {"created": 1, "updated": 0, "unchanged": 0, "rejected": 0, "failed": 0}}),
                    attachment: Some(("result.csv".into(), b"a,Result\r\n1,Created\r\n".to_vec())),
                    in_reply_to: Some("m1@rxx".into()),
                    organisation: Some("RXX".into()),
                },
                now(),
            )
            .unwrap();
        let parsed = mail_parser::MessageParser::default()
            .parse(&mail.message)
            .unwrap();
        assert_eq!(parsed.subject(), Some("Result"));
        assert_eq!(parsed.in_reply_to().as_text(), Some("m1@rxx"));
        assert_eq!(parsed.references().as_text(), Some("m1@rxx"));
        assert_eq!(
            parsed.header_raw("Auto-Submitted").map(str::trim),
            Some("auto-replied")
        );
        assert_eq!(
            parsed.header_raw("X-Auto-Response-Suppress").map(str::trim),
            Some("All")
        );
        assert!(parsed.body_text(0).unwrap().contains("Created:   1"));
        assert!(
            parsed
                .body_html(0)
                .unwrap()
                .contains("<td>Created</td><td>1</td>")
        );
        let attachment = parsed.attachment(0).unwrap();
        use mail_parser::MimeHeaders;
        assert_eq!(attachment.attachment_name(), Some("result.csv"));
        assert_eq!(attachment.contents(), b"a,Result\r\n1,Created\r\n");
    }
}
