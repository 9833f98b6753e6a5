//! What the run verbs share: opening the directory and state, reading a submission, choosing
//! its organisation, the run ID and clock, the progress bar, printing results.
//!
//! In: the configuration and a verb's arguments. Out: ready backends and the JSON contract
//! `{"run","organisation","status","rows":[{"line","result","message"}],"counts"}`.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use push_connector::config::Config;
use push_connector::formats::{self, Submission};
use push_connector::model::OdsCode;
use push_connector::plan::Counts;
use push_connector::report::RowReport;
use push_connector::validate::{self, RowOutcome, RowResult, Rules};

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// A progress bar on a terminal; hidden with `--json` or when stderr is not a terminal.
pub fn progress(json: bool) -> ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {pos}/{len} changes {elapsed} (eta {eta})")
    {
        bar.set_style(style);
    }
    bar
}

/// A read and validated submission.
pub struct Validated {
    pub submission: Submission,
    pub results: Vec<RowResult>,
}

/// Reads `file` (within `[service] max_file_bytes`) and validates it with `rules`.
pub fn read_and_validate(config: &Config, rules: &Rules, file: &Path) -> anyhow::Result<Validated> {
    // The size is checked before the file is read, and the read stops past the limit.
    let submission = formats::read_file_bounded(file, config.service.max_file_bytes as u64)
        .with_context(|| format!("reading {}", file.display()))?
        .and_then(|bytes| formats::read_owned(bytes, &rules.limits))
        .with_context(|| format!("{} is rejected", file.display()))?;
    let results = validate::validate(&submission, rules);
    Ok(Validated {
        submission,
        results,
    })
}

/// The organisation a file is for: the one its rows name (or `--organisation`). A file
/// naming several is refused unless one is chosen; rows for the others are then refused.
pub fn organisation(v: &Validated, chosen: Option<&str>) -> anyhow::Result<OdsCode> {
    if let Some(c) = chosen {
        return Ok(OdsCode::new_unchecked(c.to_ascii_uppercase()));
    }
    let mut named: Vec<String> = v
        .results
        .iter()
        .filter_map(|r| match &r.outcome {
            RowOutcome::Valid(p) => Some(p.organisation().to_owned()),
            RowOutcome::Refused(_) => None,
        })
        .collect();
    named.sort();
    named.dedup();
    match named.len() {
        1 => Ok(OdsCode::new_unchecked(named.remove(0))),
        0 => {
            // No valid row: take the organisation cell as sent, for the report.
            let sub = &v.submission;
            let cell = sub
                .column_of(push_connector::model::Field::Organisation)
                .and_then(|c| sub.rows.iter().find_map(|r| r.cells.get(c)))
                .map(|s| s.trim().to_ascii_uppercase())
                .filter(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric()))
                .unwrap_or_else(|| "UNKNOWN".to_owned());
            Ok(OdsCode::new_unchecked(cell))
        }
        _ => bail!(
            "the file names several organisations ({}): send one file per organisation, or \
             choose one with --organisation (rows for the others are then refused)",
            named.join(", ")
        ),
    }
}

/// Exit code of a finished run: 1 when a row was refused, failed or held.
pub fn exit_code(reports: &[RowReport]) -> ExitCode {
    let refused = reports.iter().any(|r| r.result.needs_attention());
    ExitCode::from(u8::from(refused))
}

pub fn json_output(
    run: &str,
    organisation: &str,
    status: &str,
    reports: &[RowReport],
    counts: &Counts,
) -> serde_json::Value {
    json!({
        "run": run,
        "organisation": organisation,
        "status": status,
        "rows": reports.iter().map(|r| json!({
            "line": r.line,
            "result": r.result.as_str(),
            "message": r.message,
        })).collect::<Vec<_>>(),
        "counts": counts,
    })
}

/// Lines of the human summary that need attention (refused, failed, held).
pub fn print_attention(reports: &[RowReport]) {
    for r in reports {
        if r.result.needs_attention() {
            println!("  line {}: {}: {}", r.line, r.result.as_str(), r.message);
        }
    }
}

/// The operator running a command, as the system names them (`USER`, else `LOGNAME`): a
/// revert's provenance and the record of who approved a held run.
pub fn operator() -> Option<String> {
    ["USER", "LOGNAME"]
        .into_iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|v| !v.trim().is_empty())
}
