//! The accounts one plan is made against, in memory, and the keys it is built for.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

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
    by_id: HashMap<String, usize>,
    by_external: HashMap<(String, String), usize>,
    by_email: HashMap<String, usize>,
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
        self.by_id.entry(account.id.to_string()).or_insert(i);
        if let Some(ext) = account.external_sync_id() {
            self.by_external
                .entry((account.organisation().to_owned(), ext.to_lowercase()))
                .or_insert(i);
            if ext.bytes().all(|b| b.is_ascii_digit())
                && let Some(number) = numeric_key(ext)
            {
                self.by_numeric_external
                    .entry((account.organisation().to_owned(), number))
                    .or_default()
                    .push(i);
            }
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

    /// Adds the accounts of `other` this index does not hold (by ID), and the addresses it
    /// knows are taken: the answer of a second look-up (the namesakes of would-be creates,
    /// the addresses of stems) joined to the first.
    pub fn absorb(&mut self, other: DirectoryIndex) {
        for account in other.accounts {
            if !self.by_id.contains_key(account.id.as_str()) {
                self.insert(account);
            }
        }
        for email in other.taken {
            if !self.by_email.contains_key(&email) {
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
                    || self.by_id.get(a.id.as_str()) != Some(&i)
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
}
