//! The main job from validated rows to a finished or held run, and the operations on runs.
//!
//! In: validation results, the organisation's [`Policy`] and guard thresholds, a run ID and
//! the time (both passed in). Out: a [`Submitted`] (the plan, and either the hold reasons or
//! what was applied). Every step that touches the directory runs under the organisation's
//! lock, after finishing any run a stopped process left behind, and plans against the
//! directory as it is once the lock is held: two applies of one file for one organisation
//! run one after the other, and the second finds nothing left to do.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::apply::{self, Applied, ApplyError, Context, Minter};
use crate::config::GuardConfig;
use crate::directory::{Change, Directory, DirectoryError, OrganisationInfo};
use crate::guard;
use crate::model::{OdsCode, PortalId, Provenance};
use crate::plan::{Action, Counts, Plan, PlannedRow};
use crate::reconcile::{self, Policy};
use crate::report::RowReport;
use crate::store::{RunStatus, StateError};
use crate::validate::RowResult;

/// What became of a submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    pub plan: Plan,
    /// Why the run is held (empty when it was not); for a dry run, why the real run would be.
    pub held: Vec<String>,
    /// What was applied (none for a dry run or a held run).
    pub applied: Option<Applied>,
    /// Runs left behind by a stopped process that were finished first.
    pub resumed: Vec<String>,
    /// Held runs of the same source dropped because this run planned it again.
    pub superseded: Vec<String>,
    /// Why no row of the run was applied, said once for the whole run (its columns look
    /// swapped); each row's message says so too.
    pub refused: Option<String>,
}

impl Submitted {
    /// `applied`, `held`, or `planned` (a dry run).
    pub fn status(&self) -> &'static str {
        match (&self.applied, self.held.is_empty()) {
            (Some(_), _) => "applied",
            (None, false) => "held",
            (None, true) => "planned",
        }
    }

    /// One report per row: what was done, or what would be.
    pub fn reports(&self) -> Vec<RowReport> {
        match &self.applied {
            Some(a) => a.reports.clone(),
            None => self.plan.reports(!self.held.is_empty()),
        }
    }

    /// The run's counts: what was done, or what would be.
    pub fn counts(&self) -> Counts {
        counts(&self.plan, self.applied.as_ref())
    }
}

/// One submission, whatever its channel (a file, an e-mail, a sync, a SCIM write): what the
/// channel gives the driver.
pub struct Request<'r> {
    /// The validated rows.
    pub results: &'r [RowResult],
    /// The organisation's policy (with any channel override, e.g. a source's
    /// `create_accounts`).
    pub policy: Policy,
    pub limits: GuardConfig,
    pub run: String,
    /// Where the rows came from (the channel, the file or source, the sender, each line's
    /// source entry), recorded with the run and shown in every account's history.
    pub source: Provenance,
    /// Plan only: nothing is changed and no lock is taken.
    pub dry_run: bool,
    /// Whether the size guard applies (off for a channel that must answer at once, such as
    /// a SCIM write).
    pub guarded: bool,
    /// Drop the organisation's held runs of the same source, saying why ("which applied the
    /// same file again"): approving them later would apply an older picture.
    pub supersede: Option<&'static str>,
    /// Whether a plan with nothing to create or update (every row rejected or unchanged) is
    /// still applied, and so recorded as a run. Off for a SCIM write: a refused or unchanged
    /// User records no run, and the plan comes back unapplied for the channel to answer.
    pub record_idle: bool,
}

