//! `bench`: measurements on generated data of realistic sizes (use a release build).

mod apply;
mod scim;
mod validate;

use std::process::ExitCode;

use push_connector::config::Config;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Read and validate generated submissions, beside a raw csv pass over the same bytes.
    Validate(validate::ValidateArgs),
    /// Plan and apply generated submissions against a generated directory.
    Apply(apply::ApplyArgs),
    /// Create and update generated accounts through the SCIM backend against a running SCIM
    /// service, beside a naive one-request-at-a-time client.
    Scim(scim::ScimArgs),
}

pub fn run(config: &Config, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Validate(args) => validate::run(args),
        Command::Apply(args) => apply::run(config, args),
        Command::Scim(args) => scim::run(config, args),
    }
}
