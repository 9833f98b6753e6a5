//! `push-connector serve`: a SCIM 2.0 service provider (RFC 7644) over the embedded directory.
//!
//! In: a [`LocalDirectory`], a fixed bearer token and/or an OAuth2 token issuer, and the code
//! lists. Out: an axum [`Router`] with `/v2/Users` (POST, GET with filter, paging and
//! sorting, GET/PUT/PATCH by id), `/v2/Bulk`, `/v2/ServiceProviderConfig`, `/v2/Schemas`,
//! `/v2/ResourceTypes`, and `/oauth/token` outside `/v2` (see [`super::oauth`]). Every answer is
//! `application/scim+json`; errors are RFC 7644 §3.12 bodies.
//!
//! Contracts: writes are serialised, so an `If-Match` check and the write it guards are one
//! step (a stale version → 412). Every credential has a [`Scope`]: a User of another
//! organisation is answered 404 (its existence is not revealed), lists hold only the scope's
//! Users, and creating a User for another organisation is refused 403. Filters are bounded
//! ([`filter::Limits`]); a filter no index answers examines at most `scan` accounts (else 400
//! `tooMany`). Bodies are read within a size and a time limit. A handler that panics is
//! answered 500; the process and the other connections carry on. DELETE answers 405: the
//! directory is kept by connectors, and a connector never deletes an account (leavers are
//! handled in the portal). Organisation, organisation unit and status are not changed over
//! SCIM (`immutable` / `readOnly`).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Extension, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::{FutureExt as _, StreamExt as _};
use serde::Deserialize;
use serde_json::{Value, json};

use super::filter::{self, Filter, quote};
use super::listen::Peer;
use super::schema::{self, CodeLists, MAX_OPERATIONS, MAX_RESULTS};
use super::scope::Scope;
use super::{
    BULK_REQUEST, BULK_RESPONSE, InvalidUser, LIST_RESPONSE, NHS_USER, account_from_user,
    error_body, patch, user_json, version_of, with_meta,
};
use crate::directory::local::LocalDirectory;
use crate::directory::{Account, Change, Directory, NewAccount, Op, OpOutcome, Status};
use crate::model::{Field, PortalId};

/// What the service is built from.
pub struct ServerState {
    pub directory: LocalDirectory,
    /// The fixed bearer token clients may send (none: only tokens from `/oauth/token`).
    pub token: Option<String>,
    /// The organisations the fixed token may act for.
    pub token_scope: Scope,
    limits: RequestLimits,
    /// Permits for unindexed examinations ([`RequestLimits::parallel_scans`]).
    scans: tokio::sync::Semaphore,
    /// The OAuth2 token endpoint, when clients are configured.
    pub oauth: Option<super::oauth::Issuer>,
    pub codes: CodeLists,
    /// Served over TLS: locations are `https://` URLs.
    pub https: bool,
    writes: tokio::sync::Mutex<()>,
}

/// What one request may ask of the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    pub filter: filter::Limits,
    /// Most accounts a list or search examines without an index.
    pub scan: usize,
    /// Most such examinations at once.
    pub parallel_scans: usize,
    /// Largest body, in bytes.
    pub body_bytes: usize,
    /// Longest a client may take to send the body.
    pub body_timeout: Duration,
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits {
            filter: filter::Limits::default(),
            scan: 20_000,
            parallel_scans: 4,
            body_bytes: 1024 * 1024,
            body_timeout: Duration::from_secs(30),
        }
    }
}

impl ServerState {
    /// The state of a service whose fixed `token` (if any) acts for `token_scope`.
    pub fn new(
        directory: LocalDirectory,
        token: Option<String>,
        token_scope: Scope,
        codes: CodeLists,
    ) -> ServerState {
        ServerState {
            directory,
            token,
            token_scope,
            limits: RequestLimits::default(),
            scans: tokio::sync::Semaphore::new(RequestLimits::default().parallel_scans),
            oauth: None,
            codes,
            https: false,
            writes: tokio::sync::Mutex::new(()),
        }
    }

    /// Sets the request limits (and the number of scan permits with them).
    pub fn set_limits(&mut self, limits: RequestLimits) {
        self.scans = tokio::sync::Semaphore::new(limits.parallel_scans.max(1));
        self.limits = limits;
    }
}

type Shared = Arc<ServerState>;

/// An answer that is not a success: status, `scimType`, detail.
#[derive(Debug)]
pub struct ScimError {
    status: StatusCode,
    scim_type: Option<&'static str>,
    detail: String,
}

impl ScimError {
    fn new(status: StatusCode, scim_type: Option<&'static str>, detail: impl Into<String>) -> Self {
        ScimError {
            status,
            scim_type,
            detail: detail.into(),
        }
    }

