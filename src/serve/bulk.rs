//! `/Bulk` (RFC 7644 §3.7): POST, PUT and PATCH of Users in one request, `bulkId:`
//! references to Users created earlier in it, and `failOnErrors`.
//!
//! In: a BulkRequest of at most [`MAX_OPERATIONS`] operations. Out: a BulkResponse with one
//! result per operation carried out, each as the same write alone would have answered.
//! The operations are carried out together ([`writes`]): as one run, unless their order
//! asks for more (a `bulkId:` reference, two writes of one User, `failOnErrors`).

use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::auth::Caller;
use super::scope::Scope;
use super::users::source;
use super::writes::{self, Answer, How, Op, Target, Write};
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
    let ops: Vec<Op> = ops.iter().map(read).collect();
    let methods: Vec<(String, Option<String>)> = ops
        .iter()
        .map(|op| (method_of(op), op.bulk_id.clone()))
        .collect();
    let source = source("POST", "Bulk", &caller);
    let answers = writes::carry_out(&s, &scope, &base, &source, ops, fail_on).await;
    let results: Vec<Value> = answers
        .into_iter()
        .zip(methods)
        .map(|(answer, (method, bulk_id))| result(answer, method, bulk_id))
        .collect();
    Ok(scim(
        StatusCode::OK,
        &json!({"schemas": [BULK_RESPONSE], "Operations": results}),
        None,
    ))
}

/// The upper-cased method an operation was read with (its request's first word).
fn method_of(op: &Op) -> String {
    op.request
        .split_once(' ')
        .map_or(op.request.as_str(), |(m, _)| m)
        .to_owned()
}

/// The BulkResponse entry of an operation's answer.
fn result(answer: Answer, method: String, bulk_id: Option<String>) -> Value {
    let mut entry = json!({"method": method});
    if let Some(b) = bulk_id {
        entry["bulkId"] = json!(b);
    }
    match answer {
        Ok((status, user)) => {
            entry["location"] = user["meta"]["location"].clone();
            entry["version"] = user["meta"]["version"].clone();
            entry["status"] = json!(status.as_u16().to_string());
        }
        Err(e) => {
            entry["status"] = json!(e.status.as_u16().to_string());
            entry["response"] = e.body();
        }
    }
    entry
}

/// One Bulk operation (its `method`, `path`, `data`, `version` and `bulkId`) as a write;
/// its request reads `POST /v2/Users` or `PATCH /v2/Users/ID`, as the same write alone.
fn read(op: &Value) -> Op {
    let method = op["method"]
        .as_str()
        .unwrap_or_default()
        .to_ascii_uppercase();
    let path = op["path"].as_str().unwrap_or_default();
    let target = path.trim_start_matches('/');
    Op {
        write: write_of(&method, path, op),
        bulk_id: op["bulkId"].as_str().map(str::to_owned),
        request: format!("{method} /v2/{target}"),
    }
}

/// The write of an operation: 404 for a path outside `/Users`, 405 for a method the path
/// does not take.
fn write_of(method: &str, path: &str, op: &Value) -> Result<Write, ScimError> {
    let target = path.trim_start_matches('/');
    let target = target.strip_prefix("Users").ok_or_else(|| {
        ScimError::new(
            StatusCode::NOT_FOUND,
            Some("invalidPath"),
            format!("no endpoint {path}"),
        )
    })?;
    let id = target.trim_start_matches('/');
    let data = op["data"].clone();
    let target = match id.strip_prefix("bulkId:") {
        Some(b) => Target::BulkId(b.to_owned()),
        None => Target::Id(id.to_owned()),
    };
    let how = match (Method::from_bytes(method.as_bytes()).ok(), id.is_empty()) {
        (Some(Method::POST), true) => return Ok(Write::Create(data)),
        (Some(Method::PUT), false) => How::Replace,
        (Some(Method::PATCH), false) => How::Patch,
        _ => {
            return Err(ScimError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                None,
                format!("{method} {path} is not supported"),
            ));
        }
    };
    Ok(Write::Change {
        target,
        how,
        data,
        if_match: op["version"].as_str().map(str::to_owned),
    })
}
