//! `runs`: every run, oldest first, with status and counts (`--json`: an array of runs).
//! Runs a stopped process left half done are finished first.

use std::process::ExitCode;

use push_connector::apply::RandomMinter;
use push_connector::config::Config;
use push_connector::deployment::Deployment;
use push_connector::pipeline;

use super::common;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print a JSON array instead of the table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(config: &Config, args: Args) -> anyhow::Result<ExitCode> {
    let runs = common::runtime()?.block_on(async {
        let deployment = Deployment::open(config).await?;
        let ctx = deployment.context(&|_, _| {});
        pipeline::resume_unfinished(&ctx, &mut RandomMinter, chrono::Utc::now()).await?;
        anyhow::Ok(deployment.state.runs().await?)
    })?;
    if args.json {
        println!("{}", serde_json::to_string(&runs)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<24} {:<6} {:<7} {:<9} {:>7} {:>7} {:>9} {:>8} {:>6}  source",
        "run", "org", "kind", "status", "created", "updated", "unchanged", "rejected", "failed"
    );
    for r in runs {
        println!(
            "{:<24} {:<6} {:<7} {:<9} {:>7} {:>7} {:>9} {:>8} {:>6}  {}",
            r.id,
            r.organisation,
            r.kind,
            r.status.as_str(),
            r.counts.created,
            r.counts.updated,
            r.counts.unchanged,
            r.counts.rejected,
            r.counts.failed,
            r.source.unwrap_or_default()
        );
        if let Some(note) = r.note {
            println!("    {note}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
