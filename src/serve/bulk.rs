//! `/Bulk` (RFC 7644 §3.7): POST, PUT and PATCH of Users in one request, `bulkId:`
//! references to Users created earlier in it, and `failOnErrors`.
//!
//! In: a BulkRequest of at most [`MAX_OPERATIONS`] operations. Out: a BulkResponse with one
//! result per operation carried out, each as the same write alone would have answered.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::auth::Caller;
use super::scope::Scope;
use super::users::{Update, create, source, update};
use super::{ScimError, Shared, base, parse_json, scim};
use crate::scim::schema::MAX_OPERATIONS;
use crate::scim::{BULK_REQUEST, BULK_RESPONSE};

/// `/Bulk` (RFC 7644 §3.7): POST, PUT and PATCH of Users, `bulkId:` references, `failOnErrors`.
pub(super) async fn bulk(
    State(s): State<Shared>,
    Extension(scope): Extension<Scope>,
    Extension(caller): Extension<Caller>,
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
    let mut ids: HashMap<String, String> = Default::default();
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
        let outcome = bulk_one(&s, &scope, &caller, &method, op, &ids, &base).await;
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
    s: &Shared,
    scope: &Scope,
    caller: &Caller,
    method: &str,
    op: &Value,
    ids: &HashMap<String, String>,
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
    let users = if id.is_empty() {
        "Users".to_owned()
    } else {
        format!("Users/{id}")
    };
    let source = source(&format!("Bulk {method}"), &users, caller);
    match (Method::from_bytes(method.as_bytes()).ok(), id.is_empty()) {
        (Some(Method::POST), true) => Ok((
            StatusCode::CREATED,
            create(s, scope, data, base, &source).await?,
        )),
        (Some(Method::PUT), false) => Ok((
            StatusCode::OK,
            update(s, scope, &id, Update::Replace(data), version, base, &source).await?,
        )),
        (Some(Method::PATCH), false) => Ok((
            StatusCode::OK,
            update(s, scope, &id, Update::Patch(data), version, base, &source).await?,
        )),
        _ => Err(ScimError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            None,
            format!("{method} {path} is not supported"),
        )),
    }
}
