//! `approve RUN`: apply a held run as planned. `--json` prints the apply contract.
//!
//! A held run of a directory sync (`sync NAME`) is applied, then the source is synced once
//! more (as `sync NAME` would: from the cursor the held run kept), which finds the approved
//! changes in place and writes the portal's values (new accounts' IDs, addresses) back to
//! the source; `--no-write-back` leaves that to the next `sync`. With `--json` the object
//! gains `"sync"`, the follow-up sync's object as `sync --json` prints it.
//!
//! Exit 0 when every row went through (and the write-back, if any, succeeded), 1 when some
//! failed or the follow-up sync holds or refuses something, 2 on an error.

use std::process::ExitCode;

use anyhow::Context as _;

use push_connector::apply::RandomMinter;
use push_connector::config::Config;
use push_connector::deployment::Deployment;
use push_connector::pipeline;
use push_connector::sync::{self, SyncOptions};

use super::common;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The held run's ID (see `runs`).
    pub run: String,
    /// Print one JSON object instead of the summary.
    #[arg(long)]
    pub json: bool,
    /// For a sync's run: do not sync the source again to write the IDs back (the next
    /// `sync` does).
    #[arg(long)]
    pub no_write_back: bool,
}

/// The source a held run came from, when it is a configured sync source.
fn sync_source<'a>(
    config: &'a Config,
    label: Option<&str>,
) -> Option<&'a push_connector::sources::config::SourceConfig> {
    config.source(label?.strip_prefix("sync ")?)
}

pub fn run(config: &Config, args: Args) -> anyhow::Result<ExitCode> {
    let now = chrono::Utc::now();
    let bar = common::progress(args.json);
    let progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let rt = common::runtime()?;
    let deployment = rt.block_on(Deployment::open(config))?;
    let (plan, applied, label) = rt.block_on(async {
        let label = deployment
            .state
            .run(&args.run)
            .await
            .with_context(|| format!("approving run {}", args.run))?
            .source;
        let ctx = deployment.context(&progress);
        let approver = common::operator();
        let (plan, applied) =
            pipeline::approve(&ctx, &args.run, approver.as_deref(), &mut RandomMinter, now)
                .await
                .with_context(|| format!("approving run {}", args.run))?;
        anyhow::Ok((plan, applied, label))
    })?;
    bar.finish_and_clear();
    push_connector::pipeline::log_run(
        &plan.run,
        plan.organisation.as_str(),
        "applied",
        &applied.counts,
    );
    let mut code = u8::from(applied.reports.iter().any(|r| r.result.needs_attention()));
    let mut out = common::json_output(
        &plan.run,
        plan.organisation.as_str(),
        "applied",
        &applied.reports,
        &applied.counts,
    );
    if !args.json {
        println!(
            "{}: run {} approved and applied: {}",
            plan.organisation,
            plan.run,
            applied.counts.summary()
        );
        common::print_attention(&applied.reports);
    }

    let source = sync_source(config, label.as_deref());
    match source {
        Some(source) if args.no_write_back => {
            if !args.json {
                println!(
                    "next: `push-connector sync {}` writes the portal's values (the new \
                     accounts' IDs) back to the source",
                    source.name
                );
            } else {
                out["sync"] = serde_json::json!({
                    "next": format!("push-connector sync {}", source.name)
                });
            }
        }
        Some(source) => {
            if !args.json {
                println!(
                    "writing the portal's values back: syncing source {} again",
                    source.name
                );
            }
            let run_id = push_connector::deployment::run_id(chrono::Utc::now());
            let followed = rt.block_on(sync::sync_configured(
                &deployment,
                source,
                &SyncOptions::default(),
                &run_id,
                &|_, _| {},
                chrono::Utc::now(),
            ));
            match followed {
                Ok(synced) => {
                    if args.json {
                        out["sync"] = super::sync::json_output(&source.name, &synced);
                    } else {
                        super::sync::print_summary(&source.name, &synced, &SyncOptions::default());
                    }
                    code = code.max(super::sync::exit_code(&synced));
                }
                Err(e) => {
                    // The run is applied; only the write-back waits.
                    let why = format!("{e:#}");
                    if args.json {
                        out["sync"] = serde_json::json!({ "error": why });
                    } else {
                        println!(
                            "the run is applied, but the source could not be synced to write \
                             the IDs back: {why}\nnext: `push-connector sync {}` once the \
                             source answers",
                            source.name
                        );
                    }
                    code = code.max(1);
                }
            }
        }
        None => {
            if let Some(name) = label.as_deref().and_then(|l| l.strip_prefix("sync "))
                && !args.json
            {
                println!(
                    "source {name} is no longer configured: its entries get the IDs written \
                     back once a configured source syncs them"
                );
            }
        }
    }
    if args.json {
        println!("{out}");
    }
    Ok(ExitCode::from(code))
}
