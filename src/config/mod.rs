//! The deployment's configuration: one typed tree.
//!
//! In: built-in defaults, then an optional TOML file, then `PUSH_CONNECTOR__SECTION__KEY`
//! environment variables (a `_FILE` suffix reads the value from a file, for secrets). Out: a
//! [`Config`] whose every field is documented here and in `samples/connector.toml`, or every
//! problem found at once. With no file at all the defaults run the embedded deployment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

mod collect;
pub mod secret;

pub use crate::directory::config::{DirectoryBackend, DirectoryConfig};
pub use crate::guard::{GuardConfig, GuardOverride};
pub use secret::Secret;

/// Environment variables that override the file start with this, then `SECTION__KEY`
/// (array entries by index: `PUSH_CONNECTOR__ORGANISATIONS__0__CONNECTOR_KEY`).
pub const ENV_PREFIX: &str = "PUSH_CONNECTOR__";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The service itself: domain, where state lives.
    pub service: ServiceConfig,
    /// Code lists that multi-valued and coded fields are checked against.
    pub validation: ValidationConfig,
    /// What one submission file may expand to: cells, columns, decompressed bytes.
    pub limits: crate::formats::Limits,
    /// Organisations that send staff lists, and who may send them.
    #[serde(rename = "organisation")]
    pub organisations: Vec<OrganisationConfig>,
    /// Where the directory (the portal, or its embedded stand-in) is.
    pub directory: DirectoryConfig,
    /// `push-connector serve`: the SCIM 2.0 service over the embedded directory.
    pub serve: ServeConfig,
    /// Mass-change thresholds over which a run is held for approval.
    pub guard: GuardConfig,
    /// Where submissions arrive: a local maildir (embedded default) or an IMAP mailbox.
    pub mailbox: crate::mail::config::MailboxConfig,
    /// Where replies go out: `.eml` files (embedded default) or an SMTP server.
    pub outbox: crate::mail::config::OutboxConfig,
    /// The e-mail connector's rules: its own address, sender checks, operators.
    pub mail: crate::mail::config::MailConfig,
    /// When the nightly run applies the day's submissions.
    pub schedule: crate::mail::config::ScheduleConfig,
    /// Directories and databases synced from (`sync NAME`, and on a schedule by `run`).
    #[serde(rename = "source")]
    pub sources: Vec<crate::sources::config::SourceConfig>,
}

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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    /// Mail domains of the service; a primary address outside them is a contact. The first is
    /// the domain of generated addresses.
    pub domains: Vec<String>,
    /// Whether a service domain covers its sub-domains: `name@xyz.nhs.net` is the service's
    /// under `nhs.net`, not a contact (default true, as NHSmail's addresses are).
    pub include_subdomains: bool,
    /// Folder for the state database, journal, password file and reports.
    pub state_dir: PathBuf,
    /// Largest submission file accepted, in bytes (NHSmail's limit is 35 MB).
    pub max_file_bytes: usize,
    /// Log lines as `text` (default) or `json` (one JSON object a line).
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object a line.
    Json,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            domains: vec!["nhs.net".to_owned()],
            include_subdomains: true,
            state_dir: PathBuf::from("var"),
            max_file_bytes: 35 * 1024 * 1024,
            log_format: LogFormat::Text,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ValidationConfig {
    /// File of accepted titles, one a line (`#` comments); a built-in list when unset.
    pub titles: Option<PathBuf>,
    /// File of clinical roles; any value is accepted when unset.
    pub clinical_roles: Option<PathBuf>,
    /// File of clinical specialities; any value is accepted when unset.
    pub clinical_specialities: Option<PathBuf>,
    /// File of work areas; any value is accepted when unset.
    pub work_areas: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrganisationConfig {
    /// The organisation's ODS code.
    pub code: String,
    /// Its name, for e-mails and logs.
    #[serde(default)]
    pub name: Option<String>,
    /// The connector name an old-format file must give on its `Connector,` line.
    #[serde(default)]
    pub connector: Option<String>,
    /// Addresses of the connector administrators allowed to send this organisation's files.
    #[serde(default)]
    pub administrators: Vec<String>,
    /// A key the subject of a submission must contain, as the legacy connector had.
    #[serde(default)]
    pub connector_key: Option<Secret>,
    /// Whether rows with no matching account create one (on by default for e-mail).
    #[serde(default = "yes")]
    pub create_accounts: bool,
    /// Whether a blank cell leaves the account's value as it is (default) or clears it.
    #[serde(default = "yes")]
    pub blank_means_keep: bool,
    /// Whether a changed first or last name gives the account a new primary address (the old
    /// one is kept as a secondary address). Off by default.
    #[serde(default)]
    pub name_change_new_address: bool,
    /// This organisation's changes to the `[guard]` thresholds.
    #[serde(default)]
    pub guard: GuardOverride,
}

fn yes() -> bool {
    true
}

/// Everything wrong with a configuration, found at once.
#[derive(Debug, thiserror::Error)]
#[error("the configuration {origin} cannot be used:\n  - {}", problems.join("\n  - "))]
pub struct ConfigError {
    pub origin: String,
    pub problems: Vec<String>,
}

/// A TOML syntax error as its position and message, without quoting the line: the line may
/// hold a secret.
fn parse_error(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {}", e.message().trim())
        }
        None => e.message().trim().to_owned(),
    }
}

