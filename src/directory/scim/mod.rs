//! The portal's SCIM 2.0 API as a [`Directory`] backend (RFC 7643 / RFC 7644, over reqwest
//! with rustls).
//!
//! In: the `[directory]` settings (URL, bearer token or OAuth2 client credentials, timeout,
//! concurrency, proxy, retries). Out: accounts read with filters and paging, and batches
//! applied with POST (creates) and PATCH (updates; PUT when PATCH is not offered), with
//! `If-Match` when the portal offers ETags, or in `/Bulk` requests when offered (module `bulk`).
//!
//! Errors are split three ways. **Transient** (connection lost, timeout, 429, 5xx): retried
//! with exponential backoff, honouring `Retry-After`. **Row** (400, 404, 409, 412, a changed
//! field): that operation's [`OpOutcome::Failed`]. **Systemic** (401/403, an unreadable
//! answer, retries exhausted): a [`DirectoryError`] that stops the run, saying why.
//!
//! No duplicates: a create first looks the ExternalSyncID up; a create whose answer was lost
//! (timeout, dropped connection, 5xx) is looked up by `externalId` again before it is retried.

//!
//! Inside: `client` (one request and its retries), `oauth` (client-credentials tokens),
//! `discover` (what the portal supports), `codec` (accounts to and from SCIM JSON) and
//! `bulk`.

use std::collections::BTreeSet;
use std::time::Duration;

use futures_util::stream::{self, StreamExt as _};
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret as _;
use serde_json::Value;

use super::{Account, Change, Directory, DirectoryError, DirectoryIndex, Keys, Op, OpOutcome};
use super::{OrganisationInfo, naming};
use crate::config::DirectoryConfig;
use crate::model::{Field, PortalId};
use crate::scim::NHS_USER;
use crate::scim::filter::quote;

mod bulk;
mod client;
mod codec;
mod discover;
mod lookup;
mod oauth;

use client::encode;
use codec::account_of;
pub use discover::Capabilities;
use oauth::Auth;

/// A page of a list request.
const PAGE: usize = 200;
/// Operations sent in one `/Bulk` request at most (the portal's limit may be lower).
const BULK_CHUNK: usize = 1000;
/// Operations of one `/Bulk` request at least, when there are that many (and the portal
/// takes that many).
const BULK_MIN: usize = 50;

/// The SCIM directory backend.
pub struct ScimDirectory {
    http: reqwest::Client,
    base: String,
    auth: Auth,
    caps: Capabilities,
    /// The HTTP proxy requests go through, named in connection errors.
    proxy: Option<String>,
    concurrency: usize,
    retries: u32,
    use_bulk: bool,
    /// Smallest backoff step (tests shorten it).
    backoff: Duration,
    /// The portal refused an `or` filter: look-ups go one key a request (module `lookup`).
    or_refused: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for ScimDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScimDirectory")
            .field("base", &self.base)
            .field("caps", &self.caps)
            .finish_non_exhaustive()
    }
}

