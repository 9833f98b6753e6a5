//! `validate FILE`: read and validate a submission, print a summary or the JSON contract.
//!
//! JSON (one object on stdout): `{"format":"new"|"old"|null,"encoding":"…","rows":[{"line":N,
//! "status":"valid"|"refused","issues":[{"column","value","message"}]}],"file_issues":[{"message"}]}`.
//! Exit 0 when every row is valid, 1 when some are refused, 2 when the file is rejected.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use serde_json::json;

use push_connector::config::Config;
use push_connector::deployment;
use push_connector::formats::{self, Container, Layout};
use push_connector::report;
use push_connector::validate;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The submission file (CSV/TXT, XLSX, XLS or ODS).
    pub file: PathBuf,
    /// Print one JSON object instead of the summary.
    #[arg(long)]
    pub json: bool,
    /// Also write the refused rows, as sent plus Result and Message, to this CSV file.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

pub fn run(config: &Config, args: Args) -> anyhow::Result<ExitCode> {
    // The same rules as every other door: with a SCIM directory, its code lists too.
    let rules = super::common::runtime()?.block_on(deployment::rules(config, None))?;
    // The size is checked before the file is read, and the read stops past the limit.
    let read = formats::read_file_bounded(&args.file, config.service.max_file_bytes as u64)
        .with_context(|| format!("reading {}", args.file.display()))?
        .and_then(|bytes| formats::read_owned(bytes, &rules.limits));
    let sub = match read {
        Ok(sub) => sub,
        Err(err) => {
            if args.json {
                let out = json!({
                    "format": null,
                    "encoding": null,
                    "rows": [],
                    "file_issues": [{"message": err.to_string()}],
                });
                println!("{out}");
            } else {
                println!("{}: rejected: {err}", args.file.display());
            }
            return Ok(ExitCode::from(2));
        }
    };
    let results = validate::validate(&sub, &rules);
    let counts = validate::counts(&results);

    if let Some(path) = &args.report {
        let file =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        report::write_report(
            std::io::BufWriter::new(file),
            &sub,
            &report::validation_rows(&results),
            report::ReportRows::Reported,
        )
        .with_context(|| format!("writing {}", path.display()))?;
    }

    let format = match sub.layout {
        Layout::New => "new",
        Layout::Old => "old",
    };
    if args.json {
        // Written row by row: the output of a large file is never held as one JSON tree.
        // Keys come in the order serde_json sorts them, as a whole object would have them.
        let file_issues: Vec<_> = sub.warnings.iter().map(|w| json!({"message": w})).collect();
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        write!(
            out,
            "{{\"encoding\":{},\"file_issues\":{},\"format\":{},\"rows\":[",
            json!(sub.container.encoding_label()),
            json!(file_issues),
            json!(format)
        )?;
        for (i, r) in results.iter().enumerate() {
            if i > 0 {
                out.write_all(b",")?;
            }
            let row = json!({
                "line": r.line,
                "status": if r.is_valid() { "valid" } else { "refused" },
                "issues": r.issues().iter().map(|i| json!({
                    "column": i.column, "value": i.value, "message": i.message,
                })).collect::<Vec<_>>(),
            });
            serde_json::to_writer(&mut out, &row)?;
        }
        out.write_all(b"]}\n")?;
        out.flush()?;
    } else {
        let container = match sub.container {
            Container::Text { delimiter, .. } => format!(
                "{}, {}-delimited",
                sub.container.encoding_label(),
                match delimiter {
                    b'\t' => "tab",
                    b';' => "semicolon",
                    _ => "comma",
                }
            ),
            Container::Workbook(_) => sub.container.encoding_label(),
        };
        println!("{}: {format} format, {container}", args.file.display());
        if let Some(name) = &sub.connector {
            println!("  connector: {name}");
        }
        println!(
            "  {} rows: {} valid, {} refused",
            results.len(),
            counts.valid,
            counts.refused
        );
        for warning in &sub.warnings {
            println!("  note: {warning}");
        }
        let mut by_line: BTreeMap<u64, Vec<String>> = BTreeMap::new();
        for r in &results {
            for i in r.issues() {
                by_line
                    .entry(r.line)
                    .or_default()
                    .push(report::describe_issues(std::slice::from_ref(i)));
            }
        }
        for (line, issues) in by_line {
            println!("  line {line}:");
            for issue in issues {
                println!("    - {issue}");
            }
        }
    }
    Ok(ExitCode::from(if counts.refused > 0 { 1 } else { 0 }))
}
