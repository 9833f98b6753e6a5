//! A SQL table or view (PostgreSQL, MariaDB/MySQL, SQLite) as a sync source.
//!
//! In: a `[source.sql]` section (URL, table, anchor, optional change column and condition).
//! Out: the rows as [`SourceEntry`] values (every column read as text, NULL as absent,
//! names in lower case, the anchor column's text as anchor and locator), a cursor on the
//! change column, and `UPDATE`s for write-back. Identifiers from the configuration are
//! checked, looked up in the database's catalog and quoted; every value is a bound
//! parameter; the `where` condition is configuration and is used as written.
//!
//! Delta reads: rows whose change column is at or above the highest value the last read
//! saw. `>=`, not `>`: rows sharing that last value are read again, and the sync drops the
//! unchanged ones by fingerprint, so a row committed late with a timestamp equal to the last
//! one read is never missed. Our own write-back moves the change column of the rows it
//! writes (a trigger or `ON UPDATE`); they come back once, unchanged by fingerprint, and are
//! dropped: no loop.

mod dialect;
mod write;

use std::collections::HashMap;
use std::time::Duration;

use futures_util::TryStreamExt;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Connection, Row};

use self::dialect::{Column, Dialect, TableName, check_identifier, passwords, redact};
use super::config::SqlConfig;
use super::{Batch, Cursor, Source, SourceEntry, SourceError, WriteBack};

/// Anchors looked up per statement.
const ANCHOR_BATCH: usize = 500;

pub struct SqlSource {
    conn: AnyConnection,
    /// Boxed: the connection is small, the description is not.
    shape: Box<Shape>,
}

/// Everything about the source but the connection.
struct Shape {
    dialect: Dialect,
    /// The URL without its password, and the table.
    target: String,
    /// Passwords to scrub from any message.
    secrets: Vec<String>,
    table: Relation,
    /// The table written back to (`write_table`, or `table`).
    write: Relation,
    anchor: Column,
    write_anchor: Column,
    change: Option<Column>,
    condition: Option<String>,
    timeout: Duration,
}

/// A table or view with its columns, as the catalog names them.
struct Relation {
    name: TableName,
    columns: Vec<Column>,
}

impl Relation {
    /// A column by name: the exact name first, otherwise case-insensitively.
    fn column(&self, name: &str) -> Result<&Column, String> {
        check_identifier(name)?;
        self.columns
            .iter()
            .find(|c| c.name == name)
            .or_else(|| {
                self.columns
                    .iter()
                    .find(|c| c.name.eq_ignore_ascii_case(name))
            })
            .ok_or_else(|| {
                let names: Vec<&str> = self.columns.iter().map(|c| c.name.as_str()).collect();
                format!(
                    "{} has no column \"{name}\" (it has {})",
                    self.name,
                    names.join(", ")
                )
            })
    }
}

/// The cursor's content: the change column's highest value read, as its text.
#[derive(Debug, Serialize, Deserialize)]
struct Position {
    column: String,
    value: String,
}