impl ScimDirectory {
    /// Connects: builds the HTTP client and reads the portal's discovery documents.
    pub async fn open(config: &DirectoryConfig) -> Result<ScimDirectory, DirectoryError> {
        let url = config
            .url
            .clone()
            .ok_or_else(|| DirectoryError::Scim("directory.url is not set".into()))?;
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.timeout_seconds))
            .connect_timeout(Duration::from_secs(config.timeout_seconds.min(10)))
            .user_agent(concat!("push-connector/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(config.concurrency);
        if let Some(ca) = &config.ca_file {
            let tls = crate::net::tls::client_config(Some(ca))
                .map_err(|e| DirectoryError::Scim(format!("directory.ca_file: {e}")))?;
            builder = builder.tls_backend_preconfigured(tls);
        }
        if let Some(proxy) = &config.proxy {
            let p = reqwest::Proxy::all(proxy)
                .map_err(|e| DirectoryError::Scim(format!("directory.proxy {proxy}: {e}")))?;
            builder = builder.proxy(p);
        } else {
            builder = builder.no_proxy();
        }
        let http = builder
            .build()
            .map_err(|e| DirectoryError::Scim(format!("HTTP client: {e}")))?;
        let auth = match (&config.token, &config.token_url) {
            (_, Some(token_url)) => Auth::ClientCredentials {
                token_url: token_url.clone(),
                client_id: config.client_id.clone().unwrap_or_default(),
                client_secret: config
                    .client_secret
                    .as_ref()
                    .map(|s| s.0.expose_secret().to_owned())
                    .unwrap_or_default(),
                scope: config.scope.clone(),
                cached: tokio::sync::Mutex::new(None),
            },
            (Some(t), None) => Auth::Bearer(t.0.expose_secret().to_owned()),
            (None, None) => Auth::None,
        };
        let mut dir = ScimDirectory {
            http,
            base: url.trim_end_matches('/').to_owned(),
            auth,
            caps: Capabilities::default(),
            proxy: config.proxy.clone(),
            concurrency: config.concurrency.max(1),
            retries: config.retries.max(1),
            use_bulk: config.bulk,
            backoff: Duration::from_millis(200),
            or_refused: std::sync::atomic::AtomicBool::new(false),
        };
        dir.caps = dir.discover().await?;
        Ok(dir)
    }

    /// Shortens the first backoff step (tests).
    pub fn with_backoff(mut self, step: Duration) -> ScimDirectory {
        self.backoff = step;
        self
    }

    /// Turns `/Bulk` use on or off (benchmarks).
    pub fn with_bulk(mut self, on: bool) -> ScimDirectory {
        self.use_bulk = on;
        self
    }

    /// Requests in flight at once.
    pub fn with_concurrency(mut self, n: usize) -> ScimDirectory {
        self.concurrency = n.max(1);
        self
    }

    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }
    /// Every User a filter matches, page by page.
    async fn search(&self, filter: &str) -> Result<Vec<Value>, DirectoryError> {
        self.search_raw(filter).await.map_err(|f| f.into_error())
    }

    async fn find(&self, filter: &str) -> Result<Option<Account>, DirectoryError> {
        Ok(self.search(filter).await?.iter().find_map(account_of))
    }

    fn org_filter(organisation: &str) -> String {
        format!("{NHS_USER}:organisation eq {}", quote(organisation))
    }

    async fn get_user(&self, id: &str) -> Result<Option<(Value, Option<String>)>, Failure> {
        match self
            .call(Method::GET, &format!("/Users/{}", encode(id)), None, None)
            .await
        {
            Ok((_, body, etag)) => {
                let etag = etag.or_else(|| body["meta"]["version"].as_str().map(str::to_owned));
                Ok(Some((body, etag)))
            }
            Err(Failure::Row(StatusCode::NOT_FOUND, _)) => Ok(None),
            Err(f) => Err(f),
        }
    }
    /// Looks a create up by its ExternalSyncID: `Created` when the account found is the one
    /// this create describes (same names and address stem), `Exists` when it is another.
    async fn existing(&self, account: &Account) -> Result<Option<OpOutcome>, DirectoryError> {
        let Some(ext) = account.external_sync_id() else {
            return Ok(None);
        };
        let found = self.by_external(account.organisation(), ext).await?;
        Ok(found.map(|found| found_for(account, found)))
    }

    /// [`ScimDirectory::existing`] of each account, the ExternalSyncIDs of an organisation
    /// asked for in `or` filters (module `lookup`); one by one when the portal refuses them.
    async fn existing_many(
        &self,
        accounts: &[&Account],
    ) -> Result<Vec<Option<OpOutcome>>, DirectoryError> {
        let mut out: Vec<Option<OpOutcome>> = accounts.iter().map(|_| None).collect();
        let mut by_org: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
        for (i, a) in accounts.iter().enumerate() {
            if a.external_sync_id().is_some() {
                by_org.entry(a.organisation()).or_default().push(i);
            }
        }
        for (org, members) in by_org {
            let keys: Vec<&str> = members
                .iter()
                .filter_map(|&i| accounts[i].external_sync_id())
                .collect();
            match self.by_external_many(org, &keys).await? {
                Some(found) => {
                    for (&i, found) in members.iter().zip(found) {
                        out[i] = found.map(|f| found_for(accounts[i], f));
                    }
                }
                None => {
                    let found: Vec<Option<OpOutcome>> = stream::iter(members.iter())
                        .map(|&i| self.existing(accounts[i]))
                        .buffered(self.concurrency)
                        .collect::<Vec<_>>()
                        .await
                        .into_iter()
                        .collect::<Result<_, _>>()?;
                    for (&i, f) in members.iter().zip(found) {
                        out[i] = f;
                    }
                }
            }
        }
        Ok(out)
    }

    /// [`ScimDirectory::by_external`] of each key of one organisation, in `or` filters;
    /// `None` when the portal refuses them.
    async fn by_external_many(
        &self,
        organisation: &str,
        keys: &[&str],
    ) -> Result<Option<Vec<Option<Account>>>, DirectoryError> {
        let org = Self::org_filter(organisation);
        let found = self
            .lookup_many("externalId", keys, Some(&org), |u, key| {
                account_of(u).is_some_and(|a| is_external(&a, organisation, key))
            })
            .await?;
        Ok(found.map(|f| {
            f.into_iter()
                .map(|u| u.as_ref().and_then(account_of))
                .collect()
        }))
    }

    /// Each User by ID with its version, as [`ScimDirectory::get_user`] reads it (`None`:
    /// not found), in `id` `or` filters; one GET each when the portal refuses them, and for
    /// a User listed without its version where the portal offers ETags.
    async fn users_by_id(
        &self,
        ids: &[&PortalId],
    ) -> Result<Vec<Option<(Value, Option<String>)>>, DirectoryError> {
        let keys: Vec<&str> = ids.iter().map(|i| i.as_str()).collect();
        let listed = self
            .lookup_many("id", &keys, None, |u, key| u["id"].as_str() == Some(key))
            .await?;
        let one = async |i: usize| -> Result<Option<(Value, Option<String>)>, DirectoryError> {
            match listed.as_ref().map(|l| &l[i]) {
                Some(None) => Ok(None),
                Some(Some(u)) => {
                    let version = u["meta"]["version"].as_str().map(str::to_owned);
                    if version.is_some() || !self.caps.etag {
                        return Ok(Some((u.clone(), version)));
                    }
                    self.get_user(keys[i]).await.map_err(|f| f.into_error())
                }
                None => self.get_user(keys[i]).await.map_err(|f| f.into_error()),
            }
        };
        stream::iter(0..keys.len())
            .map(one)
            .buffered(self.concurrency)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect()
    }

    /// [`Directory::by_email`] of each lower-case address: userName first, then any e-mail,
    /// in `or` filters; `None` when the portal refuses them.
    async fn by_email_many(
        &self,
        emails: &[&str],
    ) -> Result<Option<Vec<Option<Account>>>, DirectoryError> {
        let Some(mut found) = self
            .lookup_many("userName", emails, None, |u, key| {
                account_of(u).is_some()
                    && u["userName"].as_str().map(str::to_lowercase).as_deref() == Some(key)
            })
            .await?
        else {
            return Ok(None);
        };
        let missing: Vec<usize> = (0..emails.len()).filter(|&i| found[i].is_none()).collect();
        if !missing.is_empty() {
            let keys: Vec<&str> = missing.iter().map(|&i| emails[i]).collect();
            let Some(by_value) = self
                .lookup_many("emails.value", &keys, None, |u, key| {
                    account_of(u).is_some() && has_email(u, key)
                })
                .await?
            else {
                return Ok(None);
            };
            for (i, u) in missing.into_iter().zip(by_value) {
                found[i] = u;
            }
        }
        Ok(Some(
            found
                .into_iter()
                .map(|u| u.as_ref().and_then(account_of))
                .collect(),
        ))
    }

    async fn by_external(
        &self,
        organisation: &str,
        external: &str,
    ) -> Result<Option<Account>, DirectoryError> {
        let filter = format!(
            "externalId eq {} and {}",
            quote(external),
            Self::org_filter(organisation)
        );
        Ok(self
            .search(&filter)
            .await?
            .iter()
            .filter_map(account_of)
            .find(|a| is_external(a, organisation, external)))
    }

    /// One create: look-up first; POST; a lost answer is looked up again before a retry.
    async fn create(&self, account: &Account) -> Result<OpOutcome, DirectoryError> {
        if let Some(found) = self.existing(account).await? {
            return Ok(found);
        }
        let body = Self::create_body(account);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self
                .once(&Method::POST, "/Users", &[], Some(&body), None, false)
                .await
            {
                Ok((_, created, _)) => {
                    return match account_of(&created) {
                        Some(a) => Ok(OpOutcome::Created(a)),
                        None => Err(DirectoryError::Scim(
                            "the portal's answer to a create is not a User".into(),
                        )),
                    };
                }
                Err((Failure::Row(StatusCode::CONFLICT, detail), _)) => {
                    return Ok(match self.existing(account).await? {
                        Some(found) => found,
                        None => {
                            OpOutcome::Failed(format!("the portal refused the account: {detail}"))
                        }
                    });
                }
                Err((Failure::Row(status, detail), _)) => {
                    return Ok(OpOutcome::Failed(format!(
                        "the portal refused the account ({status}): {detail}"
                    )));
                }
                Err((Failure::Transient(m), wait)) if attempt < self.retries => {
                    // The create may have happened although its answer was lost.
                    if let Some(found) = self.existing(account).await? {
                        return Ok(found);
                    }
                    self.pause(attempt, wait, &m).await;
                }
                Err((f, _)) => return Err(f.into_error()),
            }
        }
    }

    /// One compare-and-set update; a 412 (changed meanwhile) is re-read and re-checked.
    async fn update(&self, id: &PortalId, changes: &[Change]) -> Result<OpOutcome, DirectoryError> {
        for _ in 0..3 {
            let Some((user, etag)) = self
                .get_user(id.as_str())
                .await
                .map_err(|f| f.into_error())?
            else {
                return Ok(gone(id));
            };
            let needed = match needed_changes(id, &user, changes)? {
                Ok(needed) => needed,
                Err(outcome) => return Ok(outcome),
            };
            let if_match = etag.as_deref().filter(|_| self.caps.etag);
            let path = format!("/Users/{}", encode(id.as_str()));
            let (method, body) = self.change_request(&user, &needed);
            match self.call(method, &path, Some(&body), if_match).await {
                Ok(_) => return Ok(OpOutcome::Updated),
                Err(Failure::Row(StatusCode::PRECONDITION_FAILED, _)) => continue,
                Err(Failure::Row(status, detail)) => return Ok(refused_change(status, &detail)),
                Err(f) => return Err(f.into_error()),
            }
        }
        Ok(OpOutcome::Failed(format!(
            "account ID {id} kept changing in the directory: nothing was changed"
        )))
    }
}

