//! A zipped workbook (XLSX, ODS) checked part by part before the spreadsheet library opens it.
//!
//! In: the file's bytes and the [`Limits`]. Out: `Ok(())`, or the [`ReadError`] naming the bound
//! the file goes over. Every part is decompressed as a stream and counted, never held: the
//! declared sizes are checked first, the real ones as the bytes come (a declared size can lie).
//! Sheets have their cell references checked and their cells counted; the shared strings are
//! counted; an ODS sheet's repeated rows and cells are counted as the library would expand them.

use std::cell::Cell;
use std::io::{BufReader, Cursor, Read};

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use super::ReadError;
use super::limits::{Limit, Limits, MAX_AUXILIARY_PART_BYTES};

/// More parts than this is not a workbook (real ones have a few dozen).
const MAX_PARTS: usize = 10_000;
/// The largest sheet a spreadsheet has.
pub(super) const MAX_SHEET_ROWS: u64 = 1_048_576;
pub(super) const MAX_SHEET_COLUMNS: u64 = 16_384;

/// A part's bytes, counted as they are decompressed and cut off at a cap that may be lowered
/// once the part is known.
struct Capped<'a, R> {
    inner: R,
    used: &'a Cell<u64>,
    cap: &'a Cell<u64>,
}

impl<R: Read> Read for Capped<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let room = self.cap.get().saturating_sub(self.used.get());
        // One byte past the cap is read, so "exactly at the cap" and "over it" differ.
        let want = buf
            .len()
            .min(usize::try_from(room.saturating_add(1)).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.inner.read(&mut buf[..want])?;
        self.used.set(self.used.get() + n as u64);
        if self.used.get() > self.cap.get() {
            return Err(std::io::Error::other("over the cap"));
        }
        Ok(n)
    }
}

fn damaged(e: impl std::fmt::Display) -> ReadError {
    ReadError::Workbook(format!("the file is damaged ({e})"))
}

fn over(limit: Limit, max: u64) -> ReadError {
    ReadError::Limit { limit, max }
}

/// Checks every part of a zipped workbook against the limits.
pub(super) fn check(bytes: &[u8], limits: &Limits) -> Result<(), ReadError> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(damaged)?;
    if archive.len() > MAX_PARTS {
        return Err(ReadError::Workbook(format!(
            "it holds {} parts; a workbook has a few dozen",
            archive.len()
        )));
    }
    let mut left = limits.max_decompressed_bytes;
    let mut tally = Tally::default();
    for i in 0..archive.len() {
        let part = archive.by_index(i).map_err(damaged)?;
        if part.size() > left {
            return Err(over(
                Limit::DecompressedBytes,
                limits.max_decompressed_bytes,
            ));
        }
        let name = part.name().map(|n| n.into_owned()).unwrap_or_default();
        let used = Cell::new(0);
        let cap = Cell::new(left);
        let mut stream = Capped {
            inner: part,
            used: &used,
            cap: &cap,
        };
        let outcome = scan_part(&mut stream, &name, &cap, left, &mut tally, limits);
        if used.get() > cap.get() {
            return Err(if cap.get() < left {
                over(Limit::AuxiliaryPart, MAX_AUXILIARY_PART_BYTES)
            } else {
                over(Limit::DecompressedBytes, limits.max_decompressed_bytes)
            });
        }
        outcome?;
        left -= used.get();
    }
    Ok(())
}

/// What the parts so far hold, across sheets.
#[derive(Default)]
struct Tally {
    cells: u64,
}

/// What a part is, by its root element.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Sheet,
    SharedStrings,
    OdsContent,
    Other,
}

fn part_of(root: &str) -> Part {
    match root {
        "worksheet" => Part::Sheet,
        "sst" => Part::SharedStrings,
        "document-content" => Part::OdsContent,
        _ => Part::Other,
    }
}

