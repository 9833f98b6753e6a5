//! Reconcile: join each valid row to the directory and decide what happens to it.
//!
//! In: validation's [`RowResult`]s, a [`DirectoryIndex`] (built for the rows' [`keys`]) and
//! the organisation's [`Policy`]. Out: a [`Plan`] with one entry per row, in file order.
//! Rules (DESIGN.md): join by ID, then ExternalSyncID within the organisation, then e-mail;
//! all candidates one account → update or unchanged; disagreeing candidates, a different
//! ExternalSyncID, an account of another organisation or not Active/Pending, or an
//! organisation-unit move → refused; no candidate → create when the policy allows, unless
//! the organisation has a live account of the same name and no key that tells them apart
//! (a likely duplicate, refused: see [`likely_duplicate`]). Pure.

use std::collections::HashSet;

use crate::model::{Account, Change, DirectoryIndex, Keys, Status, naming, numeric_key};
use crate::model::{Field, OdsCode, PackedPerson, Person, PortalId};
use crate::plan::{Action, Plan, PlannedRow};
use crate::report::describe_issues;
use crate::report::mistakes::DAMAGED_KEY_REMEDY;
use crate::validate::{RowOutcome, RowResult};

/// How one organisation's connector behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub organisation: OdsCode,
    /// Domain of generated addresses.
    pub domain: String,
    pub create_accounts: bool,
    pub blank_means_keep: bool,
    pub name_change_new_address: bool,
    /// Where the rows come from: what a refusal tells the administrator to change.
    pub channel: Channel,
}

/// The channel rows come from, as far as reconcile's refusals and checks differ by it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Channel {
    /// A file (CSV or workbook, by e-mail or on the command line): a refusal names columns.
    #[default]
    File,
    /// A directory sync: a refusal names the mapped attributes (field → the source's
    /// attribute or column, as configured; the attribute mapped to `NewAccount`).
    Sync {
        attributes: Vec<(Field, String)>,
        new_account: Option<String>,
    },
    /// A SCIM write: a client that creates a User asks for a new account, so a namesake is
    /// not a likely duplicate.
    Scim,
}

/// The keys an index must be built for, for these rows: [`join_keys`] and the address
/// stems of every row.
pub fn keys(results: &[RowResult], policy: &Policy) -> Keys {
    let mut keys = join_keys(results, policy);
    keys.stems = valid(results)
        .map(|p| naming::stem(p.first_name(), p.last_name(), &policy.domain))
        .collect();
    keys.stems.sort_unstable();
    keys.stems.dedup();
    keys
}

/// The keys the rows join accounts by (and their organisation): [`keys`] without the
/// address stems, which a plan made in two look-ups asks only for the rows that may be
/// given an address ([`second_keys`]).
pub fn join_keys(results: &[RowResult], policy: &Policy) -> Keys {
    let mut keys = Keys {
        organisations: vec![policy.organisation.to_string()],
        ..Keys::default()
    };
    for p in valid(results) {
        if let Some(id) = p.id() {
            keys.ids.push(id.to_owned());
        }
        keys.external.push((
            p.organisation().to_owned(),
            p.external_sync_id().to_lowercase(),
        ));
        if let Some(number) = numeric_key(p.external_sync_id()) {
            keys.near_external
                .push((p.organisation().to_owned(), number));
        }
        if let Some(e) = p.email() {
            keys.emails.push(e.to_owned());
        }
    }
    keys
}

/// The keys of a second look-up, once `index` holds what the [`join_keys`] of `results`
/// found: the [`name_keys`] of would-be creates, and the address stems of the rows that may
/// be given a generated address (those that join no account, and those whose joined account
/// has another name). A file of updates that rename no one asks for nothing.
pub fn second_keys(results: &[RowResult], index: &DirectoryIndex, policy: &Policy) -> Keys {
    let org = policy.organisation.as_str();
    let mut stems: Vec<String> = valid(results)
        .filter(|p| may_get_address(p, index, org))
        .map(|p| naming::stem(p.first_name(), p.last_name(), &policy.domain))
        .collect();
    stems.sort_unstable();
    stems.dedup();
    Keys {
        names: name_keys(results, index, policy),
        stems,
        ..Keys::default()
    }
}

