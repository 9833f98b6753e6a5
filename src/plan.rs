//! The Plan: what one run will do to one organisation's accounts, row by row.
//!
//! In: nothing (a value type). Out: a serialisable [`Plan`] that `plan --json` prints, the
//! guard measures, the state database stores while a run is held, and apply executes; and
//! the row results the JSON contract and the result report give.

use serde::{Deserialize, Serialize};

use crate::model::{Account, Change};
use crate::model::{OdsCode, PortalId};
use crate::report::{RowReport, RowResultKind};

/// One organisation's run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The run's ID (assigned when the plan is made).
    pub run: String,
    pub organisation: OdsCode,
    /// One entry per data line of the file, in file order.
    pub rows: Vec<PlannedRow>,
}

/// What will happen to one line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedRow {
    pub line: u64,
    pub action: Action,
    /// For an administrator: the new address, the fields changed, or the reason for refusal.
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum Action {
    /// A new account; its portal ID is minted when the run is journalled.
    Create {
        account: Box<Account>,
    },
    /// Overwritable fields that differ, each with the value it replaces.
    Update {
        id: PortalId,
        changes: Vec<Change>,
        /// The first or last name changes (a measure of the guard).
        renamed: bool,
    },
    Unchanged {
        id: PortalId,
    },
    Rejected,
}

impl PlannedRow {
    pub fn result(&self) -> RowResultKind {
        match self.action {
            Action::Create { .. } => RowResultKind::Created,
            Action::Update { .. } => RowResultKind::Updated,
            Action::Unchanged { .. } => RowResultKind::Unchanged,
            Action::Rejected => RowResultKind::Rejected,
        }
    }

    /// Whether applying the row changes the directory.
    pub fn changes_directory(&self) -> bool {
        matches!(self.action, Action::Create { .. } | Action::Update { .. })
    }
}

/// Rows of a plan by result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub created: u64,
    pub updated: u64,
    pub renamed: u64,
    pub unchanged: u64,
    pub rejected: u64,
    pub failed: u64,
}

impl Plan {
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for row in &self.rows {
            match &row.action {
                Action::Create { .. } => c.created += 1,
                Action::Update { renamed, .. } => {
                    c.updated += 1;
                    c.renamed += u64::from(*renamed);
                }
                Action::Unchanged { .. } => c.unchanged += 1,
                Action::Rejected => c.rejected += 1,
            }
        }
        c
    }

    /// The rows as the report and JSON contract give them. With `held`, rows that would
    /// change the directory are `Held` instead.
    pub fn reports(&self, held: bool) -> Vec<RowReport> {
        self.rows
            .iter()
            .map(|row| {
                if held && row.changes_directory() {
                    RowReport {
                        line: row.line,
                        result: RowResultKind::Held,
                        message: format!(
                            "held for approval (run {}): would be {}: {}",
                            self.run,
                            row.result().as_str().to_lowercase(),
                            row.message
                        ),
                    }
                } else {
                    RowReport {
                        line: row.line,
                        result: row.result(),
                        message: row.message.clone(),
                    }
                }
            })
            .collect()
    }
}

impl Counts {
    /// `2 created, 3 updated, 10 unchanged, 1 rejected`.
    pub fn summary(&self) -> String {
        let mut parts = vec![
            format!("{} created", self.created),
            format!("{} updated", self.updated),
            format!("{} unchanged", self.unchanged),
            format!("{} rejected", self.rejected),
        ];
        if self.failed > 0 {
            parts.push(format!("{} failed", self.failed));
        }
        parts.join(", ")
    }

    /// The same of a plan not (yet) applied, in the conditional: `would create 2, update 3,
    /// leave 10 unchanged; 1 rejected`.
    pub fn summary_planned(&self) -> String {
        let mut out = format!(
            "would create {}, update {}, leave {} unchanged; {} rejected",
            self.created, self.updated, self.unchanged, self.rejected
        );
        if self.failed > 0 {
            out.push_str(&format!(", {} failed", self.failed));
        }
        out
    }
}
