//! The accounts one plan is made against, in memory, and the keys it is built for.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

use super::{Account, Email, naming};

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
    /// (organisation, [`numeric_key`] of an ExternalSyncID): the stored keys of digits only
    /// that read as the same number, so a key a spreadsheet damaged (`123` for `000123`,
    /// `123.0` for `123`) finds the account it meant. A backend may leave these unanswered:
    /// then only exact keys join, and nothing is refused for a near key.
    pub near_external: Vec<(String, String)>,
    /// (organisation, [`naming::name_key`]) of the rows that would create an account: the
    /// organisation's Active and Pending accounts of that name without an ExternalSyncID,
    /// so a likely duplicate is refused. Asked only for would-be creates (a second look-up,
    /// once the other keys have joined what they join). A backend may leave these unanswered: then the index finds
    /// namesakes only among the accounts it holds for other keys.
    pub names: Vec<(String, String)>,
}

/// A key as the number a spreadsheet reads it as, for finding the account a damaged key
/// meant: digits with their leading zeros removed (`000123` → `123`), a whole number written
/// with a fraction of zeros (`123.0` → `123`), or scientific notation that is a whole number
/// (`1.23E+11` → `123000000000`). `None` for any other key, and for zero itself.
pub fn numeric_key(key: &str) -> Option<String> {
    let digits = if key.bytes().all(|b| b.is_ascii_digit()) {
        key.to_owned()
    } else if let Some((whole, fraction)) = key.split_once('.')
        && !fraction.is_empty()
        && fraction.bytes().all(|b| b == b'0')
        && whole.bytes().all(|b| b.is_ascii_digit())
    {
        whole.to_owned()
    } else {
        scientific_whole(key)?
    };
    let trimmed = digits.trim_start_matches('0');
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

/// The digits of a whole number written in scientific notation (`1.23E+11`); at most
/// [`MAX_NUMERIC_DIGITS`] of them, so a hostile exponent costs nothing.
fn scientific_whole(key: &str) -> Option<String> {
    let (mantissa, exponent) = key.split_once(['E', 'e'])?;
    let exponent: usize = exponent
        .strip_prefix('+')
        .unwrap_or(exponent)
        .parse()
        .ok()?;
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let fraction = fraction.trim_end_matches('0');
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) {
        return None;
    }
    let zeros = exponent.checked_sub(fraction.len())?;
    if whole.len() + fraction.len() + zeros > MAX_NUMERIC_DIGITS {
        return None;
    }
    Some(format!("{whole}{fraction}{}", "0".repeat(zeros)))
}

