//! Lists and searches of Users (RFC 7644 §3.4.2, §3.4.3): filter, paging, sorting and
//! projection, within the credential's scope.
//!
//! In: the query (or `.search` body) and the scope. Out: a ListResponse. A plain list pages
//! in the database; a filter an index answers (userName, e-mail, externalId, id) reads only
//! what it names; any other filter or a sort examines at most the scan limit of accounts
//! (else 400 `tooMany`), a bounded number at once.

use axum::body::Bytes;
use axum::extract::{Extension, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::scope::Scope;
use super::{ScimError, ServerState, Shared, base, parse_json, scim};
use crate::directory::{Account, Directory};
use crate::model::{Keys, PortalId};
use crate::scim::filter::{self, Filter};
use crate::scim::schema::MAX_RESULTS;
use crate::scim::{LIST_RESPONSE, NHS_USER, with_meta};

/// Query parameters of a list (RFC 7644 §3.4.2).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ListQuery {
    filter: Option<String>,
    start_index: Option<i64>,
    count: Option<i64>,
    attributes: Option<String>,
    excluded_attributes: Option<String>,
    sort_by: Option<String>,
    sort_order: Option<String>,
}

pub(super) async fn list_users(
    State(s): State<Shared>,
    Extension(scope): Extension<Scope>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Response, ScimError> {
    let body = list(&s, &scope, &base(&s, &headers), &q).await?;
    Ok(scim(StatusCode::OK, &body, None))
}

pub(super) async fn search_users(
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
        .map(|a| with_meta(served(&a), base))
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
                with_meta(served(a), base),
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
        let values = filter::values_at(u, by);
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
    if let Some(alternatives) = f.eq_alternatives().filter(|a| a.len() > 1)
        && let Some(found) = indexed(s, scope, f, &alternatives).await?
    {
        return Ok(found);
    }
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

/// The accounts an `or` chain of equality comparisons can match, in one indexed look-up
/// (IDs, addresses — userName and every e-mail — and (organisation, externalId)), when each
/// of its terms is on `userName`, `emails`, `emails.value`, `id` or `externalId`; `None`
/// when one is on another attribute. The filter itself is evaluated on what this finds.
async fn indexed(
    s: &ServerState,
    scope: &Scope,
    f: &Filter,
    alternatives: &[(&str, &str)],
) -> Result<Option<Vec<Account>>, ScimError> {
    let d = &s.directory;
    let mut keys = Keys::default();
    let mut external = Vec::new();
    for (path, value) in alternatives {
        let path = path.to_ascii_lowercase();
        match path.as_str() {
            "username" | "emails" | "emails.value" => keys.emails.push(value.to_lowercase()),
            "id" => keys.ids.push((*value).to_owned()),
            "externalid" => external.push(*value),
            _ => return Ok(None),
        }
    }
    let org_path = format!("{NHS_USER}:organisation");
    let orgs: Option<Vec<String>> = match (f.required_eq(&org_path), scope.codes()) {
        (Some(org), _) => Some(vec![org.trim().to_ascii_uppercase()]),
        (None, Some(codes)) => Some(codes.iter().cloned().collect()),
        (None, None) => None,
    };
    let mut found = Vec::new();
    match &orgs {
        Some(orgs) => {
            for org in orgs {
                keys.external
                    .extend(external.iter().map(|e| (org.clone(), e.to_lowercase())));
            }
        }
        None => {
            for e in &external {
                found.extend(d.by_external_key(e).await?);
            }
        }
    }
    found.extend(d.index_for(&keys).await?.into_accounts());
    found.sort_unstable_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
    found.dedup_by(|a, b| a.id == b.id);
    Ok(Some(found))
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
pub(super) fn project(mut user: Value, attributes: Option<&str>, excluded: Option<&str>) -> Value {
    let names = |s: &str| -> Vec<String> {
        s.split(',')
            .map(|a| a.trim().to_ascii_lowercase())
            .filter(|a| !a.is_empty())
            .collect()
    };
    let top = |a: &str| -> String {
        let core = format!("{}:", crate::scim::CORE_USER.to_ascii_lowercase());
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

/// The User of an account as this service shows it: [`crate::scim::user_json`], with the
/// organisation as `organisationUnit` when the account is in the organisation itself (no
/// unit), so a User written with its organisation as its unit reads back as it was written.
pub(super) fn served(account: &Account) -> Value {
    let mut user = crate::scim::user_json(account);
    if account.get(crate::model::Field::OrganisationUnit).is_none()
        && let Some(ext) = user.get_mut(NHS_USER).and_then(Value::as_object_mut)
        && let Some(org) = ext.get("organisation").cloned()
    {
        ext.insert("organisationUnit".into(), org);
    }
    user
}
