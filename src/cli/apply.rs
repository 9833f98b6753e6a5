//! `apply FILE`: validate, plan, guard and apply a submission; print the results.
//!
//! Exit 0 when every row was created, updated or unchanged; 1 when some rows were refused
//! or failed, or the run is held for approval (`approve RUN` / `reject RUN`); 2 on an error.
//! `--json` prints `{"run","organisation","status":"applied"|"held"|"planned","held":[…],
//! "refused","rows":[…],"counts"}` (`held`: why the run is, or for `plan` would be, held;
//! `refused`: why no row was applied, when the file's columns look swapped, else null);
//! `--report PATH` writes the result report CSV. `plan` guards its plan as `apply` would:
//! a plan the real run would hold has status `held`, with the same numbers and reasons.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use push_connector::apply::RandomMinter;
use push_connector::config::Config;
use push_connector::deployment::{self, Deployment};
use push_connector::model::Provenance;
use push_connector::pipeline;
use push_connector::report;

use super::{common, listing};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The submission file (CSV/TXT, XLSX, XLS or ODS).
    pub file: PathBuf,
    /// Print one JSON object instead of the summary.
    #[arg(long)]
    pub json: bool,
    /// Write the result report (rows as sent plus Result and Message) here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// The organisation the file is for, when its rows name several.
    #[arg(long)]
    pub organisation: Option<String>,
    /// At most this many rows per group in the listing of a plan (0: all of them).
    #[arg(long, value_name = "N", default_value_t = listing::DEFAULT_LIMIT)]
    pub limit: usize,
}

pub fn run(config: &Config, args: Args, dry_run: bool) -> anyhow::Result<ExitCode> {
    let rt = common::runtime()?;
    let deployment = rt.block_on(Deployment::open(config))?;
    let validated = common::read_and_validate(config, &deployment.rules, &args.file)?;
    if !validated.results.iter().any(|r| r.is_valid()) {
        return nothing_to_apply(&validated, &args);
    }
    let org = common::organisation(&validated, args.organisation.as_deref())?;
    let now = chrono::Utc::now();
    let run_id = deployment::run_id(now);
    let request = pipeline::Request {
        results: &validated.results,
        policy: deployment.policy(&org),
        limits: deployment.guard_limits(&org),
        run: run_id.clone(),
        source: Provenance::file(args.file.display().to_string()),
        dry_run,
        guarded: true,
        supersede: Some("which applied the same file again"),
        record_idle: true,
    };
    let bar = common::progress(args.json || dry_run);
    let progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let submitted = rt
        .block_on(pipeline::submit(
            &deployment.context(&progress),
            &request,
            &mut RandomMinter,
            now,
        ))
        .context("applying the submission")?;
    bar.finish_and_clear();

    let held = !submitted.held.is_empty();
    let (status, reports, counts) = (submitted.status(), submitted.reports(), submitted.counts());
    pipeline::log_run(&run_id, org.as_str(), status, &counts);
    if let Some(path) = &args.report {
        write_report_file(path, &validated.submission, &reports)?;
    }
    if args.json {
        let mut v = common::json_output(&run_id, org.as_str(), status, &reports, &counts);
        v["held"] = serde_json::json!(submitted.held);
        v["refused"] = serde_json::json!(submitted.refused);
        println!("{v}");
    } else {
        for r in &submitted.resumed {
            println!("finished run {r}, which a stopped process had left half done");
        }
        for r in &submitted.superseded {
            println!("held run {r} of the same file is superseded by this one and dropped");
        }
        let verb = if dry_run { "plan" } else { "run" };
        let summary = if status == "applied" {
            counts.summary()
        } else {
            counts.summary_planned()
        };
        println!("{org}: {verb} {run_id}: {summary}");
        if let Some(why) = &submitted.refused {
            let nothing = if dry_run {
                "NOTHING would be applied"
            } else {
                "NOTHING was applied"
            };
            println!("  {nothing}: {why}");
        }
        if held && dry_run {
            println!("  the real run would be HELD for approval, because:");
            for reason in &submitted.held {
                println!("    - {reason}");
            }
            println!(
                "  `push-connector apply` holds it; then review it and apply it with \
                 `push-connector approve RUN`, or drop it with `push-connector reject RUN`"
            );
        } else if held {
            println!("  HELD for approval, nothing was changed, because:");
            for reason in &submitted.held {
                println!("    - {reason}");
            }
            println!(
                "  apply it with `push-connector approve {run_id}`, or drop it with \
                 `push-connector reject {run_id}`"
            );
        }
        if status == "applied" {
            common::print_attention(&reports);
        } else {
            // Planned or held: every change it would make, grouped.
            for line in listing::plan_lines(&submitted.plan, &validated.results, args.limit) {
                println!("{line}");
            }
        }
        if let Some(path) = &args.report {
            println!("report: {}", path.display());
        }
    }
    Ok(common::exit_code(&reports))
}

/// A file with no row that can be applied: no run is recorded; the refusals are printed
/// (and written to `--report`), exit 1.
fn nothing_to_apply(validated: &common::Validated, args: &Args) -> anyhow::Result<ExitCode> {
    let reports = report::validation_rows(&validated.results);
    if let Some(path) = &args.report {
        write_report_file(path, &validated.submission, &reports)?;
    }
    let why = if validated.results.is_empty() {
        "the file has no rows".to_owned()
    } else {
        format!(
            "none of its {} row(s) can be applied",
            validated.results.len()
        )
    };
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "run": null,
                "organisation": null,
                "status": "nothing to apply",
                "reason": why,
                "rows": reports.iter().map(|r| serde_json::json!({
                    "line": r.line, "result": r.result.as_str(), "message": r.message,
                })).collect::<Vec<_>>(),
            })
        );
    } else {
        println!(
            "{}: nothing to apply, and no run was recorded: {why}",
            args.file.display()
        );
        common::print_attention(&reports);
    }
    Ok(ExitCode::from(1))
}

/// Writes the result report (every row as sent, plus Result and Message) to `path`.
fn write_report_file(
    path: &std::path::Path,
    submission: &push_connector::formats::Submission,
    reports: &[report::RowReport],
) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    report::write_report(
        std::io::BufWriter::new(file),
        submission,
        reports,
        report::ReportRows::All,
    )
    .with_context(|| format!("writing {}", path.display()))
}
