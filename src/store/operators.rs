//! What operators did through the console: the audit trail, and the approvals a held run
//! has gathered under the two-person rule.
//!
//! In: each action as it is taken. Out: the trail, newest first, and a run's approvals.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{StateDb, StateError};

/// One operator action.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditEntry {
    pub at: String,
    pub operator: String,
    /// `sign-in`, `sign-in refused`, `sign-out`, `approve`, `reject`, `revert`, `retry`, `drop`.
    pub action: String,
    /// What it was done to: a run, an e-mail's number.
    pub target: Option<String>,
    /// The reason given, or what came of it.
    pub detail: Option<String>,
    /// The address the request came from.
    pub peer: Option<String>,
}

/// One approval of a held run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Approval {
    pub operator: String,
    pub reason: String,
    pub at: String,
}

impl StateDb {
    /// Records an operator action.
    pub async fn audit(&self, entry: &AuditEntry) -> Result<(), StateError> {
        sqlx::query(
            "INSERT INTO operator_audit (at, operator, action, target, detail, peer)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&entry.at)
        .bind(&entry.operator)
        .bind(&entry.action)
        .bind(&entry.target)
        .bind(&entry.detail)
        .bind(&entry.peer)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The most recent `limit` actions, newest first.
    pub async fn audit_trail(&self, limit: i64) -> Result<Vec<AuditEntry>, StateError> {
        let rows = sqlx::query(
            "SELECT at, operator, action, target, detail, peer FROM operator_audit
             ORDER BY no DESC LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    at: r.try_get(0)?,
                    operator: r.try_get(1)?,
                    action: r.try_get(2)?,
                    target: r.try_get(3)?,
                    detail: r.try_get(4)?,
                    peer: r.try_get(5)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StateError::from)
    }

    /// Records `operator`'s approval of a held run; false when they had approved it already.
    pub async fn add_approval(
        &self,
        run: &str,
        operator: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StateError> {
        let done = sqlx::query(
            "INSERT INTO run_approvals (run_id, operator, reason, at) VALUES (?, ?, ?, ?)
             ON CONFLICT (run_id, operator) DO NOTHING",
        )
        .bind(run)
        .bind(operator)
        .bind(reason)
        .bind(now.to_rfc3339())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The approvals a run has gathered, oldest first.
    pub async fn approvals(&self, run: &str) -> Result<Vec<Approval>, StateError> {
        let rows = sqlx::query(
            "SELECT operator, reason, at FROM run_approvals WHERE run_id = ? ORDER BY at, operator",
        )
        .bind(run)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Approval {
                    operator: r.try_get(0)?,
                    reason: r.try_get(1)?,
                    at: r.try_get(2)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StateError::from)
    }
}
