//! The journal of a run, in the state database: every change a run intends, written with
//! its before-image before the directory is called, and how each operation ended.
//!
//! In: a plan (with the IDs minted for its new accounts), then the outcomes of its
//! operations. Out: the operations still pending (for resume), each operation's outcome
//! (for reports), the changes done (for revert). An operation's kind and state are typed
//! ([`OpKind`], [`OpState`]) and stored as their names.

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt as _;
use sqlx::{QueryBuilder, Row, Sqlite};

use super::runs::{RunInfo, RunStatus};
use super::{StateDb, StateError};
use crate::model::{Account, Change, Field, PortalId, Provenance};
use crate::plan::{Action, Counts, Plan};

stored_enum! {
    /// What a journalled operation does to the directory.
    pub enum OpKind ("journal operation kind") {
        Create = "create",
        Update = "update",
    }
}

stored_enum! {
    /// Where a journalled operation is.
    pub enum OpState ("journal state") {
        /// Journalled; the directory may or may not have it yet (resume finds out).
        Intended = "intended",
        Done = "done",
        /// The directory refused it; the message says why.
        Failed = "failed",
    }
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

/// The operations [`StateDb::journal`] writes for a plan, in its order and with its
/// numbers, made from the plan itself: what a run applies right after journalling it,
/// without reading its journal back. New accounts take the `minted` IDs in order.
pub fn planned_ops<'p>(
    plan: &'p Plan,
    minted: &'p [PortalId],
) -> impl Iterator<Item = Result<JournalOp, StateError>> + 'p {
    let mut minted = minted.iter();
    plan.rows
        .iter()
        .filter(|r| r.changes_directory())
        .enumerate()
        .filter_map(move |(op, row)| {
            let op = op as i64;
            match &row.action {
                Action::Create { account } => Some(minted.next().ok_or_else(too_few_minted).map(
                    |id| JournalOp::Create {
                        op,
                        line: row.line,
                        account: Box::new(with_id(account, id)),
                    },
                )),
                Action::Update { id, changes, .. } => Some(Ok(JournalOp::Update {
                    op,
                    line: row.line,
                    id: id.clone(),
                    changes: changes.clone(),
                })),
                _ => None,
            }
        })
}

/// A new account as journalled: with the ID minted for it.
fn with_id(account: &Account, id: &PortalId) -> Account {
    let mut account = account.clone();
    account.id = id.clone();
    account.set(Field::Id, Some(id.as_str()));
    account
}

