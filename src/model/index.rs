//! The accounts one plan is made against, in memory, and the keys it is built for.

use std::collections::{HashMap, HashSet};

use super::{Account, Email};

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
