//! What the operator console lists: each organisation's latest file and runs, the files
//! received, and the messages set aside. Read-only views over the other parts' tables.
//!
//! In: nothing but the state database. Out: rows for the console's pages, newest first.

use sqlx::Row;

use super::{StateDb, StateError};

/// A file an administrator sent, as the console lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SubmissionRow {
    pub no: i64,
    pub organisation: String,
    pub sender: String,
    pub file_name: String,
    pub received_at: String,
    pub valid_rows: i64,
    pub refused_rows: i64,
    pub status: String,
    pub run_id: Option<String>,
}

/// One organisation at a glance.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OrganisationRow {
    pub organisation: String,
    pub last_file: Option<SubmissionRow>,
    /// The latest run that is not held: (ID, status, finished or made at, its counts as
    /// "N created, N updated, N rejected, N failed").
    pub last_run: Option<(String, String, String, String)>,
    pub held: i64,
    /// Files waiting for the nightly run.
    pub waiting: i64,
}

/// A message set aside (not a file taken), as the console lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RejectedMessage {
    pub no: i64,
    pub sender: Option<String>,
    pub subject: String,
    pub received_at: String,
    pub reason: Option<String>,
}

fn submission_row(r: &sqlx::sqlite::SqliteRow) -> Result<SubmissionRow, sqlx::Error> {
    Ok(SubmissionRow {
        no: r.try_get(0)?,
        organisation: r.try_get(1)?,
        sender: r.try_get(2)?,
        file_name: r.try_get(3)?,
        received_at: r.try_get(4)?,
        valid_rows: r.try_get(5)?,
        refused_rows: r.try_get(6)?,
        status: r.try_get(7)?,
        run_id: r.try_get(8)?,
    })
}

