//! `serve` as its own OAuth2 token endpoint: `POST /oauth/token` with the client credentials
//! grant (RFC 6749 §4.4), for clients that fetch short-lived bearer tokens instead of holding
//! a fixed one.
//!
//! In: the configured clients (ID and secret) and a token lifetime; a request whose body is
//! `application/x-www-form-urlencoded` with `grant_type=client_credentials`, the client
//! authenticated by HTTP Basic or by `client_id` / `client_secret` in the body (§2.3.1, one
//! way only). Out: `{"access_token","token_type":"Bearer","expires_in"}` with
//! `Cache-Control: no-store` (§5.1), or a §5.2 error (`invalid_request`, `invalid_client`,
//! `unsupported_grant_type`). Tokens live in memory: a restart revokes them all, and a client
//! then gets 401 and asks for a new one.
//!
//! Each client is bound to the organisations it may act for ([`Scope`]); its tokens carry that
//! scope. Failed attempts are counted per client ID and per peer address ([`Throttle`]):
//! beyond the limit the endpoint answers 429 with `Retry-After`, without checking the secret.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::json;

use super::scope::Scope;
use super::throttle::{Key, Throttle};

/// One configured client.
#[derive(Debug, Clone)]
pub struct Client {
    pub id: String,
    pub secret: String,
    /// The organisations its tokens may act for.
    pub scope: Scope,
}

/// Issues and checks tokens for the configured clients.
#[derive(Debug)]
pub struct Issuer {
    clients: Vec<Client>,
    lifetime: Duration,
    /// Live tokens: when each expires, what it may act for, and the client it was issued to.
    tokens: Mutex<HashMap<String, (Instant, Scope, String)>>,
    throttle: Throttle,
}

impl Issuer {
    /// An issuer whose tokens live `lifetime`, refusing a client ID or peer for a while after
    /// `throttle`'s limit of failures.
    pub fn new(clients: Vec<Client>, lifetime: Duration, throttle: Throttle) -> Issuer {
        Issuer {
            clients,
            lifetime,
            tokens: Mutex::new(HashMap::new()),
            throttle,
        }
    }

    /// The scope of `token`, when it was issued here and has not expired.
    pub fn accepts(&self, token: &str) -> Option<Scope> {
        self.holder(token).map(|(scope, _)| scope)
    }

    /// The scope of `token` and the client it was issued to, when it was issued here and
    /// has not expired.
    pub fn holder(&self, token: &str) -> Option<(Scope, String)> {
        let now = Instant::now();
        let tokens = self.tokens.lock().ok()?;
        let (until, scope, client) = tokens.get(token)?;
        (now < *until).then(|| (scope.clone(), client.clone()))
    }

    fn authenticates(&self, id: &str, secret: &str) -> Option<Scope> {
        // Every client is compared, so the time taken does not tell which IDs exist.
        self.clients.iter().fold(None, |found, c| {
            let matches = super::auth::constant_time_eq(c.id.as_bytes(), id.as_bytes())
                & super::auth::constant_time_eq(c.secret.as_bytes(), secret.as_bytes());
            if matches {
                Some(c.scope.clone())
            } else {
                found
            }
        })
    }

    fn issue(&self, scope: Scope, client: &str) -> Option<String> {
        let token = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let now = Instant::now();
        let mut tokens = self.tokens.lock().ok()?;
        tokens.retain(|_, (until, _, _)| *until > now);
        tokens.insert(
            token.clone(),
            (now + self.lifetime, scope, client.to_owned()),
        );
        Some(token)
    }

    /// Answers one token request from `peer` (none when the transport does not say).
    pub fn respond(&self, headers: &HeaderMap, body: &[u8], peer: Option<IpAddr>) -> Response {
        let now = Instant::now();
        let peer_key = peer.map(Key::Peer);
        if let Some(wait) = self.throttle.blocked(peer_key.as_slice(), now) {
            return too_many(wait);
        }
        let form_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';')
                    .next()
                    .is_some_and(|t| t.trim() == "application/x-www-form-urlencoded")
            });
        if !form_type {
            return error(
                "invalid_request",
                "the body must be application/x-www-form-urlencoded",
            );
        }
        let form: HashMap<String, String> = form_urlencoded::parse(body).into_owned().collect();
        match form.get("grant_type").map(String::as_str) {
            Some("client_credentials") => {}
            Some(_) => return error("unsupported_grant_type", "only client_credentials"),
            None => return error("invalid_request", "grant_type is missing"),
        }
        let basic = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Basic ")
                    .or_else(|| v.strip_prefix("basic "))
            });
        let in_body = form.get("client_id").zip(form.get("client_secret"));
        let (id, secret) = match (basic, in_body) {
            (Some(_), Some(_)) => {
                return error(
                    "invalid_request",
                    "the client authenticated in two ways: use one",
                );
            }
            (Some(b), None) => match basic_credentials(b) {
                Some(c) => c,
                None => return unauthorised("the Basic credentials are unreadable"),
            },
            (None, Some((i, s))) => (i.clone(), s.clone()),
            (None, None) => return unauthorised("client authentication is required"),
        };
        let mut keys: Vec<Key> = peer_key.into_iter().collect();
        keys.push(Key::client(&id));
        if let Some(wait) = self.throttle.blocked(&keys, now) {
            return too_many(wait);
        }
        let Some(scope) = self.authenticates(&id, &secret) else {
            tracing::warn!(client = %id, ?peer, "refused a token request: wrong client or secret");
            if let Some(wait) = self.throttle.failed(&keys, now) {
                tracing::warn!(
                    client = %id,
                    ?peer,
                    seconds = wait.as_secs(),
                    "throttling token requests"
                );
            }
            return unauthorised("unknown client or wrong secret");
        };
        self.throttle.succeeded(&Key::client(&id));
        let Some(token) = self.issue(scope, &id) else {
            return (StatusCode::INTERNAL_SERVER_ERROR, "token store unavailable").into_response();
        };
        tracing::info!(client = %id, "issued a token");
        let body = json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self.lifetime.as_secs(),
        });
        respond_json(StatusCode::OK, &body)
    }
}

/// `id:secret` of a Basic header, each form-urlencoded (RFC 6749 §2.3.1).
fn basic_credentials(encoded: &str) -> Option<(String, String)> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (id, secret) = text.split_once(':')?;
    let decode = |s: &str| -> String {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((decode(id), decode(secret)))
}

fn respond_json(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

fn error(code: &str, description: &str) -> Response {
    respond_json(
        StatusCode::BAD_REQUEST,
        &json!({"error": code, "error_description": description}),
    )
}

/// 429 with `Retry-After` in whole seconds (rounded up).
fn too_many(wait: Duration) -> Response {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut r = respond_json(
        StatusCode::TOO_MANY_REQUESTS,
        &json!({
            "error": "invalid_client",
            "error_description": format!(
                "too many failed attempts: try again in {seconds} seconds"
            ),
        }),
    );
    if let Ok(v) = HeaderValue::from_str(&seconds.to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

fn unauthorised(description: &str) -> Response {
    let mut r = respond_json(
        StatusCode::UNAUTHORIZED,
        &json!({"error": "invalid_client", "error_description": description}),
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"push-connector\""),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded() {
        let b = base64::engine::general_purpose::STANDARD.encode("conn%3A1:s%2Bcret");
        assert_eq!(
            basic_credentials(&b),
            Some(("conn:1".to_owned(), "s+cret".to_owned()))
        );
        assert_eq!(basic_credentials("not base64!"), None);
    }
}