/// Plans, guards and applies one organisation's rows. A dry run changes nothing and takes
/// no lock; its plan is still guarded, so [`Submitted::held`] says why the real run would be
/// held. Without [`Request::record_idle`], a plan with nothing to change is not applied.
pub async fn submit<D: Directory>(
    ctx: &Context<'_, D>,
    request: &Request<'_>,
    minter: &mut dyn Minter,
    now: DateTime<Utc>,
) -> Result<Submitted, ApplyError> {
    let policy = &request.policy;
    let org = policy.organisation.to_string();
    let run = request.run.as_str();
    let source = Some(&request.source);
    let described = request.source.describe();
    let _lock = if request.dry_run {
        None
    } else {
        Some(ctx.state.lock(&org)?)
    };
    let mut out = Submitted {
        plan: Plan {
            run: run.to_owned(),
            organisation: policy.organisation.clone(),
            rows: Vec::new(),
        },
        held: Vec::new(),
        applied: None,
        resumed: Vec::new(),
        superseded: Vec::new(),
        refused: None,
    };
    if !request.dry_run {
        out.resumed = resume_locked(ctx, &org, minter, now).await?;
        if let Some(why) = request.supersede {
            out.superseded = ctx
                .state
                .supersede_held(
                    &org,
                    run,
                    |r| r.source.as_deref() == Some(described.as_str()),
                    why,
                    now,
                )
                .await?;
            for d in &out.superseded {
                tracing::info!(run = %d, by = %run, "held run superseded");
            }
        }
    }
    let planned = plan(ctx.directory, run, request.results, policy).await?;
    let accounts = planned.accounts;
    out.plan = planned.plan;
    out.refused = planned.refused;
    if request.guarded {
        // A dry run measures the plan as the real run would: a preview says whether (and
        // why) the run would be held, without holding anything.
        let verdict = guard::check(&out.plan, accounts, &request.limits);
        if request.dry_run {
            out.held = verdict.reasons;
            return Ok(out);
        }
        if verdict.held() {
            ctx.state
                .hold(&out.plan, source, &verdict.reasons, now)
                .await?;
            out.held = verdict.reasons;
            return Ok(out);
        }
    } else if request.dry_run {
        return Ok(out);
    }
    if !request.record_idle && !out.plan.rows.iter().any(changes) {
        return Ok(out);
    }
    out.applied = Some(apply::apply_plan(ctx, &out.plan, "apply", source, minter, now).await?);
    Ok(out)
}

/// Whether a planned row creates or updates an account.
fn changes(row: &PlannedRow) -> bool {
    matches!(row.action, Action::Create { .. } | Action::Update { .. })
}

/// Rows planned against one index: a large file is planned part by part, so the index (a
/// copy of every account the rows can touch) is never held whole.
pub const PLAN_CHUNK: usize = 50_000;

/// A plan made against the directory as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub plan: Plan,
    /// The number of accounts the organisation has (for the guard).
    pub accounts: u64,
    /// Why every row is refused, said once: the rows' columns look swapped
    /// ([`reconcile::swapped`]).
    pub refused: Option<String>,
}

/// Plans rows against the directory as it is now. The same plan as one
/// [`reconcile::reconcile`] over one index for all the rows, with memory for the index of
/// [`PLAN_CHUNK`] rows at a time. Rows that would create an account look their namesakes up,
/// and rows that may be given an address the addresses of its stem, in a second look-up
/// ([`reconcile::second_keys`]); when most rows that join an account give
/// two fields exchanged ([`reconcile::swapped`]), every row is refused.
pub async fn plan<D: Directory>(
    directory: &D,
    run: &str,
    results: &[RowResult],
    policy: &Policy,
) -> Result<Planned, DirectoryError> {
    plan_in_parts(directory, run, results, policy, PLAN_CHUNK).await
}

/// As [`plan`], `part` rows at a time.
pub async fn plan_in_parts<D: Directory>(
    directory: &D,
    run: &str,
    results: &[RowResult],
    policy: &Policy,
    part: usize,
) -> Result<Planned, DirectoryError> {
    let org = policy.organisation.to_string();
    let mut allocated = reconcile::Allocated::new(results);
    let mut tally = reconcile::swapped::Tally::default();
    let mut rows = Vec::with_capacity(results.len());
    let mut organisation: Option<OrganisationInfo> = None;
    // An empty file still looks the organisation up (the guard needs its size).
    let parts: Vec<&[RowResult]> = if results.is_empty() {
        vec![results]
    } else {
        results.chunks(part.max(1)).collect()
    };
    for part in parts {
        let mut keys = reconcile::join_keys(part, policy);
        if organisation.is_some() {
            // Known from the first part: not counted again.
            keys.organisations.retain(|o| o != &org);
        }
        let mut index = directory.index_for(&keys).await?;
        match &organisation {
            Some(info) => index.add_organisation(&org, info.clone()),
            None => organisation = index.organisation(&org).cloned(),
        }
        let second = reconcile::second_keys(part, &index, policy);
        if !second.names.is_empty() || !second.stems.is_empty() {
            index.absorb(directory.index_for(&second).await?);
        }
        tally.add(part, &index, policy);
        rows.extend(reconcile::reconcile_part(
            part,
            &index,
            policy,
            &mut allocated,
        ));
    }
    let refused = tally.verdict().map(|swapped| {
        let message = swapped.row_message(&policy.channel);
        for row in rows.iter_mut().filter(|r| r.action != Action::Rejected) {
            row.action = Action::Rejected;
            row.message.clone_from(&message);
        }
        swapped.refusal(&policy.channel)
    });
    let plan = Plan {
        run: run.to_owned(),
        organisation: policy.organisation.clone(),
        rows,
    };
    Ok(Planned {
        plan,
        accounts: organisation.map_or(0, |o| o.accounts),
        refused,
    })
}

