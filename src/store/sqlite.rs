//! SQLite files as this service keeps them: opened private to the service's owner, for
//! several processes at once, and brought up to date by an ordered list of schema versions.
//!
//! In: a path, a migration list. Out: a pool (one connection) whose schema has every
//! version of the list. Used by the state database and the embedded directory alike.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

/// Where a database notes the versions it has.
pub const VERSIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    description TEXT NOT NULL
)";

/// One schema version: its number, what it adds, and its statements.
pub type Migration = (i64, &'static str, &'static str);

#[derive(Debug, thiserror::Error)]
pub enum SqliteError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A schema version left rows that refer to rows that are not there.
    #[error("after schema version {version}, {rows} rows refer to rows that are not there")]
    ForeignKeys { version: i64, rows: usize },
}

/// Opens an SQLite file for several processes at once: WAL, a generous busy timeout.
///
/// Durability: `synchronous = FULL`, so a commit returns only once its WAL frames are on
/// disk. Apply depends on an order across two files (state, then directory, then state
/// again): a run's journal must be durable before the directory write it describes, and a
/// directory batch durable before its outcome is recorded as done. With `NORMAL`, SQLite
/// syncs the WAL only at checkpoints: the order holds within one file and after a killed
/// process (the operating system still writes the data), but a power cut could keep a later
/// commit of one file and lose an earlier one of the other. Apply commits in batches of
/// thousands of operations, so a sync per commit costs little.
pub async fn open(path: &Path) -> Result<SqlitePool, SqliteError> {
    let io = |p: &Path| {
        let path = p.to_owned();
        move |source| SqliteError::Io { path, source }
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
        && !parent.exists()
    {
        // The folder holds personal data and connector keys: the service's owner only.
        std::fs::create_dir_all(parent).map_err(io(parent))?;
        restrict(parent, 0o700).map_err(io(parent))?;
    }
    if !path.exists() {
        // Created empty and private before SQLite opens it; its -wal and -shm files take the
        // database file's permissions.
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .or_else(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => std::fs::File::open(path),
                _ => Err(e),
            })
            .map_err(io(path))?;
        restrict(path, 0o600).map_err(io(path))?;
    }
    let options = SqliteConnectOptions::from_str("sqlite:")?
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(120))
        // 64 MiB of page cache (the default is 2 MiB): large look-ups and batches of writes
        // touch far more index pages than that, and re-reading them costs system time.
        .pragma("cache_size", "-65536")
        .foreign_keys(true);
    Ok(SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await?)
}

#[cfg(unix)]
fn restrict(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn restrict(_: &Path, _: u32) -> std::io::Result<()> {
    Ok(())
}

/// Applies the schema versions a database lacks, in the list's order, in one transaction;
/// returns the versions applied. The versions applied are noted in `schema_migrations`.
///
/// A version may rebuild a table others refer to (SQLite's way to change a column), so
/// foreign keys are off while versions are applied and checked once they are: a version
/// that leaves a dangling reference is refused and nothing of the upgrade stays.
pub async fn migrate(pool: &SqlitePool, migrations: &[Migration]) -> Result<Vec<i64>, SqliteError> {
    // The pool has one connection, so the pragma holds for the transaction (inside one,
    // SQLite ignores it).
    sqlx::query("PRAGMA foreign_keys = OFF")
        .execute(pool)
        .await?;
    let applied = apply_missing(pool, migrations).await;
    sqlx::query("PRAGMA foreign_keys = ON")
        .execute(pool)
        .await?;
    applied
}

async fn apply_missing(
    pool: &SqlitePool,
    migrations: &[Migration],
) -> Result<Vec<i64>, SqliteError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    sqlx::raw_sql(VERSIONS_TABLE).execute(&mut *tx).await?;
    let present: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations")
        .fetch_all(&mut *tx)
        .await?;
    let mut applied = Vec::new();
    for (version, description, sql) in migrations {
        if present.contains(version) {
            continue;
        }
        sqlx::raw_sql(*sql).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO schema_migrations (version, description) VALUES (?, ?)")
            .bind(version)
            .bind(*description)
            .execute(&mut *tx)
            .await?;
        applied.push(*version);
    }
    if let Some(&version) = applied.last() {
        let broken: Vec<(String,)> = sqlx::query_as("PRAGMA foreign_key_check")
            .fetch_all(&mut *tx)
            .await?;
        if !broken.is_empty() {
            return Err(SqliteError::ForeignKeys {
                version,
                rows: broken.len(),
            });
        }
    }
    tx.commit().await?;
    Ok(applied)
}
