//! Discovery (RFC 7644 §4): `/ServiceProviderConfig`, `/Schemas`, `/ResourceTypes`.
//!
//! In: the request's base URL and the code lists. Out: the documents of
//! [`crate::scim::schema`].

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{ScimError, Shared, base, scim};
use crate::scim::schema;

pub(super) async fn service_provider_config(
    State(s): State<Shared>,
    headers: HeaderMap,
) -> Response {
    scim(
        StatusCode::OK,
        &schema::service_provider_config(&base(&s, &headers), s.limits.body_bytes),
        None,
    )
}

pub(super) async fn schemas(State(s): State<Shared>, headers: HeaderMap) -> Response {
    scim(
        StatusCode::OK,
        &schema::list(schema::schemas(&base(&s, &headers), &s.codes)),
        None,
    )
}

pub(super) async fn schema_by_id(
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

pub(super) async fn resource_types(State(s): State<Shared>, headers: HeaderMap) -> Response {
    scim(
        StatusCode::OK,
        &schema::list(vec![schema::user_resource_type(&base(&s, &headers))]),
        None,
    )
}

pub(super) async fn resource_type_by_id(
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
