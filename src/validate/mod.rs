//! Validation and normalisation of every row of a submission at once.
//!
//! In: a [`Submission`] and the [`Rules`] of the deployment. Out: one [`RowResult`] per data
//! row, in file order: a clean [`Person`] or every problem of the row, each naming its line,
//! column, value and reason. Rows that claim the same ID, ExternalSyncID or e-mail are all
//! refused, each naming the others. Pure: no I/O, no clock; rows are checked in parallel.

mod codes;
mod fields;
pub mod phone;
pub mod text;

pub use codes::CodeList;

use std::borrow::Cow;
use std::collections::HashMap;

use rayon::prelude::*;
use rustc_hash::FxHashMap;
use serde::Serialize;
use smallvec::SmallVec;

use crate::formats::{Limits, Submission, grouped, layout_header, unneutralise};
use crate::model::{
    Email, ExternalSyncId, Field, OdsCode, PackedPerson, Person, Phone, PortalId, RowIssue,
};
use fields::{check_email, check_key, check_ods, check_portal_id};
use phone::PhoneKind;

/// Longest accepted values, in characters.
const MAX_NAME: usize = 64;
const MAX_DISPLAY_NAME: usize = 256;
const MAX_JOB_TITLE: usize = 128;
const MAX_NOTES: usize = 1024;
const MAX_CODE_VALUE: usize = 128;

/// What rows are checked against.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Mail domains of the service (lower case).
    pub domains: Vec<String>,
    /// Whether a service domain covers its sub-domains (`name@xyz.nhs.net` under `nhs.net`).
    pub subdomains: bool,
    pub titles: CodeList,
    pub clinical_roles: Option<CodeList>,
    pub clinical_specialities: Option<CodeList>,
    pub work_areas: Option<CodeList>,
    /// The connector name each organisation's old-format files must give (upper-case ODS key).
    pub connectors: HashMap<String, String>,
    /// What one file may expand to (read by every entry point), and how many other lines a
    /// duplicate's message names.
    pub limits: Limits,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            domains: vec!["nhs.net".to_owned()],
            subdomains: true,
            titles: CodeList::default_titles(),
            clinical_roles: None,
            clinical_specialities: None,
            work_areas: None,
            connectors: HashMap::new(),
            limits: Limits::default(),
        }
    }
}

/// A row's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowOutcome {
    Valid(PackedPerson),
    Refused(Vec<RowIssue>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowResult {
    pub line: u64,
    pub outcome: RowOutcome,
}

impl RowResult {
    pub fn is_valid(&self) -> bool {
        matches!(self.outcome, RowOutcome::Valid(_))
    }

    pub fn issues(&self) -> &[RowIssue] {
        match &self.outcome {
            RowOutcome::Valid(_) => &[],
            RowOutcome::Refused(issues) => issues,
        }
    }
}

/// Counts for a summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub valid: usize,
    pub refused: usize,
}

pub fn counts(results: &[RowResult]) -> Counts {
    let valid = results.iter().filter(|r| r.is_valid()).count();
    Counts {
        valid,
        refused: results.len() - valid,
    }
}

/// Validates every row; the result has one entry per data row, in file order.
/// An ODS code as rows give it (letters and digits, up to 10), upper-cased; or why not.
pub fn ods_code(value: &str) -> Result<OdsCode, String> {
    fields::check_ods(value.trim())
}

