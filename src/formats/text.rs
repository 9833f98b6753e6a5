//! Delimited text: encoding detection, delimiter detection and an RFC 4180 reader that
//! survives broken quotes.
//!
//! In: bytes. Out: a [`Submission`] whose line numbers are the file's own. A quote that never
//! closes is an issue of the line it opened on; reading starts again on the next line, so no
//! later row is swallowed.

use std::borrow::Cow;

use csv::StringRecord;
use encoding_rs::{UTF_16BE, UTF_16LE, WINDOWS_1252};
use serde::Serialize;

use super::{Container, RawRow, ReadError, Submission, map_header_row};
use crate::model::RowIssue;

/// The character encoding a text file was read with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TextEncoding {
    Utf8,
    Utf8Bom,
    Utf16Le,
    Utf16Be,
    Windows1252,
}

impl TextEncoding {
    pub fn label(self) -> &'static str {
        match self {
            TextEncoding::Utf8 => "UTF-8",
            TextEncoding::Utf8Bom => "UTF-8 with BOM",
            TextEncoding::Utf16Le => "UTF-16LE",
            TextEncoding::Utf16Be => "UTF-16BE",
            TextEncoding::Windows1252 => "windows-1252",
        }
    }
}

/// Decodes the bytes: a BOM decides; otherwise UTF-8 if valid, else Windows-1252.
pub fn decode(bytes: &[u8]) -> (Cow<'_, str>, TextEncoding) {
    if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        return match std::str::from_utf8(rest) {
            Ok(s) => (Cow::Borrowed(s), TextEncoding::Utf8Bom),
            Err(_) => (String::from_utf8_lossy(rest), TextEncoding::Utf8Bom),
        };
    }
    if let Some(rest) = bytes.strip_prefix(b"\xFF\xFE") {
        let (text, _) = UTF_16LE.decode_without_bom_handling(rest);
        return (Cow::Owned(text.into_owned()), TextEncoding::Utf16Le);
    }
    if let Some(rest) = bytes.strip_prefix(b"\xFE\xFF") {
        let (text, _) = UTF_16BE.decode_without_bom_handling(rest);
        return (Cow::Owned(text.into_owned()), TextEncoding::Utf16Be);
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => (Cow::Borrowed(s), TextEncoding::Utf8),
        Err(_) => {
            let (text, _) = WINDOWS_1252.decode_without_bom_handling(bytes);
            (Cow::Owned(text.into_owned()), TextEncoding::Windows1252)
        }
    }
}

/// Comma, unless the header line only splits on tab or `;`.
fn detect_delimiter(header_line: &str) -> u8 {
    if header_line.contains(',') {
        b','
    } else if header_line.contains('\t') {
        b'\t'
    } else if header_line.contains(';') {
        b';'
    } else {
        b','
    }
}

/// The text lines, each with its byte offset.
fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut offset = 0;
    text.split_inclusive('\n').map(move |line| {
        let start = offset;
        offset += line.len();
        (start, line.trim_end_matches(['\n', '\r']))
    })
}

/// `Connector,<name>` (with any accepted delimiter) as the first line of an old-format file.
fn connector_line(line: &str) -> Option<String> {
    let mut parts = line.splitn(2, [',', ';', '\t']);
    let first = parts.next()?.trim().trim_matches('"');
    let name = parts.next()?.trim().trim_matches(['"', ',', ';', '\t']);
    (first.eq_ignore_ascii_case("connector") && !name.is_empty()).then(|| name.to_owned())
}