    fn body(&self) -> Value {
        error_body(self.status.as_u16(), self.scim_type, &self.detail)
    }
}

impl From<InvalidUser> for ScimError {
    fn from(e: InvalidUser) -> Self {
        ScimError::new(StatusCode::BAD_REQUEST, Some(e.scim_type), e.detail)
    }
}

impl From<crate::directory::DirectoryError> for ScimError {
    fn from(e: crate::directory::DirectoryError) -> Self {
        tracing::error!(error = %e, "directory");
        ScimError::new(StatusCode::INTERNAL_SERVER_ERROR, None, e.to_string())
    }
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        scim(self.status, &self.body(), None)
    }
}

fn scim(status: StatusCode, body: &Value, etag: Option<&str>) -> Response {
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/scim+json"),
    );
    if let Some(tag) = etag.and_then(|t| HeaderValue::from_str(t).ok()) {
        headers.insert(header::ETAG, tag);
    }
    response
}

/// The router; mount it at the root (paths start with `/v2`).
pub fn router(state: Shared) -> Router {
    let v2 = Router::new()
        .route("/ServiceProviderConfig", get(service_provider_config))
        .route("/Schemas", get(schemas))
        .route("/Schemas/{id}", get(schema_by_id))
        .route("/ResourceTypes", get(resource_types))
        .route("/ResourceTypes/{id}", get(resource_type_by_id))
        .route("/Users", get(list_users).post(create_user))
        .route("/Users/.search", post(search_users))
        .route(
            "/Users/{id}",
            get(get_user)
                .put(put_user)
                .patch(patch_user)
                .delete(delete_user),
        )
        .route("/Bulk", post(bulk))
        .route("/.search", post(search_users))
        .fallback(not_found);
    Router::new()
        .nest(
            "/v2",
            v2.layer(middleware::from_fn_with_state(state.clone(), authorise)),
        )
        .route("/oauth/token", post(oauth_token))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(state.limits.body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), bounded_body))
        .layer(middleware::from_fn(catch_panic))
        .with_state(state)
}

/// A handler that panics is answered 500 (and logged); its connection and every other carry
/// on. (The release profile unwinds: `panic = "abort"` would defeat this.)
async fn catch_panic(request: Request, next: Next) -> Response {
    let what = format!("{} {}", request.method(), request.uri().path());
    match AssertUnwindSafe(next.run(request)).catch_unwind().await {
        Ok(r) => r,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(request = %what, panic = %message, "a request handler panicked");
            ScimError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                None,
                "the request failed inside the service; it has been logged",
            )
            .into_response()
        }
    }
}

/// Reads the body within the size and time limits before any handler sees it: 413 over the
/// size (from `Content-Length` at once, or while reading), 408 when it is not all there in
/// time.
async fn bounded_body(State(s): State<Shared>, request: Request, next: Next) -> Response {
    let limit = s.limits.body_bytes;
    let too_large = || {
        ScimError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            None,
            format!("the request body is over {limit} bytes"),
        )
        .into_response()
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large();
    }
    let (parts, body) = request.into_parts();
    let read = async {
        let mut stream = body.into_data_stream();
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| Some(e.to_string()))?;
            if bytes.len() + chunk.len() > limit {
                return Err(None::<String>);
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    };
    match tokio::time::timeout(s.limits.body_timeout, read).await {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Ok(Err(None)) => too_large(),
        Ok(Err(Some(e))) => ScimError::new(
            StatusCode::BAD_REQUEST,
            None,
            format!("reading the body: {e}"),
        )
        .into_response(),
        Err(_) => {
            let mut r = ScimError::new(
                StatusCode::REQUEST_TIMEOUT,
                None,
                format!(
                    "the request body did not arrive within {} seconds",
                    s.limits.body_timeout.as_secs()
                ),
            )
            .into_response();
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            r
        }
    }
}

/// `POST /oauth/token` (see [`super::oauth`]); 404 when no clients are configured.
async fn oauth_token(
    State(s): State<Shared>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match &s.oauth {
        Some(issuer) => issuer.respond(&headers, &body, peer.map(|Extension(p)| p.0.ip())),
        None => not_found().await.into_response(),
    }
}

/// Checks the bearer token and hands its [`Scope`] to the handlers as an extension.
async fn authorise(State(state): State<Shared>, mut request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
    let scope = given.and_then(|t| {
        let t = t.trim();
        if state
            .token
            .as_ref()
            .is_some_and(|fixed| constant_time_eq(t.as_bytes(), fixed.as_bytes()))
        {
            return Some(state.token_scope.clone());
        }
        state.oauth.as_ref().and_then(|o| o.accepts(t))
    });
    let Some(scope) = scope else {
        let mut r = ScimError::new(
            StatusCode::UNAUTHORIZED,
            None,
            "a valid bearer token is required",
        )
        .into_response();
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"push-connector\""),
        );
        return r;
    };
    request.extensions_mut().insert(scope);
    next.run(request).await
}