pub fn validate(sub: &Submission, rules: &Rules) -> Vec<RowResult> {
    let columns = sub.field_columns();
    let new_account = sub.new_account_column();
    let (mut results, refused_keys): (Vec<RowResult>, Vec<Option<Box<Keys>>>) = sub
        .rows
        .par_iter()
        .with_min_len(512)
        .map(|row| {
            if row.cells.is_empty() {
                let outcome = RowOutcome::Refused(row.issues.clone());
                return (
                    RowResult {
                        line: row.line,
                        outcome,
                    },
                    None,
                );
            }
            // Split once: a row kept as its place in the file is cut at each delimiter on
            // every `get`, which is linear in the row.
            let cells: SmallVec<[&str; 48]> = row.cells.iter().collect();
            let mut check = RowCheck {
                sub,
                rules,
                columns: &columns,
                new_account,
                line: row.line,
                cells: &cells,
                issues: row.issues.clone(),
            };
            match check.person() {
                Some(p) if check.issues.is_empty() => {
                    let outcome = RowOutcome::Valid(PackedPerson::pack(&p));
                    (
                        RowResult {
                            line: row.line,
                            outcome,
                        },
                        None,
                    )
                }
                // A refused row still claims its keys: a duplicate of it is refused too.
                person => {
                    let keys = person.map(|p| Box::new(Keys::of(&p)));
                    let outcome = RowOutcome::Refused(check.issues);
                    (
                        RowResult {
                            line: row.line,
                            outcome,
                        },
                        keys,
                    )
                }
            }
        })
        .unzip();
    refuse_duplicates(
        sub,
        &mut results,
        &refused_keys,
        rules.limits.max_lines_named,
    );
    results
}

/// The join keys a refused row claims, for the in-file duplicate check.
struct Keys {
    id: Option<PortalId>,
    external: ExternalSyncId,
    email: Option<Email>,
}

impl Keys {
    fn of(p: &Person) -> Keys {
        Keys {
            id: p.id.clone(),
            external: p.external_sync_id.clone(),
            email: p.email.clone(),
        }
    }
}

/// A key compared and hashed ignoring ASCII case, without a lower-cased copy.
#[derive(Clone, Copy)]
struct Caseless<'a>(&'a str);

impl PartialEq for Caseless<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_ignore_ascii_case(other.0)
    }
}

impl Eq for Caseless<'_> {}

impl std::hash::Hash for Caseless<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        for b in self.0.bytes() {
            state.write_u8(b.to_ascii_lowercase());
        }
        state.write_u8(0xff);
    }
}

/// The key a row claims for `field` (ID, ExternalSyncID or Email).
fn key_of<'a>(
    field: Field,
    result: &'a RowResult,
    refused: &'a Option<Box<Keys>>,
) -> Option<&'a str> {
    match (&result.outcome, refused) {
        (RowOutcome::Valid(p), _) => match field {
            Field::Id => p.id(),
            Field::ExternalSyncId => Some(p.external_sync_id()),
            _ => p.email(),
        },
        (RowOutcome::Refused(_), Some(k)) => match field {
            Field::Id => k.id.as_ref().map(PortalId::as_str),
            Field::ExternalSyncId => Some(k.external.as_str()),
            _ => k.email.as_ref().map(Email::as_str),
        },
        (RowOutcome::Refused(_), None) => None,
    }
}

/// Groups of row indexes that claim the same value of `field` (each group of 2 or more).
///
/// The table of keys seen holds only row indexes (the key read back from the row when
/// compared), so a file of a million rows costs a few megabytes here, not a copy of its keys.
fn duplicate_groups(
    field: Field,
    results: &[RowResult],
    refused: &[Option<Box<Keys>>],
) -> Vec<Vec<usize>> {
    use std::hash::BuildHasher;
    let hasher = rustc_hash::FxBuildHasher;
    let hash = |key: &str| hasher.hash_one(Caseless(key));
    let key = |i: usize| key_of(field, &results[i], &refused[i]);
    let mut first: hashbrown::HashTable<usize> = hashbrown::HashTable::with_capacity(results.len());
    // For a key seen more than once: its first row and the group index.
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut group_of_first: FxHashMap<usize, usize> = FxHashMap::default();
    for (i, (result, keys)) in results.iter().zip(refused).enumerate() {
        let Some(claimed) = key_of(field, result, keys) else {
            continue;
        };
        let entry = first.entry(
            hash(claimed),
            |&j| key(j).is_some_and(|k| Caseless(k) == Caseless(claimed)),
            |&j| hash(key(j).unwrap_or_default()),
        );
        match entry {
            hashbrown::hash_table::Entry::Vacant(v) => {
                v.insert(i);
            }
            hashbrown::hash_table::Entry::Occupied(o) => {
                let head = *o.get();
                let g = *group_of_first.entry(head).or_insert_with(|| {
                    groups.push(vec![head]);
                    groups.len() - 1
                });
                groups[g].push(i);
            }
        }
    }
    groups
}