pub fn read(bytes: &[u8]) -> Result<Submission, ReadError> {
    let (text, encoding) = decode(bytes);
    let mut content = lines(&text).filter(|(_, l)| !l.trim().is_empty());
    let (mut header_at, mut header_line) = content.next().ok_or(ReadError::Empty)?;
    let connector = connector_line(header_line);
    if connector.is_some() {
        (header_at, header_line) = content.next().ok_or(ReadError::NoHeader)?;
    }
    let delimiter = detect_delimiter(header_line);

    let mut records = Records::new(&text, delimiter, header_at);
    let (header_no, header) = match records.next() {
        Some(Ok(header)) => header,
        _ => return Err(ReadError::NoHeader),
    };
    let map = map_header_row(&header, header_no)?;
    records.width = header.len();

    let mut rows = Vec::new();
    for item in records {
        match item {
            Ok((line, cells)) => {
                if cells.iter().all(|c| c.trim().is_empty()) {
                    continue;
                }
                let mut issues = Vec::new();
                if cells.len() != header.len() {
                    issues.push(RowIssue {
                        line,
                        column: String::new(),
                        value: String::new(),
                        message: format!(
                            "the row has {} cells but the header has {}",
                            cells.len(),
                            header.len()
                        ),
                    });
                }
                rows.push(RawRow {
                    line,
                    cells,
                    issues,
                });
            }
            Err(issue) => rows.push(RawRow {
                line: issue.line,
                cells: StringRecord::new(),
                issues: vec![issue],
            }),
        }
    }
    Ok(Submission {
        container: Container::Text {
            encoding,
            delimiter,
        },
        layout: map.layout,
        connector,
        headers: header,
        columns: map.columns,
        rows,
        warnings: map.warnings,
    })
}

/// Records of a delimited text with their file line numbers; a record that a broken quote
/// ran across several rows is returned as an issue and reading resumes on its next line.
///
/// Line numbers are counted here from byte offsets: the csv reader's own record positions
/// point at the previous record's terminator, not at the record.
struct Records<'a> {
    /// The whole decoded file.
    text: &'a str,
    delimiter: u8,
    /// Byte offset in `text` where the current reader started.
    base: usize,
    reader: csv::Reader<&'a [u8]>,
    /// Cells per row expected (the header's width); 0 until the header is read.
    width: usize,
    record: StringRecord,
    /// A byte offset already counted, and the line number it is on.
    cursor: usize,
    cursor_line: u64,
}

impl<'a> Records<'a> {
    fn new(text: &'a str, delimiter: u8, start: usize) -> Self {
        Records {
            text,
            delimiter,
            base: start,
            reader: Self::reader(&text.as_bytes()[start..], delimiter),
            width: 0,
            record: StringRecord::new(),
            cursor: 0,
            cursor_line: 1,
        }
    }

