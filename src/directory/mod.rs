//! The directory: the portal's accounts, behind one trait, and the in-memory index reconcile
//! reads.
//!
//! In: a backend (the embedded SQLite directory in [`local`], the portal's SCIM API in
//! [`scim`], either chosen at run time through [`any`]).
//! Out: [`Account`]s (every person field plus portal ID, status and secondary addresses), the
//! [`Directory`] operations apply needs (look-ups, create, compare-and-set field updates,
//! before-images), and a pure [`DirectoryIndex`] built from the accounts a submission can
//! touch. Address and display-name generation live in [`naming`].

pub mod any;
pub mod local;
pub mod naming;
pub mod portable;
pub mod scim;

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::{Email, Field, OdsCode, Person, PortalId};

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
}

/// One field change, with the value it replaces (the before-image).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub field: Field,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// What a backend did with one operation of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpOutcome {
    /// Created now, or found already created under its minted ID (a retried create).
    Created(Account),
    /// Not created: the organisation already has an account with this ExternalSyncID.
    Exists(Account),
    /// The changes are in place (applied now or found already applied).
    Updated,
    /// Not done; why, in words for an administrator.
    Failed(String),
}

/// One operation of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Create(NewAccount),
    /// Compare-and-set: each field is set to `after` only where it still holds `before` (or
    /// already holds `after`); otherwise the whole operation fails.
    Update {
        id: PortalId,
        changes: Vec<Change>,
        /// Whose change this is, for the directory's history.
        run: String,
    },
}

/// A directory backend failed as a whole (not a single row).
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("directory database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("directory file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("the directory holds a value it cannot read: {0}")]
    Corrupt(String),
    /// The SCIM portal failed as a whole (credentials, unreadable answers, retries exhausted).
    #[error("SCIM directory: {0}")]
    Scim(String),
}

/// The join keys of a submission: what an index must be built for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keys {
    pub ids: Vec<String>,
    /// (organisation, lower-case ExternalSyncID).
    pub external: Vec<(String, String)>,
    /// Lower-case addresses.
    pub emails: Vec<String>,
    /// Address stems (`anne.lee@nhs.net`) whose numbered variants must be known, to
    /// generate free addresses.
    pub stems: Vec<String>,
    /// Organisations whose units and size the plan needs.
    pub organisations: Vec<String>,
}

/// An organisation as the index knows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrganisationInfo {
    /// Organisation units (upper case).
    pub units: HashSet<String>,
    /// Accounts of the organisation (any status).
    pub accounts: u64,
}

/// The directory operations the pipeline needs. A SCIM backend implements the same.
#[allow(async_fn_in_trait)]
pub trait Directory {
    /// The accounts a submission can touch (by ID, ExternalSyncID within an organisation,
    /// primary or secondary address), the taken addresses sharing the given stems, and the
    /// named organisations: the snapshot reconcile runs on.
    async fn index_for(&self, keys: &Keys) -> Result<DirectoryIndex, DirectoryError>;
    async fn by_id(&self, id: &PortalId) -> Result<Option<Account>, DirectoryError>;
    async fn by_external_sync_id(
        &self,
        organisation: &str,
        external: &str,
    ) -> Result<Option<Account>, DirectoryError>;
    async fn by_email(&self, email: &str) -> Result<Option<Account>, DirectoryError>;
    /// Every account of an organisation, ordered by primary address then ID.
    async fn list(&self, organisation: &str) -> Result<Vec<Account>, DirectoryError>;
    async fn unit_exists(&self, organisation: &str, unit: &str) -> Result<bool, DirectoryError>;
    /// Applies a batch; one outcome per operation, in order. Creates first look the ID and
    /// ExternalSyncID up again, so a retried batch never duplicates an account.
    async fn apply(&self, ops: &[Op]) -> Result<Vec<OpOutcome>, DirectoryError>;
}

/// The accounts one plan is made against: pure, in memory.
#[derive(Debug, Clone, Default)]
pub struct DirectoryIndex {
    accounts: Vec<Account>,
    by_id: HashMap<String, usize>,
    by_external: HashMap<(String, String), usize>,
    by_email: HashMap<String, usize>,
    /// Addresses in use besides those of `accounts` (which `by_email` holds).
    taken: HashSet<String>,
    organisations: HashMap<String, OrganisationInfo>,
}

impl DirectoryIndex {
    /// Builds an index; later accounts with a key already seen are ignored.
    pub fn new(accounts: Vec<Account>) -> DirectoryIndex {
        let mut index = DirectoryIndex::default();
        for account in accounts {
            index.insert(account);
        }
        index
    }

    pub fn insert(&mut self, account: Account) {
        let i = self.accounts.len();
        self.by_id.entry(account.id.to_string()).or_insert(i);
        if let Some(ext) = account.external_sync_id() {
            self.by_external
                .entry((account.organisation().to_owned(), ext.to_lowercase()))
                .or_insert(i);
        }
        for email in account
            .email()
            .into_iter()
            .chain(account.secondary.iter().map(Email::as_str))
        {
            self.by_email.entry(email.to_owned()).or_insert(i);
        }
        self.accounts.push(account);
    }

    /// Records an address in use (on an account outside the index).
    pub fn mark_taken(&mut self, email: &str) {
        let email = email.to_lowercase();
        if !self.by_email.contains_key(&email) {
            self.taken.insert(email);
        }
    }

    /// Records an organisation, its units and size.
    pub fn add_organisation(&mut self, code: &str, info: OrganisationInfo) {
        self.organisations.insert(code.to_ascii_uppercase(), info);
    }

    pub fn by_id(&self, id: &str) -> Option<&Account> {
        self.by_id.get(id).map(|&i| &self.accounts[i])
    }

    pub fn by_external(&self, organisation: &str, external: &str) -> Option<&Account> {
        self.by_external
            .get(&(organisation.to_owned(), external.to_lowercase()))
            .map(|&i| &self.accounts[i])
    }

    pub fn by_email(&self, email: &str) -> Option<&Account> {
        self.by_email
            .get(&email.to_lowercase())
            .map(|&i| &self.accounts[i])
    }

    /// Whether an address belongs to an account of the index or was marked taken.
    pub fn is_taken(&self, email: &str) -> bool {
        self.by_email.contains_key(email) || self.taken.contains(email)
    }

    pub fn organisation(&self, code: &str) -> Option<&OrganisationInfo> {
        self.organisations.get(code)
    }

    pub fn len(&self) -> usize {
        self.accounts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }
}