/// Longest key [`numeric_key`] reads from scientific notation (the longest accepted key).
const MAX_NUMERIC_DIGITS: usize = 64;

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
    /// Accounts by ID, ExternalSyncID and address: each entry is where the key is in
    /// `accounts` (no copy of it), found by a hash of the key as looked up.
    by_id: HashTable<usize>,
    /// (organisation, ExternalSyncID in lower case).
    by_external: HashTable<usize>,
    /// An account's address: the account, and which of its addresses (0 the primary, then
    /// each secondary).
    by_email: HashTable<(usize, u32)>,
    /// (organisation, [`numeric_key`]) of every stored ExternalSyncID of digits only.
    by_numeric_external: HashMap<(String, String), Vec<usize>>,
    /// Addresses in use besides those of `accounts` (which `by_email` holds).
    taken: HashSet<String>,
    organisations: HashMap<String, OrganisationInfo>,
    /// (organisation, name key) of every Active and Pending account without an ExternalSyncID,
    /// made on the first [`DirectoryIndex::namesakes`] (a plan whose rows all join never
    /// makes it).
    by_name: OnceLock<HashMap<(String, String), Vec<usize>>>,
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
        self.by_name = OnceLock::new();
        let i = self.accounts.len();
        // In the list first: the tables' entries are read from it (also while they grow).
        self.accounts.push(account);
        let accounts = &self.accounts;
        let account = &accounts[i];
        let id = account.id.as_str();
        if find_id(&self.by_id, accounts, id).is_none() {
            self.by_id
                .insert_unique(id_hash(id), i, |&j| id_hash(accounts[j].id.as_str()));
        }
        if let Some(ext) = account.external_sync_id() {
            let org = account.organisation();
            if find_external(&self.by_external, accounts, org, ext).is_none() {
                self.by_external
                    .insert_unique(external_hash(org, ext), i, |&j| {
                        let a = &accounts[j];
                        external_hash(a.organisation(), a.external_sync_id().unwrap_or_default())
                    });
            }
            if ext.bytes().all(|b| b.is_ascii_digit())
                && let Some(number) = numeric_key(ext)
            {
                self.by_numeric_external
                    .entry((org.to_owned(), number))
                    .or_default()
                    .push(i);
            }
        }
        for (slot, email) in addresses(account) {
            if find_email(&self.by_email, accounts, email).is_none() {
                self.by_email
                    .insert_unique(email_hash(email), (i, slot), |&(j, slot)| {
                        email_hash(address(&accounts[j], slot))
                    });
            }
        }
    }

    fn by_id_at(&self, id: &str) -> Option<usize> {
        find_id(&self.by_id, &self.accounts, id)
    }

    fn by_external_at(&self, organisation: &str, external: &str) -> Option<usize> {
        find_external(&self.by_external, &self.accounts, organisation, external)
    }

    /// An address as stored (the directory keeps them in lower case).
    fn by_email_at(&self, email: &str) -> Option<usize> {
        find_email(&self.by_email, &self.accounts, email)
    }

    /// Adds the accounts of `other` this index does not hold (by ID), and the addresses it
    /// knows are taken: the answer of a second look-up (the namesakes of would-be creates,
    /// the addresses of stems) joined to the first.
    pub fn absorb(&mut self, other: DirectoryIndex) {
        for account in other.accounts {
            if self.by_id_at(account.id.as_str()).is_none() {
                self.insert(account);
            }
        }
        for email in other.taken {
            if self.by_email_at(&email).is_none() {
                self.taken.insert(email);
            }
        }
    }

    /// The Active and Pending accounts of `organisation` without an ExternalSyncID whose first
    /// and last name have the [`naming::name_key`] `name`, in ID order: the accounts a row of
    /// that name would likely duplicate (one with a key was made for another person).
    pub fn namesakes(&self, organisation: &str, name: &str) -> Vec<&Account> {
        let by_name = self.by_name.get_or_init(|| {
            let mut map: HashMap<(String, String), Vec<usize>> = HashMap::new();
            for (i, a) in self.accounts.iter().enumerate() {
                if !a.status.is_live()
                    || a.external_sync_id().is_some()
                    || self.by_id_at(a.id.as_str()) != Some(i)
                {
                    continue;
                }
                let (Some(first), Some(last)) = (
                    a.get(super::Field::FirstName),
                    a.get(super::Field::LastName),
                ) else {
                    continue;
                };
                map.entry((a.organisation().to_owned(), naming::name_key(first, last)))
                    .or_default()
                    .push(i);
            }
            map
        });
        let mut found: Vec<&Account> = by_name
            .get(&(organisation.to_owned(), name.to_owned()))
            .into_iter()
            .flatten()
            .map(|&i| &self.accounts[i])
            .collect();
        found.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
        found
    }

    /// Records an address in use (on an account outside the index).
    pub fn mark_taken(&mut self, email: &str) {
        let email = email.to_lowercase();
        if self.by_email_at(&email).is_none() {
            self.taken.insert(email);
        }
    }

    /// Records an organisation, its units and size.
    pub fn add_organisation(&mut self, code: &str, info: OrganisationInfo) {
        self.organisations.insert(code.to_ascii_uppercase(), info);
    }

    pub fn by_id(&self, id: &str) -> Option<&Account> {
        self.by_id_at(id).map(|i| &self.accounts[i])
    }

    pub fn by_external(&self, organisation: &str, external: &str) -> Option<&Account> {
        self.by_external_at(organisation, external)
            .map(|i| &self.accounts[i])
    }

    /// The accounts of `organisation` whose ExternalSyncID is of digits only, is not
    /// `external`, and reads as the same number as `external` (see [`numeric_key`]): what a
    /// spreadsheet's damage to `external` most likely meant. In stored-key order.
    pub fn near_external(&self, organisation: &str, external: &str) -> Vec<&Account> {
        let Some(number) = numeric_key(external) else {
            return Vec::new();
        };
        let mut found: Vec<&Account> = self
            .by_numeric_external
            .get(&(organisation.to_owned(), number))
            .into_iter()
            .flatten()
            .map(|&i| &self.accounts[i])
            .filter(|a| {
                a.external_sync_id()
                    .is_some_and(|ext| !ext.eq_ignore_ascii_case(external))
            })
            .collect();
        found.sort_by_key(|a| a.external_sync_id().map(str::to_owned));
        found
    }

    pub fn by_email(&self, email: &str) -> Option<&Account> {
        let found = if email.bytes().any(|b| b.is_ascii_uppercase()) || !email.is_ascii() {
            self.by_email_at(&email.to_lowercase())
        } else {
            self.by_email_at(email)
        };
        found.map(|i| &self.accounts[i])
    }

    /// Whether an address belongs to an account of the index or was marked taken.
    pub fn is_taken(&self, email: &str) -> bool {
        self.by_email_at(email).is_some() || self.taken.contains(email)
    }

    pub fn organisation(&self, code: &str) -> Option<&OrganisationInfo> {
        self.organisations.get(code)
    }

    /// The accounts held, each once, in the order they were inserted.
    pub fn into_accounts(self) -> Vec<Account> {
        self.accounts
    }

    pub fn len(&self) -> usize {
        self.accounts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }
}

