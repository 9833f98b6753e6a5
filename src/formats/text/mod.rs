//! Delimited text: encoding detection, delimiter detection and an RFC 4180 reader that
//! survives broken quotes.
//!
//! In: bytes. Out: a [`Submission`] whose line numbers are the file's own. A quote that never
//! closes is an issue of the line it opened on; reading starts again on the next line, so no
//! later row is swallowed.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};

use std::sync::Arc;

use csv::StringRecord;
use encoding_rs::{UTF_16BE, UTF_16LE, WINDOWS_1252};
use rayon::prelude::*;
use serde::Serialize;

use super::{Cells, Container, Limit, Limits, RawRow, ReadError, Submission, map_header_row};
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

/// A line of the file holding bytes that are not UTF-8, in a file read as UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadLine {
    /// The file's own line number.
    pub line: u64,
    /// The byte offset in the file of the line's first invalid byte.
    pub offset: usize,
}

/// The decoded text of a file and how it was decoded.
#[derive(Debug)]
pub struct Decoded<'a> {
    pub text: Cow<'a, str>,
    pub encoding: TextEncoding,
    /// Lines whose invalid bytes were replaced (U+FFFD) in a file read as UTF-8.
    pub bad_lines: Vec<BadLine>,
}

/// Invalid lines beyond this share of a file's lines mean it is not UTF-8 (one in ten).
const BAD_LINE_SHARE: u64 = 10;

/// What a pass over the bytes finds: valid multi-byte sequences, and the lines holding
/// invalid ones (`None` once they are too many for the file to be UTF-8).
fn survey_utf8(bytes: &[u8], base: usize) -> (usize, Option<Vec<BadLine>>) {
    let lines = 1 + memchr::memchr_iter(b'\n', bytes).count() as u64;
    let most_bad = lines.div_ceil(BAD_LINE_SHARE);
    let mut multibyte = 0;
    let mut bad: Vec<BadLine> = Vec::new();
    let (mut at, mut counted, mut line) = (0usize, 0usize, 1u64);
    while at < bytes.len() {
        let (valid, skip) = match std::str::from_utf8(&bytes[at..]) {
            Ok(_) => (bytes.len() - at, 0),
            Err(e) => (
                e.valid_up_to(),
                e.error_len().unwrap_or(bytes.len() - at - e.valid_up_to()),
            ),
        };
        multibyte += bytes[at..at + valid].iter().filter(|&&b| b >= 0xC0).count();
        at += valid;
        if skip == 0 {
            break;
        }
        line += memchr::memchr_iter(b'\n', &bytes[counted..at]).count() as u64;
        counted = at;
        if bad.last().is_none_or(|b| b.line != line) {
            if bad.len() as u64 >= most_bad {
                return (multibyte, None);
            }
            bad.push(BadLine {
                line,
                offset: base + at,
            });
        }
        at += skip;
    }
    (multibyte, Some(bad))
}

