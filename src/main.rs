//! The `push-connector` command: parses the command line and runs one verb.
//!
//! Exit codes: 0 everything done, 1 some rows were refused, 2 an error (file unreadable,
//! configuration wrong, a server unreachable).

mod cli;

/// Validation allocates many small strings on several threads; mimalloc does that far faster
/// than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
