//! The backend a deployment configured, chosen at run time: `[directory] backend = "local"`
//! (the embedded SQLite directory) or `"scim"` (the portal's SCIM API).
//!
//! In: the configuration. Out: one [`Directory`] that forwards to the chosen backend.

use super::local::LocalDirectory;
use super::scim::ScimDirectory;
use super::{Account, Directory, DirectoryError, DirectoryIndex, Keys, Op, OpOutcome};
use crate::config::{DirectoryBackend, DirectoryConfig};
use crate::model::PortalId;

#[derive(Debug)]
pub enum AnyDirectory {
    Local(LocalDirectory),
    Scim(Box<ScimDirectory>),
}

impl AnyDirectory {
    /// Opens the configured backend (for SCIM: connects and reads its discovery documents).
    pub async fn open(config: &DirectoryConfig) -> Result<AnyDirectory, DirectoryError> {
        Ok(match config.backend {
            DirectoryBackend::Local => {
                AnyDirectory::Local(LocalDirectory::open(&config.path).await?)
            }
            DirectoryBackend::Scim => {
                AnyDirectory::Scim(Box::new(ScimDirectory::open(config).await?))
            }
        })
    }

    /// The embedded directory, for what only it can do (import, export).
    pub fn local(&self) -> Option<&LocalDirectory> {
        match self {
            AnyDirectory::Local(l) => Some(l),
            AnyDirectory::Scim(_) => None,
        }
    }
}

macro_rules! forward {
    ($self:ident, $d:ident => $e:expr) => {
        match $self {
            AnyDirectory::Local($d) => $e,
            AnyDirectory::Scim($d) => $e,
        }
    };
}

impl Directory for AnyDirectory {
    async fn index_for(&self, keys: &Keys) -> Result<DirectoryIndex, DirectoryError> {
        forward!(self, d => d.index_for(keys).await)
    }
    async fn by_id(&self, id: &PortalId) -> Result<Option<Account>, DirectoryError> {
        forward!(self, d => d.by_id(id).await)
    }
    async fn by_external_sync_id(
        &self,
        organisation: &str,
        external: &str,
    ) -> Result<Option<Account>, DirectoryError> {
        forward!(self, d => d.by_external_sync_id(organisation, external).await)
    }
    async fn by_email(&self, email: &str) -> Result<Option<Account>, DirectoryError> {
        forward!(self, d => d.by_email(email).await)
    }
    async fn list(&self, organisation: &str) -> Result<Vec<Account>, DirectoryError> {
        forward!(self, d => d.list(organisation).await)
    }
    async fn unit_exists(&self, organisation: &str, unit: &str) -> Result<bool, DirectoryError> {
        forward!(self, d => d.unit_exists(organisation, unit).await)
    }
    async fn apply(&self, ops: &[Op]) -> Result<Vec<OpOutcome>, DirectoryError> {
        forward!(self, d => d.apply(ops).await)
    }
}
