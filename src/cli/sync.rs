//! `sync SOURCE [--dry-run] [--full] [--only ANCHOR…]`: read a configured directory or
//! database, and validate, plan, guard and apply it like a file; write the portal's values
//! back.
//!
//! Exit 0 when every entry was created, updated or unchanged and every write-back succeeded;
//! 1 when an entry was refused (an entry without its anchor is refused) or failed, a
//! write-back failed, an anchor asked for with `--only` is not found, or a run is held for
//! approval (`approve RUN` / `reject RUN`); 2 on an error, such as an `--only` value that
//! cannot be an anchor (not a GUID, for `objectGUID`). `--dry-run` changes nothing and
//! writes the pending changes as CSV and JSON (`--out`, default `<state_dir>/pending`).
//! `--json` prints one object: `{"source","full","read","unchanged_in_source",
//! "without_anchor","not_found","cursor_advanced",
//! "organisations":[{"organisation","run","status","held","counts"}],
//! "rows":[{"line","source","result","message"}],
//! "write_back":[{"line","source","values","new_id","result","message"}]}`: a dry run guards
//! its plan as the real run would (`status` `held` and the reasons in `held`) and lists
//! every value the real run would write back, the ID of an account it would create as
//! `(new ID)` (with `new_id` true).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use chrono::Utc;
use serde_json::json;

use push_connector::config::Config;
use push_connector::deployment::{self, Deployment};
use push_connector::report::{self, RowResultKind};
use push_connector::sync::{self, SyncOptions, Synced, WriteBackRow};

use super::common;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The source's name (`[[source]] name`).
    pub source: String,
    /// Plan only: write the pending changes (CSV and JSON); change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Read every entry, not only those changed since the last run.
    #[arg(long)]
    pub full: bool,
    /// Only the entries with this anchor (objectGUID, or the anchor column); repeatable.
    #[arg(long, value_name = "ANCHOR")]
    pub only: Vec<String>,
    /// Print one JSON object instead of the summary.
    #[arg(long)]
    pub json: bool,
    /// Write the result report (the entries as rows, plus Result and Message) here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Folder of the pending-changes files of a dry run.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(config: &Config, args: Args) -> anyhow::Result<ExitCode> {
    let Some(source) = config.source(&args.source) else {
        let names: Vec<&str> = config.sources.iter().map(|s| s.name.as_str()).collect();
        bail!(
            "there is no source \"{}\" in the configuration ({})",
            args.source,
            if names.is_empty() {
                "no [[source]] is configured".to_owned()
            } else {
                format!("configured: {}", names.join(", "))
            }
        );
    };
    let options = SyncOptions {
        full: args.full,
        dry_run: args.dry_run,
        only: args.only.clone(),
    };
    let now = Utc::now();
    let run_id = deployment::run_id(now);
    let bar = common::progress(args.json);
    let progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let rt = common::runtime()?;
    let synced = rt.block_on(async {
        let deployment = Deployment::open(config).await?;
        sync::sync_configured(&deployment, source, &options, &run_id, &progress, now)
            .await
            .with_context(|| format!("syncing source \"{}\"", source.name))
    })?;
    bar.finish_and_clear();

    if let Some(path) = &args.report {
        write_report(path, &synced)?;
    }
    let pending = if args.dry_run {
        let dir = args
            .out
            .clone()
            .unwrap_or_else(|| config.service.state_dir.join("pending"));
        Some(write_pending(&dir, &source.name, &run_id, &synced)?)
    } else {
        None
    };
    if args.json {
        println!("{}", json_output(&source.name, &synced));
    } else {
        print_summary(&source.name, &synced, &options);
        if let Some((csv, json)) = &pending {
            println!("pending changes: {} and {}", csv.display(), json.display());
        }
        if let Some(path) = &args.report {
            println!("report: {}", path.display());
        }
    }
    Ok(ExitCode::from(exit_code(&synced)))
}

/// The `Source` cell of a line: the entry's DN or anchor.
fn locator(synced: &Synced, line: u64) -> &str {
    // The rows are in line order.
    let rows = &synced.submission.rows;
    rows.binary_search_by_key(&line, |r| r.line)
        .ok()
        .and_then(|i| rows[i].cells.get(0))
        .unwrap_or_default()
}

fn write_outcome(w: &WriteBackRow) -> (&'static str, String) {
    match &w.outcome {
        None => ("planned", String::new()),
        Some(Ok(())) => ("written", String::new()),
        Some(Err(e)) => ("failed", e.clone()),
    }
}

