//! `[console]`: where the operator console and the metrics listen, who may sign in, and the
//! rules for approving held runs.

use std::path::PathBuf;

use serde::Deserialize;

/// The operator console (`run` serves it when `listen` is set).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Address and port of the console, `/metrics`, `/healthz` and `/readyz`; no console
    /// when unset.
    pub listen: Option<String>,
    /// PEM file of the server certificate (leaf first): serve HTTPS. Needs `tls_key`.
    pub tls_cert: Option<PathBuf>,
    /// PEM file of the certificate's private key.
    pub tls_key: Option<PathBuf>,
    /// Who may sign in: `[[console.operator]]` with a `name` and an argon2id
    /// `password_hash` (`push-connector hash-password` prints one).
    #[serde(rename = "operator")]
    pub operators: Vec<OperatorConfig>,
    /// Minutes a session lasts without a request before it must sign in again.
    pub session_idle_minutes: u64,
    /// Hours a session lasts at most, however busy.
    pub session_max_hours: u64,
    /// Failed sign-ins allowed per operator name, and per address, within
    /// `login_failure_window_seconds`; beyond, sign-in waits (each further block doubles it).
    pub login_failures: u32,
    pub login_failure_window_seconds: u64,
    /// Two-person rule: the operator approving a held run must not be the one who
    /// requested it (when the run names its requester).
    pub approver_not_requester: bool,
    /// A held run that changes more rows than this needs two different operators to
    /// approve it (0: one approval is enough).
    pub second_approver_above: usize,
    /// A bearer token `/metrics` then requires (`PUSH_CONNECTOR__CONSOLE__METRICS_TOKEN`);
    /// without one, `/metrics` answers whoever reaches the listener.
    pub metrics_token: Option<crate::config::secret::Secret>,
    /// Sign-in with OpenID Connect (Entra ID or another provider), beside or instead of
    /// passwords.
    pub oidc: Option<super::oidc::OidcConfig>,
}

/// One operator of the console.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorConfig {
    /// The name to sign in with (with OpenID Connect: the value of the token's claim, such
    /// as the operator's e-mail address).
    pub name: String,
    /// The PHC string of an argon2id hash (`$argon2id$v=19$…`); without one the operator
    /// signs in with OpenID Connect only.
    #[serde(default)]
    pub password_hash: Option<String>,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            listen: None,
            tls_cert: None,
            tls_key: None,
            operators: Vec::new(),
            session_idle_minutes: 30,
            session_max_hours: 8,
            login_failures: 5,
            login_failure_window_seconds: 300,
            approver_not_requester: true,
            second_approver_above: 0,
            metrics_token: None,
            oidc: None,
        }
    }
}

impl ConsoleConfig {
    /// What is wrong with the section, in words for the configuration's reader.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            problems.push("console: tls_cert and tls_key go together".to_owned());
        }
        for (name, value) in [
            ("session_idle_minutes", self.session_idle_minutes),
            ("session_max_hours", self.session_max_hours),
            ("login_failures", u64::from(self.login_failures)),
            (
                "login_failure_window_seconds",
                self.login_failure_window_seconds,
            ),
        ] {
            if value == 0 {
                problems.push(format!("console.{name} must be above 0"));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for op in &self.operators {
            if op.name.trim().is_empty() {
                problems.push("console.operator: an operator has an empty name".to_owned());
            } else if !seen.insert(op.name.as_str()) {
                problems.push(format!("console.operator: {} is configured twice", op.name));
            }
            match &op.password_hash {
                Some(h) if !h.starts_with("$argon2id$") => problems.push(format!(
                    "console.operator {}: password_hash must be an argon2id hash \
                     (`push-connector hash-password` prints one)",
                    op.name
                )),
                None if self.oidc.is_none() => problems.push(format!(
                    "console.operator {}: no password_hash, and no [console.oidc] to sign in with",
                    op.name
                )),
                _ => {}
            }
        }
        if self.listen.is_some() && self.operators.is_empty() {
            problems
                .push("console.listen is set but no [[console.operator]] may sign in".to_owned());
        }
        if let Some(oidc) = &self.oidc {
            problems.extend(oidc.problems());
        }
        problems
    }
}