fn too_few_minted() -> StateError {
    StateError::Unstorable {
        what: "the new accounts",
        reason: "fewer minted IDs than new accounts".to_owned(),
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

/// One journalled operation's outcome, for reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpOutcomeRow {
    pub line: u64,
    pub kind: OpKind,
    pub state: OpState,
    pub account: String,
    pub address: Option<String>,
    pub message: Option<String>,
}

impl StateDb {
    /// Journals a plan: every intended change with its before-image, and the run as
    /// `applying`, in one transaction. New accounts carry the IDs minted for them.
    pub async fn journal(
        &self,
        plan: &Plan,
        kind: &str,
        source: Option<&Provenance>,
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
            sqlx::query("UPDATE runs SET status = ?, plan = NULL, applied_at = ? WHERE id = ?")
                .bind(RunStatus::Applying.as_str())
                .bind(now.to_rfc3339())
                .bind(&plan.run)
                .execute(&mut *tx)
                .await?;
        } else {
            sqlx::query(
                "INSERT INTO runs (id, organisation, kind, source, channel, source_name,
                 sender, status, created_at, applied_at, renamed, unchanged, rejected)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&plan.run)
            .bind(plan.organisation.as_str())
            .bind(kind)
            .bind(source.map(Provenance::describe))
            .bind(source.map(|p| p.channel.as_str()))
            .bind(source.map(|p| p.name.as_str()))
            .bind(source.and_then(|p| p.sender.as_deref()))
            .bind(RunStatus::Applying.as_str())
            .bind(now.to_rfc3339())
            .bind(now.to_rfc3339())
            .bind(counts.renamed as i64)
            .bind(counts.unchanged as i64)
            .bind(counts.rejected as i64)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(p) = source {
            super::runs::write_entries(&mut tx, &plan.run, p).await?;
        }
        struct Entry {
            op: i64,
            line: u64,
            kind: OpKind,
            account: String,
            field: Option<&'static str>,
            before: Option<String>,
            after: Option<String>,
            payload: Option<String>,
        }
        // Entries are written 2,500 to a statement as they are made: a large plan's journal
        // is never held in memory whole.
        const CHUNK: usize = 2500;
        async fn flush(
            tx: &mut sqlx::Transaction<'static, Sqlite>,
            run: &str,
            first_seq: usize,
            entries: Vec<Entry>,
        ) -> Result<(), StateError> {
            if entries.is_empty() {
                return Ok(());
            }
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO journal (run_id, seq, op, line, kind, account_id, field, \
                 before_value, after_value, payload, state) ",
            );
            q.push_values(entries.into_iter().enumerate(), |mut b, (i, e)| {
                b.push_bind(run.to_owned())
                    .push_bind((first_seq + i) as i64)
                    .push_bind(e.op)
                    .push_bind(e.line as i64)
                    .push_bind(e.kind.as_str())
                    .push_bind(e.account)
                    .push_bind(e.field)
                    .push_bind(e.before)
                    .push_bind(e.after)
                    .push_bind(e.payload)
                    .push_bind(OpState::Intended.as_str());
            });
            q.build().execute(&mut **tx).await?;
            Ok(())
        }
        let mut entries: Vec<Entry> = Vec::with_capacity(CHUNK);
        let mut written = 0;
        // The operations as apply takes them right after it (`planned_ops`): one numbering.
        for op in planned_ops(plan, minted) {
            if entries.len() >= CHUNK {
                let full = std::mem::replace(&mut entries, Vec::with_capacity(CHUNK));
                let first = written;
                written += full.len();
                flush(&mut tx, &plan.run, first, full).await?;
            }
            match op? {
                JournalOp::Create { op, line, account } => {
                    let payload =
                        serde_json::to_string(&account).map_err(|e| StateError::Unstorable {
                            what: "a new account",
                            reason: e.to_string(),
                        })?;
                    entries.push(Entry {
                        op,
                        line,
                        kind: OpKind::Create,
                        account: account.id.to_string(),
                        field: None,
                        before: None,
                        after: None,
                        payload: Some(payload),
                    });
                }
                JournalOp::Update {
                    op,
                    line,
                    id,
                    changes,
                } => {
                    for c in changes {
                        entries.push(Entry {
                            op,
                            line,
                            kind: OpKind::Update,
                            account: id.to_string(),
                            field: Some(c.field.name()),
                            before: c.before,
                            after: c.after,
                            payload: None,
                        });
                    }
                }
            }
        }
        flush(&mut tx, &plan.run, written, entries).await?;
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
             FROM journal WHERE run_id = ? AND op >= ? AND op < ? AND state = ?
             ORDER BY seq",
        )
        .bind(run)
        .bind(from_op)
        .bind(from_op + limit)
        .bind(OpState::Intended.as_str())
        .fetch_all(&self.pool)
        .await?;
        let mut ops: Vec<JournalOp> = Vec::new();
        for row in rows {
            let op: i64 = row.try_get(0)?;
            let line: i64 = row.try_get(1)?;
            let line = line as u64;
            let kind: OpKind = row.try_get::<&str, _>(2)?.parse()?;
            let id: String = row.try_get(3)?;
            if kind == OpKind::Create {
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
                    .push_bind(
                        if r.done {
                            OpState::Done
                        } else {
                            OpState::Failed
                        }
                        .as_str(),
                    )
                    .push_bind(r.message.as_deref())
                    .push_bind(r.account.is_some())
                    .push_bind(id)
                    .push_bind(address);
            });
            q.build().execute(&mut *tx).await?;
        }
        // A create's outcome also names the address it got.
        sqlx::query(
            "UPDATE journal SET (state, message, after_value) = (
                SELECT o.state, o.message,
                    CASE WHEN o.set_account THEN o.address ELSE journal.after_value END
                FROM temp.outcomes o WHERE o.op = journal.op)
             WHERE run_id = ? AND op IN (SELECT op FROM temp.outcomes)",
        )
        .bind(run)
        .execute(&mut *tx)
        .await?;
        // And the account it found, in the rare case that is not the one journalled (it was
        // created before a stop): a statement of its own, as setting `account_id` on every
        // entry would rewrite each one's entry of the account index.
        sqlx::query(
            "UPDATE journal SET account_id = (
                SELECT o.account_id FROM temp.outcomes o WHERE o.op = journal.op)
             WHERE run_id = ? AND op IN (
                SELECT op FROM temp.outcomes WHERE set_account AND account_id IS NOT NULL)
               AND account_id IS NOT (
                SELECT o.account_id FROM temp.outcomes o WHERE o.op = journal.op)",
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

    /// Closes a run: counts from its journal, status `applied`. The counts come from one
    /// pass over the run's journal entries (a count per kind and state, and the renames).
    pub async fn finish(&self, run: &str, now: DateTime<Utc>) -> Result<Counts, StateError> {
        use OpKind::{Create, Update};
        use OpState::{Done, Failed};
        // Per operation (in the index's order, so without a sort): its kind, its state and
        // whether it changes a name, then counted per kind and state. An operation's entries
        // share its kind, and `record` gives them one state.
        let rows = sqlx::query(
            "SELECT kind, state, COUNT(*), SUM(renames) FROM (
                 SELECT MIN(kind) AS kind, MIN(state) AS state, MAX(field IN (?, ?)) AS renames
                 FROM journal WHERE run_id = ? GROUP BY op)
             GROUP BY kind, state",
        )
        .bind(Field::FirstName.name())
        .bind(Field::LastName.name())
        .bind(run)
        .fetch_all(&self.pool)
        .await?;
        let (mut created, mut updated, mut failed, mut renamed) = (0i64, 0i64, 0i64, 0i64);
        for row in rows {
            let kind: OpKind = row.try_get::<&str, _>(0)?.parse()?;
            let state: OpState = row.try_get::<&str, _>(1)?.parse()?;
            let ops: i64 = row.try_get(2)?;
            let renames: Option<i64> = row.try_get(3)?;
            match (kind, state) {
                (Create, Done) => created += ops,
                (Update, Done) => {
                    updated += ops;
                    renamed += renames.unwrap_or(0);
                }
                (_, Failed) => failed += ops,
                (_, OpState::Intended) => {}
            }
        }
        sqlx::query(
            "UPDATE runs SET status = ?, finished_at = ?, created = ?, updated = ?,
             renamed = ?, failed = ? WHERE id = ?",
        )
        .bind(RunStatus::Applied.as_str())
        .bind(now.to_rfc3339())
        .bind(created)
        .bind(updated)
        .bind(renamed)
        .bind(failed)
        .bind(run)
        .execute(&self.pool)
        .await?;
        Ok(self.run(run).await?.counts)
    }

    /// Outcomes of a run's operations, one per operation, in journal order.
    pub async fn outcomes(&self, run: &str) -> Result<Vec<OpOutcomeRow>, StateError> {
        self.outcomes_where(run, "").await
    }

    /// As [`Self::outcomes`], but only the operations a report says more about than the
    /// plan did (creates, and anything not done): for a large run of updates, a handful.
    pub async fn notable_outcomes(&self, run: &str) -> Result<Vec<OpOutcomeRow>, StateError> {
        self.outcomes_where(run, "AND (kind = ? OR state <> ?)")
            .await
    }

    /// The outcomes `filter` picks: nothing, or `(kind = ? OR state <> ?)` bound to a
    /// create and done.
    async fn outcomes_where(
        &self,
        run: &str,
        filter: &'static str,
    ) -> Result<Vec<OpOutcomeRow>, StateError> {
        let sql = format!(
            "SELECT line, kind, state, account_id, after_value, message FROM journal
             WHERE run_id = ? AND seq IN (SELECT MIN(seq) FROM journal WHERE run_id = ? GROUP BY op)
             {filter} ORDER BY op"
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(run).bind(run);
        if !filter.is_empty() {
            q = q.bind(OpKind::Create.as_str()).bind(OpState::Done.as_str());
        }
        let mut rows = q.fetch(&self.pool);
        let mut out = Vec::new();
        while let Some(r) = rows.try_next().await? {
            let line: i64 = r.try_get(0)?;
            out.push(OpOutcomeRow {
                line: line as u64,
                kind: r.try_get::<&str, _>(1)?.parse()?,
                state: r.try_get::<&str, _>(2)?.parse()?,
                account: r.try_get(3)?,
                address: r.try_get(4)?,
                message: r.try_get(5)?,
            });
        }
        Ok(out)
    }

    /// The field changes a run made, in journal order.
    pub async fn done_changes(&self, run: &str) -> Result<Vec<DoneChange>, StateError> {
        let rows = sqlx::query(
            "SELECT line, account_id, field, before_value, after_value FROM journal
             WHERE run_id = ? AND kind = ? AND state = ? ORDER BY seq",
        )
        .bind(run)
        .bind(OpKind::Update.as_str())
        .bind(OpState::Done.as_str())
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
             WHERE run_id = ? AND kind = ? AND state = ? ORDER BY seq",
        )
        .bind(run)
        .bind(OpKind::Create.as_str())
        .bind(OpState::Done.as_str())
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
             WHERE j.account_id = ? AND j.field = ? AND j.state = ? AND r.no > ?
             ORDER BY r.no LIMIT 1",
        )
        .bind(account)
        .bind(field.name())
        .bind(OpState::Done.as_str())
        .bind(run.no)
        .fetch_optional(&self.pool)
        .await?)
    }
}