/// What a create's look-up found: `Created` when the account found is the one the create
/// describes (same names and address stem), `Exists` when it is another.
fn found_for(account: &Account, found: Account) -> OpOutcome {
    let same = [Field::FirstName, Field::LastName]
        .iter()
        .all(|f| found.get(*f) == account.get(*f))
        && found.email().map(naming::stem_of) == account.email().map(naming::stem_of);
    if same {
        OpOutcome::Created(found)
    } else {
        OpOutcome::Exists(found)
    }
}

/// Whether an account is of `organisation` with the ExternalSyncID `external` (without
/// regard to ASCII case).
fn is_external(a: &Account, organisation: &str, external: &str) -> bool {
    a.organisation() == organisation
        && a.external_sync_id()
            .is_some_and(|e| e.eq_ignore_ascii_case(external))
}

/// Whether a User has the lower-case address `email` among its e-mails.
fn has_email(user: &Value, email: &str) -> bool {
    user["emails"].as_array().into_iter().flatten().any(|e| {
        e["value"]
            .as_str()
            .is_some_and(|v| v.to_lowercase() == email)
    })
}

/// The account of an update is gone.
fn gone(id: &PortalId) -> OpOutcome {
    OpOutcome::Failed(format!("account ID {id} is no longer in the directory"))
}