/// Whether planning a row may generate an address: unless every account it joins (by ID,
/// ExternalSyncID or e-mail) has the row's first and last name, and it joins one at least.
fn may_get_address(p: &PackedPerson, index: &DirectoryIndex, org: &str) -> bool {
    let joined = [
        p.id().and_then(|id| index.by_id(id)),
        index.by_external(org, p.external_sync_id()),
        p.email().and_then(|e| index.by_email(e)),
    ];
    let mut joined = joined.into_iter().flatten().peekable();
    joined.peek().is_none()
        || joined.any(|a| {
            a.get(Field::FirstName) != Some(p.first_name())
                || a.get(Field::LastName) != Some(p.last_name())
        })
}

/// The name keys of a second look-up, once `index` holds what the [`keys`] of `results`
/// found: (organisation, [`naming::name_key`]) of the rows that join no account and would
/// be created, unless they say they are a new person. A file whose rows all join asks none.
pub fn name_keys(
    results: &[RowResult],
    index: &DirectoryIndex,
    policy: &Policy,
) -> Vec<(String, String)> {
    if policy.channel == Channel::Scim {
        return Vec::new();
    }
    let org = policy.organisation.as_str();
    let mut names: Vec<(String, String)> = valid(results)
        .filter(|p| !p.new_account() && would_create(p, index, org) && p.organisation() == org)
        .map(|p| {
            (
                org.to_owned(),
                naming::name_key(p.first_name(), p.last_name()),
            )
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// Whether a row of `org` joins no account by any key (and gives no ID): it would be created.
fn would_create(p: &PackedPerson, index: &DirectoryIndex, org: &str) -> bool {
    p.id().is_none()
        && index.by_external(org, p.external_sync_id()).is_none()
        && p.email().is_none_or(|e| index.by_email(e).is_none())
}

fn valid(results: &[RowResult]) -> impl Iterator<Item = &PackedPerson> {
    results.iter().filter_map(|r| match &r.outcome {
        RowOutcome::Valid(p) => Some(p),
        RowOutcome::Refused(_) => None,
    })
}

/// Makes the plan.
pub fn reconcile(
    run: &str,
    results: &[RowResult],
    index: &DirectoryIndex,
    policy: &Policy,
) -> Plan {
    let mut allocated = Allocated::new(results);
    Plan {
        run: run.to_owned(),
        organisation: policy.organisation.clone(),
        rows: reconcile_part(results, index, policy, &mut allocated),
    }
}

/// The addresses a plan has given out so far, starting with every address the file names:
/// what a generated address must avoid besides the directory's.
/// Also, for each name (as [`naming::name_key`] folds it), the first valid row of the file
/// that gives it, so that a later row creating the same name is caught as a likely duplicate
/// of it ([`same_file_namesake`]), whichever part of the plan either falls in.
#[derive(Debug, Clone, Default)]
pub struct Allocated<'r> {
    addresses: Addresses,
    first_of_name: FirstOfName<'r>,
}

impl<'r> Allocated<'r> {
    pub fn new(results: &'r [RowResult]) -> Allocated<'r> {
        Allocated {
            addresses: Addresses {
                given: valid(results)
                    .filter_map(|p| p.email().map(str::to_owned))
                    .collect(),
                numbering: naming::Numbering::default(),
            },
            first_of_name: FirstOfName::new(results),
        }
    }
}

/// The first valid row of a file for each [`naming::name_key`], kept as the row's place in
/// the file under a hash of its name (16 bytes a row, not a copy of every name): the name
/// itself is kept only for the rare name whose hash an earlier, different name has.
#[derive(Debug, Clone, Default)]
struct FirstOfName<'r> {
    results: &'r [RowResult],
    by_hash: rustc_hash::FxHashMap<u64, usize>,
    collided: std::collections::HashMap<String, usize>,
}

impl<'r> FirstOfName<'r> {
    fn new(results: &'r [RowResult]) -> FirstOfName<'r> {
        let mut by_hash = rustc_hash::FxHashMap::default();
        by_hash.reserve(results.len());
        let mut collided = std::collections::HashMap::new();
        for (i, r) in results.iter().enumerate() {
            let RowOutcome::Valid(p) = &r.outcome else {
                continue;
            };
            let name = naming::name_key(p.first_name(), p.last_name());
            match by_hash.entry(name_hash(&name)) {
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(i);
                }
                std::collections::hash_map::Entry::Occupied(e) => {
                    let held = person(results, *e.get());
                    if held.is_none_or(|h| naming::name_key(h.first_name(), h.last_name()) != name)
                    {
                        collided.entry(name).or_insert(i);
                    }
                }
            }
        }
        FirstOfName {
            results,
            by_hash,
            collided,
        }
    }

    fn person(&self, i: usize) -> Option<&'r PackedPerson> {
        person(self.results, i)
    }

    /// The first valid row whose name key is `name`.
    fn get(&self, name: &str) -> Option<&'r PackedPerson> {
        let held = self
            .by_hash
            .get(&name_hash(name))
            .and_then(|&i| self.person(i))
            .filter(|p| naming::name_key(p.first_name(), p.last_name()) == name);
        held.or_else(|| self.collided.get(name).and_then(|&i| self.person(i)))
    }
}

