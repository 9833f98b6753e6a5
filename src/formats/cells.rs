//! One row's cells as sent, kept compactly for as long as the submission lives.
//!
//! In: the cells of a record (a csv `StringRecord`, or any strings). Out: a [`Cells`] holding
//! their text in one exactly sized allocation and where each cell ends, with the read
//! interface of a `StringRecord` (`get`, `iter`, `len`, indexing). A `StringRecord` clone
//! keeps the reader's whole buffer (spare capacity and all) and its position; a file of a
//! million rows kept that way costs several hundred bytes a row more than its text.

use std::fmt;

use csv::StringRecord;

/// The cells of one row: their text end to end, and the end of each.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Cells {
    text: Box<str>,
    ends: Ends,
}

/// Where each cell ends in the text: two bytes a cell for any row under 64 KiB.
#[derive(Clone, PartialEq, Eq)]
enum Ends {
    Short(Box<[u16]>),
    Long(Box<[usize]>),
}

impl Default for Ends {
    fn default() -> Self {
        Ends::Short(Box::default())
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

impl Cells {
    /// No cells.
    pub fn new() -> Cells {
        Cells::default()
    }

    /// How many cells the row has.
    pub fn len(&self) -> usize {
        match &self.ends {
            Ends::Short(e) => e.len(),
            Ends::Long(e) => e.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn end(&self, i: usize) -> Option<usize> {
        match &self.ends {
            Ends::Short(e) => e.get(i).map(|&n| usize::from(n)),
            Ends::Long(e) => e.get(i).copied(),
        }
    }

    /// The cell at `i`, if the row has one.
    pub fn get(&self, i: usize) -> Option<&str> {
        let end = self.end(i)?;
        let start = match i.checked_sub(1) {
            Some(before) => self.end(before)?,
            None => 0,
        };
        self.text.get(start..end)
    }

    /// The cells in order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            cells: self,
            front: 0,
            back: self.len(),
        }
    }

    /// Builds the row from its cells' text, in order.
    fn build<'a>(cells: impl IntoIterator<Item = &'a str>) -> Cells {
        let mut text = String::new();
        let mut ends = Vec::new();
        for cell in cells {
            text.push_str(cell);
            ends.push(text.len());
        }
        Cells {
            text: text.into_boxed_str(),
            ends: Ends::from(ends),
        }
    }
}

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
        Cells {
            text: Box::from(text),
            ends: Ends::from(ends),
        }
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
        let end = self.end(i).unwrap_or(usize::MAX);
        let start = i.checked_sub(1).and_then(|b| self.end(b)).unwrap_or(0);
        &self.text[start..end]
    }
}

/// The cells of a row in order (see [`Cells::iter`]).
#[derive(Clone)]
pub struct Iter<'a> {
    cells: &'a Cells,
    front: usize,
    back: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        if self.front >= self.back {
            return None;
        }
        self.front += 1;
        self.cells.get(self.front - 1)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.back - self.front;
        (n, Some(n))
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.front >= self.back {
            return None;
        }
        self.back -= 1;
        self.cells.get(self.back)
    }
}

impl ExactSizeIterator for Iter<'_> {}

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
    fn a_row_over_64_kib_keeps_every_cell() {
        let long = "x".repeat(70_000);
        let cells: Cells = ["a", long.as_str(), "b"].into_iter().collect();
        assert!(matches!(cells.ends, Ends::Long(_)));
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