/// The portal refused an update.
fn refused_change(status: StatusCode, detail: &str) -> OpOutcome {
    OpOutcome::Failed(format!(
        "the portal refused the change ({status}): {detail}"
    ))
}

/// Compare-and-set against the User as read now: the changes still to make, or the outcome
/// when there is nothing to send (all in place: `Updated`; a field changed since the run was
/// planned, or one a connector never changes: `Failed`).
fn needed_changes<'a>(
    id: &PortalId,
    user: &Value,
    changes: &'a [Change],
) -> Result<Result<Vec<&'a Change>, OpOutcome>, DirectoryError> {
    let Some(current) = account_of(user) else {
        return Err(DirectoryError::Scim(format!("User {id} is not readable")));
    };
    let mut needed = Vec::new();
    for c in changes {
        match current.still_to_make(c) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(refusal) => return Ok(Err(OpOutcome::Failed(refusal))),
        }
        if matches!(c.field, Field::Organisation | Field::Id) {
            return Ok(Err(OpOutcome::Failed(format!(
                "{} is not changed by a connector",
                c.field
            ))));
        }
        needed.push(c);
    }
    if needed.is_empty() {
        return Ok(Err(OpOutcome::Updated));
    }
    Ok(Ok(needed))
}

impl Directory for ScimDirectory {
    async fn index_for(&self, keys: &Keys) -> Result<DirectoryIndex, DirectoryError> {
        let mut index = DirectoryIndex::default();
        let mut listed: BTreeSet<String> = BTreeSet::new();
        for org in &keys.organisations {
            let accounts = self.list(org).await?;
            let units: std::collections::HashSet<String> = accounts
                .iter()
                .filter_map(|a| a.get(Field::OrganisationUnit))
                .map(str::to_ascii_uppercase)
                .collect();
            index.add_organisation(
                org,
                OrganisationInfo {
                    units,
                    accounts: accounts.len() as u64,
                },
            );
            for a in accounts {
                index.insert(a);
            }
            listed.insert(org.clone());
        }
        // The rest in `or` filters of many keys each (module `lookup`), one by one when the
        // portal refuses them.
        let ids: Vec<PortalId> = keys
            .ids
            .iter()
            .filter(|i| index.by_id(i).is_none())
            .map(|i| PortalId::new_unchecked(i.clone()))
            .collect();
        let id_refs: Vec<&PortalId> = ids.iter().collect();
        let by_id: Vec<Option<Account>> = self
            .users_by_id(&id_refs)
            .await?
            .into_iter()
            .map(|u| u.and_then(|(u, _)| account_of(&u)))
            .collect();
        let emails: Vec<String> = keys
            .emails
            .iter()
            .filter(|e| index.by_email(e).is_none())
            .map(|e| e.to_lowercase())
            .collect();
        let email_refs: Vec<&str> = emails.iter().map(String::as_str).collect();
        let by_email: Vec<Option<Account>> = match self.by_email_many(&email_refs).await? {
            Some(found) => found,
            None => stream::iter(emails.iter())
                .map(|e| self.by_email(e))
                .buffered(self.concurrency)
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<Result<_, _>>()?,
        };
        let mut external: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
        for (o, e) in keys.external.iter().filter(|(o, _)| !listed.contains(o)) {
            external.entry(o.as_str()).or_default().push(e.as_str());
        }
        let mut by_ext: Vec<Option<Account>> = Vec::new();
        for (org, exts) in external {
            match self.by_external_many(org, &exts).await? {
                Some(found) => by_ext.extend(found),
                None => {
                    let found: Vec<Option<Account>> = stream::iter(exts)
                        .map(|e| self.by_external(org, e))
                        .buffered(self.concurrency)
                        .collect::<Vec<_>>()
                        .await
                        .into_iter()
                        .collect::<Result<_, _>>()?;
                    by_ext.extend(found);
                }
            }
        }
        for a in by_id.into_iter().chain(by_email).chain(by_ext).flatten() {
            index.insert(a);
        }
        // Name keys (namesakes of would-be creates) are left unanswered: a SCIM filter cannot
        // ask for a name folded as `naming::name_key` folds it, and the listing of the
        // organisation above already holds its namesakes for the plan's first part.
        let taken: Vec<Vec<String>> = stream::iter(keys.stems.iter())
            .map(|stem| async move {
                let (local, domain) = stem.split_once('@').unwrap_or((stem.as_str(), ""));
                let filter = format!(
                    "userName sw {} and userName ew {}",
                    quote(local),
                    quote(&format!("@{domain}"))
                );
                let users = self.search(&filter).await?;
                Ok::<_, DirectoryError>(
                    users
                        .iter()
                        .filter_map(|u| u["userName"].as_str().map(str::to_lowercase))
                        .collect(),
                )
            })
            .buffered(self.concurrency)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
        for address in taken.into_iter().flatten() {
            index.mark_taken(&address);
        }
        Ok(index)
    }