/// The valid row at `i`.
fn person(results: &[RowResult], i: usize) -> Option<&PackedPerson> {
    match &results.get(i)?.outcome {
        RowOutcome::Valid(p) => Some(p),
        RowOutcome::Refused(_) => None,
    }
}

/// The hash a name key is kept under in [`FirstOfName`].
fn name_hash(name: &str) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut h = rustc_hash::FxHasher::default();
    name.hash(&mut h);
    h.finish()
}

/// The addresses a plan has given out (with those the file names), and where each stem's
/// numbering stands.
#[derive(Debug, Clone, Default)]
struct Addresses {
    given: HashSet<String>,
    numbering: naming::Numbering,
}

impl Addresses {
    /// The first address of `stem` neither the directory (as `index` knows it) nor the plan
    /// has, given out from now on.
    fn give(&mut self, stem: &str, index: &DirectoryIndex) -> String {
        let given = &self.given;
        let address = self
            .numbering
            .free(stem, |x| index.is_taken(x) || given.contains(x));
        self.given.insert(address.clone());
        address
    }
}

/// The refusal of a file's row that would create an account for the same name (as
/// [`naming::name_key`] folds it) as an earlier row of the same file, unless it says it is a
/// new person (`NewAccount` yes): two rows of one file for one person, under two keys, would
/// make two accounts for them — at once when both create, or when the file comes again and
/// the earlier row has its account. The earlier row goes its own way; a namesake really new
/// gives `NewAccount` yes. Files only: a sync's entries are distinct objects of the source's
/// own directory, and a SCIM client asks for each User it creates.
fn same_file_namesake(
    p: &PackedPerson,
    line: u64,
    policy: &Policy,
    first_of_name: &FirstOfName<'_>,
) -> Option<String> {
    if policy.channel != Channel::File || p.new_account() {
        return None;
    }
    let name = naming::name_key(p.first_name(), p.last_name());
    let held = first_of_name.get(&name)?;
    let (first, key) = (held.line(), held.external_sync_id());
    (first < line).then(|| {
        format!(
            "{LIKELY_DUPLICATE}line {first} of this file ({} {}, ExternalSyncID {key}), which \
             gives the same name, so nothing was created for this row: if it is the same \
             person, keep one of the two rows; if it is another person with the same name, set \
             this row's NewAccount column to yes",
            p.first_name(),
            p.last_name()
        )
    })
}

/// Plans a run of consecutive rows against an index built for (at least) their keys. A
/// plan made part by part, with one [`Allocated`] carried through, equals the plan
/// [`reconcile`] makes of all the rows at once: each row reads only its own keys.
pub fn reconcile_part(
    results: &[RowResult],
    index: &DirectoryIndex,
    policy: &Policy,
    allocated: &mut Allocated<'_>,
) -> Vec<PlannedRow> {
    let Allocated {
        addresses,
        first_of_name,
    } = allocated;
    let first_of_name = &*first_of_name;
    results
        .iter()
        .map(|r| match &r.outcome {
            RowOutcome::Refused(issues) => PlannedRow {
                line: r.line,
                action: Action::Rejected,
                message: describe_issues(issues),
            },
            RowOutcome::Valid(packed) => match plan_row(&packed.person(), index, policy, addresses)
            {
                Ok((Action::Create { .. }, _))
                    if let Some(message) =
                        same_file_namesake(packed, r.line, policy, first_of_name) =>
                {
                    PlannedRow {
                        line: r.line,
                        action: Action::Rejected,
                        message,
                    }
                }
                Ok((action, message)) => PlannedRow {
                    line: r.line,
                    action,
                    message,
                },
                Err(message) => PlannedRow {
                    line: r.line,
                    action: Action::Rejected,
                    message,
                },
            },
        })
        .collect()
}

