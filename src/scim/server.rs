//! `push-connector serve`: a SCIM 2.0 service provider (RFC 7644) over the embedded directory.
//!
//! In: a [`LocalDirectory`], a fixed bearer token and/or an OAuth2 token issuer, and the code
//! lists. Out: an axum [`Router`] with `/v2/Users` (POST, GET with filter, paging and
//! sorting, GET/PUT/PATCH by id), `/v2/Bulk`, `/v2/ServiceProviderConfig`, `/v2/Schemas`,
//! `/v2/ResourceTypes`, and `/oauth/token` outside `/v2` (see [`super::oauth`]). Every answer is
//! `application/scim+json`; errors are RFC 7644 §3.12 bodies.
//!
//! Contracts: writes are serialised, so an `If-Match` check and the write it guards are one
//! step (a stale version → 412). DELETE answers 405: the directory is kept by connectors, and
//! a connector never deletes an account (leavers are handled in the portal). Organisation,
//! organisation unit and status are not changed over SCIM (`immutable` / `readOnly`).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::filter::{Filter, quote};
use super::schema::{self, CodeLists, MAX_OPERATIONS, MAX_PAYLOAD, MAX_RESULTS};
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
    /// The OAuth2 token endpoint, when clients are configured.
    pub oauth: Option<super::oauth::Issuer>,
    pub codes: CodeLists,
    /// Served over TLS: locations are `https://` URLs.
    pub https: bool,
    writes: tokio::sync::Mutex<()>,
}

