//! Apply: carry out a plan against a directory, through the journal.
//!
//! In: a [`Plan`], a [`Directory`], the [`StateDb`], a [`Minter`] for portal IDs and initial
//! passwords, and the time. Out: the run's counts and one [`RowReport`] per line.
//! Phases, from [`apply_plan`]: **journal** (every intended change with its before-image and
//! the minted IDs, one transaction) → **passwords** (new accounts' initial passwords to the
//! 0600 password file) → **write** (batches to the directory, each batch's outcome recorded)
//! → **finish** (the run's counts, written last). A run stopped anywhere after the journal is
//! finished by [`resume`]: updates are compare-and-set and creates look their ID and
//! ExternalSyncID up first, so the end state is the one an uninterrupted run reaches.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::directory::{Directory, DirectoryError, NewAccount, Op, OpOutcome};
use crate::model::{PortalId, Provenance};
use crate::plan::{Action, Counts, Plan};
use crate::report::{RowReport, RowResultKind};
use crate::store::{JournalOp, OpKind, OpOutcomeRow, OpRecord, OpState, StateDb, StateError};

/// Operations per directory batch (and per journal update).
const BATCH: i64 = 5000;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("password file {path}: {source}")]
    Passwords {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where new portal IDs, initial passwords and the one-time codes of e-mails come from
/// (randomness, passed in).
pub trait Minter {
    fn portal_id(&mut self) -> PortalId;
    fn password(&mut self) -> String;
    /// Random bytes for a `CONFIRM`/`CANCEL` code (see `store::mail::codes::mint`).
    fn code_bytes(&mut self) -> [u8; 16];
}

/// IDs and passwords from the operating system's random source. A portal ID this service
/// mints (for a file's create, a sync's, a SCIM POST to `serve`) is a random UUID in its
/// hyphenated lower-case form, `3e2072aa-bb42-4047-bab2-bcccd54316eb`; IDs imported from
/// the portal keep the portal's own form.
#[derive(Debug, Default)]
pub struct RandomMinter;

impl Minter for RandomMinter {
    fn portal_id(&mut self) -> PortalId {
        PortalId::new_unchecked(uuid::Uuid::new_v4().to_string())
    }

    fn password(&mut self) -> String {
        password_from(uuid::Uuid::new_v4().as_bytes())
    }

    fn code_bytes(&mut self) -> [u8; 16] {
        *uuid::Uuid::new_v4().as_bytes()
    }
}

/// Counted IDs and passwords (tests and the benchmark, for comparable runs).
#[derive(Debug, Default)]
pub struct SequenceMinter {
    pub prefix: String,
    pub next: u64,
}

impl Minter for SequenceMinter {
    fn portal_id(&mut self) -> PortalId {
        self.next += 1;
        PortalId::new_unchecked(format!("{}{:08}", self.prefix, self.next))
    }

    fn password(&mut self) -> String {
        password_from(&self.next.to_le_bytes())
    }

    fn code_bytes(&mut self) -> [u8; 16] {
        self.next += 1;
        u128::from(self.next).to_le_bytes()
    }
}

/// A 16-character password with upper case, lower case and digits, from random bytes.
fn password_from(bytes: &[u8]) -> String {
    const CLASSES: [&[u8]; 3] = [
        b"ABCDEFGHJKLMNPQRSTUVWXYZ",
        b"abcdefghijkmnopqrstuvwxyz",
        b"23456789",
    ];
    (0..16)
        .map(|i| {
            let class = CLASSES[i % 3];
            let b = bytes.get(i % bytes.len().max(1)).copied().unwrap_or(0) as usize;
            class[(b + i * 7) % class.len()] as char
        })
        .collect()
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub counts: Counts,
    pub reports: Vec<RowReport>,
    /// The portal ID minted for each row the plan creates: (line, ID).
    pub created: Vec<(u64, PortalId)>,
}

/// The things apply works with.
pub struct Context<'a, D> {
    pub directory: &'a D,
    pub state: &'a StateDb,
    /// The initial-password file (mode 0600).
    pub passwords: PathBuf,
    /// Called with (operations done, operations in all).
    pub progress: &'a dyn Fn(u64, u64),
}

