//! Submission files: the bytes an administrator sent, turned into header-mapped rows.
//!
//! In: the raw bytes of a CSV/TXT file or an XLSX/XLS/ODS workbook. Out: a [`Submission`]
//! (layout, encoding, the rows as sent with their own line numbers, reader-level row issues
//! and file warnings), or a [`ReadError`] saying why the file as a whole cannot be used.
//! Nothing is expanded past the [`Limits`] (cells, header columns, decompressed bytes): a
//! workbook is checked part by part before the spreadsheet library opens it. Nothing here
//! judges cell values: that is `validate`'s job.

mod cells;
mod headers;
mod limits;
mod text;
mod workbook;
mod xls_scan;
mod zip_scan;

pub use cells::Cells;
pub use headers::{
    Column, HeaderMap, Layout, NEW_ACCOUNT_HEADER, header_key, layout_header, map_headers,
};
pub use limits::{Limit, Limits, MAX_AUXILIARY_PART_BYTES, grouped};
pub use text::TextEncoding;

use csv::StringRecord;
use serde::Serialize;

use crate::model::{Field, RowIssue};

/// How the file was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Container {
    /// Delimited text.
    Text {
        encoding: TextEncoding,
        delimiter: u8,
    },
    /// A spreadsheet workbook (first sheet used).
    Workbook(WorkbookKind),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkbookKind {
    Xlsx,
    Xls,
    Ods,
}

impl Container {
    /// How the contract (`validate --json`) names the encoding.
    pub fn encoding_label(&self) -> String {
        match self {
            Container::Text { encoding, .. } => encoding.label().to_owned(),
            Container::Workbook(kind) => format!("workbook ({kind:?})").to_lowercase(),
        }
    }
}

/// One data row as sent.
#[derive(Debug, Clone)]
pub struct RawRow {
    /// The file's own line number (for workbooks, the sheet's row number).
    pub line: u64,
    /// The cells as sent, decoded to text.
    pub cells: Cells,
    /// Problems found while reading (broken quotes, wrong cell count, spreadsheet errors).
    pub issues: Vec<RowIssue>,
}

/// A readable submission file.
#[derive(Debug, Clone)]
pub struct Submission {
    pub container: Container,
    pub layout: Layout,
    /// The name on an old-format `Connector,<name>` first line.
    pub connector: Option<String>,
    /// The header cells as sent.
    pub headers: StringRecord,
    pub columns: Vec<Column>,
    pub rows: Vec<RawRow>,
    /// File-level notes that do not stop the file (ignored columns).
    pub warnings: Vec<String>,
}

impl Submission {
    /// Rows a channel made itself (a sync's entries, a SCIM User) rather than read from a
    /// file: UTF-8 text in the new layout's terms.
    pub fn made(headers: StringRecord, columns: Vec<Column>, rows: Vec<RawRow>) -> Submission {
        Submission {
            container: Container::Text {
                encoding: TextEncoding::Utf8,
                delimiter: b',',
            },
            layout: Layout::New,
            connector: None,
            headers,
            columns,
            rows,
            warnings: Vec::new(),
        }
    }

    /// The position of the column that gives `field`, if the file has one.
    pub fn column_of(&self, field: Field) -> Option<usize> {
        self.columns.iter().position(|c| *c == Column::Field(field))
    }

    /// The position of the `NewAccount` column, if the file has one.
    pub fn new_account_column(&self) -> Option<usize> {
        self.columns.iter().position(|c| *c == Column::NewAccount)
    }

    /// For each field (by [`Field::index`]), the position of the column that gives it.
    pub fn field_columns(&self) -> [Option<usize>; Field::ALL.len()] {
        Field::ALL.map(|f| self.column_of(f))
    }

    /// The separator of values inside a multi-valued cell (`|` when the file is `;`-delimited).
    pub fn value_separator(&self) -> char {
        match self.container {
            Container::Text {
                delimiter: b';', ..
            } => '|',
            _ => ';',
        }
    }
}

