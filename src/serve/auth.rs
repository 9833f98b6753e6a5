//! Authorisation of every `/v2` request: a bearer token, the fixed one (compared in
//! constant time) or one issued by [`super::oauth`], gives the request its [`Scope`].
//!
//! In: the request's `Authorization` header. Out: the request with its [`Scope`] as an
//! extension, or 401 with `WWW-Authenticate`.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ScimError, Shared};

/// Who a request's credential is, as the journal names the source of a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Caller(pub String);

/// Checks the bearer token and hands its [`Scope`] and [`Caller`] to the handlers as
/// extensions.
pub(super) async fn authorise(
    State(state): State<Shared>,
    mut request: Request,
    next: Next,
) -> Response {
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
            return Some((state.token_scope.clone(), "the fixed token".to_owned()));
        }
        state
            .oauth
            .as_ref()
            .and_then(|o| o.holder(t))
            .map(|(scope, client)| (scope, format!("OAuth2 client {client}")))
    });
    let Some((scope, caller)) = scope else {
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
    request.extensions_mut().insert(Caller(caller));
    next.run(request).await
}

pub(super) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
