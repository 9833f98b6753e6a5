//! The e-mail connector's passes: intake (mailbox → stored submission → acknowledgement),
//! the nightly step (latest submission per organisation → pipeline → result e-mail), the
//! follow-up of held runs decided since, and the outbox flush.
//!
//! In: the configuration, a [`Mailbox`], an [`Outbox`], the directory and state, and the
//! time (passed in). Out: summaries of each pass; every decision as rows in the
//! [`MailStore`] and e-mails in its queue. Order of intake for one message: read → decide →
//! store message, submission and reply in one transaction → file the message in the
//! mailbox. A stop before the transaction leaves the message in the inbox to be read again;
//! a stop after it finds the message known (by mailbox key or Message-ID) and only files it.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::compose::{ComposeError, Composer, Reply};
use super::mailbox::{Fetched, Mailbox, MailboxError};
use super::message::{self, Inbound, Refusal};
use super::outbox::{self, Flushed, Outbox, OutboxError};
use super::schedule::Schedule;
use super::store::{
    Folder, MailStore, NewMessage, NewSubmission, QueuedMail, StoreError, StoredSubmission,
    SubmissionStatus,
};
use crate::apply::{self, ApplyError, Context, Minter};
use crate::config::Config;
use crate::directory::Directory;
use crate::formats::{self, Submission};
use crate::model::OdsCode;
use crate::pipeline;
use crate::plan::{Counts, Plan};
use crate::reconcile::Policy;
use crate::report::{self, ReportRows, RowReport, RowResultKind};
use crate::state::{RunStatus, StateDb, StateError};
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

/// What an intake pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntakeSummary {
    pub accepted: usize,
    pub rejected: usize,
    /// Messages found already stored (a stop between storing and filing), now filed.
    pub refiled: usize,
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
    rows: usize,
    refused: Vec<RowReport>,
}

impl<'a, D: Directory> Connector<'a, D> {
    /// Reads every message in the inbox once.
    pub async fn intake<M: Mailbox>(
        &self,
        mailbox: &mut M,
        now: DateTime<Utc>,
    ) -> Result<IntakeSummary, ConnectorError> {
        let mut summary = IntakeSummary::default();
        for fetched in mailbox.fetch().await? {
            self.take(mailbox, fetched, now, &mut summary).await?;
        }
        Ok(summary)
    }

    async fn take<M: Mailbox>(
        &self,
        mailbox: &mut M,
        f: Fetched,
        now: DateTime<Utc>,
        summary: &mut IntakeSummary,
    ) -> Result<(), ConnectorError> {
        let msg = message::parse(&f.raw);
        if let Some(folder) = self.store.known(&f.key, &msg.message_id).await? {
            file(mailbox, self.store, &f.key, folder).await?;
            summary.refiled += 1;
            tracing::info!(key = %f.key, message_id = %msg.message_id, folder = folder.as_str(),
                "message already stored; filed");
            return Ok(());
        }
        let sender = msg.from.clone();
        let new_message = |folder, reason| NewMessage {
            mailbox_key: &f.key,
            message_id: &msg.message_id,
            sender: msg.from.as_deref(),
            subject: &msg.subject,
            sent_date: msg.date.as_deref(),
            raw: &f.raw,
            folder,
            reason,
        };
        match self.decide(&msg) {
            Ok(a) => {
                let valid = a.rows - a.refused.len();
                let ack = self.acknowledgement(&msg, &a, now)?;
                let sub = NewSubmission {
                    organisation: a.organisation.as_str(),
                    sender: &a.sender,
                    file_name: &a.file.name,
                    file: &a.file.bytes,
                    valid_rows: valid as u64,
                    refused_rows: a.refused.len() as u64,
                };
                self.store
                    .receive(
                        &new_message(Folder::Processed, None),
                        Some(&sub),
                        &[ack],
                        now,
                    )
                    .await?;
                file(mailbox, self.store, &f.key, Folder::Processed).await?;
                summary.accepted += 1;
                tracing::info!(
                    message_id = %msg.message_id,
                    sender = %a.sender,
                    organisation = %a.organisation,
                    file = %a.file.name,
                    rows = a.rows,
                    valid,
                    refused = a.refused.len(),
                    "submission received and acknowledged"
                );
            }
            Err(refusal) => {
                let own = sender
                    .as_deref()
                    .is_some_and(|s| s.eq_ignore_ascii_case(&self.composer.from_address()));
                let replies = match (&sender, refusal.may_reply() && !own) {
                    (Some(to), true) => vec![self.rejection(&msg, to, &refusal, now)?],
                    _ => Vec::new(),
                };
                self.store
                    .receive(
                        &new_message(Folder::Rejected, Some(refusal.to_string())),
                        None,
                        &replies,
                        now,
                    )
                    .await?;
                file(mailbox, self.store, &f.key, Folder::Rejected).await?;
                summary.rejected += 1;
                tracing::warn!(
                    message_id = %msg.message_id,
                    sender = sender.as_deref().unwrap_or("-"),
                    reason = %refusal,
                    replied = !replies.is_empty(),
                    "message rejected"
                );
            }
        }
        Ok(())
    }

