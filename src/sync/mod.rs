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
//! until they change; entries without an anchor become refused rows after the others) →
//! drop entries whose fingerprint is unchanged since they were last applied → map →
//! validate → per organisation: plan, guard, apply → write back what differs → store
//! fingerprints and the cursor, last. A dry run guards its plan as the real run would
//! (`held` says why it would be held) and lists every value the real run would write back,
//! against the accounts as the plan leaves them (a new account's ID as
//! [`WriteBackRow::new_id`]). A run that stops at any point reads the same changes again
//! next time (the journal has already finished its directory writes, so nothing is applied
//! twice), and our own write-back never comes back as a change: the entry's fingerprint
//! includes it.

pub mod mapping;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::apply::{ApplyError, Context, Minter};
use crate::config::Config;
use crate::directory::Account;
use crate::directory::{Directory, DirectoryError};
use crate::formats::Submission;
use crate::model::{Field, Keys, OdsCode, PortalId, Provenance};
use crate::pipeline::{self, Submitted};
use crate::plan::Action;

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
    /// Anchors asked for (`--only`) that cannot be anchors of the source: nothing is read.
    #[error("not read: {}", .0.join("; "))]
    BadAnchors(Vec<String>),
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
        self.submitted.counts()
    }

    pub fn status(&self) -> &'static str {
        self.submitted.status()
    }
}

/// A write-back, planned or done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteBackRow {
    pub line: u64,
    pub write: WriteBack,
    /// The row creates an account (planned, not yet applied): the ID it is given is
    /// written back, and `write` holds an empty value for it until then.
    pub new_id: bool,
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
    /// Entries read without their anchor: not planned (they cannot be joined to an
    /// account), but given as refused rows after the others, so reports show them.
    pub without_anchor: usize,
    /// For an `only` read: the anchors asked for that no entry in scope has.
    pub not_found: Vec<String>,
    /// How long each phase took.
    pub took: Phases,
}

/// The wall time of each phase of a sync.
#[derive(Debug, Clone, Copy, Default)]
pub struct Phases {
    /// Reading the source (and the entries read again to retry).
    pub read: Duration,
    /// Mapping the entries to rows and validating them.
    pub validate: Duration,
    /// Planning, guarding and applying each organisation's rows.
    pub apply: Duration,
    /// Finding what to write back, and writing it to the source.
    pub write_back: Duration,
    /// Storing the cursor and the entries' fingerprints.
    pub remember: Duration,
}

impl Phases {
    pub fn total(&self) -> Duration {
        self.read + self.validate + self.apply + self.write_back + self.remember
    }
}

impl Synced {
    pub fn held(&self) -> bool {
        self.organisations
            .iter()
            .any(|o| !o.submitted.held.is_empty())
    }
}

