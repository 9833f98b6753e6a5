//! The outbox: e-mails queued in the state database, delivered by a transport behind one
//! seam — `.eml` files in a folder (the embedded default) or SMTP (lettre, STARTTLS or TLS,
//! AUTH).
//!
//! In: the queue ([`MailStore::unsent`]) and the time (passed in). Out: each e-mail handed
//! to the transport and marked sent right after. Delivery is exactly once for the file
//! transport (the file is named by its queue ID and written by rename, so a repeat after a
//! crash rewrites the same file) and at least once at the SMTP boundary: a crash between the
//! server's `250 OK` and the `sent` mark sends that one e-mail again on restart. A failed
//! attempt is retried with a doubling wait, capped by `max_retry_seconds`.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use secrecy::ExposeSecret;

use super::config::{OutboxConfig, OutboxKind, TlsMode};
use crate::store::mail::{MailStore, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox folder {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error("SMTP {server}: {message}")]
    Smtp {
        server: String,
        message: String,
        failure: SmtpFailure,
    },
    #[error("address \"{0}\" cannot be used")]
    Address(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How an SMTP delivery failed, which decides what happens next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpFailure {
    /// The server refused this e-mail for good (5xx): it is failed at once.
    Permanent,
    /// The server refused it for now (4xx): it is tried again later, the others go on.
    Transient,
    /// No answer (connection refused, closed, TLS, timeout): the server is down, so the
    /// pass stops and every e-mail waits.
    Unreachable,
}

impl OutboxError {
    /// Whether trying again can help.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            OutboxError::Address(_)
                | OutboxError::Smtp {
                    failure: SmtpFailure::Permanent,
                    ..
                }
        )
    }

    fn is_unreachable(&self) -> bool {
        matches!(
            self,
            OutboxError::File { .. }
                | OutboxError::Smtp {
                    failure: SmtpFailure::Unreachable,
                    ..
                }
        )
    }
}

fn smtp_failure(e: &lettre::transport::smtp::Error) -> SmtpFailure {
    if e.is_permanent() {
        SmtpFailure::Permanent
    } else if e.is_transient() {
        SmtpFailure::Transient
    } else {
        SmtpFailure::Unreachable
    }
}

/// Delivers one e-mail.
pub trait Outbox {
    fn send(
        &self,
        id: i64,
        from: &str,
        to: &[String],
        message: &[u8],
    ) -> impl Future<Output = Result<(), OutboxError>>;
    /// Connects and says what was found (for `check`).
    fn check(&self) -> impl Future<Output = Result<String, OutboxError>>;
}

/// `.eml` files in a folder.
pub struct FileOutbox {
    dir: PathBuf,
}

impl FileOutbox {
    pub fn new(dir: PathBuf) -> FileOutbox {
        FileOutbox { dir }
    }

    fn io(&self) -> impl Fn(std::io::Error) -> OutboxError + '_ {
        |source| OutboxError::File {
            path: self.dir.display().to_string(),
            source,
        }
    }
}

impl Outbox for FileOutbox {
    async fn send(
        &self,
        id: i64,
        _from: &str,
        _to: &[String],
        message: &[u8],
    ) -> Result<(), OutboxError> {
        std::fs::create_dir_all(&self.dir).map_err(self.io())?;
        let tmp = self.dir.join(format!(".{id:08}.eml.tmp"));
        std::fs::write(&tmp, message).map_err(self.io())?;
        std::fs::rename(&tmp, self.dir.join(format!("{id:08}.eml"))).map_err(self.io())
    }

    async fn check(&self) -> Result<String, OutboxError> {
        std::fs::create_dir_all(&self.dir).map_err(self.io())?;
        let probe = self.dir.join(".check");
        std::fs::write(&probe, b"").map_err(self.io())?;
        std::fs::remove_file(&probe).map_err(self.io())?;
        Ok(format!("outbox folder {}: writable", self.dir.display()))
    }
}

/// An SMTP server.
pub struct SmtpOutbox {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    server: String,
}