    /// Checks a message: sender, file, organisation; validates the file.
    fn decide<'m>(&self, msg: &'m Inbound) -> Result<Accepted<'m>, Refusal> {
        let sender = message::authorise(self.config, msg)?;
        let file = message::submission_file(msg, self.config.service.max_file_bytes)?;
        let submission = formats::read(&file.bytes).map_err(|e| Refusal::BadFile {
            name: file.name.clone(),
            reason: e.to_string(),
        })?;
        let results = validate::validate(&submission, self.rules);
        let named: Vec<String> = results
            .iter()
            .filter_map(|r| match &r.outcome {
                RowOutcome::Valid(p) => Some(p.organisation.to_string()),
                RowOutcome::Refused(_) => None,
            })
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let organisation =
            message::choose_organisation(self.config, &sender, &named, &msg.subject)?;
        let refused = refused_rows(&results, &organisation);
        Ok(Accepted {
            sender: sender.address,
            organisation,
            file,
            rows: results.len(),
            submission,
            refused,
        })
    }

    fn local(&self, t: DateTime<Utc>) -> String {
        t.with_timezone(&self.schedule.zone)
            .format("%-d %B %Y %H:%M %Z")
            .to_string()
    }

    fn organisation_name(&self, org: &str) -> Option<String> {
        self.config.organisation(org).and_then(|o| o.name.clone())
    }

    fn acknowledgement(
        &self,
        msg: &Inbound,
        a: &Accepted<'_>,
        now: DateTime<Utc>,
    ) -> Result<QueuedMail, ConnectorError> {
        let refused_file = format!("refused-lines-{}.csv", stem(&a.file.name));
        let attachment = if a.refused.is_empty() {
            None
        } else {
            let mut csv = Vec::new();
            report::write_report(&mut csv, &a.submission, &a.refused, ReportRows::Reported)?;
            Some((refused_file.clone(), csv))
        };
        let org = a.organisation.to_string();
        let lines: Vec<_> = a
            .refused
            .iter()
            .take(LINES_IN_BODY)
            .map(|r| json!({"line": r.line, "message": r.message}))
            .collect();
        Ok(self.composer.compose(
            &Reply {
                kind: "acknowledgement",
                to: vec![a.sender.clone()],
                subject: format!("Received: staff list for {org} ({})", a.file.name),
                context: json!({
                    "file_name": a.file.name,
                    "organisation": org,
                    "organisation_name": self.organisation_name(&org),
                    "received_at": self.local(now),
                    "rows": a.rows,
                    "valid": a.rows - a.refused.len(),
                    "refused": a.refused.len(),
                    "refused_lines": lines,
                    "more_refused": a.refused.len().saturating_sub(LINES_IN_BODY),
                    "refused_file": refused_file,
                    "next_run": self.schedule.describe(self.schedule.next_after(now)),
                }),
                attachment,
                in_reply_to: Some(msg.message_id.clone()),
                organisation: Some(org),
            },
            now,
        )?)
    }

    fn rejection(
        &self,
        msg: &Inbound,
        to: &str,
        refusal: &Refusal,
        now: DateTime<Utc>,
    ) -> Result<QueuedMail, ConnectorError> {
        let hint = match refusal {
            Refusal::NotAuthorised { .. } => Some(
                "Files are accepted only from the connector administrators each organisation \
                 has registered. Ask your organisation's registered administrator to send it, or \
                 to have you added.",
            ),
            Refusal::BadFile { .. } => Some(
                "The file must have a header row with the new-format or old-format (NHSmail 1) \
                 columns; see the connector's format guide.",
            ),
            _ => None,
        };
        Ok(self.composer.compose(
            &Reply {
                kind: "rejection",
                to: vec![to.to_owned()],
                subject: format!("Not accepted: {}", msg.subject),
                context: json!({
                    "subject": msg.subject,
                    "received_at": self.local(now),
                    "reason": refusal.to_string(),
                    "hint": hint,
                }),
                attachment: None,
                in_reply_to: Some(msg.message_id.clone()),
                organisation: None,
            },
            now,
        )?)
    }

    /// The nightly step: per organisation, the latest pending submission is applied and the
    /// older ones are superseded.
    pub async fn nightly(
        &self,
        minter: &mut dyn Minter,
        now: DateTime<Utc>,
    ) -> Result<NightlySummary, ConnectorError> {
        let no = self.store.nightly_started(now).await?;
        let mut summary = NightlySummary::default();
        tracing::info!("nightly run started");
        for org in self.store.organisations_waiting().await? {
            if let Err(e) = self.nightly_org(&org, minter, now, &mut summary).await {
                tracing::error!(organisation = %org, error = %e, "nightly run failed for the organisation; its submission waits for the next run");
                summary.failed.push((org, e.to_string()));
            }
        }
        self.store.nightly_finished(no, now).await?;
        tracing::info!(
            applied = summary.applied.len(),
            held = summary.held.len(),
            superseded = summary.superseded,
            failed = summary.failed.len(),
            "nightly run finished"
        );
        Ok(summary)
    }

    async fn nightly_org(
        &self,
        org: &str,
        minter: &mut dyn Minter,
        now: DateTime<Utc>,
        summary: &mut NightlySummary,
    ) -> Result<(), ConnectorError> {
        // A submission a stopped process left running goes first, under its own run ID.
        for s in self
            .store
            .submissions(Some(org), SubmissionStatus::Running)
            .await?
        {
            self.recover(&s, minter, now, summary).await?;
        }
        let pending = self
            .store
            .submissions(Some(org), SubmissionStatus::Pending)
            .await?;
        let Some((latest, older)) = pending.split_last() else {
            return Ok(());
        };
        for s in older {
            let mail = self.composer.compose(
                &Reply {
                    kind: "superseded",
                    to: vec![s.sender.clone()],
                    subject: format!("Superseded: staff list for {org} ({})", s.file_name),
                    context: json!({
                        "file_name": s.file_name,
                        "organisation": org,
                        "received_at": self.local(parse_time(&s.received_at)),
                        "by_file_name": latest.file_name,
                        "by_received_at": self.local(parse_time(&latest.received_at)),
                    }),
                    attachment: None,
                    in_reply_to: Some(s.message_id.clone()),
                    organisation: Some(org.to_owned()),
                },
                now,
            )?;
            self.store
                .advance(s.no, SubmissionStatus::Superseded, None, None, &[mail], now)
                .await?;
            summary.superseded += 1;
            tracing::info!(organisation = %org, sender = %s.sender, message_id = %s.message_id,
                "submission superseded by a later one");
        }
        let run = run_id(now);
        self.store
            .advance(
                latest.no,
                SubmissionStatus::Running,
                Some(&run),
                None,
                &[],
                now,
            )
            .await?;
        self.run(latest, &run, minter, now, summary).await
    }

    /// Plans, guards and applies one submission under `run`, and queues its e-mail.
    async fn run(
        &self,
        s: &StoredSubmission,
        run: &str,
        minter: &mut dyn Minter,
        now: DateTime<Utc>,
        summary: &mut NightlySummary,
    ) -> Result<(), ConnectorError> {
        let (submission, results) = self.reread(s)?;
        let org = OdsCode::new_unchecked(s.organisation.clone());
        let policy = Policy::from_config(self.config, &org);
        let limits = self.config.guard.with(
            &self
                .config
                .organisation(org.as_str())
                .map(|o| o.guard)
                .unwrap_or_default(),
        );
        let source = format!("e-mail from {} ({})", s.sender, s.file_name);
        let progress = |_: u64, _: u64| {};
        let ctx = self.context(&progress);
        let submitted = pipeline::submit(
            &ctx,
            &results,
            &policy,
            &limits,
            run,
            Some(&source),
            false,
            minter,
            now,
        )
        .await?;
        match &submitted.applied {
            Some(applied) => {
                self.finish(
                    s,
                    &submission,
                    &submitted.plan,
                    &applied.reports,
                    applied.counts,
                    now,
                )
                .await?;
                summary
                    .applied
                    .push((s.organisation.clone(), run.to_owned(), applied.counts));
            }
            None => {
                self.held(s, &submitted.plan, &submitted.held, now).await?;
                summary.held.push((s.organisation.clone(), run.to_owned()));
            }
        }
        Ok(())
    }

    fn context<'c>(&'c self, progress: &'c dyn Fn(u64, u64)) -> Context<'c, D> {
        Context {
            directory: self.directory,
            state: self.state,
            passwords: self.config.service.state_dir.join("initial-passwords.csv"),
            progress,
        }
    }

    fn reread(&self, s: &StoredSubmission) -> Result<(Submission, Vec<RowResult>), ConnectorError> {
        let submission = formats::read(&s.file).map_err(|e| ConnectorError::Stored {
            no: s.no,
            reason: e.to_string(),
        })?;
        let results = validate::validate(&submission, self.rules);
        Ok((submission, results))
    }

    /// The result e-mail of an applied run.
    async fn finish(
        &self,
        s: &StoredSubmission,
        submission: &Submission,
        plan: &Plan,
        reports: &[RowReport],
        counts: Counts,
        now: DateTime<Utc>,
    ) -> Result<(), ConnectorError> {
        let mut csv = Vec::new();
        report::write_report(&mut csv, submission, reports, ReportRows::All)?;
        let report_file = format!("result-{}-{}.csv", stem(&s.file_name), plan.run);
        let org = &s.organisation;
        let mail = self.composer.compose(
            &Reply {
                kind: "result",
                to: vec![s.sender.clone()],
                subject: format!("Result: staff list for {org}, run {}", plan.run),
                context: json!({
                    "file_name": s.file_name,
                    "organisation": org,
                    "organisation_name": self.organisation_name(org),
                    "received_at": self.local(parse_time(&s.received_at)),
                    "run": plan.run,
                    "finished_at": self.local(now),
                    "counts": counts,
                    "report_file": report_file,
                }),
                attachment: Some((report_file.clone(), csv)),
                in_reply_to: Some(s.message_id.clone()),
                organisation: Some(org.clone()),
            },
            now,
        )?;
        self.store
            .advance(s.no, SubmissionStatus::Applied, None, None, &[mail], now)
            .await?;
        tracing::info!(
            organisation = %org,
            sender = %s.sender,
            run = %plan.run,
            created = counts.created,
            updated = counts.updated,
            unchanged = counts.unchanged,
            rejected = counts.rejected,
            failed = counts.failed,
            "run applied; result e-mail queued"
        );
        Ok(())
    }

    /// The held notice, to the sender and the operators.
    async fn held(
        &self,
        s: &StoredSubmission,
        plan: &Plan,
        reasons: &[String],
        now: DateTime<Utc>,
    ) -> Result<(), ConnectorError> {
        let org = &s.organisation;
        let mut to = vec![s.sender.clone()];
        for op in &self.config.mail.operators {
            if !to.iter().any(|t| t.eq_ignore_ascii_case(op)) {
                to.push(op.clone());
            }
        }
        let counts = plan.counts();
        let mail = self.composer.compose(
            &Reply {
                kind: "held",
                to,
                subject: format!("Held for approval: staff list for {org}, run {}", plan.run),
                context: json!({
                    "file_name": s.file_name,
                    "organisation": org,
                    "sender": s.sender,
                    "run": plan.run,
                    "reasons": reasons,
                    "counts": counts,
                }),
                attachment: None,
                in_reply_to: Some(s.message_id.clone()),
                organisation: Some(org.clone()),
            },
            now,
        )?;
        let plan_json =
            serde_json::to_string(plan).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.store
            .advance(
                s.no,
                SubmissionStatus::Held,
                None,
                Some(&plan_json),
                &[mail],
                now,
            )
            .await?;
        tracing::warn!(organisation = %org, sender = %s.sender, run = %plan.run,
            reasons = %reasons.join("; "), "run held for approval; notice queued");
        Ok(())
    }

    /// Finishes a submission a stopped process left running.
    async fn recover(
        &self,
        s: &StoredSubmission,
        minter: &mut dyn Minter,
        now: DateTime<Utc>,
        summary: &mut NightlySummary,
    ) -> Result<(), ConnectorError> {
        let Some(run) = s.run_id.clone() else {
            return self.run(s, &run_id(now), minter, now, summary).await;
        };
        let info = match self.state.run(&run).await {
            Err(StateError::NoSuchRun(_)) => {
                return self.run(s, &run, minter, now, summary).await;
            }
            other => other?,
        };
        tracing::info!(organisation = %s.organisation, run = %run, status = info.status.as_str(),
            "finishing a submission a stopped process left running");
        match info.status {
            RunStatus::Held => {
                let plan = self.state.held_plan(&run).await?;
                let reasons = vec![
                    info.note
                        .clone()
                        .unwrap_or_else(|| "over the guard's thresholds".into()),
                ];
                self.held(s, &plan, &reasons, now).await?;
                summary.held.push((s.organisation.clone(), run));
            }
            RunStatus::Applying | RunStatus::Applied => {
                let progress = |_: u64, _: u64| {};
                let ctx = self.context(&progress);
                pipeline::resume_unfinished(&ctx, minter, now).await?;
                let (submission, reports, counts) = self.rebuilt_reports(s, &run, now).await?;
                let plan = Plan {
                    run: run.clone(),
                    organisation: OdsCode::new_unchecked(s.organisation.clone()),
                    rows: Vec::new(),
                };
                self.finish(s, &submission, &plan, &reports, counts, now)
                    .await?;
                summary.applied.push((s.organisation.clone(), run, counts));
            }
            RunStatus::Rejected | RunStatus::Reverted => {
                self.store
                    .advance(s.no, SubmissionStatus::Dropped, None, None, &[], now)
                    .await?;
            }
        }
        Ok(())
    }

    /// The per-row results of a run whose plan was lost with a stopped process: the rows
    /// planned again (what was applied now shows as unchanged), with the journal's outcomes
    /// laid over them (created, updated, failed).
    async fn rebuilt_reports(
        &self,
        s: &StoredSubmission,
        run: &str,
        now: DateTime<Utc>,
    ) -> Result<(Submission, Vec<RowReport>, Counts), ConnectorError> {
        let (submission, results) = self.reread(s)?;
        let org = OdsCode::new_unchecked(s.organisation.clone());
        let policy = Policy::from_config(self.config, &org);
        let progress = |_: u64, _: u64| {};
        let ctx = self.context(&progress);
        let mut minter = apply::SequenceMinter::default();
        let planned = pipeline::submit(
            &ctx,
            &results,
            &policy,
            &self.config.guard,
            run,
            None,
            true,
            &mut minter,
            now,
        )
        .await?;
        let outcomes = self.state.outcomes(run).await?;
        let mut reports = planned.plan.reports(false);
        for r in &mut reports {
            let mine: Vec<_> = outcomes.iter().filter(|o| o.line == r.line).collect();
            if let Some(failed) = mine.iter().find(|o| o.state == "failed") {
                r.result = RowResultKind::Failed;
                r.message = failed.message.clone().unwrap_or_default();
            } else if let Some(created) = mine.iter().find(|o| o.create && o.state == "done") {
                r.result = RowResultKind::Created;
                r.message = created.address.clone().unwrap_or_default();
            } else if mine.iter().any(|o| o.state == "done") {
                r.result = RowResultKind::Updated;
                r.message = format!("ID {}: updated", mine[0].account);
            }
        }
        let mut counts = Counts::default();
        for r in &reports {
            match r.result {
                RowResultKind::Created => counts.created += 1,
                RowResultKind::Updated => counts.updated += 1,
                RowResultKind::Unchanged => counts.unchanged += 1,
                RowResultKind::Failed => counts.failed += 1,
                _ => counts.rejected += 1,
            }
        }
        Ok((submission, reports, counts))
    }

    /// Held runs decided since (`approve RUN` / `reject RUN`): the result or a "dropped"
    /// e-mail goes out.
    pub async fn follow_up(&self, now: DateTime<Utc>) -> Result<usize, ConnectorError> {
        let mut done = 0;
        for s in self.store.submissions(None, SubmissionStatus::Held).await? {
            let Some(run) = &s.run_id else { continue };
            let info = self.state.run(run).await?;
            match info.status {
                RunStatus::Applied | RunStatus::Reverted => {
                    let plan: Plan = serde_json::from_str(s.plan.as_deref().unwrap_or(""))
                        .map_err(|e| StoreError::Corrupt(format!("held plan of {run}: {e}")))?;
                    let reports = apply::reports(self.state, &plan).await?;
                    let (submission, _) = self.reread(&s)?;
                    self.finish(&s, &submission, &plan, &reports, info.counts, now)
                        .await?;
                    done += 1;
                }
                RunStatus::Rejected => {
                    let mail = self.composer.compose(
                        &Reply {
                            kind: "dropped",
                            to: vec![s.sender.clone()],
                            subject: format!(
                                "Not applied: staff list for {}, run {run}",
                                s.organisation
                            ),
                            context: json!({"run": run, "file_name": s.file_name,
                                "organisation": s.organisation}),
                            attachment: None,
                            in_reply_to: Some(s.message_id.clone()),
                            organisation: Some(s.organisation.clone()),
                        },
                        now,
                    )?;
                    self.store
                        .advance(s.no, SubmissionStatus::Dropped, None, None, &[mail], now)
                        .await?;
                    tracing::info!(organisation = %s.organisation, run = %run, "held run dropped; sender told");
                    done += 1;
                }
                RunStatus::Held | RunStatus::Applying => {}
            }
        }
        Ok(done)
    }

    /// Sends the queued e-mails.
    pub async fn flush<O: Outbox>(
        &self,
        outbox: &O,
        now: DateTime<Utc>,
        due_only: bool,
    ) -> Result<Flushed, ConnectorError> {
        Ok(outbox::flush(
            self.store,
            outbox,
            &self.composer.from_address(),
            now,
            due_only,
            self.config.outbox.max_retry_seconds,
        )
        .await?)
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
            && &p.organisation != organisation
        {
            refused.push(RowReport {
                line: r.line,
                result: RowResultKind::Rejected,
                message: format!(
                    "Organisation \"{}\": this file is for {organisation}; a row for another \
                     organisation is not applied",
                    p.organisation
                ),
            });
        }
    }
    refused.sort_by_key(|r| r.line);
    refused
}

/// A new run's ID: time (passed in) and a random suffix, so IDs sort by time.
pub fn run_id(now: DateTime<Utc>) -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{}-{}", now.format("%Y%m%d-%H%M%S"), &random[..6])
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
