//! Validation and normalisation of every row of a submission at once.
//!
//! In: a [`Submission`] and the [`Rules`] of the deployment. Out: one [`RowResult`] per data
//! row, in file order: a clean [`Person`] or every problem of the row, each naming its line,
//! column, value and reason. Rows that claim the same ID, ExternalSyncID or e-mail are all
//! refused, each naming the others. Pure: no I/O, no clock; rows are checked in parallel.

mod codes;
pub mod phone;
pub mod text;

pub use codes::CodeList;

use std::collections::HashMap;

use rayon::prelude::*;
use serde::Serialize;

use crate::config::Config;
use crate::formats::{Submission, layout_header, unneutralise};
use crate::model::{Email, ExternalSyncId, Field, OdsCode, Person, Phone, PortalId, RowIssue};
use phone::PhoneKind;

/// Longest accepted values, in characters.
const MAX_NAME: usize = 64;
const MAX_DISPLAY_NAME: usize = 256;
const MAX_JOB_TITLE: usize = 128;
const MAX_NOTES: usize = 1024;
const MAX_KEY: usize = 64;
const MAX_CODE_VALUE: usize = 128;

/// What rows are checked against.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Mail domains of the service (lower case).
    pub domains: Vec<String>,
    pub titles: CodeList,
    pub clinical_roles: Option<CodeList>,
    pub clinical_specialities: Option<CodeList>,
    pub work_areas: Option<CodeList>,
    /// The connector name each organisation's old-format files must give (upper-case ODS key).
    pub connectors: HashMap<String, String>,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            domains: vec!["nhs.net".to_owned()],
            titles: CodeList::default_titles(),
            clinical_roles: None,
            clinical_specialities: None,
            work_areas: None,
            connectors: HashMap::new(),
        }
    }
}

impl Rules {
    /// The rules a configuration describes (reads its code-list files).
    pub fn from_config(config: &Config) -> std::io::Result<Rules> {
        let load = |path: &Option<std::path::PathBuf>| -> std::io::Result<Option<CodeList>> {
            path.as_ref().map(CodeList::load).transpose()
        };
        Ok(Rules {
            domains: config
                .service
                .domains
                .iter()
                .map(|d| d.to_ascii_lowercase())
                .collect(),
            titles: load(&config.validation.titles)?.unwrap_or_else(CodeList::default_titles),
            clinical_roles: load(&config.validation.clinical_roles)?,
            clinical_specialities: load(&config.validation.clinical_specialities)?,
            work_areas: load(&config.validation.work_areas)?,
            connectors: config
                .organisations
                .iter()
                .filter_map(|o| {
                    o.connector
                        .clone()
                        .map(|c| (o.code.to_ascii_uppercase(), c))
                })
                .collect(),
        })
    }
}

/// A row's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowOutcome {
    Valid(Box<Person>),
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
pub fn validate(sub: &Submission, rules: &Rules) -> Vec<RowResult> {
    let checked: Vec<(RowResult, Keys)> = sub
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
                    Keys::default(),
                );
            }
            let mut check = RowCheck {
                sub,
                rules,
                line: row.line,
                cells: &row.cells,
                issues: row.issues.clone(),
            };
            let person = check.person();
            let keys = Keys::of(&person);
            let outcome = match person {
                Some(p) if check.issues.is_empty() => RowOutcome::Valid(Box::new(p)),
                _ => RowOutcome::Refused(check.issues),
            };
            (
                RowResult {
                    line: row.line,
                    outcome,
                },
                keys,
            )
        })
        .collect();
    let (mut results, keys): (Vec<RowResult>, Vec<Keys>) = checked.into_iter().unzip();
    refuse_duplicates(sub, &mut results, &keys);
    results
}

/// The join keys a row claims, lower-cased, for the in-file duplicate check.
#[derive(Default)]
struct Keys {
    id: Option<String>,
    external: Option<String>,
    email: Option<String>,
}

impl Keys {
    fn of(person: &Option<Person>) -> Keys {
        match person {
            None => Keys::default(),
            Some(p) => Keys {
                id: p.id.as_ref().map(|v| v.as_str().to_ascii_lowercase()),
                external: Some(p.external_sync_id.as_str().to_ascii_lowercase()),
                email: p.email.as_ref().map(|v| v.as_str().to_owned()),
            },
        }
    }
}