impl SmtpOutbox {
    pub fn new(c: &OutboxConfig) -> Result<SmtpOutbox, OutboxError> {
        let port = c.port.unwrap_or(match c.tls {
            TlsMode::Tls => 465,
            _ => 587,
        });
        let server = format!("{}:{port}", c.host);
        let err = |message: String| OutboxError::Smtp {
            server: server.clone(),
            message,
            failure: SmtpFailure::Unreachable,
        };
        let tls = match c.tls {
            TlsMode::Plain => Tls::None,
            mode => {
                let mut params = TlsParameters::builder(c.host.clone());
                if let Some(ca) = &c.ca_file {
                    let pem = std::fs::read(ca)
                        .map_err(|e| err(format!("CA file {}: {e}", ca.display())))?;
                    params = params.add_root_certificate(
                        Certificate::from_pem(&pem)
                            .map_err(|e| err(format!("CA file {}: {e}", ca.display())))?,
                    );
                }
                let params = params
                    .build_rustls()
                    .map_err(|e| err(format!("TLS setup: {e}")))?;
                if mode == TlsMode::Tls {
                    Tls::Wrapper(params)
                } else {
                    Tls::Required(params)
                }
            }
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(c.host.clone())
            .port(port)
            .tls(tls)
            .timeout(Some(Duration::from_secs(30)));
        if let (Some(user), Some(password)) = (&c.user, &c.password) {
            builder = builder
                .credentials(Credentials::new(
                    user.clone(),
                    password.0.expose_secret().to_owned(),
                ))
                .authentication(vec![Mechanism::Plain, Mechanism::Login]);
        }
        Ok(SmtpOutbox {
            transport: builder.build(),
            server,
        })
    }
}

impl Outbox for SmtpOutbox {
    async fn send(
        &self,
        _id: i64,
        from: &str,
        to: &[String],
        message: &[u8],
    ) -> Result<(), OutboxError> {
        let parse = |a: &str| {
            a.parse::<lettre::Address>()
                .map_err(|_| OutboxError::Address(a.to_owned()))
        };
        let envelope = Envelope::new(
            Some(parse(from)?),
            to.iter().map(|t| parse(t)).collect::<Result<_, _>>()?,
        )
        .map_err(|e| OutboxError::Address(e.to_string()))?;
        self.transport
            .send_raw(&envelope, message)
            .await
            .map_err(|e| OutboxError::Smtp {
                server: self.server.clone(),
                message: e.to_string(),
                failure: smtp_failure(&e),
            })?;
        Ok(())
    }

    async fn check(&self) -> Result<String, OutboxError> {
        let err = |message: String| OutboxError::Smtp {
            server: self.server.clone(),
            message,
            failure: SmtpFailure::Unreachable,
        };
        match self.transport.test_connection().await {
            Ok(true) => Ok(format!("SMTP {}: connected", self.server)),
            Ok(false) => Err(err("the server did not answer NOOP".into())),
            Err(e) => Err(err(e.to_string())),
        }
    }
}

/// The configured outbox.
pub enum AnyOutbox {
    File(FileOutbox),
    Smtp(Box<SmtpOutbox>),
}

impl AnyOutbox {
    pub fn from_config(c: &OutboxConfig) -> Result<AnyOutbox, OutboxError> {
        Ok(match c.kind {
            OutboxKind::File => AnyOutbox::File(FileOutbox::new(c.path.clone())),
            OutboxKind::Smtp => AnyOutbox::Smtp(Box::new(SmtpOutbox::new(c)?)),
        })
    }
}

impl Outbox for AnyOutbox {
    async fn send(
        &self,
        id: i64,
        from: &str,
        to: &[String],
        message: &[u8],
    ) -> Result<(), OutboxError> {
        match self {
            AnyOutbox::File(o) => o.send(id, from, to, message).await,
            AnyOutbox::Smtp(o) => o.send(id, from, to, message).await,
        }
    }

    async fn check(&self) -> Result<String, OutboxError> {
        match self {
            AnyOutbox::File(o) => o.check().await,
            AnyOutbox::Smtp(o) => o.check().await,
        }
    }
}

/// What a flush did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flushed {
    pub sent: usize,
    /// E-mails refused for good in this flush (now failed).
    pub failed: usize,
    /// E-mails still waiting, and the last error.
    pub waiting: usize,
    /// The server did not answer, so the flush stopped before the end of the queue.
    pub stopped: bool,
    pub error: Option<String>,
}

/// Sends the queued e-mails (only those due for a retry with `due_only`), each on its own: a
/// refusal of one (5xx: failed at once, with the server's answer; 4xx: tried again after a
/// doubling wait) does not hold back the others. Only when the server does not answer at all
/// does the flush stop, since the rest would fail the same way.
pub async fn flush<O: Outbox>(
    store: &MailStore,
    outbox: &O,
    from: &str,
    now: DateTime<Utc>,
    due_only: bool,
    max_retry_seconds: u64,
) -> Result<Flushed, OutboxError> {
    let queue = store.unsent(now, due_only).await?;
    let mut out = Flushed::default();
    for (i, mail) in queue.iter().enumerate() {
        let e = match outbox
            .send(mail.id, from, &mail.recipients, &mail.message)
            .await
        {
            Ok(()) => {
                store.sent(mail.id, now).await?;
                out.sent += 1;
                tracing::info!(
                    email = mail.id,
                    kind = %mail.kind,
                    organisation = mail.organisation.as_deref().unwrap_or("-"),
                    recipients = %mail.recipients.join(", "),
                    "e-mail sent"
                );
                continue;
            }
            Err(e) => e,
        };
        out.error = Some(e.to_string());
        if e.is_permanent() {
            store.gave_up(mail.id, &e.to_string(), now).await?;
            out.failed += 1;
            tracing::error!(
                email = mail.id,
                kind = %mail.kind,
                recipients = %mail.recipients.join(", "),
                error = %e,
                "e-mail refused for good; marked failed"
            );
            continue;
        }
        let wait = backoff(mail.attempts, max_retry_seconds);
        store.failed(mail.id, &e.to_string(), now + wait).await?;
        tracing::warn!(
            email = mail.id,
            kind = %mail.kind,
            attempts = mail.attempts + 1,
            retry_in_s = wait.num_seconds(),
            error = %e,
            "e-mail not sent; will retry"
        );
        out.waiting += 1;
        if e.is_unreachable() {
            out.waiting += queue.len() - i - 1;
            out.stopped = true;
            break;
        }
    }
    Ok(out)
}

