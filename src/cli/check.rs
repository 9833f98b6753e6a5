//! `check`: a preflight that connects to every configured system and says plainly what is
//! wrong: the state database, the directory, the mailbox (maildir or IMAP login and inbox)
//! and the outbox (folder or SMTP), the e-mail templates, sender verification (in `dkim`
//! mode: does the DNS resolver answer), the nightly schedule, and each sync source: connect
//! and bind, and for an AD source the base DN, the filter, the entries in scope (none is a
//! problem) and the right to write each write-back attribute; for a SQL source the rows in
//! scope. Times are said in one style, in the schedule's time zone. Exit 0 when all answer,
//! 2 when any does not.

use std::process::ExitCode;

use chrono::Utc;

use push_connector::config::Config;
use push_connector::directory::any::AnyDirectory;
use push_connector::mail::compose::Composer;
use push_connector::mail::mailbox::{AnyMailbox, Mailbox};
use push_connector::mail::outbox::{AnyOutbox, Outbox};
use push_connector::mail::schedule::Schedule;
use push_connector::mail::verify::Verifier;
use push_connector::sources::ldap::preflight::Finding;
use push_connector::sources::schedule::SourceSchedule;
use push_connector::sources::{AnySource, Source};
use push_connector::store::StateDb;
use push_connector::sync::mapping::Mapping;

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
        let state = StateDb::open(&config.service.state_dir).await;
        report(
            "state",
            state
                .as_ref()
                .map(|_| format!("{}/state.sqlite", config.service.state_dir.display()))
                .map_err(|e| e.to_string()),
        );
        let store = state.map(|s| s.mail()).map_err(|e| e.to_string());
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
            "templates",
            Composer::new(&config.mail)
                .map(|_| Composer::templates_in_use(&config.mail))
                .map_err(|e| e.to_string()),
        );
        report(
            "schedule",
            Schedule::from_config(&config.schedule)
                .map(|s| format!("next nightly run {}", s.describe(s.next_after(Utc::now()))))
                .map_err(|e| e.to_string()),
        );
        if config.serve.token.is_some() || !config.serve.clients.is_empty() {
            let scope = config.serve_scope_problems();
            report(
                "serve credentials",
                if scope.is_empty() {
                    Ok("each names the organisations it may act for".to_owned())
                } else {
                    Err(scope.join("; "))
                },
            );
        }
        for source in &config.sources {
            let what = format!("source {}", source.name);
            let next = SourceSchedule::from_config(source)
                .ok()
                .and_then(|s| s.next_after(Utc::now()).map(|t| s.describe(t)))
                .unwrap_or_else(|| "never".to_owned());
            let mut opened = match AnySource::open(source).await {
                Ok(s) => s,
                Err(e) => {
                    report(&what, Err(e.to_string()));
                    continue;
                }
            };
            report(
                &what,
                Ok(format!("{}; next sync {next}", opened.describe())),
            );
            let ldap = match &mut opened {
                AnySource::Ldap(ldap) => ldap,
                AnySource::Sql(sql) => {
                    match sql.count_in_scope().await {
                        Ok(0) => report(
                            &what,
                            Err(
                                "no row is in scope: a sync would read nothing. Check table \
                                 and where"
                                    .to_owned(),
                            ),
                        ),
                        Ok(n) => report(&what, Ok(format!("{n} row(s) in scope"))),
                        Err(e) => report(&what, Err(e.to_string())),
                    }
                    continue;
                }
            };
            let write_back = Mapping::from_config(source).write_back_attributes();
            match ldap.preflight(&write_back).await {
                Ok(findings) => {
                    for finding in findings {
                        match finding {
                            Finding::Ok(s) => report(&what, Ok(s)),
                            Finding::Problem(e) => report(&what, Err(e)),
                            Finding::Warning(w) => println!("WARNING {what}: {w}"),
                        }
                    }
                }
                Err(e) => report(&what, Err(e.to_string())),
            }
        }
        failures
    });
    let accounts = rt.block_on(async {
        match AnyDirectory::open(&config.directory).await {
            Ok(AnyDirectory::Local(d)) => d.count().await.ok(),
            _ => None,
        }
    });
    for w in warnings(config, accounts) {
        println!("WARNING {w}");
    }
    if failures > 0 {
        println!("{failures} problem(s) found");
        Ok(ExitCode::from(2))
    } else {
        Ok(ExitCode::SUCCESS)
    }
}

/// What works but is probably not what the deployment wants: nothing is configured yet.
fn warnings(config: &Config, local_accounts: Option<u64>) -> Vec<String> {
    use push_connector::mail::config::{MailboxKind, OutboxKind};
    let mut out = Vec::new();
    if config.organisations.is_empty() {
        out.push(
            "no organisation is configured: every e-mailed file will be refused as from an \
             unknown sender. Add an [[organisation]] with its code and administrators."
                .to_owned(),
        );
    }
    for o in config
        .organisations
        .iter()
        .filter(|o| o.administrators.is_empty())
    {
        out.push(format!(
            "organisation {} has no administrators: nobody can send its files by e-mail",
            o.code
        ));
    }
    out.extend(push_connector::sources::config::warnings(&config.sources));
    if local_accounts == Some(0) {
        out.push(format!(
            "the embedded directory {} is empty: every row will create an account. Seed it \
             with `push-connector directory import FILE`, or set [directory] to the portal.",
            config.directory.path.display()
        ));
    }
    let s = &config.schedule;
    if s.nightly_at == "02:00" && s.timezone == "Europe/London" {
        out.push(format!(
            "the nightly window is the default, 02:00 Europe/London for {} hours: set \
             [schedule] nightly_at if files should be applied at another time",
            s.window_hours
        ));
    }
    if config.mailbox.kind == MailboxKind::Maildir {
        out.push(format!(
            "the mailbox is the embedded default, the local maildir {}: no real mail arrives \
             there unless a mail server delivers into it. Set [mailbox] kind = \"imap\".",
            config.mailbox.path.display()
        ));
    }
    if config.outbox.kind == OutboxKind::File {
        out.push(format!(
            "the outbox is the embedded default: replies are written as .eml files to {} and \
             nobody receives them. Set [outbox] kind = \"smtp\".",
            config.outbox.path.display()
        ));
    }
    out
}