/// Refuses every row of each group of duplicates. Each message names at most `named` other
/// lines, then says how many more there are: a group of n rows costs n short messages, not n².
fn refuse_duplicates(
    sub: &Submission,
    results: &mut [RowResult],
    refused: &[Option<Box<Keys>>],
    named: usize,
) {
    let fields = [Field::Id, Field::ExternalSyncId, Field::Email];
    let shared: &[RowResult] = results;
    let found: Vec<(Field, Vec<Vec<usize>>)> = fields
        .par_iter()
        .map(|f| (*f, duplicate_groups(*f, shared, refused)))
        .collect();
    for (field, groups) in found {
        let at = sub.column_of(field);
        let column = at
            .and_then(|c| sub.headers.get(c))
            .unwrap_or(field.name())
            .trim()
            .to_owned();
        for indexes in groups {
            for &i in &indexes {
                let others = indexes.len() - 1;
                let lines: Vec<String> = indexes
                    .iter()
                    .filter(|&&j| j != i)
                    .take(named)
                    .map(|&j| results[j].line.to_string())
                    .collect();
                let more = others - lines.len();
                let list = if more == 0 {
                    lines.join(", ")
                } else {
                    format!(
                        "{} and {} more line{}",
                        lines.join(", "),
                        grouped(more as u64),
                        if more == 1 { "" } else { "s" }
                    )
                };
                let value = at
                    .and_then(|c| sub.rows[i].cells.get(c))
                    .unwrap_or_default();
                let issue = RowIssue {
                    line: results[i].line,
                    column: column.clone(),
                    value: value.to_owned(),
                    message: format!(
                        "is also claimed by line{} {list} of this file: every row claiming it \
                         is refused",
                        if others == 1 { "" } else { "s" },
                    ),
                };
                let outcome = &mut results[i].outcome;
                match outcome {
                    RowOutcome::Refused(issues) => issues.push(issue),
                    RowOutcome::Valid(_) => *outcome = RowOutcome::Refused(vec![issue]),
                }
            }
        }
    }
}

/// The checks of one row, collecting its issues.
struct RowCheck<'a> {
    sub: &'a Submission,
    rules: &'a Rules,
    columns: &'a [Option<usize>; Field::ALL.len()],
    /// The position of the `NewAccount` column.
    new_account: Option<usize>,
    line: u64,
    cells: &'a [&'a str],
    issues: Vec<RowIssue>,
}

impl<'a> RowCheck<'a> {
    fn issue(&mut self, field: Field, value: &str, message: impl Into<String>) {
        let column = self.columns[field.index()]
            .and_then(|c| self.sub.headers.get(c))
            .unwrap_or_else(|| layout_header(self.sub.layout, field));
        self.issues.push(RowIssue {
            line: self.line,
            column: column.trim().to_owned(),
            value: value.to_owned(),
            message: message.into(),
        });
    }