pub(super) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `http://host/v2`, from the request's Host header.
fn base(s: &ServerState, headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let scheme = if s.https { "https" } else { "http" };
    format!("{scheme}://{host}/v2")
}

async fn not_found() -> ScimError {
    ScimError::new(StatusCode::NOT_FOUND, None, "no such endpoint")
}

async fn service_provider_config(State(s): State<Shared>, headers: HeaderMap) -> Response {
    scim(
        StatusCode::OK,
        &schema::service_provider_config(&base(&s, &headers), s.limits.body_bytes),
        None,
    )
}

async fn schemas(State(s): State<Shared>, headers: HeaderMap) -> Response {
    scim(
        StatusCode::OK,
        &schema::list(schema::schemas(&base(&s, &headers), &s.codes)),
        None,
    )
}

async fn schema_by_id(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    match schema::schemas(&base(&s, &headers), &s.codes)
        .into_iter()
        .find(|x| x["id"].as_str() == Some(id.as_str()))
    {
        Some(x) => scim(StatusCode::OK, &x, None),
        None => {
            ScimError::new(StatusCode::NOT_FOUND, None, format!("no schema {id}")).into_response()
        }
    }
}

async fn resource_types(State(s): State<Shared>, headers: HeaderMap) -> Response {
    scim(
        StatusCode::OK,
        &schema::list(vec![schema::user_resource_type(&base(&s, &headers))]),
        None,
    )
}

async fn resource_type_by_id(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if id == "User" {
        scim(
            StatusCode::OK,
            &schema::user_resource_type(&base(&s, &headers)),
            None,
        )
    } else {
        ScimError::new(
            StatusCode::NOT_FOUND,
            None,
            format!("no resource type {id}"),
        )
        .into_response()
    }
}

/// Query parameters of a list (RFC 7644 §3.4.2).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    filter: Option<String>,
    start_index: Option<i64>,
    count: Option<i64>,
    attributes: Option<String>,
    excluded_attributes: Option<String>,
    sort_by: Option<String>,
    sort_order: Option<String>,
}

async fn list_users(
    State(s): State<Shared>,
    Extension(scope): Extension<Scope>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Response, ScimError> {
    let body = list(&s, &scope, &base(&s, &headers), &q).await?;
    Ok(scim(StatusCode::OK, &body, None))
}

async fn search_users(
    State(s): State<Shared>,
    Extension(scope): Extension<Scope>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ScimError> {
    let v = parse_json(&body)?;
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let list_of = |k: &str| {
        v.get(k).and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(",")
        })
    };
    let q = ListQuery {
        filter: text("filter"),
        start_index: v.get("startIndex").and_then(Value::as_i64),
        count: v.get("count").and_then(Value::as_i64),
        attributes: list_of("attributes"),
        excluded_attributes: list_of("excludedAttributes"),
        sort_by: text("sortBy"),
        sort_order: text("sortOrder"),
    };
    let body = list(&s, &scope, &base(&s, &headers), &q).await?;
    Ok(scim(StatusCode::OK, &body, None))
}

async fn list(
    s: &ServerState,
    scope: &Scope,
    base: &str,
    q: &ListQuery,
) -> Result<Value, ScimError> {
    let filter = q
        .filter
        .as_deref()
        .filter(|f| !f.trim().is_empty())
        .map(|f| Filter::parse_within(f, &s.limits.filter))
        .transpose()
        .map_err(|e| ScimError::new(StatusCode::BAD_REQUEST, Some("invalidFilter"), e.0))?;
    let start = usize::try_from(q.start_index.unwrap_or(1).max(1)).unwrap_or(1);
    let count = usize::try_from(q.count.unwrap_or(MAX_RESULTS as i64).max(0))
        .unwrap_or(0)
        .min(MAX_RESULTS);
    let sort_by = q.sort_by.as_deref().filter(|b| !b.trim().is_empty());
    if filter.is_none() && sort_by.is_none() {
        // A plain list pages in the database: a page costs the same whatever the total.
        return plain_page(s, scope, base, q, start, count).await;
    }
    let accounts = candidates(s, scope, filter.as_ref()).await?;
    let mut users: Vec<Value> = accounts
        .into_iter()
        .filter(|a| scope.allows(a.organisation()))
        .map(|a| with_meta(user_json(&a), base))
        .filter(|u| filter.as_ref().is_none_or(|f| f.matches(u)))
        .collect();
    users.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    if let Some(by) = sort_by {
        let descending = match q.sort_order.as_deref().map(str::to_ascii_lowercase) {
            None => false,
            Some(o) if o == "ascending" => false,
            Some(o) if o == "descending" => true,
            Some(o) => {
                return Err(ScimError::new(
                    StatusCode::BAD_REQUEST,
                    Some("invalidValue"),
                    format!("sortOrder {o:?} is neither ascending nor descending"),
                ));
            }
        };
        sort_users(&mut users, by.trim(), descending);
    }
    let total = users.len();
    let page: Vec<Value> = users
        .into_iter()
        .skip(start - 1)
        .take(count)
        .map(|u| project(u, q.attributes.as_deref(), q.excluded_attributes.as_deref()))
        .collect();
    Ok(json!({
        "schemas": [LIST_RESPONSE],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": page.len(),
        "Resources": page,
    }))
}

