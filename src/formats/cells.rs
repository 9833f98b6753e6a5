//! One row's cells as sent, kept compactly for as long as the submission lives.
//!
//! In: the cells of a record (a csv `StringRecord`, or any strings), or a record's place in
//! a file's decoded text when its cells are that text cut at the delimiter. Out: a [`Cells`]
//! with the read interface of a `StringRecord` (`get`, `iter`, `len`, indexing). A record
//! without quotes is kept as where it is in the shared text (no copy of its cells); any other
//! holds its cells' text in one exactly sized allocation and where each cell ends. A
//! `StringRecord` clone keeps the reader's whole buffer (spare capacity and all) and its
//! position; a file of a million rows kept that way costs several hundred bytes a row more
//! than its text.

use std::fmt;
use std::sync::Arc;

use csv::StringRecord;

/// The cells of one row.
#[derive(Clone)]
pub struct Cells(Repr);

#[derive(Clone)]
enum Repr {
    /// Their text end to end, and the end of each.
    Own { text: Box<str>, ends: Ends },
    /// `text[start..start + len]`, cut at `delimiter`: a record that holds no quote (so its
    /// cells are its text between delimiters, as the csv reader reads them).
    Shared {
        text: Arc<String>,
        start: u32,
        len: u32,
        delimiter: u8,
    },
}

/// Where each cell ends in the text: two bytes a cell for any row under 64 KiB.
#[derive(Clone, PartialEq, Eq)]
enum Ends {
    Short(Box<[u16]>),
    Long(Box<[usize]>),
}

impl Default for Cells {
    fn default() -> Self {
        Cells(Repr::Own {
            text: Box::default(),
            ends: Ends::Short(Box::default()),
        })
    }
}

impl From<Vec<usize>> for Ends {
    /// Two bytes a cell when every end fits, else a word a cell.
    fn from(ends: Vec<usize>) -> Ends {
        match ends.iter().map(|&e| u16::try_from(e)).collect() {
            Ok(short) => Ends::Short(short),
            Err(_) => Ends::Long(ends.into_boxed_slice()),
        }
    }
}

impl Ends {
    fn len(&self) -> usize {
        match self {
            Ends::Short(e) => e.len(),
            Ends::Long(e) => e.len(),
        }
    }

    fn get(&self, i: usize) -> Option<usize> {
        match self {
            Ends::Short(e) => e.get(i).map(|&n| usize::from(n)),
            Ends::Long(e) => e.get(i).copied(),
        }
    }
}

impl Cells {
    /// No cells.
    pub fn new() -> Cells {
        Cells::default()
    }

    /// The record at `text[start..end]`, which holds no `"`, cut at `delimiter` (an ASCII
    /// byte): what the csv reader reads from it. `None` when the text is too long to point
    /// into, or the record holds a quote.
    pub fn shared(text: &Arc<String>, start: usize, end: usize, delimiter: u8) -> Option<Cells> {
        let record = text.as_bytes().get(start..end)?;
        if !delimiter.is_ascii() || memchr::memchr(b'"', record).is_some() {
            return None;
        }
        Some(Cells(Repr::Shared {
            text: Arc::clone(text),
            start: u32::try_from(start).ok()?,
            len: u32::try_from(end - start).ok()?,
            delimiter,
        }))
    }

    /// Whether the row points into a file's text (tests).
    #[cfg(test)]
    pub(crate) fn is_shared(&self) -> bool {
        matches!(self.0, Repr::Shared { .. })
    }

    /// How many cells the row has.
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Own { ends, .. } => ends.len(),
            Repr::Shared { delimiter, .. } => {
                1 + memchr::memchr_iter(*delimiter, self.record().as_bytes()).count()
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A shared record's text ("" for one of its own).
    fn record(&self) -> &str {
        match &self.0 {
            Repr::Own { .. } => "",
            Repr::Shared {
                text, start, len, ..
            } => {
                let start = *start as usize;
                &text[start..start + *len as usize]
            }
        }
    }

    /// The cell at `i`, if the row has one.
    pub fn get(&self, i: usize) -> Option<&str> {
        match &self.0 {
            Repr::Own { text, ends } => {
                let end = ends.get(i)?;
                let start = match i.checked_sub(1) {
                    Some(before) => ends.get(before)?,
                    None => 0,
                };
                text.get(start..end)
            }
            Repr::Shared { delimiter, .. } => self.record().split(char::from(*delimiter)).nth(i),
        }
    }

    /// The cells in order.
    pub fn iter(&self) -> Iter<'_> {
        let inner = match &self.0 {
            Repr::Own { .. } => Inner::Own {
                cells: self,
                front: 0,
                back: self.len(),
            },
            Repr::Shared { delimiter, .. } => {
                Inner::Shared(self.record().split(char::from(*delimiter)))
            }
        };
        Iter(inner)
    }