    fn reader(bytes: &'a [u8], delimiter: u8) -> csv::Reader<&'a [u8]> {
        csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .has_headers(false)
            .flexible(true)
            .from_reader(bytes)
    }

    /// The line number of a byte offset at or after the last one asked about.
    fn line_at(&mut self, offset: usize) -> u64 {
        let offset = offset.clamp(self.cursor, self.text.len());
        self.cursor_line += newlines(&self.text.as_bytes()[self.cursor..offset]);
        self.cursor = offset;
        self.cursor_line
    }

    /// Does a record read across line breaks look like a quote that never closed: the wrong
    /// width, or a cell holding a line break followed by a line as wide as a whole row?
    fn is_broken(&self) -> bool {
        if self.width > 0 && self.record.len() != self.width {
            return true;
        }
        let delimiter = self.delimiter as char;
        self.record.iter().any(|cell| {
            cell.split('\n')
                .skip(1)
                .any(|line| self.width > 1 && line.matches(delimiter).count() + 1 >= self.width)
        })
    }

    /// Starts a fresh reader on the line after the one holding `at` (an offset in `text`).
    fn restart_after(&mut self, at: usize) {
        let at = at.min(self.text.len());
        self.base = self.text[at..]
            .find('\n')
            .map_or(self.text.len(), |i| at + i + 1);
        self.reader = Self::reader(&self.text.as_bytes()[self.base..], self.delimiter);
    }
}

fn newlines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

impl Iterator for Records<'_> {
    type Item = Result<(u64, StringRecord), RowIssue>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.reader.read_record(&mut self.record) {
            Ok(false) => None,
            Ok(true) => {
                let bytes = self.text.as_bytes();
                let mut start = self.base + self.record.position().map_or(0, |p| p.byte() as usize);
                while start < bytes.len() && matches!(bytes[start], b'\r' | b'\n') {
                    start += 1;
                }
                let mut end = (self.base + self.reader.position().byte() as usize).max(start);
                while end > start && matches!(bytes[end - 1], b'\r' | b'\n') {
                    end -= 1;
                }
                let line = self.line_at(start);
                if newlines(&bytes[start..end]) > 0 && self.is_broken() {
                    self.restart_after(start);
                    return Some(Err(RowIssue {
                        line,
                        column: String::new(),
                        value: String::new(),
                        message: "a quote (\") opened on this line is never closed: the row \
                                  cannot be read; the lines after it were read on their own"
                            .to_owned(),
                    }));
                }
                Some(Ok((line, std::mem::take(&mut self.record))))
            }
            Err(err) => {
                let at = self.base + err.position().map_or(0, |p| p.byte() as usize);
                let line = self.line_at(at);
                self.restart_after(at);
                Some(Err(RowIssue {
                    line,
                    column: String::new(),
                    value: String::new(),
                    message: format!("the row cannot be read: {err}"),
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "ExternalSyncID,FirstName,LastName,Organisation";

    fn read_str(s: &str) -> Submission {
        read(s.as_bytes()).expect("readable")
    }

    #[test]
    fn encodings_are_detected() {
        assert_eq!(decode(b"a,b").1, TextEncoding::Utf8);
        assert_eq!(decode(b"\xEF\xBB\xBFa").1, TextEncoding::Utf8Bom);
        let (t, e) = decode(b"Ren\xE9e");
        assert_eq!((t.as_ref(), e), ("Renée", TextEncoding::Windows1252));
        let (t, e) = decode(b"\xFF\xFEa\0\xE9\0");
        assert_eq!((t.as_ref(), e), ("aé", TextEncoding::Utf16Le));
        let (t, e) = decode(b"\xFE\xFF\0a\0\xE9");
        assert_eq!((t.as_ref(), e), ("aé", TextEncoding::Utf16Be));
    }

    #[test]
    fn delimiter_comes_from_the_header_line() {
        let sub = read_str("ExternalSyncID;FirstName;LastName;Organisation\n1;A;B;RXX\n");
        assert!(matches!(
            sub.container,
            Container::Text {
                delimiter: b';',
                ..
            }
        ));
        assert_eq!(sub.value_separator(), '|');
        assert_eq!(&sub.rows[0].cells[1], "A");
    }

    #[test]
    fn line_numbers_are_the_files_own() {
        let sub = read_str(&format!(
            "\n{HEAD}\r\n1,A,B,RXX\r\n\r\n2,C,D,RXX\r\n,,,\r\n3,E,F,RXX"
        ));
        let lines: Vec<u64> = sub.rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, [3, 5, 7]);
    }

    #[test]
    fn connector_line_is_read_and_skipped() {
        let sub = read_str(
            "Connector,RXX Connector\nOrganisation Code,Local Unique Identifier,First Name,Last Name\nRXX,1,A,B\n",
        );
        assert_eq!(sub.connector.as_deref(), Some("RXX Connector"));
        assert_eq!(sub.rows[0].line, 3);
    }

    #[test]
    fn unclosed_quote_is_one_lines_issue_and_later_rows_survive() {
        let sub = read_str(&format!(
            "{HEAD},Notes\n1,A,B,RXX,\"never closed\n2,C,D,RXX,fine\n3,E,F,RXX,\"ok\nnote\"\n"
        ));
        assert_eq!(sub.rows.len(), 3, "{:?}", sub.rows);
        assert_eq!(sub.rows[0].line, 2);
        assert!(sub.rows[0].issues[0].message.contains("never closed"));
        assert_eq!(sub.rows[1].line, 3);
        assert_eq!(&sub.rows[1].cells[1], "C");
        assert!(sub.rows[1].issues.is_empty());
        // A legitimate quoted line break stays one cell.
        assert_eq!(sub.rows[2].line, 4);
        assert_eq!(&sub.rows[2].cells[4], "ok\nnote");
        assert!(sub.rows[2].issues.is_empty());
    }

    #[test]
    fn wrong_cell_count_is_a_row_issue() {
        let sub = read_str(&format!("{HEAD}\n1,A,B\n"));
        assert!(
            sub.rows[0].issues[0]
                .message
                .contains("3 cells but the header has 4")
        );
    }
}