/// One page of the scope's Users in ID order, without a filter.
async fn plain_page(
    s: &ServerState,
    scope: &Scope,
    base: &str,
    q: &ListQuery,
    start: usize,
    count: usize,
) -> Result<Value, ScimError> {
    let codes: Option<Vec<String>> = scope.codes().map(|c| c.iter().cloned().collect());
    let total = s.directory.count_in(codes.as_deref()).await?;
    let accounts = if count == 0 {
        Vec::new()
    } else {
        s.directory
            .accounts_in(codes.as_deref(), start as u64 - 1, Some(count as u64))
            .await?
    };
    let page: Vec<Value> = accounts
        .iter()
        .map(|a| {
            project(
                with_meta(user_json(a), base),
                q.attributes.as_deref(),
                q.excluded_attributes.as_deref(),
            )
        })
        .collect();
    Ok(json!({
        "schemas": [LIST_RESPONSE],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": page.len(),
        "Resources": page,
    }))
}

/// Sorts by an attribute (RFC 7644 §3.4.2.3): a multi-valued attribute by its primary value,
/// else its first; strings without regard to case (but `id`, `externalId`); Users without a
/// value last when ascending, first when descending. Ties keep their order (by `id`).
fn sort_users(users: &mut [Value], by: &str, descending: bool) {
    let exact = by.eq_ignore_ascii_case("id") || by.eq_ignore_ascii_case("externalId");
    let key = |u: &Value| -> Option<String> {
        let values = super::filter::values_at(u, by);
        let primary = by.split_once('.').map_or(by, |(top, _)| top).to_owned();
        let chosen = u
            .get(&primary)
            .and_then(Value::as_array)
            .and_then(|items| items.iter().position(|i| i["primary"] == true))
            .and_then(|i| values.get(i).copied())
            .or_else(|| values.first().copied())?;
        let text = match chosen {
            Value::String(s) if exact => s.clone(),
            Value::String(s) => s.to_lowercase(),
            Value::Null => return None,
            other => other.to_string(),
        };
        Some(text)
    };
    let mut keyed: Vec<(Option<String>, Value)> =
        users.iter_mut().map(|u| (key(u), u.take())).collect();
    keyed.sort_by(|(a, _), (b, _)| match (a, b, descending) {
        (Some(a), Some(b), false) => a.cmp(b),
        (Some(a), Some(b), true) => b.cmp(a),
        (None, None, _) => std::cmp::Ordering::Equal,
        (None, Some(_), d) => {
            if d {
                std::cmp::Ordering::Less
            } else {
                std::cmp::Ordering::Greater
            }
        }
        (Some(_), None, d) => {
            if d {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Less
            }
        }
    });
    for (slot, (_, u)) in users.iter_mut().zip(keyed) {
        *slot = u;
    }
}

/// The accounts a filter can match, within the scope: from an index when it pins userName,
/// e-mail, externalId or id; else the scope's (or the named organisation's) accounts, when
/// there are at most `scan` of them — more is 400 `tooMany`, so no request loads the whole
/// directory.
async fn candidates(
    s: &ServerState,
    scope: &Scope,
    filter: Option<&Filter>,
) -> Result<Vec<Account>, ScimError> {
    let d = &s.directory;
    let org_path = format!("{NHS_USER}:organisation");
    let Some(f) = filter else {
        return scan(s, scope, None).await;
    };
    for key in ["userName", "emails", "emails.value"] {
        if let Some(v) = f.required_eq(key) {
            return Ok(d.by_email(&v.to_lowercase()).await?.into_iter().collect());
        }
    }
    if let Some(id) = f.required_eq("id") {
        return Ok(d
            .by_id(&PortalId::new_unchecked(id))
            .await?
            .into_iter()
            .collect());
    }
    let org = f.required_eq(&org_path);
    if let Some(ext) = f.required_eq("externalId") {
        let orgs: Vec<String> = match (org, scope.codes()) {
            (Some(org), _) => vec![org.trim().to_ascii_uppercase()],
            (None, Some(codes)) => codes.iter().cloned().collect(),
            (None, None) => return Ok(d.by_external_key(ext).await?),
        };
        let mut found = Vec::new();
        for org in orgs {
            found.extend(d.by_external_sync_id(&org, ext).await?);
        }
        return Ok(found);
    }
    scan(s, scope, org).await
}

