//! The e-mail connector's durable state, in the state database (`state.sqlite`) beside the
//! runs and journal.
//!
//! In: messages as received (raw bytes, verdict, attachment), e-mails to send, run outcomes.
//! Out: what is known of a message (so none is handled twice), each organisation's pending
//! submissions; the outbox queue is [`super::outbox`]. Every intake step that must not be half done — storing a
//! message, its submission and its reply — is one transaction.

use std::path::Path;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::sqlite::SqlitePool;

pub mod activity;
pub mod codes;
pub mod outbox;

pub use self::codes::{CodePurpose, CommandOutcome, CommandRecord, NewCode, StoredCode, Verb};
use self::outbox::{QueuedMail, enqueue};
use super::{StateDb, StateError};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("mail state database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("mail state database holds a value it cannot read: {0}")]
    Corrupt(String),
}

/// Where a handled message is filed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Folder {
    Processed,
    Rejected,
}

impl Folder {
    pub fn as_str(self) -> &'static str {
        match self {
            Folder::Processed => "processed",
            Folder::Rejected => "rejected",
        }
    }

    fn parse(s: &str) -> Folder {
        if s == "rejected" {
            Folder::Rejected
        } else {
            Folder::Processed
        }
    }
}

/// Where a submission is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmissionStatus {
    /// Waits for the nightly run.
    Pending,
    /// A later file of the same organisation replaced it.
    Superseded,
    /// The nightly run has started on it.
    Running,
    /// Its run is held for approval.
    Held,
    /// Its run was applied and the result sent.
    Applied,
    /// Its held run was dropped.
    Dropped,
    /// An administrator withdrew it (`CANCEL <code>`) before the nightly run.
    Withdrawn,
}

impl SubmissionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SubmissionStatus::Pending => "pending",
            SubmissionStatus::Superseded => "superseded",
            SubmissionStatus::Running => "running",
            SubmissionStatus::Held => "held",
            SubmissionStatus::Applied => "applied",
            SubmissionStatus::Dropped => "dropped",
            SubmissionStatus::Withdrawn => "withdrawn",
        }
    }
}

/// A message as first received, with what was decided about it.
#[derive(Debug, Clone)]
pub struct NewMessage<'a> {
    pub mailbox_key: &'a str,
    pub message_id: &'a str,
    pub content_key: &'a str,
    pub sender: Option<&'a str>,
    pub subject: &'a str,
    pub sent_date: Option<&'a str>,
    pub raw: &'a [u8],
    pub folder: Folder,
    pub reason: Option<String>,
}

/// A submission to store with its message.
#[derive(Debug, Clone)]
pub struct NewSubmission<'a> {
    pub organisation: &'a str,
    pub sender: &'a str,
    pub file_name: &'a str,
    pub file: &'a [u8],
    pub valid_rows: u64,
    pub refused_rows: u64,
}

/// A stored submission.
#[derive(Debug, Clone)]
pub struct StoredSubmission {
    pub no: i64,
    pub organisation: String,
    pub sender: String,
    pub message_id: String,
    pub file_name: String,
    pub file: Vec<u8>,
    pub received_at: String,
    pub status: String,
    pub run_id: Option<String>,
    pub plan: Option<String>,
}

/// Stores a message as received, with its verdict; returns its number.
async fn insert_message(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    m: &NewMessage<'_>,
    verdict: &str,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO mail_messages (mailbox_key, message_id, content_key, sender, subject,
         sent_date, received_at, raw, verdict, reason, folder)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING no",
    )
    .bind(m.mailbox_key)
    .bind(m.message_id)
    .bind(m.content_key)
    .bind(m.sender)
    .bind(m.subject)
    .bind(m.sent_date)
    .bind(now.to_rfc3339())
    .bind(m.raw)
    .bind(verdict)
    .bind(m.reason.as_deref())
    .bind(m.folder.as_str())
    .fetch_one(&mut **tx)
    .await?)
}

