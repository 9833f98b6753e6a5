//! HTTP transport for the SCIM backend: one request, its retries of transient failures with
//! exponential backoff (honouring `Retry-After`), and the classification of what went wrong.
//! The client itself (timeouts, proxy, TLS roots, pool size) is built in [`ScimDirectory::open`].

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::Failure;
use super::ScimDirectory;
use super::oauth::Auth;

/// Longest wait honoured from a `Retry-After`.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

impl ScimDirectory {
    /// One request, no retries. Returns status, body (Null when empty) and ETag.
    pub(super) async fn once(
        &self,
        method: &Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        if_match: Option<&str>,
        refresh_token: bool,
    ) -> Result<(StatusCode, Value, Option<String>), (Failure, Option<Duration>)> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method.clone(), &url).header(
            reqwest::header::ACCEPT,
            "application/scim+json, application/json",
        );
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(token) = self.token(refresh_token).await.map_err(|f| (f, None))? {
            request = request.bearer_auth(token);
        }
        if let Some(tag) = if_match {
            request = request.header(reqwest::header::IF_MATCH, tag);
        }
        if let Some(b) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/scim+json")
                .body(b.to_string());
        }
        let response = request.send().await.map_err(|e| {
            let what = match (&self.proxy, e.is_timeout()) {
                (None, true) => "timed out".to_owned(),
                (None, false) => "failed".to_owned(),
                (Some(p), true) => format!("timed out (through the proxy {p})"),
                (Some(p), false) => format!("failed (through the proxy {p})"),
            };
            let message = format!("{method} {path} {what}: {}", causes(&e));
            // A certificate the client does not trust will not be trusted on a retry.
            let tls = is_tls(&e);
            let failure = if tls {
                Failure::Systemic(format!("TLS with the portal failed: {message}"))
            } else {
                Failure::Transient(message)
            };
            (failure, None)
        })?;
        let status = response.status();
        let etag = response
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let bytes = response.bytes().await.map_err(|e| {
            (
                Failure::Transient(format!("{method} {path}: reading the answer: {e}")),
                None,
            )
        })?;
        let value: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        let detail = || {
            value["detail"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).chars().take(300).collect())
        };
        if status.is_success() || status == StatusCode::NOT_MODIFIED {
            return Ok((status, value, etag));
        }
        let failure = match status.as_u16() {
            401 | 403 => Failure::Systemic(format!(
                "the portal refused the credentials ({status}) for {method} {path}: {}",
                detail()
            )),
            408 | 429 | 500 | 502 | 503 | 504 => {
                Failure::Transient(format!("{method} {path}: {status}: {}", detail()))
            }
            _ => Failure::Row(status, detail()),
        };
        Err((failure, retry_after))
    }

    /// A request with retries of transient failures (backoff, `Retry-After`); a 401 gets one
    /// fresh OAuth2 token. Not for creates: see [`ScimDirectory::create`].
    pub(super) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<(StatusCode, Value, Option<String>), Failure> {
        self.call_query(method, path, &[], body, if_match).await
    }

    pub(super) async fn call_query(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<(StatusCode, Value, Option<String>), Failure> {
        let mut attempt = 0;
        let mut refreshed = false;
        loop {
            attempt += 1;
            match self.once(&method, path, query, body, if_match, false).await {
                Ok(r) => return Ok(r),
                Err((Failure::Systemic(m), _))
                    if !refreshed && matches!(self.auth, Auth::ClientCredentials { .. }) =>
                {
                    refreshed = true;
                    self.token(true).await?;
                    tracing::debug!(%m, "refreshing the OAuth2 token");
                }
                Err((Failure::Transient(m), wait)) if attempt < self.retries => {
                    self.pause(attempt, wait, &m).await;
                }
                Err((f, _)) => return Err(f),
            }
        }
    }

    pub(super) async fn pause(&self, attempt: u32, retry_after: Option<Duration>, why: &str) {
        let wait = retry_after
            .map(|d| d.min(MAX_RETRY_AFTER))
            .unwrap_or_else(|| {
                let step = self.backoff * 2u32.saturating_pow(attempt.saturating_sub(1).min(6));
                let jitter =
                    Duration::from_millis(u64::from(uuid::Uuid::new_v4().as_bytes()[0]) % 50);
                step.min(Duration::from_secs(30)) + jitter
            });
        tracing::warn!(attempt, wait_ms = wait.as_millis() as u64, why, "retrying");
        tokio::time::sleep(wait).await;
    }
}

/// Whether a TLS error (an untrusted certificate, a failed handshake) is among an error's
/// causes, which may be I/O errors wrapping one another.
fn is_tls(e: &(dyn std::error::Error + 'static)) -> bool {
    if e.is::<rustls::Error>() {
        return true;
    }
    if let Some(inner) = e
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
        && is_tls(inner)
    {
        return true;
    }
    e.source().is_some_and(is_tls)
}

/// An error and its causes, `: `-separated (reqwest's own message names only the request).
fn causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// Percent-encodes an ID for a path segment.
pub(super) fn encode(id: &str) -> String {
    id.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `Retry-After`: seconds, or an HTTP date.
fn parse_retry_after(v: &str) -> Option<Duration> {
    if let Ok(s) = v.trim().parse::<u64>() {
        return Some(Duration::from_secs(s));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v.trim()).ok()?;
    let secs = (when.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_seconds();
    Some(Duration::from_secs(u64::try_from(secs).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
