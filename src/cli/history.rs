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

use serde_json::{Value, json};

use push_connector::config::Config;
use push_connector::deployment::Deployment;
use push_connector::lookup;
use push_connector::model::Channel;
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

pub fn run(config: &Config, args: Args) -> anyhow::Result<ExitCode> {
    let (account, by, changes) = common::runtime()?.block_on(async {
        let deployment = Deployment::open(config).await?;
        let (account, by) =
            lookup::find_account(&deployment, &args.account, args.organisation.as_deref()).await?;
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
        println!(
            "{}  run {}  {}",
            lookup::when(&e.at),
            e.run,
            lookup::what(&e.change)
        );
        println!("    {}", lookup::whence(e));
    }
    Ok(ExitCode::SUCCESS)
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
