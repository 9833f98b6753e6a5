//! Directory sync: a source's people through the same pipeline as a file (validate →
//! reconcile → plan → guard → apply), then the portal's values written back to the source.
//!
//! In: a `[[source]]` configuration, an open [`Source`], the directory and state, the run's
//! ID and time (passed in). Out: a [`Synced`]: the rows as mapped (a submission, so reports
//! look like a file's), each organisation's outcome, the row results, and the write-back
//! done or pending.
//!
//! Phases: read (delta from the stored cursor unless `full`, plus the entries a past run
//! refused, failed or could not write back to, by anchor: a delta would not see them again
//! until they change) → drop entries whose fingerprint is unchanged since they were last
//! applied → map → validate → per organisation: plan, guard, apply → write back what
//! differs → store fingerprints and the cursor, last. A run that stops at any point reads the same changes again next time (the
//! journal has already finished its directory writes, so nothing is applied twice), and our
//! own write-back never comes back as a change: the entry's fingerprint includes it.

pub mod mapping;
pub mod schedule;

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};

use crate::apply::{ApplyError, Context, Minter};
use crate::config::Config;
use crate::directory::{Directory, DirectoryError};
use crate::formats::Submission;
use crate::model::OdsCode;
use crate::pipeline::{self, Submitted};
use crate::reconcile::{self, Policy};
use crate::report::{RowReport, RowResultKind, describe_issues};
use crate::sources::config::SourceConfig;
use crate::sources::{Source, SourceEntry, SourceError, WriteBack};
use crate::store::StateError;
use crate::validate::{self, RowOutcome, RowResult, Rules};

use self::mapping::Mapping;
use crate::store::SyncStore;

/// How one sync runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncOptions {
    /// Read every entry, whatever the cursor says.
    pub full: bool,
    /// Plan only: nothing is applied or written back, nothing remembered.
    pub dry_run: bool,
    /// Only the entries with these anchors (the cursor is left as it is).
    pub only: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Directory(#[from] DirectoryError),
}

/// One organisation's part of a sync.
#[derive(Debug, Clone)]
pub struct OrganisationRun {
    pub organisation: OdsCode,
    pub submitted: Submitted,
}

impl OrganisationRun {
    /// The run's counts: the plan's, with the failures of what was applied.
    pub fn counts(&self) -> crate::plan::Counts {
        pipeline::counts(&self.submitted.plan, self.submitted.applied.as_ref())
    }

    pub fn status(&self) -> &'static str {
        if !self.submitted.held.is_empty() {
            "held"
        } else if self.submitted.applied.is_some() {
            "applied"
        } else {
            "planned"
        }
    }
}

/// A write-back, planned or done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteBackRow {
    pub line: u64,
    pub write: WriteBack,
    /// `None` while planned (dry run), `Some(Ok)` when written, `Some(Err(why))` when the
    /// source refused it.
    pub outcome: Option<Result<(), String>>,
}

/// What a sync did.
#[derive(Debug, Clone)]
pub struct Synced {
    /// Whether every entry in scope was read.
    pub full: bool,
    /// Entries read from the source.
    pub read: usize,
    /// Entries read but left out: nothing the sync reads changed since they were applied.
    pub unchanged_in_source: usize,
    /// The entries planned, as rows (a `Source` column, then the mapped fields).
    pub submission: Submission,
    pub organisations: Vec<OrganisationRun>,
    /// One per row, in row order.
    pub reports: Vec<RowReport>,
    pub write_back: Vec<WriteBackRow>,
    /// Whether the cursor moved on (false for dry runs, held runs and `only` runs).
    pub cursor_advanced: bool,
}

impl Synced {
    pub fn held(&self) -> bool {
        self.organisations
            .iter()
            .any(|o| !o.submitted.held.is_empty())
    }
}