/// A write-back value as shown: the ID a planned create has yet to be given is `(new ID)`.
fn shown_value<'a>(w: &WriteBackRow, value: &'a str) -> &'a str {
    if w.new_id && value.is_empty() {
        NEW_ID
    } else {
        value
    }
}

/// How a preview shows the ID of an account the run would create.
const NEW_ID: &str = "(new ID)";

/// `1 entry`, `2 entries`.
fn entries(n: usize) -> String {
    if n == 1 {
        "1 entry".to_owned()
    } else {
        format!("{n} entries")
    }
}

pub(super) fn json_output(name: &str, synced: &Synced) -> serde_json::Value {
    json!({
        "source": name,
        "full": synced.full,
        "read": synced.read,
        "unchanged_in_source": synced.unchanged_in_source,
        "without_anchor": synced.without_anchor,
        "not_found": synced.not_found,
        "cursor_advanced": synced.cursor_advanced,
        "seconds": {
            "read": synced.took.read.as_secs_f64(),
            "validate": synced.took.validate.as_secs_f64(),
            "apply": synced.took.apply.as_secs_f64(),
            "write_back": synced.took.write_back.as_secs_f64(),
            "remember": synced.took.remember.as_secs_f64(),
        },
        "organisations": synced.organisations.iter().map(|o| json!({
            "organisation": o.organisation.as_str(),
            "run": o.submitted.plan.run,
            "status": o.status(),
            "held": o.submitted.held,
            "refused": o.submitted.refused,
            "counts": o.counts(),
        })).collect::<Vec<_>>(),
        "rows": synced.reports.iter().map(|r| json!({
            "line": r.line,
            "source": locator(synced, r.line),
            "result": r.result.as_str(),
            "message": r.message,
        })).collect::<Vec<_>>(),
        "write_back": synced.write_back.iter().map(|w| {
            let (result, message) = write_outcome(w);
            json!({
                "line": w.line,
                "source": w.write.locator,
                "values": w.write.values.iter()
                    .map(|(k, v)| (k.clone(), json!(shown_value(w, v))))
                    .collect::<serde_json::Map<String, serde_json::Value>>(),
                "new_id": w.new_id,
                "result": result,
                "message": message,
            })
        }).collect::<Vec<_>>(),
    })
}