    /// Builds the row from its cells' text, in order.
    fn build<'a>(cells: impl IntoIterator<Item = &'a str>) -> Cells {
        let mut text = String::new();
        let mut ends = Vec::new();
        for cell in cells {
            text.push_str(cell);
            ends.push(text.len());
        }
        Cells(Repr::Own {
            text: text.into_boxed_str(),
            ends: Ends::from(ends),
        })
    }
}

impl PartialEq for Cells {
    /// The same cells, however each row is held.
    fn eq(&self, other: &Cells) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Cells {}

impl From<&StringRecord> for Cells {
    fn from(record: &StringRecord) -> Cells {
        // The record's own buffer holds the cells end to end already: one copy, exactly sized.
        let text: &str = record.as_slice();
        let mut ends = Vec::with_capacity(record.len());
        let mut at = 0;
        for cell in record {
            at += cell.len();
            ends.push(at);
        }
        Cells(Repr::Own {
            text: Box::from(text),
            ends: Ends::from(ends),
        })
    }
}

impl From<StringRecord> for Cells {
    fn from(record: StringRecord) -> Cells {
        Cells::from(&record)
    }
}

impl<'a> FromIterator<&'a str> for Cells {
    fn from_iter<I: IntoIterator<Item = &'a str>>(cells: I) -> Cells {
        Cells::build(cells)
    }
}

impl std::ops::Index<usize> for Cells {
    type Output = str;

    /// The cell at `i`; out of range is a bug of the caller, as for a slice.
    fn index(&self, i: usize) -> &str {
        // Slicing past the end panics, as indexing a slice does.
        self.get(i).unwrap_or_else(|| &self.record()[usize::MAX..])
    }
}

/// The cells of a row in order (see [`Cells::iter`]).
#[derive(Clone)]
pub struct Iter<'a>(Inner<'a>);

#[derive(Clone)]
enum Inner<'a> {
    Own {
        cells: &'a Cells,
        front: usize,
        back: usize,
    },
    Shared(std::str::Split<'a, char>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        match &mut self.0 {
            Inner::Own { cells, front, back } => {
                if *front >= *back {
                    return None;
                }
                *front += 1;
                cells.get(*front - 1)
            }
            Inner::Shared(split) => split.next(),
        }
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            Inner::Own { cells, front, back } => {
                if *front >= *back {
                    return None;
                }
                *back -= 1;
                cells.get(*back)
            }
            Inner::Shared(split) => split.next_back(),
        }
    }
}

impl<'a> IntoIterator for &'a Cells {
    type Item = &'a str;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl fmt::Debug for Cells {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cells_read_as_the_record_they_came_from() {
        let record = StringRecord::from(vec!["E1", "", "Zoë", "a \"b\"", ""]);
        let cells = Cells::from(&record);
        assert_eq!(cells.len(), 5);
        assert_eq!(cells.get(0), Some("E1"));
        assert_eq!(cells.get(1), Some(""));
        assert_eq!(&cells[2], "Zoë");
        assert_eq!(cells.get(4), Some(""));
        assert_eq!(cells.get(5), None);
        assert_eq!(
            cells.iter().collect::<Vec<_>>(),
            record.iter().collect::<Vec<_>>()
        );
        assert!(Cells::new().is_empty());
        assert_eq!(Cells::new().get(0), None);
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn indexing_past_the_last_cell_panics_as_a_slice_does() {
        let text = Arc::new("a,b".to_owned());
        let cells = Cells::shared(&text, 0, 3, b',').unwrap();
        assert_eq!(&cells[1], "b");
        let _ = &cells[2];
    }

    #[test]
    fn a_row_over_64_kib_keeps_every_cell() {
        let long = "x".repeat(70_000);
        let cells: Cells = ["a", long.as_str(), "b"].into_iter().collect();
        assert!(matches!(
            &cells.0,
            Repr::Own {
                ends: Ends::Long(_),
                ..
            }
        ));
        assert_eq!(cells.get(1), Some(long.as_str()));
        assert_eq!(cells.get(2), Some("b"));
        assert_eq!(
            Cells::from(&StringRecord::from(vec!["a", long.as_str(), "b"])),
            cells
        );
    }

    proptest! {
        #[test]
        fn any_record_round_trips(fields in prop::collection::vec("\\PC{0,12}", 0..20)) {
            let record = StringRecord::from(fields.clone());
            let cells = Cells::from(&record);
            prop_assert_eq!(cells.len(), fields.len());
            prop_assert_eq!(cells.iter().collect::<Vec<_>>(), fields.iter().map(String::as_str).collect::<Vec<_>>());
            let built: Cells = fields.iter().map(String::as_str).collect();
            prop_assert_eq!(built, cells);
        }
    }
}