/// Runs one sync of one source. `run` is the base of the run IDs (one per organisation).
#[allow(clippy::too_many_arguments)]
pub async fn sync<S: Source, D: Directory>(
    config: &Config,
    source_config: &SourceConfig,
    source: &mut S,
    rules: &Rules,
    ctx: &Context<'_, D>,
    store: &SyncStore,
    options: &SyncOptions,
    run: &str,
    minter: &mut dyn Minter,
    now: DateTime<Utc>,
) -> Result<Synced, SyncError> {
    let name = source_config.name.as_str();
    // One sync of a source at a time: cursor and fingerprints move in one order.
    let _lock = if options.dry_run {
        None
    } else {
        store.started(name, now).await?;
        Some(ctx.state.lock(&format!("source-{name}"))?)
    };
    let mapping = Mapping::from_config(source_config);
    let attributes = mapping.attributes();

    // Phase 1: read.
    let (mut entries, cursor, full) = if options.only.is_empty() {
        let since = if options.full {
            None
        } else {
            store.cursor(name).await?
        };
        let batch = source.read(attributes, since.as_ref()).await?;
        (batch.entries, batch.cursor, batch.full)
    } else {
        let entries = source.read_anchors(attributes, &options.only).await?;
        (entries, None, false)
    };
    let seen = store.fingerprints(name).await?;
    if !full && options.only.is_empty() {
        // A delta reads what changed; entries left to retry (refused, failed, or not
        // written back) are read again by anchor, whether or not they changed.
        let have: HashSet<String> = entries.iter().map(|e| e.anchor.clone()).collect();
        let retry: Vec<String> = seen
            .iter()
            .filter(|(anchor, fp)| fp.as_str() == RETRY && !have.contains(*anchor))
            .map(|(anchor, _)| anchor.clone())
            .collect();
        if !retry.is_empty() {
            entries.extend(source.read_anchors(attributes, &retry).await?);
        }
    }
    entries.sort_by_cached_key(|e| (e.locator.to_lowercase(), e.anchor.clone()));
    let read = entries.len();
    if !full && !options.full {
        entries.retain(|e| seen.get(&e.anchor) != Some(&mapping.fingerprint(e)));
    }
    let unchanged_in_source = read - entries.len();

    // Phase 2: map and validate.
    let submission = mapping.submission(&entries);
    let results = validate::validate(&submission, rules);

    // Phase 3: plan, guard and apply, one organisation at a time.
    let (groups, mut reports) = by_organisation(&results, source_config);
    let mut organisations = Vec::new();
    for (org, group) in groups {
        let mut policy = Policy::from_config(config, &org);
        policy.create_accounts = source_config.create_accounts;
        let limits = config.guard.with(
            &config
                .organisation(org.as_str())
                .map(|o| o.guard)
                .unwrap_or_default(),
        );
        let run_id = if source_config.organisations.len() > 1 {
            format!("{run}-{org}")
        } else {
            run.to_owned()
        };
        let label = format!("sync {name}");
        if !options.dry_run {
            ctx.state
                .supersede_held(
                    org.as_str(),
                    &run_id,
                    |r| r.source.as_deref() == Some(label.as_str()),
                    "which read the source again",
                    now,
                )
                .await?;
        }
        let submitted = pipeline::submit(
            ctx,
            &group,
            &policy,
            &limits,
            &run_id,
            Some(&label),
            options.dry_run,
            minter,
            now,
        )
        .await?;
        reports.extend(match &submitted.applied {
            Some(a) => a.reports.clone(),
            None => submitted.plan.reports(!submitted.held.is_empty()),
        });
        organisations.push(OrganisationRun {
            organisation: org,
            submitted,
        });
    }
    reports.sort_by_key(|r| r.line);

    // Phase 4: write back, for the organisations applied (planned only, in a dry run).
    let write_orgs: Vec<&OrganisationRun> = organisations
        .iter()
        .filter(|o| o.submitted.held.is_empty())
        .collect();
    let mut write_back = plan_write_back(
        &mapping,
        ctx.directory,
        &entries,
        &results,
        &write_orgs,
        config,
    )
    .await?;
    if !options.dry_run && !write_back.is_empty() {
        let writes: Vec<WriteBack> = write_back.iter().map(|w| w.write.clone()).collect();
        let outcomes = source.write_back(&writes).await?;
        for (row, outcome) in write_back.iter_mut().zip(outcomes) {
            row.outcome = Some(outcome);
        }
    }
    if options.dry_run {
        return Ok(Synced {
            full,
            read,
            unchanged_in_source,
            submission,
            organisations,
            reports,
            write_back,
            cursor_advanced: false,
        });
    }

    // Phase 5: remember, last.
    let fingerprints = fingerprints(&mapping, &entries, &reports, &write_back);
    let advance =
        options.only.is_empty() && organisations.iter().all(|o| o.submitted.held.is_empty());
    store
        .finished(
            name,
            if advance { cursor.as_ref() } else { None },
            &fingerprints,
            now,
        )
        .await?;
    Ok(Synced {
        full,
        read,
        unchanged_in_source,
        submission,
        organisations,
        reports,
        write_back,
        cursor_advanced: advance && cursor.is_some(),
    })
}