    async fn by_id(&self, id: &PortalId) -> Result<Option<Account>, DirectoryError> {
        Ok(self
            .get_user(id.as_str())
            .await
            .map_err(|f| f.into_error())?
            .and_then(|(u, _)| account_of(&u)))
    }

    async fn by_external_sync_id(
        &self,
        organisation: &str,
        external: &str,
    ) -> Result<Option<Account>, DirectoryError> {
        self.by_external(organisation, external).await
    }

    async fn by_email(&self, email: &str) -> Result<Option<Account>, DirectoryError> {
        let e = quote(&email.to_lowercase());
        let found = self.find(&format!("userName eq {e}")).await?;
        if found.is_some() {
            return Ok(found);
        }
        self.find(&format!("emails.value eq {e}")).await
    }

    async fn list(&self, organisation: &str) -> Result<Vec<Account>, DirectoryError> {
        let mut accounts: Vec<Account> = self
            .search(&Self::org_filter(organisation))
            .await?
            .iter()
            .filter_map(account_of)
            .filter(|a| a.organisation() == organisation)
            .collect();
        accounts.sort_by(|a, b| (a.email(), a.id.as_str()).cmp(&(b.email(), b.id.as_str())));
        accounts.dedup_by(|a, b| a.id == b.id);
        Ok(accounts)
    }

