//! SCIM writes through the rules a file row goes through: each User is validated as a
//! one-row submission in the new format with the deployment's [`Rules`], and the rows of
//! writes carried out together (a Bulk request, single writes sharing a commit) go through
//! the driver every channel uses ([`pipeline::submit`]) as one submission: reconciled and
//! planned with the organisation's [`Policy`](crate::reconcile::Policy) and applied through
//! the journal under the organisation's lock, after finishing any run a stopped process left
//! behind. The directory so holds only what the rules allow, whichever door the data came in
//! by, and every write is in a run that `runs` lists and `revert RUN` undoes.
//!
//! In: the account a User describes (with its portal ID when it exists), the organisation,
//! and the provenance the run records (the request and the client). Out: the validated row, or
//! 400 `invalidValue` whose detail names the SCIM attribute, then the reason a file row gets;
//! then what the run did with each row, or 400 `invalidValue` with the plan's reason (a
//! create the policy does not allow, an organisation-unit move…). Not held by the size
//! guard: a SCIM client waits for its answer.

use std::collections::HashMap;

use chrono::Utc;
use csv::StringRecord;

use super::{ScimError, Shared};
use crate::apply::{Applied, Context, RandomMinter};
use crate::config::Config;
use crate::directory::Account;
use crate::directory::local::LocalDirectory;
use crate::formats::{Column, Submission};
use crate::model::{Field, OdsCode, Person, PortalId, Provenance};
use crate::pipeline;
use crate::plan::{Action, Plan, PlannedRow};
use crate::report::{RowResultKind, describe_issues};
use crate::scim::NHS_USER;
use crate::store::StateDb;
use crate::validate::{self, RowOutcome, RowResult, Rules};
use axum::http::StatusCode;

/// What a write is checked and journalled with: the deployment's rules and configuration
/// (for each organisation's policy and the initial-password file) and the state database.
pub struct Pipeline {
    pub rules: Rules,
    pub config: Config,
    pub state: StateDb,
}

/// The line a SCIM write's row has, as the first data row of a file (the header is line 1).
pub(super) const LINE: u64 = 2;

/// The SCIM attribute that carries a field.
fn attribute(field: Field) -> String {
    let nhs = |name: &str| format!("{NHS_USER}:{name}");
    match field {
        Field::Id => "id".to_owned(),
        Field::ExternalSyncId => "externalId".to_owned(),
        Field::Title => "name.honorificPrefix".to_owned(),
        Field::FirstName => "name.givenName".to_owned(),
        Field::LastName => "name.familyName".to_owned(),
        Field::DisplayName => "displayName".to_owned(),
        Field::Email => "userName".to_owned(),
        Field::JobTitle => "title".to_owned(),
        Field::Organisation => nhs("organisation"),
        Field::OrganisationUnit => nhs("organisationUnit"),
        Field::OfficePhone => "phoneNumbers[type eq \"work\"]".to_owned(),
        Field::MobilePhone => "phoneNumbers[type eq \"mobile\"]".to_owned(),
        Field::Fax => "phoneNumbers[type eq \"fax\"]".to_owned(),
        Field::Pager => "phoneNumbers[type eq \"pager\"]".to_owned(),
        Field::Notes => nhs("notes"),
        Field::ClinicalRole => nhs("clinicalRoles"),
        Field::ClinicalSpeciality => nhs("clinicalSpecialities"),
        Field::WorkArea => nhs("workAreas"),
    }
}

/// The one-row submission of an account, in the new format (column names as
/// [`Field::name`], multi-valued cells joined with `;`); the ID cell holds `id`, or is
/// blank for a new account.
pub fn submission(account: &Account, id: Option<&PortalId>) -> Submission {
    let headers: StringRecord = Field::ALL.iter().map(|f| f.name()).collect();
    let cells: crate::formats::Cells = Field::ALL
        .iter()
        .map(|&f| match f {
            Field::Id => id.map_or("", PortalId::as_str),
            _ => account.get(f).unwrap_or_default(),
        })
        .collect();
    Submission::made(
        headers,
        Field::ALL.iter().map(|&f| Column::Field(f)).collect(),
        vec![crate::formats::RawRow {
            line: LINE,
            cells,
            issues: Vec::new(),
        }],
    )
}

