//! `history ACCOUNT`: every change made to one account, oldest first, each with when, the
//! field (old → new), the run, and where it came from: the channel, the file and line or the
//! source entry, the sender or source. Read from the journal in the state database, so it
//! is the same for the embedded directory and the SCIM backend.
//!
//! ACCOUNT is a portal ID, an e-mail address (primary or secondary) or an ExternalSyncID
//! (tried in that order; the output says which matched). An ExternalSyncID that several
//! organisations use lists their accounts and asks for `--organisation`. `--limit N` keeps
//! the N most recent changes (0: all). Exit 0, or 2 when no account (or more than one)
//! matches.

use std::process::ExitCode;

use anyhow::bail;
use serde_json::{Value, json};

use push_connector::config::Config;
use push_connector::deployment::Deployment;
use push_connector::directory::{Account, Directory};
use push_connector::model::{Channel, PortalId, Provenance};
use push_connector::store::{HistoryChange, HistoryEntry};

use super::{common, listing};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The account: its portal ID, an e-mail address, or its ExternalSyncID.
    pub account: String,
    /// The organisation, for an ExternalSyncID that several organisations use.
    #[arg(long)]
    pub organisation: Option<String>,
    /// Print one JSON object instead of the listing.
    #[arg(long)]
    pub json: bool,
    /// Only the N most recent changes (0: all of them).
    #[arg(long, value_name = "N", default_value_t = listing::DEFAULT_LIMIT)]
    pub limit: usize,
}

/// What ACCOUNT matched by.
#[derive(Debug, Clone, Copy)]
enum MatchedBy {
    Id,
    Email,
    ExternalSyncId,
}

impl MatchedBy {
    fn as_str(self) -> &'static str {
        match self {
            MatchedBy::Id => "ID",
            MatchedBy::Email => "e-mail",
            MatchedBy::ExternalSyncId => "ExternalSyncID",
        }
    }
}

pub fn run(config: &Config, args: Args) -> anyhow::Result<ExitCode> {
    let (account, by, changes) = common::runtime()?.block_on(async {
        let deployment = Deployment::open(config).await?;
        let (account, by) = find(&deployment, &args).await?;
        let changes = deployment.state.history(account.id.as_str()).await?;
        anyhow::Ok((account, by, changes))
    })?;
    let total = changes.len();
    let skip = if args.limit == 0 {
        0
    } else {
        total.saturating_sub(args.limit)
    };
    let shown = &changes[skip..];
    if args.json {
        let v = json!({
            "account": {
                "id": account.id.as_str(),
                "email": account.email(),
                "external_sync_id": account.external_sync_id(),
                "organisation": account.organisation(),
                "matched_by": by.as_str(),
            },
            "total": total,
            "changes": shown.iter().map(entry_json).collect::<Vec<_>>(),
        });
        println!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    let counted = match total {
        0 => "no change recorded by this service".to_owned(),
        1 => "1 change".to_owned(),
        n => format!("{n} changes, oldest first"),
    };
    println!(
        "{} (ID {}, {}), found by {}: {counted}",
        account.email().unwrap_or("-"),
        account.id,
        account.organisation(),
        by.as_str(),
    );
    if skip > 0 {
        println!("  … {skip} earlier changes not shown (`--limit 0` shows all)");
    }
    for e in shown {
        println!("{}  run {}  {}", when(&e.at), e.run, what(&e.change));
        println!("    {}", whence(e));
    }
    Ok(ExitCode::SUCCESS)
}

/// The account ACCOUNT names: by portal ID, then e-mail address, then ExternalSyncID.
async fn find(d: &Deployment<'_>, args: &Args) -> anyhow::Result<(Account, MatchedBy)> {
    let key = args.account.trim();
    if let Some(a) = d.directory.by_id(&PortalId::new_unchecked(key)).await? {
        return Ok((a, MatchedBy::Id));
    }
    if key.contains('@')
        && let Some(a) = d.directory.by_email(key).await?
    {
        return Ok((a, MatchedBy::Email));
    }
    let mut found: Vec<Account> = Vec::new();
    match (&args.organisation, d.directory.local()) {
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
        0 => bail!(
            "no account has the ID, e-mail address or ExternalSyncID {key:?}{}",
            args.organisation
                .as_deref()
                .map(|o| format!(" (ExternalSyncID looked for in {o})"))
                .unwrap_or_default()
        ),
        1 => Ok((found.remove(0), MatchedBy::ExternalSyncId)),
        _ => bail!(
            "ExternalSyncID {key:?} is used in several organisations: {}; name one with \
             --organisation ODS",
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
        ),
    }
}

/// `2026-12-02 03:58:01 UTC`.
fn when(at: &str) -> String {
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
fn what(change: &HistoryChange) -> String {
    match change {
        HistoryChange::Field {
            field,
            before,
            after,
        } => format!(
            "{field}: {} → {}",
            listing::value(before.as_deref()),
            listing::value(after.as_deref())
        ),
        HistoryChange::Created { address, values } => {
            let mut parts = vec![format!("created: {}", address.as_deref().unwrap_or("-"))];
            parts.extend(
                values
                    .iter()
                    .filter(|(f, _)| *f != push_connector::model::Field::Email)
                    .map(|(f, v)| format!("{f} {}", listing::value(Some(v)))),
            );
            parts.join(", ")
        }
    }
}

/// Where a change came from, in words: `file staff.csv, line 3`, `e-mail from
/// x@rxx.nhs.uk, staff.csv line 3`, `sync rxx-sql, entry 42 (line 3)`, `SCIM PATCH
/// /v2/Users/ID by the fixed token`, `revert of run R by ops (line 3)`; an older run's
/// source as it was recorded.
fn whence(e: &HistoryEntry) -> String {
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

/// One change as `--json` gives it (see the README's *Operations*).
fn entry_json(e: &HistoryEntry) -> Value {
    let p = e.provenance.as_ref();
    let channel = p.map(|p| p.channel);
    let is = |c: Channel| channel == Some(c);
    let mut v = json!({
        "at": e.at,
        "run": e.run,
        "organisation": e.organisation,
        "channel": channel.map(Channel::as_str),
        "line": e.line,
        "file": p.filter(|_| is(Channel::File) || is(Channel::Email)).map(|p| &p.name),
        // A SCIM write's request: the line's own (an operation of a Bulk request), else the run's.
        "entry": if is(Channel::Scim) { e.entry.clone().or_else(|| p.map(|p| p.name.clone())) } else { e.entry.clone() },
        "sender": p.and_then(|p| p.sender.as_ref()),
        "sync_source": p.filter(|_| is(Channel::Sync)).map(|p| &p.name),
        "reverts": p.filter(|_| is(Channel::Revert)).map(|p| &p.name),
        "source": e.source,
        "approved_by": e.approved_by,
    });
    match &e.change {
        HistoryChange::Field {
            field,
            before,
            after,
        } => {
            v["field"] = json!(field.name());
            v["before"] = json!(before);
            v["after"] = json!(after);
        }
        HistoryChange::Created { address, values } => {
            v["field"] = json!("created");
            v["before"] = Value::Null;
            v["after"] = json!(address);
            v["values"] = values
                .iter()
                .map(|(f, x)| (f.name().to_owned(), json!(x)))
                .collect::<serde_json::Map<_, _>>()
                .into();
        }
    }
    v
}