/// Journals and applies a plan (the caller holds the organisation's lock).
pub async fn apply_plan<D: Directory>(
    ctx: &Context<'_, D>,
    plan: &Plan,
    kind: &str,
    source: Option<&Provenance>,
    minter: &mut dyn Minter,
    now: DateTime<Utc>,
) -> Result<Applied, ApplyError> {
    // Phase 1: journal.
    let creates = plan
        .rows
        .iter()
        .filter(|r| matches!(r.action, Action::Create { .. }))
        .count();
    let minted: Vec<PortalId> = (0..creates).map(|_| minter.portal_id()).collect();
    ctx.state.journal(plan, kind, source, &minted, now).await?;
    let created = plan
        .rows
        .iter()
        .filter(|r| matches!(r.action, Action::Create { .. }))
        .map(|r| r.line)
        .zip(minted.iter().cloned())
        .collect();
    // Phases 2–4, with the operations made from the plan: the journal just written holds
    // the same ones, all still to do.
    let counts = write(ctx, &plan.run, Ops::planned(plan, &minted), minter, now).await?;
    let reports = reports(ctx.state, plan, Planned::AsApplied).await?;
    Ok(Applied {
        counts,
        reports,
        created,
    })
}

/// Finishes a journalled run that a stopped process left behind.
pub async fn resume<D: Directory>(
    ctx: &Context<'_, D>,
    run: &str,
    minter: &mut dyn Minter,
    now: DateTime<Utc>,
) -> Result<Counts, ApplyError> {
    write(ctx, run, Ops::Journal, minter, now).await
}

/// Where the operations still to do come from.
enum Ops<'p> {
    /// The run's journal: those not yet done (a resumed run).
    Journal,
    /// The plan just journalled ([`crate::store::planned_ops`]): every operation, in
    /// order, taken a batch at a time.
    Planned(Box<dyn Iterator<Item = Result<JournalOp, StateError>> + Send + 'p>),
}

impl Ops<'_> {
    /// The operations of the plan just journalled, with the IDs minted for its new accounts.
    fn planned<'p>(plan: &'p Plan, minted: &'p [PortalId]) -> Ops<'p> {
        Ops::Planned(Box::new(crate::store::planned_ops(plan, minted)))
    }

    /// The operations still to do among the next `limit` from operation `from`, in journal
    /// order (batches are asked for in order, from operation 0).
    async fn batch(
        &mut self,
        state: &StateDb,
        run: &str,
        from: i64,
        limit: i64,
    ) -> Result<Vec<JournalOp>, StateError> {
        match self {
            Ops::Journal => state.pending(run, from, limit).await,
            Ops::Planned(ops) => ops
                .by_ref()
                .take(usize::try_from(limit).unwrap_or(0))
                .collect(),
        }
    }
}

/// Phases 2–4: passwords, write, finish.
async fn write<D: Directory>(
    ctx: &Context<'_, D>,
    run: &str,
    mut ops: Ops<'_>,
    minter: &mut dyn Minter,
    now: DateTime<Utc>,
) -> Result<Counts, ApplyError> {
    let total = ctx.state.op_count(run).await?;
    let mut from = 0;
    while from < total {
        let pending = ops.batch(ctx.state, run, from, BATCH).await?;
        if !pending.is_empty() {
            write_passwords(&ctx.passwords, &pending, minter)?;
            let numbers: Vec<i64> = pending.iter().map(JournalOp::op).collect();
            let batch: Vec<Op> = pending
                .into_iter()
                .map(|p| match p {
                    JournalOp::Create { account, .. } => Op::Create(NewAccount {
                        account: *account,
                        run: run.to_owned(),
                    }),
                    JournalOp::Update { id, changes, .. } => Op::Update {
                        id,
                        changes,
                        run: run.to_owned(),
                    },
                })
                .collect();
            let outcomes = ctx.directory.apply(&batch).await?;
            let records: Vec<OpRecord> = numbers
                .into_iter()
                .zip(outcomes)
                .map(|(op, outcome)| record_of(op, outcome))
                .collect();
            ctx.state.record(run, &records).await?;
        }
        from += BATCH;
        (ctx.progress)(from.min(total) as u64, total as u64);
    }
    let counts = ctx.state.finish(run, now).await?;
    Ok(counts)
}