/// The message of a refused row: each problem as `attribute: ` and what a file row with the
/// same value is told (`Email "x@gmail.com" is …`), joined with `; `.
pub fn refusal(result: &RowResult) -> String {
    result
        .issues()
        .iter()
        .map(|i| {
            let field = Field::ALL.into_iter().find(|f| f.name() == i.column);
            let said = describe_issues(std::slice::from_ref(i));
            match field {
                Some(f) => format!("{}: {said}", attribute(f)),
                None => said,
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Validates the account as a file row: the clean row, or 400 `invalidValue` with the
/// validator's reasons.
pub(super) fn validated(
    rules: &Rules,
    account: &Account,
    id: Option<&PortalId>,
) -> Result<(RowResult, Person), ScimError> {
    let results = validate::validate(&submission(account, id), rules);
    let Some(result) = results.into_iter().next() else {
        return Err(ScimError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            "validation gave no verdict",
        ));
    };
    match &result.outcome {
        RowOutcome::Valid(p) => {
            let person = p.person();
            Ok((result, person))
        }
        RowOutcome::Refused(_) => Err(ScimError::new(
            StatusCode::BAD_REQUEST,
            Some("invalidValue"),
            refusal(&result),
        )),
    }
}

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Written {
    Created(PortalId),
    Updated,
    Unchanged,
}

/// Plans and applies validated rows of `organisation` as one run whose source is `source`,
/// under the organisation's lock (the caller holds the service's write lock): one plan, one
/// journal, one batch of directory writes, so one commit for all of them. Each row's line
/// must be its own. Out: one answer per row, in order. A row the plan refuses is 400
/// `invalidValue` with the plan's reason; a run whose rows all change nothing (or are
/// refused) records none. A row the directory refuses (a userName taken since the checks)
/// is 409 `uniqueness`, as before; the other rows of the run are applied all the same.
pub(super) async fn write(
    s: &Shared,
    organisation: &str,
    rows: Vec<RowResult>,
    source: &Provenance,
) -> Result<Vec<Result<Written, ScimError>>, ScimError> {
    // The stages borrow what is not `Send` (the progress callback, the minter) across their
    // awaits, and the lock waits for another process's run of the organisation (an
    // `apply`): so they run on a blocking thread of their own, not on a request thread.
    let (s, organisation, source) = (s.clone(), organisation.to_owned(), source.clone());
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        handle.block_on(write_here(
            &s.directory,
            &s.pipeline,
            &organisation,
            &rows,
            &source,
        ))
    })
    .await
    .map_err(|e| internal(&e))?
}

/// 500, logged.
fn internal(e: &dyn std::fmt::Display) -> ScimError {
    tracing::error!(error = %e, "SCIM write");
    ScimError::new(StatusCode::INTERNAL_SERVER_ERROR, None, e.to_string())
}

/// [`write`], on the thread that runs it: one submission through [`pipeline::submit`], as
/// every channel's, unguarded and recording no run when nothing changes.
async fn write_here(
    directory: &LocalDirectory,
    pipeline: &Pipeline,
    organisation: &str,
    rows: &[RowResult],
    source: &Provenance,
) -> Result<Vec<Result<Written, ScimError>>, ScimError> {
    let code = OdsCode::new_unchecked(organisation);
    let mut policy = crate::deployment::policy(&pipeline.config, &code);
    // A User is the whole record (a PUT replaces it, a PATCH is applied to it first): an
    // attribute it lacks was removed, not left out as a blank cell is.
    policy.blank_means_keep = false;
    // A client that creates a User asks for a new account: a namesake is not a duplicate.
    policy.channel = crate::reconcile::Channel::Scim;
    let now = Utc::now();
    let request = pipeline::Request {
        results: rows,
        policy,
        limits: crate::deployment::guard_limits(&pipeline.config, &code),
        run: crate::deployment::run_id(now),
        source: source.clone(),
        dry_run: false,
        guarded: false,
        supersede: None,
        record_idle: false,
    };
    let progress = |_: u64, _: u64| {};
    let ctx = Context {
        directory,
        state: &pipeline.state,
        passwords: crate::deployment::password_file(&pipeline.config),
        progress: &progress,
    };
    let submitted = pipeline::submit(&ctx, &request, &mut RandomMinter, now)
        .await
        .map_err(|e| internal(&e))?;
    if submitted.applied.is_some() {
        tracing::info!(run = %request.run, organisation, rows = rows.len(), source = %source.describe(), "SCIM writes journalled");
    }
    let done = Done::of(&submitted.plan, submitted.applied.as_ref());
    Ok(rows.iter().map(|row| done.outcome(row.line)).collect())
}

/// A run's rows by line: what was planned, which failed in the directory (and why), and the
/// ID minted for each create (not one a resumed run minted).
struct Done<'p> {
    planned: HashMap<u64, &'p PlannedRow>,
    failed: HashMap<u64, &'p str>,
    created: HashMap<u64, &'p PortalId>,
    applied: bool,
}

impl<'p> Done<'p> {
    fn of(plan: &'p Plan, applied: Option<&'p Applied>) -> Done<'p> {
        let planned = plan.rows.iter().map(|r| (r.line, r)).collect();
        let (failed, created) = match applied {
            Some(a) => (
                a.reports
                    .iter()
                    .filter(|r| r.result == RowResultKind::Failed)
                    .map(|r| (r.line, r.message.as_str()))
                    .collect(),
                a.created.iter().map(|(l, id)| (*l, id)).collect(),
            ),
            None => Default::default(),
        };
        Done {
            planned,
            failed,
            created,
            applied: applied.is_some(),
        }
    }

    /// What the run did with the row of `line`.
    fn outcome(&self, line: u64) -> Result<Written, ScimError> {
        let Some(planned) = self.planned.get(&line) else {
            return Err(internal(&format!("the plan has no row for line {line}")));
        };
        let created = match &planned.action {
            Action::Rejected => {
                return Err(ScimError::new(
                    StatusCode::BAD_REQUEST,
                    Some("invalidValue"),
                    planned.message.clone(),
                ));
            }
            Action::Unchanged { .. } => return Ok(Written::Unchanged),
            Action::Create { .. } => true,
            Action::Update { .. } => false,
        };
        if !self.applied {
            return Err(internal(&"a change was planned but not applied"));
        }
        if let Some(message) = self.failed.get(&line) {
            return Err(ScimError::new(
                StatusCode::CONFLICT,
                Some("uniqueness"),
                (*message).to_owned(),
            ));
        }
        if !created {
            return Ok(Written::Updated);
        }
        self.created
            .get(&line)
            .map(|id| Written::Created((*id).clone()))
            .ok_or_else(|| internal(&"no portal ID was minted"))
    }
}
