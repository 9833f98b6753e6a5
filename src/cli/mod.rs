//! Verbs of the command line; each verb's handler lives in its own module.

mod apply;
mod approve;
mod bench;
mod check;
mod common;
mod directory;
mod hash_password;
mod history;
mod listing;
mod outbox;
mod plan;
mod reject;
mod revert;
mod run;
mod runs;
mod serve;
mod sync;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use push_connector::config::{Config, LogFormat};

#[derive(Debug, Parser)]
#[command(
    name = "push-connector",
    version,
    about = "Keeps the staff directory in step with the staff lists organisations send"
)]
pub struct Cli {
    /// Configuration file (TOML); without one the embedded defaults are used.
    #[arg(long, global = true, env = "PUSH_CONNECTOR_CONFIG")]
    pub config: Option<PathBuf>,
    /// More log output (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read and validate a submission file; nothing is changed.
    Validate(validate::Args),
    /// Show what applying a submission would do; nothing is changed.
    Plan(plan::Args),
    /// Validate, plan and apply a submission (held for approval over the guard's thresholds).
    Apply(apply::Args),
    /// Apply a held run.
    Approve(approve::Args),
    /// Drop a held run.
    Reject(reject::Args),
    /// List runs with their counts.
    Runs(runs::Args),
    /// Restore the fields a run changed.
    Revert(revert::Args),
    /// Every change made to one account (by ID, e-mail or ExternalSyncID), and where each
    /// came from.
    History(history::Args),
    /// The embedded directory: import and export.
    #[command(subcommand)]
    Directory(directory::Command),
    /// The e-mail connector service: read the mailbox, acknowledge, run nightly, send e-mails.
    Run(run::Args),
    /// The e-mails the service sends: list what waits or failed, retry one, drop one.
    #[command(subcommand)]
    Outbox(outbox::Command),
    /// Serve the embedded directory as a SCIM 2.0 service provider (`/v2/Users`, `/v2/Bulk`).
    Serve(serve::Args),
    /// Sync a configured directory or database (`[[source]]`) and write the portal's IDs back.
    Sync(sync::Args),
    /// Connect to every configured system and say what is wrong (exit 2 if anything is).
    Check(check::Args),
    /// Print an argon2id hash of a password read from the terminal, for a console operator.
    HashPassword(hash_password::Args),
    /// Benchmarks (release build).
    #[command(subcommand)]
    Bench(bench::Command),
}

/// Logs go to stderr, so `--json` output on stdout stays one clean object. The service
/// (`run`) logs at info by default; `[service] log_format = "json"` writes JSON lines.
pub fn init_logging(verbose: u8, service: bool, format: LogFormat) {
    let default = match (verbose, service) {
        (0, false) => "warn",
        (0, true) | (1, _) => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("PUSH_CONNECTOR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colour only for a person at a terminal, and never with NO_COLOR (no-color.org).
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// The configuration; for the verbs that use the mail passwords (`run`, `check`), one not
/// set is reported with every other problem.
fn load_config(path: Option<&std::path::Path>, secrets: bool) -> anyhow::Result<Config> {
    Config::load_with_secrets(path, secrets).context("loading the configuration")
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::HashPassword(args) = cli.command {
        init_logging(cli.verbose, false, LogFormat::Text);
        return hash_password::run(args);
    }
    let config = load_config(
        cli.config.as_deref(),
        matches!(cli.command, Command::Run(_) | Command::Check(_)),
    );
    let format = config
        .as_ref()
        .map_or(LogFormat::Text, |c| c.service.log_format);
    init_logging(
        cli.verbose,
        matches!(cli.command, Command::Run(_) | Command::Serve(_)),
        format,
    );
    let config = config?;
    match cli.command {
        Command::Validate(args) => validate::run(&config, args),
        Command::Plan(args) => plan::run(&config, args),
        Command::Apply(args) => apply::run(&config, args, false),
        Command::Approve(args) => approve::run(&config, args),
        Command::Reject(args) => reject::run(&config, args),
        Command::Runs(args) => runs::run(&config, args),
        Command::Revert(args) => revert::run(&config, args),
        Command::History(args) => history::run(&config, args),
        Command::Directory(command) => directory::run(&config, command),
        Command::Bench(command) => bench::run(&config, command),
        Command::Run(args) => run::run(&config, args),
        Command::Outbox(command) => outbox::run(&config, command),
        Command::Check(args) => check::run(&config, args),
        Command::Serve(args) => serve::run(&config, args),
        Command::Sync(args) => sync::run(&config, args),
        Command::HashPassword(args) => hash_password::run(args),
    }
}