/// Every account of the scope (of `org` alone when given), refused with 400 `tooMany` when
/// that is more than the scan limit.
async fn scan(
    s: &ServerState,
    scope: &Scope,
    org: Option<&str>,
) -> Result<Vec<Account>, ScimError> {
    let codes: Option<Vec<String>> = match org {
        Some(org) if !scope.allows(org) => return Ok(Vec::new()),
        Some(org) => Some(vec![org.trim().to_ascii_uppercase()]),
        None => scope.codes().map(|c| c.iter().cloned().collect()),
    };
    let too_many = |n: u64| {
        ScimError::new(
            StatusCode::BAD_REQUEST,
            Some("tooMany"),
            format!(
                "this request would examine {n} Users; at most {} are examined without an \
                 index: add userName, emails, externalId or id eq \"…\" to the filter, or \
                 narrow it to an organisation with fewer Users ({org_path} eq \"…\")",
                s.limits.scan,
                org_path = format_args!("{NHS_USER}:organisation"),
            ),
        )
    };
    let n = s.directory.count_in(codes.as_deref()).await?;
    if n > s.limits.scan as u64 {
        return Err(too_many(n));
    }
    let _permit = s.scans.acquire().await.map_err(|_| {
        ScimError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            "the service is stopping",
        )
    })?;
    // Read at most one more than the limit: accounts added since the count cannot raise
    // what this request holds.
    let limit = s.limits.scan as u64;
    let accounts = s
        .directory
        .accounts_in(codes.as_deref(), 0, Some(limit + 1))
        .await?;
    if accounts.len() as u64 > limit {
        return Err(too_many(accounts.len() as u64));
    }
    Ok(accounts)
}

/// Applies `attributes` / `excludedAttributes` (RFC 7644 §3.4.2.5) to top-level attributes;
/// `id`, `schemas` and `meta` are always returned.
fn project(mut user: Value, attributes: Option<&str>, excluded: Option<&str>) -> Value {
    let names = |s: &str| -> Vec<String> {
        s.split(',')
            .map(|a| a.trim().to_ascii_lowercase())
            .filter(|a| !a.is_empty())
            .collect()
    };
    let top = |a: &str| -> String {
        let core = format!("{}:", super::CORE_USER.to_ascii_lowercase());
        let a = a.strip_prefix(&core).unwrap_or(a);
        let nhs = NHS_USER.to_ascii_lowercase();
        if a.starts_with(&nhs) {
            return nhs;
        }
        a.split('.').next().unwrap_or(a).to_owned()
    };
    let Value::Object(map) = &mut user else {
        return user;
    };
    if let Some(a) = attributes.filter(|a| !a.trim().is_empty()) {
        let keep: Vec<String> = names(a).iter().map(|x| top(x)).collect();
        map.retain(|k, _| {
            let k = k.to_ascii_lowercase();
            ["id", "schemas", "meta"].contains(&k.as_str()) || keep.contains(&k)
        });
    } else if let Some(e) = excluded {
        let drop: Vec<String> = names(e);
        map.retain(|k, _| {
            let k = k.to_ascii_lowercase();
            ["id", "schemas", "meta"].contains(&k.as_str()) || !drop.contains(&k)
        });
    }
    user
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Projection {
    attributes: Option<String>,
    excluded_attributes: Option<String>,
}

/// The JSON of a body ([`bounded_body`] has kept it within the size limit).
fn parse_json(body: &[u8]) -> Result<Value, ScimError> {
    serde_json::from_slice(body).map_err(|e| {
        ScimError::new(
            StatusCode::BAD_REQUEST,
            Some("invalidSyntax"),
            format!("the body is not JSON: {e}"),
        )
    })
}

async fn get_user(
    State(s): State<Shared>,
    Extension(scope): Extension<Scope>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(p): Query<Projection>,
) -> Result<Response, ScimError> {
    let account = load(&s, &scope, &id).await?;
    let user = with_meta(user_json(&account), &base(&s, &headers));
    let version = user["meta"]["version"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == version || t.trim() == "*"))
    {
        let mut r = StatusCode::NOT_MODIFIED.into_response();
        if let Ok(v) = HeaderValue::from_str(&version) {
            r.headers_mut().insert(header::ETAG, v);
        }
        return Ok(r);
    }
    let user = project(
        user,
        p.attributes.as_deref(),
        p.excluded_attributes.as_deref(),
    );
    Ok(scim(StatusCode::OK, &user, Some(&version)))
}

