//! `outbox`: the e-mails the service sends, for the operator. `outbox list` shows what waits
//! and what failed for good (with the server's last answer); `outbox retry ID` puts one back
//! in the queue, due now (the next `run` pass sends it); `outbox drop ID --reason TEXT` gives
//! one up for good, keeping the reason. Exit 0; 1 when `retry`/`drop` found no such e-mail
//! waiting or failed; 2 on an error.

use std::process::ExitCode;

use anyhow::Context as _;

use push_connector::config::Config;
use push_connector::store::MailStore;
use push_connector::store::outbox::DeliveryState;

use super::common;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// The e-mails waiting and failed (with `--all`, sent and dropped ones too), newest first.
    List {
        /// Every e-mail, sent and dropped ones included.
        #[arg(long)]
        all: bool,
        /// Print a JSON array instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Send a failed or waiting e-mail again on the next pass.
    Retry { id: i64 },
    /// Give up an e-mail for good.
    Drop {
        id: i64,
        /// Why (kept with the e-mail).
        #[arg(long)]
        reason: String,
    },
}

pub fn run(config: &Config, command: Command) -> anyhow::Result<ExitCode> {
    common::runtime()?.block_on(async {
        let store = MailStore::open(&config.service.state_dir)
            .await
            .context("opening the mail state")?;
        match command {
            Command::List { all, json } => list(&store, all, json).await,
            Command::Retry { id } => {
                if store.retry(id, chrono::Utc::now()).await? {
                    println!("e-mail {id}: waiting; the next pass of the service sends it");
                    Ok(ExitCode::SUCCESS)
                } else {
                    not_open(&store, id).await
                }
            }
            Command::Drop { id, reason } => {
                if reason.trim().is_empty() {
                    anyhow::bail!("--reason must say why the e-mail is dropped");
                }
                if store.drop_mail(id, reason.trim()).await? {
                    println!("e-mail {id}: dropped ({})", reason.trim());
                    Ok(ExitCode::SUCCESS)
                } else {
                    not_open(&store, id).await
                }
            }
        }
    })
}

async fn list(store: &MailStore, all: bool, json: bool) -> anyhow::Result<ExitCode> {
    let records = store.outbox(all).await?;
    if json {
        println!("{}", serde_json::to_string(&records)?);
        return Ok(ExitCode::SUCCESS);
    }
    if records.is_empty() {
        println!("the outbox is empty: nothing waits and nothing failed");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:>6}  {:<8} {:<15} {:>8}  {:<25} {:<30} subject",
        "id", "state", "kind", "attempts", "next attempt", "to"
    );
    for r in records {
        let next = match r.state {
            DeliveryState::Waiting => r.next_attempt_at.as_str(),
            _ => "-",
        };
        println!(
            "{:>6}  {:<8} {:<15} {:>8}  {:<25} {:<30} {}",
            r.id,
            r.state.as_str(),
            r.kind,
            r.attempts,
            next,
            r.recipients.join(", "),
            r.subject
        );
        if let Some(e) = r
            .last_error
            .as_deref()
            .filter(|_| r.state != DeliveryState::Sent)
        {
            println!("        last error: {e}");
        }
        if let Some(why) = &r.closed_reason {
            println!("        dropped: {why}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn not_open(store: &MailStore, id: i64) -> anyhow::Result<ExitCode> {
    match store.outbox_record(id).await? {
        None => eprintln!("outbox: no e-mail {id}"),
        Some(r) => eprintln!(
            "outbox: e-mail {id} is {}, not waiting or failed",
            r.state.as_str()
        ),
    }
    Ok(ExitCode::from(1))
}