impl SqlSource {
    /// Connects, sets the session up (UTC), and looks the table, anchor and change column up
    /// in the catalog.
    pub async fn open(config: &SqlConfig) -> Result<SqlSource, SourceError> {
        let url = config.url.0.expose_secret();
        let dialect = Dialect::from_url(url).ok_or_else(|| {
            SourceError::Config(format!(
                "sql.url \"{}\" must start with postgres://, mysql://, mariadb:// or sqlite:",
                redact(url)
            ))
        })?;
        let table = TableName::parse(&config.table).map_err(SourceError::Config)?;
        let write_table = match &config.write_table {
            Some(t) => Some(TableName::parse(t).map_err(SourceError::Config)?),
            None => None,
        };
        for name in std::iter::once(&config.anchor).chain(&config.change_column) {
            check_identifier(name).map_err(SourceError::Config)?;
        }
        let target = format!("{} table {table}", redact(url));
        let secrets = passwords(url);
        let timeout = Duration::from_secs(config.timeout_seconds.max(1));

        sqlx::any::install_default_drivers();
        let scrub = |e: &dyn std::fmt::Display| scrubbed(&secrets, e);
        let mut conn = match tokio::time::timeout(timeout, AnyConnection::connect(url)).await {
            Err(_) => {
                return Err(SourceError::Connect {
                    target,
                    reason: format!("no answer within {} s", timeout.as_secs()),
                });
            }
            Ok(Err(e)) => return Err(connect_error(target, &e, scrub(&e))),
            Ok(Ok(conn)) => conn,
        };
        for statement in dialect.session_setup() {
            sqlx::query(*statement)
                .execute(&mut conn)
                .await
                .map_err(|e| SourceError::Connect {
                    target: target.clone(),
                    reason: scrub(&e),
                })?;
        }
        let catalog_error = |e: sqlx::Error| SourceError::Read {
            target: target.clone(),
            reason: format!("reading the catalog: {}", scrub(&e)),
        };
        let table = relation(&mut conn, dialect, &table)
            .await
            .map_err(catalog_error)?
            .map_err(SourceError::Config)?;
        let write = match &write_table {
            Some(w) => relation(&mut conn, dialect, w)
                .await
                .map_err(catalog_error)?
                .map_err(SourceError::Config)?,
            None => Relation {
                name: table.name.clone(),
                columns: table.columns.clone(),
            },
        };
        let anchor = table
            .column(&config.anchor)
            .map_err(SourceError::Config)?
            .clone();
        let write_anchor = write
            .column(&config.anchor)
            .map_err(SourceError::Config)?
            .clone();
        let change = match &config.change_column {
            Some(c) => Some(table.column(c).map_err(SourceError::Config)?.clone()),
            None => None,
        };
        Ok(SqlSource {
            conn,
            shape: Box::new(Shape {
                dialect,
                target,
                secrets,
                table,
                write,
                anchor,
                write_anchor,
                change,
                condition: config.condition.clone(),
                timeout,
            }),
        })
    }

    /// The rows in scope (the table, within `where`), for `check`: none means a sync would
    /// read nothing, which is probably a mistake in `table` or `where`.
    pub async fn count_in_scope(&mut self) -> Result<u64, SourceError> {
        let shape = &self.shape;
        let mut sql = format!(
            "SELECT COUNT(*) FROM {}",
            shape.dialect.quote_table(&shape.table.name)
        );
        if let Some(c) = &shape.condition {
            sql.push_str(&format!(" WHERE ({c})"));
        }
        let counted = tokio::time::timeout(
            shape.timeout,
            sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql)).fetch_one(&mut self.conn),
        )
        .await;
        match counted {
            Err(_) => Err(shape.read_error(&shape.timed_out())),
            Ok(Err(e)) => Err(shape.read_error(&e)),
            Ok(Ok(n)) => Ok(u64::try_from(n).unwrap_or_default()),
        }
    }
}

/// The columns of a table or view, by a case-insensitive name (an exact match wins).
async fn relation(
    conn: &mut AnyConnection,
    dialect: Dialect,
    name: &TableName,
) -> Result<Result<Relation, String>, sqlx::Error> {
    let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(dialect.columns_query())
        .bind(name.name.clone())
        .bind(name.schema.clone())
        .fetch_all(conn)
        .await?;
    let mut tables: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    tables.dedup();
    let chosen = match tables.iter().find(|t| **t == name.name) {
        Some(t) => *t,
        None if tables.len() == 1 => tables[0],
        None if tables.is_empty() => {
            return Ok(Err(format!(
                "no table or view \"{name}\" that this user can see (outside the default \
                 schema, give schema.name)"
            )));
        }
        None => {
            return Ok(Err(format!(
                "\"{name}\" could be any of {}: give the exact name",
                tables.join(", ")
            )));
        }
    };
    let columns = rows
        .iter()
        .filter(|r| r.0 == chosen)
        .map(|(_, column, declared)| {
            let declared = declared.clone().unwrap_or_default();
            Column {
                name: column.clone(),
                kind: dialect.kind(&declared),
                declared,
            }
        })
        .collect();
    Ok(Ok(Relation {
        name: TableName {
            schema: name.schema.clone(),
            name: chosen.to_owned(),
        },
        columns,
    }))
}

