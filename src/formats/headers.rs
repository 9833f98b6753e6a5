//! Header recognition: the one table of column names and aliases, and layout detection.
//!
//! In: the header cells of a file. Out: the [`Layout`] and, for each column, what it maps to,
//! or the reason the file is neither layout.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use crate::model::Field;

/// Which of the two accepted layouts a file uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// The new format (TANSync field names).
    New,
    /// The NHSmail 1 / legacy push-connector format.
    Old,
}

/// What one column of a file maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Field(Field),
    /// `NewAccount` (both layouts): `yes` says the row is a person with no account yet,
    /// even though an account of the same name exists.
    NewAccount,
    /// Known in the old format but with no portal field (Department, Business Activity).
    Ignored,
    /// Not a column of the layout; reported once and ignored.
    Unknown,
}

/// The alias table. Every real-world variant of a header goes here and nowhere else.
/// Names are compared after [`header_key`].
const NEW_ALIASES: &[(Field, &[&str])] = &[
    (Field::Id, &["ID", "PortalID"]),
    (
        Field::ExternalSyncId,
        &["ExternalSyncID", "Local ID", "LocalID", "ExternalSyncId"],
    ),
    (Field::Title, &["Title"]),
    (Field::FirstName, &["FirstName", "Forename", "GivenName"]),
    (Field::LastName, &["LastName", "Surname", "FamilyName"]),
    (Field::DisplayName, &["DisplayName"]),
    (Field::Email, &["Email", "EmailAddress", "Mail"]),
    (Field::JobTitle, &["JobTitle"]),
    (
        Field::Organisation,
        &["Organisation", "ODSCode", "OrganisationCode", "OrgCode"],
    ),
    (
        Field::OrganisationUnit,
        &["OrganisationUnit", "OU", "OrganisationUnitCode"],
    ),
    (Field::OfficePhone, &["OfficePhone", "Telephone", "Phone"]),
    (Field::MobilePhone, &["MobilePhone", "Mobile"]),
    (Field::Fax, &["Fax"]),
    (Field::Pager, &["Pager"]),
    (Field::Notes, &["Notes"]),
    (Field::ClinicalRole, &["ClinicalRole"]),
    (
        Field::ClinicalSpeciality,
        &["ClinicalSpeciality", "ClinicalSpecialty"],
    ),
    (Field::WorkArea, &["WorkArea"]),
];

const OLD_COLUMNS: &[(Option<Field>, &str)] = &[
    (Some(Field::Organisation), "Organisation Code"),
    (Some(Field::ExternalSyncId), "Local Unique Identifier"),
    (Some(Field::Title), "Title"),
    (Some(Field::FirstName), "First Name"),
    (Some(Field::LastName), "Last Name"),
    (Some(Field::DisplayName), "Preferred Name"),
    (Some(Field::JobTitle), "Job Title"),
    (Some(Field::OfficePhone), "Telephone"),
    (Some(Field::MobilePhone), "Mobile"),
    (Some(Field::Pager), "Pager"),
    (Some(Field::Fax), "Fax"),
    (Some(Field::ClinicalRole), "Job Role"),
    (Some(Field::ClinicalSpeciality), "Clinical Specialty"),
    (Some(Field::WorkArea), "Work Area"),
    (None, "Department"),
    (None, "Business Activity"),
];

/// Mandatory fields of both layouts (the old layout names them by its own headers).
const MANDATORY: [Field; 4] = [
    Field::ExternalSyncId,
    Field::FirstName,
    Field::LastName,
    Field::Organisation,
];

