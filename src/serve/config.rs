//! `[serve]`: where the SCIM service listens, its credentials and the organisations each may
//! act for, and its request limits.

use std::path::PathBuf;

use serde::Deserialize;

use crate::config::secret::Secret;

/// `push-connector serve`: where it listens and the token its clients must send.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeConfig {
    /// Address and port to listen on.
    pub listen: String,
    /// The bearer token clients must send (`PUSH_CONNECTOR__SERVE__TOKEN` or `…_FILE`).
    pub token: Option<Secret>,
    /// PEM file of the server certificate (leaf first, then intermediates): serve HTTPS.
    /// Needs `tls_key`; plain HTTP when neither is set.
    pub tls_cert: Option<PathBuf>,
    /// PEM file of the certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub tls_key: Option<PathBuf>,
    /// OAuth2 clients that may get a bearer token from `POST /oauth/token` (client
    /// credentials grant, RFC 6749 §4.4); no token endpoint when empty.
    pub clients: Vec<ServeClient>,
    /// Lifetime of the tokens `/oauth/token` issues, in seconds.
    pub token_seconds: u64,
    /// ODS codes of the organisations the fixed `token` may read and change (`["*"]`: all of
    /// them, for the portal operator). Required with `token`: there is no unscoped default.
    pub token_organisations: Vec<String>,
    /// Longest `filter` accepted, in bytes (longer: 400 `invalidFilter`).
    pub filter_max_length: usize,
    /// Deepest nesting of a `filter`; each `(`, `[` and `not` is one level.
    pub filter_max_depth: usize,
    /// Most comparisons in one `filter`.
    pub filter_max_terms: usize,
    /// Most accounts one list or search may examine without an index (over it: 400
    /// `tooMany`, naming the filters that are answered from an index).
    pub scan_limit: usize,
    /// Most such unindexed examinations running at once (others wait their turn), so the
    /// memory they hold together stays within `parallel_scans` × `scan_limit` accounts.
    pub parallel_scans: usize,
    /// Seconds a client has to send a request's headers once the connection is open or the
    /// previous answer went out.
    pub header_timeout_seconds: u64,
    /// Seconds a kept-alive connection may stay idle (no request in flight) before it is
    /// closed.
    pub idle_timeout_seconds: u64,
    /// Seconds a client has to send a request's body.
    pub body_timeout_seconds: u64,
    /// Largest request body, in bytes (over it: 413).
    pub max_body_bytes: usize,
    /// Most connections open at once; over it the longest-idle connection is closed to
    /// make room, or the new one when every connection has a request in flight.
    pub max_connections: usize,
    /// Failed `/oauth/token` attempts allowed per client ID, and per peer address, within
    /// `token_failure_window_seconds`; beyond, 429 with `Retry-After`.
    pub token_failures: u32,
    /// The window over which `token_failures` are counted, in seconds; each further
    /// refusal doubles the wait, up to 16 windows.
    pub token_failure_window_seconds: u64,
}

/// One OAuth2 client of `serve`: its ID and its secret, given or read from the environment.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeClient {
    /// The `client_id`.
    pub id: String,
    /// The secret itself (prefer `secret_env`, which keeps it out of the file).
    pub secret: Option<Secret>,
    /// The environment variable holding the secret, read when `serve` starts.
    pub secret_env: Option<String>,
    /// ODS codes of the organisations this client may read and change (`["*"]`: all).
    /// Required: a client without it is a configuration error.
    #[serde(default)]
    pub organisations: Vec<String>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: "127.0.0.1:8080".to_owned(),
            token: None,
            tls_cert: None,
            tls_key: None,
            clients: Vec::new(),
            token_seconds: 300,
            token_organisations: Vec::new(),
            filter_max_length: 4096,
            filter_max_depth: 16,
            filter_max_terms: 64,
            scan_limit: 20_000,
            parallel_scans: 4,
            header_timeout_seconds: 10,
            idle_timeout_seconds: 60,
            body_timeout_seconds: 30,
            max_body_bytes: 1024 * 1024,
            max_connections: 512,
            token_failures: 5,
            token_failure_window_seconds: 60,
        }
    }
}

impl ServeConfig {
    /// What `serve` needs of its credentials: each names the organisations it may act for.
    /// Asked by `serve` and `check` only, so that a token in the environment does not stop
    /// the other verbs.
    pub fn scope_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for client in &self.clients {
            problems.extend(organisations_problem(
                &format!("serve.clients: client {}", client.id),
                &client.organisations,
            ));
        }
        if self.token.is_some() || !self.token_organisations.is_empty() {
            problems.extend(organisations_problem(
                "serve.token_organisations (the organisations the fixed token may act for)",
                &self.token_organisations,
            ));
        }
        problems
    }
}

/// What is wrong with a list of organisations a `serve` credential may act for, if anything.
fn organisations_problem(name: &str, codes: &[String]) -> Option<String> {
    if codes.is_empty() {
        return Some(format!(
            "{name}: organisations is required: list the ODS codes it may act for, e.g. \
             [\"RXX\"], or [\"*\"] for all organisations (the portal operator)"
        ));
    }
    let bad: Vec<&str> = codes
        .iter()
        .map(String::as_str)
        .filter(|c| *c != "*" && (c.is_empty() || !c.chars().all(|x| x.is_ascii_alphanumeric())))
        .collect();
    if !bad.is_empty() {
        return Some(format!("{name}: {bad:?} are not ODS codes (or \"*\")"));
    }
    if codes.len() > 1 && codes.iter().any(|c| c == "*") {
        return Some(format!(
            "{name}: \"*\" means all organisations; list nothing else with it"
        ));
    }
    None
}
