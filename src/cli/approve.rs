//! `approve RUN`: apply a held run as planned. `--json` prints the apply contract.
//! Exit 0 when every row went through, 1 when some failed, 2 on an error.

use std::process::ExitCode;

use anyhow::Context as _;

use push_connector::apply::RandomMinter;
use push_connector::config::Config;
use push_connector::deployment::Deployment;
use push_connector::pipeline;

use super::common;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The held run's ID (see `runs`).
    pub run: String,
    /// Print one JSON object instead of the summary.
    #[arg(long)]
    pub json: bool,
}

pub fn run(config: &Config, args: Args) -> anyhow::Result<ExitCode> {
    let now = chrono::Utc::now();
    let bar = common::progress(args.json);
    let progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let (plan, applied) = common::runtime()?.block_on(async {
        let deployment = Deployment::open(config).await?;
        let ctx = deployment.context(&progress);
        pipeline::approve(&ctx, &args.run, &mut RandomMinter, now)
            .await
            .with_context(|| format!("approving run {}", args.run))
    })?;
    bar.finish_and_clear();
    push_connector::pipeline::log_run(
        &plan.run,
        plan.organisation.as_str(),
        "applied",
        &applied.counts,
    );
    if args.json {
        println!(
            "{}",
            common::json_output(
                &plan.run,
                plan.organisation.as_str(),
                "applied",
                &applied.reports,
                &applied.counts
            )
        );
    } else {
        println!(
            "{}: run {} approved and applied: {}",
            plan.organisation,
            plan.run,
            applied.counts.summary()
        );
        common::print_attention(&applied.reports);
    }
    Ok(common::exit_code(&applied.reports))
}
