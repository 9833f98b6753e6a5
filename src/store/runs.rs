//! The state database: runs and their journal, separate from the directory (which may be a
//! remote portal), plus per-organisation locks.
//!
//! In: plans to journal, outcomes to record. Out: runs (held, applying, applied, rejected,
//! reverted) with their counts, the journal's pending operations for resume, and the done
//! changes a revert needs. SQLite by default; the schema is plain SQL (`?` placeholders and
//! `INTEGER PRIMARY KEY` as the run counter are the SQLite-specific parts).

use std::fs::File;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt as _;
use sqlx::sqlite::SqlitePool;
use sqlx::{QueryBuilder, Row, Sqlite};

use super::sqlite::{self, Migration, SqliteError};
use crate::directory::{Account, Change};
use crate::model::{Field, PortalId};
use crate::plan::{Action, Counts, Plan};

const MIGRATIONS: &[Migration] = &[(
    1,
    "runs and journal",
    "CREATE TABLE runs (
        no INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        organisation TEXT NOT NULL,
        kind TEXT NOT NULL,
        source TEXT,
        status TEXT NOT NULL,
        created_at TEXT NOT NULL,
        finished_at TEXT,
        plan TEXT,
        note TEXT,
        created INTEGER NOT NULL DEFAULT 0,
        updated INTEGER NOT NULL DEFAULT 0,
        unchanged INTEGER NOT NULL DEFAULT 0,
        rejected INTEGER NOT NULL DEFAULT 0,
        failed INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX runs_status ON runs (status);
    CREATE TABLE journal (
        run_id TEXT NOT NULL REFERENCES runs (id),
        seq INTEGER NOT NULL,
        op INTEGER NOT NULL,
        line INTEGER NOT NULL,
        kind TEXT NOT NULL,
        account_id TEXT NOT NULL,
        field TEXT,
        before_value TEXT,
        after_value TEXT,
        payload TEXT,
        state TEXT NOT NULL,
        message TEXT,
        PRIMARY KEY (run_id, seq)
    );
    CREATE INDEX journal_op ON journal (run_id, op);
    CREATE INDEX journal_account ON journal (account_id, field);",
)];

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    /// Over a guard threshold; waits for `approve` or `reject`.
    Held,
    /// Journalled; changes are being made (or the process stopped: resume).
    Applying,
    Applied,
    Rejected,
    /// A later `revert` restored its changes.
    Reverted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Held => "held",
            RunStatus::Applying => "applying",
            RunStatus::Applied => "applied",
            RunStatus::Rejected => "rejected",
            RunStatus::Reverted => "reverted",
        }
    }

    fn parse(s: &str) -> Option<RunStatus> {
        [
            RunStatus::Held,
            RunStatus::Applying,
            RunStatus::Applied,
            RunStatus::Rejected,
            RunStatus::Reverted,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("state database: {0}")]
    Open(#[from] SqliteError),
    #[error("state file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the state database holds a value it cannot read: {0}")]
    Corrupt(String),
    #[error("there is no run {0}")]
    NoSuchRun(String),
    /// A verb asked of a run in a status that does not allow it (approve an applied run,
    /// revert a reverted one): a plain refusal, nothing is wrong with the database.
    #[error("run {run} is {status}: {needed}")]
    WrongStatus {
        run: String,
        status: &'static str,
        needed: &'static str,
    },
}

/// A run as `runs` lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RunInfo {
    pub id: String,
    pub organisation: String,
    pub kind: String,
    pub source: Option<String>,
    #[serde(serialize_with = "status_ser")]
    pub status: RunStatus,
    pub created_at: String,
    pub finished_at: Option<String>,
    pub note: Option<String>,
    pub counts: Counts,
    #[serde(skip)]
    no: i64,
}

fn status_ser<S: serde::Serializer>(s: &RunStatus, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(s.as_str())
}

/// One journalled operation, as resume replays it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JournalOp {
    Create {
        op: i64,
        line: u64,
        account: Box<Account>,
    },
    Update {
        op: i64,
        line: u64,
        id: PortalId,
        changes: Vec<Change>,
    },
}

