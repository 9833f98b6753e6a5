//! Mailbox sources behind one seam: a local maildir (the embedded default) and IMAP.
//!
//! In: the `[mailbox]` configuration. Out: the messages waiting in the inbox, each with a key
//! that names it uniquely in that mailbox (`maildir:<file name>`, `imap:<UIDVALIDITY>:<UID>`),
//! and the filing of a message into `Processed` or `Rejected`, which the caller does only
//! once the message is stored durably (acknowledge after the work is safe).

pub mod imap;
pub mod maildir;

use std::time::Duration;

use super::config::{MailboxConfig, MailboxKind};
use crate::store::mail::Folder;

#[derive(Debug, thiserror::Error)]
pub enum MailboxError {
    #[error("maildir {path}: {source}")]
    Maildir {
        path: String,
        source: std::io::Error,
    },
    #[error("IMAP {server}: {message}")]
    Imap { server: String, message: String },
    #[error("no message {0} in the mailbox")]
    NoSuchMessage(String),
}

/// A message waiting in the inbox.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub key: String,
    pub raw: Vec<u8>,
}

/// A message waiting in the inbox, not yet read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    /// Its size in bytes, as the mailbox reports it.
    pub size: u64,
}

/// A source of submission e-mails. Messages are listed, then read one at a time, so a pass
/// holds one message in memory whatever the inbox holds.
pub trait Mailbox {
    /// The messages in the inbox, oldest first.
    fn list(&mut self) -> impl Future<Output = Result<Vec<Listed>, MailboxError>>;
    /// One listed message; `None` when it has gone since the listing.
    fn read(&mut self, key: &str) -> impl Future<Output = Result<Option<Vec<u8>>, MailboxError>>;
    /// Every message in the inbox, oldest first (for tests and small inboxes).
    fn fetch(&mut self) -> impl Future<Output = Result<Vec<Fetched>, MailboxError>> {
        async {
            let mut out = Vec::new();
            for listed in self.list().await? {
                if let Some(raw) = self.read(&listed.key).await? {
                    out.push(Fetched {
                        key: listed.key,
                        raw,
                    });
                }
            }
            Ok(out)
        }
    }
    /// Moves a message out of the inbox into a folder.
    fn file(&mut self, key: &str, folder: Folder)
    -> impl Future<Output = Result<(), MailboxError>>;
    /// Waits up to `max` for new mail (IMAP IDLE where offered; otherwise just waits).
    fn wait(&mut self, max: Duration) -> impl Future<Output = Result<(), MailboxError>>;
    /// Connects and says what was found (for `check`).
    fn check(&mut self) -> impl Future<Output = Result<String, MailboxError>>;
}

/// The configured mailbox.
pub enum AnyMailbox {
    Maildir(maildir::Maildir),
    Imap(Box<imap::Imap>),
}

impl AnyMailbox {
    pub fn from_config(config: &MailboxConfig) -> AnyMailbox {
        match config.kind {
            MailboxKind::Maildir => AnyMailbox::Maildir(maildir::Maildir::new(&config.path)),
            MailboxKind::Imap => AnyMailbox::Imap(Box::new(imap::Imap::new(config.clone()))),
        }
    }
}

impl Mailbox for AnyMailbox {
    async fn list(&mut self) -> Result<Vec<Listed>, MailboxError> {
        match self {
            AnyMailbox::Maildir(m) => m.list().await,
            AnyMailbox::Imap(m) => m.list().await,
        }
    }

    async fn read(&mut self, key: &str) -> Result<Option<Vec<u8>>, MailboxError> {
        match self {
            AnyMailbox::Maildir(m) => m.read(key).await,
            AnyMailbox::Imap(m) => m.read(key).await,
        }
    }

    async fn file(&mut self, key: &str, folder: Folder) -> Result<(), MailboxError> {
        match self {
            AnyMailbox::Maildir(m) => m.file(key, folder).await,
            AnyMailbox::Imap(m) => m.file(key, folder).await,
        }
    }

    async fn wait(&mut self, max: Duration) -> Result<(), MailboxError> {
        match self {
            AnyMailbox::Maildir(m) => m.wait(max).await,
            AnyMailbox::Imap(m) => m.wait(max).await,
        }
    }

    async fn check(&mut self) -> Result<String, MailboxError> {
        match self {
            AnyMailbox::Maildir(m) => m.check().await,
            AnyMailbox::Imap(m) => m.check().await,
        }
    }
}
