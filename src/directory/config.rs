//! `[directory]`: which backend runs are applied to, and how to reach it.

use std::path::PathBuf;

use serde::Deserialize;

use crate::config::secret::Secret;

/// Which directory backend runs are applied to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DirectoryBackend {
    /// The embedded directory: an SQLite file (the portal stand-in).
    Local,
    /// The portal's SCIM 2.0 API (RFC 7643/7644).
    Scim,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DirectoryConfig {
    /// The backend: `local` (embedded SQLite directory) or `scim` (the portal's SCIM API).
    pub backend: DirectoryBackend,
    /// The embedded directory's database file (`local`; also what `serve` publishes).
    pub path: PathBuf,
    /// `scim`: the base URL of the SCIM API, up to and including `/v2`.
    pub url: Option<String>,
    /// `scim`: a bearer token (set it with `PUSH_CONNECTOR__DIRECTORY__TOKEN` or `…_FILE`).
    pub token: Option<Secret>,
    /// `scim`: OAuth2 token endpoint, for client credentials instead of a fixed token.
    pub token_url: Option<String>,
    /// `scim`: OAuth2 client ID.
    pub client_id: Option<String>,
    /// `scim`: OAuth2 client secret (`PUSH_CONNECTOR__DIRECTORY__CLIENT_SECRET[_FILE]`).
    pub client_secret: Option<Secret>,
    /// `scim`: OAuth2 scope to ask for, if the portal wants one.
    pub scope: Option<String>,
    /// `scim`: seconds one HTTP request may take.
    pub timeout_seconds: u64,
    /// `scim`: most requests in flight at once.
    pub concurrency: usize,
    /// `scim`: PEM file of the CA that signed the portal's certificate; only it is trusted
    /// then (the platform's roots when unset).
    pub ca_file: Option<PathBuf>,
    /// `scim`: HTTP(S) proxy URL (`http://proxy:3128`); none when unset.
    pub proxy: Option<String>,
    /// `scim`: attempts of one request before its error counts (429, 5xx, timeouts).
    pub retries: u32,
    /// `scim`: send creates and updates through `/Bulk` when the portal offers it.
    pub bulk: bool,
}

impl Default for DirectoryConfig {
    fn default() -> Self {
        DirectoryConfig {
            backend: DirectoryBackend::Local,
            path: PathBuf::from("var/directory.sqlite"),
            url: None,
            token: None,
            token_url: None,
            client_id: None,
            client_secret: None,
            scope: None,
            timeout_seconds: 30,
            concurrency: 8,
            ca_file: None,
            proxy: None,
            retries: 6,
            bulk: true,
        }
    }
}
