//! The outbox queue, in the state database: every e-mail the service sends is stored first
//! (in the same transaction as what caused it) and delivered from here.
//!
//! In: e-mails to send, delivery results. Out: the e-mails due, the queue as an operator
//! sees it (`outbox` verb), and the failed e-mails the operators have not been told of.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{MailStore, StoreError};

/// An e-mail ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMail {
    pub kind: String,
    pub organisation: Option<String>,
    pub recipients: Vec<String>,
    /// The whole message (RFC 5322 bytes).
    pub message: Vec<u8>,
}

/// Where an e-mail of the outbox is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// Not yet delivered; tried again when due.
    Waiting,
    Sent,
    /// Refused for good by the server, or given up on.
    Failed,
    /// Dropped by an operator.
    Dropped,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Waiting => "waiting",
            DeliveryState::Sent => "sent",
            DeliveryState::Failed => "failed",
            DeliveryState::Dropped => "dropped",
        }
    }

    fn parse(s: &str) -> Option<DeliveryState> {
        Some(match s {
            "waiting" => DeliveryState::Waiting,
            "sent" => DeliveryState::Sent,
            "failed" => DeliveryState::Failed,
            "dropped" => DeliveryState::Dropped,
            _ => return None,
        })
    }
}

/// An e-mail of the outbox as an operator sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OutboxRecord {
    pub id: i64,
    pub kind: String,
    pub organisation: Option<String>,
    pub recipients: Vec<String>,
    pub subject: String,
    pub state: DeliveryState,
    pub attempts: i64,
    pub created_at: String,
    pub next_attempt_at: String,
    pub last_error: Option<String>,
    /// Why it was dropped.
    pub closed_reason: Option<String>,
    pub sent_at: Option<String>,
}

/// The Subject of a message from its first bytes (as written by our composer: one line, or
/// RFC 2047 words, which are shown as they are).
fn subject_of(head: &[u8]) -> String {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let mut subject = String::new();
    while let Some(line) = lines.next() {
        if line.is_empty() {
            break;
        }
        if let Some(rest) = line
            .split_once(':')
            .filter(|(n, _)| n.eq_ignore_ascii_case("subject"))
            .map(|(_, v)| v)
        {
            subject.push_str(rest.trim());
            for more in lines.by_ref() {
                if more.starts_with([' ', '\t']) {
                    subject.push(' ');
                    subject.push_str(more.trim());
                } else {
                    break;
                }
            }
            break;
        }
    }
    mail_parser::MessageParser::default()
        .parse(format!("Subject: {subject}\r\n\r\n").as_bytes())
        .and_then(|m| m.subject().map(str::to_owned))
        .unwrap_or(subject)
}

/// An e-mail in the queue.
#[derive(Debug, Clone)]
pub struct OutboxEntry {
    pub id: i64,
    pub kind: String,
    pub organisation: Option<String>,
    pub recipients: Vec<String>,
    pub message: Vec<u8>,
    pub attempts: i64,
}

