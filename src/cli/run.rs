//! `run`: the e-mail connector service — intake, the nightly step and the outbox.
//!
//! `run` loops until SIGTERM or SIGINT (the current pass is finished first): read the
//! mailbox, follow up runs approved or rejected since, run the nightly step when its window
//! is due, send what is queued (retrying with backoff), then wait for new mail (IDLE or
//! `poll_seconds`). `run --once` does one intake pass and flushes the whole queue (for cron);
//! `run --once --now` also runs the nightly step at once. Exit 0, or 2 on an error; e-mails
//! the SMTP server did not take stay queued and are reported.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};

use push_connector::apply::RandomMinter;
use push_connector::config::Config;
use push_connector::mail::compose::Composer;
use push_connector::mail::connector::{Connector, NightlySummary};
use push_connector::mail::mailbox::{AnyMailbox, Mailbox};
use push_connector::mail::outbox::AnyOutbox;
use push_connector::mail::schedule::Schedule;
use push_connector::mail::verify::Verifier;
use push_connector::sources::config::SourceConfig;
use push_connector::store::SyncStore;
use push_connector::sync::SyncOptions;
use push_connector::sync::schedule::SourceSchedule;
use push_connector::validate::Rules;

use super::{common, sync};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// One intake pass, the source syncs that are due, and an outbox flush, then exit (for
    /// cron).
    #[arg(long)]
    pub once: bool,
    /// With --once: also run the nightly step and every source's sync now, whatever the time.
    #[arg(long, requires = "once")]
    pub now: bool,
}

pub fn run(config: &Config, args: Args) -> anyhow::Result<ExitCode> {
    let missing = push_connector::mail::config::missing_secrets(config);
    if !missing.is_empty() {
        anyhow::bail!("the service cannot start:\n  - {}", missing.join("\n  - "));
    }
    let rules = Rules::from_config(config).context("reading the code lists")?;
    let schedule = Schedule::from_config(&config.schedule).context("the [schedule] section")?;
    let rt = common::runtime()?;
    rt.block_on(async {
        let backends = common::open(config).await?;
        let store = backends.state.mail();
        let connector = Connector {
            config,
            rules: &rules,
            schedule,
            composer: Composer::new(&config.mail).context("the [mail] section")?,
            verifier: Verifier::from_config(&config.mail).context("the [mail] section")?,
            store: &store,
            directory: &backends.directory,
            state: &backends.state,
        };
        let mut mailbox = AnyMailbox::from_config(&config.mailbox);
        let outbox = AnyOutbox::from_config(&config.outbox).context("the [outbox] section")?;
        let syncs = Syncs::new(config, &rules, &backends).await?;
        if args.once {
            once(&connector, &syncs, &mut mailbox, &outbox, args.now).await
        } else {
            service(&connector, &syncs, &mut mailbox, &outbox).await
        }
    })
}