fn find_id(table: &HashTable<usize>, accounts: &[Account], id: &str) -> Option<usize> {
    table
        .find(id_hash(id), |&j| accounts[j].id.as_str() == id)
        .copied()
}

fn find_external(
    table: &HashTable<usize>,
    accounts: &[Account],
    organisation: &str,
    external: &str,
) -> Option<usize> {
    table
        .find(external_hash(organisation, external), |&j| {
            let a = &accounts[j];
            a.organisation() == organisation
                && a.external_sync_id()
                    .is_some_and(|ext| same_lower(ext, external))
        })
        .copied()
}

fn find_email(table: &HashTable<(usize, u32)>, accounts: &[Account], email: &str) -> Option<usize> {
    table
        .find(email_hash(email), |&(j, slot)| {
            address(&accounts[j], slot) == email
        })
        .map(|&(j, _)| j)
}

/// An account's addresses: (0, the primary), then (k, the k-th secondary).
fn addresses(account: &Account) -> impl Iterator<Item = (u32, &str)> {
    let primary = account.email().map(|e| (0, e));
    let secondary = (1u32..).zip(account.secondary.iter().map(Email::as_str));
    primary.into_iter().chain(secondary)
}

fn address(account: &Account, slot: u32) -> &str {
    match slot {
        0 => account.email().unwrap_or_default(),
        k => account
            .secondary
            .get(k as usize - 1)
            .map_or("", Email::as_str),
    }
}

fn id_hash(id: &str) -> u64 {
    FxBuildHasher.hash_one(id)
}

fn email_hash(email: &str) -> u64 {
    FxBuildHasher.hash_one(email)
}

/// The hash of (organisation, the key in lower case), as `str::to_lowercase` lowers it; an
/// ASCII key is hashed without a lower-case copy.
fn external_hash(organisation: &str, external: &str) -> u64 {
    let mut h = FxBuildHasher.build_hasher();
    h.write(organisation.as_bytes());
    h.write_u8(0xff);
    if external.is_ascii() {
        for b in external.bytes() {
            h.write_u8(b.to_ascii_lowercase());
        }
    } else {
        for b in external.to_lowercase().bytes() {
            h.write_u8(b);
        }
    }
    h.finish()
}

