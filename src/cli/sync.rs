//! `sync SOURCE [--dry-run] [--full] [--only ANCHOR…]`: read a configured directory or
//! database, and validate, plan, guard and apply it like a file; write the portal's values
//! back.
//!
//! Exit 0 when every entry was created, updated or unchanged and every write-back succeeded;
//! 1 when an entry was refused or failed, a write-back failed, or a run is held for approval
//! (`approve RUN` / `reject RUN`); 2 on an error. `--dry-run` changes nothing and writes the
//! pending changes as CSV and JSON (`--out`, default `<state_dir>/pending`). `--json` prints
//! one object: `{"source","full","read","unchanged_in_source","cursor_advanced",
//! "organisations":[{"organisation","run","status","held","counts"}],
//! "rows":[{"line","source","result","message"}],
//! "write_back":[{"line","source","values","result","message"}]}`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use serde_json::json;

use push_connector::apply::{Context, RandomMinter};
use push_connector::config::Config;
use push_connector::report;
use push_connector::sources::AnySource;
use push_connector::sources::config::SourceConfig;
use push_connector::store::SyncStore;
use push_connector::sync::{self, SyncOptions, Synced, WriteBackRow};
use push_connector::validate::Rules;

use push_connector::directory::any::AnyDirectory;
use push_connector::store::StateDb;

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
    let run_id = common::run_id(now);
    let bar = common::progress(args.json);
    let progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let rt = common::runtime()?;
    let synced = rt.block_on(async {
        let rules = common::rules(config).await?;
        let backends = common::open(config).await?;
        let store = backends.state.sync();
        sync_source(
            config,
            source,
            &rules,
            &backends.directory,
            &backends.state,
            &store,
            &options,
            &run_id,
            &progress,
            now,
        )
        .await
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
        print_summary(&source.name, &synced, args.dry_run);
        if let Some((csv, json)) = &pending {
            println!("pending changes: {} and {}", csv.display(), json.display());
        }
        if let Some(path) = &args.report {
            println!("report: {}", path.display());
        }
    }
    Ok(exit_code(&synced))
}

/// One sync of one source with the deployment's backends: what the verb and the `run`
/// service's schedule share.
#[allow(clippy::too_many_arguments)]
pub async fn sync_source(
    config: &Config,
    source: &SourceConfig,
    rules: &Rules,
    directory: &AnyDirectory,
    state: &StateDb,
    store: &SyncStore,
    options: &SyncOptions,
    run_id: &str,
    progress: &dyn Fn(u64, u64),
    now: DateTime<Utc>,
) -> anyhow::Result<Synced> {
    let mut reader = AnySource::open(source)
        .await
        .with_context(|| format!("opening source \"{}\"", source.name))?;
    let ctx = Context {
        directory,
        state,
        passwords: common::password_file(config),
        progress,
    };
    let mut minter = RandomMinter;
    let synced = sync::sync(
        config,
        source,
        &mut reader,
        rules,
        &ctx,
        store,
        options,
        run_id,
        &mut minter,
        now,
    )
    .await
    .with_context(|| format!("syncing source \"{}\"", source.name))?;
    for o in &synced.organisations {
        common::log_run(
            &o.submitted.plan.run,
            o.organisation.as_str(),
            o.status(),
            &o.counts(),
        );
    }
    Ok(synced)
}

/// The `Source` cell of a line: the entry's DN or anchor.
fn locator(synced: &Synced, line: u64) -> &str {
    line.checked_sub(2)
        .and_then(|i| synced.submission.rows.get(usize::try_from(i).ok()?))
        .and_then(|r| r.cells.get(0))
        .unwrap_or_default()
}

fn write_outcome(w: &WriteBackRow) -> (&'static str, String) {
    match &w.outcome {
        None => ("planned", String::new()),
        Some(Ok(())) => ("written", String::new()),
        Some(Err(e)) => ("failed", e.clone()),
    }
}

fn json_output(name: &str, synced: &Synced) -> serde_json::Value {
    json!({
        "source": name,
        "full": synced.full,
        "read": synced.read,
        "unchanged_in_source": synced.unchanged_in_source,
        "cursor_advanced": synced.cursor_advanced,
        "organisations": synced.organisations.iter().map(|o| json!({
            "organisation": o.organisation.as_str(),
            "run": o.submitted.plan.run,
            "status": o.status(),
            "held": o.submitted.held,
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
                    .map(|(k, v)| (k.clone(), json!(v)))
                    .collect::<serde_json::Map<String, serde_json::Value>>(),
                "result": result,
                "message": message,
            })
        }).collect::<Vec<_>>(),
    })
}

fn print_summary(name: &str, synced: &Synced, dry_run: bool) {
    println!(
        "source {name}: {} read ({}), {} unchanged since last applied",
        synced.read,
        if synced.full { "full" } else { "changes only" },
        synced.unchanged_in_source
    );
    let verb = if dry_run { "plan" } else { "run" };
    for o in &synced.organisations {
        let counts = o.counts();
        println!(
            "{}: {verb} {}: {}",
            o.organisation,
            o.submitted.plan.run,
            counts.summary()
        );
        if !o.submitted.held.is_empty() {
            let run = &o.submitted.plan.run;
            println!("  HELD for approval, nothing was changed or written back, because:");
            for reason in &o.submitted.held {
                println!("    - {reason}");
            }
            println!(
                "  apply it with `push-connector approve {run}`, or drop it with \
                 `push-connector reject {run}`; the next sync reads these changes again"
            );
        }
    }
    for r in &synced.reports {
        if r.result.needs_attention() {
            println!(
                "  line {} ({}): {}: {}",
                r.line,
                locator(synced, r.line),
                r.result.as_str(),
                r.message
            );
        }
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
        println!("write-back: {planned} entr(ies) would be written");
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
}

fn exit_code(synced: &Synced) -> ExitCode {
    let refused = synced.reports.iter().any(|r| r.result.needs_attention())
        || synced.held()
        || synced
            .write_back
            .iter()
            .any(|w| matches!(w.outcome, Some(Err(_))));
    ExitCode::from(u8::from(refused))
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
