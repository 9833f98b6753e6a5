//! Swapped columns: a file (or a sync's mapping) that gives two fields the other way round.
//!
//! In: the rows of a run and the index they are planned against, part by part (a [`Tally`]
//! carried through, as the plan is). Out: a [`Swapped`] verdict when most rows that join an
//! account have two fields of one pair exchanged: the FirstName and LastName columns of the
//! account, or two of its phone numbers. Then the whole run is refused: applying it would
//! rename (or renumber) everyone, which the portal's helpdesk cannot undo. A single row with
//! its names exchanged ("Lee Anne") is a rename, left to the guard. Pure.

use crate::model::{Account, DirectoryIndex, Field, PackedPerson, naming};
use crate::validate::{RowOutcome, RowResult};

use super::{Channel, Policy};

/// The pairs of fields a file can plausibly give the other way round: the two names, and
/// the phone numbers a spreadsheet keeps side by side. (Pager is free text, the code lists
/// have different vocabularies, and a title, job title or note is not confused with another
/// field's value.)
pub const PAIRS: [(Field, Field); 4] = [
    (Field::FirstName, Field::LastName),
    (Field::OfficePhone, Field::MobilePhone),
    (Field::OfficePhone, Field::Fax),
    (Field::MobilePhone, Field::Fax),
];

/// Fewest exchanged rows that make a file look swapped (besides being more than half of the
/// rows that can tell).
pub const MIN_SWAPPED: u64 = 3;

/// The start of every row's message when the run is refused as swapped.
pub const ROW_PREFIX: &str = "every row is refused: ";

/// Examples a refusal names.
const EXAMPLES: usize = 3;

/// One pair's count over the rows seen so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct PairTally {
    /// Rows that join an account, where row and account both give both fields, and the row's
    /// two values differ (exchanging equal values shows nothing).
    comparable: u64,
    /// Of those, rows whose two values are the account's, exchanged.
    swapped: u64,
    /// (line, the row's two values, the account's description).
    examples: Vec<(u64, String, String, String)>,
}

/// The counts of every pair, carried through a plan made part by part.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pairs: [PairTally; PAIRS.len()],
}

/// Two fields most joined rows give the other way round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Swapped {
    pub fields: (Field, Field),
    pub swapped: u64,
    pub comparable: u64,
    /// Up to three: (line, the row's first value, its second, the account).
    pub examples: Vec<(u64, String, String, String)>,
}

/// A row's value of a field of [`PAIRS`], without a copy.
fn row_value(p: &PackedPerson, field: Field) -> Option<&str> {
    match field {
        Field::FirstName
        | Field::LastName
        | Field::OfficePhone
        | Field::MobilePhone
        | Field::Fax => p.get(field),
        _ => None,
    }
}

/// An ASCII name as [`naming::name_key`] folds it: letters and digits, lower case.
fn folded_ascii(s: &str) -> impl Iterator<Item = u8> + '_ {
    s.bytes()
        .filter(u8::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
}

/// Whether two values of a pair's fields are the same: names as a name key folds them
/// (without allocating for ASCII names, the usual case), phones as validation wrote them.
fn same(field: Field, a: &str, b: &str) -> bool {
    if !matches!(field, Field::FirstName | Field::LastName) {
        return a == b;
    }
    if a.is_ascii() && b.is_ascii() {
        return folded_ascii(a).eq(folded_ascii(b));
    }
    naming::name_key(a, "") == naming::name_key(b, "")
}

/// The account a row joins, as reconcile's first candidate: by ID, ExternalSyncID, e-mail.
fn joined<'i>(p: &PackedPerson, index: &'i DirectoryIndex, org: &str) -> Option<&'i Account> {
    p.id()
        .and_then(|id| index.by_id(id))
        .or_else(|| index.by_external(org, p.external_sync_id()))
        .or_else(|| p.email().and_then(|e| index.by_email(e)))
}