/// A message's content key: SHA-256 of its body (everything after its header block), hex.
/// It is what makes a message known again (with its Message-ID). Two copies of one
/// message that reached us by different routes differ in their trace headers, not here; a
/// new message that reuses an old Message-ID differs here.
pub fn content_key(raw: &[u8]) -> String {
    let body = memchr::memmem::find(raw, b"\r\n\r\n")
        .map(|i| &raw[i + 4..])
        .or_else(|| memchr::memmem::find(raw, b"\n\n").map(|i| &raw[i + 2..]))
        .unwrap_or(raw);
    Sha256::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Messages stored before content keys were kept get theirs (see the schema's version 202).
pub(super) async fn backfill_content_keys(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
        "SELECT no, raw FROM mail_messages WHERE content_key = '' AND raw IS NOT NULL",
    )
    .fetch_all(pool)
    .await?;
    for (no, raw) in rows {
        sqlx::query("UPDATE mail_messages SET content_key = ? WHERE no = ?")
            .bind(content_key(&raw))
            .bind(no)
            .execute(pool)
            .await?;
    }
    Ok(())
}

#[derive(Debug, Clone)]
pub struct MailStore {
    pub(super) pool: SqlitePool,
}

impl MailStore {
    pub(super) fn new(pool: SqlitePool) -> MailStore {
        MailStore { pool }
    }

    /// Opens the state database in the state folder (see [`StateDb::open`]) for its mail
    /// tables alone.
    pub async fn open(state_dir: &Path) -> Result<MailStore, StoreError> {
        Ok(StateDb::open(state_dir).await?.mail())
    }

    /// The folder of a message already stored: under this mailbox key, or with the same
    /// Message-ID and the same content (the same message reaching us again).
    pub async fn known(
        &self,
        mailbox_key: &str,
        message_id: &str,
        content_key: &str,
    ) -> Result<Option<Folder>, StoreError> {
        let folder: Option<String> = sqlx::query_scalar(
            "SELECT folder FROM mail_messages WHERE mailbox_key = ?
             OR (message_id = ? AND content_key = ?) LIMIT 1",
        )
        .bind(mailbox_key)
        .bind(message_id)
        .bind(content_key)
        .fetch_optional(&self.pool)
        .await?;
        Ok(folder.as_deref().map(Folder::parse))
    }

    /// Counts one more attempt at handling a message, before the attempt (so an attempt that
    /// kills the process is counted too). Returns the attempts so far, this one included.
    pub async fn attempt(&self, mailbox_key: &str, now: DateTime<Utc>) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "INSERT INTO mail_attempts (mailbox_key, attempts, updated_at) VALUES (?, 1, ?)
             ON CONFLICT (mailbox_key) DO UPDATE SET attempts = attempts + 1,
             updated_at = excluded.updated_at RETURNING attempts",
        )
        .bind(mailbox_key)
        .bind(now.to_rfc3339())
        .fetch_one(&self.pool)
        .await?)
    }

    /// Notes why an attempt failed.
    pub async fn attempt_failed(&self, mailbox_key: &str, error: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE mail_attempts SET last_error = ? WHERE mailbox_key = ?")
            .bind(error)
            .bind(mailbox_key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Gives back the attempt just counted (the message was left for later, not handled),
    /// noting why.
    pub async fn attempt_undone(&self, mailbox_key: &str, why: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE mail_attempts SET attempts = attempts - 1, last_error = ?
             WHERE mailbox_key = ? AND attempts > 0",
        )
        .bind(why)
        .bind(mailbox_key)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The last recorded error of a message's attempts.
    pub async fn last_attempt_error(
        &self,
        mailbox_key: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar::<_, Option<String>>(
            "SELECT last_error FROM mail_attempts WHERE mailbox_key = ?",
        )
        .bind(mailbox_key)
        .fetch_optional(&self.pool)
        .await?
        .flatten())
    }

    /// Claims today's one reply to an address that is not an administrator: true when none
    /// went there today (and now one may), false when one did.
    pub async fn claim_reply(&self, address: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO mail_reply_limits (address, day) VALUES (?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(address.to_ascii_lowercase())
        .bind(now.format("%Y-%m-%d").to_string())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Stores a message, its submission (if any) and its replies in one transaction.
    pub async fn receive(
        &self,
        m: &NewMessage<'_>,
        submission: Option<&NewSubmission<'_>>,
        replies: &[QueuedMail],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.receive_issuing(m, submission, replies, None, now)
            .await
    }

    /// As [`MailStore::receive`], also storing the code the acknowledgement carries, bound to
    /// the submission (the code's `submission_no` is the one stored here).
    pub async fn receive_issuing(
        &self,
        m: &NewMessage<'_>,
        submission: Option<&NewSubmission<'_>>,
        replies: &[QueuedMail],
        code: Option<&NewCode<'_>>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let now_s = now.to_rfc3339();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let verdict = if submission.is_some() {
            "accepted"
        } else {
            "rejected"
        };
        let no = insert_message(&mut tx, m, verdict, now).await?;
        let mut stored = None;
        if let Some(s) = submission {
            let submission_no: i64 = sqlx::query_scalar(
                "INSERT INTO mail_submissions (message_no, organisation, sender, message_id,
                 file_name, file, received_at, valid_rows, refused_rows, status, updated_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?) RETURNING no",
            )
            .bind(no)
            .bind(s.organisation)
            .bind(s.sender)
            .bind(m.message_id)
            .bind(s.file_name)
            .bind(s.file)
            .bind(&now_s)
            .bind(i64::try_from(s.valid_rows).unwrap_or(i64::MAX))
            .bind(i64::try_from(s.refused_rows).unwrap_or(i64::MAX))
            .bind(&now_s)
            .fetch_one(&mut *tx)
            .await?;
            if let Some(code) = code {
                codes::insert(&mut tx, code, None, Some(submission_no), now).await?;
            }
            stored = Some(submission_no);
        }
        enqueue(&mut tx, replies, now, stored).await?;
        sqlx::query("DELETE FROM mail_attempts WHERE mailbox_key = ?")
            .bind(m.mailbox_key)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Notes that the message has been filed in its folder.
    pub async fn filed(&self, mailbox_key: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE mail_messages SET filed = 1 WHERE mailbox_key = ?")
            .bind(mailbox_key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Organisations with submissions waiting for the nightly run (or left running by a
    /// stopped process), in code order.
    pub async fn organisations_waiting(&self) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT organisation FROM mail_submissions
             WHERE status IN ('pending', 'running') ORDER BY organisation",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Submissions of an organisation in a status, oldest first.
    pub async fn submissions(
        &self,
        organisation: Option<&str>,
        status: SubmissionStatus,
    ) -> Result<Vec<StoredSubmission>, StoreError> {
        let rows = sqlx::query(
            "SELECT no, organisation, sender, message_id, file_name, file, received_at, status,
             run_id, plan FROM mail_submissions
             WHERE status = ? AND (? IS NULL OR organisation = ?) ORDER BY no",
        )
        .bind(status.as_str())
        .bind(organisation)
        .bind(organisation)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StoredSubmission {
                    no: r.try_get("no")?,
                    organisation: r.try_get("organisation")?,
                    sender: r.try_get("sender")?,
                    message_id: r.try_get("message_id")?,
                    file_name: r.try_get("file_name")?,
                    file: r.try_get("file")?,
                    received_at: r.try_get("received_at")?,
                    status: r.try_get("status")?,
                    run_id: r.try_get("run_id")?,
                    plan: r.try_get("plan")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Moves a submission on, queueing its e-mails in the same transaction.
    pub async fn advance(
        &self,
        no: i64,
        status: SubmissionStatus,
        run_id: Option<&str>,
        plan: Option<&str>,
        mails: &[QueuedMail],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.advance_issuing(no, status, run_id, plan, mails, None, now)
            .await
    }

    /// As [`MailStore::advance`], also storing the code the e-mails carry, bound to the
    /// submission's run (`run_id`, or the run it has).
    #[allow(clippy::too_many_arguments)]
    pub async fn advance_issuing(
        &self,
        no: i64,
        status: SubmissionStatus,
        run_id: Option<&str>,
        plan: Option<&str>,
        mails: &[QueuedMail],
        code: Option<&NewCode<'_>>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "UPDATE mail_submissions SET status = ?, run_id = COALESCE(?, run_id),
             plan = COALESCE(?, plan), updated_at = ? WHERE no = ?",
        )
        .bind(status.as_str())
        .bind(run_id)
        .bind(plan)
        .bind(now.to_rfc3339())
        .bind(no)
        .execute(&mut *tx)
        .await?;
        if let Some(code) = code {
            let run: Option<String> =
                sqlx::query_scalar("SELECT run_id FROM mail_submissions WHERE no = ?")
                    .bind(no)
                    .fetch_one(&mut *tx)
                    .await?;
            codes::insert(&mut tx, code, run.as_deref(), Some(no), now).await?;
        }
        enqueue(&mut tx, mails, now, Some(no)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// When the last nightly run started.
    pub async fn last_nightly(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let s: Option<String> =
            sqlx::query_scalar("SELECT started_at FROM mail_nightly ORDER BY no DESC LIMIT 1")
                .fetch_optional(&self.pool)
                .await?;
        s.map(|s| {
            DateTime::parse_from_rfc3339(&s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| StoreError::Corrupt(format!("nightly start {s}: {e}")))
        })
        .transpose()
    }

    pub async fn nightly_started(&self, now: DateTime<Utc>) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("INSERT INTO mail_nightly (started_at) VALUES (?) RETURNING no")
                .bind(now.to_rfc3339())
                .fetch_one(&self.pool)
                .await?,
        )
    }

    pub async fn nightly_finished(&self, no: i64, now: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query("UPDATE mail_nightly SET finished_at = ? WHERE no = ?")
            .bind(now.to_rfc3339())
            .bind(no)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forgets the raw messages and files older than the retention periods: those of handled
    /// submissions (applied, superseded, dropped; a pending or held one is kept whatever its
    /// age) after `processed_days`, of rejected messages after `rejected_days`. The records
    /// (sender, subject, verdict, counts) stay. Returns how many messages were purged.
    pub async fn purge(
        &self,
        now: DateTime<Utc>,
        processed_days: u32,
        rejected_days: u32,
    ) -> Result<u64, StoreError> {
        let before = |days: u32| (now - chrono::Duration::days(i64::from(days))).to_rfc3339();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let rejected = sqlx::query(
            "UPDATE mail_messages SET raw = NULL
             WHERE raw IS NOT NULL AND folder = 'rejected' AND received_at < ?",
        )
        .bind(before(rejected_days))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let cutoff = before(processed_days);
        sqlx::query(
            "UPDATE mail_submissions SET file = X''
             WHERE length(file) > 0 AND status IN ('applied', 'superseded', 'dropped', 'withdrawn')
             AND received_at < ?",
        )
        .bind(&cutoff)
        .execute(&mut *tx)
        .await?;
        let processed = sqlx::query(
            "UPDATE mail_messages SET raw = NULL
             WHERE raw IS NOT NULL AND folder = 'processed' AND received_at < ?
             AND NOT EXISTS (SELECT 1 FROM mail_submissions s WHERE s.message_no = mail_messages.no
                             AND s.status IN ('pending', 'running', 'held'))",
        )
        .bind(&cutoff)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(rejected + processed)
    }

    /// Counts for `check` and summaries: (messages, pending submissions, unsent e-mails).
    pub async fn summary(&self) -> Result<(i64, i64, i64), StoreError> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM mail_messages),
                    (SELECT COUNT(*) FROM mail_submissions WHERE status = 'pending'),
                    (SELECT COUNT(*) FROM mail_outbox WHERE state = 'waiting')",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))
    }
}

#[cfg(test)]
mod tests;
