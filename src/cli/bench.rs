//! `bench apply`: measure planning and applying against a large embedded directory.

use std::process::ExitCode;

use push_connector::config::Config;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Plan and apply generated submissions against a generated directory.
    Apply(ApplyArgs),
}

#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// Accounts in the generated directory.
    #[arg(long, default_value_t = 1_500_000)]
    pub accounts: usize,
    /// Submission sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10000,100000,1000000")]
    pub rows: Vec<usize>,
}

pub fn run(_config: &Config, _command: Command) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not built yet")
}
