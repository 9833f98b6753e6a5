//! Result reports: the rows as sent, in the same column order, plus `Result` and `Message`.
//!
//! In: a [`Submission`] and one [`RowReport`] per data line. Out: CSV bytes (UTF-8 with BOM and
//! CRLF, so Excel opens it as the administrator's own file). Cells a spreadsheet would run as
//! formulas are prefixed with `'`; the readers undo that, so a report with the two extra columns
//! removed can be sent again as it is.

pub mod mistakes;

use std::collections::HashMap;
use std::io::Write;

use serde::{Deserialize, Serialize};

use crate::formats::{Submission, neutralise};

/// The outcome of one row, as the report's `Result` column says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RowResultKind {
    Created,
    Updated,
    Unchanged,
    Rejected,
    Superseded,
    Held,
    Failed,
}

impl RowResultKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RowResultKind::Created => "Created",
            RowResultKind::Updated => "Updated",
            RowResultKind::Unchanged => "Unchanged",
            RowResultKind::Rejected => "Rejected",
            RowResultKind::Superseded => "Superseded",
            RowResultKind::Held => "Held",
            RowResultKind::Failed => "Failed",
        }
    }

    /// Whether the row went through: the directory now holds what it says.
    pub fn is_done(self) -> bool {
        matches!(
            self,
            RowResultKind::Created | RowResultKind::Updated | RowResultKind::Unchanged
        )
    }

    /// Whether an administrator must act on the row (refused, failed or held).
    pub fn needs_attention(self) -> bool {
        matches!(
            self,
            RowResultKind::Rejected | RowResultKind::Failed | RowResultKind::Held
        )
    }
}

/// What the report says about one line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowReport {
    pub line: u64,
    pub result: RowResultKind,
    pub message: String,
}

/// Which rows of the file a report holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportRows {
    /// Every data row; a row without a [`RowReport`] gets `Failed`, so none goes unanswered.
    All,
    /// Only the rows that have a [`RowReport`] (the refused lines of an acknowledgement).
    Reported,
}

/// Writes the report: header and rows as sent, plus `Result` and `Message`.
/// As [`write_report`] into memory, but leaving out the rows that would take the report past
/// `budget` bytes (an e-mail must stay within what relays accept). Returns the report and how
/// many of its rows it holds.
pub fn write_report_within(
    sub: &Submission,
    results: &[RowReport],
    rows: ReportRows,
    budget: usize,
) -> Result<(Vec<u8>, usize), csv::Error> {
    let by_line: HashMap<u64, &RowReport> = results.iter().map(|r| (r.line, r)).collect();
    let mut out = b"\xEF\xBB\xBF".to_vec();
    out.extend(csv_line(&header_record(sub))?);
    let mut held = 0;
    for row in &sub.rows {
        let Some(record) = report_record(sub, row, &by_line, rows) else {
            continue;
        };
        let line = csv_line(&record)?;
        if out.len() + line.len() > budget {
            // A row too large for what is left is left out; smaller ones may still fit.
            continue;
        }
        out.extend_from_slice(&line);
        held += 1;
    }
    Ok((out, held))
}

pub fn write_report<W: Write>(
    out: W,
    sub: &Submission,
    results: &[RowReport],
    rows: ReportRows,
) -> Result<(), csv::Error> {
    let by_line: HashMap<u64, &RowReport> = results.iter().map(|r| (r.line, r)).collect();
    let mut out = out;
    out.write_all(b"\xEF\xBB\xBF")?;
    let mut writer = csv_writer(out);
    writer.write_record(header_record(sub))?;
    for row in &sub.rows {
        if let Some(record) = report_record(sub, row, &by_line, rows) {
            writer.write_record(&record)?;
        }
    }
    writer.flush()?;
    Ok(())
}

fn csv_writer<W: Write>(out: W) -> csv::Writer<W> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .flexible(true)
        .from_writer(out)
}

/// One record as CSV bytes.
fn csv_line(record: &[String]) -> Result<Vec<u8>, csv::Error> {
    let mut writer = csv_writer(Vec::new());
    writer.write_record(record)?;
    writer.into_inner().map_err(|e| e.into_error().into())
}

/// The file's header, neutralised, plus `Result` and `Message`.
fn header_record(sub: &Submission) -> Vec<String> {
    let mut header: Vec<String> = sub
        .headers
        .iter()
        .map(|h| neutralise(h).into_owned())
        .collect();
    header.extend(["Result".to_owned(), "Message".to_owned()]);
    header
}

/// A row as sent, neutralised, plus its result and message; `None` for a row the report
/// leaves out (no result, with [`ReportRows::Reported`]).
fn report_record(
    sub: &Submission,
    row: &crate::formats::RawRow,
    by_line: &HashMap<u64, &RowReport>,
    rows: ReportRows,
) -> Option<Vec<String>> {
    let mut record: Vec<String> = (0..sub.headers.len())
        .map(|i| neutralise(row.cells.get(i).unwrap_or_default()).into_owned())
        .collect();
    match by_line.get(&row.line) {
        Some(r) => {
            record.push(r.result.as_str().to_owned());
            record.push(neutralise(&r.message).into_owned());
        }
        None if rows == ReportRows::Reported => return None,
        None => {
            record.push(RowResultKind::Failed.as_str().to_owned());
            record.push("no result was recorded for this line".to_owned());
        }
    }
    Some(record)
}

/// The refused rows of a validation, as `Rejected` with their reasons.
pub fn validation_rows(results: &[crate::validate::RowResult]) -> Vec<RowReport> {
    results
        .iter()
        .filter(|r| !r.is_valid())
        .map(|r| RowReport {
            line: r.line,
            result: RowResultKind::Rejected,
            message: describe_issues(r.issues()),
        })
        .collect()
}

pub use crate::model::shown;

/// Issues of one row in one sentence each: `Column "value": reason`.
pub fn describe_issues(issues: &[crate::model::RowIssue]) -> String {
    issues
        .iter()
        .map(|i| match (i.column.is_empty(), i.value.is_empty()) {
            (true, _) => i.message.clone(),
            (false, true) => format!("{} {}", i.column, i.message),
            (false, false) => format!("{} \"{}\" {}", i.column, shown(&i.value), i.message),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quoted_value_stays_on_one_line() {
        assert_eq!(shown("plain"), "plain");
        assert_eq!(shown("a\nb\r\tc\u{7}"), "a\\nb\\r\\tcU+0007");
    }
    use crate::formats;

    #[test]
    fn report_keeps_rows_as_sent_and_neutralises_formulas() {
        let sub = formats::read(
            b"ExternalSyncID,FirstName,LastName,Organisation,Notes\n1,Ann,Lee,RXX,=cmd|x\n2,Bo,Ng,RXX,+44\n",
            &formats::Limits::default(),
        )
        .unwrap();
        let mut out = Vec::new();
        write_report(
            &mut out,
            &sub,
            &[RowReport {
                line: 2,
                result: RowResultKind::Rejected,
                message: "-bad".to_owned(),
            }],
            ReportRows::All,
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.trim_start_matches('\u{feff}').split("\r\n").collect();
        assert_eq!(
            lines[0],
            "ExternalSyncID,FirstName,LastName,Organisation,Notes,Result,Message"
        );
        assert_eq!(lines[1], "1,Ann,Lee,RXX,'=cmd|x,Rejected,'-bad");
        assert_eq!(
            lines[2],
            "2,Bo,Ng,RXX,'+44,Failed,no result was recorded for this line"
        );
    }
}
