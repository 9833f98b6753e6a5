//! Finding an account as an operator names it, and an account's history in words: shared by
//! `history` and the console.
//!
//! In: what the operator typed (a portal ID, an e-mail address or an ExternalSyncID) and a
//! deployment. Out: the one account it names, or why not; each journalled change as a
//! phrase (what changed, and where it came from).

use crate::deployment::Deployment;
use crate::directory::{Account, Directory, DirectoryError};
use crate::model::{Channel, Field, PortalId, Provenance};
use crate::report::shown;
use crate::store::{HistoryChange, HistoryEntry, StateError};

/// Why no one account was found.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Ambiguous(String),
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    #[error(transparent)]
    State(#[from] StateError),
}

/// What ACCOUNT matched by.
#[derive(Debug, Clone, Copy)]
pub enum MatchedBy {
    Id,
    Email,
    ExternalSyncId,
}

impl MatchedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchedBy::Id => "ID",
            MatchedBy::Email => "e-mail",
            MatchedBy::ExternalSyncId => "ExternalSyncID",
        }
    }
}

/// The account ACCOUNT names: by portal ID, then e-mail address, then ExternalSyncID.
pub async fn find_account(
    d: &Deployment<'_>,
    key: &str,
    organisation: Option<&str>,
) -> Result<(Account, MatchedBy), LookupError> {
    let key = key.trim();
    if let Some(a) = d.directory.by_id(&PortalId::new_unchecked(key)).await? {
        return Ok((a, MatchedBy::Id));
    }
    if key.contains('@')
        && let Some(a) = d.directory.by_email(key).await?
    {
        return Ok((a, MatchedBy::Email));
    }
    let mut found: Vec<Account> = Vec::new();
    match (organisation, d.directory.local()) {
        (Some(org), _) => {
            found.extend(d.directory.by_external_sync_id(org, key).await?);
        }
        (None, Some(local)) => found = local.by_external_key(key).await?,
        (None, None) => {
            // The SCIM backend is asked organisation by organisation: those configured and
            // those runs were recorded for.
            let mut orgs: Vec<String> = d
                .config
                .organisations
                .iter()
                .map(|o| o.code.clone())
                .collect();
            orgs.extend(d.state.run_organisations().await?);
            orgs.sort();
            orgs.dedup();
            for org in orgs {
                found.extend(d.directory.by_external_sync_id(&org, key).await?);
            }
        }
    }
    found.sort_by(|a, b| (a.organisation(), a.id.as_str()).cmp(&(b.organisation(), b.id.as_str())));
    found.dedup_by(|a, b| a.id == b.id);
    match found.len() {
        0 => Err(LookupError::NotFound(format!(
            "no account has the ID, e-mail address or ExternalSyncID {key:?}{}",
            organisation
                .map(|o| format!(" (ExternalSyncID looked for in {o})"))
                .unwrap_or_default()
        ))),
        1 => Ok((found.remove(0), MatchedBy::ExternalSyncId)),
        _ => Err(LookupError::Ambiguous(format!(
            "ExternalSyncID {key:?} is used in several organisations: {}; name one with \
             --organisation ODS (in the console: the organisation box)",
            found
                .iter()
                .map(|a| format!(
                    "{} has {} (ID {})",
                    a.organisation(),
                    a.email().unwrap_or("-"),
                    a.id
                ))
                .collect::<Vec<_>>()
                .join("; ")
        ))),
    }
}

/// `2026-12-02 03:58:01 UTC`.
pub fn when(at: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(at).map_or_else(
        |_| at.to_owned(),
        |t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string()
        },
    )
}

/// `JobTitle: "Nurse" → "Sister"`, or `created: anne.lee@nhs.net, FirstName "Anne", …`.
pub fn what(change: &HistoryChange) -> String {
    match change {
        HistoryChange::Field {
            field,
            before,
            after,
        } => format!(
            "{field}: {} → {}",
            value(before.as_deref()),
            value(after.as_deref())
        ),
        HistoryChange::Created { address, values } => {
            let mut parts = vec![format!("created: {}", address.as_deref().unwrap_or("-"))];
            parts.extend(
                values
                    .iter()
                    .filter(|(f, _)| *f != Field::Email)
                    .map(|(f, v)| format!("{f} {}", value(Some(v)))),
            );
            parts.join(", ")
        }
    }
}

/// Where a change came from, in words: `file staff.csv, line 3`, `e-mail from
/// x@rxx.nhs.uk, staff.csv line 3`, `sync rxx-sql, entry 42 (line 3)`, `SCIM PATCH
/// /v2/Users/ID by the fixed token`, `revert of run R by ops (line 3)`; an older run's
/// source as it was recorded.
pub fn whence(e: &HistoryEntry) -> String {
    let line = e.line;
    let mut text = match &e.provenance {
        None => format!(
            "source: {} (line {line}; recorded before runs kept their channel)",
            e.source.as_deref().unwrap_or("not recorded")
        ),
        Some(p) => match p.channel {
            Channel::File => format!("file {}, line {line}", p.name),
            Channel::Email => format!(
                "e-mail from {}, {} line {line}",
                p.sender.as_deref().unwrap_or("?"),
                p.name
            ),
            Channel::Sync => match &e.entry {
                Some(entry) => format!("sync {}, entry {entry} (line {line})", p.name),
                None => format!("sync {}, line {line}", p.name),
            },
            Channel::Scim => match &e.entry {
                Some(request) => format!("SCIM {}, operation {request} (line {line})", scim(p)),
                None => format!("SCIM {}", scim(p)),
            },
            Channel::Revert => format!(
                "revert of run {}{} (line {line})",
                p.name,
                p.sender
                    .as_deref()
                    .map(|s| format!(" by {s}"))
                    .unwrap_or_default()
            ),
        },
    };
    if let Some(who) = &e.approved_by {
        text.push_str(&format!("; held, then approved by {who}"));
    }
    text
}

fn scim(p: &Provenance) -> String {
    match &p.sender {
        Some(client) => format!("{} by {client}", p.name),
        None => p.name.clone(),
    }
}

/// A value as the listings quote it: `"Nurse"`, or `(blank)`.
pub fn value(v: Option<&str>) -> String {
    match v.filter(|v| !v.is_empty()) {
        Some(v) => format!("\"{}\"", shown(v)),
        None => "(blank)".to_owned(),
    }
}
