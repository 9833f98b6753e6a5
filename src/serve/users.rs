//! One User: GET (with `If-None-Match` and projection), POST, PUT, PATCH (under `If-Match`),
//! and DELETE (always 405).
//!
//! In: the request and the credential's scope. Out: the User as stored, with its ETag, or a
//! SCIM error: 404 for a User outside the scope, 403 for a write for another organisation,
//! 409 `uniqueness` for a taken userName or externalId, 412 for a stale version, 400
//! `mutability` for a changed organisation or organisation unit.

use std::collections::HashSet;

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
use super::writes::{self, How, Target, Write};
use super::{ScimError, ServerState, Shared, base, parse_json, scim};
use crate::directory::{Account, Directory, Status};
use crate::model::{DirectoryIndex, Keys};
use crate::model::{Field, PortalId, Provenance};
use crate::scim::filter::quote;
use crate::scim::{NHS_USER, account_from_user, patch, version_of, with_meta};
use crate::validate::RowResult;

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
        .ok_or_else(|| no_user(id))
}

/// 404 for `id`: no User, or one outside the scope.
fn no_user(id: &str) -> ScimError {
    ScimError::new(StatusCode::NOT_FOUND, None, format!("no User {id}"))
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
    let (_, user) = one(&s, &scope, &headers, &source, Write::Create(body)).await?;
    Ok(created_response(user))
}