fn record_of(op: i64, outcome: OpOutcome) -> OpRecord {
    match outcome {
        OpOutcome::Created(account) => OpRecord {
            op,
            done: true,
            account: Some((account.id.to_string(), account.email().map(str::to_owned))),
            message: None,
        },
        OpOutcome::Exists(account) => OpRecord {
            op,
            done: false,
            account: None,
            message: Some(format!(
                "ExternalSyncID already has the account {} (created since this run was \
                 planned): not created again",
                account.describe()
            )),
        },
        OpOutcome::Updated => OpRecord {
            op,
            done: true,
            account: None,
            message: None,
        },
        OpOutcome::Failed(reason) => OpRecord {
            op,
            done: false,
            account: None,
            message: Some(reason),
        },
    }
}

/// Appends the initial passwords of a batch's new accounts to the password file, which only
/// the service owner can read. A create retried after a stop gets a new line; the last line
/// for an ID is the one the account was created with.
fn write_passwords(
    path: &Path,
    pending: &[JournalOp],
    minter: &mut dyn Minter,
) -> Result<(), ApplyError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let creates: Vec<_> = pending
        .iter()
        .filter_map(|p| match p {
            JournalOp::Create { account, .. } => Some(account),
            JournalOp::Update { .. } => None,
        })
        .collect();
    if creates.is_empty() {
        return Ok(());
    }
    let io = |source| ApplyError::Passwords {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let new = !path.exists();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(io)?;
    let mut text = String::new();
    if new {
        text.push_str("ID,Email,Password\n");
    }
    for account in creates {
        text.push_str(&format!(
            "{},{},{}\n",
            account.id,
            account.email().unwrap_or_default(),
            minter.password()
        ));
    }
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(())
}

/// Which plan a run's report rows come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Planned {
    /// The plan the run applied: its rows say already what each update does, so only the
    /// creates (their address) and the operations not done add to them.
    AsApplied,
    /// The rows planned again once the run was over (its plan was lost with a stopped
    /// process): what the run changed now plans as unchanged, so every outcome is laid over.
    Again,
}

/// The report rows of a run: the plan's verdicts, with the journal's outcomes laid over
/// them (the address a new account got, an update made, why an operation failed or is not
/// done yet). The one place a journal becomes report rows.
pub async fn reports(
    state: &StateDb,
    plan: &Plan,
    planned: Planned,
) -> Result<Vec<RowReport>, StateError> {
    let outcomes = match planned {
        Planned::AsApplied => state.notable_outcomes(&plan.run).await?,
        Planned::Again => state.outcomes(&plan.run).await?,
    };
    let mut by_line: HashMap<u64, Vec<OpOutcomeRow>> = HashMap::new();
    for o in outcomes {
        by_line.entry(o.line).or_default().push(o);
    }
    Ok(plan
        .reports(false)
        .into_iter()
        .map(|mut r| {
            if let Some(ops) = by_line.get(&r.line) {
                lay_over(&mut r, ops, planned);
            }
            r
        })
        .collect())
}

