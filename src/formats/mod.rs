//! Submission files: the bytes an administrator sent, turned into header-mapped rows.
//!
//! In: the raw bytes of a CSV/TXT file or an XLSX/XLS/ODS workbook. Out: a [`Submission`]
//! (layout, encoding, the rows as sent with their own line numbers, reader-level row issues
//! and file warnings), or a [`ReadError`] saying why the file as a whole cannot be used.
//! Nothing here judges cell values: that is `validate`'s job.

mod headers;
mod text;
mod workbook;

pub use headers::{Column, HeaderMap, Layout, header_key, layout_header, map_headers};
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
    pub cells: StringRecord,
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
    /// The position of the column that gives `field`, if the file has one.
    pub fn column_of(&self, field: Field) -> Option<usize> {
        self.columns.iter().position(|c| *c == Column::Field(field))
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
    #[error("the workbook cannot be opened: {0}")]
    Workbook(String),
    #[error("the file is {size} bytes, over the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
}

/// Reads a submission from its bytes, choosing the reader by content, not by file name.
pub fn read(bytes: &[u8]) -> Result<Submission, ReadError> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ReadError::Empty);
    }
    match workbook::sniff(bytes) {
        Some(kind) => workbook::read(bytes, kind),
        None => text::read(bytes),
    }
}

/// Maps the header cells, turning a failure into a [`ReadError`] at the header's line.
fn map_header_row(cells: &StringRecord, line: u64) -> Result<HeaderMap, ReadError> {
    let headers: Vec<&str> = cells.iter().collect();
    map_headers(&headers).map_err(|reason| ReadError::Headers { line, reason })
}

/// The first characters that make a spreadsheet run a cell as a formula (docs/formats.md).
pub const FORMULA_LEADERS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// A cell as written into a report: prefixed with `'` when a spreadsheet would run it.
pub fn neutralise(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(FORMULA_LEADERS) {
        std::borrow::Cow::Owned(format!("'{cell}"))
    } else {
        std::borrow::Cow::Borrowed(cell)
    }
}

/// Undoes [`neutralise`], so a result report sent back in reads as the original file.
pub fn unneutralise(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.starts_with(FORMULA_LEADERS) => rest,
        _ => cell,
    }
}