/// Whether two keys are equal in lower case (as `str::to_lowercase` lowers them).
fn same_lower(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        a.eq_ignore_ascii_case(b)
    } else {
        a.to_lowercase() == b.to_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_keys_read_keys_as_a_spreadsheet_does() {
        for (key, number) in [
            ("000123", Some("123")),
            ("123", Some("123")),
            ("123.0", Some("123")),
            ("00123.00", Some("123")),
            ("1.23E+11", Some("123000000000")),
            ("1.23e11", Some("123000000000")),
            ("1E+3", Some("1000")),
            ("1.2345E+2", None),
            ("1E+999", None),
            ("123.5", None),
            ("E123", None),
            ("12a3", None),
            ("0000", None),
            ("", None),
        ] {
            assert_eq!(numeric_key(key).as_deref(), number, "{key}");
        }
    }

    mod found_as_a_scan_finds {
        use proptest::prelude::*;

        use super::*;
        use crate::model::{Field, OdsCode, PortalId, Status};

        /// Keys from a small alphabet with case and non-ASCII letters, so keys collide, differ
        /// only in case, or lower-case to something longer (`İ`).
        fn key() -> impl Strategy<Value = String> {
            "[aAbBİiσΣς1]{0,3}"
        }

        fn account()
        -> impl Strategy<Value = (String, String, Option<String>, Option<String>, Vec<String>)>
        {
            (
                key(),
                prop::sample::select(vec!["RXX".to_owned(), "RYY".to_owned()]),
                prop::option::of(key()),
                prop::option::of("[ab]{1,2}@nhs\\.net"),
                prop::collection::vec("[ab]{1,2}@nhs\\.net", 0..2),
            )
        }

        proptest! {
            /// Every look-up gives the first account inserted that has the key, as a scan
            /// over the accounts in order gives it.
            #[test]
            fn by_id_external_and_email(
                accounts in prop::collection::vec(account(), 0..12),
                id in key(),
                org in prop::sample::select(vec!["RXX", "RYY"]),
                external in key(),
                email in "[aAbB]{1,2}@nhs\\.net",
            ) {
                let accounts: Vec<Account> = accounts
                    .into_iter()
                    .map(|(id, org, ext, email, secondary)| {
                        let mut a = Account::new(
                            PortalId::new_unchecked(id),
                            Status::Active,
                            &OdsCode::new_unchecked(org),
                        );
                        a.set(Field::ExternalSyncId, ext.as_deref().filter(|e| !e.is_empty()));
                        a.set(Field::Email, email.as_deref());
                        a.secondary = secondary.into_iter().map(Email::new_unchecked).collect();
                        a
                    })
                    .collect();
                let index = DirectoryIndex::new(accounts.clone());
                let scan_id = accounts.iter().find(|a| a.id.as_str() == id);
                prop_assert_eq!(index.by_id(&id).map(|a| &a.id), scan_id.map(|a| &a.id));
                let scan_ext = accounts.iter().find(|a| {
                    a.organisation() == org
                        && a.external_sync_id()
                            .is_some_and(|e| e.to_lowercase() == external.to_lowercase())
                });
                prop_assert_eq!(
                    index.by_external(org, &external).map(|a| &a.id),
                    scan_ext.map(|a| &a.id)
                );
                let lower = email.to_lowercase();
                let scan_email = accounts.iter().find(|a| {
                    a.email() == Some(lower.as_str())
                        || a.secondary.iter().any(|s| s.as_str() == lower)
                });
                prop_assert_eq!(
                    index.by_email(&email).map(|a| &a.id),
                    scan_email.map(|a| &a.id)
                );
                prop_assert_eq!(index.is_taken(&lower), scan_email.is_some());
            }
        }
    }
}
