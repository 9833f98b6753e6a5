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

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::json;

/// Issues and checks tokens for the configured clients.
#[derive(Debug)]
pub struct Issuer {
    /// `(client_id, secret)`.
    clients: Vec<(String, String)>,
    lifetime: Duration,
    /// Live tokens and when each expires.
    tokens: Mutex<HashMap<String, Instant>>,
}

impl Issuer {
    pub fn new(clients: Vec<(String, String)>, lifetime: Duration) -> Issuer {
        Issuer {
            clients,
            lifetime,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `token` was issued here and has not expired.
    pub fn accepts(&self, token: &str) -> bool {
        let now = Instant::now();
        self.tokens
            .lock()
            .map(|t| t.get(token).is_some_and(|until| now < *until))
            .unwrap_or(false)
    }

    fn authenticates(&self, id: &str, secret: &str) -> bool {
        // Every client is compared, so the time taken does not tell which IDs exist.
        self.clients.iter().fold(false, |found, (i, s)| {
            found
                | (super::server::constant_time_eq(i.as_bytes(), id.as_bytes())
                    & super::server::constant_time_eq(s.as_bytes(), secret.as_bytes()))
        })
    }

    fn issue(&self) -> Option<String> {
        let token = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let now = Instant::now();
        let mut tokens = self.tokens.lock().ok()?;
        tokens.retain(|_, until| *until > now);
        tokens.insert(token.clone(), now + self.lifetime);
        Some(token)
    }

    /// Answers one token request.
    pub fn respond(&self, headers: &HeaderMap, body: &[u8]) -> Response {
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
        if !self.authenticates(&id, &secret) {
            return unauthorised("unknown client or wrong secret");
        }
        let Some(token) = self.issue() else {
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
