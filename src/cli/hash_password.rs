//! `hash-password`: print an argon2id hash of a password, for a `[[console.operator]]`'s
//! `password_hash`. The password is read from the terminal without echo (asked twice), or
//! as the first line of standard input when that is not a terminal. Exit 0, or 2 when the
//! two entries differ or the password is empty.

use std::io::{BufRead as _, IsTerminal as _};
use std::process::ExitCode;

use anyhow::{Context as _, bail};

/// Shortest password accepted.
const MIN_LENGTH: usize = 12;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").context("reading the password")?;
        let again =
            rpassword::prompt_password("The same again: ").context("reading the password")?;
        if first != again {
            bail!("the two passwords differ: nothing printed");
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    if password.chars().count() < MIN_LENGTH {
        bail!("the password is shorter than {MIN_LENGTH} characters: nothing printed");
    }
    let hash = push_connector::console::auth::hash_password(&password)
        .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))?;
    println!("{hash}");
    Ok(ExitCode::SUCCESS)
}
