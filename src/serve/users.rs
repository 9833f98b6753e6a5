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

use super::query::project;
use super::scope::Scope;
use super::{ScimError, ServerState, Shared, base, parse_json, scim};
use crate::directory::{Account, Change, Directory, NewAccount, Op, OpOutcome, Status};
use crate::model::{Field, PortalId};
use crate::scim::filter::quote;
use crate::scim::{NHS_USER, account_from_user, patch, user_json, version_of, with_meta};

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

pub(super) async fn create_user(
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
pub(super) async fn create(
    s: &ServerState,
    scope: &Scope,
    body: &Value,
    base: &str,
) -> Result<Value, ScimError> {
    let id = PortalId::new_unchecked(uuid::Uuid::new_v4().simple().to_string());
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
pub(super) enum Update<'a> {
    Replace(&'a Value),
    Patch(&'a Value),
}

pub(super) async fn put_user(
    State(s): State<Shared>,
    Extension(scope): Extension<Scope>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ScimError> {
    changed_user(&s, &scope, &headers, &id, &body, |v| Update::Replace(v)).await
}

pub(super) async fn patch_user(
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

/// Replaces or patches a User, guarded by `If-Match` when given.
pub(super) async fn update(
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