impl JournalOp {
    pub fn op(&self) -> i64 {
        match self {
            JournalOp::Create { op, .. } | JournalOp::Update { op, .. } => *op,
        }
    }
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpRecord {
    pub op: i64,
    pub done: bool,
    /// For a create: the account's ID and address as stored.
    pub account: Option<(String, Option<String>)>,
    pub message: Option<String>,
}

/// A field change a finished run made, for revert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoneChange {
    pub line: u64,
    pub account: PortalId,
    pub change: Change,
}

#[derive(Debug, Clone)]
pub struct StateDb {
    pool: SqlitePool,
    dir: PathBuf,
}

impl StateDb {
    /// Opens `state.sqlite` in the state folder, creating it when missing.
    pub async fn open(state_dir: &Path) -> Result<StateDb, StateError> {
        let pool = sqlite::open(&state_dir.join("state.sqlite")).await?;
        sqlite::migrate(&pool, MIGRATIONS).await?;
        Ok(StateDb {
            pool,
            dir: state_dir.to_owned(),
        })
    }

    /// Takes the organisation's lock, waiting while another process holds it. The lock is
    /// the open file: it goes when the process ends, however it ends.
    pub fn lock(&self, organisation: &str) -> Result<File, StateError> {
        let file = self.lock_file(organisation)?;
        file.lock().map_err(|source| StateError::Io {
            path: self.lock_path(organisation),
            source,
        })?;
        Ok(file)
    }

