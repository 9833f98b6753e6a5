//! One deployment, resolved once: the configuration, the validation rules (with the portal's
//! code lists when the directory publishes them), each organisation's policy and guard
//! limits, the backends, and how run IDs are minted.
//!
//! In: a loaded [`Config`]. Out: a [`Deployment`] that every verb and the service are handed,
//! so a file validates and plans the same way whichever door it came in by. Opening it
//! connects to the directory once (for SCIM: one read of the discovery documents, which also
//! gives the code lists).

use std::path::PathBuf;

use chrono::{DateTime, Utc};

use crate::apply::Context;
use crate::config::{Config, DirectoryBackend, GuardConfig};
use crate::directory::DirectoryError;
use crate::directory::any::AnyDirectory;
use crate::model::OdsCode;
use crate::reconcile::Policy;
use crate::store::{MailStore, StateDb, StateError, SyncStore};
use crate::validate::Rules;

#[derive(Debug, thiserror::Error)]
pub enum DeploymentError {
    #[error("reading the code lists: {0}")]
    Codes(#[from] std::io::Error),
    #[error("opening the directory {path}: {source}")]
    Local {
        path: String,
        source: DirectoryError,
    },
    #[error("connecting to the SCIM directory {url}: {source}")]
    Scim { url: String, source: DirectoryError },
    #[error("opening the state database in {path}: {source}")]
    State { path: String, source: StateError },
}

/// The configuration resolved, and the backends it names, open.
pub struct Deployment<'a> {
    pub config: &'a Config,
    /// The rules every channel validates with.
    pub rules: Rules,
    pub directory: AnyDirectory,
    /// Runs and their journal.
    pub state: StateDb,
    /// Messages, submissions and the outbox of the e-mail channel (on the state database).
    pub mail: MailStore,
    /// Cursors and fingerprints of the sync channel (on the state database).
    pub sync: SyncStore,
}

impl<'a> Deployment<'a> {
    /// Opens the directory and the state database, and resolves the rules.
    pub async fn open(config: &'a Config) -> Result<Deployment<'a>, DeploymentError> {
        let directory = open_directory(config).await?;
        let rules = rules(config, Some(&directory)).await?;
        let dir = &config.service.state_dir;
        let state_error = |source| DeploymentError::State {
            path: dir.display().to_string(),
            source,
        };
        let state = StateDb::open(dir).await.map_err(state_error)?;
        let sync = state.sync();
        let mail = state.mail();
        Ok(Deployment {
            config,
            rules,
            directory,
            state,
            mail,
            sync,
        })
    }

    /// The organisation's policy (see [`policy`]).
    pub fn policy(&self, organisation: &OdsCode) -> Policy {
        policy(self.config, organisation)
    }

    /// The organisation's guard limits (see [`guard_limits`]).
    pub fn guard_limits(&self, organisation: &OdsCode) -> GuardConfig {
        guard_limits(self.config, organisation)
    }

    /// What applying a plan needs, reporting progress to `progress`.
    pub fn context<'c>(&'c self, progress: &'c dyn Fn(u64, u64)) -> Context<'c, AnyDirectory> {
        Context {
            directory: &self.directory,
            state: &self.state,
            passwords: password_file(self.config),
            progress,
        }
    }
}

/// Opens the configured directory backend.
pub async fn open_directory(config: &Config) -> Result<AnyDirectory, DeploymentError> {
    AnyDirectory::open(&config.directory)
        .await
        .map_err(|source| match config.directory.backend {
            DirectoryBackend::Local => DeploymentError::Local {
                path: config.directory.path.display().to_string(),
                source,
            },
            DirectoryBackend::Scim => DeploymentError::Scim {
                url: config.directory.url.clone().unwrap_or_default(),
                source,
            },
        })
}

/// The validation rules: the configured code lists, and with a SCIM directory the lists the
/// configuration leaves unset from the portal's canonicalValues. Without an open
/// `directory`, a SCIM one is opened for its discovery documents; the embedded directory
/// publishes no lists and is not opened.
pub async fn rules(
    config: &Config,
    directory: Option<&AnyDirectory>,
) -> Result<Rules, DeploymentError> {
    let mut rules = Rules::from_config(config)?;
    if config.directory.backend != DirectoryBackend::Scim {
        return Ok(rules);
    }
    let opened;
    let directory = match directory {
        Some(d) => d,
        None => {
            opened = open_directory(config).await?;
            &opened
        }
    };
    if let AnyDirectory::Scim(scim) = directory {
        crate::scim::schema::fill_rules(&mut rules, &config.validation, &scim.capabilities().codes);
    }
    Ok(rules)
}

/// The policy the configuration gives an organisation (defaults when it is not listed).
pub fn policy(config: &Config, organisation: &OdsCode) -> Policy {
    let org = config.organisation(organisation.as_str());
    Policy {
        organisation: organisation.clone(),
        domain: config
            .service
            .domains
            .first()
            .map_or("nhs.net".to_owned(), |d| d.to_ascii_lowercase()),
        create_accounts: org.is_none_or(|o| o.create_accounts),
        blank_means_keep: org.is_none_or(|o| o.blank_means_keep),
        name_change_new_address: org.is_some_and(|o| o.name_change_new_address),
        channel: Default::default(),
    }
}

/// The guard limits of an organisation: `[guard]` with its own overrides.
pub fn guard_limits(config: &Config, organisation: &OdsCode) -> GuardConfig {
    config.guard.with(
        &config
            .organisation(organisation.as_str())
            .map(|o| o.guard)
            .unwrap_or_default(),
    )
}

/// The password file of new accounts (mode 0600).
pub fn password_file(config: &Config) -> PathBuf {
    config.service.state_dir.join("initial-passwords.csv")
}

/// A new run's ID: time (passed in) and a random suffix, so IDs sort by time.
pub fn run_id(now: DateTime<Utc>) -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{}-{}", now.format("%Y%m%d-%H%M%S"), &random[..6])
}

/// The configuration resolved into rules lives here, with the rest of the resolution, so that
/// validation stays apart from the configuration.
impl Rules {
    /// The rules a configuration describes (reads its code-list files).
    pub fn from_config(config: &Config) -> std::io::Result<Rules> {
        let load = |path: &Option<std::path::PathBuf>| -> std::io::Result<Option<crate::validate::CodeList>> {
            path.as_ref().map(crate::validate::CodeList::load).transpose()
        };
        Ok(Rules {
            domains: config
                .service
                .domains
                .iter()
                .map(|d| d.to_ascii_lowercase())
                .collect(),
            subdomains: config.service.include_subdomains,
            titles: load(&config.validation.titles)?
                .unwrap_or_else(crate::validate::CodeList::default_titles),
            clinical_roles: load(&config.validation.clinical_roles)?,
            clinical_specialities: load(&config.validation.clinical_specialities)?,
            work_areas: load(&config.validation.work_areas)?,
            connectors: config
                .organisations
                .iter()
                .filter_map(|o| {
                    o.connector
                        .clone()
                        .map(|c| (o.code.to_ascii_uppercase(), c))
                })
                .collect(),
            limits: config.limits,
        })
    }
}
