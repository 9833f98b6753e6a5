//! Write-back to the SQL source: one `UPDATE … WHERE anchor = …` per row, in a
//! transaction per batch of rows.
//!
//! In: the portal's values per row (column names in lower case, checked against the write
//! table's columns). Out: one outcome per row: a row the UPDATE does not find, or a value the
//! database refuses, is that row's error; a broken connection stops the whole write-back.

use sqlx::AnyConnection;
use sqlx::{AssertSqlSafe, Connection};

use super::{Shape, SqlSource, scrubbed};
use crate::sources::{SourceError, WriteBack};

/// Write-backs per transaction.
const WRITE_BATCH: usize = 200;

/// Why an UPDATE gave no outcome for its row.
enum Failure {
    /// The database refused the statement (a value its column cannot hold, a constraint):
    /// the transaction it was in is spoiled, the connection is fine.
    Refused(String),
    /// The connection failed or timed out: the whole write-back stops.
    Broken(String),
}

/// One write-back's UPDATE: `Ok(Err(why))` when there is no row to write to.
async fn update(
    conn: &mut AnyConnection,
    shape: &Shape,
    write: &WriteBack,
) -> Result<Result<(), String>, Failure> {
    let d = shape.dialect;
    let anchor = &shape.write_anchor;
    if write.locator.is_empty() {
        return Ok(Err("the row has no anchor to write back to".to_owned()));
    }
    let not_found = || {
        format!(
            "no row of {} has {} = \"{}\"",
            shape.write.name, anchor.name, write.locator
        )
    };
    if !anchor.may_hold(&write.locator) {
        return Ok(Err(not_found()));
    }
    let mut sets = Vec::with_capacity(write.values.len());
    for (i, (attribute, _)) in write.values.iter().enumerate() {
        let column = shape.write.column(attribute).map_err(Failure::Broken)?;
        sets.push(d.assign(column, &d.placeholder(i + 1)));
    }
    let sql = format!(
        "UPDATE {} SET {} WHERE {}",
        d.quote_table(&shape.write.name),
        sets.join(", "),
        d.equals(anchor, &d.placeholder(write.values.len() + 1))
    );
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for (_, value) in &write.values {
        query = query.bind(value.clone());
    }
    query = query.bind(write.locator.clone());
    match tokio::time::timeout(shape.timeout, query.execute(conn)).await {
        Err(_) => Err(Failure::Broken(shape.timed_out())),
        Ok(Err(e @ sqlx::Error::Database(_))) => {
            Err(Failure::Refused(scrubbed(&shape.secrets, &e)))
        }
        Ok(Err(e)) => Err(Failure::Broken(scrubbed(&shape.secrets, &e))),
        Ok(Ok(done)) if done.rows_affected() == 0 => Ok(Err(not_found())),
        Ok(Ok(_)) => Ok(Ok(())),
    }
}

impl SqlSource {
    /// Writes one batch in a transaction; `None` when the database refused one of its
    /// statements (the transaction is rolled back and nothing of the batch is written).
    async fn write_batch(
        &mut self,
        writes: &[WriteBack],
    ) -> Result<Option<Vec<Result<(), String>>>, SourceError> {
        let shape = &self.shape;
        let mut tx = tokio::time::timeout(shape.timeout, self.conn.begin())
            .await
            .map_err(|_| shape.write_error(&shape.timed_out()))?
            .map_err(|e| shape.write_error(&e))?;
        let mut outcomes = Vec::with_capacity(writes.len());
        for w in writes {
            match update(&mut tx, shape, w).await {
                Ok(outcome) => outcomes.push(outcome),
                Err(Failure::Refused(_)) => {
                    tx.rollback().await.map_err(|e| shape.write_error(&e))?;
                    return Ok(None);
                }
                Err(Failure::Broken(reason)) => return Err(shape.write_error(&reason)),
            }
        }
        tokio::time::timeout(shape.timeout, tx.commit())
            .await
            .map_err(|_| shape.write_error(&shape.timed_out()))?
            .map_err(|e| shape.write_error(&e))?;
        Ok(Some(outcomes))
    }
}

impl SqlSource {
    /// Every write-back, in order, one outcome each.
    pub(super) async fn write_all(
        &mut self,
        writes: &[WriteBack],
    ) -> Result<Vec<Result<(), String>>, SourceError> {
        // Columns the table lacks are a configuration error, before anything is written.
        for w in writes {
            for (attribute, _) in &w.values {
                self.shape
                    .write
                    .column(attribute)
                    .map_err(SourceError::Config)?;
            }
        }
        let mut results = Vec::with_capacity(writes.len());
        for batch in writes.chunks(WRITE_BATCH) {
            if let Some(outcomes) = self.write_batch(batch).await? {
                results.extend(outcomes);
                continue;
            }
            // The database refused a statement of the batch: one at a time, so each row
            // gets its own answer and the others are still written.
            let shape = &self.shape;
            for w in batch {
                results.push(match update(&mut self.conn, shape, w).await {
                    Ok(outcome) => outcome,
                    Err(Failure::Refused(why)) => Err(why),
                    Err(Failure::Broken(reason)) => return Err(shape.write_error(&reason)),
                });
            }
        }
        Ok(results)
    }
}