/// The User `id`, when it is in the scope: another organisation's User is "no User", as if
/// it did not exist.
async fn load(s: &ServerState, scope: &Scope, id: &str) -> Result<Account, ScimError> {
    s.directory
        .by_id(&PortalId::new_unchecked(id))
        .await?
        .filter(|a| scope.allows(a.organisation()))
        .ok_or_else(|| ScimError::new(StatusCode::NOT_FOUND, None, format!("no User {id}")))
}

/// 403 unless the scope covers `organisation`.
fn may_act_for(scope: &Scope, organisation: &str) -> Result<(), ScimError> {
    if scope.allows(organisation) {
        return Ok(());
    }
    Err(ScimError::new(
        StatusCode::FORBIDDEN,
        None,
        format!("this credential may not act for organisation {organisation}"),
    ))
}

/// Who holds a taken userName, as far as the scope may know.
fn holder(scope: &Scope, other: &Account) -> String {
    if scope.allows(other.organisation()) {
        format!("User {}", other.id)
    } else {
        "a User of another organisation".to_owned()
    }
}

async fn create_user(
    State(s): State<Shared>,
    Extension(scope): Extension<Scope>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ScimError> {
    let body = parse_json(&body)?;
    let user = create(&s, &scope, &body, &base(&s, &headers)).await?;
    Ok(created_response(user))
}

fn created_response(user: Value) -> Response {
    let version = user["meta"]["version"].as_str().map(str::to_owned);
    let location = user["meta"]["location"].as_str().map(str::to_owned);
    let mut r = scim(StatusCode::CREATED, &user, version.as_deref());
    if let Some(l) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        r.headers_mut().insert(header::LOCATION, l);
    }
    r
}

fn require_names(account: &Account) -> Result<(), ScimError> {
    for (field, name) in [
        (Field::FirstName, "name.givenName"),
        (Field::LastName, "name.familyName"),
    ] {
        if account.get(field).is_none() {
            return Err(ScimError::new(
                StatusCode::BAD_REQUEST,
                Some("invalidValue"),
                format!("{name} is required"),
            ));
        }
    }
    Ok(())
}

/// Creates a User; 409 `uniqueness` when its userName or (organisation, externalId) is taken.
async fn create(
    s: &ServerState,
    scope: &Scope,
    body: &Value,
    base: &str,
) -> Result<Value, ScimError> {
    // Minted as every new account's ID is (a file's, a sync's): one shape everywhere.
    let id = crate::apply::Minter::portal_id(&mut crate::apply::RandomMinter);
    let account = account_from_user(body, id, Status::Active)?;
    may_act_for(scope, account.organisation())?;
    require_names(&account)?;
    let _guard = s.writes.lock().await;
    let d = &s.directory;
    if let Some(email) = account.email()
        && let Some(other) = d.by_email(email).await?
    {
        return Err(ScimError::new(
            StatusCode::CONFLICT,
            Some("uniqueness"),
            format!("userName {email} is taken by {}", holder(scope, &other)),
        ));
    }
    if let Some(ext) = account.external_sync_id()
        && let Some(other) = d.by_external_sync_id(account.organisation(), ext).await?
    {
        return Err(ScimError::new(
            StatusCode::CONFLICT,
            Some("uniqueness"),
            format!(
                "externalId {} is taken in {} by User {}",
                quote(ext),
                account.organisation(),
                other.id
            ),
        ));
    }
    let units: Vec<&str> = account.get(Field::OrganisationUnit).into_iter().collect();
    d.add_organisation(account.organisation(), &units).await?;
    let outcome = d.apply(&[Op::Create(NewAccount { account })]).await?;
    match outcome.into_iter().next() {
        Some(OpOutcome::Created(a)) => Ok(with_meta(user_json(&a), base)),
        Some(OpOutcome::Exists(a)) => Err(ScimError::new(
            StatusCode::CONFLICT,
            Some("uniqueness"),
            format!("externalId is taken by User {}", a.id),
        )),
        Some(OpOutcome::Failed(reason)) => Err(ScimError::new(
            StatusCode::CONFLICT,
            Some("uniqueness"),
            reason,
        )),
        Some(OpOutcome::Updated) | None => Err(ScimError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            "the directory did not create the account",
        )),
    }
}