/// A connection error as a source error: refused credentials apart from the rest.
fn connect_error(target: String, e: &sqlx::Error, reason: String) -> SourceError {
    let refused = match e {
        sqlx::Error::Database(db) => {
            // PostgreSQL: invalid_authorization_specification, invalid_password.
            // MariaDB/MySQL: access denied (1045), to the database (1044), by plugin (1698).
            let code = db.code().unwrap_or_default();
            let mysql = db
                .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                .map(|m| m.number());
            code == "28000" || code == "28P01" || matches!(mysql, Some(1044 | 1045 | 1698))
        }
        _ => false,
    };
    match e {
        _ if refused => SourceError::Credentials { target, reason },
        sqlx::Error::Configuration(_) => SourceError::Config(format!("{target}: {reason}")),
        _ => SourceError::Connect { target, reason },
    }
}

/// An error's text with any password replaced by `***`.
fn scrubbed(secrets: &[String], e: &dyn std::fmt::Display) -> String {
    let mut text = e.to_string();
    for s in secrets {
        text = text.replace(s.as_str(), "***");
    }
    text
}

impl Shape {
    fn read_error(&self, e: &dyn std::fmt::Display) -> SourceError {
        SourceError::Read {
            target: self.target.clone(),
            reason: scrubbed(&self.secrets, e),
        }
    }

    fn write_error(&self, e: &dyn std::fmt::Display) -> SourceError {
        SourceError::Write {
            target: self.target.clone(),
            reason: scrubbed(&self.secrets, e),
        }
    }

    fn timed_out(&self) -> String {
        format!("no answer within {} s", self.timeout.as_secs())
    }

    /// `SELECT anchor, change, columns… FROM table`, every one as text, and the conditions
    /// (the configured one first).
    fn select(&self, columns: &[(String, Column)]) -> (String, Vec<String>) {
        let d = self.dialect;
        let mut list = vec![d.as_text(&d.quote(&self.anchor.name))];
        list.push(match &self.change {
            Some(c) => d.as_text(&d.quote(&c.name)),
            None => "NULL".to_owned(),
        });
        list.extend(columns.iter().map(|(_, c)| d.as_text(&d.quote(&c.name))));
        let sql = format!(
            "SELECT {} FROM {}",
            list.join(", "),
            d.quote_table(&self.table.name)
        );
        let conditions = self
            .condition
            .iter()
            .map(|c| format!("({c})"))
            .collect::<Vec<_>>();
        (sql, conditions)
    }

    /// The columns to read for these attribute names (lower case, as the mapping gives them).
    fn columns(&self, attributes: &[String]) -> Result<Vec<(String, Column)>, SourceError> {
        attributes
            .iter()
            .map(|a| {
                let column = self.table.column(a).map_err(SourceError::Config)?;
                Ok((a.to_ascii_lowercase(), column.clone()))
            })
            .collect()
    }

    /// The cursor's value when it was made on this change column; `None` means read all.
    fn since(&self, since: Option<&Cursor>) -> Option<String> {
        let change = self.change.as_ref()?;
        let position: Position = serde_json::from_str(&since?.0).ok()?;
        position
            .column
            .eq_ignore_ascii_case(&change.name)
            .then_some(position.value)
    }

    fn cursor(&self, value: String) -> Option<Cursor> {
        let column = self.change.as_ref()?.name.clone();
        serde_json::to_string(&Position { column, value })
            .ok()
            .map(Cursor)
    }
}

/// One row as an entry, and its change column's text.
fn entry(
    row: &AnyRow,
    columns: &[(String, Column)],
) -> Result<(SourceEntry, Option<String>), sqlx::Error> {
    let anchor: Option<String> = row.try_get(0)?;
    let change: Option<String> = row.try_get(1)?;
    let mut values = HashMap::with_capacity(columns.len());
    for (i, (name, _)) in columns.iter().enumerate() {
        let value: Option<String> = row.try_get(i + 2)?;
        if let Some(v) = value {
            values.insert(name.clone(), vec![v]);
        }
    }
    // A row without an anchor keeps an empty one: validation refuses it with its line.
    let anchor = anchor.unwrap_or_default();
    Ok((
        SourceEntry {
            locator: anchor.clone(),
            anchor,
            values,
        },
        change,
    ))
}