impl Config {
    /// Loads defaults, then the file (when given), then environment overrides.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_with_secrets(path, false)
    }

    /// As [`Config::load`], with the environment passed in (tests pin it).
    pub fn load_with_env(
        path: Option<&Path>,
        env: &BTreeMap<String, String>,
    ) -> Result<Config, ConfigError> {
        Self::load_from(path, env, false)
    }

    /// As [`Config::load`], and with `secrets` a mailbox or outbox password that is not set
    /// is one more problem: for the verbs that use them (`run`, `check`).
    pub fn load_with_secrets(path: Option<&Path>, secrets: bool) -> Result<Config, ConfigError> {
        let env: BTreeMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();
        Self::load_from(path, &env, secrets)
    }

    /// Defaults, the file, the environment; every problem at once.
    pub fn load_from(
        path: Option<&Path>,
        env: &BTreeMap<String, String>,
        secrets: bool,
    ) -> Result<Config, ConfigError> {
        let origin = path.map_or("(defaults)".to_owned(), |p| p.display().to_string());
        let fail = |problems: Vec<String>| ConfigError {
            origin: origin.clone(),
            problems,
        };
        let text = match path {
            Some(p) => Some(
                std::fs::read_to_string(p)
                    .map_err(|e| fail(vec![format!("cannot read it: {e}")]))?,
            ),
            None => None,
        };
        let mut table = match &text {
            Some(text) => text
                .parse::<toml::Table>()
                .map_err(|e| fail(vec![parse_error(text, &e)]))?,
            None => toml::Table::new(),
        };
        let mut problems = Vec::new();
        for (key, value) in env {
            if let Err(p) = apply_override(&mut table, key, value) {
                problems.push(p);
            }
        }
        // Every unknown key and unusable value, then what serde cannot express.
        let collected = collect::deserialize(table, text.as_deref());
        problems.extend(collected.problems);
        let Some(config) = collected.config else {
            return Err(fail(problems));
        };
        problems.extend(config.problems());
        if secrets {
            problems.extend(crate::mail::config::missing_secrets(
                &config.mailbox,
                &config.outbox,
            ));
        }
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(fail(problems))
        }
    }

    /// What `serve` needs of its credentials: each names the organisations it may act for.
    /// Asked by `serve` and `check` only, so that a token in the environment does not stop
    /// the other verbs.
    pub fn serve_scope_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for client in &self.serve.clients {
            problems.extend(organisations_problem(
                &format!("serve.clients: client {}", client.id),
                &client.organisations,
            ));
        }
        if self.serve.token.is_some() || !self.serve.token_organisations.is_empty() {
            problems.extend(organisations_problem(
                "serve.token_organisations (the organisations the fixed token may act for)",
                &self.serve.token_organisations,
            ));
        }
        problems
    }

    /// Checks that serde cannot express; all problems at once.
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.service.domains.is_empty() {
            problems.push("service.domains must name at least one mail domain".to_owned());
        }
        let l = &self.limits;
        if l.max_cells == 0 || l.max_columns == 0 || l.max_decompressed_bytes == 0 {
            problems.push(
                "limits.max_cells, max_columns and max_decompressed_bytes must be above 0"
                    .to_owned(),
            );
        }
        let mut seen = std::collections::HashSet::new();
        for org in &self.organisations {
            if org.code.is_empty() || !org.code.chars().all(|c| c.is_ascii_alphanumeric()) {
                problems.push(format!(
                    "organisation code \"{}\" is not an ODS code (letters and digits)",
                    org.code
                ));
            }
            if !seen.insert(org.code.to_ascii_uppercase()) {
                problems.push(format!("organisation {} is configured twice", org.code));
            }
        }
        for (name, path) in [
            ("validation.titles", &self.validation.titles),
            ("validation.clinical_roles", &self.validation.clinical_roles),
            (
                "validation.clinical_specialities",
                &self.validation.clinical_specialities,
            ),
            ("validation.work_areas", &self.validation.work_areas),
        ] {
            if let Some(path) = path
                && !path.is_file()
            {
                problems.push(format!("{name}: no file at {}", path.display()));
            }
        }
        if self.directory.backend == DirectoryBackend::Scim {
            let d = &self.directory;
            if d.url.as_deref().is_none_or(str::is_empty) {
                problems.push("directory.url is needed with backend = \"scim\"".to_owned());
            }
            let oauth = d.token_url.is_some() || d.client_id.is_some() || d.client_secret.is_some();
            if oauth
                && (d.token_url.is_none() || d.client_id.is_none() || d.client_secret.is_none())
            {
                problems.push(
                    "directory: OAuth2 needs token_url, client_id and client_secret together"
                        .to_owned(),
                );
            }
            if d.concurrency == 0 || d.timeout_seconds == 0 {
                problems
                    .push("directory.concurrency and timeout_seconds must be above 0".to_owned());
            }
        }
        for client in &self.serve.clients {
            if client.id.trim().is_empty() {
                problems.push("serve.clients: a client has an empty id".to_owned());
            }
            if client.secret.is_some() == client.secret_env.is_some() {
                problems.push(format!(
                    "serve.clients: client {} needs one of secret and secret_env",
                    client.id
                ));
            }
        }
        let s = &self.serve;
        for (name, value) in [
            ("filter_max_length", s.filter_max_length as u64),
            ("filter_max_depth", s.filter_max_depth as u64),
            ("filter_max_terms", s.filter_max_terms as u64),
            ("scan_limit", s.scan_limit as u64),
            ("parallel_scans", s.parallel_scans as u64),
            ("header_timeout_seconds", s.header_timeout_seconds),
            ("idle_timeout_seconds", s.idle_timeout_seconds),
            ("body_timeout_seconds", s.body_timeout_seconds),
            ("max_body_bytes", s.max_body_bytes as u64),
            ("max_connections", s.max_connections as u64),
            ("token_failures", u64::from(s.token_failures)),
            (
                "token_failure_window_seconds",
                s.token_failure_window_seconds,
            ),
        ] {
            if value == 0 {
                problems.push(format!("serve.{name} must be above 0"));
            }
        }
        if !self.serve.clients.is_empty() && self.serve.token_seconds == 0 {
            problems.push("serve.token_seconds must be above 0".to_owned());
        }
        if self.serve.tls_cert.is_some() != self.serve.tls_key.is_some() {
            problems.push("serve: tls_cert and tls_key go together".to_owned());
        }
        for (name, path) in [
            ("serve.tls_cert", &self.serve.tls_cert),
            ("serve.tls_key", &self.serve.tls_key),
            ("directory.ca_file", &self.directory.ca_file),
        ] {
            if let Some(path) = path
                && !path.is_file()
            {
                problems.push(format!("{name}: no file at {}", path.display()));
            }
        }
        // Each share where it is set: `[guard]`, and an organisation's own override.
        let g = &self.guard;
        let mut shares = vec![
            (
                "guard".to_owned(),
                "max_updated_share",
                Some(g.max_updated_share),
            ),
            (
                "guard".to_owned(),
                "max_renamed_share",
                Some(g.max_renamed_share),
            ),
            (
                "guard".to_owned(),
                "max_created_share",
                Some(g.max_created_share),
            ),
        ];
        for org in &self.organisations {
            let name = format!("organisation {} guard", org.code);
            let o = &org.guard;
            shares.push((name.clone(), "max_updated_share", o.max_updated_share));
            shares.push((name.clone(), "max_renamed_share", o.max_renamed_share));
            shares.push((name, "max_created_share", o.max_created_share));
        }
        for (name, key, share) in shares {
            if let Some(share) = share
                && !(0.0..=1.0).contains(&share)
            {
                problems.push(format!("{name}.{key} must be between 0 and 1, not {share}"));
            }
        }
        problems.extend(crate::mail::config::problems(self.mail_sections()));
        problems.extend(crate::sources::config::problems(&self.sources));
        problems
    }

    /// A source by name.
    pub fn source(&self, name: &str) -> Option<&crate::sources::config::SourceConfig> {
        self.sources.iter().find(|s| s.name == name)
    }

    /// The configuration of an organisation, by ODS code (any case).
    /// The sections of the e-mail channel.
    pub fn mail_sections(&self) -> crate::mail::config::Sections<'_> {
        crate::mail::config::Sections {
            mail: &self.mail,
            mailbox: &self.mailbox,
            outbox: &self.outbox,
            schedule: &self.schedule,
        }
    }

    pub fn organisation(&self, code: &str) -> Option<&OrganisationConfig> {
        self.organisations
            .iter()
            .find(|o| o.code.eq_ignore_ascii_case(code))
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

/// Settings whose own name ends in `_file` (a path): `…__CA_FILE` sets `ca_file`; it is not
/// the `_FILE` form of a setting `ca`.
const FILE_SETTINGS: &[&str] = &["ca_file"];

/// The secret settings (a [`Secret`]): the only ones a `…_FILE` variable reads from a file.
const SECRET_SETTINGS: &[&str] = &[
    "bind_password",
    "client_secret",
    "connector_key",
    "password",
    "secret",
    "token",
    "url",
];

/// Sets `SECTION__KEY[__…]` in the table; `…_FILE` reads a secret's value from the named
/// file. A setting whose own name ends in `_file` ([`FILE_SETTINGS`]) is set as it is; the
/// `_FILE` form of any other setting that is not a secret is refused, saying why.
fn apply_override(table: &mut toml::Table, key: &str, value: &str) -> Result<(), String> {
    let path = &key[ENV_PREFIX.len()..];
    let last = |p: &str| {
        p.rsplit("__")
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase()
    };
    let from_file = if FILE_SETTINGS.contains(&last(path).as_str()) {
        None
    } else {
        path.strip_suffix("_FILE")
    };
    if let Some(p) = from_file
        && !SECRET_SETTINGS.contains(&last(p).as_str())
    {
        return Err(format!(
            "{key}: a name ending in _FILE reads a secret ({}) from a file, and {} is not a \
             secret: set it by its own name, {ENV_PREFIX}{p}=VALUE",
            SECRET_SETTINGS.join(", "),
            last(p)
        ));
    }
    let (path, parsed) = match from_file {
        // A file holds a secret: its text as it is, even when it looks like a number.
        Some(p) => (
            p,
            toml::Value::String(
                std::fs::read_to_string(value)
                    .map_err(|e| format!("{key}: cannot read {value}: {e}"))?
                    .trim_end_matches(['\n', '\r'])
                    .to_owned(),
            ),
        ),
        None => (
            path,
            format!("v = {value}")
                .parse::<toml::Table>()
                .ok()
                .and_then(|mut t| t.remove("v"))
                .unwrap_or_else(|| toml::Value::String(value.to_owned())),
        ),
    };
    let parts: Vec<String> = path.split("__").map(|p| p.to_ascii_lowercase()).collect();
    let parts: Vec<String> = parts
        .into_iter()
        .map(|p| {
            if p == "organisations" {
                "organisation".to_owned()
            } else {
                p
            }
        })
        .collect();
    set_path(table, &parts, parsed).map_err(|e| format!("{key}: {e}"))
}

fn set_path(table: &mut toml::Table, parts: &[String], value: toml::Value) -> Result<(), String> {
    let (first, rest) = parts.split_first().ok_or("names no setting")?;
    if rest.is_empty() {
        table.insert(first.clone(), value);
        return Ok(());
    }
    let entry = table
        .entry(first.clone())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    match entry {
        toml::Value::Table(t) => set_path(t, rest, value),
        toml::Value::Array(items) => {
            let index: usize = rest[0]
                .parse()
                .map_err(|_| format!("{first} is a list: give an index"))?;
            match items.get_mut(index) {
                Some(toml::Value::Table(t)) if rest.len() > 1 => set_path(t, &rest[1..], value),
                _ => Err(format!("{first} has no entry {index}")),
            }
        }
        _ => Err(format!("{first} is not a section")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn no_file_gives_the_embedded_defaults() {
        let c = Config::load_with_env(None, &BTreeMap::new()).expect("defaults");
        assert_eq!(c.service.domains, ["nhs.net"]);
        assert!(c.organisations.is_empty());
    }

    #[test]
    fn environment_overrides_file_and_reads_secrets_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "[service]\ndomains = [\"nhs.net\"]\n[[organisation]]\ncode = \"RXX\"\n",
        )
        .unwrap();
        let secret = dir.path().join("key");
        std::fs::write(&secret, "s3cret\n").unwrap();
        let env = BTreeMap::from([
            (
                "PUSH_CONNECTOR__SERVICE__DOMAINS".to_owned(),
                "[\"test.nhs.uk\"]".to_owned(),
            ),
            (
                "PUSH_CONNECTOR__ORGANISATIONS__0__CONNECTOR_KEY_FILE".to_owned(),
                secret.display().to_string(),
            ),
        ]);
        let c = Config::load_with_env(Some(&file), &env).expect("loads");
        assert_eq!(c.service.domains, ["test.nhs.uk"]);
        let key = c.organisations[0].connector_key.as_ref().expect("key");
        assert_eq!(key.0.expose_secret(), "s3cret");
        assert_eq!(format!("{key:?}"), "[redacted]");
    }

    #[test]
    fn settings_ending_in_file_are_set_from_the_environment_and_only_secrets_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "[[source]]\nname = \"ad\"\norganisations = [\"RXX\"]\n\
             [source.ldap]\nurl = \"ldaps://dc1\"\nbind_dn = \"CN=svc\"\nbase_dn = \"DC=x\"\n\
             bind_password = \"pw\"\n[source.constant]\nOrganisation = \"RXX\"\n",
        )
        .unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not read while loading").unwrap();
        let cert = dir.path().join("cert.pem");
        std::fs::write(&cert, "").unwrap();
        let ca_text = ca.display().to_string();
        let env = BTreeMap::from([
            (
                "PUSH_CONNECTOR__SOURCE__0__LDAP__CA_FILE".to_owned(),
                ca_text.clone(),
            ),
            (
                "PUSH_CONNECTOR__DIRECTORY__CA_FILE".to_owned(),
                ca_text.clone(),
            ),
            (
                "PUSH_CONNECTOR__MAILBOX__CA_FILE".to_owned(),
                ca_text.clone(),
            ),
            (
                "PUSH_CONNECTOR__OUTBOX__CA_FILE".to_owned(),
                ca_text.clone(),
            ),
            (
                "PUSH_CONNECTOR__SERVE__TLS_CERT".to_owned(),
                cert.display().to_string(),
            ),
            (
                "PUSH_CONNECTOR__SERVE__TLS_KEY".to_owned(),
                cert.display().to_string(),
            ),
        ]);
        let c = Config::load_with_env(Some(&file), &env).expect("loads");
        let ldap = c.sources[0].ldap.as_ref().expect("ldap");
        assert_eq!(ldap.ca_file.as_deref(), Some(ca.as_path()));
        assert_eq!(c.directory.ca_file.as_deref(), Some(ca.as_path()));
        assert_eq!(c.mailbox.ca_file.as_deref(), Some(ca.as_path()));
        assert_eq!(c.outbox.ca_file.as_deref(), Some(ca.as_path()));
        assert_eq!(c.serve.tls_cert.as_deref(), Some(cert.as_path()));
        assert_eq!(c.serve.tls_key.as_deref(), Some(cert.as_path()));

        // A path is not a secret: its `_FILE` form is refused, and the message says so.
        let env = BTreeMap::from([(
            "PUSH_CONNECTOR__SERVE__TLS_KEY_FILE".to_owned(),
            cert.display().to_string(),
        )]);
        let err = Config::load_with_env(Some(&file), &env)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("tls_key is not a secret")
                && err.contains("PUSH_CONNECTOR__SERVE__TLS_KEY=VALUE"),
            "{err}"
        );
    }

    /// Every secret setting can be read from a file, and every setting whose name ends in
    /// `_file` is set by that name: the lists match the configuration's fields.
    #[test]
    fn the_lists_of_secret_and_file_settings_match_the_fields() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut secrets = std::collections::BTreeSet::new();
        let mut files = std::collections::BTreeSet::new();
        let mut stack = vec![root];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                if path.extension().is_none_or(|e| e != "rs") {
                    continue;
                }
                for line in std::fs::read_to_string(&path).unwrap().lines() {
                    let Some((name, ty)) = line
                        .trim()
                        .strip_prefix("pub ")
                        .and_then(|l| l.split_once(": "))
                    else {
                        continue;
                    };
                    if ty.starts_with("Secret") || ty.starts_with("Option<Secret>") {
                        secrets.insert(name.to_owned());
                    }
                    if name.ends_with("_file") && ty.contains("PathBuf") {
                        files.insert(name.to_owned());
                    }
                }
            }
        }
        let want: std::collections::BTreeSet<String> =
            SECRET_SETTINGS.iter().map(|s| s.to_string()).collect();
        assert_eq!(secrets, want);
        let want: std::collections::BTreeSet<String> =
            FILE_SETTINGS.iter().map(|s| s.to_string()).collect();
        assert_eq!(files, want);
    }

    #[test]
    fn a_syntax_error_names_its_line_but_does_not_quote_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[serve]\ntoken = \"s3cr3t-value\" extra\n").unwrap();
        let err = Config::load_with_env(Some(&path), &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2"), "{err}");
        assert!(!err.contains("s3cr3t"), "{err}");
    }

    #[test]
    fn a_source_password_comes_from_the_environment_or_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "[[source]]\nname = \"ad\"\norganisations = [\"RXX\"]\n\
             [source.ldap]\nurl = \"ldaps://dc1\"\nbind_dn = \"CN=svc\"\nbase_dn = \"DC=x\"\n\
             [source.constant]\nOrganisation = \"RXX\"\n",
        )
        .unwrap();
        // Only a sync needs the password: every other verb loads without it.
        let without = Config::load_with_env(Some(&file), &BTreeMap::new()).expect("loads");
        assert!(
            without.sources[0]
                .ldap
                .as_ref()
                .unwrap()
                .bind_password
                .is_none()
        );
        // A secret file holding digits is still a password, not a number.
        let secret = dir.path().join("pw");
        std::fs::write(&secret, "123456\n").unwrap();
        let env = BTreeMap::from([(
            "PUSH_CONNECTOR__SOURCE__0__LDAP__BIND_PASSWORD_FILE".to_owned(),
            secret.display().to_string(),
        )]);
        let c = Config::load_with_env(Some(&file), &env).expect("loads");
        let ldap = c.sources[0].ldap.as_ref().expect("ldap");
        let pw = ldap.bind_password.as_ref().expect("password");
        assert_eq!(pw.0.expose_secret(), "123456");
    }

    #[test]
    fn all_problems_are_reported_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "[validation]\nwork_areas = \"/nonexistent\"\n[[organisation]]\ncode = \"R-X\"\n[[organisation]]\ncode = \"r-x\"\n",
        )
        .unwrap();
        let err = Config::load_with_env(Some(&file), &BTreeMap::new()).unwrap_err();
        assert_eq!(err.problems.len(), 4, "{err}");
    }

    #[test]
    fn a_serve_credential_must_name_its_organisations() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "[serve]\nclients = [{ id = \"c\", secret = \"s\" }, \
             { id = \"d\", secret = \"s\", organisations = [\"*\", \"RXX\"] }]\n",
        )
        .unwrap();
        let env: BTreeMap<String, String> =
            [("PUSH_CONNECTOR__SERVE__TOKEN".to_owned(), "t".to_owned())].into();
        let config = Config::load_with_env(Some(&file), &env).expect("other verbs still start");
        let problems = config.serve_scope_problems();
        let text = problems.join("\n");
        assert_eq!(problems.len(), 3, "{text}");
        assert!(
            text.contains("client c: organisations is required"),
            "{text}"
        );
        assert!(text.contains("token_organisations"), "{text}");
        assert!(text.contains("[\"*\"] for all organisations"), "{text}");
        let mut env = env;
        env.insert(
            "PUSH_CONNECTOR__SERVE__TOKEN_ORGANISATIONS".to_owned(),
            "[\"RXX\", \"ryy\"]".to_owned(),
        );
        std::fs::write(&file, "[serve]\nscan_limit = 0\n").unwrap();
        let err = Config::load_with_env(Some(&file), &env).unwrap_err();
        assert_eq!(err.problems, ["serve.scan_limit must be above 0"]);
        std::fs::write(&file, "").unwrap();
        let c = Config::load_with_env(Some(&file), &env).unwrap();
        assert_eq!(c.serve.token_organisations, ["RXX", "ryy"]);
        assert!(c.serve_scope_problems().is_empty());
    }

    #[test]
    fn the_sample_configuration_loads() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(cwd, root, "tests run in the crate folder");
        let c = Config::load_with_env(Some(&root.join("samples/connector.toml")), &BTreeMap::new())
            .expect("sample loads");
        assert_eq!(c.organisations.len(), 2);
        assert_eq!(c.directory.path, PathBuf::from("var/directory.sqlite"));
        let rxx = c.guard.with(&c.organisations[0].guard);
        assert_eq!(rxx.max_updated_share, 0.3);
        assert_eq!(rxx.floor, 50);
        assert!(!c.organisations[1].create_accounts);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "[service]\ndomian = \"x\"\n").unwrap();
        let err = Config::load_with_env(Some(&file), &BTreeMap::new()).unwrap_err();
        assert!(err.to_string().contains("domian"), "{err}");
    }
}