/// How a User is being changed.
enum Update<'a> {
    Replace(&'a Value),
    Patch(&'a Value),
}

async fn put_user(
    State(s): State<Shared>,
    Extension(scope): Extension<Scope>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ScimError> {
    changed_user(&s, &scope, &headers, &id, &body, |v| Update::Replace(v)).await
}

async fn patch_user(
    State(s): State<Shared>,
    Extension(scope): Extension<Scope>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ScimError> {
    changed_user(&s, &scope, &headers, &id, &body, |v| Update::Patch(v)).await
}

/// PUT and PATCH: the change applied under the request's `If-Match`, the User answered.
async fn changed_user(
    s: &Shared,
    scope: &Scope,
    headers: &HeaderMap,
    id: &str,
    body: &Bytes,
    how: fn(&Value) -> Update<'_>,
) -> Result<Response, ScimError> {
    let body = parse_json(body)?;
    let user = update(
        s,
        scope,
        id,
        how(&body),
        if_match(headers),
        &base(s, headers),
    )
    .await?;
    let version = user["meta"]["version"].as_str().map(str::to_owned);
    Ok(scim(StatusCode::OK, &user, version.as_deref()))
}

async fn delete_user(Path(id): Path<String>) -> Response {
    let mut r = ScimError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        None,
        format!(
            "User {id} is not deleted: accounts are never deleted through this service; \
             leavers are handled in the portal"
        ),
    )
    .into_response();
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, PUT, PATCH"));
    r
}

fn if_match(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Replaces or patches a User, guarded by `If-Match` when given.
async fn update(
    s: &ServerState,
    scope: &Scope,
    id: &str,
    how: Update<'_>,
    if_match: Option<String>,
    base: &str,
) -> Result<Value, ScimError> {
    let _guard = s.writes.lock().await;
    let current = load(s, scope, id).await?;
    let current_json = user_json(&current);
    if let Some(wanted) = if_match {
        let version = version_of(&current_json);
        if !wanted
            .split(',')
            .any(|t| t.trim() == version || t.trim() == "*")
        {
            return Err(ScimError::new(
                StatusCode::PRECONDITION_FAILED,
                None,
                format!("User {id} has changed: its version is now {version}"),
            ));
        }
    }
    let new_json = match how {
        Update::Replace(body) => body.clone(),
        Update::Patch(body) => {
            let mut j = current_json.clone();
            patch::apply(&mut j, body)?;
            j
        }
    };
    let mut new = account_from_user(&new_json, current.id.clone(), current.status)?;
    if new.get(Field::OrganisationUnit).is_none() {
        new.set(
            Field::OrganisationUnit,
            current.get(Field::OrganisationUnit),
        );
    }
    may_act_for(scope, new.organisation())?;
    require_names(&new)?;
    for (field, name) in [
        (Field::Organisation, "organisation"),
        (Field::OrganisationUnit, "organisationUnit"),
    ] {
        // Immutable (RFC 7644 §3.5.1): may be set once, then must match.
        if current.get(field).is_some() && new.get(field) != current.get(field) {
            return Err(ScimError::new(
                StatusCode::BAD_REQUEST,
                Some("mutability"),
                format!("{NHS_USER}:{name} is immutable: people move by transfer in the portal"),
            ));
        }
    }
    if current.get(Field::OrganisationUnit).is_none()
        && let Some(unit) = new.get(Field::OrganisationUnit)
    {
        s.directory
            .add_organisation(current.organisation(), &[unit])
            .await?;
    }
    let changes: Vec<Change> = Field::ALL
        .into_iter()
        .filter(|f| !matches!(f, Field::Id | Field::Organisation))
        .filter(|f| new.get(*f) != current.get(*f))
        .map(|f| Change {
            field: f,
            before: current.get(f).map(str::to_owned),
            after: new.get(f).map(str::to_owned),
        })
        .collect();
    if changes.is_empty() {
        return Ok(with_meta(current_json, base));
    }
    if let Some(c) = changes.iter().find(|c| c.field == Field::Email)
        && let Some(after) = &c.after
        && let Some(other) = s.directory.by_email(after).await?
        && other.id != current.id
    {
        return Err(ScimError::new(
            StatusCode::CONFLICT,
            Some("uniqueness"),
            format!("userName {after} is taken by {}", holder(scope, &other)),
        ));
    }
    let op = Op::Update {
        id: current.id.clone(),
        changes,
        run: "scim".to_owned(),
    };
    match s.directory.apply(&[op]).await?.into_iter().next() {
        Some(OpOutcome::Updated) => {
            let after = load(s, scope, id).await?;
            Ok(with_meta(user_json(&after), base))
        }
        Some(OpOutcome::Failed(reason)) => Err(ScimError::new(
            StatusCode::CONFLICT,
            Some("uniqueness"),
            reason,
        )),
        _ => Err(ScimError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            "the directory did not update the account",
        )),
    }
}

/// `/Bulk` (RFC 7644 §3.7): POST, PUT and PATCH of Users, `bulkId:` references, `failOnErrors`.
async fn bulk(
    State(s): State<Shared>,
    Extension(scope): Extension<Scope>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ScimError> {
    let base = base(&s, &headers);
    let body = parse_json(&body)?;
    let schemas_ok = body["schemas"]
        .as_array()
        .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(BULK_REQUEST)));
    if !schemas_ok {
        return Err(ScimError::new(
            StatusCode::BAD_REQUEST,
            Some("invalidSyntax"),
            format!("schemas must contain {BULK_REQUEST}"),
        ));
    }
    let ops = body["Operations"].as_array().ok_or_else(|| {
        ScimError::new(
            StatusCode::BAD_REQUEST,
            Some("invalidSyntax"),
            "Operations must be a list",
        )
    })?;
    if ops.len() > MAX_OPERATIONS {
        return Err(ScimError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            None,
            format!("at most {MAX_OPERATIONS} operations per request"),
        ));
    }
    let fail_on = body["failOnErrors"].as_u64().unwrap_or(0);
    let mut errors = 0u64;
    let mut ids: std::collections::HashMap<String, String> = Default::default();
    let mut results = Vec::new();
    for op in ops {
        if fail_on > 0 && errors >= fail_on {
            break;
        }
        let method = op["method"]
            .as_str()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let bulk_id = op["bulkId"].as_str().map(str::to_owned);
        let outcome = bulk_one(&s, &scope, &method, op, &ids, &base).await;
        let mut entry = json!({"method": method});
        if let Some(b) = &bulk_id {
            entry["bulkId"] = json!(b);
        }
        match outcome {
            Ok((status, user)) => {
                if let (Some(b), Some(id)) = (&bulk_id, user["id"].as_str()) {
                    ids.insert(b.clone(), id.to_owned());
                }
                entry["location"] = user["meta"]["location"].clone();
                entry["version"] = user["meta"]["version"].clone();
                entry["status"] = json!(status.as_u16().to_string());
            }
            Err(e) => {
                errors += 1;
                entry["status"] = json!(e.status.as_u16().to_string());
                entry["response"] = e.body();
            }
        }
        results.push(entry);
    }
    Ok(scim(
        StatusCode::OK,
        &json!({"schemas": [BULK_RESPONSE], "Operations": results}),
        None,
    ))
}

