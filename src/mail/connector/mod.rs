//! The e-mail connector's passes: intake (mailbox → stored submission → acknowledgement),
//! the nightly step (latest submission per organisation → pipeline → result e-mail), the
//! follow-up of held runs decided since, and the outbox flush. Intake also takes the
//! administrators' `CONFIRM`/`CANCEL` replies (`command`), which approve or drop a held run
//! or withdraw a waiting file by the one-time code the held notice or acknowledgement carries.
//!
//! In: the configuration, a [`Mailbox`], an [`Outbox`], the directory and state, and the
//! time (passed in). Out: summaries of each pass; every decision as rows in the
//! [`MailStore`] and e-mails in its queue. Order of intake for one message: read → decide →
//! store message, submission and reply in one transaction → file the message in the
//! mailbox. A stop before the transaction leaves the message in the inbox to be read again;
//! a stop after it finds the message known (by mailbox key or Message-ID) and only files it.

mod command;
pub(crate) mod intake;
mod nightly;
mod quiet;

pub use quiet::Reminded;

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::compose::{ComposeError, Composer, Reply};
use super::mailbox::{Fetched, Mailbox, MailboxError};
use super::message::{self, Inbound, Refusal};
use super::outbox::{self, Flushed, Outbox, OutboxError};
use super::schedule::Schedule;
use super::verify::{Verdict, Verifier};
use crate::apply::{self, ApplyError, Context, Minter, Planned};
use crate::config::Config;
use crate::directory::Directory;
use crate::formats::{self, Submission};
use crate::model::OdsCode;
use crate::pipeline;
use crate::plan::{Counts, Plan};
use crate::report::{self, ReportRows, RowReport, RowResultKind};
use crate::store::mail::{
    CodePurpose, Folder, MailStore, NewCode, NewMessage, NewSubmission, StoreError,
    StoredSubmission, SubmissionStatus, codes,
};
use crate::store::outbox::QueuedMail;
use crate::store::{RunStatus, StateDb, StateError};
use crate::validate::{self, RowOutcome, RowResult, Rules};

/// Refused lines listed in an acknowledgement's body (all of them are in its CSV).
const LINES_IN_BODY: usize = 50;

#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Mailbox(#[from] MailboxError),
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error(transparent)]
    Compose(#[from] ComposeError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("writing a report: {0}")]
    Report(#[from] csv::Error),
    #[error("submission {no} can no longer be read: {reason}")]
    Stored { no: i64, reason: String },
}

impl ConnectorError {
    /// Whether the error is the service's (its state database, mailbox or outbox), so that
    /// the pass stops, rather than one message's (its reply cannot be built), so that the
    /// pass goes on without it.
    pub fn stops_intake(&self) -> bool {
        matches!(
            self,
            ConnectorError::Store(_)
                | ConnectorError::Mailbox(_)
                | ConnectorError::Outbox(_)
                | ConnectorError::State(_)
        )
    }
}

/// What an intake pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntakeSummary {
    /// Files taken, and replies whose command was acted on (`CONFIRM`/`CANCEL`).
    pub accepted: usize,
    /// Messages refused, and replies whose command was refused or not acted on.
    pub rejected: usize,
    /// Messages found already stored (a stop between storing and filing), now filed.
    pub refiled: usize,
    /// Messages that could not be handled this time (tried again, up to `max_attempts`).
    pub failed: usize,
    /// Messages whose sender could not be verified now (DNS did not answer); left in the
    /// mailbox for the next pass.
    pub deferred: usize,
}

/// What a nightly step did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NightlySummary {
    /// (organisation, run, counts) of each applied run.
    pub applied: Vec<(String, String, Counts)>,
    /// (organisation, run) of each held run.
    pub held: Vec<(String, String)>,
    pub superseded: usize,
    /// (organisation, error) of submissions that could not be run; they stay for next time.
    pub failed: Vec<(String, String)>,
}

/// One deployment's connector.
pub struct Connector<'a, D> {
    pub config: &'a Config,
    pub rules: &'a Rules,
    pub schedule: Schedule,
    pub composer: Composer,
    /// Verifies each message's sender (`[mail] sender_verification`).
    pub verifier: Verifier,
    pub store: &'a MailStore,
    pub directory: &'a D,
    pub state: &'a StateDb,
}

/// A message that passed the checks.
struct Accepted<'m> {
    sender: String,
    organisation: OdsCode,
    file: &'m message::Attachment,
    submission: Submission,
    /// The file's rows as validated.
    results: Vec<RowResult>,
    rows: usize,
    refused: Vec<RowReport>,
}

impl<'a, D: Directory> Connector<'a, D> {
    pub(super) fn local(&self, t: DateTime<Utc>) -> String {
        t.with_timezone(&self.schedule.zone)
            .format("%-d %B %Y %H:%M %Z")
            .to_string()
    }

    /// A new one-time code and the time it stops working.
    pub(super) fn new_code(
        &self,
        minter: &mut dyn Minter,
        now: DateTime<Utc>,
    ) -> (String, DateTime<Utc>) {
        let days = i64::from(self.config.mail.confirm_code_days.max(1));
        (
            codes::mint(minter.code_bytes()),
            now + chrono::Duration::days(days),
        )
    }