impl ServerState {
    pub fn new(directory: LocalDirectory, token: Option<String>, codes: CodeLists) -> ServerState {
        ServerState {
            directory,
            token,
            oauth: None,
            codes,
            https: false,
            writes: tokio::sync::Mutex::new(()),
        }
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
        .with_state(state)
}

/// `POST /oauth/token` (see [`super::oauth`]); 404 when no clients are configured.
async fn oauth_token(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    match &s.oauth {
        Some(issuer) => issuer.respond(&headers, &body),
        None => not_found().await.into_response(),
    }
}

async fn authorise(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
    let ok = given.is_some_and(|t| {
        let t = t.trim();
        state
            .token
            .as_ref()
            .is_some_and(|fixed| constant_time_eq(t.as_bytes(), fixed.as_bytes()))
            || state.oauth.as_ref().is_some_and(|o| o.accepts(t))
    });
    if !ok {
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
    }
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
        &schema::service_provider_config(&base(&s, &headers)),
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
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Response, ScimError> {
    let body = list(&s, &base(&s, &headers), &q).await?;
    Ok(scim(StatusCode::OK, &body, None))
}

async fn search_users(
    State(s): State<Shared>,
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
    let body = list(&s, &base(&s, &headers), &q).await?;
    Ok(scim(StatusCode::OK, &body, None))
}

async fn list(s: &ServerState, base: &str, q: &ListQuery) -> Result<Value, ScimError> {
    let filter = q
        .filter
        .as_deref()
        .filter(|f| !f.trim().is_empty())
        .map(Filter::parse)
        .transpose()
        .map_err(|e| ScimError::new(StatusCode::BAD_REQUEST, Some("invalidFilter"), e.0))?;
    let accounts = candidates(s, filter.as_ref()).await?;
    let mut users: Vec<Value> = accounts
        .iter()
        .map(|a| with_meta(user_json(a), base))
        .filter(|u| filter.as_ref().is_none_or(|f| f.matches(u)))
        .collect();
    users.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    if let Some(by) = q.sort_by.as_deref().filter(|b| !b.trim().is_empty()) {
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
    let start = usize::try_from(q.start_index.unwrap_or(1).max(1)).unwrap_or(1);
    let count = usize::try_from(q.count.unwrap_or(MAX_RESULTS as i64).max(0))
        .unwrap_or(0)
        .min(MAX_RESULTS);
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

/// The accounts a filter can match: from an index when it pins userName, e-mail, externalId
/// or organisation, else every account.
async fn candidates(s: &ServerState, filter: Option<&Filter>) -> Result<Vec<Account>, ScimError> {
    let d = &s.directory;
    let org_path = format!("{NHS_USER}:organisation");
    if let Some(f) = filter {
        for key in ["userName", "emails", "emails.value"] {
            if let Some(v) = f.required_eq(key) {
                return Ok(d.by_email(&v.to_lowercase()).await?.into_iter().collect());
            }
        }
        if let Some(org) = f.required_eq(&org_path) {
            if let Some(ext) = f.required_eq("externalId") {
                return Ok(d.by_external_sync_id(org, ext).await?.into_iter().collect());
            }
            return Ok(d.list(org).await?);
        }
        if let Some(id) = f.required_eq("id") {
            return Ok(d
                .by_id(&PortalId::new_unchecked(id))
                .await?
                .into_iter()
                .collect());
        }
    }
    Ok(d.all().await?)
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

fn parse_json(body: &[u8]) -> Result<Value, ScimError> {
    if body.len() > MAX_PAYLOAD {
        return Err(ScimError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            None,
            format!("the request is over {MAX_PAYLOAD} bytes"),
        ));
    }
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
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(p): Query<Projection>,
) -> Result<Response, ScimError> {
    let account = load(&s, &id).await?;
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

async fn load(s: &ServerState, id: &str) -> Result<Account, ScimError> {
    s.directory
        .by_id(&PortalId::new_unchecked(id))
        .await?
        .ok_or_else(|| ScimError::new(StatusCode::NOT_FOUND, None, format!("no User {id}")))
}

async fn create_user(
    State(s): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ScimError> {
    let body = parse_json(&body)?;
    let user = create(&s, &body, &base(&s, &headers)).await?;
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
async fn create(s: &ServerState, body: &Value, base: &str) -> Result<Value, ScimError> {
    let id = PortalId::new_unchecked(uuid::Uuid::new_v4().simple().to_string());
    let account = account_from_user(body, id, Status::Active)?;
    require_names(&account)?;
    let _guard = s.writes.lock().await;
    let d = &s.directory;
    if let Some(email) = account.email()
        && let Some(other) = d.by_email(email).await?
    {
        return Err(ScimError::new(
            StatusCode::CONFLICT,
            Some("uniqueness"),
            format!("userName {email} is taken by User {}", other.id),
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
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ScimError> {
    changed_user(&s, &headers, &id, &body, |v| Update::Replace(v)).await
}

async fn patch_user(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ScimError> {
    changed_user(&s, &headers, &id, &body, |v| Update::Patch(v)).await
}

/// PUT and PATCH: the change applied under the request's `If-Match`, the User answered.
async fn changed_user(
    s: &Shared,
    headers: &HeaderMap,
    id: &str,
    body: &Bytes,
    how: fn(&Value) -> Update<'_>,
) -> Result<Response, ScimError> {
    let body = parse_json(body)?;
    let user = update(s, id, how(&body), if_match(headers), &base(s, headers)).await?;
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
    id: &str,
    how: Update<'_>,
    if_match: Option<String>,
    base: &str,
) -> Result<Value, ScimError> {
    let _guard = s.writes.lock().await;
    let current = load(s, id).await?;
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
            format!("userName {after} is taken by User {}", other.id),
        ));
    }
    let op = Op::Update {
        id: current.id.clone(),
        changes,
        run: "scim".to_owned(),
    };
    match s.directory.apply(&[op]).await?.into_iter().next() {
        Some(OpOutcome::Updated) => {
            let after = load(s, id).await?;
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
        let path = op["path"].as_str().unwrap_or_default();
        let outcome = bulk_one(
            &s,
            &method,
            path,
            &op["data"],
            op["version"].as_str(),
            &ids,
            &base,
        )
        .await;
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

async fn bulk_one(
    s: &ServerState,
    method: &str,
    path: &str,
    data: &Value,
    version: Option<&str>,
    ids: &std::collections::HashMap<String, String>,
    base: &str,
) -> Result<(StatusCode, Value), ScimError> {
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
        (Some(Method::POST), true) => Ok((StatusCode::CREATED, create(s, data, base).await?)),
        (Some(Method::PUT), false) => Ok((
            StatusCode::OK,
            update(s, &id, Update::Replace(data), version, base).await?,
        )),
        (Some(Method::PATCH), false) => Ok((
            StatusCode::OK,
            update(s, &id, Update::Patch(data), version, base).await?,
        )),
        _ => Err(ScimError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            None,
            format!("{method} {path} is not supported"),
        )),
    }
}

/// Serves until `shutdown` resolves, over plain TCP or TLS ([`super::tls::TlsListener`]).
pub async fn serve<L>(
    listener: L,
    state: ServerState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    axum::serve(listener, router(Arc::new(state)))
        .with_graceful_shutdown(shutdown)
        .await
}
