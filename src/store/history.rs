//! An account's history from the journal: every change a run made to it, with the run's
//! provenance. The journal is in the state database whatever the directory backend, so
//! this reads the same for the embedded directory and the portal's SCIM API.
//!
//! In: an account's portal ID. Out: [`HistoryEntry`]s, oldest first: each field change
//! done (before → after), and the account's creation with its initial values (an account
//! carries no password: those go only to the password file).

use futures_util::TryStreamExt as _;
use sqlx::Row;

use super::journal::{OpKind, OpState};
use super::{StateDb, StateError};
use crate::model::{Account, Field, Provenance};

/// One change to an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// When the run applied it (RFC 3339); for a run recorded before that was kept, when
    /// the run was made.
    pub at: String,
    pub run: String,
    pub organisation: String,
    pub change: HistoryChange,
    /// The row's line in the run's file (or the run's rows, for a sync or a SCIM write).
    pub line: u64,
    /// The run's provenance; `None` for a run recorded before runs kept one.
    pub provenance: Option<Provenance>,
    /// The line's source entry (a sync's DN or SQL key), if the run recorded one.
    pub entry: Option<String>,
    /// The run's source in one phrase, as `runs` lists it (all an older run has).
    pub source: Option<String>,
    /// Who approved the run, if it was held and the approver is known.
    pub approved_by: Option<String>,
}

/// What the change was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryChange {
    /// The account was created with these values (in the field order of the format), its
    /// address as stored.
    Created {
        address: Option<String>,
        values: Vec<(Field, String)>,
    },
    Field {
        field: Field,
        before: Option<String>,
        after: Option<String>,
    },
}

impl StateDb {
    /// Every change done to the account, oldest first.
    pub async fn history(&self, account: &str) -> Result<Vec<HistoryEntry>, StateError> {
        let mut rows = sqlx::query(
            "SELECT r.id, r.organisation, COALESCE(r.applied_at, r.created_at), r.source,
             r.channel, r.source_name, r.sender, r.approved_by, j.line, j.kind, j.field,
             j.before_value, j.after_value, j.payload, e.entry
             FROM journal j JOIN runs r ON r.id = j.run_id
             LEFT JOIN run_entries e ON e.run_id = j.run_id AND e.line = j.line
             WHERE j.account_id = ? AND j.state = ? ORDER BY r.no, j.seq",
        )
        .bind(account)
        .bind(OpState::Done.as_str())
        .fetch(&self.pool);
        let mut out = Vec::new();
        while let Some(r) = rows.try_next().await? {
            let run: String = r.try_get(0)?;
            let kind: OpKind = r.try_get::<&str, _>(9)?.parse()?;
            let change = match kind {
                OpKind::Create => {
                    let payload: Option<String> = r.try_get(13)?;
                    let created: Account = serde_json::from_str(&payload.unwrap_or_default())
                        .map_err(|e| StateError::Corrupt(format!("journal of {run}: {e}")))?;
                    let address: Option<String> = r.try_get(12)?;
                    HistoryChange::Created {
                        values: initial_values(&created, address.as_deref()),
                        address,
                    }
                }
                OpKind::Update => {
                    let name: Option<String> = r.try_get(10)?;
                    let field = name.as_deref().and_then(Field::from_name).ok_or_else(|| {
                        StateError::Corrupt(format!("journal of {run}: field {name:?}"))
                    })?;
                    HistoryChange::Field {
                        field,
                        before: r.try_get(11)?,
                        after: r.try_get(12)?,
                    }
                }
            };
            let line: i64 = r.try_get(8)?;
            out.push(HistoryEntry {
                at: r.try_get(2)?,
                organisation: r.try_get(1)?,
                change,
                line: line as u64,
                provenance: super::runs::provenance(r.try_get(4)?, r.try_get(5)?, r.try_get(6)?)?,
                entry: r.try_get(14)?,
                source: r.try_get(3)?,
                approved_by: r.try_get(7)?,
                run,
            });
        }
        Ok(out)
    }

    /// The organisations runs were recorded for, in name order: where an ExternalSyncID
    /// can be looked for when no organisation is given.
    pub async fn run_organisations(&self) -> Result<Vec<String>, StateError> {
        Ok(
            sqlx::query_scalar("SELECT DISTINCT organisation FROM runs ORDER BY organisation")
                .fetch_all(&self.pool)
                .await?,
        )
    }
}

/// A new account's values as created: every field set, the address as stored (a clash
/// may have numbered it since the plan).
fn initial_values(account: &Account, address: Option<&str>) -> Vec<(Field, String)> {
    Field::ALL
        .into_iter()
        .filter_map(|f| {
            let value = match (f, address) {
                (Field::Email, Some(a)) => Some(a),
                _ => account.get(f),
            };
            value.map(|v| (f, v.to_owned()))
        })
        .collect()
}