    async fn unit_exists(&self, organisation: &str, unit: &str) -> Result<bool, DirectoryError> {
        let filter = format!(
            "{} and {NHS_USER}:organisationUnit eq {}",
            Self::org_filter(organisation),
            quote(unit)
        );
        Ok(!self.search(&filter).await?.is_empty())
    }

    async fn apply(&self, ops: &[Op]) -> Result<Vec<OpOutcome>, DirectoryError> {
        let bulk = self.use_bulk && self.caps.bulk;
        let creates: Vec<&Account> = ops
            .iter()
            .filter_map(|op| match op {
                Op::Create(n) => Some(&n.account),
                Op::Update { .. } => None,
            })
            .collect();
        let updates: Vec<(&PortalId, &[Change])> = ops
            .iter()
            .filter_map(|op| match op {
                Op::Update { id, changes, .. } => Some((id, changes.as_slice())),
                Op::Create(_) => None,
            })
            .collect();
        let (mut created, mut updated) = if bulk {
            (
                self.bulk_creates(&creates).await?.into_iter(),
                self.bulk_updates(&updates).await?.into_iter(),
            )
        } else {
            let created: Vec<OpOutcome> = stream::iter(creates)
                .map(|a| self.create(a))
                .buffered(self.concurrency)
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<Result<_, _>>()?;
            let updated: Vec<OpOutcome> = stream::iter(updates)
                .map(|(id, changes)| self.update(id, changes))
                .buffered(self.concurrency)
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<Result<_, _>>()?;
            (created.into_iter(), updated.into_iter())
        };
        ops.iter()
            .map(|op| {
                match op {
                    Op::Create(_) => created.next(),
                    Op::Update { .. } => updated.next(),
                }
                .ok_or_else(|| DirectoryError::Scim("an operation gave no outcome".into()))
            })
            .collect()
    }
}

/// What went wrong with one request, classified.
#[derive(Debug)]
pub(super) enum Failure {
    /// May succeed if tried again (the request may or may not have taken effect).
    Transient(String),
    /// The portal refused this request (4xx other than 401/403/429).
    Row(StatusCode, String),
    /// Nothing further will work.
    Systemic(String),
}

impl Failure {
    pub(super) fn into_error(self) -> DirectoryError {
        match self {
            Failure::Transient(m) => {
                DirectoryError::Scim(format!("the portal keeps failing, giving up: {m}"))
            }
            Failure::Row(s, m) => DirectoryError::Scim(format!("the portal answered {s}: {m}")),
            Failure::Systemic(m) => DirectoryError::Scim(m),
        }
    }
}