/// A header compared case-insensitively, ignoring spaces, `_` and `-`.
pub fn header_key(header: &str) -> String {
    header
        .trim_start_matches('\u{feff}')
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Each layout's header keys and what they map to, built once.
static NEW_KEYS: LazyLock<HashMap<String, Column>> = LazyLock::new(|| {
    let mut keys = HashMap::new();
    for (field, names) in NEW_ALIASES {
        for name in *names {
            keys.entry(header_key(name))
                .or_insert(Column::Field(*field));
        }
    }
    keys
});

static OLD_KEYS: LazyLock<HashMap<String, Column>> = LazyLock::new(|| {
    let mut keys = HashMap::new();
    for (field, name) in OLD_COLUMNS {
        let column = field.map_or(Column::Ignored, Column::Field);
        keys.entry(header_key(name)).or_insert(column);
    }
    keys
});

/// The header of the [`Column::NewAccount`] column, as the documentation spells it.
pub const NEW_ACCOUNT_HEADER: &str = "NewAccount";

fn new_column(key: &str) -> Column {
    if key == "newaccount" {
        return Column::NewAccount;
    }
    NEW_KEYS.get(key).copied().unwrap_or(Column::Unknown)
}

fn old_column(key: &str) -> Column {
    if key == "newaccount" {
        return Column::NewAccount;
    }
    OLD_KEYS.get(key).copied().unwrap_or(Column::Unknown)
}

/// The header a layout uses for a field, as its documentation spells it.
pub fn layout_header(layout: Layout, field: Field) -> &'static str {
    match layout {
        Layout::New => field.name(),
        Layout::Old => OLD_COLUMNS
            .iter()
            .find(|(f, _)| *f == Some(field))
            .map_or(field.name(), |(_, name)| name),
    }
}