/// One write of its own request, committed with others queued meanwhile
/// ([`writes::single`]): the status and the User to answer.
async fn one(
    s: &Shared,
    scope: &Scope,
    headers: &HeaderMap,
    source: &Provenance,
    write: Write,
) -> Result<(StatusCode, Value), ScimError> {
    writes::single(s, scope, &base(s, headers), source, write).await
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

/// A write checked against the directory as it is now, ready to go into a run with others
/// ([`writes`](super::writes)).
pub(super) struct Prepared {
    /// The validated row (its line is set by the run it goes into).
    pub(super) row: RowResult,
    pub(super) organisation: String,
    /// The organisation units a create names, which the service keeps (there is no portal
    /// behind it).
    pub(super) units: Vec<String>,
    /// What the write touches: its account, its addresses, its externalId. Two writes that
    /// share one do not go into one run.
    pub(super) keys: Vec<String>,
    /// For a change: the User as it is, answered as it is when nothing changes.
    pub(super) current: Option<Value>,
}

/// The key of an address.
fn email_key(email: &str) -> String {
    format!("email:{}", email.to_lowercase())
}

/// Accounts read in one look-up for many writes (the Users a Bulk request names, by ID,
/// userName and externalId), as the directory held them then; a key it was not asked for
/// is looked up on its own. Valid until the next commit changes the directory.
#[derive(Default)]
pub(super) struct ReadAhead {
    index: DirectoryIndex,
    ids: HashSet<String>,
    emails: HashSet<String>,
    external: HashSet<(String, String)>,
}

impl ReadAhead {
    /// Reads the accounts of `keys` (IDs, lower-case addresses, (organisation, lower-case
    /// externalId)).
    pub(super) async fn read(s: &ServerState, keys: Keys) -> Result<ReadAhead, ScimError> {
        let index = s.directory.index_for(&keys).await?;
        Ok(ReadAhead {
            index,
            ids: keys.ids.into_iter().collect(),
            emails: keys.emails.into_iter().collect(),
            external: keys.external.into_iter().collect(),
        })
    }

    /// The account `id`, from the read-ahead when it was asked for, else from the directory.
    async fn by_id(&self, s: &ServerState, id: &str) -> Result<Option<Account>, ScimError> {
        if self.ids.contains(id) {
            return Ok(self.index.by_id(id).cloned());
        }
        Ok(s.directory.by_id(&PortalId::new_unchecked(id)).await?)
    }

    async fn by_email(&self, s: &ServerState, email: &str) -> Result<Option<Account>, ScimError> {
        let lower = email.to_lowercase();
        if self.emails.contains(&lower) {
            return Ok(self.index.by_email(&lower).cloned());
        }
        Ok(s.directory.by_email(email).await?)
    }

    async fn by_external(
        &self,
        s: &ServerState,
        organisation: &str,
        external: &str,
    ) -> Result<Option<Account>, ScimError> {
        let key = (organisation.to_owned(), external.to_lowercase());
        if self.external.contains(&key) {
            return Ok(self.index.by_external(organisation, external).cloned());
        }
        Ok(s.directory
            .by_external_sync_id(organisation, external)
            .await?)
    }
}

/// Checks a new User (a POST), against the directory as it is now: 400
/// `invalidValue` when a file row with its values would be refused, 403 outside the scope,
/// 409 `uniqueness` when its userName or (organisation, externalId) is taken.
pub(super) async fn prepare_create(
    s: &ServerState,
    ahead: &ReadAhead,
    scope: &Scope,
    body: &Value,
) -> Result<Prepared, ScimError> {
    let account = account_from_user(body, PortalId::new_unchecked(""), Status::Active)?;
    may_act_for(scope, account.organisation())?;
    require_names(&account)?;
    let (row, person) = rules::validated(&s.pipeline.rules, &account, None)?;
    let mut keys = Vec::new();
    if let Some(email) = &person.email {
        if let Some(other) = ahead.by_email(s, email.as_str()).await? {
            return Err(ScimError::new(
                StatusCode::CONFLICT,
                Some("uniqueness"),
                format!("userName {email} is taken by {}", holder(scope, &other)),
            ));
        }
        keys.push(email_key(email.as_str()));
    }
    let organisation = person.organisation.as_str();
    let ext = person.external_sync_id.as_str();
    if let Some(other) = ahead.by_external(s, organisation, ext).await? {
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
    keys.push(format!("external:{organisation}:{}", ext.to_lowercase()));
    let units = person
        .organisation_unit
        .as_ref()
        .map(|u| u.as_str().to_owned())
        .filter(|u| u != organisation)
        .into_iter()
        .collect();
    Ok(Prepared {
        row,
        organisation: organisation.to_owned(),
        units,
        keys,
        current: None,
    })
}

/// The answer to a prepared write once its run is committed: the User as stored now (201
/// for a create, 200 for a change; `after` holds the accounts as the commit left them, read
/// in one look-up), or the User as it was when nothing changed.
pub(super) async fn finish(
    s: &ServerState,
    after: &ReadAhead,
    scope: &Scope,
    current: Option<Value>,
    written: Written,
    base: &str,
) -> Result<(StatusCode, Value), ScimError> {
    let stored = async |id: &str| -> Result<Value, ScimError> {
        let account = after
            .by_id(s, id)
            .await?
            .filter(|a| scope.allows(a.organisation()))
            .ok_or_else(|| no_user(id))?;
        Ok(with_meta(served(&account), base))
    };
    match (written, current) {
        (Written::Created(id), None) => Ok((StatusCode::CREATED, stored(id.as_str()).await?)),
        (Written::Unchanged, Some(current)) => Ok((StatusCode::OK, with_meta(current, base))),
        (Written::Updated, Some(current)) => {
            let id = current["id"].as_str().unwrap_or_default().to_owned();
            Ok((StatusCode::OK, stored(&id).await?))
        }
        // A create the plan joined to an account: one a run left unfinished created, and
        // the resumed run has since finished.
        (Written::Updated | Written::Unchanged, None) => Err(ScimError::new(
            StatusCode::CONFLICT,
            Some("uniqueness"),
            "the User exists already: an earlier request created it",
        )),
        (Written::Created(_), Some(_)) => Err(ScimError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            "the directory created an account for a change",
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
    changed_user(&s, &scope, &headers, id, &body, &source, How::Replace).await
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
    changed_user(&s, &scope, &headers, id, &body, &source, How::Patch).await
}

/// PUT and PATCH: the change applied under the request's `If-Match`, the User answered.
async fn changed_user(
    s: &Shared,
    scope: &Scope,
    headers: &HeaderMap,
    id: String,
    body: &Bytes,
    source: &Provenance,
    how: How,
) -> Result<Response, ScimError> {
    let data = parse_json(body)?;
    let write = Write::Change {
        target: Target::Id(id),
        how,
        data,
        if_match: if_match(headers),
    };
    let (status, user) = one(s, scope, headers, source, write).await?;
    let version = user["meta"]["version"].as_str().map(str::to_owned);
    Ok(scim(status, &user, version.as_deref()))
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

/// Checks a replacement or patch of the User `id` (a PUT or PATCH) against the
/// directory as it is now: 412 when `if_match` names another version, 404 outside the
/// scope, 400 `mutability` for a changed externalId, organisation or unit, 400
/// `invalidValue` for a value a file row could not have, 409 for a taken userName.
pub(super) async fn prepare_update(
    s: &ServerState,
    ahead: &ReadAhead,
    scope: &Scope,
    id: &str,
    how: Update<'_>,
    if_match: Option<&str>,
) -> Result<Prepared, ScimError> {
    let current = ahead
        .by_id(s, id)
        .await?
        .filter(|a| scope.allows(a.organisation()))
        .ok_or_else(|| no_user(id))?;
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
    immutables_kept(&current, &new)?;
    let (row, person) = rules::validated(&s.pipeline.rules, &new, Some(&current.id))?;
    let mut keys = vec![format!("id:{}", current.id)];
    keys.extend(current.email().map(email_key));
    if let Some(after) = &person.email {
        if Some(after.as_str()) != current.email()
            && let Some(other) = ahead.by_email(s, after.as_str()).await?
            && other.id != current.id
        {
            return Err(ScimError::new(
                StatusCode::CONFLICT,
                Some("uniqueness"),
                format!("userName {after} is taken by {}", holder(scope, &other)),
            ));
        }
        keys.push(email_key(after.as_str()));
    }
    Ok(Prepared {
        row,
        organisation: current.organisation().to_owned(),
        units: Vec::new(),
        keys,
        current: Some(current_json),
    })
}

/// 400 `mutability` when `new` changes an immutable attribute of `current` (RFC 7644
/// §3.5.1: it may be set once, then must match).
fn immutables_kept(current: &Account, new: &Account) -> Result<(), ScimError> {
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
        if current.get(field).is_some() && new.get(field) != current.get(field) {
            return Err(ScimError::new(
                StatusCode::BAD_REQUEST,
                Some("mutability"),
                format!("{name} is immutable: {why}"),
            ));
        }
    }
    Ok(())
}
