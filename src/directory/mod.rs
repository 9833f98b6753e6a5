//! The directory: the portal's accounts, behind one trait, and the in-memory index reconcile
//! reads.
//!
//! In: a backend (the embedded SQLite directory in [`local`], the portal's SCIM API in
//! [`scim`], either chosen at run time through [`any`]).
//! Out: [`Account`]s (every person field plus portal ID, status and secondary addresses), the
//! [`Directory`] operations apply needs (look-ups, create, compare-and-set field updates,
//! before-images), and a pure [`DirectoryIndex`] built from the accounts a submission can
//! touch. The account types and the index are the core's, in [`crate::model`].

pub mod any;
pub mod config;
pub mod local;
pub mod portable;
pub mod scim;

pub use crate::model::naming;
pub use crate::model::{
    Account, Change, DirectoryIndex, Keys, NewAccount, OrganisationInfo, Status,
};

use crate::model::PortalId;

/// What a backend did with one operation of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpOutcome {
    /// Created now, or found already created under its minted ID (a retried create).
    Created(Account),
    /// Not created: the organisation already has an account with this ExternalSyncID.
    Exists(Account),
    /// The changes are in place (applied now or found already applied).
    Updated,
    /// Not done; why, in words for an administrator.
    Failed(String),
}

/// One operation of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Create(NewAccount),
    /// Compare-and-set: each field is set to `after` only where it still holds `before` (or
    /// already holds `after`); otherwise the whole operation fails.
    Update {
        id: PortalId,
        changes: Vec<Change>,
        /// Whose change this is, for the directory's history.
        run: String,
    },
}

/// A directory backend failed as a whole (not a single row).
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("directory database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("directory file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("the directory holds a value it cannot read: {0}")]
    Corrupt(String),
    /// The SCIM portal failed as a whole (credentials, unreadable answers, retries exhausted).
    #[error("SCIM directory: {0}")]
    Scim(String),
}

/// The directory operations the pipeline needs. A SCIM backend implements the same.
#[allow(async_fn_in_trait)]
pub trait Directory {
    /// The accounts a submission can touch (by ID, ExternalSyncID within an organisation,
    /// primary or secondary address), the taken addresses sharing the given stems, and the
    /// named organisations: the snapshot reconcile runs on.
    async fn index_for(&self, keys: &Keys) -> Result<DirectoryIndex, DirectoryError>;
    async fn by_id(&self, id: &PortalId) -> Result<Option<Account>, DirectoryError>;
    async fn by_external_sync_id(
        &self,
        organisation: &str,
        external: &str,
    ) -> Result<Option<Account>, DirectoryError>;
    async fn by_email(&self, email: &str) -> Result<Option<Account>, DirectoryError>;
    /// Every account of an organisation, ordered by primary address then ID.
    async fn list(&self, organisation: &str) -> Result<Vec<Account>, DirectoryError>;
    async fn unit_exists(&self, organisation: &str, unit: &str) -> Result<bool, DirectoryError>;
    /// Applies a batch; one outcome per operation, in order. Creates first look the ID and
    /// ExternalSyncID up again, so a retried batch never duplicates an account.
    async fn apply(&self, ops: &[Op]) -> Result<Vec<OpOutcome>, DirectoryError>;
}