/// One row's report with its operations' outcomes: a failure says why, an operation not yet
/// done says so, a create gives the address, an update done (when the plan did not say so).
fn lay_over(r: &mut RowReport, ops: &[OpOutcomeRow], planned: Planned) {
    if let Some(failed) = ops.iter().find(|o| o.state == OpState::Failed) {
        r.result = RowResultKind::Failed;
        r.message = failed.message.clone().unwrap_or_default();
    } else if ops.iter().any(|o| o.state == OpState::Intended) {
        r.result = RowResultKind::Failed;
        r.message = "not applied yet: the run was interrupted and will be finished on the \
                     next start"
            .to_owned();
    } else if let Some(created) = ops.iter().find(|o| o.kind == OpKind::Create) {
        r.result = RowResultKind::Created;
        r.message = created.address.clone().unwrap_or_default();
    } else if let (Some(updated), Planned::Again) = (ops.first(), planned) {
        r.result = RowResultKind::Updated;
        r.message = format!("ID {}: updated", updated.account);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::{Account, Change, Status};
    use crate::model::{Field, OdsCode};
    use crate::plan::PlannedRow;

    fn row(line: u64, action: Action, message: &str) -> PlannedRow {
        PlannedRow {
            line,
            action,
            message: message.to_owned(),
        }
    }

    fn update(id: &str) -> Action {
        Action::Update {
            id: PortalId::new_unchecked(id),
            changes: vec![Change {
                field: Field::JobTitle,
                before: Some("Nurse".to_owned()),
                after: Some("Sister".to_owned()),
            }],
            renamed: false,
        }
    }

    fn unchanged(id: &str) -> Action {
        Action::Unchanged {
            id: PortalId::new_unchecked(id),
        }
    }

    fn results(reports: &[RowReport]) -> Vec<(u64, &str, &str)> {
        reports
            .iter()
            .map(|r| (r.line, r.result.as_str(), r.message.as_str()))
            .collect()
    }

    /// A run of five operations: an update done, one refused, a create done, an update
    /// not yet made; and a rejected row.
    async fn journalled(state: &StateDb) -> Plan {
        let mut account = Account::new(
            PortalId::new_unchecked(""),
            Status::Active,
            &OdsCode::new_unchecked("RXX"),
        );
        account.set(Field::FirstName, Some("Ann"));
        account.set(Field::LastName, Some("Lee"));
        let plan = Plan {
            run: "r1".to_owned(),
            organisation: OdsCode::new_unchecked("RXX"),
            rows: vec![
                row(2, update("PA"), "JobTitle: Nurse → Sister"),
                row(3, update("PB"), "JobTitle: Nurse → Sister"),
                row(
                    4,
                    Action::Create {
                        account: Box::new(account),
                    },
                    "new",
                ),
                row(5, update("PC"), "JobTitle: Nurse → Sister"),
                row(6, Action::Rejected, "refused: no surname"),
            ],
        };
        let minted = [PortalId::new_unchecked("PN")];
        state
            .journal(&plan, "apply", None, &minted, Utc::now())
            .await
            .unwrap();
        let record = |op, done, account: Option<(&str, &str)>, message: Option<&str>| OpRecord {
            op,
            done,
            account: account.map(|(id, a)| (id.to_owned(), Some(a.to_owned()))),
            message: message.map(str::to_owned),
        };
        state
            .record(
                "r1",
                &[
                    record(0, true, None, None),
                    record(1, false, None, Some("changed since the plan")),
                    record(2, true, Some(("PN", "ann.lee@nhs.net")), None),
                ],
            )
            .await
            .unwrap();
        plan
    }

    #[tokio::test]
    async fn the_applied_plan_gets_the_journals_outcomes() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDb::open(dir.path()).await.unwrap();
        let plan = journalled(&state).await;
        let rows = reports(&state, &plan, Planned::AsApplied).await.unwrap();
        assert_eq!(
            results(&rows),
            [
                (2, "Updated", "JobTitle: Nurse → Sister"),
                (3, "Failed", "changed since the plan"),
                (4, "Created", "ann.lee@nhs.net"),
                (
                    5,
                    "Failed",
                    "not applied yet: the run was interrupted and will be finished on the next \
                     start"
                ),
                (6, "Rejected", "refused: no surname"),
            ]
        );
    }

    #[tokio::test]
    async fn rows_planned_again_show_what_the_run_did() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDb::open(dir.path()).await.unwrap();
        journalled(&state).await;
        // Planned again after the run: what it changed is now unchanged.
        let again = Plan {
            run: "r1".to_owned(),
            organisation: OdsCode::new_unchecked("RXX"),
            rows: vec![
                row(2, unchanged("PA"), "unchanged"),
                row(3, update("PB"), "JobTitle: Nurse → Sister"),
                row(4, unchanged("PN"), "unchanged"),
                row(5, update("PC"), "JobTitle: Nurse → Sister"),
                row(6, Action::Rejected, "refused: no surname"),
            ],
        };
        let rows = reports(&state, &again, Planned::Again).await.unwrap();
        let r = results(&rows);
        assert_eq!(r[0], (2, "Updated", "ID PA: updated"));
        assert_eq!(r[1], (3, "Failed", "changed since the plan"));
        assert_eq!(r[2], (4, "Created", "ann.lee@nhs.net"));
        assert_eq!(r[3].1, "Failed");
        assert_eq!(r[4], (6, "Rejected", "refused: no surname"));
        // Read as the applied plan instead, the done update would not show.
        let as_applied = reports(&state, &again, Planned::AsApplied).await.unwrap();
        assert_eq!(results(&as_applied)[0], (2, "Unchanged", "unchanged"));
    }

    #[tokio::test]
    async fn the_operations_made_from_a_plan_are_those_its_journal_holds() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDb::open(dir.path()).await.unwrap();
        let mut plan = journalled(&state).await;
        // A second run of the same rows, not yet applied: every operation still to do,
        // one of them of two changes.
        plan.run = "r2".to_owned();
        if let Action::Update { changes, .. } = &mut plan.rows[0].action {
            changes.push(Change {
                field: Field::LastName,
                before: Some("Lee".to_owned()),
                after: Some("Li".to_owned()),
            });
        }
        plan.rows.insert(1, row(9, unchanged("PZ"), "unchanged"));
        let minted = [PortalId::new_unchecked("PM")];
        state
            .journal(&plan, "apply", None, &minted, Utc::now())
            .await
            .unwrap();
        let from_plan: Vec<JournalOp> = crate::store::planned_ops(&plan, &minted)
            .collect::<Result<_, _>>()
            .unwrap();
        let from_journal = state.pending("r2", 0, 100).await.unwrap();
        assert_eq!(from_plan.len(), 4);
        assert_eq!(from_plan, from_journal);
        // Taken a batch at a time, as apply takes them, the same operations.
        let mut ops = Ops::planned(&plan, &minted);
        let mut batches = Vec::new();
        for from in [0, 3] {
            batches.push(ops.batch(&state, "r2", from, 3).await.unwrap());
        }
        assert_eq!(batches[0], from_journal[..3]);
        assert_eq!(batches[1], from_journal[3..]);
        // Too few IDs for the plan's new accounts is an error, not a create without one.
        assert!(
            crate::store::planned_ops(&plan, &[])
                .collect::<Result<Vec<_>, _>>()
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_finished_run_counts_its_operations_once_each() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDb::open(dir.path()).await.unwrap();
        let mut plan = journalled(&state).await;
        // A rename done: one operation of two entries, counted once as updated and renamed.
        plan.run = "r2".to_owned();
        plan.rows[0].action = Action::Update {
            id: PortalId::new_unchecked("PA"),
            changes: vec![
                Change {
                    field: Field::FirstName,
                    before: Some("Ann".to_owned()),
                    after: Some("Anne".to_owned()),
                },
                Change {
                    field: Field::JobTitle,
                    before: Some("Nurse".to_owned()),
                    after: Some("Sister".to_owned()),
                },
            ],
            renamed: true,
        };
        state
            .journal(
                &plan,
                "apply",
                None,
                &[PortalId::new_unchecked("PN2")],
                Utc::now(),
            )
            .await
            .unwrap();
        let done = |op| OpRecord {
            op,
            done: true,
            account: None,
            message: None,
        };
        state.record("r2", &[done(0), done(3)]).await.unwrap();
        let counts = state.finish("r2", Utc::now()).await.unwrap();
        assert_eq!(
            (
                counts.created,
                counts.updated,
                counts.renamed,
                counts.failed
            ),
            (0, 2, 1, 0)
        );
        // The first run: a create and an update done, an update refused, one not yet made.
        let counts = state.finish("r1", Utc::now()).await.unwrap();
        assert_eq!(
            (
                counts.created,
                counts.updated,
                counts.renamed,
                counts.failed
            ),
            (1, 1, 0, 1)
        );
    }

    #[tokio::test]
    async fn a_create_found_under_another_id_names_that_account() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDb::open(dir.path()).await.unwrap();
        let plan = journalled(&state).await;
        // The create (operation 2) was journalled as PN and recorded done as PN; a create
        // that finds its account under another ID records that one.
        let outcomes = state.outcomes("r1").await.unwrap();
        assert_eq!(outcomes[2].account, "PN");
        assert_eq!(outcomes[0].account, "PA");
        state
            .record(
                "r1",
                &[OpRecord {
                    op: 2,
                    done: true,
                    account: Some(("PX".to_owned(), Some("ann.lee2@nhs.net".to_owned()))),
                    message: None,
                }],
            )
            .await
            .unwrap();
        let outcomes = state.outcomes("r1").await.unwrap();
        assert_eq!(outcomes[2].account, "PX");
        assert_eq!(outcomes[2].address.as_deref(), Some("ann.lee2@nhs.net"));
        // The other operations keep theirs.
        assert_eq!(outcomes[0].account, "PA");
        assert_eq!(outcomes[1].account, "PB");
        assert_eq!(plan.rows.len(), 5);
    }
}
