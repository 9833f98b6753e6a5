//! The state database (`state.sqlite` in the state folder): runs and their journal
//! ([`runs`], [`journal`]), what the e-mail connector received and must send ([`mail`],
//! [`outbox`]), and what each sync remembers ([`sync`]), plus per-organisation locks.
//!
//! In: the state folder. Out: one [`StateDb`], opened once, owning the file's pool and
//! brought up to date by one ordered list of schema versions (`schema.rs`); the mail and
//! sync stores are views of the same pool. SQLite by default; the schema is plain SQL
//! (`?` placeholders and `INTEGER PRIMARY KEY` as counters are the SQLite-specific parts).

/// An enum the database stores as its name: `as_str` gives the name written, and its one
/// `FromStr` reads it back; a name it does not know is [`StateError::Corrupt`].
macro_rules! stored_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($what:literal) {
            $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// The name stored.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::store::StateError;

            fn from_str(s: &str) -> Result<$name, $crate::store::StateError> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::store::StateError::Corrupt(format!(
                        "{} {s:?}",
                        $what
                    ))),
                }
            }
        }
    };
}

pub mod history;
pub mod journal;
pub mod mail;
pub mod operators;
pub mod overview;
pub mod runs;
mod schema;
pub mod sqlite;
pub mod sync;

use std::fs::File;
use std::path::{Path, PathBuf};

use sqlx::sqlite::SqlitePool;

pub use history::{HistoryChange, HistoryEntry};
pub use journal::{DoneChange, JournalOp, OpKind, OpOutcomeRow, OpRecord, OpState, planned_ops};
pub use mail::MailStore;
pub use mail::outbox;
pub use operators::{Approval, AuditEntry};
pub use runs::{RunInfo, RunStatus};
use sqlite::SqliteError;
pub use sync::SyncStore;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("state database: {0}")]
    Open(#[from] SqliteError),
    #[error("state file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A value read back that the code does not know (a journal state, a run status, a
    /// field name, a stored plan): the database was written by something else.
    #[error("the state database holds a value it cannot read: {0}")]
    Corrupt(String),
    /// A value that could not be written as asked (nothing of it was stored).
    #[error("cannot store {what}: {reason}")]
    Unstorable { what: &'static str, reason: String },
    #[error("there is no run {0}")]
    NoSuchRun(String),
    /// A verb asked of a run in a status that does not allow it (approve an applied run,
    /// revert a reverted one): a plain refusal, nothing is wrong with the database.
    #[error("run {run} is {status}: {needed}")]
    WrongStatus {
        run: String,
        status: &'static str,
        needed: &'static str,
    },
}

#[derive(Debug, Clone)]
pub struct StateDb {
    pool: SqlitePool,
    dir: PathBuf,
}

impl StateDb {
    /// Opens `state.sqlite` in the state folder, creating it when missing, and brings every
    /// table of it up to date.
    pub async fn open(state_dir: &Path) -> Result<StateDb, StateError> {
        let pool = sqlite::open(&state_dir.join("state.sqlite")).await?;
        schema::adopt_earlier_versions(&pool).await?;
        sqlite::migrate(&pool, schema::MIGRATIONS).await?;
        mail::backfill_content_keys(&pool).await?;
        Ok(StateDb {
            pool,
            dir: state_dir.to_owned(),
        })
    }

    /// The e-mail connector's messages, submissions and outbox, on this database.
    pub fn mail(&self) -> MailStore {
        MailStore::new(self.pool.clone())
    }

    /// What the syncs remember, on this database.
    pub fn sync(&self) -> SyncStore {
        SyncStore::new(self.pool.clone())
    }

    /// Takes the organisation's lock, waiting while another process holds it. The lock is
    /// the open file: it goes when the process ends, however it ends.
    pub fn lock(&self, organisation: &str) -> Result<File, StateError> {
        let file = self.lock_file(organisation)?;
        file.lock().map_err(|source| StateError::Io {
            path: self.lock_path(organisation),
            source,
        })?;
        Ok(file)
    }

    /// Takes the lock only when it is free.
    pub fn try_lock(&self, organisation: &str) -> Result<Option<File>, StateError> {
        let file = self.lock_file(organisation)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(source)) => Err(StateError::Io {
                path: self.lock_path(organisation),
                source,
            }),
        }
    }

    fn lock_path(&self, organisation: &str) -> PathBuf {
        self.dir.join("locks").join(format!("{organisation}.lock"))
    }

    fn lock_file(&self, organisation: &str) -> Result<File, StateError> {
        let path = self.lock_path(organisation);
        let io = |source| StateError::Io {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io)
    }
}

#[cfg(test)]
mod tests;