/// Valid rows grouped by the organisation they name; reports for the rows refused before
/// planning (invalid, or for an organisation the source may not speak for).
fn by_organisation(
    results: &[RowResult],
    source: &SourceConfig,
) -> (BTreeMap<OdsCode, Vec<RowResult>>, Vec<RowReport>) {
    let allowed: Vec<String> = source
        .organisations
        .iter()
        .map(|o| o.to_ascii_uppercase())
        .collect();
    let mut groups: BTreeMap<OdsCode, Vec<RowResult>> = BTreeMap::new();
    let mut reports = Vec::new();
    for r in results {
        match &r.outcome {
            RowOutcome::Refused(issues) => reports.push(RowReport {
                line: r.line,
                result: RowResultKind::Rejected,
                message: describe_issues(issues),
            }),
            RowOutcome::Valid(p) if !allowed.contains(&p.organisation.to_string()) => {
                reports.push(RowReport {
                    line: r.line,
                    result: RowResultKind::Rejected,
                    message: format!(
                        "Organisation \"{}\": source \"{}\" may only speak for {}",
                        p.organisation,
                        source.name,
                        allowed.join(", ")
                    ),
                });
            }
            RowOutcome::Valid(p) => groups
                .entry(p.organisation.clone())
                .or_default()
                .push(r.clone()),
        }
    }
    (groups, reports)
}

/// The write-back each row of the given organisations needs: the account its row joined
/// (looked up again, so new accounts have their IDs) against the entry's values.
async fn plan_write_back<D: Directory>(
    mapping: &Mapping,
    directory: &D,
    entries: &[SourceEntry],
    results: &[RowResult],
    organisations: &[&OrganisationRun],
    config: &Config,
) -> Result<Vec<WriteBackRow>, DirectoryError> {
    if !mapping.writes_back() {
        return Ok(Vec::new());
    }
    let mut rows = Vec::new();
    for org in organisations {
        let wanted: HashSet<u64> = org
            .submitted
            .plan
            .rows
            .iter()
            .filter(|r| r.result().is_done())
            .map(|r| r.line)
            .collect();
        let failed: HashSet<u64> = org
            .submitted
            .applied
            .iter()
            .flat_map(|a| &a.reports)
            .filter(|r| r.result == RowResultKind::Failed)
            .map(|r| r.line)
            .collect();
        let group: Vec<RowResult> = results
            .iter()
            .filter(|r| wanted.contains(&r.line) && !failed.contains(&r.line))
            .cloned()
            .collect();
        let policy = Policy::from_config(config, &org.organisation);
        let index = directory
            .index_for(&reconcile::keys(&group, &policy))
            .await?;
        for r in &group {
            let RowOutcome::Valid(p) = &r.outcome else {
                continue;
            };
            let account =
                p.id.as_ref()
                    .and_then(|id| index.by_id(id.as_str()))
                    .or_else(|| {
                        index.by_external(org.organisation.as_str(), p.external_sync_id.as_str())
                    })
                    .or_else(|| p.email.as_ref().and_then(|e| index.by_email(e.as_str())));
            let entry = entries.get((r.line - 2) as usize);
            if let (Some(account), Some(entry)) = (account, entry)
                && let Some(write) = mapping.write_back(entry, account)
            {
                rows.push(WriteBackRow {
                    line: r.line,
                    write,
                    outcome: None,
                });
            }
        }
    }
    rows.sort_by_key(|w| w.line);
    Ok(rows)
}

/// The fingerprint kept for an entry to try again: it matches no entry, and a delta reads
/// such entries by anchor.
const RETRY: &str = "";

/// Fingerprints to remember: the entries whose rows were applied (created, updated or
/// unchanged), as they are after a successful write-back. Refused rows, failed rows and
/// failed write-backs are marked [`RETRY`], so they are tried again next run.
fn fingerprints(
    mapping: &Mapping,
    entries: &[SourceEntry],
    reports: &[RowReport],
    write_back: &[WriteBackRow],
) -> Vec<(String, String)> {
    let writes: HashMap<u64, &WriteBackRow> = write_back.iter().map(|w| (w.line, w)).collect();
    reports
        .iter()
        .filter_map(|r| {
            let entry = entries.get(usize::try_from(r.line).ok()?.checked_sub(2)?)?;
            let applied = r.result.is_done();
            let fingerprint = match writes.get(&r.line) {
                _ if !applied => RETRY.to_owned(),
                None => mapping.fingerprint(entry),
                Some(w) if w.outcome == Some(Ok(())) => {
                    mapping.fingerprint(&mapping::written(entry, &w.write))
                }
                Some(_) => RETRY.to_owned(),
            };
            Some((entry.anchor.clone(), fingerprint))
        })
        .collect()
}

#[cfg(test)]
mod tests;
