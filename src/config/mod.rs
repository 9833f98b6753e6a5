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
mod env;
pub mod secret;

pub use crate::directory::config::{DirectoryBackend, DirectoryConfig};
pub use crate::guard::{GuardConfig, GuardOverride};
pub use crate::serve::config::{ServeClient, ServeConfig};
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
    /// The operator console, `/metrics` and the health checks, served by `run`.
    pub console: crate::console::config::ConsoleConfig,
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
    /// An organisation that has sent no accepted file and had no sync or run for this many
    /// days gets one reminder to its administrators, and the operators a notice (0: never).
    pub stale_after_days: u32,
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
            stale_after_days: 35,
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
    /// This organisation's `[service] stale_after_days`.
    #[serde(default)]
    pub stale_after_days: Option<u32>,
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
            if let Err(p) = env::apply_override(&mut table, key, value) {
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

    /// What `serve` needs of its credentials (see [`ServeConfig::scope_problems`]).
    pub fn serve_scope_problems(&self) -> Vec<String> {
        self.serve.scope_problems()
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
        problems.extend(self.console.problems());
        if self.serve.tls_cert.is_some() != self.serve.tls_key.is_some() {
            problems.push("serve: tls_cert and tls_key go together".to_owned());
        }
        for (name, path) in [
            ("serve.tls_cert", &self.serve.tls_cert),
            ("serve.tls_key", &self.serve.tls_key),
            ("console.tls_cert", &self.console.tls_cert),
            ("console.tls_key", &self.console.tls_key),
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
            (
                "guard".to_owned(),
                "max_field_share",
                Some(g.max_field_share),
            ),
            (
                "guard".to_owned(),
                "max_identity_field_share",
                Some(g.max_identity_field_share),
            ),
        ];
        for org in &self.organisations {
            let name = format!("organisation {} guard", org.code);
            let o = &org.guard;
            shares.push((name.clone(), "max_updated_share", o.max_updated_share));
            shares.push((name.clone(), "max_renamed_share", o.max_renamed_share));
            shares.push((name.clone(), "max_created_share", o.max_created_share));
            shares.push((name.clone(), "max_field_share", o.max_field_share));
            shares.push((name, "max_identity_field_share", o.max_identity_field_share));
        }
        for (name, key, share) in shares {
            if let Some(share) = share
                && !(0.0..=1.0).contains(&share)
            {
                problems.push(format!("{name}.{key} must be between 0 and 1, not {share}"));
            }
        }
        if let Err(e) = crate::mail::schedule::Schedule::from_config(&self.schedule) {
            problems.push(format!("schedule: {e}"));
        }
        problems.extend(crate::mail::config::problems(self.mail_sections()));
        problems.extend(crate::sources::config::problems(&self.sources));
        for s in &self.sources {
            if let Err(e) = crate::sources::schedule::SourceSchedule::from_config(s) {
                problems.push(format!("source \"{}\": {e}", s.name));
            }
        }
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

#[cfg(test)]
mod tests;