/// The refusal of a row for an organisation its channel may not change, whatever the
/// channel: `scope` says what it may change ("this file is for RXX", "source \"ad\" may only
/// speak for RXX").
pub fn outside_scope(organisation: &OdsCode, scope: &str) -> String {
    format!("Organisation \"{organisation}\": {scope}; a row for another organisation is refused")
}

/// Which key found an account.
fn key_name(field: Field, value: &str) -> String {
    format!("{} \"{value}\"", field.name())
}

/// The refusal of a row that joins no account while its ExternalSyncID reads as the same
/// number as stored keys of its organisation (`123` for `000123`, `123.0` or `1.23E+11` for
/// `123000000000`): a spreadsheet damaged the key, so creating an account would make a
/// duplicate. Names every account the key most likely meant, and why.
fn spreadsheet_damaged_key(p: &Person, index: &DirectoryIndex, org: &str) -> Option<String> {
    let sent = p.external_sync_id.as_str();
    let near = index.near_external(org, sent);
    if near.is_empty() {
        return None;
    }
    let digits = sent.bytes().all(|b| b.is_ascii_digit());
    let stored_longer = near
        .iter()
        .all(|a| a.external_sync_id().is_some_and(|e| e.len() > sent.len()));
    let why = if digits && stored_longer {
        "Excel removes leading zeros when it opens a CSV"
    } else if digits {
        "it differs from a stored key only in its leading zeros"
    } else if sent.contains(['E', 'e']) {
        "Excel shortens a long number to scientific notation when it opens a CSV"
    } else {
        "a spreadsheet that reads an ID as a number writes it back with a decimal part"
    };
    let accounts: Vec<String> = near
        .iter()
        .map(|a| {
            format!(
                "the account with ExternalSyncID {} is {}",
                a.external_sync_id().unwrap_or_default(),
                a.describe()
            )
        })
        .collect();
    Some(format!(
        "ExternalSyncID \"{sent}\" matches no account, and nothing was created: {why}; {}: \
         {DAMAGED_KEY_REMEDY}",
        accounts.join("; ")
    ))
}

/// The start of every likely-duplicate refusal: what the result e-mail gathers under one
/// heading.
pub const LIKELY_DUPLICATE: &str = "possibly the same person as ";

/// The refusal of a row that would create an account while its organisation has an Active or
/// Pending account of the same person: the same first and last name (as
/// [`naming::name_key`] folds them), and no ExternalSyncID. An account with an
/// ExternalSyncID was made for someone with their own key: two people of one name, each
/// with their own staff number, are normal. An account without one was made by hand (in the
/// portal) and the file now brings that person's key: the classic duplicate. Two rows of one
/// file with one name have two keys, so they are two people too, and both are created.
/// A row that says it is a new person (`NewAccount` yes), and a SCIM write, are not
/// checked.
pub fn likely_duplicate(p: &Person, index: &DirectoryIndex, policy: &Policy) -> Option<String> {
    if p.new_account || policy.channel == Channel::Scim {
        return None;
    }
    let name = naming::name_key(&p.first_name, &p.last_name);
    let found: Vec<&Account> = index
        .namesakes(policy.organisation.as_str(), &name)
        .into_iter()
        .filter(|a| a.external_sync_id().is_none())
        .collect();
    let first = found.first()?;
    let mut accounts: Vec<String> = found.iter().take(3).map(|a| a.describe()).collect();
    if found.len() > 3 {
        accounts.push(format!("{} more", found.len() - 3));
    }
    let what = if found.len() == 1 {
        "an account of the same name without an ExternalSyncID"
    } else {
        "accounts of the same name without an ExternalSyncID"
    };
    let id = &first.id;
    let remedy = match &policy.channel {
        Channel::Sync {
            attributes,
            new_account,
        } => {
            let mapped = |field: Field| {
                attributes
                    .iter()
                    .find(|(f, _)| *f == field)
                    .map(|(_, a)| a.as_str())
            };
            let update = match (mapped(Field::Id), mapped(Field::Email)) {
                (Some(a), _) => format!("write its ID {id} to this entry's attribute {a}"),
                (None, Some(a)) => format!(
                    "write its address {} to this entry's attribute {a}",
                    first.email().unwrap_or_default()
                ),
                (None, None) => {
                    format!("map ID to an attribute and write its ID {id} there on this entry")
                }
            };
            let new = match new_account {
                Some(a) => format!("set this entry's attribute {a} to yes"),
                None => "map NewAccount to an attribute and set it to yes on this entry".to_owned(),
            };
            format!(
                "to update that account, {update}; if this is another person with the same \
                 name, {new}"
            )
        }
        Channel::File | Channel::Scim => format!(
            "to update that account, put its ID {id} in the row's ID column; if this is another \
             person with the same name, set the row's NewAccount column to yes"
        ),
    };
    Some(format!(
        "{LIKELY_DUPLICATE}{}, {what}, so nothing was created: {remedy}",
        accounts.join(" or ")
    ))
}