/// Finishes every run a stopped process left behind, for organisations whose lock is free.
pub async fn resume_unfinished<D: Directory>(
    ctx: &Context<'_, D>,
    minter: &mut dyn Minter,
    now: DateTime<Utc>,
) -> Result<Vec<String>, ApplyError> {
    let mut done = Vec::new();
    for run in ctx.state.unfinished().await? {
        let Some(_lock) = ctx.state.try_lock(&run.organisation)? else {
            continue;
        };
        // Another process may have finished it between the listing and the lock.
        if ctx.state.run(&run.id).await?.status == RunStatus::Applying {
            apply::resume(ctx, &run.id, minter, now).await?;
            tracing::info!(run = %run.id, organisation = %run.organisation, "resumed an interrupted run");
            done.push(run.id);
        }
    }
    Ok(done)
}

/// As [`resume_unfinished`], for one organisation whose lock the caller holds.
async fn resume_locked<D: Directory>(
    ctx: &Context<'_, D>,
    organisation: &str,
    minter: &mut dyn Minter,
    now: DateTime<Utc>,
) -> Result<Vec<String>, ApplyError> {
    let mut done = Vec::new();
    for run in ctx.state.unfinished().await? {
        if run.organisation == organisation {
            apply::resume(ctx, &run.id, minter, now).await?;
            done.push(run.id);
        }
    }
    Ok(done)
}

/// Applies a held run as it was planned (field changes are compare-and-set, so a field
/// changed since the plan fails rather than being overwritten). The run keeps the
/// provenance it was held with; `approver`, when known, is recorded as who approved it.
pub async fn approve<D: Directory>(
    ctx: &Context<'_, D>,
    run: &str,
    approver: Option<&str>,
    minter: &mut dyn Minter,
    now: DateTime<Utc>,
) -> Result<(Plan, Applied), ApplyError> {
    let plan = ctx.state.held_plan(run).await?;
    let _lock = ctx.state.lock(plan.organisation.as_str())?;
    resume_locked(ctx, plan.organisation.as_str(), minter, now).await?;
    let plan = ctx.state.held_plan(run).await?;
    let info = ctx.state.run(run).await?;
    if let Some(approver) = approver {
        ctx.state.approved_by(run, approver).await?;
    }
    let applied =
        apply::apply_plan(ctx, &plan, "apply", info.provenance.as_ref(), minter, now).await?;
    Ok((plan, applied))
}

/// Drops a held run.
pub async fn reject(
    state: &crate::store::StateDb,
    run: &str,
    now: DateTime<Utc>,
) -> Result<(), StateError> {
    let info = state.run(run).await?;
    if info.status != RunStatus::Held {
        return Err(StateError::WrongStatus {
            run: run.to_owned(),
            status: info.status.as_str(),
            needed: "only a held run can be rejected",
        });
    }
    state.set_status(run, RunStatus::Rejected, now).await
}

/// What a revert did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reverted {
    /// The revert's own run (itself journalled, so it can be reverted too).
    pub plan: Plan,
    pub applied: Applied,
    /// Fields left as they are, with the reason.
    pub refused: Vec<String>,
    /// Accounts the run created: (ID, address), for a portal administrator to review.
    pub created: Vec<(String, Option<String>)>,
}

/// What reverting a run would restore, and what it would leave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevertRows {
    /// One row per line and account: the fields to restore (before and after swapped).
    pub rows: Vec<PlannedRow>,
    /// Fields left as they are because a later run changed them, with the reason.
    pub refused: Vec<String>,
}