    pub(super) fn organisation_name(&self, org: &str) -> Option<String> {
        self.config.organisation(org).and_then(|o| o.name.clone())
    }

    pub(super) fn context<'c>(&'c self, progress: &'c dyn Fn(u64, u64)) -> Context<'c, D> {
        Context {
            directory: self.directory,
            state: self.state,
            passwords: crate::deployment::password_file(self.config),
            progress,
        }
    }

    pub(super) fn reread(
        &self,
        s: &StoredSubmission,
    ) -> Result<(Submission, Vec<RowResult>), ConnectorError> {
        let submission =
            formats::read(&s.file, &self.rules.limits).map_err(|e| ConnectorError::Stored {
                no: s.no,
                reason: e.to_string(),
            })?;
        let results = validate::validate(&submission, self.rules);
        Ok((submission, results))
    }

    /// Sends the queued e-mails, then the operators' notices of those refused for good in
    /// this pass (in the same pass: a cron `run --once` may not come back for hours).
    pub async fn flush<O: Outbox>(
        &self,
        outbox: &O,
        now: DateTime<Utc>,
        due_only: bool,
    ) -> Result<Flushed, ConnectorError> {
        let from = self.composer.from_address();
        let cap = self.config.outbox.max_retry_seconds;
        let mut flushed = outbox::flush(self.store, outbox, &from, now, due_only, cap).await?;
        if self.tell_operators(now).await? > 0 && !flushed.stopped {
            // Only what is due: an e-mail that just failed with 4xx waits for its retry.
            let notices = outbox::flush(self.store, outbox, &from, now, true, cap).await?;
            flushed.sent += notices.sent;
            flushed.failed += notices.failed;
            flushed.waiting += notices.waiting;
            flushed.stopped = notices.stopped;
            flushed.error = notices.error.or(flushed.error);
            self.tell_operators(now).await?;
        }
        Ok(flushed)
    }

    /// Applies the retention periods of `[mail]` to the stored messages and files.
    pub async fn purge(&self, now: DateTime<Utc>) -> Result<u64, ConnectorError> {
        let m = &self.config.mail;
        let purged = self
            .store
            .purge(now, m.keep_processed_days, m.keep_rejected_days)
            .await?;
        if purged > 0 {
            tracing::info!(
                messages = purged,
                "raw messages past their retention forgotten"
            );
        }
        Ok(purged)
    }

    /// Tells the operators, once per e-mail, of each e-mail that failed for good; returns how
    /// many notices it queued. A notice that itself fails is not reported again (that would
    /// loop).
    async fn tell_operators(&self, now: DateTime<Utc>) -> Result<usize, ConnectorError> {
        let mut queued = 0;
        for failed in self.store.failed_untold().await? {
            let operators = &self.config.mail.operators;
            let notices = if failed.kind == "undelivered" || operators.is_empty() {
                Vec::new()
            } else {
                vec![self.composer.compose(
                    &Reply {
                        kind: "undelivered",
                        to: operators.clone(),
                        subject: format!("Not delivered: {}", failed.subject),
                        context: json!({
                            "id": failed.id,
                            "kind": failed.kind,
                            "recipients": failed.recipients.join(", "),
                            "subject": failed.subject,
                            "created_at": self.local(parse_time(&failed.created_at)),
                            "error": failed.last_error,
                        }),
                        attachment: None,
                        in_reply_to: None,
                        organisation: failed.organisation.clone(),
                    },
                    now,
                )?]
            };
            queued += notices.len();
            self.store.told(failed.id, &notices, now).await?;
            tracing::warn!(
                email = failed.id,
                kind = %failed.kind,
                operators_told = !notices.is_empty(),
                "an e-mail failed for good"
            );
        }
        Ok(queued)
    }
}

/// Files a stored message and notes it.
async fn file<M: Mailbox>(
    mailbox: &mut M,
    store: &MailStore,
    key: &str,
    folder: Folder,
) -> Result<(), ConnectorError> {
    match mailbox.file(key, folder).await {
        Ok(()) => {}
        // Filed already (by us before a stop, or by hand): nothing left to do.
        Err(MailboxError::NoSuchMessage(_)) => {}
        Err(e) => return Err(e.into()),
    }
    store.filed(key).await?;
    Ok(())
}

/// The refused rows of an acknowledgement: validation's, and rows for another organisation.
pub fn refused_rows(results: &[RowResult], organisation: &OdsCode) -> Vec<RowReport> {
    let mut refused = report::validation_rows(results);
    for r in results {
        if let RowOutcome::Valid(p) = &r.outcome
            && p.organisation() != organisation.as_str()
        {
            refused.push(RowReport {
                line: r.line,
                result: RowResultKind::Rejected,
                message: crate::reconcile::outside_scope(
                    &OdsCode::new_unchecked(p.organisation()),
                    &format!("this file is for {organisation}"),
                ),
            });
        }
    }
    refused.sort_by_key(|r| r.line);
    refused
}

fn parse_time(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

/// A file name without its extension, safe in another file name.
fn stem(name: &str) -> String {
    let stem = name.rsplit_once('.').map_or(name, |(s, _)| s);
    stem.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
