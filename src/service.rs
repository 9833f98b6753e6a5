//! The `run` service: one loop over every channel of a deployment.
//!
//! Each pass: read the mailbox (intake), follow up runs approved or rejected since, run the
//! nightly step when its window is due, sync the sources that are due, send what is queued
//! (retrying with backoff), apply the retention periods and remind organisations that have
//! gone quiet (once an hour), then wait for new mail, the next nightly window, the next sync
//! or the next retry, whichever comes first.
//! A step that fails is logged and the loop goes on: a server that is down now may be back
//! at the next pass. [`Service::once`] is one pass for cron.
//!
//! In: an open [`Deployment`]. Out: summaries of a pass; every decision in the state
//! database and e-mails in its outbox.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::apply::RandomMinter;
use crate::deployment::{self, Deployment};
use crate::directory::any::AnyDirectory;
use crate::mail::compose::{ComposeError, Composer};
use crate::mail::connector::{Connector, ConnectorError, IntakeSummary, NightlySummary, Reminded};
use crate::mail::mailbox::{AnyMailbox, Mailbox};
use crate::mail::outbox::{AnyOutbox, Flushed, OutboxError};
use crate::mail::schedule::{Schedule, ScheduleError};
use crate::mail::verify::{Verifier, VerifyError};
use crate::sources::config::SourceConfig;
use crate::sources::schedule::{ScheduleError as SourceScheduleError, SourceSchedule};
use crate::sync::{self, SyncError, SyncOptions, Synced};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("the service cannot start:\n  - {}", .0.join("\n  - "))]
    MissingSecrets(Vec<String>),
    #[error("the [schedule] section: {0}")]
    Schedule(#[from] ScheduleError),
    #[error("the [mail] section: {0}")]
    Compose(#[from] ComposeError),
    #[error("the [mail] section: {0}")]
    Verify(#[from] VerifyError),
    #[error("the [outbox] section: {0}")]
    Outbox(#[from] OutboxError),
    #[error("the schedule of source \"{name}\": {source}")]
    SourceSchedule {
        name: String,
        source: SourceScheduleError,
    },
    #[error("reading the mailbox: {0}")]
    Intake(ConnectorError),
    #[error("following up held runs: {0}")]
    FollowUp(ConnectorError),
    #[error("the nightly step: {0}")]
    Nightly(ConnectorError),
    #[error("sending e-mails: {0}")]
    Flush(ConnectorError),
    #[error("retention: {0}")]
    Purge(ConnectorError),
    #[error("reminding quiet organisations: {0}")]
    Quiet(ConnectorError),
}

/// What one pass did.
#[derive(Debug)]
pub struct Pass {
    pub intake: IntakeSummary,
    /// The nightly step, when it ran.
    pub nightly: Option<NightlySummary>,
    /// One result per source synced.
    pub syncs: Vec<(String, Result<Synced, SyncError>)>,
    pub flushed: Flushed,
    /// Organisations reminded that they have sent nothing for a while.
    pub quiet: Vec<Reminded>,
}

/// The service over one deployment.
pub struct Service<'a> {
    pub connector: Connector<'a, AnyDirectory>,
    deployment: &'a Deployment<'a>,
    sources: Vec<(&'a SourceConfig, SourceSchedule)>,
    mailbox: AnyMailbox,
    outbox: AnyOutbox,
    /// Wakes the loop for a pass now (an operator acted in the console).
    nudge: std::sync::Arc<tokio::sync::Notify>,
}

impl<'a> Service<'a> {
    /// Checks what the service needs (secrets, schedules, templates) and builds it.
    pub fn new(deployment: &'a Deployment<'a>) -> Result<Service<'a>, ServiceError> {
        let config = deployment.config;
        let missing = crate::mail::config::missing_secrets(&config.mailbox, &config.outbox);
        if !missing.is_empty() {
            return Err(ServiceError::MissingSecrets(missing));
        }
        let connector = Connector {
            config,
            rules: &deployment.rules,
            schedule: Schedule::from_config(&config.schedule)?,
            composer: Composer::new(&config.mail)?,
            verifier: Verifier::from_config(&config.mail)?,
            store: &deployment.mail,
            directory: &deployment.directory,
            state: &deployment.state,
        };
        let mut sources = Vec::new();
        for s in &config.sources {
            let schedule =
                SourceSchedule::from_config(s).map_err(|source| ServiceError::SourceSchedule {
                    name: s.name.clone(),
                    source,
                })?;
            sources.push((s, schedule));
        }
        Ok(Service {
            connector,
            deployment,
            sources,
            mailbox: AnyMailbox::from_config(&config.mailbox),
            outbox: AnyOutbox::from_config(&config.outbox)?,
            nudge: std::sync::Arc::default(),
        })
    }

    /// What wakes the loop for a pass at once: the console notifies it after an operator
    /// approved, rejected or reverted a run or put an e-mail back in the queue, so the
    /// result e-mail goes out without waiting for the next poll.
    pub fn nudge(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.nudge.clone()
    }

    /// One pass for cron: intake, follow-up, the nightly step with `nightly` (whatever the
    /// time), the syncs that are due (every source with `nightly`), a flush of the whole
    /// queue, and retention.
    pub async fn once(&mut self, nightly: bool) -> Result<Pass, ServiceError> {
        let now = Utc::now();
        let c = &self.connector;
        let intake = c
            .intake(&mut self.mailbox, &mut RandomMinter, now)
            .await
            .map_err(ServiceError::Intake)?;
        c.follow_up(now).await.map_err(ServiceError::FollowUp)?;
        let nightly_summary = if nightly {
            let summary = c
                .nightly(&mut RandomMinter, now)
                .await
                .map_err(ServiceError::Nightly)?;
            crate::console::metrics::nightly(&summary);
            Some(summary)
        } else {
            None
        };
        // Without `nightly`, a source is due when its schedule fired since its last sync (or
        // in the last day, for a source never synced).
        let syncs = self
            .syncs_due(now - chrono::Duration::days(1), now, nightly)
            .await;
        let flushed = c
            .flush(&self.outbox, Utc::now(), false)
            .await
            .map_err(ServiceError::Flush)?;
        c.purge(Utc::now()).await.map_err(ServiceError::Purge)?;
        let quiet = c
            .remind_quiet(Utc::now())
            .await
            .map_err(ServiceError::Quiet)?;
        Ok(Pass {
            quiet,
            intake,
            nightly: nightly_summary,
            syncs,
            flushed,
        })
    }

    /// Passes until `stop` completes (the current pass is finished first).
    pub async fn run_until(&mut self, stop: impl Future<Output = ()>) {
        let poll = Duration::from_secs(self.deployment.config.mailbox.poll_seconds);
        let schedule = self.connector.schedule;
        tracing::info!(
            next_nightly = %schedule.describe(schedule.next_after(Utc::now())),
            "service started"
        );
        let started = Utc::now();
        // Retention is days; once an hour is often enough, and keeps its scans off every pass.
        let mut purged_at: Option<std::time::Instant> = None;
        tokio::pin!(stop);
        loop {
            self.pass(started, &mut purged_at).await;
            let wait = self.wait(started, poll).await;
            let nudge = self.nudge.clone();
            tokio::select! {
                () = nudge.notified() => {}
                r = self.mailbox.wait(wait) => {
                    if let Err(e) = r {
                        tracing::warn!(error = %e, "waiting for mail failed; polling again shortly");
                        tokio::time::sleep(Duration::from_secs(5).min(wait)).await;
                    }
                }
                () = &mut stop => break,
            }
        }
        tracing::info!("service stopped");
    }

    /// One pass of the loop; each step logs its own failure.
    async fn pass(&mut self, started: DateTime<Utc>, purged_at: &mut Option<std::time::Instant>) {
        let now = Utc::now();
        let c = &self.connector;
        if let Err(e) = c.intake(&mut self.mailbox, &mut RandomMinter, now).await {
            tracing::error!(error = %e, "intake pass failed");
        }
        if let Err(e) = c.follow_up(now).await {
            tracing::error!(error = %e, "follow-up of held runs failed");
        }
        let last = c.store.last_nightly().await.ok().flatten();
        if c.schedule.due(now, last) {
            match c.nightly(&mut RandomMinter, now).await {
                Ok(summary) => crate::console::metrics::nightly(&summary),
                Err(e) => tracing::error!(error = %e, "nightly step failed"),
            }
        }
        for (source, synced) in self.syncs_due(started, now, false).await {
            if let Err(e) = synced {
                tracing::error!(source, error = %e, "sync failed");
            }
        }
        let c = &self.connector;
        if let Err(e) = c.flush(&self.outbox, Utc::now(), true).await {
            tracing::error!(error = %e, "outbox flush failed");
        }
        if purged_at.is_none_or(|t| t.elapsed() >= Duration::from_secs(3600)) {
            *purged_at = Some(std::time::Instant::now());
            if let Err(e) = c.purge(Utc::now()).await {
                tracing::error!(error = %e, "retention purge failed");
            }
            if let Err(e) = c.remind_quiet(Utc::now()).await {
                tracing::error!(error = %e, "reminding quiet organisations failed");
            }
        }
    }

    /// How long to wait for mail: until the next nightly window, sync or retry, at most
    /// `poll`.
    async fn wait(&self, started: DateTime<Utc>, poll: Duration) -> Duration {
        let c = &self.connector;
        let now = Utc::now();
        let mut wait = poll;
        if let Ok(d) = (c.schedule.next_after(now) - now).to_std() {
            wait = wait.min(d + Duration::from_secs(1));
        }
        if let Some(next) = self.next_sync(started).await
            && let Ok(d) = (next - now).to_std()
        {
            wait = wait.min(d + Duration::from_secs(1));
        }
        if let Ok(Some(retry)) = c.store.next_retry().await
            && let Ok(d) = (retry - now).to_std()
        {
            wait = wait.min(d.max(Duration::from_secs(1)));
        }
        wait
    }

    /// Syncs every source whose schedule fired since its last sync (or since `since`); with
    /// `all`, every source. One result per source synced; a failure is that source's.
    async fn syncs_due(
        &self,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
        all: bool,
    ) -> Vec<(String, Result<Synced, SyncError>)> {
        let d = self.deployment;
        let mut done = Vec::new();
        for (source, schedule) in &self.sources {
            let last = d.sync.last_started(&source.name).await.ok().flatten();
            if !all && !schedule.due(last, since, now) {
                continue;
            }
            let began = std::time::Instant::now();
            let synced = sync::sync_configured(
                d,
                source,
                &SyncOptions::default(),
                &deployment::run_id(now),
                &|_, _| {},
                now,
            )
            .await;
            crate::console::metrics::sync(&source.name, &synced, began.elapsed());
            let error = synced.as_ref().err().map(|e| e.to_string());
            if let Err(e) = d
                .state
                .sync_outcome(&source.name, error.as_deref(), now)
                .await
            {
                tracing::warn!(source = %source.name, error = %e, "recording the sync's outcome failed");
            }
            done.push((source.name.clone(), synced));
        }
        done
    }

    /// When the next sync is due.
    async fn next_sync(&self, since: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut next: Option<DateTime<Utc>> = None;
        for (source, schedule) in &self.sources {
            let last = self
                .deployment
                .sync
                .last_started(&source.name)
                .await
                .ok()
                .flatten();
            if let Some(at) = schedule.next_after(last.unwrap_or(since).max(since)) {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        next
    }
}
