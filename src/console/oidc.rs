//! OpenID Connect sign-in for the console: the authorization code flow with PKCE, against
//! the organisation's identity provider (Entra ID, or any OpenID provider).
//!
//! In: `[console.oidc]` (issuer, client, redirect URL, the claim that names the operator),
//! the browser's return with a code and state. Out: the operator's name, once the ID token's
//! signature (RS256, PS256 or ES256, from the provider's published keys), issuer, audience,
//! expiry and nonce all hold.
//!
//! Contracts:
//! - Each sign-in has its own state, nonce and PKCE verifier (256 random bits each), kept
//!   server-side for 10 minutes (at most [`MAX_PENDING`] at once) and used once.
//! - The provider's metadata and keys are fetched from `issuer/.well-known/openid-configuration`
//!   when first needed; keys are fetched again when a token names a key not known yet.
//! - The issuer must be HTTPS, except on a loopback address.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::auth::random_token;
use crate::config::secret::Secret;

/// Most sign-ins waiting for the provider at once; the oldest goes first.
const MAX_PENDING: usize = 1_000;
/// How long a sign-in may take at the provider.
const PENDING_FOR: Duration = Duration::from_secs(600);
/// Clock difference tolerated on `exp` and `iat`.
const SKEW: i64 = 120;

/// `[console.oidc]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The provider's issuer URL (Entra ID: `https://login.microsoftonline.com/TENANT/v2.0`).
    pub issuer: String,
    pub client_id: String,
    /// The client secret (`PUSH_CONNECTOR__CONSOLE__OIDC__CLIENT_SECRET`).
    pub client_secret: Option<Secret>,
    /// This console's callback as registered at the provider:
    /// `https://HOST:PORT/signin/oidc/callback`.
    pub redirect_url: String,
    /// The ID token's claim that holds the operator's name (default `email`); it must match a
    /// `[[console.operator]]` name, ignoring case.
    #[serde(default = "default_claim")]
    pub claim: String,
    /// The sign-in button's words.
    #[serde(default = "default_label")]
    pub label: String,
}

fn default_claim() -> String {
    "email".into()
}

fn default_label() -> String {
    "Sign in with your NHS account".into()
}

impl OidcConfig {
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        for (name, url) in [
            ("issuer", &self.issuer),
            ("redirect_url", &self.redirect_url),
        ] {
            if !secure_or_loopback(url) {
                p.push(format!(
                    "console.oidc.{name} must be an https:// URL (http:// only on a loopback address)"
                ));
            }
        }
        if !self.redirect_url.ends_with("/signin/oidc/callback") {
            p.push("console.oidc.redirect_url must end with /signin/oidc/callback".into());
        }
        if self.client_id.trim().is_empty() {
            p.push("console.oidc.client_id is empty".into());
        }
        p
    }
}

fn secure_or_loopback(url: &str) -> bool {
    url.starts_with("https://")
        || [
            "http://127.",
            "http://localhost:",
            "http://localhost/",
            "http://[::1]",
        ]
        .iter()
        .any(|p| url.starts_with(p))
}

/// What the provider publishes.
#[derive(Debug, Clone, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    #[serde(default)]
    userinfo_endpoint: Option<String>,
}

/// A sign-in waiting for the provider's answer.
#[derive(Debug, Clone)]
struct Pending {
    nonce: String,
    verifier: String,
    since: Instant,
}

/// The OpenID Connect client.
pub struct Oidc {
    config: OidcConfig,
    http: reqwest::Client,
    discovery: tokio::sync::Mutex<Option<Discovery>>,
    keys: tokio::sync::Mutex<Vec<Value>>,
    pending: Mutex<HashMap<String, Pending>>,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(text: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|e| format!("not base64url: {e}"))
}

