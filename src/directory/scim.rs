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

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt as _};
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};

use super::{Account, Change, Directory, DirectoryError, DirectoryIndex, Keys, Op, OpOutcome};
use super::{OrganisationInfo, Status, naming};
use crate::config::DirectoryConfig;
use crate::model::{Field, PortalId};
use crate::scim::filter::quote;
use crate::scim::schema::CodeLists;
use crate::scim::{
    CODED, CORE_USER, NHS_USER, PATCH_OP, PHONES, account_from_user, get_ci, status_of, user_json,
};

mod bulk;

/// A page of a list request.
const PAGE: usize = 200;
/// Creates sent in one `/Bulk` request at most (the portal's limit may be lower).
const BULK_CHUNK: usize = 100;
/// Longest wait honoured from a `Retry-After`.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

/// What went wrong with one request, classified.
#[derive(Debug)]
enum Failure {
    /// May succeed if tried again (the request may or may not have taken effect).
    Transient(String),
    /// The portal refused this request (4xx other than 401/403/429).
    Row(StatusCode, String),
    /// Nothing further will work.
    Systemic(String),
}

impl Failure {
    fn into_error(self) -> DirectoryError {
        match self {
            Failure::Transient(m) => {
                DirectoryError::Scim(format!("the portal keeps failing, giving up: {m}"))
            }
            Failure::Row(s, m) => DirectoryError::Scim(format!("the portal answered {s}: {m}")),
            Failure::Systemic(m) => DirectoryError::Scim(m),
        }
    }
}

/// What the portal said it supports (ServiceProviderConfig, Schemas, ResourceTypes).
#[derive(Debug, Clone, Default)]
pub struct Capabilities {
    pub patch: bool,
    pub etag: bool,
    pub bulk: bool,
    pub bulk_max_operations: usize,
    pub bulk_max_payload: usize,
    pub filter: bool,
    pub max_results: usize,
    /// The User resource type declares the NHS extension.
    pub nhs_extension: bool,
    /// `canonicalValues` of the coded attributes, when published.
    pub codes: CodeLists,
}

