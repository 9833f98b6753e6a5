//! Spreadsheet workbooks (XLSX, XLS, ODS): the first sheet, its first non-empty row as header.
//!
//! In: bytes. Out: a [`Submission`] whose cells are text. Numbers Excel stored as numbers come
//! back as their exact digits (never `1.23E+11`); a number too large to have kept every digit is
//! a row issue, not a silently wrong ID.

use std::collections::BTreeMap;
use std::io::Cursor;

use calamine::{Data, Ods, Range, Reader, Xls, Xlsx};
use csv::StringRecord;

use super::limits::{Limit, Limits};
use super::{
    Cells, Container, RawRow, ReadError, Submission, WorkbookKind, map_header_row, xls_scan,
    zip_scan,
};
use crate::model::RowIssue;

/// Largest integer an IEEE double holds exactly (2^53).
const EXACT_INTEGER_LIMIT: f64 = 9_007_199_254_740_992.0;

/// Recognises a workbook by its first bytes (ZIP for XLSX/ODS, OLE for XLS).
pub fn sniff(bytes: &[u8]) -> Option<WorkbookKind> {
    if bytes.starts_with(b"PK\x03\x04") {
        let head = &bytes[..bytes.len().min(4096)];
        let is_ods =
            memchr::memmem::find(head, b"application/vnd.oasis.opendocument.spreadsheet").is_some();
        Some(if is_ods {
            WorkbookKind::Ods
        } else {
            WorkbookKind::Xlsx
        })
    } else if bytes.starts_with(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]) {
        Some(WorkbookKind::Xls)
    } else {
        None
    }
}

/// A cell as text, or the reason its value cannot be trusted.
fn cell_text(cell: &Data) -> (String, Option<String>) {
    match cell {
        Data::Empty => (String::new(), None),
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => (s.clone(), None),
        Data::Int(i) => (i.to_string(), None),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < EXACT_INTEGER_LIMIT => {
            (format!("{}", *f as i64), None)
        }
        Data::Float(f) if f.fract() == 0.0 => (
            format!("{f}"),
            Some(
                "the spreadsheet stored this as a number too large to keep every digit; \
                 format the column as Text and send the file again"
                    .to_owned(),
            ),
        ),
        Data::Float(f) => (format!("{f}"), None),
        Data::Bool(b) => ((if *b { "TRUE" } else { "FALSE" }).to_owned(), None),
        Data::DateTime(d) => match d.as_datetime() {
            // A date as a date; a time only when the cell has one.
            Some(dt) if dt.time() == chrono::NaiveTime::MIN => {
                (dt.format("%Y-%m-%d").to_string(), None)
            }
            Some(dt) if dt.format("%S").to_string() == "00" => {
                (dt.format("%Y-%m-%d %H:%M").to_string(), None)
            }
            Some(dt) => (dt.format("%Y-%m-%d %H:%M:%S").to_string(), None),
            None => (d.as_f64().to_string(), None),
        },
        Data::Error(e) => (
            format!("#{e:?}"),
            Some(format!("the cell holds a spreadsheet error ({e})")),
        ),
    }
}

/// The first sheet's non-empty rows: (0-based row index, cells from column A up to the row's
/// last value).
type SheetRows = Vec<(u32, Vec<Data>)>;

/// Reads a workbook. The file is checked against the limits before the spreadsheet library
/// sees it (decompressed sizes, cell references, the cells the library would lay out), so
/// nothing is expanded past them. A panic inside the library (a damaged file can trigger one)
/// is contained here and reported as a damaged workbook: no file may stop the service.
pub fn read(bytes: &[u8], kind: WorkbookKind, limits: &Limits) -> Result<Submission, ReadError> {
    match kind {
        WorkbookKind::Xlsx | WorkbookKind::Ods => zip_scan::check(bytes, limits)?,
        WorkbookKind::Xls => xls_scan::check(bytes, limits)?,
    }
    let damaged = || {
        ReadError::Workbook(
            "the workbook is damaged: open it in the spreadsheet program and save it again"
                .to_owned(),
        )
    };
    let rows = contained(|| match kind {
        WorkbookKind::Xlsx => xlsx_rows(bytes, limits),
        WorkbookKind::Xls => range_rows(first_range::<Xls<_>>(bytes)?, limits),
        WorkbookKind::Ods => range_rows(first_range::<Ods<_>>(bytes)?, limits),
    })
    .ok_or_else(damaged)??;
    submission(rows, kind, limits)
}