impl Oidc {
    pub fn new(config: OidcConfig) -> Result<Oidc, String> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Oidc {
            config,
            http,
            discovery: tokio::sync::Mutex::new(None),
            keys: tokio::sync::Mutex::new(Vec::new()),
            pending: Mutex::new(HashMap::new()),
        })
    }

    pub fn label(&self) -> &str {
        &self.config.label
    }

    async fn discovery(&self) -> Result<Discovery, String> {
        let mut cached = self.discovery.lock().await;
        if let Some(d) = cached.as_ref() {
            return Ok(d.clone());
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.config.issuer.trim_end_matches('/')
        );
        let d: Discovery = self
            .http
            .get(&url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| format!("the identity provider's metadata ({url}): {e}"))?
            .json()
            .await
            .map_err(|e| format!("the identity provider's metadata ({url}): {e}"))?;
        if d.issuer.trim_end_matches('/') != self.config.issuer.trim_end_matches('/') {
            return Err(format!(
                "the identity provider says its issuer is {}, not {}",
                d.issuer, self.config.issuer
            ));
        }
        *cached = Some(d.clone());
        Ok(d)
    }

    /// Starts a sign-in: the state (for the browser's cookie) and where to send the browser.
    pub async fn start(&self) -> Result<(String, String), String> {
        let d = self.discovery().await?;
        let (state, nonce, verifier) = (random_token(), random_token(), random_token());
        let challenge = b64(&Sha256::digest(verifier.as_bytes()));
        if let Ok(mut pending) = self.pending.lock() {
            let now = Instant::now();
            pending.retain(|_, p| now.duration_since(p.since) < PENDING_FOR);
            if pending.len() >= MAX_PENDING
                && let Some(oldest) = pending
                    .iter()
                    .min_by_key(|(_, p)| p.since)
                    .map(|(s, _)| s.clone())
            {
                pending.remove(&oldest);
            }
            pending.insert(
                state.clone(),
                Pending {
                    nonce: nonce.clone(),
                    verifier,
                    since: now,
                },
            );
        }
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.config.client_id)
            .append_pair("redirect_uri", &self.config.redirect_url)
            .append_pair("scope", &format!("openid {}", self.config.claim))
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .finish();
        let sep = if d.authorization_endpoint.contains('?') {
            '&'
        } else {
            '?'
        };
        Ok((state, format!("{}{sep}{query}", d.authorization_endpoint)))
    }

    /// Finishes a sign-in the browser came back from: the operator's name the ID token
    /// gives, once everything about it holds. `cookie_state` is the state the browser's
    /// cookie carries (it must be the one the provider sent back).
    pub async fn finish(
        &self,
        cookie_state: &str,
        state: &str,
        code: &str,
    ) -> Result<String, String> {
        if !super::auth::same_token(cookie_state, state) {
            return Err(
                "the sign-in came back to another browser than the one that started it".into(),
            );
        }
        let pending = self
            .pending
            .lock()
            .ok()
            .and_then(|mut p| p.remove(state))
            .filter(|p| p.since.elapsed() < PENDING_FOR)
            .ok_or("the sign-in is unknown or took longer than 10 minutes: start again")?;
        let d = self.discovery().await?;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.config.redirect_url.as_str()),
            ("code_verifier", pending.verifier.as_str()),
        ];
        let secret = self.config.client_secret.as_ref().map(|s| {
            use secrecy::ExposeSecret as _;
            s.0.expose_secret().to_owned()
        });
        let mut request = self.http.post(&d.token_endpoint);
        match &secret {
            Some(s) => request = request.basic_auth(&self.config.client_id, Some(s)),
            None => form.push(("client_id", self.config.client_id.as_str())),
        }
        let answer = request
            .form(&form)
            .send()
            .await
            .map_err(|e| format!("the identity provider's token endpoint: {e}"))?;
        let status = answer.status();
        let body: Value = answer.json().await.map_err(|e| {
            format!("the identity provider's token endpoint answered {status}: {e}")
        })?;
        if !status.is_success() {
            return Err(format!(
                "the identity provider refused the code: {}",
                body["error_description"]
                    .as_str()
                    .or(body["error"].as_str())
                    .unwrap_or("")
            ));
        }
        let token = body["id_token"]
            .as_str()
            .ok_or("the identity provider sent no ID token")?;
        let claims = self.verified(token, &d).await?;
        check_claims(
            &claims,
            &d.issuer,
            &self.config.client_id,
            &pending.nonce,
            chrono::Utc::now().timestamp(),
        )?;
        if let Some(v) = claims[self.config.claim.as_str()].as_str() {
            return Ok(v.to_owned());
        }
        // Providers may keep the claim for the UserInfo endpoint (OpenID Connect Core §5.4).
        let (Some(url), Some(access)) = (&d.userinfo_endpoint, body["access_token"].as_str())
        else {
            return Err(format!("the ID token has no {} claim", self.config.claim));
        };
        let info: Value = self
            .http
            .get(url)
            .bearer_auth(access)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| format!("the identity provider's UserInfo endpoint: {e}"))?
            .json()
            .await
            .map_err(|e| format!("the identity provider's UserInfo endpoint: {e}"))?;
        if info["sub"] != claims["sub"] {
            return Err(
                "the UserInfo endpoint answered for another subject than the ID token's".into(),
            );
        }
        info[self.config.claim.as_str()]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| {
                format!(
                    "neither the ID token nor the UserInfo endpoint gives a {} claim",
                    self.config.claim
                )
            })
    }

    /// The token's claims, once its signature checks out against the provider's keys.
    async fn verified(&self, token: &str, d: &Discovery) -> Result<Value, String> {
        let kid = header(token)?["kid"].as_str().map(str::to_owned);
        let mut keys = self.keys.lock().await;
        let known = |keys: &[Value]| {
            kid.is_none() || keys.iter().any(|k| k["kid"].as_str() == kid.as_deref())
        };
        if keys.is_empty() || !known(&keys) {
            let jwks: Value = self
                .http
                .get(&d.jwks_uri)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(|e| format!("the identity provider's keys: {e}"))?
                .json()
                .await
                .map_err(|e| format!("the identity provider's keys: {e}"))?;
            *keys = jwks["keys"].as_array().cloned().unwrap_or_default();
        }
        verify_jwt(token, &keys)
    }
}