async fn once(
    connector: &Connector<'_, push_connector::directory::any::AnyDirectory>,
    syncs: &Syncs<'_>,
    mailbox: &mut AnyMailbox,
    outbox: &AnyOutbox,
    nightly: bool,
) -> anyhow::Result<ExitCode> {
    let now = Utc::now();
    let intake = connector
        .intake(mailbox, now)
        .await
        .context("reading the mailbox")?;
    println!(
        "intake: {} accepted, {} rejected{}{}{}",
        intake.accepted,
        intake.rejected,
        if intake.refiled > 0 {
            format!(", {} already stored and now filed", intake.refiled)
        } else {
            String::new()
        },
        if intake.failed > 0 {
            format!(
                ", {} could not be handled and will be tried again",
                intake.failed
            )
        } else {
            String::new()
        },
        if intake.deferred > 0 {
            format!(
                ", {} left in the mailbox (sender verification unavailable)",
                intake.deferred
            )
        } else {
            String::new()
        }
    );
    connector
        .follow_up(now)
        .await
        .context("following up held runs")?;
    if nightly {
        let mut minter = RandomMinter;
        let summary = connector
            .nightly(&mut minter, now)
            .await
            .context("the nightly step")?;
        print_nightly(&summary);
    }
    // Without --now, a source is due when its schedule fired since its last sync (or in
    // the last day, for a source never synced).
    let since = now - chrono::Duration::days(1);
    for (source, synced) in syncs.run_due(since, now, nightly).await {
        match synced {
            Ok(s) => println!(
                "sync: {source}: {} read, {} row(s) planned{}",
                s.read,
                s.reports.len(),
                if s.held() { ", HELD for approval" } else { "" }
            ),
            Err(e) => println!("sync: {source}: FAILED, the next sync reads it again: {e:#}"),
        }
    }
    let flushed = connector
        .flush(outbox, Utc::now(), false)
        .await
        .context("sending e-mails")?;
    println!("outbox: {} e-mail(s) sent", flushed.sent);
    if flushed.failed > 0 {
        println!(
            "outbox: {} e-mail(s) refused for good (see `outbox list`)",
            flushed.failed
        );
    }
    if flushed.waiting > 0
        && let Some(err) = &flushed.error
    {
        println!(
            "outbox: {} e-mail(s) still waiting; the next run retries them: {err}",
            flushed.waiting
        );
    }
    connector.purge(Utc::now()).await.context("retention")?;
    let out = &connector.config.outbox;
    if out.kind == push_connector::mail::config::OutboxKind::File {
        println!("replies (.eml files) are in {}", out.path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn print_nightly(s: &NightlySummary) {
    for (org, run, counts) in &s.applied {
        println!("nightly: {org}: run {run} applied: {}", counts.summary());
    }
    for (org, run) in &s.held {
        println!("nightly: {org}: run {run} HELD for approval (`push-connector approve {run}`)");
    }
    if s.superseded > 0 {
        println!("nightly: {} earlier submission(s) superseded", s.superseded);
    }
    for (org, err) in &s.failed {
        println!("nightly: {org}: FAILED, the submission waits for the next run: {err}");
    }
    if s.applied.is_empty() && s.held.is_empty() && s.failed.is_empty() {
        println!("nightly: no submission waiting");
    }
}

async fn service(
    connector: &Connector<'_, push_connector::directory::any::AnyDirectory>,
    syncs: &Syncs<'_>,
    mailbox: &mut AnyMailbox,
    outbox: &AnyOutbox,
) -> anyhow::Result<ExitCode> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    let poll = Duration::from_secs(connector.config.mailbox.poll_seconds);
    tracing::info!(
        next_nightly = %connector.schedule.describe(connector.schedule.next_after(Utc::now())),
        "service started"
    );
    let started = Utc::now();
    // Retention is days; once an hour is often enough, and keeps its scans off every pass.
    let mut purged_at: Option<std::time::Instant> = None;
    loop {
        let now = Utc::now();
        // Each step logs its own failure and the loop goes on: a server that is down now
        // may be back at the next pass.
        if let Err(e) = connector.intake(mailbox, now).await {
            tracing::error!(error = %e, "intake pass failed");
        }
        if let Err(e) = connector.follow_up(now).await {
            tracing::error!(error = %e, "follow-up of held runs failed");
        }
        let last = connector.store.last_nightly().await.ok().flatten();
        if connector.schedule.due(now, last) {
            let mut minter = RandomMinter;
            if let Err(e) = connector.nightly(&mut minter, now).await {
                tracing::error!(error = %e, "nightly step failed");
            }
        }
        for (source, synced) in syncs.run_due(started, now, false).await {
            if let Err(e) = synced {
                tracing::error!(source, error = format!("{e:#}"), "sync failed");
            }
        }
        if let Err(e) = connector.flush(outbox, Utc::now(), true).await {
            tracing::error!(error = %e, "outbox flush failed");
        }
        if purged_at.is_none_or(|t| t.elapsed() >= Duration::from_secs(3600)) {
            purged_at = Some(std::time::Instant::now());
            if let Err(e) = connector.purge(Utc::now()).await {
                tracing::error!(error = %e, "retention purge failed");
            }
        }
        let now = Utc::now();
        let mut wait = poll;
        let until_nightly = connector.schedule.next_after(now) - now;
        if let Ok(d) = until_nightly.to_std() {
            wait = wait.min(d + Duration::from_secs(1));
        }
        if let Some(next) = syncs.next(started).await
            && let Ok(d) = (next - now).to_std()
        {
            wait = wait.min(d + Duration::from_secs(1));
        }
        if let Ok(Some(retry)) = connector.store.next_retry().await
            && let Ok(d) = (retry - now).to_std()
        {
            wait = wait.min(d.max(Duration::from_secs(1)));
        }
        tokio::select! {
            r = mailbox.wait(wait) => {
                if let Err(e) = r {
                    tracing::warn!(error = %e, "waiting for mail failed; polling again shortly");
                    tokio::time::sleep(Duration::from_secs(5).min(wait)).await;
                }
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    tracing::info!("service stopped");
    Ok(ExitCode::SUCCESS)
}

/// The configured sources and their schedules.
struct Syncs<'a> {
    config: &'a Config,
    rules: &'a Rules,
    backends: &'a common::Backends,
    store: SyncStore,
    sources: Vec<(&'a SourceConfig, SourceSchedule)>,
}

impl<'a> Syncs<'a> {
    async fn new(
        config: &'a Config,
        rules: &'a Rules,
        backends: &'a common::Backends,
    ) -> anyhow::Result<Syncs<'a>> {
        let mut sources = Vec::new();
        for s in &config.sources {
            let schedule = SourceSchedule::from_config(s)
                .with_context(|| format!("the schedule of source \"{}\"", s.name))?;
            sources.push((s, schedule));
        }
        let store = backends.state.sync();
        Ok(Syncs {
            config,
            rules,
            backends,
            store,
            sources,
        })
    }

    /// Syncs every source whose schedule fired since its last sync (or since `since`);
    /// with `all`, every source. One result per source synced; a failure is that source's.
    async fn run_due(
        &self,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
        all: bool,
    ) -> Vec<(String, anyhow::Result<push_connector::sync::Synced>)> {
        let mut done = Vec::new();
        for (source, schedule) in &self.sources {
            let last = self.store.last_started(&source.name).await.ok().flatten();
            if !all && !schedule.due(last, since, now) {
                continue;
            }
            let run_id = common::run_id(now);
            let synced = sync::sync_source(
                self.config,
                source,
                self.rules,
                &self.backends.directory,
                &self.backends.state,
                &self.store,
                &SyncOptions::default(),
                &run_id,
                &|_, _| {},
                now,
            )
            .await;
            done.push((source.name.clone(), synced));
        }
        done
    }

    /// When the next sync is due.
    async fn next(&self, since: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut next: Option<DateTime<Utc>> = None;
        for (source, schedule) in &self.sources {
            let last = self.store.last_started(&source.name).await.ok().flatten();
            if let Some(at) = schedule.next_after(last.unwrap_or(since).max(since)) {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        next
    }
}