/// Why a file as a whole cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("the file is empty")]
    Empty,
    #[error("the file has no header row")]
    NoHeader,
    #[error("the header row (line {line}) cannot be used: {reason}")]
    Headers { line: u64, reason: String },
    #[error("the file's encoding cannot be used: {0}")]
    Encoding(String),
    #[error("the workbook cannot be opened: {0}")]
    Workbook(String),
    #[error("the file is {size} bytes, over the limit of {limit} bytes (service.max_file_bytes)")]
    TooLarge { size: u64, limit: u64 },
    #[error(
        "the file holds more than {} {} ({}): it is refused as a whole",
        grouped(*max), limit.what(), limit.setting()
    )]
    Limit { limit: Limit, max: u64 },
    #[error("the workbook holds the cell reference \"{reference}\"{}, which is not a cell of a \
             spreadsheet (columns run from A to XFD, rows from 1 to 1,048,576): it is refused as a whole",
             if part.is_empty() { String::new() } else { format!(" in {part}") })]
    CellReference { reference: String, part: String },
}

/// Reads a submission from its bytes, choosing the reader by content, not by file name.
/// Nothing is expanded past `limits`: a file that would go over one is refused as a whole.
pub fn read(bytes: &[u8], limits: &Limits) -> Result<Submission, ReadError> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ReadError::Empty);
    }
    match workbook::sniff(bytes) {
        Some(kind) => workbook::read(bytes, kind, limits),
        None => text::read(bytes, limits),
    }
}

/// [`read`] of bytes the caller no longer needs: a UTF-8 text file becomes the submission's
/// text without a copy, so the file is not held twice while its rows are.
pub fn read_owned(bytes: Vec<u8>, limits: &Limits) -> Result<Submission, ReadError> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ReadError::Empty);
    }
    match workbook::sniff(&bytes) {
        Some(kind) => workbook::read(&bytes, kind, limits),
        None => text::read_owned(bytes, limits),
    }
}

/// Reads a submission file from disk: its size is checked first (metadata, then a read of at
/// most `max_bytes + 1` bytes), so a file over the limit is never loaded whole.
pub fn read_file_bounded(
    path: &std::path::Path,
    max_bytes: u64,
) -> std::io::Result<Result<Vec<u8>, ReadError>> {
    use std::io::Read as _;
    let file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    if size > max_bytes {
        return Ok(Err(ReadError::TooLarge {
            size,
            limit: max_bytes,
        }));
    }
    // The file may grow between the two calls: never read more than one byte past the limit.
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)?;
    let read = bytes.len() as u64;
    if read > max_bytes {
        return Ok(Err(ReadError::TooLarge {
            size: read,
            limit: max_bytes,
        }));
    }
    Ok(Ok(bytes))
}

/// Maps the header cells, turning a failure into a [`ReadError`] at the header's line.
fn map_header_row(
    cells: &StringRecord,
    line: u64,
    limits: &Limits,
) -> Result<HeaderMap, ReadError> {
    if cells.len() > limits.max_columns {
        return Err(ReadError::Limit {
            limit: Limit::Columns,
            max: limits.max_columns as u64,
        });
    }
    let headers: Vec<&str> = cells.iter().collect();
    map_headers(&headers).map_err(|reason| ReadError::Headers { line, reason })
}

/// The first characters that make a spreadsheet run a cell as a formula (docs/formats.md).
pub const FORMULA_LEADERS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// Would a spreadsheet run this cell? Its first character that is not a space (tab and CR
/// count as characters here, they are leaders themselves) is a formula leader.
pub fn is_formula_like(cell: &str) -> bool {
    cell.trim_start_matches(|c: char| c.is_whitespace() && c != '\t' && c != '\r')
        .starts_with(FORMULA_LEADERS)
}

/// A cell as written into a report: prefixed with `'` when a spreadsheet would run it.
pub fn neutralise(cell: &str) -> std::borrow::Cow<'_, str> {
    if is_formula_like(cell) {
        std::borrow::Cow::Owned(format!("'{cell}"))
    } else {
        std::borrow::Cow::Borrowed(cell)
    }
}

/// Undoes [`neutralise`], so a result report sent back in reads as the original file.
pub fn unneutralise(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if is_formula_like(rest) => rest,
        _ => cell,
    }
}