/// Each row's source entry, for the run's provenance: the entry's DN, or the SQL row's key.
fn entries_of(rows: &[RowResult], entry_of: &HashMap<u64, &SourceEntry>) -> BTreeMap<u64, String> {
    rows.iter()
        .filter_map(|r| Some((r.line, entry_of.get(&r.line)?.locator.clone())))
        .collect()
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

    let mut took = Phases::default();
    let mut clock = Instant::now();
    let mut lap = |phase: &mut Duration| {
        *phase = clock.elapsed();
        clock = Instant::now();
    };

    // Phase 1: read.
    let mut not_found = Vec::new();
    let (mut entries, cursor, full, without_anchor) = if options.only.is_empty() {
        let since = if options.full {
            None
        } else {
            store.cursor(name).await?
        };
        let batch = source.read(attributes, since.as_ref()).await?;
        (
            batch.entries,
            batch.cursor,
            batch.full,
            batch.without_anchor,
        )
    } else {
        let bad: Vec<String> = options
            .only
            .iter()
            .filter_map(|a| source.anchor_problem(a))
            .collect();
        if !bad.is_empty() {
            return Err(SyncError::BadAnchors(bad));
        }
        let entries = source.read_anchors(attributes, &options.only).await?;
        let found: HashSet<String> = entries.iter().map(|e| anchor_key(&e.anchor)).collect();
        not_found = options
            .only
            .iter()
            .filter(|a| !found.contains(&anchor_key(a)))
            .cloned()
            .collect();
        (entries, None, false, Vec::new())
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
    lap(&mut took.read);

    // Phase 2: map and validate.
    let mut submission = mapping.submission(&entries);
    let results = validate::validate(&submission, rules);
    // Each row's entry, by the row's line: the rows are the entries in order.
    let entry_of: HashMap<u64, &SourceEntry> = submission
        .rows
        .iter()
        .zip(&entries)
        .map(|(row, entry)| (row.line, entry))
        .collect();

    lap(&mut took.validate);

    // Phase 3: plan, guard and apply, one organisation at a time.
    let (groups, mut reports) = by_organisation(&results, source_config);
    // Entries without an anchor: refused rows after the others (no entry index points at
    // them, so they are neither written back nor remembered).
    if !without_anchor.is_empty() {
        let anchor = source_config
            .ldap
            .as_ref()
            .map(|l| l.anchor.as_str())
            .or(source_config.sql.as_ref().map(|s| s.anchor.as_str()))
            .map_or_else(
                || "the source's anchor".to_owned(),
                |a| format!("{a} (the source's anchor)"),
            );
        let first = submission.rows.len() as u64 + 2;
        let extra = mapping.submission(&without_anchor);
        for (i, mut row) in extra.rows.into_iter().enumerate() {
            row.line = first + i as u64;
            reports.push(RowReport {
                line: row.line,
                result: RowResultKind::Rejected,
                message: format!(
                    "the entry has no value for {anchor}: it cannot be joined to an account, so it \
                     was left out"
                ),
            });
            submission.rows.push(row);
        }
    }
    let mut organisations = Vec::new();
    for (org, group) in groups {
        let mut policy = crate::deployment::policy(config, &org);
        policy.create_accounts = source_config.create_accounts;
        policy.channel = mapping.channel();
        let run_id = if source_config.organisations.len() > 1 {
            format!("{run}-{org}")
        } else {
            run.to_owned()
        };
        let request = pipeline::Request {
            results: &group,
            limits: crate::deployment::guard_limits(config, &org),
            policy,
            run: run_id,
            source: Provenance::sync(name, entries_of(&group, &entry_of)),
            dry_run: options.dry_run,
            guarded: true,
            supersede: Some("which read the source again"),
            record_idle: true,
        };
        let submitted = pipeline::submit(ctx, &request, minter, now).await?;
        reports.extend(submitted.reports());
        organisations.push(OrganisationRun {
            organisation: org,
            submitted,
        });
    }
    reports.sort_by_key(|r| r.line);
    lap(&mut took.apply);

    // Phase 4: write back, for the organisations applied. A dry run lists what the real
    // run would write back, held or not (a held run writes back once approved).
    let write_orgs: Vec<&OrganisationRun> = organisations
        .iter()
        .filter(|o| options.dry_run || o.submitted.held.is_empty())
        .collect();
    let mut write_back = plan_write_back(
        &mapping,
        ctx.directory,
        &entry_of,
        &write_orgs,
        options.dry_run,
    )
    .await?;
    if !options.dry_run && !write_back.is_empty() {
        let writes: Vec<WriteBack> = write_back.iter().map(|w| w.write.clone()).collect();
        let outcomes = source.write_back(&writes).await?;
        for (row, outcome) in write_back.iter_mut().zip(outcomes) {
            row.outcome = Some(outcome);
        }
    }
    lap(&mut took.write_back);
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
            without_anchor: without_anchor.len(),
            not_found,
            took,
        });
    }

    // Phase 5: remember, last.
    let fingerprints = fingerprints(&mapping, &entry_of, &reports, &write_back);
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
    lap(&mut took.remember);
    Ok(Synced {
        full,
        read,
        unchanged_in_source,
        submission,
        organisations,
        reports,
        write_back,
        cursor_advanced: advance && cursor.is_some(),
        without_anchor: without_anchor.len(),
        not_found,
        took,
    })
}

/// An anchor as `--only` anchors and read ones are compared: a GUID in any of its
/// spellings (braces, upper case, no hyphens) as one, other text trimmed, in lower case.
fn anchor_key(anchor: &str) -> String {
    match uuid::Uuid::parse_str(anchor.trim()) {
        Ok(guid) => guid.hyphenated().to_string(),
        Err(_) => anchor.trim().to_lowercase(),
    }
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
            RowOutcome::Valid(p) if !allowed.iter().any(|a| a == p.organisation()) => {
                reports.push(RowReport {
                    line: r.line,
                    result: RowResultKind::Rejected,
                    message: crate::reconcile::outside_scope(
                        &OdsCode::new_unchecked(p.organisation()),
                        &format!(
                            "source \"{}\" may only speak for {}",
                            source.name,
                            allowed.join(", ")
                        ),
                    ),
                });
            }
            RowOutcome::Valid(p) => groups
                .entry(OdsCode::new_unchecked(p.organisation()))
                .or_default()
                .push(r.clone()),
        }
    }
    (groups, reports)
}

