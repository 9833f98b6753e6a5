//! `push-connector serve`: a SCIM 2.0 service provider (RFC 7644) over the embedded directory.
//!
//! In: a [`LocalDirectory`], a fixed bearer token and/or an OAuth2 token issuer, and the code
//! lists. Out: an axum [`Router`] with `/v2/Users` (POST, GET with filter, paging and
//! sorting, GET/PUT/PATCH by id), `/v2/Bulk`, `/v2/ServiceProviderConfig`, `/v2/Schemas`,
//! `/v2/ResourceTypes`, and `/oauth/token` outside `/v2` (see [`oauth`]). Every answer is
//! `application/scim+json`; errors are RFC 7644 §3.12 bodies. The wire format (resources,
//! filters, PATCH, discovery documents) is [`crate::scim`]'s; this module is the service.
//!
//! Rooms: this file (state, router, body limits, panics), [`auth`] (bearer and OAuth2
//! tokens), [`discovery`] (ServiceProviderConfig, Schemas, ResourceTypes), [`query`] (list,
//! search, sort, projection, bounded scans), [`users`] (one User: GET, POST, PUT, PATCH,
//! DELETE), [`bulk`], [`writes`] (operations carried out together, as few runs as their
//! order allows), [`rules`] (every write as a row of a submission: validated, reconciled,
//! planned and journalled like a file row), and the transport: [`listen`], [`tls`],
//! [`oauth`], [`throttle`], [`scope`].
//!
//! Contracts: writes are serialised, so an `If-Match` check and the write it guards are one
//! step (a stale version → 412); every write goes through the rules a file row goes through
//! and is a journalled run (see [`rules`]). Every credential has a [`Scope`]: a User of another
//! organisation is answered 404 (its existence is not revealed), lists hold only the scope's
//! Users, and creating a User for another organisation is refused 403. Filters are bounded
//! ([`filter::Limits`]); a filter no index answers examines at most `scan` accounts (else 400
//! `tooMany`). Bodies are read within a size and a time limit. A handler that panics is
//! answered 500; the process and the other connections carry on. DELETE answers 405: the
//! directory is kept by connectors, and a connector never deletes an account (leavers are
//! handled in the portal). Organisation, organisation unit and status are not changed over
//! SCIM (`immutable` / `readOnly`).

mod auth;
mod bulk;
pub mod config;
mod discovery;
pub mod listen;
pub mod oauth;
mod query;
pub mod rules;
pub mod scope;
pub mod throttle;
pub mod tls;
mod users;
mod writes;

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Extension, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::{FutureExt as _, StreamExt as _};
use serde_json::Value;

use crate::directory::local::LocalDirectory;
use crate::scim::filter;
use crate::scim::schema::CodeLists;
use crate::scim::{InvalidUser, error_body};
use listen::Peer;
use scope::Scope;

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
    pub oauth: Option<oauth::Issuer>,
    pub codes: CodeLists,
    /// Served over TLS: locations are `https://` URLs.
    pub https: bool,
    /// What writes are validated, planned and journalled with.
    pub pipeline: rules::Pipeline,
    writes: tokio::sync::Mutex<()>,
    /// Writes of single requests waiting for the next commit ([`writes::single`]).
    queue: writes::Queue,
    /// The process's metrics recorder: `GET /metrics` renders it.
    pub metrics: Option<crate::console::metrics::Metrics>,
    /// The bearer token `GET /metrics` needs, when one is configured.
    pub metrics_token: Option<String>,
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
    /// The state of a service whose fixed `token` (if any) acts for `token_scope`, whose
    /// writes go through `pipeline`.
    pub fn new(
        directory: LocalDirectory,
        token: Option<String>,
        token_scope: Scope,
        codes: CodeLists,
        pipeline: rules::Pipeline,
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
            pipeline,
            writes: tokio::sync::Mutex::new(()),
            queue: writes::Queue::default(),
            metrics: None,
            metrics_token: None,
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
#[derive(Debug, Clone)]
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
        .route(
            "/ServiceProviderConfig",
            get(discovery::service_provider_config),
        )
        .route("/Schemas", get(discovery::schemas))
        .route("/Schemas/{id}", get(discovery::schema_by_id))
        .route("/ResourceTypes", get(discovery::resource_types))
        .route("/ResourceTypes/{id}", get(discovery::resource_type_by_id))
        .route("/Users", get(query::list_users).post(users::create_user))
        .route("/Users/.search", post(query::search_users))
        .route(
            "/Users/{id}",
            get(users::get_user)
                .put(users::put_user)
                .patch(users::patch_user)
                .delete(users::delete_user),
        )
        .route("/Bulk", post(bulk::bulk))
        .route("/.search", post(query::search_users))
        .fallback(not_found);
    Router::new()
        .nest(
            "/v2",
            v2.layer(middleware::from_fn_with_state(
                state.clone(),
                auth::authorise,
            )),
        )
        .route("/oauth/token", post(oauth_token))
        .route("/metrics", get(metrics_page))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(state.limits.body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), bounded_body))
        .layer(middleware::from_fn(catch_panic))
        .layer(middleware::from_fn(record_request))
        .with_state(state)
}

/// Counts each request by method, endpoint and status, and times it by method and
/// endpoint (no-ops when no recorder is installed).
async fn record_request(request: Request, next: Next) -> Response {
    let method = request.method().as_str().to_owned();
    let endpoint = endpoint_of(request.uri().path());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(
        "push_connector_scim_requests_total",
        "method" => method.clone(), "endpoint" => endpoint, "status" => status
    )
    .increment(1);
    metrics::histogram!(
        "push_connector_scim_request_duration_seconds",
        "method" => method, "endpoint" => endpoint
    )
    .record(started.elapsed().as_secs_f64());
    response
}

/// The endpoint a path names, as a metrics label (never an ID).
fn endpoint_of(path: &str) -> &'static str {
    if path == "/oauth/token" {
        return "oauth";
    }
    match path.trim_start_matches("/v2/").split('/').next() {
        Some("Users") => "Users",
        Some("Bulk") => "Bulk",
        Some(".search") => ".search",
        Some("ServiceProviderConfig") => "ServiceProviderConfig",
        Some("Schemas") => "Schemas",
        Some("ResourceTypes") => "ResourceTypes",
        _ => "other",
    }
}

/// `GET /metrics`: the Prometheus text of this process (404 when no recorder is installed;
/// 401 without the configured bearer token).
async fn metrics_page(State(s): State<Shared>, headers: HeaderMap) -> Response {
    if let Some(token) = &s.metrics_token {
        let sent = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !crate::console::auth::same_token(sent, token) {
            return ScimError::new(StatusCode::UNAUTHORIZED, None, "a bearer token is needed")
                .into_response();
        }
    }
    match &s.metrics {
        Some(m) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            m.render(),
        )
            .into_response(),
        None => not_found().await.into_response(),
    }
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

/// `POST /oauth/token` (see [`oauth`]); 404 when no clients are configured.
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

/// Serves until `shutdown` resolves, over plain TCP or TLS, within the connection limits
/// (see [`listen`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: ServerState,
    limits: listen::Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    listen::serve(listener, tls, router(Arc::new(state)), limits, shutdown).await
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