    /// Takes the lock only when it is free.
    pub fn try_lock(&self, organisation: &str) -> Result<Option<File>, StateError> {
        let file = self.lock_file(organisation)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(source)) => Err(StateError::Io {
                path: self.lock_path(organisation),
                source,
            }),
        }
    }

    fn lock_path(&self, organisation: &str) -> PathBuf {
        self.dir.join("locks").join(format!("{organisation}.lock"))
    }

    fn lock_file(&self, organisation: &str) -> Result<File, StateError> {
        let path = self.lock_path(organisation);
        let io = |source| StateError::Io {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io)
    }

    /// Stores a held run with its plan.
    pub async fn hold(
        &self,
        plan: &Plan,
        source: Option<&str>,
        reasons: &[String],
        now: DateTime<Utc>,
    ) -> Result<(), StateError> {
        let counts = plan.counts();
        let plan_json =
            serde_json::to_string(plan).map_err(|e| StateError::Corrupt(e.to_string()))?;
        sqlx::query(
            "INSERT INTO runs (id, organisation, kind, source, status, created_at, plan, note,
             created, updated, unchanged, rejected)
             VALUES (?, ?, 'apply', ?, 'held', ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&plan.run)
        .bind(plan.organisation.as_str())
        .bind(source)
        .bind(now.to_rfc3339())
        .bind(plan_json)
        .bind(reasons.join("; "))
        .bind(counts.created as i64)
        .bind(counts.updated as i64)
        .bind(counts.unchanged as i64)
        .bind(counts.rejected as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The plan of a held run.
    pub async fn held_plan(&self, run: &str) -> Result<Plan, StateError> {
        let info = self.run(run).await?;
        if info.status != RunStatus::Held {
            return Err(StateError::WrongStatus {
                run: run.to_owned(),
                status: info.status.as_str(),
                needed: "only a held run can be approved",
            });
        }
        let text: Option<String> = sqlx::query_scalar("SELECT plan FROM runs WHERE id = ?")
            .bind(run)
            .fetch_one(&self.pool)
            .await?;
        serde_json::from_str(&text.unwrap_or_default())
            .map_err(|e| StateError::Corrupt(format!("plan of run {run}: {e}")))
    }

    pub async fn set_status(
        &self,
        run: &str,
        status: RunStatus,
        now: DateTime<Utc>,
    ) -> Result<(), StateError> {
        sqlx::query("UPDATE runs SET status = ?, finished_at = ? WHERE id = ?")
            .bind(status.as_str())
            .bind(now.to_rfc3339())
            .bind(run)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Journals a plan: every intended change with its before-image, and the run as
    /// `applying`, in one transaction. New accounts carry the IDs minted for them.
    pub async fn journal(
        &self,
        plan: &Plan,
        kind: &str,
        source: Option<&str>,
        minted: &[PortalId],
        now: DateTime<Utc>,
    ) -> Result<(), StateError> {
        let counts = plan.counts();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let existing: Option<String> = sqlx::query_scalar("SELECT status FROM runs WHERE id = ?")
            .bind(&plan.run)
            .fetch_optional(&mut *tx)
            .await?;
        if existing.is_some() {
            sqlx::query("UPDATE runs SET status = 'applying', plan = NULL WHERE id = ?")
                .bind(&plan.run)
                .execute(&mut *tx)
                .await?;
        } else {
            sqlx::query(
                "INSERT INTO runs (id, organisation, kind, source, status, created_at,
                 unchanged, rejected) VALUES (?, ?, ?, ?, 'applying', ?, ?, ?)",
            )
            .bind(&plan.run)
            .bind(plan.organisation.as_str())
            .bind(kind)
            .bind(source)
            .bind(now.to_rfc3339())
            .bind(counts.unchanged as i64)
            .bind(counts.rejected as i64)
            .execute(&mut *tx)
            .await?;
        }
        struct Entry<'a> {
            op: i64,
            line: u64,
            kind: &'static str,
            account: String,
            field: Option<&'static str>,
            before: Option<&'a str>,
            after: Option<&'a str>,
            payload: Option<String>,
        }
        // Entries are written 2,500 to a statement as they are made: a large plan's journal
        // is never held in memory whole.
        const CHUNK: usize = 2500;
        async fn flush(
            tx: &mut sqlx::Transaction<'static, Sqlite>,
            run: &str,
            first_seq: usize,
            entries: &[Entry<'_>],
        ) -> Result<(), StateError> {
            if entries.is_empty() {
                return Ok(());
            }
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO journal (run_id, seq, op, line, kind, account_id, field, \
                 before_value, after_value, payload, state) ",
            );
            q.push_values(entries.iter().enumerate(), |mut b, (i, e)| {
                b.push_bind(run.to_owned())
                    .push_bind((first_seq + i) as i64)
                    .push_bind(e.op)
                    .push_bind(e.line as i64)
                    .push_bind(e.kind)
                    .push_bind(e.account.clone())
                    .push_bind(e.field)
                    .push_bind(e.before.map(str::to_owned))
                    .push_bind(e.after.map(str::to_owned))
                    .push_bind(e.payload.clone())
                    .push_bind("intended");
            });
            q.build().execute(&mut **tx).await?;
            Ok(())
        }
        let mut entries: Vec<Entry> = Vec::with_capacity(CHUNK);
        let mut written = 0;
        let mut minted = minted.iter();
        for (op, row) in plan
            .rows
            .iter()
            .filter(|r| r.changes_directory())
            .enumerate()
        {
            if entries.len() >= CHUNK {
                flush(&mut tx, &plan.run, written, &entries).await?;
                written += entries.len();
                entries.clear();
            }
            let op = op as i64;
            match &row.action {
                Action::Create { account } => {
                    let id = minted.next().cloned().ok_or_else(|| {
                        StateError::Corrupt("fewer minted IDs than new accounts".to_owned())
                    })?;
                    let mut account = (**account).clone();
                    account.id = id.clone();
                    account.set(Field::Id, Some(id.as_str()));
                    let payload = serde_json::to_string(&account)
                        .map_err(|e| StateError::Corrupt(e.to_string()))?;
                    entries.push(Entry {
                        op,
                        line: row.line,
                        kind: "create",
                        account: id.to_string(),
                        field: None,
                        before: None,
                        after: None,
                        payload: Some(payload),
                    });
                }
                Action::Update { id, changes, .. } => {
                    for c in changes {
                        entries.push(Entry {
                            op,
                            line: row.line,
                            kind: "update",
                            account: id.to_string(),
                            field: Some(c.field.name()),
                            before: c.before.as_deref(),
                            after: c.after.as_deref(),
                            payload: None,
                        });
                    }
                }
                _ => {}
            }
        }
        flush(&mut tx, &plan.run, written, &entries).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Operations of a run not yet done, from `from_op`, at most `limit` operations.
    pub async fn pending(
        &self,
        run: &str,
        from_op: i64,
        limit: i64,
    ) -> Result<Vec<JournalOp>, StateError> {
        let rows = sqlx::query(
            "SELECT op, line, kind, account_id, field, before_value, after_value, payload
             FROM journal WHERE run_id = ? AND op >= ? AND op < ? AND state = 'intended'
             ORDER BY seq",
        )
        .bind(run)
        .bind(from_op)
        .bind(from_op + limit)
        .fetch_all(&self.pool)
        .await?;
        let mut ops: Vec<JournalOp> = Vec::new();
        for row in rows {
            let op: i64 = row.try_get(0)?;
            let line: i64 = row.try_get(1)?;
            let line = line as u64;
            let kind: String = row.try_get(2)?;
            let id: String = row.try_get(3)?;
            if kind == "create" {
                let payload: Option<String> = row.try_get(7)?;
                let account: Account = serde_json::from_str(&payload.unwrap_or_default())
                    .map_err(|e| StateError::Corrupt(format!("journal of {run}: {e}")))?;
                ops.push(JournalOp::Create {
                    op,
                    line,
                    account: Box::new(account),
                });
                continue;
            }
            let field: Option<String> = row.try_get(4)?;
            let field = field
                .as_deref()
                .and_then(Field::from_name)
                .ok_or_else(|| StateError::Corrupt(format!("journal of {run}: field")))?;
            let change = Change {
                field,
                before: row.try_get(5)?,
                after: row.try_get(6)?,
            };
            match ops.last_mut() {
                Some(JournalOp::Update {
                    op: last, changes, ..
                }) if *last == op => changes.push(change),
                _ => ops.push(JournalOp::Update {
                    op,
                    line,
                    id: PortalId::new_unchecked(id),
                    changes: vec![change],
                }),
            }
        }
        Ok(ops)
    }

    /// Number of operations journalled for a run.
    pub async fn op_count(&self, run: &str) -> Result<i64, StateError> {
        let n: Option<i64> = sqlx::query_scalar("SELECT MAX(op) + 1 FROM journal WHERE run_id = ?")
            .bind(run)
            .fetch_one(&self.pool)
            .await?;
        Ok(n.unwrap_or(0))
    }

    /// Records how operations ended, in one transaction: the outcomes go to a temporary
    /// table, and one UPDATE driven by it (an index look-up per operation) marks the journal,
    /// instead of a statement per operation.
    pub async fn record(&self, run: &str, records: &[OpRecord]) -> Result<(), StateError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "CREATE TEMP TABLE IF NOT EXISTS outcomes (
                op INTEGER PRIMARY KEY,
                state TEXT NOT NULL,
                message TEXT,
                set_account INTEGER NOT NULL,
                account_id TEXT,
                address TEXT
            )",
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM temp.outcomes")
            .execute(&mut *tx)
            .await?;
        for chunk in records.chunks(5000) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT OR REPLACE INTO temp.outcomes \
                 (op, state, message, set_account, account_id, address) ",
            );
            q.push_values(chunk, |mut b, r| {
                let (id, address) = match &r.account {
                    Some((id, address)) => (Some(id.as_str()), address.as_deref()),
                    None => (None, None),
                };
                b.push_bind(r.op)
                    .push_bind(if r.done { "done" } else { "failed" })
                    .push_bind(r.message.as_deref())
                    .push_bind(r.account.is_some())
                    .push_bind(id)
                    .push_bind(address);
            });
            q.build().execute(&mut *tx).await?;
        }
        // A create's outcome also names the account and the address it got.
        sqlx::query(
            "UPDATE journal SET (state, message, account_id, after_value) = (
                SELECT o.state, o.message,
                    CASE WHEN o.set_account THEN o.account_id ELSE journal.account_id END,
                    CASE WHEN o.set_account THEN o.address ELSE journal.after_value END
                FROM temp.outcomes o WHERE o.op = journal.op)
             WHERE run_id = ? AND op IN (SELECT op FROM temp.outcomes)",
        )
        .bind(run)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM temp.outcomes")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Closes a run: counts from its journal, status `applied`.
    pub async fn finish(&self, run: &str, now: DateTime<Utc>) -> Result<Counts, StateError> {
        let count = |kind: &'static str, state: &'static str| {
            sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(DISTINCT op) FROM journal WHERE run_id = ? AND kind = ? AND state = ?",
            )
            .bind(run)
            .bind(kind)
            .bind(state)
        };
        let created = count("create", "done").fetch_one(&self.pool).await?;
        let updated = count("update", "done").fetch_one(&self.pool).await?;
        let failed = count("create", "failed").fetch_one(&self.pool).await?
            + count("update", "failed").fetch_one(&self.pool).await?;
        sqlx::query(
            "UPDATE runs SET status = 'applied', finished_at = ?, created = ?, updated = ?,
             failed = ? WHERE id = ?",
        )
        .bind(now.to_rfc3339())
        .bind(created)
        .bind(updated)
        .bind(failed)
        .bind(run)
        .execute(&self.pool)
        .await?;
        Ok(self.run(run).await?.counts)
    }

    /// Outcomes of a run's operations by line: (line, kind, done, account, address, message).
    pub async fn outcomes(&self, run: &str) -> Result<Vec<OpOutcomeRow>, StateError> {
        let rows = sqlx::query(
            "SELECT line, kind, state, account_id, after_value, message FROM journal
             WHERE run_id = ? AND seq IN (SELECT MIN(seq) FROM journal WHERE run_id = ? GROUP BY op)
             ORDER BY op",
        )
        .bind(run)
        .bind(run)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let line: i64 = r.try_get(0)?;
                let kind: String = r.try_get(1)?;
                let state: String = r.try_get(2)?;
                Ok(OpOutcomeRow {
                    line: line as u64,
                    create: kind == "create",
                    state,
                    account: r.try_get(3)?,
                    address: r.try_get(4)?,
                    message: r.try_get(5)?,
                })
            })
            .collect()
    }

    /// As [`Self::outcomes`], but only the operations a report says more about than the
    /// plan did (creates, and anything not done): for a large run of updates, a handful.
    pub async fn notable_outcomes(&self, run: &str) -> Result<Vec<OpOutcomeRow>, StateError> {
        let mut rows = sqlx::query(
            "SELECT line, kind, state, account_id, after_value, message FROM journal
             WHERE run_id = ? AND seq IN (SELECT MIN(seq) FROM journal WHERE run_id = ? GROUP BY op)
             AND (kind = 'create' OR state <> 'done')
             ORDER BY op",
        )
        .bind(run)
        .bind(run)
        .fetch(&self.pool);
        let mut out = Vec::new();
        while let Some(r) = rows.try_next().await? {
            let line: i64 = r.try_get(0)?;
            let kind: &str = r.try_get(1)?;
            out.push(OpOutcomeRow {
                line: line as u64,
                create: kind == "create",
                state: r.try_get(2)?,
                account: r.try_get(3)?,
                address: r.try_get(4)?,
                message: r.try_get(5)?,
            });
        }
        Ok(out)
    }

    pub async fn run(&self, id: &str) -> Result<RunInfo, StateError> {
        self.runs_where("WHERE id = ?", Some(id))
            .await?
            .pop()
            .ok_or_else(|| StateError::NoSuchRun(id.to_owned()))
    }

    /// Every run, oldest first.
    pub async fn runs(&self) -> Result<Vec<RunInfo>, StateError> {
        self.runs_where("", None).await
    }

    /// Runs whose journal was written but not finished (the process stopped).
    pub async fn unfinished(&self) -> Result<Vec<RunInfo>, StateError> {
        self.runs_where("WHERE status = 'applying'", None).await
    }

    async fn runs_where(
        &self,
        filter: &str,
        arg: Option<&str>,
    ) -> Result<Vec<RunInfo>, StateError> {
        let sql = format!(
            "SELECT no, id, organisation, kind, source, status, created_at, finished_at, note,
             created, updated, unchanged, rejected, failed FROM runs {filter} ORDER BY no"
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(arg) = arg {
            q = q.bind(arg.to_owned());
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                let status: String = r.try_get(5)?;
                let n = |i: usize| -> Result<u64, sqlx::Error> {
                    let v: i64 = r.try_get(i)?;
                    Ok(v as u64)
                };
                Ok(RunInfo {
                    no: r.try_get(0)?,
                    id: r.try_get(1)?,
                    organisation: r.try_get(2)?,
                    kind: r.try_get(3)?,
                    source: r.try_get(4)?,
                    status: RunStatus::parse(&status)
                        .ok_or_else(|| StateError::Corrupt(format!("run status {status}")))?,
                    created_at: r.try_get(6)?,
                    finished_at: r.try_get(7)?,
                    note: r.try_get(8)?,
                    counts: Counts {
                        created: n(9)?,
                        updated: n(10)?,
                        renamed: 0,
                        unchanged: n(11)?,
                        rejected: n(12)?,
                        failed: n(13)?,
                    },
                })
            })
            .collect()
    }

    /// The field changes a run made, in journal order.
    pub async fn done_changes(&self, run: &str) -> Result<Vec<DoneChange>, StateError> {
        let rows = sqlx::query(
            "SELECT line, account_id, field, before_value, after_value FROM journal
             WHERE run_id = ? AND kind = 'update' AND state = 'done' ORDER BY seq",
        )
        .bind(run)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let line: i64 = r.try_get(0)?;
                let field: String = r.try_get(2)?;
                Ok(DoneChange {
                    line: line as u64,
                    account: PortalId::new_unchecked(r.try_get::<String, _>(1)?),
                    change: Change {
                        field: Field::from_name(&field)
                            .ok_or_else(|| StateError::Corrupt(format!("field {field}")))?,
                        before: r.try_get(3)?,
                        after: r.try_get(4)?,
                    },
                })
            })
            .collect()
    }

    /// Accounts a run created: (ID, address).
    pub async fn created_by(&self, run: &str) -> Result<Vec<(String, Option<String>)>, StateError> {
        let rows = sqlx::query(
            "SELECT account_id, after_value FROM journal
             WHERE run_id = ? AND kind = 'create' AND state = 'done' ORDER BY seq",
        )
        .bind(run)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// The first run after `run` that changed this field of this account, if any.
    pub async fn later_change(
        &self,
        run: &RunInfo,
        account: &str,
        field: Field,
    ) -> Result<Option<String>, StateError> {
        Ok(sqlx::query_scalar(
            "SELECT r.id FROM journal j JOIN runs r ON r.id = j.run_id
             WHERE j.account_id = ? AND j.field = ? AND j.state = 'done' AND r.no > ?
             ORDER BY r.no LIMIT 1",
        )
        .bind(account)
        .bind(field.name())
        .bind(run.no)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Notes something on a run (why it is held, what a revert refused).
    /// Drops the organisation's runs still held that `older` picks (other than `by`): a newer
    /// run has planned the same organisation again, so approving one of them later would
    /// apply an older picture. Each is marked rejected with a note naming `by`.
    pub async fn supersede_held(
        &self,
        organisation: &str,
        by: &str,
        older: impl Fn(&RunInfo) -> bool,
        why: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<String>, StateError> {
        let mut dropped = Vec::new();
        for held in self.runs().await? {
            if held.status == RunStatus::Held
                && held.organisation == organisation
                && held.id != by
                && older(&held)
            {
                self.set_status(&held.id, RunStatus::Rejected, now).await?;
                self.note(&held.id, &format!("superseded by {by}, {why}"))
                    .await?;
                dropped.push(held.id);
            }
        }
        Ok(dropped)
    }

    pub async fn note(&self, run: &str, note: &str) -> Result<(), StateError> {
        sqlx::query("UPDATE runs SET note = ? WHERE id = ?")
            .bind(note)
            .bind(run)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// One journalled operation's outcome, for reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpOutcomeRow {
    pub line: u64,
    pub create: bool,
    pub state: String,
    pub account: String,
    pub address: Option<String>,
    pub message: Option<String>,
}