    /// The cleaned value of a field's cell, borrowed from the row when cleaning changed
    /// nothing; `None` when blank, absent or unusable.
    fn cell(&mut self, field: Field) -> Option<Cow<'a, str>> {
        let index = self.columns[field.index()]?;
        let raw = unneutralise(self.cells.get(index)?);
        if let Err(message) = text::check_encoding(raw) {
            self.issue(field, raw, message);
            return None;
        }
        match text::clean(raw) {
            Ok(v) if v.is_empty() => None,
            Ok(v) => Some(v),
            Err(message) => {
                self.issue(field, raw, message);
                None
            }
        }
    }

    /// The `NewAccount` cell: `yes` (or `true`, as a spreadsheet or a directory writes a
    /// boolean) says the row is another person than an account of the same name; `no`,
    /// `false` or blank say nothing. Any other value is an issue.
    fn new_account(&mut self) -> bool {
        let Some(index) = self.new_account else {
            return false;
        };
        let raw = unneutralise(self.cells.get(index).copied().unwrap_or_default());
        let value = raw.trim();
        let header = self
            .sub
            .headers
            .get(index)
            .unwrap_or(crate::formats::NEW_ACCOUNT_HEADER)
            .trim()
            .to_owned();
        if value.is_empty()
            || value.eq_ignore_ascii_case("no")
            || value.eq_ignore_ascii_case("false")
        {
            return false;
        }
        if value.eq_ignore_ascii_case("yes") || value.eq_ignore_ascii_case("true") {
            return true;
        }
        self.issues.push(RowIssue {
            line: self.line,
            column: header,
            value: raw.to_owned(),
            message: "must be yes or no (blank means no): yes says the row is a person with no \
                      account yet, although an account of the same name exists"
                .to_owned(),
        });
        false
    }

    /// A cell that must be present.
    fn required(&mut self, field: Field) -> Option<Cow<'a, str>> {
        let before = self.issues.len();
        let value = self.cell(field);
        if value.is_none() && self.issues.len() == before {
            self.issue(field, "", "is required and is blank");
        }
        value
    }

    /// Applies a check to a present value; a failure becomes an issue and `None`.
    fn checked<T>(
        &mut self,
        field: Field,
        value: Option<Cow<'a, str>>,
        check: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let value = value?;
        match check(&value) {
            Ok(v) => Some(v),
            Err(message) => {
                self.issue(field, &value, message);
                None
            }
        }
    }

    /// Applies a check that keeps the value as it is.
    fn kept(
        &mut self,
        field: Field,
        value: Option<Cow<'a, str>>,
        check: impl FnOnce(&str) -> Result<(), String>,
    ) -> Option<String> {
        let value = value?;
        match check(&value) {
            Ok(()) => Some(value.into_owned()),
            Err(message) => {
                self.issue(field, &value, message);
                None
            }
        }
    }

    fn name(&mut self, field: Field, value: Option<Cow<'a, str>>) -> Option<String> {
        self.kept(field, value, |v| text::check_name(v, MAX_NAME))
    }

    fn free_text(&mut self, field: Field, max: usize) -> Option<String> {
        let value = self.cell(field);
        self.kept(field, value, |v| text::check_free_text(v, max))
    }

    fn phone(&mut self, field: Field, kind: PhoneKind) -> Option<Phone> {
        let value = self.cell(field);
        self.checked(field, value, |v| phone::normalise(v, kind))
    }

    fn multi(&mut self, field: Field) -> Option<Vec<String>> {
        let value = self.cell(field)?;
        let list = match field {
            Field::ClinicalRole => self.rules.clinical_roles.as_ref(),
            Field::ClinicalSpeciality => self.rules.clinical_specialities.as_ref(),
            _ => self.rules.work_areas.as_ref(),
        };
        let separator = self.sub.value_separator();
        // Sized for every part, so the list kept is exactly as long as it needs to be.
        let mut values: Vec<String> = Vec::with_capacity(1 + value.matches(separator).count());
        let mut unknown = Vec::new();
        let mut problems = Vec::new();
        for part in value.split(separator) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let accepted = match list {
                Some(list) => match list.canonical(part) {
                    Some(v) => v.to_owned(),
                    None => {
                        unknown.push(part.to_owned());
                        continue;
                    }
                },
                None => match text::check_free_text(part, MAX_CODE_VALUE) {
                    Ok(()) => part.to_owned(),
                    Err(p) => {
                        problems.push(format!("the value \"{part}\" {p}"));
                        continue;
                    }
                },
            };
            if !values.contains(&accepted) {
                values.push(accepted);
            }
        }
        if !unknown.is_empty() {
            let close: Vec<String> = unknown
                .iter()
                .filter_map(|u| {
                    let near = list?.closest(u, 3);
                    (!near.is_empty()).then(|| {
                        let near: Vec<String> = near.iter().map(|v| format!("\"{v}\"")).collect();
                        format!("for \"{u}\" perhaps {}", near.join(", "))
                    })
                })
                .collect();
            let close = if close.is_empty() {
                String::new()
            } else {
                format!(" ({})", close.join("; "))
            };
            // A cell that is just the one unknown value is not quoted twice.
            let whole = unknown.len() == 1 && unknown[0] == value.trim();
            problems.insert(
                0,
                if whole {
                    format!("is not on the list of accepted values{close}")
                } else {
                    format!(
                        "holds {}, which {} not on the list of accepted values{close}",
                        unknown
                            .iter()
                            .map(|u| format!("\"{u}\""))
                            .collect::<Vec<_>>()
                            .join(", "),
                        if unknown.len() == 1 { "is" } else { "are" }
                    )
                },
            );
        }
        if !problems.is_empty() {
            self.issue(field, &value, problems.join("; "));
            return None;
        }
        values.shrink_to_fit();
        (!values.is_empty()).then_some(values)
    }

    fn person(&mut self) -> Option<Person> {
        let external = self.required(Field::ExternalSyncId);
        let external = self.checked(Field::ExternalSyncId, external, check_key);
        let id = self.cell(Field::Id);
        let id = self.checked(Field::Id, id, check_portal_id);
        let organisation = self.required(Field::Organisation);
        let organisation = self.checked(Field::Organisation, organisation, check_ods);
        let unit = self.cell(Field::OrganisationUnit);
        let unit = self.checked(Field::OrganisationUnit, unit, check_ods);
        let first = self.required(Field::FirstName);
        let first_name = self.name(Field::FirstName, first);
        let last = self.required(Field::LastName);
        let last_name = self.name(Field::LastName, last);
        let title = self.cell(Field::Title);
        let titles = &self.rules.titles;
        let title = self.checked(Field::Title, title, |v| {
            titles
                .canonical(v.trim_end_matches('.'))
                .map(str::to_owned)
                .ok_or_else(|| "is not an accepted title (Mr, Mrs, Miss, Ms, Mx, Dr, …)".to_owned())
        });
        let display_name = self.free_text(Field::DisplayName, MAX_DISPLAY_NAME);
        let email = self.cell(Field::Email);
        let (domains, subdomains) = (&self.rules.domains, self.rules.subdomains);
        let email = self.checked(Field::Email, email, |v| check_email(v, domains, subdomains));
        let job_title = self.free_text(Field::JobTitle, MAX_JOB_TITLE);
        let office_phone = self.phone(Field::OfficePhone, PhoneKind::Any);
        let mobile_phone = self.phone(Field::MobilePhone, PhoneKind::Mobile);
        let fax = self.phone(Field::Fax, PhoneKind::Any);
        let pager = self.free_text(Field::Pager, 32);
        let notes = self.free_text(Field::Notes, MAX_NOTES);
        let clinical_role = self.multi(Field::ClinicalRole);
        let clinical_speciality = self.multi(Field::ClinicalSpeciality);
        let work_area = self.multi(Field::WorkArea);
        let new_account = self.new_account();
        self.check_connector(organisation.as_ref());

        Some(Person {
            line: self.line,
            id,
            external_sync_id: external?,
            organisation: organisation?,
            organisation_unit: unit,
            email,
            title,
            first_name: first_name?,
            last_name: last_name?,
            display_name,
            job_title,
            office_phone,
            mobile_phone,
            fax,
            pager,
            notes,
            clinical_role,
            clinical_speciality,
            work_area,
            new_account,
        })
    }

    /// An old-format file's `Connector,` line must name the organisation's connector.
    fn check_connector(&mut self, organisation: Option<&OdsCode>) {
        let (Some(named), Some(org)) = (&self.sub.connector, organisation) else {
            return;
        };
        if let Some(expected) = self.rules.connectors.get(org.as_str())
            && !expected.eq_ignore_ascii_case(named)
        {
            self.issues.push(RowIssue {
                line: self.line,
                column: "Connector".to_owned(),
                value: named.clone(),
                message: format!(
                    "the file names the connector \"{named}\" but {org}'s connector is \"{expected}\""
                ),
            });
        }
    }
}

#[cfg(test)]
mod tests;
