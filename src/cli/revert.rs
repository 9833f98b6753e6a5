//! `revert RUN`: restore every field the run changed, except where a later run changed the
//! same field since (those are listed and left alone). Accounts the run created are listed
//! for a portal administrator: a connector never deletes or disables accounts.
//! Exit 0 when everything was restored, 1 when some fields were left, 2 on an error.

use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::json;

use push_connector::apply::RandomMinter;
use push_connector::config::Config;
use push_connector::deployment::Deployment;
use push_connector::pipeline;

use super::common;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The applied run to revert (see `runs`).
    pub run: String,
    /// Print one JSON object instead of the summary.
    #[arg(long)]
    pub json: bool,
}

pub fn run(config: &Config, args: Args) -> anyhow::Result<ExitCode> {
    let now = chrono::Utc::now();
    let revert_run = push_connector::deployment::run_id(now);
    let reverted = common::runtime()?.block_on(async {
        let deployment = Deployment::open(config).await?;
        let ctx = deployment.context(&|_, _| {});
        let operator = common::operator();
        pipeline::revert(
            &ctx,
            &args.run,
            &revert_run,
            operator.as_deref(),
            &mut RandomMinter,
            now,
        )
        .await
        .with_context(|| format!("reverting run {}", args.run))
    })?;
    push_connector::pipeline::log_run(
        &revert_run,
        reverted.plan.organisation.as_str(),
        "reverted",
        &reverted.applied.counts,
    );
    if args.json {
        println!(
            "{}",
            json!({
                "run": revert_run,
                "reverts": args.run,
                "organisation": reverted.plan.organisation,
                "restored": reverted.applied.counts.updated,
                "refused": reverted.refused,
                "created_accounts": reverted.created.iter().map(|(id, email)| json!({"id": id, "email": email})).collect::<Vec<_>>(),
            })
        );
    } else {
        let restored = reverted.applied.counts.updated;
        println!(
            "run {} reverted by run {revert_run}: {restored} {} restored",
            args.run,
            if restored == 1 { "account" } else { "accounts" }
        );
        for r in &reverted.refused {
            println!("  not restored: {r}");
        }
        if !reverted.created.is_empty() {
            println!(
                "  accounts the run created (a connector never deletes accounts; a portal \
                 administrator decides):"
            );
            for (id, email) in &reverted.created {
                println!("    {} (ID {id})", email.as_deref().unwrap_or("-"));
            }
        }
    }
    Ok(ExitCode::from(u8::from(!reverted.refused.is_empty())))
}
