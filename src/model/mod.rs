//! The person record every source is turned into, and the identifiers it is joined by.
//!
//! In: nothing (plain types). Out: [`Person`] (a validated row, ready to reconcile), the
//! [`Field`] enum naming every portal attribute, newtypes for identifiers so a swapped argument
//! does not compile, and [`RowIssue`], a row problem with its position.

mod account;
mod index;
pub mod naming;
mod packed;
mod provenance;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use account::{Account, Change, NewAccount, Status};
pub use index::{DirectoryIndex, Keys, OrganisationInfo, numeric_key};
pub use packed::PackedPerson;
pub use provenance::{Channel, Provenance};

/// One attribute of a portal account, as the new submission format names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Field {
    Id,
    ExternalSyncId,
    Title,
    FirstName,
    LastName,
    DisplayName,
    Email,
    JobTitle,
    Organisation,
    OrganisationUnit,
    OfficePhone,
    MobilePhone,
    Fax,
    Pager,
    Notes,
    ClinicalRole,
    ClinicalSpeciality,
    WorkArea,
}

impl Field {
    /// Every field, in the new format's column order.
    pub const ALL: [Field; 18] = [
        Field::Id,
        Field::ExternalSyncId,
        Field::Title,
        Field::FirstName,
        Field::LastName,
        Field::DisplayName,
        Field::Email,
        Field::JobTitle,
        Field::Organisation,
        Field::OrganisationUnit,
        Field::OfficePhone,
        Field::MobilePhone,
        Field::Fax,
        Field::Pager,
        Field::Notes,
        Field::ClinicalRole,
        Field::ClinicalSpeciality,
        Field::WorkArea,
    ];

    /// Fields a connector may overwrite on an existing account (DESIGN.md).
    pub const OVERWRITABLE: [Field; 14] = [
        Field::Title,
        Field::FirstName,
        Field::LastName,
        Field::DisplayName,
        Field::Email,
        Field::JobTitle,
        Field::OfficePhone,
        Field::MobilePhone,
        Field::Fax,
        Field::Pager,
        Field::Notes,
        Field::ClinicalRole,
        Field::ClinicalSpeciality,
        Field::WorkArea,
    ];

    /// The canonical column name of the new format.
    pub fn name(self) -> &'static str {
        match self {
            Field::Id => "ID",
            Field::ExternalSyncId => "ExternalSyncID",
            Field::Title => "Title",
            Field::FirstName => "FirstName",
            Field::LastName => "LastName",
            Field::DisplayName => "DisplayName",
            Field::Email => "Email",
            Field::JobTitle => "JobTitle",
            Field::Organisation => "Organisation",
            Field::OrganisationUnit => "OrganisationUnit",
            Field::OfficePhone => "OfficePhone",
            Field::MobilePhone => "MobilePhone",
            Field::Fax => "Fax",
            Field::Pager => "Pager",
            Field::Notes => "Notes",
            Field::ClinicalRole => "ClinicalRole",
            Field::ClinicalSpeciality => "ClinicalSpeciality",
            Field::WorkArea => "WorkArea",
        }
    }

    /// The field's position in [`Field::ALL`], for tables indexed by field.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Looks a field up by its canonical name (as [`Field::name`] writes it).
    pub fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }

    pub fn is_overwritable(self) -> bool {
        Field::OVERWRITABLE.contains(&self)
    }

    pub fn is_multi_valued(self) -> bool {
        matches!(
            self,
            Field::ClinicalRole | Field::ClinicalSpeciality | Field::WorkArea
        )
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

macro_rules! string_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps a value that has already been validated and normalised.
            pub fn new_unchecked(value: impl Into<String>) -> Self {
                Self(value.into())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_newtype!(
    /// The portal's immutable account ID.
    PortalId
);
string_newtype!(
    /// The organisation's own stable key for a person (payroll number, objectGUID…).
    ExternalSyncId
);
string_newtype!(
    /// An ODS code: upper-case letters and digits.
    OdsCode
);
string_newtype!(
    /// A primary e-mail address in the service domain, lower-cased.
    Email
);
string_newtype!(
    /// A UK telephone number in E.164 form (`+441134960000`).
    Phone
);

/// A validated, normalised submission row: what reconcile works on.
///
/// `None` (or an absent list) means the cell was blank: "leave as is".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    /// The row's line number in the file it came from (header = 1); 0 for non-file sources.
    pub line: u64,
    pub id: Option<PortalId>,
    pub external_sync_id: ExternalSyncId,
    pub organisation: OdsCode,
    pub organisation_unit: Option<OdsCode>,
    pub email: Option<Email>,
    pub title: Option<String>,
    pub first_name: String,
    pub last_name: String,
    pub display_name: Option<String>,
    pub job_title: Option<String>,
    pub office_phone: Option<Phone>,
    pub mobile_phone: Option<Phone>,
    pub fax: Option<Phone>,
    pub pager: Option<String>,
    pub notes: Option<String>,
    pub clinical_role: Option<Vec<String>>,
    pub clinical_speciality: Option<Vec<String>>,
    pub work_area: Option<Vec<String>>,
    /// The row says this is a person with no account yet, even though an account of the
    /// same name exists (the `NewAccount` column): not a likely duplicate.
    #[serde(default)]
    pub new_account: bool,
}

impl Person {
    /// The field's value in its canonical text form (multi-valued fields joined with `;`),
    /// or `None` when the row left it blank.
    pub fn value(&self, field: Field) -> Option<String> {
        fn s<T: AsRef<str>>(v: &Option<T>) -> Option<String> {
            v.as_ref().map(|v| v.as_ref().to_owned())
        }
        match field {
            Field::Id => s(&self.id),
            Field::ExternalSyncId => Some(self.external_sync_id.to_string()),
            Field::Title => s(&self.title),
            Field::FirstName => Some(self.first_name.clone()),
            Field::LastName => Some(self.last_name.clone()),
            Field::DisplayName => s(&self.display_name),
            Field::Email => s(&self.email),
            Field::JobTitle => s(&self.job_title),
            Field::Organisation => Some(self.organisation.to_string()),
            Field::OrganisationUnit => s(&self.organisation_unit),
            Field::OfficePhone => s(&self.office_phone),
            Field::MobilePhone => s(&self.mobile_phone),
            Field::Fax => s(&self.fax),
            Field::Pager => s(&self.pager),
            Field::Notes => s(&self.notes),
            Field::ClinicalRole => self.clinical_role.as_ref().map(|v| v.join(";")),
            Field::ClinicalSpeciality => self.clinical_speciality.as_ref().map(|v| v.join(";")),
            Field::WorkArea => self.work_area.as_ref().map(|v| v.join(";")),
        }
    }
}

/// A problem with one cell (or a whole row) of a submission, with its position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowIssue {
    /// The file's own line number (header = 1), or the sheet's row number.
    pub line: u64,
    /// The column as the file names it; empty for a problem with the whole row.
    pub column: String,
    /// The value as sent.
    pub value: String,
    /// What is wrong, in words a local administrator understands.
    pub message: String,
}

/// A value as a message quotes it: line breaks, tabs and other control characters written
/// out (`\n`, `U+0007`), so that a message stays one line.
pub fn shown(value: &str) -> std::borrow::Cow<'_, str> {
    if !value.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("U+{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}
