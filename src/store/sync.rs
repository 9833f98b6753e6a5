//! What a sync remembers between runs, in the state database: each source's cursor (where
//! the next delta starts), when it last ran, and a fingerprint of every entry as last applied.
//!
//! In: a source name, cursors and fingerprints (computed by the caller). Out: the same, read
//! back. The cursor and the fingerprints move together, in one transaction, and only once a
//! run's changes are applied and written back: a run that stops half way is read again.

use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use sqlx::SqlitePool;

use super::{StateDb, StateError};
use crate::sources::Cursor;

#[derive(Debug, Clone)]
pub struct SyncStore {
    pool: SqlitePool,
}

impl SyncStore {
    pub(super) fn new(pool: SqlitePool) -> SyncStore {
        SyncStore { pool }
    }

    /// Opens the state database in the state folder (see [`StateDb::open`]) for its sync
    /// tables alone.
    pub async fn open(state_dir: &Path) -> Result<SyncStore, StateError> {
        Ok(StateDb::open(state_dir).await?.sync())
    }

    /// The cursor the last finished run left, if any.
    pub async fn cursor(&self, source: &str) -> Result<Option<Cursor>, StateError> {
        let cursor: Option<Option<String>> =
            sqlx::query_scalar("SELECT cursor FROM sync_sources WHERE source = ?")
                .bind(source)
                .fetch_optional(&self.pool)
                .await?;
        Ok(cursor.flatten().map(Cursor))
    }

    /// When a sync of the source last started (for the schedule).
    pub async fn last_started(&self, source: &str) -> Result<Option<DateTime<Utc>>, StateError> {
        let at: Option<Option<String>> =
            sqlx::query_scalar("SELECT last_started FROM sync_sources WHERE source = ?")
                .bind(source)
                .fetch_optional(&self.pool)
                .await?;
        Ok(at.flatten().and_then(|t| t.parse().ok()))
    }

    pub async fn started(&self, source: &str, now: DateTime<Utc>) -> Result<(), StateError> {
        sqlx::query(
            "INSERT INTO sync_sources (source, last_started) VALUES (?, ?)
             ON CONFLICT (source) DO UPDATE SET last_started = excluded.last_started",
        )
        .bind(source)
        .bind(now.to_rfc3339())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every entry's fingerprint as last applied, by anchor.
    pub async fn fingerprints(&self, source: &str) -> Result<HashMap<String, String>, StateError> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT anchor, fingerprint FROM sync_seen WHERE source = ?")
                .bind(source)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().collect())
    }

    /// Records a finished run: the new fingerprints and the cursor, together. `cursor`
    /// `None` keeps the stored one.
    pub async fn finished(
        &self,
        source: &str,
        cursor: Option<&Cursor>,
        fingerprints: &[(String, String)],
        now: DateTime<Utc>,
    ) -> Result<(), StateError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        for chunk in fingerprints.chunks(400) {
            let mut q =
                sqlx::QueryBuilder::new("INSERT INTO sync_seen (source, anchor, fingerprint) ");
            q.push_values(chunk, |mut b, (anchor, fp)| {
                b.push_bind(source).push_bind(anchor).push_bind(fp);
            });
            q.push(
                " ON CONFLICT (source, anchor) DO UPDATE SET fingerprint = excluded.fingerprint",
            );
            q.build().execute(&mut *tx).await?;
        }
        sqlx::query(
            "INSERT INTO sync_sources (source, cursor, last_finished) VALUES (?, ?, ?)
             ON CONFLICT (source) DO UPDATE SET
                cursor = COALESCE(excluded.cursor, sync_sources.cursor),
                last_finished = excluded.last_finished",
        )
        .bind(source)
        .bind(cursor.map(|c| c.0.as_str()))
        .bind(now.to_rfc3339())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
