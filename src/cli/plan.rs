//! `plan FILE`: what `apply` would do, changing nothing (same JSON contract, status
//! `planned`). Exit 0 when no row would be refused, 1 otherwise, 2 on an error.

use std::process::ExitCode;

use push_connector::config::Config;

pub use super::apply::Args;

pub fn run(config: &Config, args: Args) -> anyhow::Result<ExitCode> {
    super::apply::run(config, args, true)
}
