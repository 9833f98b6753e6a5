//! `reject RUN`: drop a held run; nothing is changed. Exit 0, or 2 when the run is not held.

use std::process::ExitCode;

use anyhow::Context as _;

use push_connector::config::Config;
use push_connector::deployment::Deployment;
use push_connector::pipeline;

use super::common;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The held run's ID (see `runs`).
    pub run: String,
}

pub fn run(config: &Config, args: Args) -> anyhow::Result<ExitCode> {
    common::runtime()?.block_on(async {
        let deployment = Deployment::open(config).await?;
        pipeline::reject(&deployment.state, &args.run, chrono::Utc::now())
            .await
            .with_context(|| format!("rejecting run {}", args.run))
    })?;
    println!("run {} rejected: nothing was changed", args.run);
    Ok(ExitCode::SUCCESS)
}