enum Auth {
    None,
    Bearer(String),
    ClientCredentials {
        token_url: String,
        client_id: String,
        client_secret: String,
        scope: Option<String>,
        cached: tokio::sync::Mutex<Option<(String, Instant)>>,
    },
}

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

    async fn discover(&self) -> Result<Capabilities, DirectoryError> {
        let spc = self
            .call(Method::GET, "/ServiceProviderConfig", None, None)
            .await
            .map_err(|f| f.into_error())?
            .1;
        let supported = |k: &str| spc[k]["supported"].as_bool().unwrap_or(false);
        let mut caps = Capabilities {
            patch: supported("patch"),
            etag: supported("etag"),
            bulk: supported("bulk"),
            bulk_max_operations: spc["bulk"]["maxOperations"].as_u64().unwrap_or(0) as usize,
            bulk_max_payload: spc["bulk"]["maxPayloadSize"].as_u64().unwrap_or(0) as usize,
            filter: supported("filter"),
            max_results: spc["filter"]["maxResults"].as_u64().unwrap_or(PAGE as u64) as usize,
            ..Capabilities::default()
        };
        if !caps.filter {
            return Err(DirectoryError::Scim(
                "the portal does not support SCIM filters, which look-ups need".into(),
            ));
        }
        if let Ok((_, types, _)) = self.call(Method::GET, "/ResourceTypes", None, None).await {
            caps.nhs_extension = resources(&types).iter().any(|t| {
                t["name"].as_str() == Some("User")
                    && t["schemaExtensions"]
                        .as_array()
                        .is_some_and(|e| e.iter().any(|x| x["schema"].as_str() == Some(NHS_USER)))
            });
        }
        if !caps.nhs_extension {
            return Err(DirectoryError::Scim(format!(
                "the portal's User resource type does not declare the extension {NHS_USER}"
            )));
        }
        if let Ok((_, schemas, _)) = self.call(Method::GET, "/Schemas", None, None).await {
            let canonical = |schema: &str, attr: &str, sub: Option<&str>| -> Vec<String> {
                resources(&schemas)
                    .iter()
                    .filter(|s| s["id"].as_str() == Some(schema))
                    .flat_map(|s| s["attributes"].as_array().cloned().unwrap_or_default())
                    .filter(|a| a["name"].as_str() == Some(attr))
                    .flat_map(|a| match sub {
                        None => vec![a],
                        Some(sub) => a["subAttributes"]
                            .as_array()
                            .cloned()
                            .unwrap_or_default()
                            .into_iter()
                            .filter(|x| x["name"].as_str() == Some(sub))
                            .collect(),
                    })
                    .flat_map(|a| a["canonicalValues"].as_array().cloned().unwrap_or_default())
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            };
            caps.codes = CodeLists {
                titles: canonical(CORE_USER, "name", Some("honorificPrefix")),
                clinical_roles: canonical(NHS_USER, "clinicalRoles", None),
                clinical_specialities: canonical(NHS_USER, "clinicalSpecialities", None),
                work_areas: canonical(NHS_USER, "workAreas", None),
            };
        }
        Ok(caps)
    }

    async fn token(&self, refresh: bool) -> Result<Option<String>, Failure> {
        match &self.auth {
            Auth::None => Ok(None),
            Auth::Bearer(t) => Ok(Some(t.clone())),
            Auth::ClientCredentials {
                token_url,
                client_id,
                client_secret,
                scope,
                cached,
            } => {
                let mut cached = cached.lock().await;
                if !refresh
                    && let Some((t, until)) = cached.as_ref()
                    && Instant::now() < *until
                {
                    return Ok(Some(t.clone()));
                }
                let mut form = vec![
                    ("grant_type", "client_credentials"),
                    ("client_id", client_id.as_str()),
                    ("client_secret", client_secret.as_str()),
                ];
                if let Some(s) = scope {
                    form.push(("scope", s.as_str()));
                }
                let response = self
                    .http
                    .post(token_url)
                    .form(&form)
                    .send()
                    .await
                    .map_err(|e| Failure::Transient(format!("OAuth2 token request: {e}")))?;
                let status = response.status();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                if !status.is_success() {
                    return Err(Failure::Systemic(format!(
                        "the OAuth2 token endpoint refused the client credentials ({status}): {}",
                        body["error_description"]
                            .as_str()
                            .or(body["error"].as_str())
                            .unwrap_or("")
                    )));
                }
                let token = body["access_token"].as_str().ok_or_else(|| {
                    Failure::Systemic("the OAuth2 token endpoint gave no access_token".into())
                })?;
                // Renewed a little before it expires: a tenth of its life, 30 s at most.
                let lifetime = body["expires_in"].as_u64().unwrap_or(300);
                let ttl = lifetime - (lifetime / 10).min(30);
                *cached = Some((token.to_owned(), Instant::now() + Duration::from_secs(ttl)));
                Ok(Some(token.to_owned()))
            }
        }
    }

    /// One request, no retries. Returns status, body (Null when empty) and ETag.
    async fn once(
        &self,
        method: &Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        if_match: Option<&str>,
        refresh_token: bool,
    ) -> Result<(StatusCode, Value, Option<String>), (Failure, Option<Duration>)> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method.clone(), &url).header(
            reqwest::header::ACCEPT,
            "application/scim+json, application/json",
        );
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(token) = self.token(refresh_token).await.map_err(|f| (f, None))? {
            request = request.bearer_auth(token);
        }
        if let Some(tag) = if_match {
            request = request.header(reqwest::header::IF_MATCH, tag);
        }
        if let Some(b) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/scim+json")
                .body(b.to_string());
        }
        let response = request.send().await.map_err(|e| {
            let what = match (&self.proxy, e.is_timeout()) {
                (None, true) => "timed out".to_owned(),
                (None, false) => "failed".to_owned(),
                (Some(p), true) => format!("timed out (through the proxy {p})"),
                (Some(p), false) => format!("failed (through the proxy {p})"),
            };
            let message = format!("{method} {path} {what}: {}", causes(&e));
            // A certificate the client does not trust will not be trusted on a retry.
            let tls = is_tls(&e);
            let failure = if tls {
                Failure::Systemic(format!("TLS with the portal failed: {message}"))
            } else {
                Failure::Transient(message)
            };
            (failure, None)
        })?;
        let status = response.status();
        let etag = response
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let bytes = response.bytes().await.map_err(|e| {
            (
                Failure::Transient(format!("{method} {path}: reading the answer: {e}")),
                None,
            )
        })?;
        let value: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        let detail = || {
            value["detail"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).chars().take(300).collect())
        };
        if status.is_success() || status == StatusCode::NOT_MODIFIED {
            return Ok((status, value, etag));
        }
        let failure = match status.as_u16() {
            401 | 403 => Failure::Systemic(format!(
                "the portal refused the credentials ({status}) for {method} {path}: {}",
                detail()
            )),
            408 | 429 | 500 | 502 | 503 | 504 => {
                Failure::Transient(format!("{method} {path}: {status}: {}", detail()))
            }
            _ => Failure::Row(status, detail()),
        };
        Err((failure, retry_after))
    }

    /// A request with retries of transient failures (backoff, `Retry-After`); a 401 gets one
    /// fresh OAuth2 token. Not for creates: see [`ScimDirectory::create`].
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<(StatusCode, Value, Option<String>), Failure> {
        self.call_query(method, path, &[], body, if_match).await
    }

    async fn call_query(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<(StatusCode, Value, Option<String>), Failure> {
        let mut attempt = 0;
        let mut refreshed = false;
        loop {
            attempt += 1;
            match self.once(&method, path, query, body, if_match, false).await {
                Ok(r) => return Ok(r),
                Err((Failure::Systemic(m), _))
                    if !refreshed && matches!(self.auth, Auth::ClientCredentials { .. }) =>
                {
                    refreshed = true;
                    self.token(true).await?;
                    tracing::debug!(%m, "refreshing the OAuth2 token");
                }
                Err((Failure::Transient(m), wait)) if attempt < self.retries => {
                    self.pause(attempt, wait, &m).await;
                }
                Err((f, _)) => return Err(f),
            }
        }
    }

    async fn pause(&self, attempt: u32, retry_after: Option<Duration>, why: &str) {
        let wait = retry_after
            .map(|d| d.min(MAX_RETRY_AFTER))
            .unwrap_or_else(|| {
                let step = self.backoff * 2u32.saturating_pow(attempt.saturating_sub(1).min(6));
                let jitter =
                    Duration::from_millis(u64::from(uuid::Uuid::new_v4().as_bytes()[0]) % 50);
                step.min(Duration::from_secs(30)) + jitter
            });
        tracing::warn!(attempt, wait_ms = wait.as_millis() as u64, why, "retrying");
        tokio::time::sleep(wait).await;
    }

    /// Every User a filter matches, page by page.
    async fn search(&self, filter: &str) -> Result<Vec<Value>, DirectoryError> {
        let page = PAGE.min(self.caps.max_results.max(1));
        let mut out = Vec::new();
        let mut start = 1usize;
        loop {
            let query = [
                ("filter", filter.to_owned()),
                ("startIndex", start.to_string()),
                ("count", page.to_string()),
            ];
            let (_, body, _) = self
                .call_query(Method::GET, "/Users", &query, None, None)
                .await
                .map_err(|f| f.into_error())?;
            let items = resources(&body);
            let n = items.len();
            out.extend(items);
            let total = body["totalResults"].as_u64().unwrap_or(0) as usize;
            if n == 0 || start - 1 + n >= total {
                return Ok(out);
            }
            start += n;
        }
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

    /// The SCIM body of a new account: only attributes the portal's schemas list.
    pub fn create_body(account: &Account) -> Value {
        let mut user = user_json(account);
        if let Value::Object(m) = &mut user {
            m.remove("id");
            m.remove("active");
            if let Some(Value::Object(ext)) = m.get_mut(NHS_USER) {
                ext.remove("status");
            }
        }
        user
    }

    /// Looks a create up by its ExternalSyncID: `Created` when the account found is the one
    /// this create describes (same names and address stem), `Exists` when it is another.
    async fn existing(&self, account: &Account) -> Result<Option<OpOutcome>, DirectoryError> {
        let Some(ext) = account.external_sync_id() else {
            return Ok(None);
        };
        let Some(found) = self.by_external(account.organisation(), ext).await? else {
            return Ok(None);
        };
        let same = [Field::FirstName, Field::LastName]
            .iter()
            .all(|f| found.get(*f) == account.get(*f))
            && found.email().map(naming::stem_of) == account.email().map(naming::stem_of);
        Ok(Some(if same {
            OpOutcome::Created(found)
        } else {
            OpOutcome::Exists(found)
        }))
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
            .find(|a| {
                a.organisation() == organisation
                    && a.external_sync_id()
                        .is_some_and(|e| e.eq_ignore_ascii_case(external))
            }))
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

    /// The request that makes `needed` of `user`: PATCH, or PUT of the whole User when the
    /// portal does not offer PATCH.
    fn change_request(&self, user: &Value, needed: &[&Change]) -> (Method, Value) {
        if self.caps.patch {
            return (Method::PATCH, patch_body(user, needed));
        }
        let mut target = account_of(user).unwrap_or_else(|| {
            Account::new(
                PortalId::new_unchecked(""),
                Status::Active,
                &crate::model::OdsCode::new_unchecked(""),
            )
        });
        for c in needed {
            target.set(c.field, c.after.as_deref());
        }
        let mut body = user_json(&target);
        if let Value::Object(m) = &mut body {
            m.remove("active");
            m.remove("meta");
        }
        (Method::PUT, body)
    }
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
        let now = current.get(c.field);
        if now == c.after.as_deref() {
            continue;
        }
        if now != c.before.as_deref() {
            return Ok(Err(OpOutcome::Failed(format!(
                "{} of {} was changed in the directory since this run was planned \
                 (now \"{}\"): nothing was changed on this account",
                c.field,
                current.describe(),
                now.unwrap_or_default()
            ))));
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

/// Applies to a User every change, as PATCH operations on the attributes they touch.
fn patch_body(user: &Value, changes: &[&Change]) -> Value {
    let mut ops = Vec::new();
    let mut phones_changed = false;
    let mut target = account_of(user).unwrap_or_else(|| {
        Account::new(
            PortalId::new_unchecked(""),
            Status::Active,
            &crate::model::OdsCode::new_unchecked(""),
        )
    });
    for c in changes {
        target.set(c.field, c.after.as_deref());
        let path: Option<String> = match c.field {
            Field::FirstName => Some("name.givenName".into()),
            Field::LastName => Some("name.familyName".into()),
            Field::Title => Some("name.honorificPrefix".into()),
            Field::DisplayName => Some("displayName".into()),
            Field::JobTitle => Some("title".into()),
            Field::ExternalSyncId => Some("externalId".into()),
            Field::Email => Some("userName".into()),
            Field::Notes => Some(format!("{NHS_USER}:notes")),
            Field::OrganisationUnit => Some(format!("{NHS_USER}:organisationUnit")),
            Field::OfficePhone | Field::MobilePhone | Field::Fax | Field::Pager => {
                phones_changed = true;
                None
            }
            f => CODED
                .iter()
                .find(|(field, _)| *field == f)
                .map(|(_, name)| format!("{NHS_USER}:{name}")),
        };
        let Some(path) = path else { continue };
        let value = match (&c.after, c.field.is_multi_valued()) {
            (None, _) => None,
            (Some(v), true) => Some(json!(
                v.split(';')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
            )),
            (Some(v), false) => Some(json!(v)),
        };
        ops.push(match value {
            Some(v) => json!({"op": "replace", "path": path, "value": v}),
            None => json!({"op": "remove", "path": path}),
        });
    }
    if phones_changed {
        // The whole list: kinds the connector does not know are kept as they are.
        let mut phones: Vec<Value> = user["phoneNumbers"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|p| {
                let kind = p["type"].as_str().unwrap_or("work");
                !PHONES.iter().any(|(_, k)| k.eq_ignore_ascii_case(kind))
            })
            .collect();
        for (field, kind) in PHONES {
            if let Some(v) = target.get(field) {
                phones.push(json!({"value": v, "type": kind}));
            }
        }
        ops.push(if phones.is_empty() {
            json!({"op": "remove", "path": "phoneNumbers"})
        } else {
            json!({"op": "replace", "path": "phoneNumbers", "value": phones})
        });
    }
    json!({"schemas": [PATCH_OP], "Operations": ops})
}

/// The account of a portal User; `None` when it lacks what an account needs.
fn account_of(user: &Value) -> Option<Account> {
    let id = user["id"].as_str()?;
    let status = status_of(user).unwrap_or(if user["active"].as_bool().unwrap_or(true) {
        Status::Active
    } else {
        Status::Disabled
    });
    let mut user = user.clone();
    if let Value::Object(m) = &mut user {
        let ext = m.entry(NHS_USER.to_owned()).or_insert_with(|| json!({}));
        if let Value::Object(e) = ext
            && get_ci(e, "organisation").is_none()
        {
            e.insert("organisation".into(), json!(""));
        }
        if get_ci(m, "userName").is_none() {
            m.insert("userName".into(), json!(""));
        }
    }
    let mut account = account_from_user(&user, PortalId::new_unchecked(id), status).ok();
    if let Some(a) = &mut account
        && a.email().is_some_and(str::is_empty)
    {
        a.set(Field::Email, None);
    }
    account
}

fn resources(list: &Value) -> Vec<Value> {
    list["Resources"].as_array().cloned().unwrap_or_default()
}

/// Whether a TLS error (an untrusted certificate, a failed handshake) is among an error's
/// causes, which may be I/O errors wrapping one another.
fn is_tls(e: &(dyn std::error::Error + 'static)) -> bool {
    if e.is::<rustls::Error>() {
        return true;
    }
    if let Some(inner) = e
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
        && is_tls(inner)
    {
        return true;
    }
    e.source().is_some_and(is_tls)
}

/// An error and its causes, `: `-separated (reqwest's own message names only the request).
fn causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// Percent-encodes an ID for a path segment.
fn encode(id: &str) -> String {
    id.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `Retry-After`: seconds, or an HTTP date.
fn parse_retry_after(v: &str) -> Option<Duration> {
    if let Ok(s) = v.trim().parse::<u64>() {
        return Some(Duration::from_secs(s));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v.trim()).ok()?;
    let secs = (when.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_seconds();
    Some(Duration::from_secs(u64::try_from(secs).unwrap_or(0)))
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
        let ids: Vec<&String> = keys
            .ids
            .iter()
            .filter(|i| index.by_id(i).is_none())
            .collect();
        let ids: Vec<PortalId> = ids
            .into_iter()
            .map(|i| PortalId::new_unchecked(i.clone()))
            .collect();
        let by_id: Vec<Option<Account>> = stream::iter(ids.iter())
            .map(|id| self.by_id(id))
            .buffered(self.concurrency)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
        let emails: Vec<&String> = keys
            .emails
            .iter()
            .filter(|e| index.by_email(e).is_none())
            .collect();
        let by_email: Vec<Option<Account>> = stream::iter(emails)
            .map(|e| self.by_email(e))
            .buffered(self.concurrency)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
        let external: Vec<&(String, String)> = keys
            .external
            .iter()
            .filter(|(o, _)| !listed.contains(o))
            .collect();
        let by_ext: Vec<Option<Account>> = stream::iter(external)
            .map(|(o, e)| self.by_external(o, e))
            .buffered(self.concurrency)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
        for a in by_id.into_iter().chain(by_email).chain(by_ext).flatten() {
            index.insert(a);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn a_patch_touches_only_what_changed() {
        let mut a = Account::new(
            PortalId::new_unchecked("u1"),
            Status::Active,
            &crate::model::OdsCode::new_unchecked("RXX"),
        );
        a.set(Field::Email, Some("a@nhs.net"));
        a.set(Field::FirstName, Some("A"));
        a.set(Field::LastName, Some("B"));
        a.set(Field::OfficePhone, Some("+441134960000"));
        let user = user_json(&a);
        let changes = [
            Change {
                field: Field::MobilePhone,
                before: None,
                after: Some("+447700900000".into()),
            },
            Change {
                field: Field::WorkArea,
                before: None,
                after: Some("CCU;ICU".into()),
            },
            Change {
                field: Field::Title,
                before: None,
                after: None,
            },
        ];
        let refs: Vec<&Change> = changes.iter().collect();
        let body = patch_body(&user, &refs);
        let ops = body["Operations"].as_array().unwrap();
        assert_eq!(ops.len(), 3, "{body}");
        assert_eq!(ops[0]["path"], format!("{NHS_USER}:workAreas"));
        assert_eq!(ops[0]["value"], json!(["CCU", "ICU"]));
        assert_eq!(ops[1]["op"], "remove");
        assert_eq!(ops[2]["value"].as_array().unwrap().len(), 2);
        let mut patched = user.clone();
        crate::scim::patch::apply(&mut patched, &body).unwrap();
        let back = account_of(&patched).unwrap();
        assert_eq!(back.get(Field::MobilePhone), Some("+447700900000"));
        assert_eq!(back.get(Field::OfficePhone), Some("+441134960000"));
        assert_eq!(back.get(Field::WorkArea), Some("CCU;ICU"));
    }
}