impl Tally {
    /// Counts the rows of one part against the index built for them.
    pub fn add(&mut self, results: &[RowResult], index: &DirectoryIndex, policy: &Policy) {
        if policy.channel == Channel::Scim {
            return;
        }
        let org = policy.organisation.as_str();
        for r in results {
            let RowOutcome::Valid(p) = &r.outcome else {
                continue;
            };
            let Some(account) = joined(p, index, org) else {
                continue;
            };
            for (pair, tally) in PAIRS.iter().zip(self.pairs.iter_mut()) {
                let (a, b) = *pair;
                let (Some(ra), Some(rb), Some(aa), Some(ab)) = (
                    row_value(p, a),
                    row_value(p, b),
                    account.get(a),
                    account.get(b),
                ) else {
                    continue;
                };
                // The usual row gives the account's own values: nothing exchanged.
                let unchanged = ra == aa && rb == ab;
                if same(a, ra, rb) {
                    continue;
                }
                tally.comparable += 1;
                if !unchanged && same(a, ra, ab) && same(b, rb, aa) {
                    tally.swapped += 1;
                    if tally.examples.len() < EXAMPLES {
                        tally.examples.push((
                            r.line,
                            ra.to_owned(),
                            rb.to_owned(),
                            account.describe(),
                        ));
                    }
                }
            }
        }
    }

    /// The pair most rows give exchanged, when more than half of the rows that can tell,
    /// and at least [`MIN_SWAPPED`], do.
    pub fn verdict(&self) -> Option<Swapped> {
        PAIRS
            .iter()
            .zip(&self.pairs)
            .filter(|(_, t)| t.swapped >= MIN_SWAPPED && t.swapped * 2 > t.comparable)
            .max_by_key(|(_, t)| t.swapped)
            .map(|(pair, t)| Swapped {
                fields: *pair,
                swapped: t.swapped,
                comparable: t.comparable,
                examples: t.examples.clone(),
            })
    }
}

impl Swapped {
    /// The two fields as the channel names them: `the FirstName and LastName columns`, `the
    /// attributes sn (mapped to FirstName) and givenName (mapped to LastName)`.
    fn named(&self, channel: &Channel) -> String {
        let (a, b) = self.fields;
        match channel {
            Channel::Sync { attributes, .. } => {
                let attr = |f: Field| {
                    attributes
                        .iter()
                        .find(|(g, _)| *g == f)
                        .map_or(f.name().to_owned(), |(_, x)| format!("{x} (mapped to {f})"))
                };
                format!("the attributes {} and {}", attr(a), attr(b))
            }
            Channel::File | Channel::Scim => format!("the {a} and {b} columns"),
        }
    }

    /// How many rows: `41 of 50 rows that match an account`.
    fn share(&self) -> String {
        let both = if self.fields == PAIRS[0] {
            ""
        } else {
            " and give both"
        };
        format!(
            "{} of {} rows that match an account{both}",
            self.swapped, self.comparable
        )
    }

    /// What every row of the run is told: short, the same on each.
    pub fn row_message(&self, channel: &Channel) -> String {
        format!(
            "{ROW_PREFIX}{} look swapped ({} give them the other way round)",
            self.named(channel),
            self.share()
        )
    }

    /// The refusal of the whole run, said once: the pair, the count, examples, the remedy.
    pub fn refusal(&self, channel: &Channel) -> String {
        let (a, b) = self.fields;
        let examples: Vec<String> = self
            .examples
            .iter()
            .map(|(line, va, vb, account)| {
                format!("line {line} gives {a} \"{va}\" and {b} \"{vb}\" for {account}")
            })
            .collect();
        let remedy = match channel {
            Channel::Sync { .. } => "correct the source's mapping and run the sync again",
            Channel::File | Channel::Scim => {
                "put each value in its own column and send the file again"
            }
        };
        format!(
            "{} look swapped: {} give them the other way round ({}); every row is refused: \
             {remedy}",
            self.named(channel),
            self.share(),
            examples.join("; ")
        )
    }
}

#[cfg(test)]
mod tests;