/// The write-back each row of the given organisations needs, against the account its row
/// joined. After an apply the accounts are looked up again, so new accounts have their IDs.
/// For a preview (`preview`: a dry run, applied or held alike) each account is taken as the
/// plan leaves it: the joined account with the planned changes made, or the account a
/// create would make, whose ID the run has yet to mint ([`WriteBackRow::new_id`]); so the
/// preview lists every value the real run would write back.
async fn plan_write_back<D: Directory>(
    mapping: &Mapping,
    directory: &D,
    entries: &HashMap<u64, &SourceEntry>,
    organisations: &[&OrganisationRun],
    preview: bool,
) -> Result<Vec<WriteBackRow>, DirectoryError> {
    if !mapping.writes_back() {
        return Ok(Vec::new());
    }
    let mut rows = Vec::new();
    for org in organisations {
        let planned: HashMap<u64, &Action> = org
            .submitted
            .plan
            .rows
            .iter()
            .filter(|r| r.result().is_done())
            .map(|r| (r.line, &r.action))
            .collect();
        let failed: HashSet<u64> = org
            .submitted
            .applied
            .iter()
            .flat_map(|a| &a.reports)
            .filter(|r| r.result == RowResultKind::Failed)
            .map(|r| r.line)
            .collect();
        // The account each row joined is the plan's (an update's or unchanged row's ID, a
        // create's minted ID): looked up by that ID, never joined again.
        let created: HashMap<u64, &PortalId> = org
            .submitted
            .applied
            .iter()
            .flat_map(|a| &a.created)
            .map(|(line, id)| (*line, id))
            .collect();
        let lines: Vec<u64> = planned
            .keys()
            .copied()
            .filter(|line| !failed.contains(line))
            .collect();
        let id_of = |line: u64| -> Option<&PortalId> {
            match planned.get(&line)? {
                Action::Update { id, .. } | Action::Unchanged { id } => Some(id),
                Action::Create { .. } => created.get(&line).copied(),
                Action::Rejected => None,
            }
        };
        let keys = Keys {
            ids: lines
                .iter()
                .filter_map(|l| id_of(*l))
                .map(|id| id.to_string())
                .collect(),
            ..Keys::default()
        };
        let index = directory.index_for(&keys).await?;
        for line in lines {
            let account: Option<Account> = if preview {
                match planned.get(&line) {
                    Some(Action::Create { account }) => Some((**account).clone()),
                    Some(Action::Update { id, changes, .. }) => {
                        index.by_id(id.as_str()).cloned().map(|mut a| {
                            for c in changes {
                                a.set(c.field, c.after.as_deref());
                            }
                            a
                        })
                    }
                    Some(Action::Unchanged { id }) => index.by_id(id.as_str()).cloned(),
                    Some(Action::Rejected) | None => None,
                }
            } else {
                id_of(line).and_then(|id| index.by_id(id.as_str())).cloned()
            };
            if let (Some(account), Some(entry)) = (account, entries.get(&line))
                && let Some(write) = mapping.write_back(entry, &account)
            {
                rows.push(WriteBackRow {
                    line,
                    new_id: account.id.as_str().is_empty() && mapping.writes_back_field(Field::Id),
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
    entries: &HashMap<u64, &SourceEntry>,
    reports: &[RowReport],
    write_back: &[WriteBackRow],
) -> Vec<(String, String)> {
    let writes: HashMap<u64, &WriteBackRow> = write_back.iter().map(|w| (w.line, w)).collect();
    reports
        .iter()
        .filter_map(|r| {
            let entry = *entries.get(&r.line)?;
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

/// One sync of a configured source with the deployment's backends: what the `sync` verb and
/// the service's schedule share. Each organisation's run is logged in one line.
pub async fn sync_configured(
    deployment: &crate::deployment::Deployment<'_>,
    source: &SourceConfig,
    options: &SyncOptions,
    run: &str,
    progress: &dyn Fn(u64, u64),
    now: DateTime<Utc>,
) -> Result<Synced, SyncError> {
    let mut reader = crate::sources::AnySource::open(source).await?;
    let ctx = deployment.context(progress);
    let mut minter = crate::apply::RandomMinter;
    let synced = sync(
        deployment.config,
        source,
        &mut reader,
        &deployment.rules,
        &ctx,
        &deployment.sync,
        options,
        run,
        &mut minter,
        now,
    )
    .await?;
    for o in &synced.organisations {
        pipeline::log_run(
            &o.submitted.plan.run,
            o.organisation.as_str(),
            o.status(),
            &o.counts(),
        );
    }
    Ok(synced)
}