thread_local! {
    /// Set while the spreadsheet library runs on this thread: a panic there is contained.
    static CONTAINED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f`, containing a panic of the spreadsheet library: `None` when it panicked. The
/// panic prints nothing (it is the file's fault, and reported as such); a panic anywhere else
/// is printed as before.
fn contained<T>(f: impl FnOnce() -> T + std::panic::UnwindSafe) -> Option<T> {
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if CONTAINED.with(std::cell::Cell::get) {
                tracing::debug!(panic = %info, "the spreadsheet library panicked on a damaged file");
            } else {
                previous(info);
            }
        }));
    });
    CONTAINED.with(|c| c.set(true));
    let out = std::panic::catch_unwind(f);
    CONTAINED.with(|c| c.set(false));
    out.ok()
}

/// Counts the cells rows hold (up to each row's last value) against the limit.
struct CellBudget {
    left: u64,
    max: u64,
}

impl CellBudget {
    fn new(limits: &Limits) -> Self {
        CellBudget {
            left: limits.max_cells,
            max: limits.max_cells,
        }
    }

    fn take(&mut self, n: u64) -> Result<(), ReadError> {
        self.left = self.left.checked_sub(n).ok_or(ReadError::Limit {
            limit: Limit::Cells,
            max: self.max,
        })?;
        Ok(())
    }
}

/// XLSX cells streamed one by one and kept sparse: a cell at row 1,000,000 of column XFD
/// costs one entry, not a dense sheet of billions of empty cells. Each row holds its cells up
/// to its last value; those count against the cell limit.
fn xlsx_rows(bytes: &[u8], limits: &Limits) -> Result<SheetRows, ReadError> {
    let bad = |e: calamine::XlsxError| ReadError::Workbook(e.to_string());
    let mut book: Xlsx<_> = Xlsx::new(Cursor::new(bytes)).map_err(bad)?;
    let name = book
        .sheet_names()
        .first()
        .cloned()
        .ok_or_else(|| ReadError::Workbook("it has no sheet".to_owned()))?;
    let mut reader = book.worksheet_cells_reader(&name).map_err(bad)?;
    let mut rows: BTreeMap<u32, Vec<Data>> = BTreeMap::new();
    let mut budget = CellBudget::new(limits);
    let max_columns = u32::try_from(limits.max_columns).unwrap_or(u32::MAX);
    while let Some(cell) = reader.next_cell().map_err(bad)? {
        let (row, col) = cell.get_position();
        if col >= max_columns {
            continue;
        }
        let value = Data::from(cell.get_value().clone());
        if value == Data::Empty {
            continue;
        }
        let cells = rows.entry(row).or_default();
        if cells.len() <= col as usize {
            budget.take(u64::from(col) + 1 - cells.len() as u64)?;
            cells.resize(col as usize + 1, Data::Empty);
        }
        cells[col as usize] = value;
    }
    Ok(rows.into_iter().collect())
}

/// XLS and ODS through the library's dense range (its size checked before it is built).
/// The first sheet through the reader of the kind the file was recognised as (never another
/// reader the file happens to open with).
fn first_range<'a, R>(bytes: &'a [u8]) -> Result<Range<Data>, ReadError>
where
    R: Reader<Cursor<&'a [u8]>>,
    R::Error: std::fmt::Display,
{
    let mut workbook =
        R::new(Cursor::new(bytes)).map_err(|e| ReadError::Workbook(e.to_string()))?;
    workbook
        .worksheet_range_at(0)
        .ok_or_else(|| ReadError::Workbook("it has no sheet".to_owned()))?
        .map_err(|e| ReadError::Workbook(e.to_string()))
}

fn range_rows(range: Range<Data>, limits: &Limits) -> Result<SheetRows, ReadError> {
    let Some((first_row, first_col)) = range.start() else {
        return Ok(Vec::new());
    };
    // Rows start at column A, so column letters in messages match the sheet.
    let max_columns = u32::try_from(limits.max_columns).unwrap_or(u32::MAX);
    let pad = first_col.min(max_columns) as usize;
    let mut budget = CellBudget::new(limits);
    let mut out = Vec::new();
    for (i, cells) in range.rows().enumerate() {
        let width = cells
            .iter()
            .take(limits.max_columns.saturating_sub(pad))
            .rposition(|c| *c != Data::Empty)
            .map_or(0, |p| p + 1);
        if width == 0 {
            continue;
        }
        budget.take((pad + width) as u64)?;
        let mut row = vec![Data::Empty; pad];
        row.extend(cells[..width].iter().cloned());
        out.push((first_row + i as u32, row));
    }
    Ok(out)
}

/// Rows tried as the header before the file is refused: a title, a date or a note may sit
/// above it.
const HEADER_SEARCH_ROWS: usize = 10;

/// A number with a fraction in an ID column: no ID has one, so Excel has damaged it (a
/// typed ID read as a number, a formula, a fill-down).
fn fraction_in_id(cell: &Data, column: Option<&super::headers::Column>) -> Option<String> {
    use crate::model::Field;
    let Data::Float(f) = cell else { return None };
    let is_id = matches!(
        column,
        Some(super::headers::Column::Field(
            Field::Id | Field::ExternalSyncId
        ))
    );
    (is_id && f.fract() != 0.0).then(|| {
        "is a number with a fraction, which no ID has: the spreadsheet has changed it (an ID \
         typed into a number cell, a formula or a fill-down); format the column as Text, type \
         the ID again and send the file again"
            .to_owned()
    })
}

fn submission(
    rows: SheetRows,
    kind: WorkbookKind,
    limits: &Limits,
) -> Result<Submission, ReadError> {
    let mut header: Option<(StringRecord, super::HeaderMap)> = None;
    // Rows above the header that could not be one: the first one's error, their lines.
    let mut not_header: Option<ReadError> = None;
    let mut above: Vec<(u64, String)> = Vec::new();
    let mut out = Vec::new();
    for (index, cells) in rows {
        let line = u64::from(index) + 1;
        if cells.iter().all(|c| match c {
            Data::Empty => true,
            Data::String(s) => s.trim().is_empty(),
            _ => false,
        }) {
            continue;
        }
        let mut record = StringRecord::with_capacity(64, cells.len());
        let mut issues = Vec::new();
        for (col, cell) in cells.iter().enumerate() {
            let (text, problem) = cell_text(cell);
            let problem = problem.or_else(|| {
                header
                    .as_ref()
                    .and_then(|(_, map)| fraction_in_id(cell, map.columns.get(col)))
            });
            if let (Some(message), Some((headers, _))) = (problem, &header) {
                issues.push(RowIssue {
                    line,
                    column: headers.get(col).unwrap_or_default().to_owned(),
                    value: text.clone(),
                    message,
                });
            }
            record.push_field(&text);
        }
        match &header {
            None => {
                // Trailing empty header cells are the sheet's used range, not columns.
                let width = (0..record.len())
                    .rev()
                    .find(|&i| !record[i].trim().is_empty())
                    .map_or(0, |i| i + 1);
                record.truncate(width);
                match map_header_row(&record, line, limits) {
                    Ok(mut map) => {
                        if let Some(&(first, _)) = above.first() {
                            map.warnings.push(format!(
                                "the header is on line {line}; line(s) {first} to {} above it \
                                 were read as a title and skipped",
                                line - 1
                            ));
                        }
                        header = Some((record, map));
                    }
                    Err(e @ ReadError::Limit { .. }) => return Err(e),
                    Err(e) => {
                        let found: Vec<String> = record
                            .iter()
                            .filter(|c| !c.trim().is_empty())
                            .take(3)
                            .map(|c| format!("\"{}\"", crate::model::shown(c)))
                            .collect();
                        above.push((line, found.join(", ")));
                        not_header.get_or_insert(e);
                        if above.len() >= HEADER_SEARCH_ROWS {
                            break;
                        }
                    }
                }
            }
            Some((headers, _)) => {
                let extra = record.iter().skip(headers.len()).any(|c| !c.is_empty());
                if extra {
                    issues.push(RowIssue {
                        line,
                        column: String::new(),
                        value: String::new(),
                        message: format!(
                            "the row has values beyond the {} columns of the header",
                            headers.len()
                        ),
                    });
                }
                // Sparse rows may end early: a missing cell reads as blank, and costs nothing.
                record.truncate(headers.len());
                out.push(RawRow {
                    line,
                    cells: Cells::from(&record),
                    issues,
                });
            }
        }
    }
    let Some((headers, map)) = header else {
        return Err(no_header_found(not_header, &above));
    };
    Ok(Submission {
        container: Container::Workbook(kind),
        layout: map.layout,
        connector: None,
        headers,
        columns: map.columns,
        rows: out,
        warnings: map.warnings,
    })
}

/// No row of the first ones is a header: the first row's reason, and what each row holds.
fn no_header_found(first: Option<ReadError>, tried: &[(u64, String)]) -> ReadError {
    let Some(ReadError::Headers { line, reason }) = first else {
        return first.unwrap_or(ReadError::NoHeader);
    };
    let found: Vec<String> = tried
        .iter()
        .map(|(line, cells)| format!("line {line}: {cells}"))
        .collect();
    ReadError::Headers {
        line,
        reason: format!(
            "{reason}. No row of the first {} could be the header; they hold {}",
            tried.len(),
            found.join("; ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_of_the_library_is_contained_and_the_flag_cleared() {
        assert_eq!(contained(|| 7), Some(7));
        let panicked: Option<()> = contained(|| panic!("a damaged file"));
        assert_eq!(panicked, None);
        assert!(
            !CONTAINED.with(std::cell::Cell::get),
            "cleared after a panic"
        );
        // Outside `contained`, a panic still unwinds to its own catcher.
        assert!(std::panic::catch_unwind(|| panic!("elsewhere")).is_err());
    }

    #[test]
    fn numbers_come_back_as_exact_digits() {
        assert_eq!(cell_text(&Data::Float(123456789012.0)).0, "123456789012");
        assert_eq!(cell_text(&Data::Float(7911123456.0)).0, "7911123456");
        assert_eq!(cell_text(&Data::Int(42)).0, "42");
        assert_eq!(cell_text(&Data::Float(1.5)).0, "1.5");
        let (text, problem) = cell_text(&Data::Float(1.234_567_890_123_456_8e20));
        assert!(!text.contains('e') && !text.contains('E'), "{text}");
        assert!(problem.expect("lossy").contains("too large"));
    }

    #[test]
    fn sniffs_containers() {
        assert_eq!(sniff(b"PK\x03\x04rest"), Some(WorkbookKind::Xlsx));
        assert_eq!(
            sniff(b"PK\x03\x04....mimetypeapplication/vnd.oasis.opendocument.spreadsheetPK"),
            Some(WorkbookKind::Ods)
        );
        assert_eq!(
            sniff(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1, 0]),
            Some(WorkbookKind::Xls)
        );
        assert_eq!(sniff(b"ExternalSyncID,FirstName"), None);
    }
}
