//! The mistakes a whole file makes the same way on many lines (saved in the wrong encoding,
//! keys a spreadsheet damaged): each has one remedy, so an answer gathers its lines under one
//! heading with that remedy instead of leaving the administrator to find the pattern.
//!
//! A refusal belongs to a mistake when its message carries that mistake's remedy phrase:
//! the rule that refuses the line writes the phrase from here, so the two cannot drift.

use serde::Serialize;

use super::RowReport;

/// What every refusal of a cell in the wrong encoding ends with.
pub const ENCODING_REMEDY: &str =
    "the file was saved in a different encoding than it was read in: save it as CSV UTF-8";

/// What every refusal of a key a spreadsheet damaged ends with.
pub const DAMAGED_KEY_REMEDY: &str = "format the column as text and send the file again";

/// A mistake with one remedy for all its lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mistake {
    WrongEncoding,
    DamagedKey,
}

impl Mistake {
    pub const ALL: [Mistake; 2] = [Mistake::WrongEncoding, Mistake::DamagedKey];

    /// The phrase every refusal of this mistake carries.
    fn marker(self) -> &'static str {
        match self {
            Mistake::WrongEncoding => ENCODING_REMEDY,
            Mistake::DamagedKey => DAMAGED_KEY_REMEDY,
        }
    }

    pub fn heading(self) -> &'static str {
        match self {
            Mistake::WrongEncoding => "Text in the wrong encoding",
            Mistake::DamagedKey => "Keys damaged by a spreadsheet: nothing was created for them",
        }
    }

    /// What the administrator does about all of the lines at once.
    pub fn remedy(self) -> &'static str {
        match self {
            Mistake::WrongEncoding => {
                "The file was saved in one encoding and read in another, so accented letters \
                 and punctuation came out as marks such as Ã© or â€™ (or were lost as �). \
                 Nothing of these cells was written. In Excel, save the file with File → \
                 Save As → \"CSV UTF-8 (Comma delimited) (*.csv)\"; in LibreOffice, choose \
                 Character set: Unicode (UTF-8) when saving as CSV; then send it again."
            }
            Mistake::DamagedKey => {
                "Excel reads ID columns as numbers when it opens a CSV: it removes leading \
                 zeros (000123 becomes 123) and may write 123.0 back. Each line names the \
                 account its key most likely meant. Format the ExternalSyncID column as Text \
                 before typing or pasting the keys (or open the CSV with Data → From \
                 Text/CSV and set the column's type to Text), correct these keys and send the \
                 file again."
            }
        }
    }

    /// The mistake a refusal message belongs to, if any.
    pub fn of(message: &str) -> Option<Mistake> {
        Mistake::ALL
            .into_iter()
            .find(|m| message.contains(m.marker()))
    }
}

/// The lines of one mistake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MistakeLines {
    pub mistake: Mistake,
    pub lines: Vec<u64>,
}

/// How many line numbers a heading lists before `and N more`.
const LINES_LISTED: usize = 30;

impl MistakeLines {
    /// The heading as an answer's template shows it.
    pub fn shown(&self) -> Shown {
        let listed: Vec<String> = self
            .lines
            .iter()
            .take(LINES_LISTED)
            .map(u64::to_string)
            .collect();
        Shown {
            heading: self.mistake.heading(),
            remedy: self.mistake.remedy(),
            count: self.lines.len(),
            lines: listed.join(", "),
            more: self.lines.len().saturating_sub(LINES_LISTED),
        }
    }
}

/// One heading of an answer: what it is, how many lines, which, and the remedy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shown {
    pub heading: &'static str,
    pub remedy: &'static str,
    pub count: usize,
    /// The first line numbers, comma-separated.
    pub lines: String,
    /// How many more lines there are.
    pub more: usize,
}

/// The mistakes among the rows that need attention, each with its lines in file order, in
/// [`Mistake::ALL`] order; mistakes no row makes are left out.
pub fn gather(reports: &[RowReport]) -> Vec<MistakeLines> {
    let mut found: Vec<MistakeLines> = Mistake::ALL
        .into_iter()
        .map(|mistake| MistakeLines {
            mistake,
            lines: Vec::new(),
        })
        .collect();
    for r in reports.iter().filter(|r| r.result.needs_attention()) {
        if let Some(m) = Mistake::of(&r.message)
            && let Some(group) = found.iter_mut().find(|g| g.mistake == m)
        {
            group.lines.push(r.line);
        }
    }
    found.retain(|g| !g.lines.is_empty());
    for g in &mut found {
        g.lines.sort_unstable();
        g.lines.dedup();
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::RowResultKind;

    fn row(line: u64, result: RowResultKind, message: &str) -> RowReport {
        RowReport {
            line,
            result,
            message: message.to_owned(),
        }
    }

    #[test]
    fn refusals_are_gathered_by_their_remedy_in_file_order() {
        let reports = [
            row(
                9,
                RowResultKind::Rejected,
                &format!("LastName \"Ã–zil\" looks mis-read: {ENCODING_REMEDY}"),
            ),
            row(
                3,
                RowResultKind::Rejected,
                "MobilePhone \"123\" is not a phone number",
            ),
            row(
                4,
                RowResultKind::Rejected,
                &format!("ExternalSyncID \"123\" matches no account …: {DAMAGED_KEY_REMEDY}"),
            ),
            row(
                2,
                RowResultKind::Rejected,
                &format!("FirstName \"JosÃ©\": {ENCODING_REMEDY}"),
            ),
            // A row that went through is never a mistake, whatever its message says.
            row(5, RowResultKind::Updated, ENCODING_REMEDY),
        ];
        let found = gather(&reports);
        assert_eq!(
            found,
            [
                MistakeLines {
                    mistake: Mistake::WrongEncoding,
                    lines: vec![2, 9]
                },
                MistakeLines {
                    mistake: Mistake::DamagedKey,
                    lines: vec![4]
                },
            ]
        );
        let shown = found[0].shown();
        assert_eq!(
            (shown.count, shown.lines.as_str(), shown.more),
            (2, "2, 9", 0)
        );
        assert!(shown.remedy.contains("CSV UTF-8"));
        assert!(gather(&reports[1..2]).is_empty());
    }

    #[test]
    fn a_long_list_of_lines_is_cut_with_a_count() {
        let reports: Vec<RowReport> = (2..102)
            .map(|l| row(l, RowResultKind::Held, DAMAGED_KEY_REMEDY))
            .collect();
        let shown = gather(&reports)[0].shown();
        assert_eq!(shown.count, 100);
        assert_eq!(shown.more, 70);
        assert!(shown.lines.starts_with("2, 3, 4") && shown.lines.ends_with("31"));
    }
}