fn header(token: &str) -> Result<Value, String> {
    let head = token.split('.').next().unwrap_or("");
    serde_json::from_slice(&unb64(head)?).map_err(|e| format!("the ID token's header: {e}"))
}

/// The claims of a JWT signed by one of `keys` (a JWKS's `keys`), with RS256, PS256 or ES256.
pub fn verify_jwt(token: &str, keys: &[Value]) -> Result<Value, String> {
    use ring::signature;
    let mut parts = token.split('.');
    let (Some(head), Some(body), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("the ID token is not a signed JWT".into());
    };
    let header = header(token)?;
    let alg = header["alg"].as_str().unwrap_or("");
    let kid = header["kid"].as_str();
    let signed = format!("{head}.{body}");
    let sig = unb64(sig)?;
    let candidates = keys
        .iter()
        .filter(|k| kid.is_none() || k["kid"].as_str() == kid);
    let mut ok = false;
    for k in candidates {
        let field = |name: &str| k[name].as_str().map(unb64).transpose();
        ok = match (alg, k["kty"].as_str()) {
            ("RS256" | "PS256", Some("RSA")) => {
                let (Some(n), Some(e)) = (field("n")?, field("e")?) else {
                    continue;
                };
                let params: &signature::RsaParameters = if alg == "RS256" {
                    &signature::RSA_PKCS1_2048_8192_SHA256
                } else {
                    &signature::RSA_PSS_2048_8192_SHA256
                };
                signature::RsaPublicKeyComponents { n: &n, e: &e }
                    .verify(params, signed.as_bytes(), &sig)
                    .is_ok()
            }
            ("ES256", Some("EC")) if k["crv"].as_str() == Some("P-256") => {
                let (Some(x), Some(y)) = (field("x")?, field("y")?) else {
                    continue;
                };
                let mut point = vec![0x04];
                point.extend(x);
                point.extend(y);
                signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(signed.as_bytes(), &sig)
                    .is_ok()
            }
            _ => false,
        };
        if ok {
            break;
        }
    }
    if !ok {
        return Err(format!(
            "the ID token's signature ({alg}) does not check out against the identity provider's keys"
        ));
    }
    serde_json::from_slice(&unb64(body)?).map_err(|e| format!("the ID token's claims: {e}"))
}