fn refuse_duplicates(sub: &Submission, results: &mut [RowResult], keys: &[Keys]) {
    type KeyOf = fn(&Keys) -> Option<&str>;
    let fields: [(Field, KeyOf); 3] = [
        (Field::Id, |k| k.id.as_deref()),
        (Field::ExternalSyncId, |k| k.external.as_deref()),
        (Field::Email, |k| k.email.as_deref()),
    ];
    for (field, key_of) in fields {
        let mut lines_by_key: HashMap<&str, Vec<usize>> = HashMap::with_capacity(keys.len());
        for (i, k) in keys.iter().enumerate() {
            if let Some(key) = key_of(k) {
                lines_by_key.entry(key).or_default().push(i);
            }
        }
        for indexes in lines_by_key.values().filter(|v| v.len() > 1) {
            for &i in indexes {
                let others: Vec<String> = indexes
                    .iter()
                    .filter(|&&j| j != i)
                    .map(|&j| results[j].line.to_string())
                    .collect();
                let column = sub
                    .column_of(field)
                    .and_then(|c| sub.headers.get(c))
                    .unwrap_or(field.name());
                let value = sub
                    .column_of(field)
                    .and_then(|c| sub.rows[i].cells.get(c))
                    .unwrap_or_default();
                let issue = RowIssue {
                    line: results[i].line,
                    column: column.to_owned(),
                    value: value.to_owned(),
                    message: format!(
                        "line {} of this file claim{} the same {}: every row claiming it is refused",
                        others.join(", "),
                        if others.len() == 1 { "s" } else { "" },
                        layout_header(sub.layout, field),
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
    line: u64,
    cells: &'a csv::StringRecord,
    issues: Vec<RowIssue>,
}

impl RowCheck<'_> {
    fn issue(&mut self, field: Field, value: &str, message: impl Into<String>) {
        let column = self
            .sub
            .column_of(field)
            .and_then(|c| self.sub.headers.get(c))
            .unwrap_or_else(|| layout_header(self.sub.layout, field));
        self.issues.push(RowIssue {
            line: self.line,
            column: column.trim().to_owned(),
            value: value.to_owned(),
            message: message.into(),
        });
    }

    /// The cleaned value of a field's cell; `None` when blank, absent or unusable.
    fn cell(&mut self, field: Field) -> Option<String> {
        let index = self.sub.column_of(field)?;
        let raw = unneutralise(self.cells.get(index)?);
        match text::clean(raw) {
            Ok(v) if v.is_empty() => None,
            Ok(v) => Some(v.into_owned()),
            Err(message) => {
                self.issue(field, raw, message);
                None
            }
        }
    }

    /// A cell that must be present.
    fn required(&mut self, field: Field) -> Option<String> {
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
        value: Option<String>,
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

    fn name(&mut self, field: Field, value: Option<String>) -> Option<String> {
        self.checked(field, value, |v| {
            text::check_name(v, MAX_NAME).map(|()| v.to_owned())
        })
    }

    fn free_text(&mut self, field: Field, max: usize) -> Option<String> {
        let value = self.cell(field);
        self.checked(field, value, |v| {
            text::check_free_text(v, max).map(|()| v.to_owned())
        })
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
        let mut values: Vec<String> = Vec::new();
        let mut problems = Vec::new();
        for part in value.split(self.sub.value_separator()) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let accepted = match list {
                Some(list) => list
                    .canonical(part)
                    .map(str::to_owned)
                    .ok_or_else(|| format!("\"{part}\" is not on the list of accepted values")),
                None => text::check_free_text(part, MAX_CODE_VALUE).map(|()| part.to_owned()),
            };
            match accepted {
                Ok(v) if !values.contains(&v) => values.push(v),
                Ok(_) => {}
                Err(p) => problems.push(p),
            }
        }
        if !problems.is_empty() {
            self.issue(field, &value, problems.join("; "));
            return None;
        }
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
        let domains = &self.rules.domains;
        let email = self.checked(Field::Email, email, |v| check_email(v, domains));
        let job_title = self.free_text(Field::JobTitle, MAX_JOB_TITLE);
        let office_phone = self.phone(Field::OfficePhone, PhoneKind::Any);
        let mobile_phone = self.phone(Field::MobilePhone, PhoneKind::Mobile);
        let fax = self.phone(Field::Fax, PhoneKind::Any);
        let pager = self.free_text(Field::Pager, 32);
        let notes = self.free_text(Field::Notes, MAX_NOTES);
        let clinical_role = self.multi(Field::ClinicalRole);
        let clinical_speciality = self.multi(Field::ClinicalSpeciality);
        let work_area = self.multi(Field::WorkArea);
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

/// ExternalSyncID: no white space, no formula start, not mangled by a spreadsheet.
fn check_key(value: &str) -> Result<ExternalSyncId, String> {
    if text::is_scientific_notation(value) {
        return Err(
            "looks like a number a spreadsheet shortened (scientific notation): its digits are \
             lost; format the column as Text and send the file again"
                .to_owned(),
        );
    }
    text::check_not_formula(value)?;
    if value.chars().any(char::is_whitespace) {
        return Err("must not contain spaces".to_owned());
    }
    let count = value.chars().count();
    if count > MAX_KEY {
        return Err(format!(
            "is {count} characters long; at most {MAX_KEY} are allowed"
        ));
    }
    Ok(ExternalSyncId::new_unchecked(value))
}

/// The portal's ID: letters, digits and `-`.
fn check_portal_id(value: &str) -> Result<PortalId, String> {
    if text::is_scientific_notation(value) {
        return Err(
            "looks like a number a spreadsheet shortened (scientific notation): its digits are \
             lost; format the column as Text and send the file again"
                .to_owned(),
        );
    }
    if value.len() > MAX_KEY || !value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err("is not a portal ID (letters, digits and '-')".to_owned());
    }
    Ok(PortalId::new_unchecked(value))
}

/// ODS codes: letters and digits, upper-cased.
fn check_ods(value: &str) -> Result<OdsCode, String> {
    if value.is_empty() || value.len() > 10 || !value.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err("is not an ODS code (up to 10 letters and digits)".to_owned());
    }
    Ok(OdsCode::new_unchecked(value.to_ascii_uppercase()))
}

/// A primary address: valid syntax and in a service domain (otherwise it is a contact).
fn check_email(value: &str, domains: &[String]) -> Result<Email, String> {
    let lower = value.to_lowercase();
    let Some((local, domain)) = lower.rsplit_once('@') else {
        return Err("is not an e-mail address (no @)".to_owned());
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
    let domain_ok = !domain.is_empty()
        && domain.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if !local_ok || !domain_ok {
        return Err("is not a valid e-mail address".to_owned());
    }
    if !domains.iter().any(|d| d == domain) {
        return Err(format!(
            "is outside the service domain ({}): this person would be a contact, and a \
             connector cannot create contacts",
            domains.join(", ")
        ));
    }
    Ok(Email::new_unchecked(lower))
}

#[cfg(test)]
mod tests;