/// Reads one part to its end: XML parts by their root element, anything else just counted.
fn scan_part<R: Read>(
    stream: &mut Capped<'_, R>,
    name: &str,
    cap: &Cell<u64>,
    left: u64,
    tally: &mut Tally,
    limits: &Limits,
) -> Result<(), ReadError> {
    let mut xml = Reader::from_reader(BufReader::new(&mut *stream));
    let mut buf = Vec::new();
    let mut scan = Scan::new(name, limits);
    let mut part = None;
    loop {
        buf.clear();
        match xml.read_event_into(&mut buf) {
            Ok(Event::Start(e)) => {
                let kind = *part.get_or_insert_with(|| root(&e, cap, left));
                scan.element(kind, &e, true, tally)?;
            }
            Ok(Event::Empty(e)) => {
                let kind = *part.get_or_insert_with(|| root(&e, cap, left));
                scan.element(kind, &e, false, tally)?;
            }
            Ok(Event::End(e)) => {
                if let Some(kind) = part {
                    scan.end(kind, e.local_name().as_ref(), tally)?;
                }
            }
            Ok(Event::Eof) => return Ok(()),
            Ok(_) => {}
            // Not XML (a picture), or XML the library will refuse itself: count the rest.
            Err(_) => break,
        }
    }
    drop(xml);
    std::io::copy(stream, &mut std::io::sink())
        .map(|_| ())
        .or(Ok(()))
}

/// The root element decides the part; parts other than sheets and strings get a small cap.
fn root(e: &BytesStart<'_>, cap: &Cell<u64>, left: u64) -> Part {
    let part = part_of(e.local_name().as_ref());
    if part == Part::Other {
        cap.set(left.min(MAX_AUXILIARY_PART_BYTES));
    }
    part
}

fn attr(e: &BytesStart<'_>, name: &str) -> Option<String> {
    e.attributes()
        .with_checks(false)
        .flatten()
        .find(|a| a.key.as_ref() == name)
        .map(|a| a.value.into_owned())
}

/// An `A1` reference as (1-based row, 1-based column), if it is a cell of a sheet.
fn cell_reference(reference: &str) -> Option<(u64, u64)> {
    let split = reference.find(|c: char| c.is_ascii_digit())?;
    let (letters, digits) = reference.split_at(split);
    if letters.is_empty() || letters.len() > 3 || !letters.bytes().all(|b| b.is_ascii_alphabetic())
    {
        return None;
    }
    let column = letters.bytes().fold(0u64, |n, b| {
        n * 26 + u64::from(b.to_ascii_uppercase() - b'A' + 1)
    });
    if digits.is_empty() || digits.len() > 7 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let row: u64 = digits.parse().ok()?;
    ((1..=MAX_SHEET_ROWS).contains(&row) && (1..=MAX_SHEET_COLUMNS).contains(&column))
        .then_some((row, column))
}

/// The state of a part's scan.
struct Scan<'a> {
    part: &'a str,
    limits: &'a Limits,
    /// XLSX: the current row and the column of the last cell (1-based; 0 = none yet).
    row: u64,
    column: u64,
    /// Shared strings seen.
    strings: u64,
    ods: OdsTable,
}

/// An ODS table's extent as the library expands it: repeated rows and cells count each time.
#[derive(Default)]
struct OdsTable {
    /// Columns up to the current row's last value, and the position after its last cell.
    row_width: u64,
    position: u64,
    row_repeats: u64,
    rows_total: u64,
    /// Rows from the first row with a value to the last, and empty rows since the last one.
    span: u64,
    pending: u64,
    width: u64,
    started: bool,
}

impl<'a> Scan<'a> {
    fn new(part: &'a str, limits: &'a Limits) -> Self {
        Scan {
            part,
            limits,
            row: 0,
            column: 0,
            strings: 0,
            ods: OdsTable::default(),
        }
    }

    fn bad_reference(&self, reference: String) -> ReadError {
        // The reference is the sender's text: a long one is cut for the message.
        let mut shown: String = reference.chars().take(32).collect();
        if shown.len() < reference.len() {
            shown.push('…');
        }
        ReadError::CellReference {
            reference: shown,
            part: self.part.chars().take(64).collect(),
        }
    }

    fn count_cells(&self, tally: &mut Tally, n: u64) -> Result<(), ReadError> {
        tally.cells = tally.cells.saturating_add(n);
        if tally.cells > self.limits.max_cells {
            return Err(over(Limit::Cells, self.limits.max_cells));
        }
        Ok(())
    }