/// Decodes the bytes. A BOM decides. Without one: valid UTF-8 is UTF-8; a file holding at
/// least one valid multi-byte UTF-8 sequence and invalid bytes on under one line in ten is
/// UTF-8 too, its invalid lines kept aside to be refused; anything else is Windows-1252.
pub fn decode(bytes: &[u8]) -> Result<Decoded<'_>, ReadError> {
    let decoded = |text, encoding| Decoded {
        text,
        encoding,
        bad_lines: Vec::new(),
    };
    if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        if let Ok(s) = std::str::from_utf8(rest) {
            return Ok(decoded(Cow::Borrowed(s), TextEncoding::Utf8Bom));
        }
        let (_, bad) = survey_utf8(rest, 3);
        let Some(bad_lines) = bad else {
            return Err(ReadError::Encoding(
                "it starts with a UTF-8 byte order mark, but one line in ten or more holds bytes \
                 that are not UTF-8: save it again as \"CSV UTF-8\""
                    .to_owned(),
            ));
        };
        return Ok(Decoded {
            text: String::from_utf8_lossy(rest),
            encoding: TextEncoding::Utf8Bom,
            bad_lines,
        });
    }
    if let Some(rest) = bytes.strip_prefix(b"\xFF\xFE") {
        let (text, _) = UTF_16LE.decode_without_bom_handling(rest);
        return Ok(decoded(
            Cow::Owned(text.into_owned()),
            TextEncoding::Utf16Le,
        ));
    }
    if let Some(rest) = bytes.strip_prefix(b"\xFE\xFF") {
        let (text, _) = UTF_16BE.decode_without_bom_handling(rest);
        return Ok(decoded(
            Cow::Owned(text.into_owned()),
            TextEncoding::Utf16Be,
        ));
    }
    if let Ok(s) = std::str::from_utf8(bytes) {
        return Ok(decoded(Cow::Borrowed(s), TextEncoding::Utf8));
    }
    match survey_utf8(bytes, 0) {
        (multibyte, Some(bad_lines)) if multibyte > 0 => Ok(Decoded {
            text: String::from_utf8_lossy(bytes),
            encoding: TextEncoding::Utf8,
            bad_lines,
        }),
        _ => {
            let (text, _) = WINDOWS_1252.decode_without_bom_handling(bytes);
            Ok(decoded(
                Cow::Owned(text.into_owned()),
                TextEncoding::Windows1252,
            ))
        }
    }
}