pub(super) fn print_summary(name: &str, synced: &Synced, options: &SyncOptions) {
    let dry_run = options.dry_run;
    let how = if !options.only.is_empty() {
        format!("only the {} asked for", entries(options.only.len()))
    } else if synced.full {
        "full".to_owned()
    } else {
        "changes only".to_owned()
    };
    println!(
        "source {name}: {} read ({how}), {} unchanged since last applied",
        synced.read, synced.unchanged_in_source
    );
    if synced.without_anchor > 0 {
        println!(
            "  {} without the anchor attribute left out (they cannot be joined to an account; \
             listed below as rejected)",
            entries(synced.without_anchor)
        );
    }
    if !synced.not_found.is_empty() {
        println!("  not found in scope: {}", synced.not_found.join(", "));
    }
    let verb = if dry_run { "plan" } else { "run" };
    for o in &synced.organisations {
        let counts = o.counts();
        println!(
            "{}: {verb} {}: {}",
            o.organisation,
            o.submitted.plan.run,
            if o.status() == "applied" {
                counts.summary()
            } else {
                counts.summary_planned()
            }
        );
        if let Some(why) = &o.submitted.refused {
            println!("  NOTHING was applied or written back: {why}");
        }
        if !o.submitted.held.is_empty() && dry_run {
            println!("  the real run would be HELD for approval, because:");
            for reason in &o.submitted.held {
                println!("    - {reason}");
            }
            println!(
                "  `push-connector sync {name}` holds it as a run; review that, then \
                 `push-connector approve RUN` applies it and writes the IDs back (or \
                 `push-connector reject RUN` drops it)"
            );
        } else if !o.submitted.held.is_empty() {
            let run = &o.submitted.plan.run;
            println!("  HELD for approval, nothing was changed or written back, because:");
            for reason in &o.submitted.held {
                println!("    - {reason}");
            }
            println!(
                "  apply it with `push-connector approve {run}` (which then syncs the source \
                 again to write the IDs back), or drop it with `push-connector reject {run}`; \
                 the next sync reads these changes again"
            );
        }
    }
    // Refused and failed rows each need action: all are listed. Held rows (a whole plan,
    // on a first load) are listed up to SHOWN_WRITES; the report has them all.
    let mut held_shown = 0;
    for r in synced.reports.iter().filter(|r| r.result.needs_attention()) {
        if r.result == RowResultKind::Held {
            held_shown += 1;
            if held_shown > SHOWN_WRITES {
                continue;
            }
        }
        println!(
            "  line {} ({}): {}: {}",
            r.line,
            locator(synced, r.line),
            r.result.as_str(),
            r.message
        );
    }
    if held_shown > SHOWN_WRITES {
        println!(
            "  … and {} more held rows (every row is in the report: --report, or the pending \
             CSV of a dry run)",
            held_shown - SHOWN_WRITES
        );
    }
    let (written, failed, planned) =
        synced
            .write_back
            .iter()
            .fold((0, 0, 0), |(w, f, p), r| match &r.outcome {
                Some(Ok(())) => (w + 1, f, p),
                Some(Err(_)) => (w, f + 1, p),
                None => (w, f, p + 1),
            });
    if planned > 0 {
        let new_ids = synced.write_back.iter().filter(|w| w.new_id).count();
        println!(
            "write-back: {} would be written{}",
            entries(planned),
            if new_ids > 0 {
                format!(" ({new_ids} with the ID of an account the run creates)")
            } else {
                String::new()
            }
        );
        for w in synced.write_back.iter().take(SHOWN_WRITES) {
            let values: Vec<String> = w
                .write
                .values
                .iter()
                .map(|(k, v)| format!("{k} = {}", shown_value(w, v)))
                .collect();
            println!(
                "  line {} ({}): {}",
                w.line,
                w.write.locator,
                values.join(", ")
            );
        }
        if planned > SHOWN_WRITES {
            println!(
                "  … and {} more (every one is in the pending changes' JSON)",
                planned - SHOWN_WRITES
            );
        }
    }
    if written + failed > 0 {
        println!("write-back: {written} written, {failed} failed");
    }
    for w in synced
        .write_back
        .iter()
        .filter(|w| matches!(w.outcome, Some(Err(_))))
    {
        println!(
            "  line {} ({}): write-back failed: {}",
            w.line,
            w.write.locator,
            write_outcome(w).1
        );
    }
    if !dry_run
        && !synced.cursor_advanced
        && synced
            .organisations
            .iter()
            .any(|o| !o.submitted.held.is_empty())
    {
        println!("the source's cursor was kept: the next sync reads these changes again");
    }
    let t = synced.took;
    println!(
        "took {:.1} s: read {:.1} s, validate {:.1} s, plan and apply {:.1} s, write-back {:.1} s, \
         remember {:.1} s",
        t.total().as_secs_f64(),
        t.read.as_secs_f64(),
        t.validate.as_secs_f64(),
        t.apply.as_secs_f64(),
        t.write_back.as_secs_f64(),
        t.remember.as_secs_f64()
    );
}

/// Write-backs (and held rows) a summary lists one by one; the pending JSON and the report
/// have them all.
const SHOWN_WRITES: usize = 20;

/// 0 when everything went through, 1 when something needs attention.
pub(super) fn exit_code(synced: &Synced) -> u8 {
    let refused = synced.reports.iter().any(|r| r.result.needs_attention())
        || !synced.not_found.is_empty()
        || synced.held()
        || synced
            .write_back
            .iter()
            .any(|w| matches!(w.outcome, Some(Err(_))));
    u8::from(refused)
}

fn write_report(path: &Path, synced: &Synced) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    report::write_report(
        std::io::BufWriter::new(file),
        &synced.submission,
        &synced.reports,
        report::ReportRows::All,
    )
    .with_context(|| format!("writing {}", path.display()))
}

/// The pending changes of a dry run: the rows with their planned result (CSV, like a result
/// report) and everything, write-back included, as JSON.
fn write_pending(
    dir: &Path,
    name: &str,
    run_id: &str,
    synced: &Synced,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let csv = dir.join(format!("{name}-{run_id}.csv"));
    write_report(&csv, synced)?;
    let json = dir.join(format!("{name}-{run_id}.json"));
    let text = serde_json::to_string_pretty(&json_output(name, synced))?;
    std::fs::write(&json, text).with_context(|| format!("writing {}", json.display()))?;
    Ok((csv, json))
}
