//! `check`: a preflight that connects to every configured system and says plainly what is
//! wrong: the state database, the directory, the mailbox (maildir or IMAP login and inbox)
//! and the outbox (folder or SMTP), sender verification (in `dkim` mode: does the DNS
//! resolver answer), the nightly schedule, and each sync source (connect and bind). Exit 0 when all answer, 2 when any does not.

use std::process::ExitCode;

use chrono::Utc;

use push_connector::config::Config;
use push_connector::directory::any::AnyDirectory;
use push_connector::mail::mailbox::{AnyMailbox, Mailbox};
use push_connector::mail::outbox::{AnyOutbox, Outbox};
use push_connector::mail::schedule::Schedule;
use push_connector::mail::store::MailStore;
use push_connector::mail::verify::Verifier;
use push_connector::sources::{AnySource, Source};
use push_connector::state::StateDb;
use push_connector::sync::schedule::SourceSchedule;

use super::common;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(config: &Config, _args: Args) -> anyhow::Result<ExitCode> {
    let rt = common::runtime()?;
    let failures = rt.block_on(async {
        let mut failures = 0;
        let mut report = |what: &str, r: Result<String, String>| match r {
            Ok(s) => println!("ok      {what}: {s}"),
            Err(e) => {
                failures += 1;
                println!("FAILED  {what}: {e}");
            }
        };
        let state = StateDb::open(&config.service.state_dir)
            .await
            .map(|_| format!("{}/state.sqlite", config.service.state_dir.display()))
            .map_err(|e| e.to_string());
        report("state", state);
        let store = MailStore::open(&config.service.state_dir)
            .await
            .map_err(|e| e.to_string());
        match &store {
            Ok(s) => report(
                "mail state",
                s.summary()
                    .await
                    .map(|(m, p, u)| {
                        format!(
                            "{m} message(s) stored, {p} submission(s) pending, {u} e-mail(s) unsent"
                        )
                    })
                    .map_err(|e| e.to_string()),
            ),
            Err(e) => report("mail state", Err(e.clone())),
        }
        let directory = AnyDirectory::open(&config.directory)
            .await
            .map(|d| match d {
                AnyDirectory::Local(_) => {
                    format!("embedded directory {}", config.directory.path.display())
                }
                AnyDirectory::Scim(s) => {
                    let c = s.capabilities();
                    format!(
                        "SCIM directory {} (PATCH {}, ETags {}, Bulk {})",
                        config.directory.url.as_deref().unwrap_or_default(),
                        c.patch,
                        c.etag,
                        c.bulk
                    )
                }
            })
            .map_err(|e| e.to_string());
        report("directory", directory);
        let mut mailbox = AnyMailbox::from_config(&config.mailbox);
        report("mailbox", mailbox.check().await.map_err(|e| e.to_string()));
        match AnyOutbox::from_config(&config.outbox) {
            Ok(outbox) => report("outbox", outbox.check().await.map_err(|e| e.to_string())),
            Err(e) => report("outbox", Err(e.to_string())),
        }
        match Verifier::from_config(&config.mail) {
            Ok(v) => {
                let domain = config.mail.address.rsplit_once('@').map_or("", |(_, d)| d);
                report("sender verification", v.check(domain).await)
            }
            Err(e) => report("sender verification", Err(e.to_string())),
        }
        report(
            "schedule",
            Schedule::from_config(&config.schedule)
                .map(|s| format!("next nightly run {}", s.describe(s.next_after(Utc::now()))))
                .map_err(|e| e.to_string()),
        );
        for source in &config.sources {
            let opened = AnySource::open(source).await.map_err(|e| e.to_string());
            let next = SourceSchedule::from_config(source)
                .ok()
                .and_then(|s| s.next_after(Utc::now()))
                .map_or_else(|| "never".to_owned(), |t| t.to_rfc3339());
            report(
                &format!("source {}", source.name),
                opened.map(|s| format!("{} (next sync {next})", s.describe())),
            );
        }
        failures
    });
    if failures > 0 {
        println!("{failures} problem(s) found");
        Ok(ExitCode::from(2))
    } else {
        Ok(ExitCode::SUCCESS)
    }
}