impl MailStore {
    /// E-mails not yet sent; with `due_only`, only those whose retry time has come.
    pub async fn unsent(
        &self,
        now: DateTime<Utc>,
        due_only: bool,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, kind, organisation, recipients, message, attempts FROM mail_outbox
             WHERE state = 'waiting' AND (? = 0 OR next_attempt_at <= ?)
             ORDER BY next_attempt_at, id",
        )
        .bind(i64::from(due_only))
        .bind(now.to_rfc3339())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let recipients: String = r.try_get("recipients")?;
                Ok(OutboxEntry {
                    id: r.try_get("id")?,
                    kind: r.try_get("kind")?,
                    organisation: r.try_get("organisation")?,
                    recipients: serde_json::from_str(&recipients)
                        .map_err(|e| StoreError::Corrupt(format!("outbox recipients: {e}")))?,
                    message: r.try_get("message")?,
                    attempts: r.try_get("attempts")?,
                })
            })
            .collect()
    }

    /// The earliest retry time of an unsent e-mail.
    pub async fn next_retry(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let s: Option<String> = sqlx::query_scalar(
            "SELECT MIN(next_attempt_at) FROM mail_outbox WHERE state = 'waiting'",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(s.and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
            .map(|t| t.with_timezone(&Utc)))
    }

    pub async fn sent(&self, id: i64, now: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE mail_outbox SET sent_at = ?, attempts = attempts + 1, state = 'sent'
             WHERE id = ?",
        )
        .bind(now.to_rfc3339())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn failed(
        &self,
        id: i64,
        error: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE mail_outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?
             WHERE id = ?",
        )
        .bind(error)
        .bind(retry_at.to_rfc3339())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Gives up on an e-mail the server refused for good: it is failed, with the answer.
    pub async fn gave_up(
        &self,
        id: i64,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE mail_outbox SET attempts = attempts + 1, last_error = ?, state = 'failed',
             next_attempt_at = ? WHERE id = ?",
        )
        .bind(error)
        .bind(now.to_rfc3339())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Failed e-mails the operators have not yet been told of.
    pub async fn failed_untold(&self) -> Result<Vec<OutboxRecord>, StoreError> {
        self.records("WHERE state = 'failed' AND operators_told = 0")
            .await
    }

    /// Notes that the operators have been told of a failed e-mail, queueing what tells them
    /// in the same transaction.
    pub async fn told(
        &self,
        id: i64,
        notices: &[QueuedMail],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("UPDATE mail_outbox SET operators_told = 1 WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        enqueue(&mut tx, notices, now, None).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The outbox, newest first: waiting and failed e-mails, and with `all` sent and dropped
    /// ones too.
    pub async fn outbox(&self, all: bool) -> Result<Vec<OutboxRecord>, StoreError> {
        self.records(if all {
            "ORDER BY id DESC"
        } else {
            "WHERE state IN ('waiting', 'failed') ORDER BY id DESC"
        })
        .await
    }

    pub async fn outbox_record(&self, id: i64) -> Result<Option<OutboxRecord>, StoreError> {
        Ok(self
            .records(&format!("WHERE id = {id}"))
            .await?
            .into_iter()
            .next())
    }

    async fn records(&self, clause: &str) -> Result<Vec<OutboxRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT id, kind, organisation, recipients, state, attempts, created_at,
             next_attempt_at, last_error, closed_reason, sent_at,
             substr(message, 1, 4096) AS head FROM mail_outbox {clause}"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let recipients: String = r.try_get("recipients")?;
                let state: String = r.try_get("state")?;
                let head: Vec<u8> = r.try_get("head")?;
                Ok(OutboxRecord {
                    id: r.try_get("id")?,
                    kind: r.try_get("kind")?,
                    organisation: r.try_get("organisation")?,
                    recipients: serde_json::from_str(&recipients)
                        .map_err(|e| StoreError::Corrupt(format!("outbox recipients: {e}")))?,
                    state: DeliveryState::parse(&state)
                        .ok_or_else(|| StoreError::Corrupt(format!("outbox state {state}")))?,
                    attempts: r.try_get("attempts")?,
                    created_at: r.try_get("created_at")?,
                    next_attempt_at: r.try_get("next_attempt_at")?,
                    last_error: r.try_get("last_error")?,
                    closed_reason: r.try_get("closed_reason")?,
                    sent_at: r.try_get("sent_at")?,
                    subject: subject_of(&head),
                })
            })
            .collect()
    }

    /// The e-mails about one submission (its acknowledgement, held notice, result), oldest
    /// first; e-mails queued before they were linked to their submission are not among them.
    pub async fn outbox_of_submission(&self, no: i64) -> Result<Vec<OutboxRecord>, StoreError> {
        self.records(&format!("WHERE submission_no = {no} ORDER BY id"))
            .await
    }

    /// Puts a failed or waiting e-mail back in the queue, due now.
    pub async fn retry(&self, id: i64, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE mail_outbox SET state = 'waiting', next_attempt_at = ?, operators_told = 0
             WHERE id = ? AND state IN ('waiting', 'failed')",
        )
        .bind(now.to_rfc3339())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Drops a waiting or failed e-mail: it will not be sent.
    pub async fn drop_mail(&self, id: i64, reason: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE mail_outbox SET state = 'dropped', closed_reason = ?
             WHERE id = ? AND state IN ('waiting', 'failed')",
        )
        .bind(reason)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    #[cfg(test)]
    pub async fn queue_for_test(
        &self,
        mails: &[QueuedMail],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        enqueue(&mut tx, mails, now, None).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Queues e-mails in `tx`; `submission`, when given, is the submission they are about
/// (the console lists a submission's e-mails).
pub(super) async fn enqueue(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    mails: &[QueuedMail],
    now: DateTime<Utc>,
    submission: Option<i64>,
) -> Result<(), StoreError> {
    for m in mails {
        let recipients =
            serde_json::to_string(&m.recipients).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query(
            "INSERT INTO mail_outbox (kind, organisation, recipients, message, created_at,
             next_attempt_at, submission_no) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&m.kind)
        .bind(m.organisation.as_deref())
        .bind(recipients)
        .bind(&m.message)
        .bind(now.to_rfc3339())
        .bind(now.to_rfc3339())
        .bind(submission)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
