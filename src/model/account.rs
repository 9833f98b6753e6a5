//! An account of the directory as the core sees it: its fields, its portal-owned status, a
//! new account to create and a field change with its before-image.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Email, Field, OdsCode, Person, PortalId};

/// The portal-owned state of an account. A connector never changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Status {
    Pending,
    Active,
    Leaver,
    Disabled,
    Deleted,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Status::Pending,
        Status::Active,
        Status::Leaver,
        Status::Disabled,
        Status::Deleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "Pending",
            Status::Active => "Active",
            Status::Leaver => "Leaver",
            Status::Disabled => "Disabled",
            Status::Deleted => "Deleted",
        }
    }

    /// Parses a status as an export writes it (any case).
    pub fn parse(text: &str) -> Option<Status> {
        Status::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(text.trim()))
    }

    /// Whether a connector may update the account (Active or Pending only).
    pub fn is_live(self) -> bool {
        matches!(self, Status::Active | Status::Pending)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One account of the directory.
///
/// Field values are held in their canonical text form (multi-valued fields joined with `;`),
/// indexed by [`Field`]; `None` is blank. `Field::Id` mirrors `id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub id: PortalId,
    pub status: Status,
    /// Addresses that also deliver to this account (old primaries), lower-case, sorted.
    pub secondary: Vec<Email>,
    values: Vec<Option<Box<str>>>,
}

impl Account {
    /// An account with only its ID, status and organisation set.
    pub fn new(id: PortalId, status: Status, organisation: &OdsCode) -> Account {
        let mut account = Account {
            id: id.clone(),
            status,
            secondary: Vec::new(),
            values: vec![None; Field::ALL.len()],
        };
        account.set(Field::Id, Some(id.as_str()));
        account.set(Field::Organisation, Some(organisation.as_str()));
        account
    }

    /// The account a validated row describes (blank cells blank).
    pub fn from_person(id: PortalId, status: Status, person: &Person) -> Account {
        let mut account = Account::new(id, status, &person.organisation);
        for field in Field::ALL {
            if field != Field::Id && field != Field::Organisation {
                account.set(field, person.value(field).as_deref());
            }
        }
        account
    }

    pub fn get(&self, field: Field) -> Option<&str> {
        self.values
            .get(field_index(field))
            .and_then(|v| v.as_deref())
    }

    /// Sets a field; an empty value is stored as blank.
    pub fn set(&mut self, field: Field, value: Option<&str>) {
        let value = value.filter(|v| !v.is_empty()).map(Box::from);
        if let Some(slot) = self.values.get_mut(field_index(field)) {
            *slot = value;
        }
    }

    pub fn organisation(&self) -> &str {
        self.get(Field::Organisation).unwrap_or_default()
    }

    pub fn email(&self) -> Option<&str> {
        self.get(Field::Email)
    }

    pub fn external_sync_id(&self) -> Option<&str> {
        self.get(Field::ExternalSyncId)
    }

    /// How a message names the account: `anne.lee@nhs.net (ID 123)`.
    pub fn describe(&self) -> String {
        match self.email() {
            Some(email) => format!("{email} (ID {})", self.id),
            None => format!("ID {}", self.id),
        }
    }

    /// Compare-and-set of one change against the account as read now: `Ok(true)` when it is
    /// still to make (the field holds its before-image), `Ok(false)` when it is already in
    /// place, and `Err` with the refusal when the field was changed since the run was
    /// planned. Every backend refuses in these words.
    pub fn still_to_make(&self, change: &Change) -> Result<bool, String> {
        let now = self.get(change.field);
        if now == change.after.as_deref() {
            return Ok(false);
        }
        if now != change.before.as_deref() {
            return Err(format!(
                "{} of {} was changed in the directory since this run was planned (now \"{}\"): \
                 nothing was changed on this account",
                change.field,
                self.describe(),
                now.unwrap_or_default()
            ));
        }
        Ok(true)
    }
}

fn field_index(field: Field) -> usize {
    field.index()
}

/// A new account, as apply asks a backend to create it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAccount {
    /// The account with every field set, its ID minted before the create (so a retried
    /// create can be recognised) and its preferred address.
    pub account: Account,
    /// The run creating it, for the directory's history.
    pub run: String,
}

/// One field change, with the value it replaces (the before-image).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub field: Field,
    pub before: Option<String>,
    pub after: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(field: Field, before: Option<&str>, after: Option<&str>) -> Change {
        Change {
            field,
            before: before.map(str::to_owned),
            after: after.map(str::to_owned),
        }
    }

    #[test]
    fn a_change_is_made_only_over_its_before_image() {
        let mut a = Account::new(
            PortalId::new_unchecked("7"),
            Status::Active,
            &OdsCode::new_unchecked("RXX"),
        );
        a.set(Field::Email, Some("anne.lee@nhs.net"));
        a.set(Field::JobTitle, Some("Nurse"));
        let to_make = change(Field::JobTitle, Some("Nurse"), Some("Sister"));
        assert_eq!(a.still_to_make(&to_make), Ok(true));
        let in_place = change(Field::JobTitle, Some("Porter"), Some("Nurse"));
        assert_eq!(a.still_to_make(&in_place), Ok(false));
        let from_nothing = change(Field::Notes, None, Some("x"));
        assert_eq!(a.still_to_make(&from_nothing), Ok(true));
        let stale = change(Field::JobTitle, Some("Porter"), Some("Sister"));
        let refusal = a.still_to_make(&stale).unwrap_err();
        assert_eq!(
            refusal,
            format!(
                "{} of anne.lee@nhs.net (ID 7) was changed in the directory since this run was \
                 planned (now \"Nurse\"): nothing was changed on this account",
                Field::JobTitle
            )
        );
        let cleared = change(Field::JobTitle, None, Some("Sister"));
        assert!(a.still_to_make(&cleared).is_err());
    }
}
