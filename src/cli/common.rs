//! What the run verbs share: opening the directory and state, reading a submission, choosing
//! its organisation, the run ID and clock, the progress bar, printing results.
//!
//! In: the configuration and a verb's arguments. Out: ready backends and the JSON contract
//! `{"run","organisation","status","rows":[{"line","result","message"}],"counts"}`.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use push_connector::config::Config;
use push_connector::directory::any::AnyDirectory;
use push_connector::formats::{self, Submission};
use push_connector::model::OdsCode;
use push_connector::plan::Counts;
use push_connector::report::RowReport;
use push_connector::store::StateDb;
use push_connector::validate::{self, RowOutcome, RowResult, Rules};

/// The backends of a deployment.
pub struct Backends {
    pub directory: AnyDirectory,
    pub state: StateDb,
}

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

pub async fn open(config: &Config) -> anyhow::Result<Backends> {
    let directory = AnyDirectory::open(&config.directory)
        .await
        .with_context(|| match config.directory.backend {
            push_connector::config::DirectoryBackend::Local => {
                format!("opening the directory {}", config.directory.path.display())
            }
            push_connector::config::DirectoryBackend::Scim => format!(
                "connecting to the SCIM directory {}",
                config.directory.url.as_deref().unwrap_or_default()
            ),
        })?;
    let state = StateDb::open(&config.service.state_dir)
        .await
        .with_context(|| {
            format!(
                "opening the state database in {}",
                config.service.state_dir.display()
            )
        })?;
    Ok(Backends { directory, state })
}

/// The password file of new accounts (mode 0600).
pub fn password_file(config: &Config) -> std::path::PathBuf {
    config.service.state_dir.join("initial-passwords.csv")
}

/// A new run's ID: time (passed in) and a random suffix, so IDs sort by time.
pub fn run_id(now: DateTime<Utc>) -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{}-{}", now.format("%Y%m%d-%H%M%S"), &random[..6])
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

/// The validation rules: the configured code lists, and with a SCIM directory the lists
/// the configuration leaves unset from the portal's canonicalValues.
pub async fn rules(config: &Config) -> anyhow::Result<Rules> {
    let mut rules = Rules::from_config(config).context("reading the code lists")?;
    if config.directory.backend == push_connector::config::DirectoryBackend::Scim {
        let published = push_connector::directory::scim::ScimDirectory::open(&config.directory)
            .await
            .map(|d| d.capabilities().codes.clone())
            .context("reading the SCIM directory's schemas")?;
        push_connector::scim::schema::fill_rules(&mut rules, &config.validation, &published);
    }
    Ok(rules)
}

pub fn read_and_validate(config: &Config, file: &Path) -> anyhow::Result<Validated> {
    let rules = runtime()?.block_on(rules(config))?;
    // The size is checked before the file is read, and the read stops past the limit.
    let submission = formats::read_file_bounded(file, config.service.max_file_bytes as u64)
        .with_context(|| format!("reading {}", file.display()))?
        .and_then(|bytes| formats::read(&bytes, &rules.limits))
        .with_context(|| format!("{} is rejected", file.display()))?;
    let results = validate::validate(&submission, &rules);
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
            RowOutcome::Valid(p) => Some(p.organisation.to_string()),
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

/// The one log line of a run: organisation and counts, no personal data.
pub fn log_run(run: &str, organisation: &str, status: &str, c: &Counts) {
    tracing::info!(
        run,
        organisation,
        status,
        created = c.created,
        updated = c.updated,
        unchanged = c.unchanged,
        rejected = c.rejected,
        failed = c.failed,
        "run"
    );
}