/// Checks an ID token's issuer, audience, times and nonce (`now` in Unix seconds).
pub fn check_claims(
    claims: &Value,
    issuer: &str,
    client_id: &str,
    nonce: &str,
    now: i64,
) -> Result<(), String> {
    if claims["iss"].as_str() != Some(issuer) {
        return Err(format!(
            "the ID token is from {:?}, not {issuer}",
            claims["iss"]
        ));
    }
    let aud_ok = match &claims["aud"] {
        Value::String(a) => a == client_id,
        Value::Array(all) => all.iter().any(|a| a.as_str() == Some(client_id)),
        _ => false,
    };
    if !aud_ok {
        return Err("the ID token is not for this console (its audience)".into());
    }
    let exp = claims["exp"].as_i64().ok_or("the ID token has no expiry")?;
    if exp + SKEW < now {
        return Err("the ID token has expired".into());
    }
    if claims["iat"].as_i64().is_some_and(|iat| iat > now + SKEW) {
        return Err("the ID token is issued in the future".into());
    }
    match claims["nonce"].as_str() {
        Some(n) if super::auth::same_token(n, nonce) => Ok(()),
        _ => Err("the ID token's nonce is not this sign-in's".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
    use serde_json::json;

    /// An ES256 key, its JWK, and a signer.
    fn key(kid: &str) -> (EcdsaKeyPair, Value) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let public = pair.public_key().as_ref();
        let jwk = json!({"kty": "EC", "crv": "P-256", "kid": kid,
                         "x": b64(&public[1..33]), "y": b64(&public[33..65])});
        (pair, jwk)
    }

    fn sign(pair: &EcdsaKeyPair, kid: &str, claims: &Value) -> String {
        let head = b64(json!({"alg": "ES256", "kid": kid}).to_string().as_bytes());
        let body = b64(claims.to_string().as_bytes());
        let sig = pair
            .sign(&SystemRandom::new(), format!("{head}.{body}").as_bytes())
            .unwrap();
        format!("{head}.{body}.{}", b64(sig.as_ref()))
    }

    fn claims() -> Value {
        json!({"iss": "https://idp.test", "aud": "console", "exp": 2_000, "iat": 1_000,
               "nonce": "n0nce", "email": "ada@nhs.net"})
    }

    #[test]
    fn a_token_signed_by_a_published_key_gives_its_claims_and_any_change_is_caught() {
        let (pair, jwk) = key("k1");
        let (_, other) = key("k2");
        let token = sign(&pair, "k1", &claims());
        let got = verify_jwt(&token, &[other.clone(), jwk.clone()]).unwrap();
        assert_eq!(got["email"], "ada@nhs.net");
        // Another key of the same kid, a changed body, a changed alg: refused.
        let mut wrong = other.clone();
        wrong["kid"] = json!("k1");
        assert!(verify_jwt(&token, &[wrong]).is_err());
        let parts: Vec<&str> = token.split('.').collect();
        let forged = b64(json!({"email": "mallory@nhs.net"}).to_string().as_bytes());
        assert!(
            verify_jwt(
                &format!("{}.{forged}.{}", parts[0], parts[2]),
                std::slice::from_ref(&jwk)
            )
            .is_err()
        );
        let none = b64(json!({"alg": "none", "kid": "k1"}).to_string().as_bytes());
        assert!(verify_jwt(&format!("{none}.{}.", parts[1]), std::slice::from_ref(&jwk)).is_err());
        let hs = b64(json!({"alg": "HS256", "kid": "k1"}).to_string().as_bytes());
        assert!(verify_jwt(&format!("{hs}.{}.{}", parts[1], parts[2]), &[jwk]).is_err());
        assert!(verify_jwt("a.b", &[]).is_err());
    }

    #[test]
    fn issuer_audience_expiry_and_nonce_are_checked() {
        let c = claims();
        assert!(check_claims(&c, "https://idp.test", "console", "n0nce", 1_500).is_ok());
        assert!(check_claims(&c, "https://other.test", "console", "n0nce", 1_500).is_err());
        assert!(check_claims(&c, "https://idp.test", "someone-else", "n0nce", 1_500).is_err());
        assert!(check_claims(&c, "https://idp.test", "console", "another", 1_500).is_err());
        assert!(
            check_claims(&c, "https://idp.test", "console", "n0nce", 2_000 + SKEW + 1).is_err()
        );
        assert!(
            check_claims(&c, "https://idp.test", "console", "n0nce", 1_000 - SKEW - 1).is_err()
        );
        let mut several = c.clone();
        several["aud"] = json!(["api", "console"]);
        assert!(check_claims(&several, "https://idp.test", "console", "n0nce", 1_500).is_ok());
        let mut no_nonce = c;
        no_nonce.as_object_mut().unwrap().remove("nonce");
        assert!(check_claims(&no_nonce, "https://idp.test", "console", "n0nce", 1_500).is_err());
    }

    #[test]
    fn the_issuer_must_be_https_unless_on_loopback() {
        let config = |issuer: &str| OidcConfig {
            issuer: issuer.into(),
            client_id: "c".into(),
            client_secret: None,
            redirect_url: "https://console.test/signin/oidc/callback".into(),
            claim: default_claim(),
            label: default_label(),
        };
        assert!(
            config("https://login.microsoftonline.com/t/v2.0")
                .problems()
                .is_empty()
        );
        assert!(config("http://127.0.0.1:9000").problems().is_empty());
        assert_eq!(config("http://idp.example.org").problems().len(), 1);
    }
}
