//! `run`: the e-mail connector service — intake, the nightly step and the outbox.
//!
//! `run` loops until SIGTERM or SIGINT (the current pass is finished first): read the
//! mailbox, follow up runs approved or rejected since, run the nightly step when its window
//! is due, send what is queued (retrying with backoff), then wait for new mail (IDLE or
//! `poll_seconds`). `run --once` does one intake pass and flushes the whole queue (for cron);
//! `run --once --now` also runs the nightly step at once. Exit 0, or 2 on an error; e-mails
//! the SMTP server did not take stay queued and are reported.

use std::process::ExitCode;

use push_connector::deployment::Deployment;
use push_connector::mail::connector::NightlySummary;
use push_connector::service::{Pass, Service};

use super::common;

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

pub fn run(config: &push_connector::config::Config, args: Args) -> anyhow::Result<ExitCode> {
    common::runtime()?.block_on(async {
        let deployment = Deployment::open(config).await?;
        let mut service = Service::new(&deployment)?;
        if !args.once && config.console.listen.is_some() {
            let (stop, stopping) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                stopped().await;
                let _ = stop.send(true);
            });
            let until = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
                let _ = rx.wait_for(|stop| *stop).await;
            };
            let console = start_console(config, service.nudge(), until(stopping.clone())).await?;
            service.run_until(until(stopping)).await;
            match console.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "the console stopped with an error"),
                Err(e) => tracing::error!(error = %e, "the console's task failed"),
            }
            return Ok(ExitCode::SUCCESS);
        }
        if args.once {
            let pass = service.once(args.now).await?;
            print_pass(&pass);
            let out = &config.outbox;
            if out.kind == push_connector::mail::config::OutboxKind::File {
                println!("replies (.eml files) are in {}", out.path.display());
            }
        } else {
            service.run_until(stopped()).await;
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Binds the console's listener and serves it in a task of its own until `shutdown`.
async fn start_console(
    config: &push_connector::config::Config,
    nudge: std::sync::Arc<tokio::sync::Notify>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    use anyhow::Context as _;
    use push_connector::console::{self, metrics::Metrics, worker::Worker};
    use push_connector::serve::{listen, tls};

    let c = &config.console;
    let listen_on = c.listen.clone().unwrap_or_default();
    // The console's worker keeps the configuration for the life of the process.
    let kept: &'static push_connector::config::Config = Box::leak(Box::new(config.clone()));
    let metrics = match Metrics::install() {
        Ok(m) => Some(m),
        Err(e) => {
            tracing::warn!(error = %e, "metrics recorder not installed: /metrics is off");
            None
        }
    };
    let worker = Worker::start(kept)
        .await
        .context("opening the deployment for the console")?;
    let state = console::Console::new(config, worker, metrics, Some(nudge))
        .map_err(|e| anyhow::anyhow!("the console: {e}"))?;
    let tls = match (&c.tls_cert, &c.tls_key) {
        (Some(cert), Some(key)) => Some(tls::acceptor(
            tls::server_config(cert, key).context("the console's certificate")?,
        )),
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind(&listen_on)
        .await
        .with_context(|| format!("listening on {listen_on} for the console"))?;
    let bound = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(address = %bound, "console listening on {scheme}://{bound}/");
    let router = console::router(std::sync::Arc::new(state));
    Ok(tokio::spawn(listen::serve(
        listener,
        tls,
        router,
        listen::Limits::default(),
        shutdown,
    )))
}

/// Completes on SIGTERM or SIGINT (never, if they cannot be listened for: the error is
/// logged).
async fn stopped() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(error = %e, "listening for SIGTERM and SIGINT failed");
            std::future::pending::<()>().await;
        }
    }
}

fn print_pass(pass: &Pass) {
    let intake = &pass.intake;
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
    if let Some(summary) = &pass.nightly {
        print_nightly(summary);
    }
    for (source, synced) in &pass.syncs {
        match synced {
            Ok(s) => println!(
                "sync: {source}: {} read, {} row(s) planned{}",
                s.read,
                s.reports.len(),
                if s.held() { ", HELD for approval" } else { "" }
            ),
            Err(e) => println!("sync: {source}: FAILED, the next sync reads it again: {e}"),
        }
    }
    let flushed = &pass.flushed;
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