fn plan_row(
    p: &Person,
    index: &DirectoryIndex,
    policy: &Policy,
    allocated: &mut Addresses,
) -> Result<(Action, String), String> {
    let org = policy.organisation.as_str();
    if p.organisation != policy.organisation {
        return Err(outside_scope(
            &p.organisation,
            &format!("this file is for {org}"),
        ));
    }
    let Some(org_info) = index.organisation(org) else {
        return Err(format!(
            "Organisation \"{org}\" is not in the directory: organisations are set up in the \
             portal (in the embedded directory, with `push-connector directory \
             add-organisation {org} --name NAME`)"
        ));
    };
    let mut candidates: Vec<(String, &Account)> = Vec::new();
    if let Some(id) = &p.id {
        match index.by_id(id.as_str()) {
            Some(a) => candidates.push((key_name(Field::Id, id.as_str()), a)),
            None => {
                return Err(format!(
                    "ID \"{id}\" is not an account in the directory: leave ID blank for a \
                     person who has no account yet"
                ));
            }
        }
    }
    if let Some(a) = index.by_external(org, p.external_sync_id.as_str()) {
        candidates.push((
            key_name(Field::ExternalSyncId, p.external_sync_id.as_str()),
            a,
        ));
    }
    if let Some(email) = &p.email
        && let Some(a) = index.by_email(email.as_str())
    {
        candidates.push((key_name(Field::Email, email.as_str()), a));
    }
    let Some((first_key, account)) = candidates.first() else {
        if let Some(refusal) = spreadsheet_damaged_key(p, index, org) {
            return Err(refusal);
        }
        if let Some(refusal) = likely_duplicate(p, index, policy) {
            return Err(refusal);
        }
        return plan_create(p, index, policy, org_info, allocated);
    };
    if let Some((other_key, other)) = candidates.iter().find(|(_, a)| a.id != account.id) {
        return Err(format!(
            "the row points at two different accounts: {first_key} is {} but {other_key} is \
             {}; nothing was changed: correct the row so its keys name one person",
            account.describe(),
            other.describe()
        ));
    }
    if account.organisation() != org {
        return Err(format!(
            "{first_key} is the account {} of organisation {}: a person moving between \
             organisations is transferred in the portal, not by a file",
            account.describe(),
            account.organisation()
        ));
    }
    if !account.status.is_live() {
        return Err(format!(
            "{first_key} is the account {}, whose status is {}: a connector cannot re-activate \
             leavers or restore accounts; ask the portal helpdesk",
            account.describe(),
            account.status
        ));
    }
    if let Some(ext) = account.external_sync_id()
        && !ext.eq_ignore_ascii_case(p.external_sync_id.as_str())
    {
        return Err(format!(
            "ExternalSyncID \"{}\" differs from ExternalSyncID \"{ext}\" of the account {} \
             that {first_key} matched: refused so that two people are not mixed up",
            p.external_sync_id,
            account.describe()
        ));
    }
    if let Some(unit) = &p.organisation_unit {
        let current = account.get(Field::OrganisationUnit).unwrap_or(org);
        if !unit.as_str().eq_ignore_ascii_case(current) {
            return Err(format!(
                "OrganisationUnit \"{unit}\": the account {} is in {current}; a connector \
                 cannot move people between organisation units",
                account.describe()
            ));
        }
    }
    let (changes, renamed) = changes_for(account, p, index, policy, allocated);
    if changes.is_empty() {
        return Ok((
            Action::Unchanged {
                id: account.id.clone(),
            },
            format!("no change to {}", account.describe()),
        ));
    }
    let message = format!(
        "{}: changed {}",
        account.describe(),
        changes
            .iter()
            .map(|c| c.field.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok((
        Action::Update {
            id: account.id.clone(),
            changes,
            renamed,
        },
        message,
    ))
}

/// The overwritable fields that differ, and whether the name changes.
fn changes_for(
    a: &Account,
    p: &Person,
    index: &DirectoryIndex,
    policy: &Policy,
    allocated: &mut Addresses,
) -> (Vec<Change>, bool) {
    let renamed = a.get(Field::FirstName) != Some(p.first_name.as_str())
        || a.get(Field::LastName) != Some(p.last_name.as_str());
    let mut changes = Vec::new();
    if a.external_sync_id().is_none() {
        changes.push(Change {
            field: Field::ExternalSyncId,
            before: None,
            after: Some(p.external_sync_id.to_string()),
        });
    }
    for field in Field::OVERWRITABLE {
        let want: Option<String> = match field {
            Field::DisplayName => match &p.display_name {
                Some(d) => Some(d.clone()),
                None if renamed || !policy.blank_means_keep => Some(naming::display_name(
                    &p.first_name,
                    &p.last_name,
                    policy.organisation.as_str(),
                )),
                None => continue,
            },
            Field::Email => match &p.email {
                Some(e) => Some(e.to_string()),
                None if renamed && policy.name_change_new_address => {
                    let stem = naming::stem(&p.first_name, &p.last_name, &policy.domain);
                    let current_stem = a.email().map(naming::stem_of);
                    if current_stem.as_deref() == Some(stem.as_str()) {
                        continue;
                    }
                    Some(allocated.give(&stem, index))
                }
                None => continue,
            },
            _ => match p.value(field) {
                Some(v) => Some(v),
                None if policy.blank_means_keep => continue,
                None => None,
            },
        };
        let before = a.get(field);
        if before != want.as_deref() {
            changes.push(Change {
                field,
                before: before.map(str::to_owned),
                after: want,
            });
        }
    }
    (changes, renamed)
}

fn plan_create(
    p: &Person,
    index: &DirectoryIndex,
    policy: &Policy,
    org: &crate::model::OrganisationInfo,
    allocated: &mut Addresses,
) -> Result<(Action, String), String> {
    let code = policy.organisation.as_str();
    if !policy.create_accounts {
        return Err(format!(
            "no account has ExternalSyncID \"{}\"{} in {code}, and this connector does not \
             create accounts: ask the portal helpdesk to create the account",
            p.external_sync_id,
            p.email
                .as_ref()
                .map(|e| format!(" or Email \"{e}\""))
                .unwrap_or_default()
        ));
    }
    if let Some(unit) = &p.organisation_unit
        && unit != &policy.organisation
        && !org.units.contains(unit.as_str())
    {
        return Err(format!(
            "OrganisationUnit \"{unit}\" does not exist in {code}: units are set up in the \
             portal; leave it blank to use the organisation itself"
        ));
    }
    let address = match &p.email {
        Some(e) => e.to_string(),
        None => {
            let stem = naming::stem(&p.first_name, &p.last_name, &policy.domain);
            allocated.give(&stem, index)
        }
    };
    let mut account = Account::from_person(PortalId::new_unchecked(""), Status::Active, p);
    account.set(Field::Email, Some(&address));
    if p.organisation_unit.as_ref() == Some(&policy.organisation) {
        account.set(Field::OrganisationUnit, None);
    }
    if p.display_name.is_none() {
        account.set(
            Field::DisplayName,
            Some(&naming::display_name(&p.first_name, &p.last_name, code)),
        );
    }
    Ok((
        Action::Create {
            account: Box::new(account),
        },
        address,
    ))
}

pub mod swapped;

#[cfg(test)]
mod tests;