    fn element(
        &mut self,
        part: Part,
        e: &BytesStart<'_>,
        has_content: bool,
        tally: &mut Tally,
    ) -> Result<(), ReadError> {
        let name = e.local_name();
        let name = name.as_ref();
        match (part, name) {
            (Part::Sheet, "row") => {
                self.row = match attr(e, "r") {
                    Some(r) => match r.parse::<u64>() {
                        Ok(n) if (1..=MAX_SHEET_ROWS).contains(&n) => n,
                        _ => return Err(self.bad_reference(format!("row {r}"))),
                    },
                    None => self.row + 1,
                };
                if self.row > MAX_SHEET_ROWS {
                    return Err(self.bad_reference(format!("row {}", self.row)));
                }
                self.column = 0;
            }
            (Part::Sheet, "c") => {
                match attr(e, "r") {
                    Some(r) => match cell_reference(&r) {
                        Some((row, column)) => {
                            self.row = row;
                            self.column = column;
                        }
                        None => return Err(self.bad_reference(r)),
                    },
                    None => {
                        self.column += 1;
                        if self.column > MAX_SHEET_COLUMNS {
                            return Err(self.bad_reference(format!(
                                "cell {} of row {}",
                                self.column, self.row
                            )));
                        }
                    }
                }
                // `<c r="B2" s="1"/>` is a formatted empty cell: no value to hold.
                if has_content {
                    self.count_cells(tally, 1)?;
                }
            }
            (Part::Sheet, "dimension") => {}
            (Part::SharedStrings, "sst") => {
                if let Some(n) = attr(e, "uniqueCount") {
                    // The library reserves room for this many strings up front.
                    if n.parse::<u64>().map_or(true, |n| n > self.limits.max_cells) {
                        return Err(over(Limit::Cells, self.limits.max_cells));
                    }
                }
            }
            (Part::SharedStrings, "si") => {
                self.strings += 1;
                if self.strings > self.limits.max_cells {
                    return Err(over(Limit::Cells, self.limits.max_cells));
                }
            }
            (Part::OdsContent, "table") => self.ods = OdsTable::default(),
            (Part::OdsContent, "table-row") => {
                let repeats = repeat(e, "table:number-rows-repeated");
                let room = MAX_SHEET_ROWS.saturating_sub(self.ods.rows_total);
                self.ods.row_repeats = repeats.min(room);
                self.ods.rows_total += self.ods.row_repeats;
                self.ods.row_width = 0;
                self.ods.position = 0;
                if !has_content {
                    self.end_ods_row(tally)?;
                }
            }
            (Part::OdsContent, "table-cell" | "covered-table-cell") => {
                let repeats = repeat(e, "table:number-columns-repeated");
                let start = self.ods.position;
                self.ods.position = (start + repeats).min(MAX_SHEET_COLUMNS);
                let valued = has_content || attr(e, "office:value-type").is_some();
                if valued {
                    self.ods.row_width = self.ods.position;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn end(&mut self, part: Part, name: &str, tally: &mut Tally) -> Result<(), ReadError> {
        match (part, name) {
            (Part::OdsContent, "table-row") => self.end_ods_row(tally),
            (Part::OdsContent, "table") => self.end_ods_table(tally),
            _ => Ok(()),
        }
    }

    fn end_ods_row(&mut self, tally: &mut Tally) -> Result<(), ReadError> {
        let t = &mut self.ods;
        if t.row_width == 0 {
            t.pending += t.row_repeats;
            return Ok(());
        }
        if t.started {
            t.span += t.pending;
        }
        t.span += t.row_repeats;
        t.started = true;
        t.pending = 0;
        t.width = t.width.max(t.row_width);
        // The row as read, before the library lays the sheet out (values and formulas).
        let width = t.row_width;
        let area = t.span.saturating_mul(t.width);
        self.count_cells(tally, width)?;
        if area > self.limits.max_cells {
            return Err(over(Limit::Cells, self.limits.max_cells));
        }
        Ok(())
    }

    fn end_ods_table(&mut self, tally: &mut Tally) -> Result<(), ReadError> {
        let area = self.ods.span.saturating_mul(self.ods.width);
        self.ods = OdsTable::default();
        self.count_cells(tally, area)
    }
}

fn repeat(e: &BytesStart<'_>, name: &str) -> u64 {
    attr(e, name)
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(1)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cell_references_are_checked_against_the_sheet_size() {
        assert_eq!(cell_reference("A1"), Some((1, 1)));
        assert_eq!(cell_reference("XFD1048576"), Some((1_048_576, 16_384)));
        assert_eq!(cell_reference("XFD1048577"), None);
        assert_eq!(cell_reference("XFE1"), None);
        assert_eq!(cell_reference("AAAA1"), None);
        assert_eq!(cell_reference("A99999999999"), None);
        assert_eq!(cell_reference("A0"), None);
        assert_eq!(cell_reference("1A"), None);
        assert_eq!(cell_reference("A"), None);
    }
}
