//! One User: GET (with `If-None-Match` and projection), POST, PUT, PATCH (under `If-Match`),
//! and DELETE (always 405).
//!
//! In: the request and the credential's scope. Out: the User as stored, with its ETag, or a
//! SCIM error: 404 for a User outside the scope, 403 for a write for another organisation,
//! 409 `uniqueness` for a taken userName or externalId, 412 for a stale version, 400
//! `mutability` for a changed organisation or organisation unit.

use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;

use super::auth::Caller;
use super::query::{project, served};
use super::rules::{self, Written};
use super::scope::Scope;
use super::{ScimError, ServerState, Shared, base, parse_json, scim};
use crate::directory::{Account, Directory, Status};
use crate::model::{Field, PortalId, Provenance};
use crate::scim::filter::quote;
use crate::scim::{NHS_USER, account_from_user, patch, version_of, with_meta};

/// `attributes` / `excludedAttributes` of a GET.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Projection {
    attributes: Option<String>,
    excluded_attributes: Option<String>,
}

pub(super) async fn get_user(
    State(s): State<Shared>,
    Extension(scope): Extension<Scope>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(p): Query<Projection>,
) -> Result<Response, ScimError> {
    let account = load(&s, &scope, &id).await?;
    let user = with_meta(served(&account), &base(&s, &headers));
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

/// A write's provenance: the request (`POST /v2/Users`) and the client that made it (the
/// fixed token, or `OAuth2 client x`); the run's source reads `SCIM POST /v2/Users by …`.
pub(super) fn source(method: &str, path: &str, caller: &Caller) -> Provenance {
    Provenance::scim(format!("{method} /v2/{path}"), caller.0.clone())
}

pub(super) async fn create_user(
    State(s): State<Shared>,
    Extension(scope): Extension<Scope>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ScimError> {
    let body = parse_json(&body)?;
    let source = source("POST", "Users", &caller);
    let user = create(&s, &scope, &body, &base(&s, &headers), &source).await?;
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

/// Creates a User through the rules ([`rules`]): 400 `invalidValue` when a file row with
/// its values would be refused, 409 `uniqueness` when its userName or (organisation,
/// externalId) is taken; journalled as a run whose source is `source`.
pub(super) async fn create(
    s: &Shared,
    scope: &Scope,
    body: &Value,
    base: &str,
    source: &Provenance,
) -> Result<Value, ScimError> {
    let account = account_from_user(body, PortalId::new_unchecked(""), Status::Active)?;
    may_act_for(scope, account.organisation())?;
    require_names(&account)?;
    let (row, person) = rules::validated(&s.pipeline.rules, &account, None)?;
    let _guard = s.writes.lock().await;
    let d = &s.directory;
    if let Some(email) = &person.email
        && let Some(other) = d.by_email(email.as_str()).await?
    {
        return Err(ScimError::new(
            StatusCode::CONFLICT,
            Some("uniqueness"),
            format!("userName {email} is taken by {}", holder(scope, &other)),
        ));
    }
    let organisation = person.organisation.as_str();
    let ext = person.external_sync_id.as_str();
    if let Some(other) = d.by_external_sync_id(organisation, ext).await? {
        return Err(ScimError::new(
            StatusCode::CONFLICT,
            Some("uniqueness"),
            format!(
                "externalId {} is taken in {organisation} by User {}",
                quote(ext),
                other.id
            ),
        ));
    }
    // The service keeps the organisations its Users name (there is no portal behind it).
    let units: Vec<&str> = person
        .organisation_unit
        .as_ref()
        .map(|u| u.as_str())
        .filter(|u| *u != organisation)
        .into_iter()
        .collect();
    d.add_organisation(organisation, &units).await?;
    match rules::write(s, organisation, row, source).await? {
        Written::Created(id) => Ok(with_meta(served(&load(s, scope, id.as_str()).await?), base)),
        Written::Updated | Written::Unchanged => Err(ScimError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            "the directory did not create the account",
        )),
    }
}

/// How a User is being changed.
pub(super) enum Update<'a> {
    Replace(&'a Value),
    Patch(&'a Value),
}

pub(super) async fn put_user(
    State(s): State<Shared>,
    Extension(scope): Extension<Scope>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ScimError> {
    let source = source("PUT", &format!("Users/{id}"), &caller);
    changed_user(&s, &scope, &headers, &id, &body, &source, |v| {
        Update::Replace(v)
    })
    .await
}

pub(super) async fn patch_user(
    State(s): State<Shared>,
    Extension(scope): Extension<Scope>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ScimError> {
    let source = source("PATCH", &format!("Users/{id}"), &caller);
    changed_user(&s, &scope, &headers, &id, &body, &source, |v| {
        Update::Patch(v)
    })
    .await
}

/// PUT and PATCH: the change applied under the request's `If-Match`, the User answered.
async fn changed_user(
    s: &Shared,
    scope: &Scope,
    headers: &HeaderMap,
    id: &str,
    body: &Bytes,
    source: &Provenance,
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
        source,
    )
    .await?;
    let version = user["meta"]["version"].as_str().map(str::to_owned);
    Ok(scim(StatusCode::OK, &user, version.as_deref()))
}

pub(super) async fn delete_user(Path(id): Path<String>) -> Response {
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

/// Replaces or patches a User through the rules ([`rules`]), guarded by `If-Match` when
/// given; journalled as a run whose source is `source` (none when nothing changes).
pub(super) async fn update(
    s: &Shared,
    scope: &Scope,
    id: &str,
    how: Update<'_>,
    if_match: Option<String>,
    base: &str,
    source: &Provenance,
) -> Result<Value, ScimError> {
    let _guard = s.writes.lock().await;
    let current = load(s, scope, id).await?;
    let current_json = served(&current);
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
    for (field, name, why) in [
        (
            Field::ExternalSyncId,
            "externalId".to_owned(),
            "it is the organisation's key of the person",
        ),
        (
            Field::Organisation,
            format!("{NHS_USER}:organisation"),
            "people move by transfer in the portal",
        ),
        (
            Field::OrganisationUnit,
            format!("{NHS_USER}:organisationUnit"),
            "people move by transfer in the portal",
        ),
    ] {
        // Immutable (RFC 7644 §3.5.1): may be set once, then must match.
        if current.get(field).is_some() && new.get(field) != current.get(field) {
            return Err(ScimError::new(
                StatusCode::BAD_REQUEST,
                Some("mutability"),
                format!("{name} is immutable: {why}"),
            ));
        }
    }
    let (row, person) = rules::validated(&s.pipeline.rules, &new, Some(&current.id))?;
    if let Some(after) = &person.email
        && Some(after.as_str()) != current.email()
        && let Some(other) = s.directory.by_email(after.as_str()).await?
        && other.id != current.id
    {
        return Err(ScimError::new(
            StatusCode::CONFLICT,
            Some("uniqueness"),
            format!("userName {after} is taken by {}", holder(scope, &other)),
        ));
    }
    match rules::write(s, current.organisation(), row, source).await? {
        Written::Unchanged => Ok(with_meta(current_json, base)),
        Written::Updated | Written::Created(_) => {
            let after = load(s, scope, id).await?;
            Ok(with_meta(served(&after), base))
        }
    }
}
