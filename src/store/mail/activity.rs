//! When each organisation last sent something, and the reminders of quiet organisations.
//!
//! An organisation's last activity is its latest accepted file (a stored submission), run
//! (a file, sync or SCIM write applied, held or refused by an operator) or finished sync of
//! a source that speaks for it. An organisation that never sent anything is quiet from when
//! the service first saw it in its configuration.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::outbox::{QueuedMail, enqueue};
use super::{MailStore, StoreError};

/// One organisation's quiet period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activity {
    /// When the service first saw the organisation.
    pub first_seen: DateTime<Utc>,
    /// Its latest accepted file, run or sync, if any.
    pub last: Option<DateTime<Utc>>,
    /// The start of the quiet period its last reminder was about.
    pub reminded_since: Option<DateTime<Utc>>,
}

impl Activity {
    /// Since when the organisation has been quiet.
    pub fn quiet_since(&self) -> DateTime<Utc> {
        self.last.unwrap_or(self.first_seen)
    }
}

fn parse(what: &str, value: Option<String>) -> Result<Option<DateTime<Utc>>, StoreError> {
    value
        .map(|v| {
            DateTime::parse_from_rfc3339(&v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| StoreError::Corrupt(format!("{what} {v:?}: {e}")))
        })
        .transpose()
}

impl MailStore {
    /// The organisation's activity; records it as seen now when it is new. `sources` are the
    /// sync sources that speak for it.
    pub async fn activity(
        &self,
        organisation: &str,
        sources: &[String],
        now: DateTime<Utc>,
    ) -> Result<Activity, StoreError> {
        sqlx::query(
            "INSERT INTO organisation_reminders (organisation, first_seen) VALUES (?, ?)
             ON CONFLICT (organisation) DO NOTHING",
        )
        .bind(organisation)
        .bind(now.to_rfc3339())
        .execute(&self.pool)
        .await?;
        let row = sqlx::query(
            "SELECT first_seen, reminded_since FROM organisation_reminders WHERE organisation = ?",
        )
        .bind(organisation)
        .fetch_one(&self.pool)
        .await?;
        let first_seen = parse("first_seen", Some(row.try_get("first_seen")?))?.unwrap_or(now);
        let reminded_since = parse("reminded_since", row.try_get("reminded_since")?)?;
        let mut last: Option<DateTime<Utc>> = None;
        let mut later = |t: Option<DateTime<Utc>>| {
            if let Some(t) = t {
                last = Some(last.map_or(t, |l| l.max(t)));
            }
        };
        // Timestamps are RFC 3339 in UTC, written by this service: each column's maximum as
        // text is its latest; the columns are compared once parsed.
        let submitted: Option<String> = sqlx::query_scalar(
            "SELECT max(received_at) FROM mail_submissions WHERE organisation = ?",
        )
        .bind(organisation)
        .fetch_one(&self.pool)
        .await?;
        later(parse("received_at", submitted)?);
        let ran: Option<String> =
            sqlx::query_scalar("SELECT max(created_at) FROM runs WHERE organisation = ?")
                .bind(organisation)
                .fetch_one(&self.pool)
                .await?;
        later(parse("created_at", ran)?);
        for source in sources {
            let synced: Option<String> =
                sqlx::query_scalar("SELECT last_finished FROM sync_sources WHERE source = ?")
                    .bind(source)
                    .fetch_optional(&self.pool)
                    .await?
                    .flatten();
            later(parse("last_finished", synced)?);
        }
        Ok(Activity {
            first_seen,
            last,
            reminded_since,
        })
    }

    /// Queues the reminder e-mails of a quiet period and records that period as reminded of,
    /// in one transaction: a stop between the two neither loses nor repeats a reminder.
    pub async fn reminded(
        &self,
        organisation: &str,
        quiet_since: DateTime<Utc>,
        mails: &[QueuedMail],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        enqueue(&mut tx, mails, now, None).await?;
        sqlx::query(
            "UPDATE organisation_reminders SET reminded_at = ?, reminded_since = ?
             WHERE organisation = ?",
        )
        .bind(now.to_rfc3339())
        .bind(quiet_since.to_rfc3339())
        .bind(organisation)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