fn mandatory_list(layout: Layout) -> String {
    MANDATORY
        .iter()
        .map(|f| layout_header(layout, *f))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The outcome of reading a header row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderMap {
    pub layout: Layout,
    pub columns: Vec<Column>,
    /// Columns reported once and ignored (unknown, or known but with no portal field).
    pub warnings: Vec<String>,
}

/// Recognises the layout from the header cells and maps every column, in one pass over them
/// (a duplicate is found by the field's first column, not by searching the columns before it).
///
/// Errors name what is missing and the mandatory headers of both layouts.
pub fn map_headers(headers: &[&str]) -> Result<HeaderMap, String> {
    let keys: Vec<String> = headers.iter().map(|h| header_key(h)).collect();
    let is_old = keys.iter().any(|k| k == "organisationcode")
        && keys.iter().any(|k| k == "localuniqueidentifier");
    let layout = if is_old { Layout::Old } else { Layout::New };
    let columns: Vec<Column> = keys
        .iter()
        .map(|k| match layout {
            Layout::New => new_column(k),
            Layout::Old => old_column(k),
        })
        .collect();

    let mut problems = Vec::new();
    let mut first_of: [Option<usize>; Field::ALL.len()] = [None; Field::ALL.len()];
    let mut new_account: Option<usize> = None;
    for (i, column) in columns.iter().enumerate() {
        if *column == Column::NewAccount {
            match new_account {
                None => new_account = Some(i),
                Some(j) => problems.push(format!(
                    "the columns \"{}\" (column {}) and \"{}\" (column {}) both give \
                     {NEW_ACCOUNT_HEADER}",
                    headers[j].trim(),
                    j + 1,
                    headers[i].trim(),
                    i + 1,
                )),
            }
            continue;
        }
        let Column::Field(f) = column else {
            continue;
        };
        match first_of[f.index()] {
            None => first_of[f.index()] = Some(i),
            Some(j) => problems.push(format!(
                "the columns \"{}\" (column {}) and \"{}\" (column {}) both give {}",
                headers[j].trim(),
                j + 1,
                headers[i].trim(),
                i + 1,
                f
            )),
        }
    }
    let missing: Vec<&str> = MANDATORY
        .iter()
        .filter(|f| !columns.contains(&Column::Field(**f)))
        .map(|f| layout_header(layout, *f))
        .collect();
    if !missing.is_empty() {
        let recognised = columns.iter().any(|c| matches!(c, Column::Field(_)));
        let lead = if recognised {
            format!(
                "the file looks like the {} format but lacks the mandatory column(s) {}",
                match layout {
                    Layout::New => "new",
                    Layout::Old => "old (NHSmail 1)",
                },
                missing.join(", ")
            )
        } else {
            "the file is in neither accepted format".to_owned()
        };
        problems.push(format!(
            "{lead}. The new format needs the headers {}; the old (NHSmail 1) format needs {}",
            mandatory_list(Layout::New),
            mandatory_list(Layout::Old)
        ));
    }
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }

    let mut warnings = Vec::new();
    for (header, column) in headers.iter().zip(&columns) {
        match column {
            Column::Unknown if !header.trim().is_empty() => warnings.push(format!(
                "the column \"{}\" is not part of the format and was ignored",
                header.trim()
            )),
            Column::Unknown => warnings.push("a column without a header was ignored".to_owned()),
            Column::Ignored => warnings.push(format!(
                "the column \"{}\" has no portal field: accepted and ignored",
                header.trim()
            )),
            Column::Field(_) | Column::NewAccount => {}
        }
    }
    Ok(HeaderMap {
        layout,
        columns,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_match_ignoring_case_spaces_and_separators() {
        let m = map_headers(&["first_name", "SURNAME", "Local ID", "ods-code", "e mail"])
            .expect("new format");
        assert_eq!(m.layout, Layout::New);
        assert_eq!(
            m.columns[..4],
            [
                Column::Field(Field::FirstName),
                Column::Field(Field::LastName),
                Column::Field(Field::ExternalSyncId),
                Column::Field(Field::Organisation),
            ]
        );
        assert_eq!(m.columns[4], Column::Field(Field::Email));
    }

    #[test]
    fn new_account_is_a_column_of_both_layouts_given_once() {
        let m = map_headers(&[
            "ExternalSyncID",
            "FirstName",
            "LastName",
            "Organisation",
            "new_account",
        ])
        .expect("new format");
        assert_eq!(m.columns[4], Column::NewAccount);
        assert!(m.warnings.is_empty(), "{:?}", m.warnings);
        let m = map_headers(&[
            "Organisation Code",
            "Local Unique Identifier",
            "First Name",
            "Last Name",
            "New Account",
        ])
        .expect("old format");
        assert_eq!((m.layout, m.columns[4]), (Layout::Old, Column::NewAccount));
        let err = map_headers(&[
            "ExternalSyncID",
            "FirstName",
            "LastName",
            "Organisation",
            "NewAccount",
            "New Account",
        ])
        .unwrap_err();
        assert!(err.contains("both give NewAccount"), "{err}");
    }

    #[test]
    fn old_layout_is_recognised_by_its_two_headers() {
        let m = map_headers(&[
            "Organisation Code",
            "Local Unique Identifier",
            "First Name",
            "Last Name",
            "Department",
            "Favourite Colour",
        ])
        .expect("old format");
        assert_eq!(m.layout, Layout::Old);
        assert_eq!(m.columns[4], Column::Ignored);
        assert_eq!(m.columns[5], Column::Unknown);
        assert_eq!(m.warnings.len(), 2);
        assert!(m.warnings[1].contains("Favourite Colour"));
    }

    #[test]
    fn neither_layout_names_both_mandatory_sets() {
        let err = map_headers(&["Name", "Phone number"]).unwrap_err();
        assert!(err.contains("neither accepted format"), "{err}");
        assert!(err.contains("ExternalSyncID, FirstName, LastName, Organisation"));
        assert!(err.contains("Local Unique Identifier, First Name, Last Name, Organisation Code"));
    }

    #[test]
    fn missing_mandatory_column_is_named() {
        let err = map_headers(&["ExternalSyncID", "FirstName", "Organisation"]).unwrap_err();
        assert!(
            err.contains("lacks the mandatory column(s) LastName"),
            "{err}"
        );
    }

    #[test]
    fn two_columns_for_one_field_reject_the_file() {
        let err = map_headers(&[
            "ExternalSyncID",
            "FirstName",
            "LastName",
            "Organisation",
            "Email",
            "Mail",
        ])
        .unwrap_err();
        assert!(
            err.contains("(column 5)") && err.contains("(column 6)"),
            "{err}"
        );
    }
}
