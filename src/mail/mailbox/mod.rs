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
use super::store::Folder;

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

/// A source of submission e-mails.
pub trait Mailbox {
    /// The messages in the inbox, oldest first.
    fn fetch(&mut self) -> impl Future<Output = Result<Vec<Fetched>, MailboxError>>;
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
    async fn fetch(&mut self) -> Result<Vec<Fetched>, MailboxError> {
        match self {
            AnyMailbox::Maildir(m) => m.fetch().await,
            AnyMailbox::Imap(m) => m.fetch().await,
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