impl StateDb {
    /// The most recent `limit` files, newest first (of one organisation, when given).
    pub async fn recent_submissions(
        &self,
        organisation: Option<&str>,
        limit: i64,
    ) -> Result<Vec<SubmissionRow>, StateError> {
        let rows = sqlx::query(
            "SELECT no, organisation, sender, file_name, received_at, valid_rows, refused_rows,
             status, run_id FROM mail_submissions
             WHERE ? IS NULL OR organisation = ? ORDER BY no DESC LIMIT ?",
        )
        .bind(organisation)
        .bind(organisation)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(submission_row)
            .collect::<Result<_, sqlx::Error>>()?)
    }

    /// One file: its row and its bytes.
    pub async fn submission_file(
        &self,
        no: i64,
    ) -> Result<Option<(SubmissionRow, Vec<u8>)>, StateError> {
        let row = sqlx::query(
            "SELECT no, organisation, sender, file_name, received_at, valid_rows, refused_rows,
             status, run_id, file FROM mail_submissions WHERE no = ?",
        )
        .bind(no)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => Ok(Some((submission_row(&r)?, r.try_get(9)?))),
            None => Ok(None),
        }
    }

    /// Every organisation that sent a file or had a run, with `also` (the configured
    /// ones), in code order.
    pub async fn organisation_overview(
        &self,
        also: &[String],
    ) -> Result<Vec<OrganisationRow>, StateError> {
        let mut codes: Vec<String> = sqlx::query_scalar(
            "SELECT organisation FROM runs UNION SELECT organisation FROM mail_submissions",
        )
        .fetch_all(&self.pool)
        .await?;
        codes.extend(also.iter().cloned());
        codes.sort();
        codes.dedup();
        let mut out = Vec::with_capacity(codes.len());
        for code in codes {
            let last_file = self
                .recent_submissions(Some(&code), 1)
                .await?
                .into_iter()
                .next();
            let last_run = sqlx::query(
                "SELECT id, status, COALESCE(finished_at, created_at), created, updated, rejected,
                 failed FROM runs WHERE organisation = ? AND status != 'held'
                 ORDER BY no DESC LIMIT 1",
            )
            .bind(&code)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| {
                let n = |i: usize| r.try_get::<i64, _>(i);
                let counts = format!(
                    "{} created, {} updated, {} rejected, {} failed",
                    n(3)?,
                    n(4)?,
                    n(5)?,
                    n(6)?
                );
                Ok::<_, sqlx::Error>((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, counts))
            })
            .transpose()?;
            let held: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM runs WHERE organisation = ? AND status = 'held'",
            )
            .bind(&code)
            .fetch_one(&self.pool)
            .await?;
            let waiting: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM mail_submissions WHERE organisation = ? AND status = 'pending'",
            )
            .bind(&code)
            .fetch_one(&self.pool)
            .await?;
            out.push(OrganisationRow {
                organisation: code,
                last_file,
                last_run,
                held,
                waiting,
            });
        }
        Ok(out)
    }

    /// The most recent `limit` messages set aside, newest first.
    pub async fn rejected_messages(&self, limit: i64) -> Result<Vec<RejectedMessage>, StateError> {
        let rows = sqlx::query(
            "SELECT no, sender, subject, received_at, reason FROM mail_messages
             WHERE folder = 'rejected' ORDER BY no DESC LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RejectedMessage {
                    no: r.try_get(0)?,
                    sender: r.try_get(1)?,
                    subject: r.try_get(2)?,
                    received_at: r.try_get(3)?,
                    reason: r.try_get(4)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StateError::from)
    }

    /// Runs by status, and how many rows the runs applied changed by kind, for `/metrics`.
    pub async fn run_totals(&self) -> Result<(Vec<(String, i64)>, [i64; 4]), StateError> {
        let by_status = sqlx::query("SELECT status, COUNT(*) FROM runs GROUP BY status")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()?;
        let r = sqlx::query(
            "SELECT COALESCE(SUM(created), 0), COALESCE(SUM(updated), 0),
             COALESCE(SUM(rejected), 0), COALESCE(SUM(failed), 0)
             FROM runs WHERE status IN ('applied', 'reverted')",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((
            by_status,
            [r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?],
        ))
    }

    /// When each organisation's last run was applied (RFC 3339), for `/metrics`.
    pub async fn last_applied(&self) -> Result<Vec<(String, String)>, StateError> {
        Ok(sqlx::query(
            "SELECT organisation, MAX(COALESCE(applied_at, finished_at)) FROM runs
             WHERE status IN ('applied', 'reverted') GROUP BY organisation",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .filter_map(|r| Some((r.try_get(0).ok()?, r.try_get::<Option<String>, _>(1).ok()??)))
        .collect())
    }

    /// Messages by folder and (for those set aside) reason, for `/metrics`.
    pub async fn message_totals(&self) -> Result<Vec<(String, String, i64)>, StateError> {
        Ok(sqlx::query(
            "SELECT folder, COALESCE(reason, ''), COUNT(*) FROM mail_messages
             GROUP BY folder, reason",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect::<Result<_, sqlx::Error>>()?)
    }

    /// Rows of the files received: (valid, refused), for `/metrics`.
    pub async fn row_totals(&self) -> Result<(i64, i64, i64), StateError> {
        let r = sqlx::query(
            "SELECT COUNT(*), COALESCE(SUM(valid_rows), 0), COALESCE(SUM(refused_rows), 0)
             FROM mail_submissions",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StateError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

impl StateDb {
    /// E-mails by delivery state, for `/metrics`.
    pub async fn outbox_totals(&self) -> Result<Vec<(String, i64)>, StateError> {
        Ok(
            sqlx::query("SELECT state, COUNT(*) FROM mail_outbox GROUP BY state")
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect::<Result<_, sqlx::Error>>()?,
        )
    }
}

/// What the console shows of a sync source besides its schedule.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SourceState {
    pub last_started: Option<String>,
    pub last_finished: Option<String>,
    /// The last scheduled sync's error and when, until a sync succeeds.
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    /// Entries refused, failed or not written back: read again by the next sync.
    pub awaiting_retry: i64,
}

impl StateDb {
    /// A sync source's last runs, error and retries.
    pub async fn source_state(&self, source: &str) -> Result<SourceState, StateError> {
        let row = sqlx::query(
            "SELECT last_started, last_finished, last_error, last_error_at FROM sync_sources
             WHERE source = ?",
        )
        .bind(source)
        .fetch_optional(&self.pool)
        .await?;
        let awaiting_retry: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sync_seen WHERE source = ? AND fingerprint = ''",
        )
        .bind(source)
        .fetch_one(&self.pool)
        .await?;
        let mut state = SourceState {
            awaiting_retry,
            ..SourceState::default()
        };
        if let Some(r) = row {
            state.last_started = r.try_get(0)?;
            state.last_finished = r.try_get(1)?;
            state.last_error = r.try_get(2)?;
            state.last_error_at = r.try_get(3)?;
        }
        Ok(state)
    }

    /// Records how a scheduled sync ended: its error, or none (a success clears it).
    pub async fn sync_outcome(
        &self,
        source: &str,
        error: Option<&str>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), StateError> {
        sqlx::query(
            "INSERT INTO sync_sources (source, last_error, last_error_at) VALUES (?, ?, ?)
             ON CONFLICT (source) DO UPDATE SET last_error = excluded.last_error,
             last_error_at = excluded.last_error_at",
        )
        .bind(source)
        .bind(error)
        .bind(error.map(|_| now.to_rfc3339()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

impl StateDb {
    /// The plan a submission's run was made from, kept with the submission (JSON), for the
    /// rows an applied run refused.
    pub async fn submission_plan(&self, run: &str) -> Result<Option<String>, StateError> {
        let plan: Option<Option<String>> = sqlx::query_scalar(
            "SELECT plan FROM mail_submissions WHERE run_id = ? ORDER BY no DESC LIMIT 1",
        )
        .bind(run)
        .fetch_optional(&self.pool)
        .await?;
        Ok(plan.flatten())
    }
}