/// 30 s, 1 min, 2 min, … up to the cap.
pub fn backoff(attempts: i64, cap_seconds: u64) -> chrono::Duration {
    let exp = u32::try_from(attempts.clamp(0, 20)).unwrap_or(20);
    let secs = 30u64.saturating_mul(1u64 << exp).min(cap_seconds.max(1));
    chrono::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::outbox::{DeliveryState, QueuedMail};

    /// Refuses `refused@…` for good (550), `later@…` for now (450), delivers the rest.
    struct Picky;

    impl Outbox for Picky {
        async fn send(&self, _: i64, _: &str, to: &[String], _: &[u8]) -> Result<(), OutboxError> {
            let fail = |message: &str, failure| {
                Err(OutboxError::Smtp {
                    server: "mx:25".into(),
                    message: message.into(),
                    failure,
                })
            };
            match to[0].split('@').next() {
                Some("refused") => fail("550 5.1.1 no such user", SmtpFailure::Permanent),
                Some("later") => fail("450 4.2.0 try later", SmtpFailure::Transient),
                _ => Ok(()),
            }
        }

        async fn check(&self) -> Result<String, OutboxError> {
            Ok(String::new())
        }
    }

    fn mail(to: &str) -> QueuedMail {
        QueuedMail {
            kind: "acknowledgement".into(),
            organisation: None,
            recipients: vec![to.into()],
            message: format!("Subject: to {to}\r\n\r\nhi\r\n").into_bytes(),
        }
    }

    #[tokio::test]
    async fn one_refused_e_mail_does_not_hold_back_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let store = MailStore::open(dir.path()).await.unwrap();
        let now = Utc::now();
        let queue = [
            mail("refused@rxx.nhs.uk"),
            mail("later@rxx.nhs.uk"),
            mail("ok@rxx.nhs.uk"),
        ];
        store.queue_for_test(&queue, now).await.unwrap();
        let out = flush(&store, &Picky, "c@x", now, false, 900).await.unwrap();
        assert_eq!((out.sent, out.failed, out.waiting), (1, 1, 1));
        let by_to = |records: &[crate::store::outbox::OutboxRecord], to: &str| {
            records
                .iter()
                .find(|r| r.recipients[0].starts_with(to))
                .cloned()
                .unwrap()
        };
        let all = store.outbox(true).await.unwrap();
        let refused = by_to(&all, "refused");
        assert_eq!(refused.state, DeliveryState::Failed);
        assert_eq!(
            refused.last_error.as_deref(),
            Some("SMTP mx:25: 550 5.1.1 no such user")
        );
        assert_eq!(refused.subject, "to refused@rxx.nhs.uk");
        assert_eq!(by_to(&all, "later").state, DeliveryState::Waiting);
        assert_eq!(by_to(&all, "ok").state, DeliveryState::Sent);
        // The next due-only pass tries nothing: the 4xx one waits for its backoff, the failed
        // one is not tried again.
        let again = flush(&store, &Picky, "c@x", now, true, 900).await.unwrap();
        assert_eq!(again, Flushed::default());
        // The operator's verbs.
        assert!(store.retry(refused.id, now).await.unwrap());
        assert!(
            !store.retry(by_to(&all, "ok").id, now).await.unwrap(),
            "sent stays sent"
        );
        assert!(
            store
                .drop_mail(refused.id, "address left the trust")
                .await
                .unwrap()
        );
        let dropped = store.outbox_record(refused.id).await.unwrap().unwrap();
        assert_eq!(dropped.state, DeliveryState::Dropped);
        assert_eq!(
            dropped.closed_reason.as_deref(),
            Some("address left the trust")
        );
        assert_eq!(
            store.outbox(false).await.unwrap().len(),
            1,
            "only the waiting one"
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        assert_eq!(backoff(0, 900).num_seconds(), 30);
        assert_eq!(backoff(1, 900).num_seconds(), 60);
        assert_eq!(backoff(4, 900).num_seconds(), 480);
        assert_eq!(backoff(5, 900).num_seconds(), 900);
        assert_eq!(backoff(60, 900).num_seconds(), 900);
    }
}
