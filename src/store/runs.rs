//! Runs, in the state database, separate from the directory (which may be a remote portal).
//!
//! In: held plans, status changes, notes. Out: runs (held, applying, applied, rejected,
//! reverted) with their counts, as `runs` lists them; a held run's plan for `approve`.
//! What a run changed is its journal ([`super::journal`]).

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{StateDb, StateError};
use crate::model::{Channel, Provenance};
use crate::plan::{Counts, Plan};

stored_enum! {
    /// Where a run is.
    pub enum RunStatus ("run status") {
        /// Over a guard threshold; waits for `approve` or `reject`.
        Held = "held",
        /// Journalled; changes are being made (or the process stopped: resume).
        Applying = "applying",
        Applied = "applied",
        Rejected = "rejected",
        /// A later `revert` restored its changes.
        Reverted = "reverted",
    }
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
    /// The run's provenance as its channel gave it (without the per-line entries, which
    /// stay in the state database); `None` for a run recorded before runs kept one, whose
    /// `source` is all there is.
    #[serde(skip)]
    pub provenance: Option<Provenance>,
    /// Who approved the run, when it was held and the approver is known.
    pub approved_by: Option<String>,
    #[serde(skip)]
    pub(super) no: i64,
}

fn status_ser<S: serde::Serializer>(s: &RunStatus, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(s.as_str())
}

impl StateDb {
    /// Stores a held run with its plan.
    pub async fn hold(
        &self,
        plan: &Plan,
        source: Option<&Provenance>,
        reasons: &[String],
        now: DateTime<Utc>,
    ) -> Result<(), StateError> {
        let counts = plan.counts();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let plan_json = serde_json::to_string(plan).map_err(|e| StateError::Unstorable {
            what: "the held plan",
            reason: e.to_string(),
        })?;
        sqlx::query(
            "INSERT INTO runs (id, organisation, kind, source, channel, source_name, sender,
             status, created_at, plan, note, created, updated, renamed, unchanged, rejected)
             VALUES (?, ?, 'apply', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&plan.run)
        .bind(plan.organisation.as_str())
        .bind(source.map(Provenance::describe))
        .bind(source.map(|p| p.channel.as_str()))
        .bind(source.map(|p| p.name.as_str()))
        .bind(source.and_then(|p| p.sender.as_deref()))
        .bind(RunStatus::Held.as_str())
        .bind(now.to_rfc3339())
        .bind(plan_json)
        .bind(reasons.join("; "))
        .bind(counts.created as i64)
        .bind(counts.updated as i64)
        .bind(counts.renamed as i64)
        .bind(counts.unchanged as i64)
        .bind(counts.rejected as i64)
        .execute(&mut *tx)
        .await?;
        if let Some(p) = source {
            write_entries(&mut tx, &plan.run, p).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records who approved a held run.
    pub async fn approved_by(&self, run: &str, approver: &str) -> Result<(), StateError> {
        sqlx::query("UPDATE runs SET approved_by = ? WHERE id = ?")
            .bind(approver)
            .bind(run)
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
        self.runs_where("WHERE status = ?", Some(RunStatus::Applying.as_str()))
            .await
    }

    async fn runs_where(
        &self,
        filter: &str,
        arg: Option<&str>,
    ) -> Result<Vec<RunInfo>, StateError> {
        let sql = format!(
            "SELECT no, id, organisation, kind, source, status, created_at, finished_at, note,
             created, updated, unchanged, rejected, failed, renamed, channel, source_name,
             sender, approved_by FROM runs {filter} ORDER BY no"
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
                    status: status.parse()?,
                    created_at: r.try_get(6)?,
                    finished_at: r.try_get(7)?,
                    note: r.try_get(8)?,
                    counts: Counts {
                        created: n(9)?,
                        updated: n(10)?,
                        renamed: n(14)?,
                        unchanged: n(11)?,
                        rejected: n(12)?,
                        failed: n(13)?,
                    },
                    provenance: provenance(r.try_get(15)?, r.try_get(16)?, r.try_get(17)?)?,
                    approved_by: r.try_get(18)?,
                })
            })
            .collect()
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

/// A run's provenance from its stored columns: none for a run recorded before runs kept
/// one (no channel).
pub(super) fn provenance(
    channel: Option<String>,
    name: Option<String>,
    sender: Option<String>,
) -> Result<Option<Provenance>, StateError> {
    let Some(channel) = channel else {
        return Ok(None);
    };
    let channel = Channel::parse(&channel)
        .ok_or_else(|| StateError::Corrupt(format!("run channel {channel:?}")))?;
    Ok(Some(Provenance {
        channel,
        name: name.unwrap_or_default(),
        sender,
        entries: Default::default(),
    }))
}

/// Stores a run's per-line source entries (kept if already stored: an approved run's
/// were written when it was held).
pub(super) async fn write_entries(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    run: &str,
    provenance: &Provenance,
) -> Result<(), StateError> {
    let entries: Vec<(&u64, &String)> = provenance.entries.iter().collect();
    for chunk in entries.chunks(5000) {
        let mut q: sqlx::QueryBuilder<sqlx::Sqlite> =
            sqlx::QueryBuilder::new("INSERT OR IGNORE INTO run_entries (run_id, line, entry) ");
        q.push_values(chunk, |mut b, (line, entry)| {
            b.push_bind(run.to_owned())
                .push_bind(**line as i64)
                .push_bind((*entry).clone());
        });
        q.build().execute(&mut **tx).await?;
    }
    Ok(())
}
