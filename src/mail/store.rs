//! The e-mail connector's durable state, in the state database (`state.sqlite`) beside the
//! runs and journal, with its own schema versions (`mail_schema`).
//!
//! In: messages as received (raw bytes, verdict, attachment), e-mails to send, run outcomes.
//! Out: what is known of a message (so none is handled twice), each organisation's pending
//! submissions, the outbox queue. Every intake step that must not be half done — storing a
//! message, its submission and its reply — is one transaction.

use std::path::Path;

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::sqlite::SqlitePool;

use crate::directory::local::open_sqlite;

const MIGRATIONS: &[(i64, &str)] = &[(
    1,
    "CREATE TABLE mail_messages (
        no INTEGER PRIMARY KEY,
        mailbox_key TEXT NOT NULL UNIQUE,
        message_id TEXT NOT NULL UNIQUE,
        sender TEXT,
        subject TEXT NOT NULL,
        sent_date TEXT,
        received_at TEXT NOT NULL,
        raw BLOB NOT NULL,
        verdict TEXT NOT NULL,
        reason TEXT,
        folder TEXT NOT NULL,
        filed INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE mail_submissions (
        no INTEGER PRIMARY KEY,
        message_no INTEGER NOT NULL UNIQUE REFERENCES mail_messages (no),
        organisation TEXT NOT NULL,
        sender TEXT NOT NULL,
        message_id TEXT NOT NULL,
        file_name TEXT NOT NULL,
        file BLOB NOT NULL,
        received_at TEXT NOT NULL,
        valid_rows INTEGER NOT NULL,
        refused_rows INTEGER NOT NULL,
        status TEXT NOT NULL,
        run_id TEXT,
        plan TEXT,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX mail_submissions_status ON mail_submissions (status, organisation);
    CREATE TABLE mail_outbox (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        organisation TEXT,
        recipients TEXT NOT NULL,
        message BLOB NOT NULL,
        created_at TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        last_error TEXT,
        sent_at TEXT
    );
    CREATE INDEX mail_outbox_due ON mail_outbox (sent_at, next_attempt_at);
    CREATE TABLE mail_nightly (
        no INTEGER PRIMARY KEY,
        started_at TEXT NOT NULL,
        finished_at TEXT
    );",
)];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("mail state database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("mail state database: {0}")]
    Open(#[from] crate::directory::DirectoryError),
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
        }
    }
}

/// A message as first received, with what was decided about it.
#[derive(Debug, Clone)]
pub struct NewMessage<'a> {
    pub mailbox_key: &'a str,
    pub message_id: &'a str,
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

/// An e-mail ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMail {
    pub kind: String,
    pub organisation: Option<String>,
    pub recipients: Vec<String>,
    /// The whole message (RFC 5322 bytes).
    pub message: Vec<u8>,
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

#[derive(Debug, Clone)]
pub struct MailStore {
    pool: SqlitePool,
}

impl MailStore {
    /// Opens (creating when missing) the state database in the state folder.
    pub async fn open(state_dir: &Path) -> Result<MailStore, StoreError> {
        let pool = open_sqlite(&state_dir.join("state.sqlite")).await?;
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("CREATE TABLE IF NOT EXISTS mail_schema (version INTEGER PRIMARY KEY)")
            .execute(&mut *tx)
            .await?;
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM mail_schema")
            .fetch_all(&mut *tx)
            .await?;
        for (version, sql) in MIGRATIONS {
            if !applied.contains(version) {
                sqlx::raw_sql(*sql).execute(&mut *tx).await?;
                sqlx::query("INSERT INTO mail_schema (version) VALUES (?)")
                    .bind(version)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(MailStore { pool })
    }

    /// The folder of a message already stored under this mailbox key or Message-ID.
    pub async fn known(
        &self,
        mailbox_key: &str,
        message_id: &str,
    ) -> Result<Option<Folder>, StoreError> {
        let folder: Option<String> = sqlx::query_scalar(
            "SELECT folder FROM mail_messages WHERE mailbox_key = ? OR message_id = ? LIMIT 1",
        )
        .bind(mailbox_key)
        .bind(message_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(folder.as_deref().map(Folder::parse))
    }

    /// Stores a message, its submission (if any) and its replies in one transaction.
    pub async fn receive(
        &self,
        m: &NewMessage<'_>,
        submission: Option<&NewSubmission<'_>>,
        replies: &[QueuedMail],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let now_s = now.to_rfc3339();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let no: i64 = sqlx::query_scalar(
            "INSERT INTO mail_messages (mailbox_key, message_id, sender, subject, sent_date,
             received_at, raw, verdict, reason, folder) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             RETURNING no",
        )
        .bind(m.mailbox_key)
        .bind(m.message_id)
        .bind(m.sender)
        .bind(m.subject)
        .bind(m.sent_date)
        .bind(&now_s)
        .bind(m.raw)
        .bind(if submission.is_some() {
            "accepted"
        } else {
            "rejected"
        })
        .bind(m.reason.as_deref())
        .bind(m.folder.as_str())
        .fetch_one(&mut *tx)
        .await?;
        if let Some(s) = submission {
            sqlx::query(
                "INSERT INTO mail_submissions (message_no, organisation, sender, message_id,
                 file_name, file, received_at, valid_rows, refused_rows, status, updated_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
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
            .execute(&mut *tx)
            .await?;
        }
        enqueue(&mut tx, replies, now).await?;
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
        enqueue(&mut tx, mails, now).await?;
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

    /// E-mails not yet sent; with `due_only`, only those whose retry time has come.
    pub async fn unsent(
        &self,
        now: DateTime<Utc>,
        due_only: bool,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, kind, organisation, recipients, message, attempts FROM mail_outbox
             WHERE sent_at IS NULL AND (? = 0 OR next_attempt_at <= ?) ORDER BY id",
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
            "SELECT MIN(next_attempt_at) FROM mail_outbox WHERE sent_at IS NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(s.and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
            .map(|t| t.with_timezone(&Utc)))
    }

    pub async fn sent(&self, id: i64, now: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query("UPDATE mail_outbox SET sent_at = ?, attempts = attempts + 1 WHERE id = ?")
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

    /// Counts for `check` and summaries: (messages, pending submissions, unsent e-mails).
    pub async fn summary(&self) -> Result<(i64, i64, i64), StoreError> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM mail_messages),
                    (SELECT COUNT(*) FROM mail_submissions WHERE status = 'pending'),
                    (SELECT COUNT(*) FROM mail_outbox WHERE sent_at IS NULL)",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))
    }
}

async fn enqueue(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    mails: &[QueuedMail],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    for m in mails {
        let recipients =
            serde_json::to_string(&m.recipients).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query(
            "INSERT INTO mail_outbox (kind, organisation, recipients, message, created_at,
             next_attempt_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&m.kind)
        .bind(m.organisation.as_deref())
        .bind(recipients)
        .bind(&m.message)
        .bind(now.to_rfc3339())
        .bind(now.to_rfc3339())
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