/// What reverting `run` would do now, without doing it (the console's preview; [`revert`]
/// does the same, under the organisation's lock).
pub async fn revert_preview(
    state: &crate::store::StateDb,
    run: &str,
) -> Result<(RevertRows, Vec<(String, Option<String>)>), StateError> {
    let info = state.run(run).await?;
    if info.status != RunStatus::Applied {
        return Err(StateError::WrongStatus {
            run: run.to_owned(),
            status: info.status.as_str(),
            needed: "only an applied run can be reverted",
        });
    }
    Ok((
        revert_rows(state, &info).await?,
        state.created_by(run).await?,
    ))
}

async fn revert_rows(
    state: &crate::store::StateDb,
    info: &crate::store::RunInfo,
) -> Result<RevertRows, StateError> {
    let mut refused = Vec::new();
    let mut by_account: BTreeMap<(u64, String), Vec<Change>> = BTreeMap::new();
    for done in state.done_changes(&info.id).await? {
        if let Some(later) = state
            .later_change(info, done.account.as_str(), done.change.field)
            .await?
        {
            refused.push(format!(
                "line {}: {} of account ID {} was changed again by run {later}: left as it is",
                done.line, done.change.field, done.account
            ));
            continue;
        }
        by_account
            .entry((done.line, done.account.to_string()))
            .or_default()
            .push(Change {
                field: done.change.field,
                before: done.change.after,
                after: done.change.before,
            });
    }
    let rows = by_account
        .into_iter()
        .map(|((line, id), changes)| PlannedRow {
            line,
            message: format!(
                "ID {id}: restored {}",
                changes
                    .iter()
                    .map(|c| c.field.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            action: Action::Update {
                id: PortalId::new_unchecked(id),
                changes,
                renamed: false,
            },
        })
        .collect();
    Ok(RevertRows { rows, refused })
}

/// Restores every field a run changed, except where a later run changed it since. The
/// revert's changes have the provenance "revert of `run`", by `operator` when known.
pub async fn revert<D: Directory>(
    ctx: &Context<'_, D>,
    run: &str,
    revert_run: &str,
    operator: Option<&str>,
    minter: &mut dyn Minter,
    now: DateTime<Utc>,
) -> Result<Reverted, ApplyError> {
    let info = ctx.state.run(run).await?;
    if info.status != RunStatus::Applied {
        return Err(StateError::WrongStatus {
            run: run.to_owned(),
            status: info.status.as_str(),
            needed: "only an applied run can be reverted",
        }
        .into());
    }
    let _lock = ctx.state.lock(&info.organisation)?;
    resume_locked(ctx, &info.organisation, minter, now).await?;
    let RevertRows { rows, mut refused } = revert_rows(ctx.state, &info).await?;
    let plan = Plan {
        run: revert_run.to_owned(),
        organisation: OdsCode::new_unchecked(info.organisation.clone()),
        rows,
    };
    let source = Provenance::revert(run, operator.map(str::to_owned));
    let applied = apply::apply_plan(ctx, &plan, "revert", Some(&source), minter, now).await?;
    for r in applied
        .reports
        .iter()
        .filter(|r| r.result == crate::report::RowResultKind::Failed)
    {
        refused.push(format!("line {}: {}", r.line, r.message));
    }
    ctx.state.set_status(run, RunStatus::Reverted, now).await?;
    if !refused.is_empty() {
        ctx.state
            .note(
                run,
                &format!("reverted by {revert_run} except: {}", refused.join("; ")),
            )
            .await?;
    }
    let created = ctx.state.created_by(run).await?;
    Ok(Reverted {
        plan,
        applied,
        refused,
        created,
    })
}

/// Counts for the log line and summaries: the plan's, with the run's failures.
pub fn counts(plan: &Plan, applied: Option<&Applied>) -> Counts {
    match applied {
        Some(a) => a.counts,
        None => plan.counts(),
    }
}

/// The one log line of a run: organisation and counts, no personal data.
pub fn log_run(run: &str, organisation: &str, status: &str, c: &Counts) {
    tracing::info!(
        run,
        organisation,
        status,
        created = c.created,
        updated = c.updated,
        unchanged = c.unchanged,
        rejected = c.rejected,
        failed = c.failed,
        "run"
    );
}