/// Runs a SELECT and collects its rows as they arrive, waiting at most `timeout` for each;
/// returns the entries and the last non-NULL change value (the highest, as rows come
/// ordered by it).
async fn fetch_entries(
    conn: &mut AnyConnection,
    shape: &Shape,
    sql: String,
    params: Vec<String>,
    columns: &[(String, Column)],
    entries: &mut Vec<SourceEntry>,
) -> Result<Option<String>, SourceError> {
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for p in params {
        query = query.bind(p);
    }
    let mut rows = query.fetch(conn);
    let mut highest = None;
    loop {
        let row = match tokio::time::timeout(shape.timeout, rows.try_next()).await {
            Err(_) => return Err(shape.read_error(&shape.timed_out())),
            Ok(Err(e)) => return Err(shape.read_error(&e)),
            Ok(Ok(None)) => break,
            Ok(Ok(Some(row))) => row,
        };
        let (e, change) = entry(&row, columns).map_err(|e| shape.read_error(&e))?;
        if change.is_some() {
            highest = change;
        }
        entries.push(e);
    }
    Ok(highest)
}

impl Source for SqlSource {
    fn describe(&self) -> String {
        self.shape.target.clone()
    }

    async fn read(
        &mut self,
        attributes: &[String],
        since: Option<&Cursor>,
    ) -> Result<Batch, SourceError> {
        let shape = &self.shape;
        let d = shape.dialect;
        let columns = shape.columns(attributes)?;
        let from = shape.since(since);
        let (mut sql, mut conditions) = shape.select(&columns);
        let mut params = Vec::new();
        if let (Some(change), Some(value)) = (&shape.change, &from) {
            // `>=`, not `>`: a row committed late with the same value as the last one read
            // is still read; rows read again unchanged are dropped by their fingerprint.
            params.push(value.clone());
            conditions.push(d.at_least(change, &d.placeholder(params.len())));
        }
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        let anchor = d.quote(&shape.anchor.name);
        match &shape.change {
            Some(c) => sql.push_str(&format!(" ORDER BY {}, {anchor}", d.quote(&c.name))),
            None => sql.push_str(&format!(" ORDER BY {anchor}")),
        }
        let mut entries = Vec::new();
        let highest =
            fetch_entries(&mut self.conn, shape, sql, params, &columns, &mut entries).await?;
        // Nothing read since the cursor: the next delta starts where this one did.
        let cursor = match highest.or(from.clone()) {
            Some(value) => shape.cursor(value),
            None => None,
        };
        Ok(Batch {
            entries,
            cursor,
            full: from.is_none(),
            // A row without an anchor keeps an empty one: validation refuses it.
            without_anchor: Vec::new(),
        })
    }

    fn anchor_problem(&self, anchor: &str) -> Option<String> {
        (!self.shape.anchor.may_hold(anchor)).then(|| {
            format!(
                "\"{anchor}\" cannot be a value of the anchor column {}",
                self.shape.anchor.name
            )
        })
    }

    /// The rows with these anchors that are also within the configured `where`.
    async fn read_anchors(
        &mut self,
        attributes: &[String],
        anchors: &[String],
    ) -> Result<Vec<SourceEntry>, SourceError> {
        let shape = &self.shape;
        let d = shape.dialect;
        let columns = shape.columns(attributes)?;
        let mut wanted: Vec<&String> = anchors
            .iter()
            .filter(|a| shape.anchor.may_hold(a))
            .collect();
        wanted.sort();
        wanted.dedup();
        let mut entries = Vec::new();
        for batch in wanted.chunks(ANCHOR_BATCH) {
            let (mut sql, mut conditions) = shape.select(&columns);
            let equal: Vec<String> = (1..=batch.len())
                .map(|i| d.equals(&shape.anchor, &d.placeholder(i)))
                .collect();
            conditions.push(format!("({})", equal.join(" OR ")));
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
            sql.push_str(&format!(" ORDER BY {}", d.quote(&shape.anchor.name)));
            let params = batch.iter().map(|a| (*a).clone()).collect();
            fetch_entries(&mut self.conn, shape, sql, params, &columns, &mut entries).await?;
        }
        Ok(entries)
    }

    async fn write_back(
        &mut self,
        writes: &[WriteBack],
    ) -> Result<Vec<Result<(), String>>, SourceError> {
        self.write_all(writes).await
    }
}