/// One Bulk operation `op` (its `path`, `data` and `version`), upper-cased `method`.
async fn bulk_one(
    s: &ServerState,
    scope: &Scope,
    method: &str,
    op: &Value,
    ids: &std::collections::HashMap<String, String>,
    base: &str,
) -> Result<(StatusCode, Value), ScimError> {
    let path = op["path"].as_str().unwrap_or_default();
    let data = &op["data"];
    let version = op["version"].as_str();
    let target = path.trim_start_matches('/');
    let target = target.strip_prefix("Users").ok_or_else(|| {
        ScimError::new(
            StatusCode::NOT_FOUND,
            Some("invalidPath"),
            format!("no endpoint {path}"),
        )
    })?;
    let id = target.trim_start_matches('/');
    let id = match id.strip_prefix("bulkId:") {
        Some(b) => ids.get(b).cloned().ok_or_else(|| {
            ScimError::new(
                StatusCode::CONFLICT,
                Some("invalidValue"),
                format!("unknown bulkId {b}"),
            )
        })?,
        None => id.to_owned(),
    };
    let version = version.map(str::to_owned);
    match (Method::from_bytes(method.as_bytes()).ok(), id.is_empty()) {
        (Some(Method::POST), true) => {
            Ok((StatusCode::CREATED, create(s, scope, data, base).await?))
        }
        (Some(Method::PUT), false) => Ok((
            StatusCode::OK,
            update(s, scope, &id, Update::Replace(data), version, base).await?,
        )),
        (Some(Method::PATCH), false) => Ok((
            StatusCode::OK,
            update(s, scope, &id, Update::Patch(data), version, base).await?,
        )),
        _ => Err(ScimError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            None,
            format!("{method} {path} is not supported"),
        )),
    }
}

/// Serves until `shutdown` resolves, over plain TCP or TLS, within the connection limits
/// (see [`super::listen`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: ServerState,
    limits: super::listen::Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    super::listen::serve(listener, tls, router(Arc::new(state)), limits, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_handler_is_answered_500_and_the_next_request_is_served() {
        async fn boom() -> &'static str {
            let deep: Vec<u8> = Vec::new();
            // An out-of-bounds index: the kind of bug a handler might still hold.
            let _ = deep[usize::from(deep.is_empty())];
            "unreachable"
        }
        let mut app = Router::new()
            .route("/boom", get(boom))
            .route("/ok", get(|| async { "ok" }))
            .layer(middleware::from_fn(catch_panic));
        for (path, status) in [("/boom", 500), ("/ok", 200), ("/boom", 500)] {
            let request = Request::builder().uri(path).body(Body::empty()).unwrap();
            let r = tower_service::Service::call(&mut app, request)
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), status, "{path}");
        }
    }
}