/// Refuses the rows holding invalid UTF-8; a header holding some refuses the file.
fn refuse_bad_lines(
    rows: &mut [RawRow],
    bad_lines: &[BadLine],
    header_line: u64,
) -> Result<(), ReadError> {
    for bad in bad_lines {
        if bad.line < header_line {
            continue;
        }
        // The row holding the line: the last one starting at or before it.
        let at = rows.partition_point(|r| r.line <= bad.line);
        let Some(row) = at.checked_sub(1).and_then(|i| rows.get_mut(i)) else {
            return Err(ReadError::Headers {
                line: header_line,
                reason: format!(
                    "it holds bytes that are not valid UTF-8 (at byte offset {})",
                    bad.offset
                ),
            });
        };
        row.issues.push(RowIssue {
            line: row.line,
            column: String::new(),
            value: String::new(),
            message: format!(
                "line {} holds bytes that are not valid UTF-8 (the first at byte offset {} of \
                 the file); the file is read as UTF-8, so this row is refused: correct it and \
                 send it again",
                bad.line, bad.offset
            ),
        });
    }
    Ok(())
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

pub fn read(bytes: &[u8], limits: &Limits) -> Result<Submission, ReadError> {
    read_decoded(decode(bytes)?, limits)
}

/// [`read`] of bytes the caller gives up: valid UTF-8 (with or without its BOM) is the text
/// itself, so it is not copied; anything else is decoded as [`read`] does.
pub fn read_owned(bytes: Vec<u8>, limits: &Limits) -> Result<Submission, ReadError> {
    let bom = bytes.starts_with(b"\xEF\xBB\xBF");
    match String::from_utf8(bytes) {
        Ok(mut text) => {
            let encoding = if bom {
                text.drain(..3);
                TextEncoding::Utf8Bom
            } else {
                TextEncoding::Utf8
            };
            let decoded = Decoded {
                text: Cow::Owned(text),
                encoding,
                bad_lines: Vec::new(),
            };
            read_decoded(decoded, limits)
        }
        Err(e) => read(e.as_bytes(), limits),
    }
}

fn read_decoded(decoded: Decoded<'_>, limits: &Limits) -> Result<Submission, ReadError> {
    let Decoded {
        text,
        encoding,
        bad_lines,
    } = decoded;
    // One copy of the text when it was borrowed: rows without quotes point into it.
    let shared = Arc::new(lone_cr_as_lf(text).into_owned());
    let text: &str = &shared;
    let mut content = lines(text).filter(|(_, l)| !l.trim().is_empty());
    let (mut header_at, mut header_line) = content.next().ok_or(ReadError::Empty)?;
    let connector = connector_line(header_line);
    if connector.is_some() {
        (header_at, header_line) = content.next().ok_or(ReadError::NoHeader)?;
    }
    let delimiter = detect_delimiter(header_line);

    let header_line_no = 1 + newlines(&text.as_bytes()[..header_at]);
    let mut records = Records::new(&shared, delimiter, header_at, text.len(), header_line_no);
    let (header_no, header) = match records.next() {
        Some(Ok(header)) => header,
        _ => return Err(ReadError::NoHeader),
    };
    let header: StringRecord = header.iter().collect();
    let map = map_header_row(&header, header_no, limits)?;
    let width = header.len();
    let body = records.base + records.reader.position().byte() as usize;

    // The cells of every part count against one limit, so reading stops soon after it.
    let cells = CellCount {
        used: AtomicU64::new(0),
        max: limits.max_cells,
    };
    let mut rows = match split_points(text, body, header_no) {
        Some(chunks) => {
            let parts = chunks
                .par_iter()
                .map(|&(start, end, line)| {
                    let mut part = Records::new(&shared, delimiter, start, end, line);
                    part.width = width;
                    // Sized to the part's lines: a growing list leaves its old buffers behind.
                    let lines = memchr::memchr_iter(b'\n', &text.as_bytes()[start..end]).count();
                    data_rows(part, width, &cells, lines + 1)
                })
                .collect::<Result<Vec<_>, _>>()?;
            // The parts' rows are moved, not cloned: a copy would hold the file's cells twice.
            let mut rows = Vec::with_capacity(parts.iter().map(Vec::len).sum());
            parts.into_iter().for_each(|part| rows.extend(part));
            rows
        }
        None => {
            records.width = width;
            data_rows(records, width, &cells, 0)?
        }
    };
    refuse_bad_lines(&mut rows, &bad_lines, header_no)?;
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

/// The cells the rows read so far hold, against the limit (shared by the parts of a file).
struct CellCount {
    used: AtomicU64,
    max: u64,
}

impl CellCount {
    fn take(&self, n: usize) -> Result<(), ReadError> {
        let n = n as u64;
        if self.used.fetch_add(n, Ordering::Relaxed).saturating_add(n) > self.max {
            return Err(ReadError::Limit {
                limit: Limit::Cells,
                max: self.max,
            });
        }
        Ok(())
    }
}

/// The data rows of some records: blank rows skipped, wrong widths and unreadable rows
/// reported at their own line; the cells of kept rows count against the limit.
fn data_rows(
    records: Records<'_>,
    width: usize,
    count: &CellCount,
    capacity: usize,
) -> Result<Vec<RawRow>, ReadError> {
    let mut rows = Vec::with_capacity(capacity);
    for item in records {
        match item {
            Ok((line, cells)) => {
                if cells.iter().all(|c| c.trim().is_empty()) {
                    continue;
                }
                count.take(cells.len())?;
                let mut issues = Vec::new();
                if cells.len() != width {
                    issues.push(RowIssue {
                        line,
                        column: String::new(),
                        value: String::new(),
                        message: format!(
                            "the row has {} cells but the header has {width}",
                            cells.len()
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
                cells: Cells::new(),
                issues: vec![issue],
            }),
        }
    }
    Ok(rows)
}

/// Below this many bytes of rows a file is read in one piece.
const PARALLEL_FROM: usize = 4 << 20;

/// Where a large file can be cut to read its parts at once: `(start, end, first line)`, each
/// cut just after a line break. Only for files in which no quoted cell holds a line break
/// (then every line break ends a record); otherwise `None`, and the file is read in one piece.
fn split_points(text: &str, body: usize, header_line: u64) -> Option<Vec<(usize, usize, u64)>> {
    let bytes = text.as_bytes();
    let len = bytes.len().saturating_sub(body);
    if len < PARALLEL_FROM {
        return None;
    }
    let target = len / (rayon::current_num_threads() * 4).max(1);
    let mut chunks = Vec::new();
    // `body` is still on the header's line; `line` is the line of the byte after each break.
    let (mut start, mut start_line, mut line) = (body, header_line, header_line);
    let mut quoted = false;
    for at in memchr::memchr2_iter(b'"', b'\n', &bytes[body..]) {
        let at = body + at;
        if bytes[at] == b'"' {
            quoted = !quoted;
            continue;
        }
        if quoted {
            return None;
        }
        line += 1;
        if at + 1 - start >= target && at + 1 < bytes.len() {
            chunks.push((start, at + 1, start_line));
            start = at + 1;
            start_line = line;
        }
    }
    if quoted {
        return None;
    }
    chunks.push((start, bytes.len(), start_line));
    Some(chunks)
}

/// Records of a delimited text with their file line numbers; a record that a broken quote
/// ran across several rows is returned as an issue and reading resumes on its next line.
///
/// Line numbers are counted here from byte offsets: the csv reader's own record positions
/// point at the previous record's terminator, not at the record.
struct Records<'a> {
    /// The whole decoded file.
    text: &'a str,
    shared: &'a Arc<String>,
    delimiter: u8,
    /// Byte offsets in `text` where the current reader started and where it must stop.
    base: usize,
    end: usize,
    reader: csv::Reader<&'a [u8]>,
    /// Cells per row expected (the header's width); 0 until the header is read.
    width: usize,
    record: StringRecord,
    /// A byte offset already counted, and the line number it is on.
    cursor: usize,
    cursor_line: u64,
}

impl<'a> Records<'a> {
    /// Records of `text[start..end]`; `line` is the line number at `start`.
    fn new(shared: &'a Arc<String>, delimiter: u8, start: usize, end: usize, line: u64) -> Self {
        let text: &'a str = shared;
        Records {
            text,
            shared,
            delimiter,
            base: start,
            end,
            reader: Self::reader(&text.as_bytes()[start..end], delimiter),
            width: 0,
            record: StringRecord::new(),
            cursor: start,
            cursor_line: line,
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
        let offset = offset.clamp(self.cursor, self.end);
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
        let at = at.min(self.end);
        self.base = self.text[at..self.end]
            .find('\n')
            .map_or(self.end, |i| at + i + 1);
        self.reader = Self::reader(&self.text.as_bytes()[self.base..self.end], self.delimiter);
    }
}

/// A carriage return not followed by a line feed (Excel for Mac's "CSV (Macintosh)" ends
/// every line so) as a line feed: the csv reader ends a record at either, and line numbers
/// count line feeds, so CR, LF and CRLF files are numbered alike. One byte for one byte, so
/// every offset stays where it was.
fn lone_cr_as_lf(text: Cow<'_, str>) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let lone = |at: usize| bytes.get(at + 1) != Some(&b'\n');
    if !memchr::memchr_iter(b'\r', bytes).any(lone) {
        return text;
    }
    let mut out = bytes.to_vec();
    for at in memchr::memchr_iter(b'\r', bytes) {
        if lone(at) {
            out[at] = b'\n';
        }
    }
    // Only an ASCII byte was swapped for another: still UTF-8.
    Cow::Owned(
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
    )
}

fn newlines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

impl Iterator for Records<'_> {
    type Item = Result<(u64, Cells), RowIssue>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.reader.read_record(&mut self.record) {
            Ok(false) => None,
            Ok(true) => {
                let bytes = self.text.as_bytes();
                let mut start = self.base + self.record.position().map_or(0, |p| p.byte() as usize);
                while start < self.end && matches!(bytes[start], b'\r' | b'\n') {
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
                // A record without quotes is its text cut at the delimiter: kept as where it
                // is; any other is copied out exactly sized (the reader's buffer is kept for
                // the next record).
                let cells = Cells::shared(self.shared, start, end, self.delimiter)
                    .unwrap_or_else(|| Cells::from(&self.record));
                Some(Ok((line, cells)))
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
mod tests;
