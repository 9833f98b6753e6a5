//! Sources a directory sync reads people from: an LDAP directory (Active Directory) or a SQL
//! table, behind one [`Source`] trait.
//!
//! In: a source's configuration, the attributes to read, and the cursor the last run left.
//! Out: a [`Batch`] of [`SourceEntry`] values (raw attribute values, nothing judged yet) and
//! the cursor to keep once the batch is applied; and write-back of the portal's values. What
//! the values mean is `sync`'s business (mapping, validation, planning).

pub mod config;
pub mod ldap;
pub mod schedule;
pub mod sql;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use self::config::SourceConfig;

/// One person as the source holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceEntry {
    /// Where the entry lives, for messages and write-back: the DN, or the anchor column's
    /// value.
    pub locator: String,
    /// The value that identifies the entry for good (objectGUID as a GUID string, or the
    /// anchor column as text).
    pub anchor: String,
    /// Values by attribute or column name in lower case (several for a multi-valued LDAP
    /// attribute, none for an absent or NULL one).
    pub values: HashMap<String, Vec<String>>,
}

impl SourceEntry {
    /// The first value of an attribute (names compare case-insensitively).
    pub fn first(&self, attribute: &str) -> Option<&str> {
        self.values
            .get(&attribute.to_ascii_lowercase())
            .and_then(|v| v.first())
            .map(String::as_str)
    }
}

/// Where the last run stopped reading: opaque to everyone but the source that made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor(pub String);

/// What one read gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub entries: Vec<SourceEntry>,
    /// Where the next delta starts, once this batch is applied; `None` when the source
    /// cannot read deltas (every run reads everything).
    pub cursor: Option<Cursor>,
    /// Whether every entry in scope was read (first run, `--full`, or a cursor the source
    /// could not use, such as another domain controller's).
    pub full: bool,
    /// Entries in scope without a value for the anchor (their `anchor` is empty): they
    /// cannot be joined to an account, so they are not planned, only reported.
    pub without_anchor: Vec<SourceEntry>,
}

/// The portal's values to store in one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteBack {
    pub locator: String,
    /// (attribute or column, value), only those that differ, in the order ID,
    /// ExternalSyncID, Email: the first keeps the entry joined to its account, so an LDAP
    /// source writes it on its own before the others.
    pub values: Vec<(String, String)>,
}

/// A source failed as a whole (not one entry).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot connect to {target}: {reason}")]
    Connect { target: String, reason: String },
    #[error("{target} refused the credentials: {reason}")]
    Credentials { target: String, reason: String },
    #[error("reading {target}: {reason}")]
    Read { target: String, reason: String },
    #[error("writing to {target}: {reason}")]
    Write { target: String, reason: String },
    #[error("the source is not configured correctly: {0}")]
    Config(String),
}

/// A directory or database people are synced from.
#[allow(async_fn_in_trait)]
pub trait Source {
    /// The source for messages (URL without credentials, and base DN or table).
    fn describe(&self) -> String;
    /// Reads the entries in scope with these attributes (lower case): all of them when
    /// `since` is `None`, otherwise those changed since that cursor (or all, with
    /// [`Batch::full`] set, when the cursor cannot be used).
    async fn read(
        &mut self,
        attributes: &[String],
        since: Option<&Cursor>,
    ) -> Result<Batch, SourceError>;
    /// Why `anchor` cannot be an anchor of this source (text that is not a GUID, for
    /// `objectGUID`), or `None` when it can.
    fn anchor_problem(&self, anchor: &str) -> Option<String>;
    /// Reads the entries whose anchor is one of `anchors` (any text is taken literally).
    async fn read_anchors(
        &mut self,
        attributes: &[String],
        anchors: &[String],
    ) -> Result<Vec<SourceEntry>, SourceError>;
    /// Writes values back; one result per write, in order: `Err` says why that entry was
    /// not written (the others still are).
    async fn write_back(
        &mut self,
        writes: &[WriteBack],
    ) -> Result<Vec<Result<(), String>>, SourceError>;
}

/// The configured source, whichever kind it is.
pub enum AnySource {
    Ldap(ldap::LdapSource),
    Sql(sql::SqlSource),
}

impl AnySource {
    /// Connects to the source a `[[source]]` section describes.
    pub async fn open(config: &SourceConfig) -> Result<AnySource, SourceError> {
        match (&config.ldap, &config.sql) {
            (Some(l), _) => Ok(AnySource::Ldap(ldap::LdapSource::open(l).await?)),
            (None, Some(s)) => Ok(AnySource::Sql(sql::SqlSource::open(s).await?)),
            (None, None) => Err(SourceError::Config(format!(
                "source \"{}\" has neither [source.ldap] nor [source.sql]",
                config.name
            ))),
        }
    }
}

impl Source for AnySource {
    fn describe(&self) -> String {
        match self {
            AnySource::Ldap(s) => s.describe(),
            AnySource::Sql(s) => s.describe(),
        }
    }

    fn anchor_problem(&self, anchor: &str) -> Option<String> {
        match self {
            AnySource::Ldap(s) => s.anchor_problem(anchor),
            AnySource::Sql(s) => s.anchor_problem(anchor),
        }
    }

    async fn read(
        &mut self,
        attributes: &[String],
        since: Option<&Cursor>,
    ) -> Result<Batch, SourceError> {
        match self {
            AnySource::Ldap(s) => s.read(attributes, since).await,
            AnySource::Sql(s) => s.read(attributes, since).await,
        }
    }

    async fn read_anchors(
        &mut self,
        attributes: &[String],
        anchors: &[String],
    ) -> Result<Vec<SourceEntry>, SourceError> {
        match self {
            AnySource::Ldap(s) => s.read_anchors(attributes, anchors).await,
            AnySource::Sql(s) => s.read_anchors(attributes, anchors).await,
        }
    }

    async fn write_back(
        &mut self,
        writes: &[WriteBack],
    ) -> Result<Vec<Result<(), String>>, SourceError> {
        match self {
            AnySource::Ldap(s) => s.write_back(writes).await,
            AnySource::Sql(s) => s.write_back(writes).await,
        }
    }
}
