//! OAuth2 client credentials (RFC 6749 §4.4) for the SCIM backend: the token fetched from
//! the token endpoint, cached until a little before it expires, and fetched again on demand
//! (after a 401).

use std::time::{Duration, Instant};

use serde_json::Value;

use super::Failure;
use super::ScimDirectory;

pub(super) enum Auth {
    None,
    Bearer(String),
    ClientCredentials {
        token_url: String,
        client_id: String,
        client_secret: String,
        scope: Option<String>,
        cached: tokio::sync::Mutex<Option<(String, Instant)>>,
    },
}

impl ScimDirectory {
    pub(super) async fn token(&self, refresh: bool) -> Result<Option<String>, Failure> {
        match &self.auth {
            Auth::None => Ok(None),
            Auth::Bearer(t) => Ok(Some(t.clone())),
            Auth::ClientCredentials {
                token_url,
                client_id,
                client_secret,
                scope,
                cached,
            } => {
                let mut cached = cached.lock().await;
                if !refresh
                    && let Some((t, until)) = cached.as_ref()
                    && Instant::now() < *until
                {
                    return Ok(Some(t.clone()));
                }
                let mut form = vec![
                    ("grant_type", "client_credentials"),
                    ("client_id", client_id.as_str()),
                    ("client_secret", client_secret.as_str()),
                ];
                if let Some(s) = scope {
                    form.push(("scope", s.as_str()));
                }
                let response = self
                    .http
                    .post(token_url)
                    .form(&form)
                    .send()
                    .await
                    .map_err(|e| Failure::Transient(format!("OAuth2 token request: {e}")))?;
                let status = response.status();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                if !status.is_success() {
                    return Err(Failure::Systemic(format!(
                        "the OAuth2 token endpoint refused the client credentials ({status}): {}",
                        body["error_description"]
                            .as_str()
                            .or(body["error"].as_str())
                            .unwrap_or("")
                    )));
                }
                let token = body["access_token"].as_str().ok_or_else(|| {
                    Failure::Systemic("the OAuth2 token endpoint gave no access_token".into())
                })?;
                // Renewed a little before it expires: a tenth of its life, 30 s at most.
                let lifetime = body["expires_in"].as_u64().unwrap_or(300);
                let ttl = lifetime - (lifetime / 10).min(30);
                *cached = Some((token.to_owned(), Instant::now() + Duration::from_secs(ttl)));
                Ok(Some(token.to_owned()))
            }
        }
    }
}
